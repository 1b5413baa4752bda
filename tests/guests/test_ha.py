#!/usr/bin/env python3
"""Guests keep their network while vfe-vhostd is killed (docs/ha.md, issue 9).

The sim with a PF and 2 VFs, vfe-vhostd-ha, vfe-vhostd --ha, two TCG guests:
a (4 vCPUs, 4 queue pairs) on VF1 and b (1 queue pair) on VF2.  Both ping
each other every 10 ms (busybox ping -i 0.01 in the guest, in the background).
  baseline: a ping run of D seconds, no kill: lost replies counted;
  kills:    a ping run of the same length during which vfe-vhostd gets kill -9
            K times at random moments, restarted at once with the same
            arguments; the loss must stay within baseline + SLACK;
  reboot:   b reboots (`reboot -f`: QEMU resets the device, vhost-user
            messages flow) and vfe-vhostd is killed in the middle of it (in
            turn: as b's rings start again, as they stop, at a random moment);
            b must come back and ping;
  qemu:     b's QEMU is killed and started again on its socket: the
            daemon that took the session over accepts the new front-end.
After every restart: the daemon's log says "took over 1 PFs and 2 VFs without
a reset", the sim counted no reset and no vfio-user client leaving for the PF
and both VFs, `stats` counts one more resume for each VF, health's
last_resume names 1 PF and 2 VFs; both QEMUs still run.  At the end QEMU's
output holds no "Disconnected" or vhost-user line.
VFE_HA_KILLS=K (default 5), VFE_HA_REBOOTS=R (default 2) and
VFE_HA_SLACK=fraction (default 0.01) size the run; VFE_HA_MIGRATE=1 adds, after
the reboots, a third VF and a kill during a live migration of b onto it (guest
RAM compared on both sides; the QEMU restart is then the destination's); the
soak suite runs K=20, R=6 and the migration.
Exit 0 pass, 1 fail, 77 skipped (no qemu)."""
import json
import os
import random
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError, Qmp, describe_pages, differing_pages, guest_ram_fd, ping_summary  # noqa
from vfe_harness import (run_test, SIM, VHOSTD, VHOSTD_HA, kill9, log, mgmt, sim_counters, spawn, stop,  # noqa: E402
                         vf_stats, wait_file, wait_log)

PF, VF1, VF2, VF3 = "0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3"
IP_A, IP_B = "10.0.0.1", "10.0.0.2"
KILLS = int(os.environ.get("VFE_HA_KILLS", "5"))
REBOOTS = int(os.environ.get("VFE_HA_REBOOTS", "2"))
SLACK = float(os.environ.get("VFE_HA_SLACK", "0.01"))
MIGRATE = os.environ.get("VFE_HA_MIGRATE") == "1"
FUNCTIONS = (PF, VF1, VF2, VF3) if MIGRATE else (PF, VF1, VF2)   # what the sim has
RAM = 256 << 20
GAP = (0.5, 2.5)           # seconds between a restart and the next kill


