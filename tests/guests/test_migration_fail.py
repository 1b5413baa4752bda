#!/usr/bin/env python3
"""Live migration failure paths with real QEMU (TCG) guests (issue 10).

One sim (PF with 4 VFs, nvidia admin dialect; PF2 with 1 VF, virtio dialect; a UDP uplink whose far end is this test: it answers ARP
and ICMP echo for 10.0.0.2 and floods the guest), vfe-vdpa-ha and
vfe-vhostd --ha serving every VF, source and destination alike.  Each
scenario boots its own guest(s) and prints one result line:
  cancel:     QMP migrate_cancel while the migration is 'active' with device
              dirty tracking on: the source keeps running and pinging, stats
              say dirty_tracking false, the sim's VF is out of dirty mode and
              marks no more pages under the flood, the PF's DMA windows are
              back to their count before the migration (the log is unmapped);
  dst-kill:   the destination QEMU killed mid-migration: the migration fails,
              the source pings, the destination VF waits for a front-end, a
              second migration to a fresh destination QEMU on that VF
              completes with 0 differing pages and the migrated guest pings;
  src-daemon: vfe-vhostd killed (-9) while the source VF logs dirty pages,
              restarted at once (--ha): the migration completes under the flood
              with 0 differing pages (device writes of the gap are in the log);
  dst-daemon: vfe-vhostd killed once the destination holds the migrated state
              (paused, before 'cont'), restarted: the destination's rings start
              on the daemon that took over and the guest pings (one daemon
              serves both sides here);
  dst-host-daemon: the destination on a second host (its own sim, HA process
              and vfe-vhostd): that daemon killed while the migration is
              active and again with the destination paused; 0 differing pages,
              the guest pings through the second host;
  two-nics:   a guest with two NICs on two VFs of one VM id (one DMA domain),
              both flooded, migrated to two VFs of another VM id: 0 differing
              pages, both NICs of the destination receive;
  cross-pf:   a VF of the PF that speaks the nvidia admin dialect to a VF of
              a second PF that speaks only the virtio dialect, and back to the
              first PF, under the flood: 0 differing pages, pings each time;
  mq:         test_migration.py's 4 queue pair case, reused (soak only: the
              'migration' e2e test runs it already);
  ping-pong:  VFE_MFAIL_PINGPONG (default 10) migrations A->B->A... under the
              flood, each with 0 differing pages.
A scenario whose guest RAM differs after a completed migration is run once
more (QEMU's own rare losses under TCG, see PagesDiffer); a second such run
fails the test.  VFE_MFAIL_ONLY=a,b selects scenarios (default: every one).  A SUMMARY line
gives downtimes and differing pages.  Exit 0 pass, 1 fail, 77 skipped."""
import json
import os
import socket
import sys
import time

sys.dont_write_bytecode = True   # importing test_migration leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError, Qmp, describe_pages, differing_pages, guest_ram_fd  # noqa: E402
from vfe_harness import (run_test, SIM, VHOSTD, VHOSTD_HA, kill9, log, mgmt, poll, sim_ctl, spawn,  # noqa: E402
                         stop, vf_stats, wait_file, wait_log, wait_migrated_paused, wait_migration)
import test_migration as tm  # noqa: E402  (Peer, FLOOD, ping, the 4 queue pair scenario)

PF = "0000:3b:00.0"          # admin dialect nvidia
VFS = ["0000:3b:00.%d" % i for i in range(1, 5)]
PF2 = "0000:5e:00.0"         # admin dialect virtio
VFS2 = ["0000:5e:00.1"]
RAM = 256 << 20
MAC2 = "52:54:00:00:01:3a"
SLOW_BW = 8 << 20         # bytes/s: a migration that stays 'active' for several seconds (zero pages are cheap)
PINGPONG = int(os.environ.get("VFE_MFAIL_PINGPONG", "10"))
ALL = ["cancel", "dst-kill", "src-daemon", "dst-daemon", "dst-host-daemon", "two-nics", "cross-pf", "mq", "ping-pong"]
results = []              # (scenario, downtime ms, differing pages)
spoiled = []              # (scenario, differing pages) of runs retried


