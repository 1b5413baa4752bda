#!/usr/bin/env python3
"""Live migration with real QEMU under an RX flood: guest memory must be
identical on both sides.

A guest on VF1 is migrated (QMP `migrate`) to a destination QEMU on VF2 that
waits paused (`-incoming ... -S`), while the test floods the guest through the
sim's UDP uplink.  Once QEMU says the migration completed, both VMs are paused:
their guest RAM (memfds, read through /proc/PID/fd) must be identical page for
page.  Then `cont`, and the migrated guest pings through its new VF.  The test
itself is the guest's peer on the uplink (it answers ARP and ICMP echo).

A run whose RAM differs is reported page by page and retried, up to a tenth of
the runs (at least once): QEMU 7.2 under TCG loses a few guest-CPU-written pages
in about 1 of 20 migrations under vhost-user RX load, with no vfe involved
(seen with DPDK testpmd as the back-end).  Device-side ordering bugs are
pinned down deterministically by tests/integration/migration.
Scenarios (the suite runs each once; VFE_MIGRATION_LOOPS=N repeats them, and
VFE_MIGRATION_HOG=1 adds a CPU hog, for the longer `migration-soak` suite):
  slow-admin: one queue pair, the sim's admin commands delayed 300 ms while
              dirty tracking starts (QEMU must not copy memory before the
              device logs);
  mq:         4 queue pairs, guest with 4 vCPUs; traffic crosses every ring
              before and after the move (checked in `vhostmgmt stats`).
VFE_MIGRATION_ADMIN_MS sets the slow-admin delay (default 300; 0: none).
VFE_MIGRATION_DIRTY=none|pull|push|push,pull is the sim's --dirty-tracking
(default: the sim's, push,pull): `none` makes vfe-vhostd track in software
(it walks the rings), `pull` in pull mode; the mode used is checked in
vfe-vhostd's log.
Exit 0 pass, 1 fail, 77 skipped (no qemu)."""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError, Qmp, describe_pages, differing_pages, guest_ram_fd  # noqa: E402
from vfe_harness import (run_test, SIM, VHOSTD, log, mgmt, sim_ctl, spawn, stop, vf_stats, wait_file,  # noqa: E402
                         wait_migrated_paused)

PF, VF1, VF2 = "0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2"
RAM = 256 << 20
GUEST_MAC, GUEST_IP = "52:54:00:00:00:3a", "10.0.0.1"
PEER_MAC, PEER_IP = bytes.fromhex("020000000099"), bytes([10, 0, 0, 2])
FLOOD_RATE = 15000
SLOW_ADMIN_MS = int(os.environ.get("VFE_MIGRATION_ADMIN_MS", "300"))
DIRTY = os.environ.get("VFE_MIGRATION_DIRTY", "")
# what vfe-vhostd (auto) logs when it falls back to each mode
DIRTY_LOG_LINE = {"none": "tracking them in software", "pull": "pulling them"}


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ring_indices(rpc, vf):
    return {r["ring"]: r["used_idx"] for r in vf_stats(rpc, vf).get("rings", [])}


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