class Stack:
    """The sim, the HA process and the daemon, which gets killed and restarted."""

    def __init__(self, work):
        self.work = work
        self.root = os.path.join(work, "root")
        self.rpc = os.path.join(work, "vhostd.sock")
        self.ha_sock = os.path.join(work, "ha.sock")
        self.starts = 0
        self.kills = 0
        self.resumed = {}   # provisioned VF: take-overs it has seen
        self.vhostd = None
        self.took_ms, self.adopt_ms = [], []
        self.sim = spawn([SIM, "--root", self.root, "--pf", PF, "--vfs", str(len(FUNCTIONS) - 1)],
                         os.path.join(work, "sim.log"))
        wait_file(os.path.join(self.root, "ready"))
        ha_log = os.path.join(work, "ha.log")
        self.ha = spawn([VHOSTD_HA, "--socket", self.ha_sock, "--log-level", "info"], ha_log)
        wait_log(ha_log, "ready: ", 10)

    def add_vf(self, vf, sock, vm):
        mgmt(self.rpc, "vf", "-a", vf, "-v", sock, "-u", vm)
        self.resumed[vf] = 0

    def start_daemon(self):
        self.starts += 1
        self.log_path = os.path.join(self.work, "vhostd-%d.log" % self.starts)
        self.vhostd = spawn([VHOSTD, "--no-state", "--pci-root", self.root, "--rpc", self.rpc, "--iface",
                             os.path.join(self.work, "vf-"), "--ha", self.ha_sock, "--log-level", "debug"],
                            self.log_path)
        wait_log(self.log_path, "ready: RPC", 15)

    def kill_restart(self, what):
        """kill -9, restart at once, and check that everything was taken over."""
        kill9(self.vhostd)
        self.kills += 1
        t0 = time.time()
        self.start_daemon()
        try:
            wait_log(self.log_path, "HA: took over", 15)
        except GuestError:
            raise GuestError("%s: restart %d logged no take-over (%s)" % (what, self.kills, self.log_path))
        took = (time.time() - t0) * 1000
        line = [x for x in open(self.log_path, errors="replace").read().splitlines() if "HA: took over" in x][0]
        took_over = "took over 1 PFs and %d VFs without a reset" % len(self.resumed)
        if took_over not in line or "; 0 PFs and 0 VFs reset" not in line:
            raise GuestError("%s: restart %d: %s" % (what, self.kills, line.strip()))
        ha = json.loads(mgmt(self.rpc, "--json", "health")).get("ha") or {}
        last = ha.get("last_resume") or {}
        counts = tuple(last.get(k) for k in ("pfs", "vfs", "reset_pfs", "reset_vfs"))
        if counts != (1, len(self.resumed), 0, 0):
            raise GuestError("%s: restart %d: health ha %s" % (what, self.kills, ha))
        if not ha.get("connected"):
            raise GuestError("%s: restart %d: not connected to the HA process again: %s" % (what, self.kills, ha))
        for vf in self.resumed:
            self.resumed[vf] += 1
            n = vf_stats(self.rpc, vf).get("resumed")
            if n != self.resumed[vf]:
                raise GuestError("%s: restart %d: stats of %s say resumed %s" % (what, self.kills, vf, n))
        self.took_ms.append(took)
        self.adopt_ms.append(last.get("ms", -1))
        return took, last.get("ms", -1)

    def resets(self):
        """{function: (resets, client_disconnects)} as the sim counted them."""
        out = {}
        for bdf in FUNCTIONS:
            c = sim_counters(self.root, bdf)
            out[bdf] = (c["resets"], c["client_disconnects"])
        return out

    def never_reset(self, what):
        r = self.resets()
        bad = {k: v for k, v in r.items() if v != (0, 0)}
        if bad:
            raise GuestError("%s: the sim counted (resets, client_disconnects) %s" % (what, bad))

    def stop(self):
        if self.vhostd:
            stop(self.vhostd)
        stop(self.ha)
        stop(self.sim)

    def exit_codes(self):
        """Exit statuses after stop(): SIGTERM hands the daemon over, each exits 0."""
        codes = {"vhostd": self.vhostd.returncode if self.vhostd else 0, "ha": self.ha.returncode,
                 "sim": self.sim.returncode}
        if any(codes.values()):
            raise GuestError("exit status: %s" % codes)

    def warnings(self):
        """Warning and error lines of every daemon that ran."""
        out = []
        for n in range(1, self.starts + 1):
            with open(os.path.join(self.work, "vhostd-%d.log" % n), errors="replace") as f:
                out += ["vhostd-%d: %s" % (n, x) for x in f.read().splitlines() if x[:3] in ("<3>", "<4>")]
        return out


def start_pings(a, b, tag, count):
    """Both guests ping each other every 10 ms, count times, in the background;
    a from its last vCPU (a queue pair other than the first)."""
    for g, cpu, peer in ((a, a.smp - 1, IP_B), (b, 0, IP_A)):
        rc, out = g.run("taskset -c %d ping -q -i 0.01 -c %d -W 2 %s >/tmp/ping-%s 2>&1 &" % (cpu, count, peer, tag))
        if rc:
            raise GuestError("%s: background ping: %s" % (g.name, out))