class PagesDiffer(GuestError):
    """Guest RAM differs after a completed migration.  QEMU 7.2 under TCG
    itself loses a few guest-CPU-written pages in about 1 of 20 migrations
    under vhost-user RX load (test_migration.py, docs/design-notes.md): one
    scenario run so spoiled is run again, a second one fails the test."""


def note(name, mig, bad):
    results.append((name, mig.get("downtime") if mig else None, bad))


class Env:
    """The sim with an uplink, the HA process, vfe-vhostd --ha (killed and restarted by some scenarios)."""

    def __init__(self, work, tag=""):
        """tag: a prefix of every file name, for a second stack (another host) in the same work dir."""
        self.work, self.tag = work, tag
        self.root = os.path.join(work, tag + "root")
        self.rpc = os.path.join(work, tag + "vhostd.sock")
        self.ha_sock = os.path.join(work, tag + "ha.sock")
        self.starts = 0
        self.vhostd = None
        self.provisioned = 0
        self.peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer_sock.bind(("127.0.0.1", 0))
        self.sim_port = tm.free_port(socket.SOCK_DGRAM)
        self.sim = spawn([SIM, "--root", self.root, "--pf", PF, "--vfs", str(len(VFS)), "--admin-dialect", "nvidia",
                          "--pf", PF2, "--vfs", str(len(VFS2)), "--admin-dialect", "virtio", "--uplink",
                          "udp:%d,127.0.0.1:%d" % (self.sim_port, self.peer_sock.getsockname()[1])],
                         os.path.join(work, tag + "sim.log"))
        wait_file(os.path.join(self.root, "ready"))
        ha_log = os.path.join(work, tag + "ha.log")
        self.ha = spawn([VHOSTD_HA, "--socket", self.ha_sock, "--log-level", "info"], ha_log)
        wait_log(ha_log, "ready: ", 10)
        self.start_daemon()
        for pf, dialect in ((PF, "nvidia"), (PF2, "virtio")):
            mgmt(self.rpc, "mgmtpf", "-a", pf)
            got = poll("%s ready" % pf, lambda: [p for p in json.loads(mgmt(self.rpc, "--json", "mgmtpf", "-l"))["devices"]
                                                 if p["pf"] == pf and p["state"] == "ready"])
            if got[0]["dialect"] != dialect:
                raise GuestError("%s: admin dialect %s, not %s" % (pf, got[0]["dialect"], dialect))
        self.socks = {}
        for i, vf in enumerate(VFS + VFS2):
            self.socks[vf] = os.path.join(work, "%svf%d.sock" % (tag, i + 1))
        # VF1/VF2: a guest's two NICs on the source side, VF3/VF4 on the destination side; PF2's VF for cross-pf
        for vf, vm in zip(VFS + VFS2, ("vm-a", "vm-a", "vm-b", "vm-b", "vm-c")):
            mgmt(self.rpc, "vf", "-a", vf, "-v", self.socks[vf], "-u", vm)
            self.provisioned += 1
        self.peer = tm.Peer(self.peer_sock, self.sim_port)
        self.peer.start()

    def start_daemon(self):
        self.starts += 1
        self.log_path = os.path.join(self.work, "%svhostd-%d.log" % (self.tag, self.starts))
        self.vhostd = spawn([VHOSTD, "--no-state", "--pci-root", self.root, "--rpc", self.rpc, "--iface",
                             os.path.join(self.work, self.tag + "vf-"), "--ha", self.ha_sock, "--log-level", "debug"],
                            self.log_path)
        wait_log(self.log_path, "ready: RPC", 15)

    def kill_restart(self, what):
        kill9(self.vhostd)
        t0 = time.time()
        self.start_daemon()
        try:
            wait_log(self.log_path, "HA: took over", 15)
        except GuestError:
            raise GuestError("%s: the restarted daemon logged no take-over (%s)" % (what, self.log_path))
        line = [x for x in open(self.log_path, errors="replace").read().splitlines() if "HA: took over" in x][0]
        want = "took over 2 PFs and %d VFs without a reset" % self.provisioned
        if want not in line or "; 0 PFs and 0 VFs reset" not in line:
            raise GuestError("%s: %s" % (what, line.strip()))
        return (time.time() - t0) * 1000

    def flood(self, mac):
        return spawn([sys.executable, "-c", tm.FLOOD, str(self.peer_sock.fileno()), str(self.sim_port),
                      mac.replace(":", ""), str(tm.FLOOD_RATE)], os.path.join(self.work, self.tag + "flood.log"),
                     pass_fds=[self.peer_sock.fileno()])

    def sim_fn(self, bdf):
        return sim_ctl(self.root, {"cmd": "counters", "bdf": bdf})

    def stop(self):
        self.peer.running = False
        self.peer.join(2)
        if self.vhostd and self.vhostd.poll() is None:
            for vf in VFS + VFS2:
                try:
                    mgmt(self.rpc, "vf", "-r", vf)
                except GuestError as e:
                    log("cleanup: %s" % e)
            stop(self.vhostd)
        stop(self.ha)
        stop(self.sim)
        self.peer_sock.close()

    def exit_codes(self):
        codes = {"sim": self.sim.returncode, "ha": self.ha.returncode, "vhostd": self.vhostd.returncode}
        if any(codes.values()):
            raise GuestError("%sexit status: %s" % (self.tag, json.dumps(codes)))


