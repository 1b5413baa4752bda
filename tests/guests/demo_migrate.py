"""Demo step (demo_ping.py --migrate): one guest moves to another VF by QEMU
live migration while the other guest pings it every 10 ms.

The destination QEMU waits on -incoming (TCP on 127.0.0.1) with its NIC on the
other VF's vhost-user socket and runs the guest as soon as the state is
loaded.  Printed: QEMU's own numbers (query-migrate: total time and downtime,
the time the source kept the guest paused), the pings sent across the
migration and the replies lost, then the switchover as vfe-vhostd recorded it
(the --timeline command, `vhostmgmt migration` of both VFs)."""
import socket
import time

from vfe_guests import Guest, GuestError, Qmp, ping_summary

PING_EVERY_MS = 10
MIGRATE_TIMEOUT = 120
# QEMU's default downtime-limit (300 ms) lets the last RAM pass dominate the
# downtime; 5 ms shows the switchover, as bench/downtime.py does.  Should the
# guest dirty RAM faster than that converges, the default comes back.
DOWNTIME_LIMIT_MS = 5
RELAX_AFTER_S = 20


class DestinationGuest(Guest):
    """A migration destination that runs the guest once loaded (no -S)."""

    def cmdline(self):
        cmd = super().cmdline()
        if self.incoming and "-S" in cmd:
            cmd.remove("-S")
        return cmd


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def qemu_summary(st):
    """The line about QEMU's side of a finished migration (query-migrate's answer)."""
    ram = st.get("ram") or {}
    mib = ram.get("transferred", 0) / (1 << 20)
    return ("QEMU: migrated in %s ms (%.1f MiB sent), downtime %s ms (the guest paused on the source)"
            % (st.get("total-time", "?"), mib, st.get("downtime", "?")))


def loss_summary(name, sent, got, secs):
    """The line about the pings across the migration: a TCG guest sends fewer
    than one per 10 ms while QEMUs start and migrate, so the gap is estimated
    from the pace it kept over secs."""
    lost = max(0, sent - got)
    pace = secs * 1000 / sent if sent else 0
    return ("%s: %d pings sent across the migration (one per %.0f ms), %d replies, %d lost: about %.0f ms without "
            "replies" % (name, sent, pace, got, lost, lost * pace))


def wait_migration(qs, timeout=MIGRATE_TIMEOUT, relax_after=None):
    """query-migrate until it ends; its last answer (completed) or GuestError.
    After relax_after seconds still running, QEMU's default downtime-limit."""
    t0 = time.time()
    relaxed = relax_after is None
    while True:
        st = qs.call("query-migrate")
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        if not relaxed and time.time() - t0 > relax_after:
            qs.call("migrate-set-parameters", **{"downtime-limit": 300})
            relaxed = True
            print("    (not converging under %d ms: QEMU's default downtime-limit, 300 ms)" % DOWNTIME_LIMIT_MS,
                  flush=True)
        if time.time() - t0 > timeout:
            raise GuestError("migration still %s after %d s" % (st.get("status"), timeout))
        time.sleep(0.05)
    if st["status"] != "completed":
        raise GuestError("migration %s: %s" % (st["status"], st.get("error-desc", "")))
    return st


def migrate_step(pinger, moving, dest_sock, timeline_cmd, shell, replies, peer_ip):
    """pinger pings moving (at peer_ip) every 10 ms while moving is migrated to
    a QEMU on dest_sock.  shell(cmd) runs and prints a demo command;
    replies(guest, path) counts the echo replies in a ping's output so far.
    (0 or 1, the guest that runs now: the destination on success, else
    moving; the caller stops it)."""
    print("\n  %s pings %s every %d ms while %s moves to the other VF (QEMU live migration):"
          % (pinger.name, moving.name, PING_EVERY_MS, moving.name), flush=True)
    t0 = time.time()
    rc, out = pinger.run("ping -i 0.%02d %s >/tmp/mig-ping 2>&1 & echo $! >/tmp/mig-ping.pid"
                         % (PING_EVERY_MS, peer_ip))
    if rc:
        print("  background ping FAILED: %s" % out)
        return 1, moving
    port = free_port()
    dest = DestinationGuest(moving.name + "-dst", moving.dir, moving.kernel, moving.initrd, dest_sock, moving.mac,
                            moving.ip, qmp=True, incoming="tcp:127.0.0.1:%d" % port)
    qs = qd = None
    try:
        dest.start()
        qd = Qmp(dest.qmp_path)
        qs = Qmp(moving.qmp_path)
        time.sleep(1)
        print("  $ (QMP) migrate-set-parameters downtime-limit=%d max-bandwidth=1G; migrate tcp:127.0.0.1:%d"
              % (DOWNTIME_LIMIT_MS, port), flush=True)
        qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30, "downtime-limit": DOWNTIME_LIMIT_MS})
        qs.call("migrate", uri="tcp:127.0.0.1:%d" % port)
        st = wait_migration(qs, relax_after=RELAX_AFTER_S)
        end = time.time() + 30
        while qd.call("query-status")["status"] != "running":
            if time.time() > end:
                raise GuestError("the destination QEMU never ran the guest")
            time.sleep(0.05)
        print("    " + qemu_summary(st), flush=True)
        before = replies(pinger, "/tmp/mig-ping")[0]
        time.sleep(1)
        # the switch keeps the guest's MAC on the old VF until something is sent
        # from the new one: the guest's own announcement (GUEST_ANNOUNCE)
        announced = replies(pinger, "/tmp/mig-ping")[0] > before
        print("    %s" % ("%s answers from its new VF: it announced itself (QEMU's GUEST_ANNOUNCE)" % moving.name
                             if announced else "no reply for 1 s after the move: %s was not announced" % moving.name),
              flush=True)
        pinger.run("kill -INT $(cat /tmp/mig-ping.pid)")
        secs = time.time() - t0
        time.sleep(0.5)
        _, out = pinger.run("tail -n 3 /tmp/mig-ping")
        sent, got = ping_summary(out)
        print("    " + loss_summary(pinger.name, sent, got, secs), flush=True)
        rc, out = dest.run("echo migrated", timeout=30)
        if rc or "migrated" not in out:
            raise GuestError("the migrated guest does not answer on its console")
        shown = shell(timeline_cmd)
        rc, _ = pinger.run("ping -c 2 -W 2 %s" % peer_ip, timeout=30)
        ok = rc == 0 and shown and announced
    except GuestError as e:
        print("  migration FAILED: %s" % e)
        dest.stop()
        return 1, moving
    finally:
        for q in (qs, qd):
            if q:
                q.close()
    moving.stop()
    if not ok:
        print("  the migrated guest did NOT get its network back")
        return 1, dest
    print("  %s runs on the other VF: the source device handed its ring indices over, the destination resumed them"
          % moving.name)
    return 0, dest