def ping_result(g, tag, timeout):
    """(sent, received) of a background ping once it finished."""
    end = time.time() + timeout
    while True:
        rc, out = g.run("cat /tmp/ping-%s" % tag)
        if "packet loss" in out:
            return ping_summary(out)
        if time.time() > end:
            raise GuestError("%s: ping %s did not finish in %d s:\n%s" % (g.name, tag, timeout, out))
        time.sleep(1)


def ping_phase(a, b, tag, secs, during=None):
    count = int(secs * 100)
    start_pings(a, b, tag, count)
    t0 = time.time()
    if during:
        during(t0 + secs)
    time.sleep(max(0, t0 + secs - time.time()))
    sa = ping_result(a, tag, 3 * secs + 30)
    sb = ping_result(b, tag, 60)
    sent, got = sa[0] + sb[0], sa[1] + sb[1]
    log("%s: %d pings sent, %d lost (a->b %d/%d, b->a %d/%d) in %.1f s"
        % (tag, sent, sent - got, sa[0] - sa[1], sa[0], sb[0] - sb[1], sb[0], time.time() - t0))
    if sent < 2 * count:
        raise GuestError("%s: only %d of %d pings sent" % (tag, sent, 2 * count))
    return sent, sent - got


def ping_once(g, peer):
    rc, out = g.run("ping -c 3 -W 3 %s" % peer, timeout=40)
    if rc:
        raise GuestError("%s: ping %s failed:\n%s" % (g.name, peer, out))


def qemu_alive(*guests):
    for g in guests:
        if g.proc.poll() is not None:
            raise GuestError("%s: QEMU exited with %s" % (g.name, g.proc.returncode))