def guest(env, name, vf, work, kernel, initrd, incoming=None, more=()):
    return Guest(name, work, kernel, initrd, env.socks[vf], tm.GUEST_MAC, tm.GUEST_IP + "/24", qmp=True,
                 incoming=incoming, more_nics=more)


def start_migration(qs, port, bw):
    qs.call("migrate-set-parameters", **{"max-bandwidth": bw})
    qs.call("migrate", uri="tcp:127.0.0.1:%d" % port)
    return time.time()


def finish_and_compare(what, src, dst, qs, qd):
    """Migration completed, destination paused: the number of differing pages (reported)."""
    mig = wait_migrated_paused(qs, qd, what)
    ram_src, ram_dst = guest_ram_fd(src.proc.pid, RAM), guest_ram_fd(dst.proc.pid, RAM)
    bad = differing_pages(ram_src, ram_dst, RAM)
    log("%s: migrated in %.1f s (downtime %s ms), %d of %d guest pages differ"
        % (what, mig.get("total-time", 0) / 1000., mig.get("downtime"), len(bad), RAM // 4096))
    for line in describe_pages(ram_src, ram_dst, bad):
        log(line)
    return mig, bad


def tracking_on(env, vf, start):
    wait_log(env.log_path, "%s: device dirty tracking" % vf, 60, start, interval=0.01)


def bg_ping(g):
    rc, out = g.run("ping -q -i 0.05 %s >/dev/null 2>&1 &" % socket.inet_ntoa(tm.PEER_IP))
    if rc:
        raise GuestError("%s: background ping: %s" % (g.name, out))


def close_all(*things):
    for t in things:
        if t is None:
            continue
        if isinstance(t, Qmp):
            t.close()
        elif isinstance(t, Guest):
            t.stop()
        else:
            stop(t)


def s_cancel(env, work, kernel, initrd):
    vs, vd = VFS[0], VFS[2]
    port = tm.free_port()
    src = guest(env, "cancel-src", vs, work, kernel, initrd)
    dst = guest(env, "cancel-dst", vd, work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
    qs = qd = flood = None
    try:
        src.boot(120, log)
        tm.ping(src)
        qs = Qmp(src.qmp_path)
        pf_maps0 = env.sim_fn(PF)["dma_maps"]
        dst.start()
        qd = Qmp(dst.qmp_path)
        flood = env.flood(tm.GUEST_MAC)
        bg_ping(src)
        start = os.path.getsize(env.log_path)
        start_migration(qs, port, SLOW_BW)
        tracking_on(env, vs, start)
        poll("stats of %s: dirty_tracking true" % vs, lambda: vf_stats(env.rpc, vs)["dirty_tracking"])
        during = env.sim_fn(PF)["dma_maps"]
        time.sleep(1)
        st = qs.call("query-migrate")
        status, sent = st["status"], st.get("ram", {}).get("transferred", 0)
        if status != "active":
            raise GuestError("cancel: the migration is %s, not active, before the cancel" % status)
        qs.call("migrate_cancel")
        mig = wait_migration(qs, "cancel")
        if mig["status"] != "cancelled":
            raise GuestError("cancel: migration %s after migrate_cancel" % mig["status"])
        poll("cancel: stats of %s say dirty_tracking false" % vs,
             lambda: not vf_stats(env.rpc, vs)["dirty_tracking"])
        poll("cancel: the sim's %s leaves dirty mode" % vs, lambda: env.sim_fn(vs)["dirty_mode"] == 0)
        poll("cancel: the PF's DMA windows back to %d (log unmapped)" % pf_maps0,
             lambda: env.sim_fn(PF)["dma_maps"] == pf_maps0)
        marked = env.sim_fn(vs)["dirty_pages_marked"]
        rx0 = env.sim_fn(vs)["rx_packets"]
        time.sleep(2)
        c = env.sim_fn(vs)
        if c["dirty_pages_marked"] != marked:
            raise GuestError("cancel: the device still marks dirty pages after the cancel (%d -> %d)"
                             % (marked, c["dirty_pages_marked"]))
        if c["rx_packets"] - rx0 < 1000:
            raise GuestError("cancel: traffic stopped after the cancel (%d frames in 2 s)" % (c["rx_packets"] - rx0))
        if qs.call("query-status")["status"] != "running":
            raise GuestError("cancel: the source is not running")
        stop(flood)
        flood = None
        tm.ping(src)
        log("cancel: cancelled after %d KiB sent; source runs and pings; dirty tracking off, sim dirty mode 0, "
            "PF DMA windows %d -> %d -> %d, %d frames received in 2 s after the cancel"
            % (sent >> 10, pf_maps0, during, env.sim_fn(PF)["dma_maps"], c["rx_packets"] - rx0))
        note("cancel", None, [])
    finally:
        close_all(flood, qs, qd, src, dst)


def s_dst_kill(env, work, kernel, initrd):
    vs, vd = VFS[0], VFS[2]
    port = tm.free_port()
    src = guest(env, "dk-src", vs, work, kernel, initrd)
    dst = guest(env, "dk-dst", vd, work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
    dst2 = None
    qs = qd = flood = None
    try:
        src.boot(120, log)
        tm.ping(src)
        qs = Qmp(src.qmp_path)
        dst.start()
        qd = Qmp(dst.qmp_path)
        poll("dst-kill: %s connected" % vd, lambda: vf_stats(env.rpc, vd)["vhost_user"] == "connected")
        flood = env.flood(tm.GUEST_MAC)
        start = os.path.getsize(env.log_path)
        start_migration(qs, port, SLOW_BW)
        tracking_on(env, vs, start)
        time.sleep(1)
        status = qs.call("query-migrate")["status"]
        if status != "active":
            raise GuestError("dst-kill: the migration is %s, not active, before the kill" % status)
        qd.close()
        qd = None
        dst.kill()
        mig = wait_migration(qs, "dst-kill")
        if mig["status"] != "failed":
            raise GuestError("dst-kill: migration %s with its destination killed" % mig["status"])
        poll("dst-kill: %s waits for a front-end" % vd, lambda: vf_stats(env.rpc, vd)["vhost_user"] == "waiting")
        poll("dst-kill: tracking of %s off" % vs, lambda: not vf_stats(env.rpc, vs)["dirty_tracking"])
        poll("dst-kill: the source runs", lambda: qs.call("query-status")["status"] == "running")
        tm.ping(src)
        log("dst-kill: migration failed (%s); source pings, %s waiting, tracking off"
            % (mig.get("error-desc", ""), vd))
        port = tm.free_port()
        dst2 = guest(env, "dk-dst2", vd, work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
        dst2.start()
        qd = Qmp(dst2.qmp_path)
        bg_ping(src)
        start_migration(qs, port, 1 << 30)
        mig, bad = finish_and_compare("dst-kill second migration", src, dst2, qs, qd)
        note("dst-kill", mig, bad)
        if bad:
            raise PagesDiffer("dst-kill: %d guest pages differ after the second migration" % len(bad))
        stop(flood)
        flood = None
        qd.call("cont")
        tm.ping(dst2)
        log("dst-kill: a second migration to a fresh destination completed, the guest pings through %s" % vd)
    finally:
        close_all(flood, qs, qd, src, dst, dst2)


def s_daemon_kill(env, work, kernel, initrd, side):
    """side 'src': kill while the source VF logs; 'dst': kill once the destination holds the state."""
    name = side + "-daemon"
    vs, vd = VFS[0], VFS[2]
    port = tm.free_port()
    src = guest(env, name + "-src", vs, work, kernel, initrd)
    dst = guest(env, name + "-dst", vd, work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
    qs = qd = flood = None
    try:
        src.boot(120, log)
        tm.ping(src)
        qs = Qmp(src.qmp_path)
        dst.start()
        qd = Qmp(dst.qmp_path)
        flood = env.flood(tm.GUEST_MAC)
        bg_ping(src)
        start = os.path.getsize(env.log_path)
        rx0 = env.sim_fn(vs)["rx_packets"]
        if side == "src":
            start_migration(qs, port, SLOW_BW)
            tracking_on(env, vs, start)
            time.sleep(1)
            status = qs.call("query-migrate")["status"]
            took = env.kill_restart(name)
            log("%s: daemon killed with tracking on (QEMU: %s), took over in %.0f ms" % (name, status, took))
            if status != "active":
                raise GuestError("%s: the migration was %s, not active, at the kill" % (name, status))
            if not vf_stats(env.rpc, vs)["dirty_tracking"]:
                raise GuestError("%s: the daemon that took over says dirty_tracking false" % name)
            qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
            mig, bad = finish_and_compare(name, src, dst, qs, qd)
        else:
            start_migration(qs, port, 1 << 30)
            mig, bad = finish_and_compare(name, src, dst, qs, qd)
            took = env.kill_restart(name)
            log("%s: daemon killed with the destination paused on the migrated state, took over in %.0f ms"
                % (name, took))
        rx = env.sim_fn(vs)["rx_packets"] - rx0
        note(name, mig, bad)
        if bad:
            raise PagesDiffer("%s: %d guest pages differ" % (name, len(bad)))
        if rx < 1000:
            raise GuestError("%s: only %d frames reached the guest during the migration" % (name, rx))
        stop(flood)
        flood = None
        qd.call("cont")
        tm.ping(dst)
        log("%s: the migrated guest pings through %s (%d frames received by the source during the migration)"
            % (name, vd, rx))
    finally:
        close_all(flood, qs, qd, src, dst)


def s_dst_host_daemon(env, work, kernel, initrd):
    """Two hosts: the destination QEMU on a second sim and vfe-vhostd; that
    daemon is killed and restarted while the migration is active (the source
    logging), and once more with the destination paused on the migrated state."""
    name = "dst-host-daemon"
    env2 = Env(work, "b-")
    vs, vd = VFS[0], VFS[0]
    port = tm.free_port()
    src = guest(env, name + "-src", vs, work, kernel, initrd)
    dst = guest(env2, name + "-dst", vd, work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
    qs = qd = flood = None
    try:
        src.boot(120, log)
        tm.ping(src)
        qs = Qmp(src.qmp_path)
        dst.start()
        qd = Qmp(dst.qmp_path)
        poll("%s: destination connected" % name, lambda: vf_stats(env2.rpc, vd)["vhost_user"] == "connected")
        flood = env.flood(tm.GUEST_MAC)
        bg_ping(src)
        start = os.path.getsize(env.log_path)
        rx0 = env.sim_fn(vs)["rx_packets"]
        start_migration(qs, port, SLOW_BW)
        tracking_on(env, vs, start)
        time.sleep(1)
        status = qs.call("query-migrate")["status"]
        took = env2.kill_restart(name)
        log("%s: destination daemon killed mid-migration (QEMU: %s), took over in %.0f ms" % (name, status, took))
        if status != "active":
            raise GuestError("%s: the migration was %s, not active, at the kill" % (name, status))
        qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
        mig, bad = finish_and_compare(name, src, dst, qs, qd)
        rx = env.sim_fn(vs)["rx_packets"] - rx0
        note(name, mig, bad)
        if bad:
            raise PagesDiffer("%s: %d guest pages differ" % (name, len(bad)))
        if rx < 1000:
            raise GuestError("%s: only %d frames reached the guest during the migration" % (name, rx))
        took = env2.kill_restart(name + " (paused)")
        log("%s: destination daemon killed again with the destination paused, took over in %.0f ms" % (name, took))
        stop(flood)
        flood = None
        qd.call("cont")
        tm.ping(dst)
        rings = vf_stats(env2.rpc, vd)["rings_running"]
        if not rings:
            raise GuestError("%s: the destination VF runs no rings after cont" % name)
        log("%s: the migrated guest pings through the second host's %s (%d rings running)" % (name, vd, rings))
    finally:
        close_all(flood, qs, qd, src, dst)
        env2.stop()
    env2.exit_codes()


def nic_rx(g, dev):
    rc, out = g.run("cat /sys/class/net/%s/statistics/rx_packets" % dev)
    if rc:
        raise GuestError("%s: %s rx_packets: %s" % (g.name, dev, out))
    return int(out.strip().splitlines()[-1])


def s_two_nics(env, work, kernel, initrd):
    port = tm.free_port()
    src = guest(env, "2nic-src", VFS[0], work, kernel, initrd, more=[(env.socks[VFS[1]], MAC2)])
    dst = guest(env, "2nic-dst", VFS[2], work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port,
                more=[(env.socks[VFS[3]], MAC2)])
    qs = qd = None
    floods = []
    try:
        src.boot(120, log)
        rc, out = src.run("ip addr add 10.0.1.1/24 dev eth1 && ip link set eth1 up")
        if rc:
            raise GuestError("two-nics: eth1 up: %s" % out)
        tm.ping(src)
        dom = vf_stats(env.rpc, VFS[0])["dma_domain"]
        if dom["members"] != 2:
            raise GuestError("two-nics: %s's DMA domain %s, not 2 members" % (VFS[0], dom))
        qs = Qmp(src.qmp_path)
        dst.start()
        qd = Qmp(dst.qmp_path)
        floods = [env.flood(tm.GUEST_MAC), env.flood(MAC2)]
        bg_ping(src)
        rx0 = [env.sim_fn(v)["rx_packets"] for v in VFS[:2]]
        start = os.path.getsize(env.log_path)
        start_migration(qs, port, 1 << 30)
        for vf in VFS[:2]:
            tracking_on(env, vf, start)
        mig, bad = finish_and_compare("two-nics", src, dst, qs, qd)
        rx = [env.sim_fn(v)["rx_packets"] - r for v, r in zip(VFS[:2], rx0)]
        note("two-nics", mig, bad)
        if bad:
            raise PagesDiffer("two-nics: %d guest pages differ" % len(bad))
        if min(rx) < 500:
            raise GuestError("two-nics: frames received by the source's VFs during the migration: %s" % rx)
        qd.call("cont")
        # the sim is a learning switch: frames for MAC2 go to the destination's VF once eth1 sent one
        # (an ARP request nobody answers; both VFs carry MAC2)
        dst.run("ping -c 1 -W 1 10.0.1.2")
        before = nic_rx(dst, "eth1")
        time.sleep(1)
        after = nic_rx(dst, "eth1")
        for f in floods:
            stop(f)
        floods = []
        if after - before < 100:
            raise GuestError("two-nics: the destination's eth1 received %d frames in 1 s" % (after - before))
        tm.ping(dst)
        log("two-nics: both NICs tracked and migrated (source rx %s during it), destination eth1 receives, "
            "eth0 pings" % rx)
    finally:
        close_all(*(floods + [qs, qd, src, dst]))


def migrate_along(env, work, kernel, initrd, name, hops):
    """One guest migrated from VF to VF along hops under the flood: each move
    with the device tracking, 0 differing pages, frames received meanwhile, and
    the guest pinging through the next VF."""
    cur = guest(env, "%s-0" % name, hops[0], work, kernel, initrd)
    cur.boot(120, log)
    nxt = qs = qd = flood = None
    try:
        tm.ping(cur)
        flood = env.flood(tm.GUEST_MAC)
        for i in range(1, len(hops)):
            what = "%s %d (%s -> %s)" % (name, i, hops[i - 1], hops[i])
            port = tm.free_port()
            nxt = guest(env, "%s-%d" % (name, i), hops[i], work, kernel, initrd, incoming="tcp:127.0.0.1:%d" % port)
            nxt.start()
            qs, qd = Qmp(cur.qmp_path), Qmp(nxt.qmp_path)
            bg_ping(cur)
            start = os.path.getsize(env.log_path)
            rx0 = env.sim_fn(hops[i - 1])["rx_packets"]
            start_migration(qs, port, 1 << 30)
            tracking_on(env, hops[i - 1], start)
            mig, bad = finish_and_compare(what, cur, nxt, qs, qd)
            rx = env.sim_fn(hops[i - 1])["rx_packets"] - rx0
            note("%s-%d" % (name, i), mig, bad)
            if bad:
                raise PagesDiffer("%s: %d guest pages differ" % (what, len(bad)))
            if rx < 500:
                raise GuestError("%s: only %d frames reached the guest during the migration" % (what, rx))
            qd.call("cont")
            tm.ping(nxt)
            if not vf_stats(env.rpc, hops[i])["rings_running"]:
                raise GuestError("%s: the destination VF runs no rings after cont" % what)
            qs.close()
            qd.close()
            qs = qd = None
            cur.stop()
            cur, nxt = nxt, None
    finally:
        close_all(flood, qs, qd, cur, nxt)


def s_cross_pf(env, work, kernel, initrd):
    """PF (nvidia dialect) -> PF2 (virtio dialect) -> PF."""
    migrate_along(env, work, kernel, initrd, "cross-pf", [VFS[0], VFS2[0], VFS[2]])
    log("cross-pf: nvidia -> virtio -> nvidia dialect PFs under the flood, 0 differing pages, pings after each")


def s_ping_pong(env, work, kernel, initrd):
    migrate_along(env, work, kernel, initrd, "ping-pong", [[VFS[0], VFS[2]][i % 2] for i in range(PINGPONG + 1)])
    log("ping-pong: %d migrations under the flood, each with 0 differing pages" % PINGPONG)


def body(work, kernel, initrd):
    only = [x for x in os.environ.get("VFE_MFAIL_ONLY", "").split(",") if x] or ALL
    unknown = set(only) - set(ALL)
    if unknown:
        raise GuestError("VFE_MFAIL_ONLY: unknown scenarios %s (known: %s)" % (sorted(unknown), ALL))
    env = Env(work)
    try:
        for name, fn in (("cancel", s_cancel), ("dst-kill", s_dst_kill),
                         ("src-daemon", lambda *a: s_daemon_kill(*a, side="src")),
                         ("dst-daemon", lambda *a: s_daemon_kill(*a, side="dst")),
                         ("dst-host-daemon", s_dst_host_daemon),
                         ("two-nics", s_two_nics), ("cross-pf", s_cross_pf), ("ping-pong", s_ping_pong)):
            if name in only:
                t0 = time.time()
                log("== scenario %s" % name)
                try:
                    fn(env, work, kernel, initrd)
                except PagesDiffer as e:
                    if spoiled:
                        raise PagesDiffer("%s; a second spoiled run (earlier: %s)" % (e, spoiled))
                    spoiled.append((name, str(e)))
                    log("== scenario %s spoiled (%s): run again" % (name, e))
                    fn(env, work, kernel, initrd)
                log("== scenario %s passed in %.0f s" % (name, time.time() - t0))
    finally:
        env.stop()
    if "mq" in only:
        log("== scenario mq (test_migration.py's 4 queue pairs)")
        tm.scenario(work, kernel, initrd, queues=4, slow_admin=False, loops=1)
        results.append(("mq", None, []))
    log("SUMMARY: " + "; ".join("%s downtime %s ms, %d differing pages" % (n, d if d is not None else "-", len(b))
                                for n, d, b in results) + "; spoiled runs retried: %s" % (spoiled or "none"))
    env.exit_codes()


def main():
    return run_test("vfe-mfail-", body)


if __name__ == "__main__":
    sys.exit(main())