class Peer(threading.Thread):
    """The guest's neighbour on the sim's uplink: answers ARP for PEER_IP and ICMP echo."""

    def __init__(self, sock, sim_port):
        super().__init__(daemon=True)
        self.sock, self.dest = sock, ("127.0.0.1", sim_port)
        self.running = True
        self.echoes = 0

    def run(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                f = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(f) < 42:
                continue
            eth_src, etype = f[6:12], f[12:14]
            if etype == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == PEER_IP:
                arp = b"\x00\x01\x08\x00\x06\x04\x00\x02" + PEER_MAC + PEER_IP + f[22:28] + f[28:32]
                self.send(eth_src + PEER_MAC + b"\x08\x06" + arp)
            elif etype == b"\x08\x00" and f[23] == 1 and f[30:34] == PEER_IP and f[34] == 8:
                ihl = (f[14] & 15) * 4
                ip = bytearray(f[14:14 + ihl])
                ip[12:16], ip[16:20] = f[30:34], f[26:30]
                ip[10:12] = b"\0\0"
                ip[10:12] = struct.pack("!H", csum(bytes(ip)))
                icmp = bytearray(f[14 + ihl:14 + struct.unpack("!H", f[16:18])[0]])
                icmp[0], icmp[2:4] = 0, b"\0\0"
                icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
                self.send(eth_src + PEER_MAC + b"\x08\x00" + bytes(ip) + bytes(icmp))
                self.echoes += 1

    def send(self, frame):
        try:
            self.sock.sendto(frame, self.dest)
        except OSError:
            pass


FLOOD = r"""
import socket, sys, time
s = socket.socket(fileno=int(sys.argv[1]))
dest, dst, rate = ("127.0.0.1", int(sys.argv[2])), bytes.fromhex(sys.argv[3]), int(sys.argv[4])
frames = [dst + bytes([2, 0xfe, 0, 0, 0, k]) + b"\x88\xb5" + bytes([k]) * 100 for k in range(64)]
i, t0 = 0, time.time()
while True:
    for f in frames[:16]:
        try:
            s.sendto(frames[i % 64], dest)
        except OSError:
            pass
        i += 1
    ahead = i / rate - (time.time() - t0)
    if ahead > 0:
        time.sleep(ahead)
"""


def start_flood(work, peer_sock, sim_port):
    """Frames to the guest's MAC through the sim's uplink, from the peer's socket."""
    return spawn([sys.executable, "-c", FLOOD, str(peer_sock.fileno()), str(sim_port), GUEST_MAC.replace(":", ""),
                  str(FLOOD_RATE)], os.path.join(work, "flood.log"), pass_fds=[peer_sock.fileno()])


def ping(g, count=3):
    rc, out = g.run("ping -c %d -W 3 %s" % (count, socket.inet_ntoa(PEER_IP)), timeout=60)
    if rc != 0:
        raise GuestError("%s: ping failed:\n%s" % (g.name, out))


def every_ring_moves(rpc, vf, g, queues, what):
    """Traffic on every ring: a ping from each vCPU (TX queue = CPU) and the
    flood, whose source addresses spread over the RX queues."""
    before = ring_indices(rpc, vf)
    for cpu in range(queues):
        rc, out = g.run("taskset -c %d ping -c 2 -i 0.2 -W 3 %s" % (cpu, socket.inet_ntoa(PEER_IP)), timeout=60)
        if rc:
            raise GuestError("%s: ping from cpu %d failed:\n%s" % (g.name, cpu, out))
    time.sleep(0.5)
    after = ring_indices(rpc, vf)
    idle = [r for r in range(2 * queues) if after.get(r) is None or after.get(r) == before.get(r)]
    if idle:
        raise GuestError("%s: rings %s carried no traffic (used idx before %s, after %s)" % (what, idle, before, after))
    log("%s: all %d rings carried traffic (used idx %s)" % (what, 2 * queues, after))


def migrate_once(work, kernel, initrd, root, rpc, socks, peer_sock, sim_port, queues, slow_admin, n):
    tag = "%s-%d" % ("mq" if queues > 1 else "slow-admin", n)
    port = free_port()
    src = Guest("src-" + tag, work, kernel, initrd, socks[0], GUEST_MAC, GUEST_IP + "/24", smp=queues,
                queues=queues, qmp=True)
    dst = Guest("dst-" + tag, work, kernel, initrd, socks[1], GUEST_MAC, GUEST_IP + "/24", smp=queues,
                queues=queues, qmp=True, incoming="tcp:127.0.0.1:%d" % port)
    flood = None
    qs = qd = None
    try:
        src.boot(120, log)
        ping(src)
        qs = Qmp(src.qmp_path)
        if queues > 1:
            flood = start_flood(work, peer_sock, sim_port)
            every_ring_moves(rpc, VF1, src, queues, tag + " source")
        dst.start()
        qd = Qmp(dst.qmp_path)
        if flood is None:
            flood = start_flood(work, peer_sock, sim_port)
        # the guest transmits too: its tx used ring is written while the migration runs
        rc, out = src.run("ping -q -i 0.05 %s >/dev/null 2>&1 &" % socket.inet_ntoa(PEER_IP))
        if rc:
            raise GuestError("%s: background ping: %s" % (tag, out))
        time.sleep(0.5)
        rx0 = sim_ctl(root, {"cmd": "counters", "bdf": VF1})["rx_packets"]
        if slow_admin:
            sim_ctl(root, {"cmd": "fault", "type": "admin_slow", "ms": SLOW_ADMIN_MS})
        qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
        qs.call("migrate", uri="tcp:127.0.0.1:%d" % port)
        st = wait_migrated_paused(qs, qd, tag)
        stop(flood)
        if slow_admin:
            sim_ctl(root, {"cmd": "fault", "type": "clear"})
        rx = sim_ctl(root, {"cmd": "counters", "bdf": VF1})["rx_packets"] - rx0
        if rx < 1000:
            raise GuestError("%s: only %d frames reached the guest during the migration" % (tag, rx))
        ram_src, ram_dst = guest_ram_fd(src.proc.pid, RAM), guest_ram_fd(dst.proc.pid, RAM)
        bad = differing_pages(ram_src, ram_dst, RAM)
        log("%s: migrated in %.1f s (downtime %s ms) under %d received frames: %d of %d guest pages differ"
            % (tag, st.get("total-time", 0) / 1000., st.get("downtime"), rx, len(bad), RAM // 4096))
        if bad:
            for line in describe_pages(ram_src, ram_dst, bad):
                log(line)
            return bad   # a spoiled run: its guest is not resumed
        qd.call("cont")
        ping(dst)
        log("%s: the migrated guest pings through %s" % (tag, VF2))
        if queues > 1:
            flood = start_flood(work, peer_sock, sim_port)
            every_ring_moves(rpc, VF2, dst, queues, tag + " destination")
            stop(flood)
        return []
    finally:
        if flood:
            stop(flood)
        for q in (qs, qd):
            if q:
                q.close()
        src.stop()
        dst.stop()


def scenario(work, kernel, initrd, queues, slow_admin, loops):
    name = "mq" if queues > 1 else "slow-admin"
    root = os.path.join(work, "root-" + name)
    peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer_sock.bind(("127.0.0.1", 0))
    sim_port = free_port(socket.SOCK_DGRAM)
    sim = spawn([SIM, "--root", root, "--pf", PF, "--vfs", "2", "--uplink",
                 "udp:%d,127.0.0.1:%d" % (sim_port, peer_sock.getsockname()[1])]
                + (["--dirty-tracking", DIRTY] if DIRTY else []), os.path.join(work, "sim.log"))
    wait_file(os.path.join(root, "ready"))
    rpc = os.path.join(work, "vhostd-%s.sock" % name)
    vhostd = spawn([VHOSTD, "--no-state", "--pci-root", root, "--rpc", rpc, "--iface", os.path.join(work, "vf-")]
                   + (["--no-host-notifiers"] if os.environ.get("VFE_MIGRATION_NO_NOTIFIERS") else []),
                   os.path.join(work, "vhostd-%s.log" % name))
    wait_file(rpc)
    peer = Peer(peer_sock, sim_port)
    peer.start()
    try:
        mgmt(rpc, "mgmtpf", "-a", PF)
        socks = [os.path.join(work, "%s-%s.sock" % (name, s)) for s in ("src", "dst")]
        mgmt(rpc, "vf", "-a", VF1, "-v", socks[0], "-u", "vm-src")
        mgmt(rpc, "vf", "-a", VF2, "-v", socks[1], "-u", "vm-dst")
        # QEMU 7.2 under TCG itself loses a few pages the guest CPU wrote in
        # about 1 of 20 migrations under vhost-user RX load, with DPDK testpmd
        # as the back-end as well (docs/design-notes.md): a run with differing
        # pages is retried, up to a tenth of the runs; more fail the test.
        spoiled, allowed, n = [], max(1, loops // 10), 0
        while n - len(spoiled) < loops:
            bad = migrate_once(work, kernel, initrd, root, rpc, socks, peer_sock, sim_port, queues, slow_admin, n)
            n += 1
            if bad:
                spoiled.append((n - 1, len(bad)))
                if len(spoiled) > allowed:
                    raise GuestError("%s: guest pages differ in %d of %d migrations (run, pages): %s; at most %d "
                                     "allowed for QEMU's own losses" % (name, len(spoiled), n, spoiled, allowed))
                log("%s: run %d spoiled (%d pages differ): run again" % (name, n - 1, len(bad)))
        log("%s: %d clean migrations, %d spoiled runs %s" % (name, loops, len(spoiled), spoiled))
        for vf in (VF1, VF2):
            mgmt(rpc, "vf", "-r", vf)
    finally:
        peer.running = False
        peer.join(2)
        stop(vhostd)
        stop(sim)
        peer_sock.close()
    if vhostd.returncode or sim.returncode:
        raise GuestError("exit status: vhostd %s, sim %s" % (vhostd.returncode, sim.returncode))
    if DIRTY in DIRTY_LOG_LINE:
        with open(os.path.join(work, "vhostd-%s.log" % name), errors="replace") as f:
            text = f.read()
        if DIRTY_LOG_LINE[DIRTY] not in text:
            raise GuestError("%s: the sim tracks %s but vfe-vhostd never said '%s'" % (name, DIRTY,
                                                                                      DIRTY_LOG_LINE[DIRTY]))
        # software mode: overruns (all memory marked dirty) are warned about at most once a second
        log("%s: dirty pages tracked %s; overrun warnings: %d" % (
            name, "in software" if DIRTY == "none" else "in pull mode", text.count("overruns so far")))


def main():
    loops = int(os.environ.get("VFE_MIGRATION_LOOPS", "1"))
    only = os.environ.get("VFE_MIGRATION_ONLY", "")

    def body(work, kernel, initrd):
        if os.environ.get("VFE_MIGRATION_HOG"):
            hog = spawn([sys.executable, "-c", "while True: pass"], os.devnull)
            log("CPU hog running (pid %d)" % hog.pid)
        if only in ("", "slow-admin"):
            scenario(work, kernel, initrd, queues=1, slow_admin=True, loops=loops)
        if only in ("", "mq"):
            scenario(work, kernel, initrd, queues=4, slow_admin=False, loops=loops)
    return run_test("vfe-migration-", body)


if __name__ == "__main__":
    sys.exit(main())