def qemu_complaints(g):
    with open(g.log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    return [x for x in text.splitlines() if re.search(r"disconnected|vhost", x, re.I)]


def reboot_kill(st, a, b, i, rnd):
    """Guest b reboots; vfe-vhostd is killed while QEMU talks vhost-user to it:
    when the daemon logs b's first ring started again (the burst QEMU sends at
    DRIVER_OK, waiting for replies), when it logs b's first ring stopped (the
    burst at the reset), or at a random moment of the reboot."""
    mode = ("driver-ok", "reset", "random")[i % 3]
    old_log = st.log_path
    start = os.path.getsize(old_log)
    b.sock.sendall(b"reboot -f\n")
    t0 = time.time()
    if mode == "random":
        time.sleep(rnd.uniform(0.2, 4.0))
    else:
        needle = "vhost-user %s: ring 0 %s" % (VF2, "ready" if mode == "driver-ok" else "stopped")
        wait_log(old_log, needle, 60, start, interval=0.001)
    delay = time.time() - t0
    took, adopt = st.kill_restart("reboot %d (%s)" % (i + 1, mode))
    with open(old_log, errors="replace") as f:
        f.seek(start)
        seen = [x.split("vfe-vhostd: ", 1)[-1] for x in f.read().splitlines() if VF2 in x and "ring" in x]
    log("reboot %d (%s): daemon killed %.2f s into guest b's reboot after it logged %s; took over in %.0f ms "
        "(adoption %.1f ms)" % (i + 1, mode, delay, seen, took, adopt))
    b.expect("VFE-GUEST-READY", 120)
    b.expect("\n", 5)
    ping_once(b, IP_A)
    ping_once(a, IP_B)
    qemu_alive(a, b)
    log("reboot %d (%s): guest b back and pinging; sim (resets, client_disconnects): %s"
        % (i + 1, mode, st.resets()))
    st.never_reset("after reboot %d (%s)" % (i + 1, mode))


def spread(values):
    """(min, average, max), zeros for none."""
    return (min(values), sum(values) / len(values), max(values)) if values else (0, 0, 0)


def qemu_restart(st, a, b):
    """After the restarts, b's QEMU is killed and started again on the same
    socket: the daemon that took the session over accepts the new front-end."""
    b.kill()
    b.incoming = None   # a migration destination boots afresh
    t0 = time.time()
    try:
        b.boot(60, log)
    except GuestError as e:
        raise GuestError("QEMU of guest b restarted after %d daemon restarts: %s" % (st.kills, e))
    ping_once(b, IP_A)
    ping_once(a, IP_B)
    st.never_reset("after QEMU's restart")
    log("qemu restart: guest b's QEMU killed and started again, pings after %.1f s" % (time.time() - t0))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def migrate_kill(st, work, kernel, initrd, a, b, rnd):
    """Guest b migrates (QMP migrate) from VF2 to a paused QEMU on VF3 while a
    pings it; vfe-vhostd is killed once VF2's device logs dirty pages into
    QEMU's log.  Guest RAM must be identical on both sides, the destination
    pings.  Returns the destination guest.  VF3 is provisioned now: its
    socket listens in this daemon, not in one that took it over."""
    st.add_vf(VF3, os.path.join(work, "c.sock"), "vm-b-dst")
    port = free_port()
    dst = Guest("b-dst", work, kernel, initrd, os.path.join(work, "c.sock"), b.mac, IP_B + "/24", qmp=True,
                incoming="tcp:127.0.0.1:%d" % port)
    dst.start()
    qs = Qmp(b.qmp_path)
    try:
        qd = Qmp(dst.qmp_path)
    except OSError as e:
        qs.close()
        dst.stop()
        raise GuestError("migration: the destination QEMU on %s does not answer QMP (%s): blocked on its vhost-user "
                         "back-end?" % (VF3, e))
    try:
        rc, out = a.run("ping -q -i 0.01 -w 60 %s >/dev/null 2>&1 & echo $! >/tmp/mig-ping.pid" % IP_B)
        if rc:
            raise GuestError("background ping: %s" % out)
        start = os.path.getsize(st.log_path)
        old_log = st.log_path
        qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
        t0 = time.time()
        qs.call("migrate", uri="tcp:127.0.0.1:%d" % port)
        wait_log(old_log, "%s: device dirty tracking" % VF2, 60, start, interval=0.001)
        time.sleep(rnd.uniform(0, 0.3))
        delay = time.time() - t0
        status = qs.call("query-migrate").get("status")
        took, adopt = st.kill_restart("migration")
        log("migration: daemon killed %.2f s after migrate (QEMU: %s), took over in %.0f ms (adoption %.1f ms)"
            % (delay, status, took, adopt))
        while True:
            mig = qs.call("query-migrate")
            if mig.get("status") in ("completed", "failed", "cancelled"):
                break
            if time.time() - t0 > 180:
                raise GuestError("migration still %s after 180 s" % mig.get("status"))
            time.sleep(0.2)
        if mig["status"] != "completed":
            raise GuestError("migration %s: %s" % (mig["status"], mig.get("error-desc", "")))
        end = time.time() + 60
        while qd.call("query-status")["status"] != "paused":
            if time.time() > end:
                raise GuestError("migration: destination never finished loading")
            time.sleep(0.1)
        ram_src, ram_dst = guest_ram_fd(b.proc.pid, RAM), guest_ram_fd(dst.proc.pid, RAM)
        bad = differing_pages(ram_src, ram_dst, RAM)
        log("migration: completed in %.1f s (downtime %s ms), %d of %d guest pages differ"
            % (mig.get("total-time", 0) / 1000., mig.get("downtime"), len(bad), RAM // 4096))
        if bad:
            for line in describe_pages(ram_src, ram_dst, bad):
                log(line)
            raise GuestError("migration with a kill: %d guest pages differ" % len(bad))
        qd.call("cont")
        a.run("kill $(cat /tmp/mig-ping.pid)")
        ping_once(dst, IP_A)
        ping_once(a, IP_B)
        st.never_reset("after the migration")
        log("migration: the migrated guest pings through %s" % VF3)
        return dst
    except BaseException:
        dst.stop()
        raise
    finally:
        qs.close()
        qd.close()


def body(work, kernel, initrd):
    rnd = random.Random(int(os.environ.get("VFE_HA_SEED", str(int(time.time())))))
    st = Stack(work)
    a = b = b2 = None
    try:
        st.start_daemon()
        mgmt(st.rpc, "mgmtpf", "-a", PF)
        socks = [os.path.join(work, n + ".sock") for n in ("a", "b")]
        st.add_vf(VF1, socks[0], "vm-a")
        st.add_vf(VF2, socks[1], "vm-b")
        a = Guest("a", work, kernel, initrd, socks[0], "52:54:00:00:00:0a", IP_A + "/24", smp=4, queues=4, qmp=True)
        b = Guest("b", work, kernel, initrd, socks[1], "52:54:00:00:00:0b", IP_B + "/24", reboot=True, qmp=True)
        a.boot(120, log)
        b.boot(120, log)
        ping_once(a, IP_B)
        ping_once(b, IP_A)
        rings = vf_stats(st.rpc, VF1).get("rings_running")
        log("both guests up and pinging; VF1 has %s rings running" % rings)
        if rings != 8:
            raise GuestError("guest a's VF runs %s rings, not 8 (4 queue pairs)" % rings)
        st.never_reset("before any kill")

        secs = KILLS * (GAP[1] + 1.5) + 3
        base_sent, base_lost = ping_phase(a, b, "baseline", secs)

        def kills(end):
            for i in range(KILLS):
                time.sleep(rnd.uniform(*GAP))
                took, adopt = st.kill_restart("kill %d" % (i + 1))
                st.never_reset("after kill %d" % (i + 1))
                qemu_alive(a, b)
                log("kill %d: restarted, took over in %.0f ms (adoption %.1f ms)" % (i + 1, took, adopt))
            if time.time() > end:
                raise GuestError("the kills took longer than the ping run (%.1f s over)" % (time.time() - end))
        kill_sent, kill_lost = ping_phase(a, b, "kills", secs, kills)

        for i in range(REBOOTS):
            reboot_kill(st, a, b, i, rnd)

        complaints = qemu_complaints(a) + qemu_complaints(b)
        if complaints:
            raise GuestError("QEMU output: %s" % complaints[:10])
        base_rate = base_lost / base_sent
        allowed = int((base_rate + SLACK) * kill_sent)
        log("SUMMARY: %d kills + %d during reboots; restart to taken over ms min/avg/max %.0f/%.0f/%.0f; "
            "adoption ms (health.last_resume.ms) min/avg/max %.1f/%.1f/%.1f; baseline lost %d of %d (%.2f%%); "
            "with kills lost %d of %d (%.2f%%, allowed %d); sim resets 0, client_disconnects 0"
            % ((KILLS, REBOOTS) + spread(st.took_ms) + spread(st.adopt_ms) + (base_lost, base_sent,
               100 * base_rate, kill_lost, kill_sent, 100 * kill_lost / kill_sent, allowed)))
        warnings = st.warnings()
        log("daemon warnings and errors: %d%s" % (len(warnings), "".join("\n  " + w for w in warnings[:10])))
        if kill_lost > allowed:
            raise GuestError("%d pings lost with kills, baseline %.2f%% + slack %.1f%% allows %d"
                             % (kill_lost, 100 * base_rate, 100 * SLACK, allowed))
        if MIGRATE:
            b2 = migrate_kill(st, work, kernel, initrd, a, b, rnd)
            b.stop()
            complaints = qemu_complaints(a) + qemu_complaints(b2)
            if complaints:
                raise GuestError("QEMU output after the migration: %s" % complaints[:10])
        qemu_restart(st, a, b2 or b)
        complaints = qemu_complaints(a) + qemu_complaints(b2 or b)
        if complaints:
            raise GuestError("QEMU output after QEMU's restart: %s" % complaints[:10])
    finally:
        for g in (a, b, b2):
            if g:
                g.stop()
        if st.vhostd and st.vhostd.poll() is None:
            for vf in st.resumed:
                mgmt(st.rpc, "vf", "-r", vf)
        st.stop()
    st.exit_codes()


def main():
    return run_test("vfe-ha-", body)


if __name__ == "__main__":
    sys.exit(main())
