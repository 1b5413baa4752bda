#!/usr/bin/env python3
"""After a live migration the network finds the guest at once (issue 10).

The sim's switch is a learning bridge: the guest's MAC stays on the source VF
(stopped) until something from the guest is seen on the destination, or for
300 s.  A guest that does not transmit is reachable after `cont` only if it is
announced.  Scenarios (QEMU TCG guests, each prints one result line):
  guest-announce: a silent guest (static neighbour entry, IPv6 off) on VF1,
              pinged every 10 ms by this test from the sim's uplink, migrated
              to VF2 (destination paused until `cont`); GUEST_ANNOUNCE is
              negotiated (vfe offers it): QEMU has the guest send gratuitous
              ARPs.  The first echo reply must come <= 100 ms after `cont`.
  rarp:       the same with guest_announce=off on both QEMUs: QEMU sends
              SEND_RARP when the migration completes (the guest still paused),
              vfe has the device send a RARP once the destination VF runs.
              <= 100 ms after `cont`.
  two-hosts:  two sims joined by their UDP uplinks (different --mac-prefix),
              each with its own vfe-vhostd, root, sockets and state; a peer
              guest on host A pings the migrating guest every 10 ms while it
              moves from host A to host B; guest RAM identical before `cont`;
              the peer keeps reaching it (loss reported, and a ping after).
VFE_ANNOUNCE_ONLY=a,b selects scenarios.  VFE_ANNOUNCE_NONE=1 runs `rarp` on
a sim speaking only the virtio admin dialect (the device cannot announce): no
one announces the silent guest and the test must fail; it shows that the
100 ms check can fail.  Exit 0 pass, 1 fail, 77 skipped."""
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError, Qmp, differing_pages, guest_ram_fd, ping_summary  # noqa: E402
from vfe_harness import (run_test, SIM, VHOSTD, log, mgmt, poll, spawn, stop, vf_stats, wait_file,  # noqa: E402
                         wait_log, wait_migrated_paused)

PF = "0000:3b:00.0"
VFS = ["0000:3b:00.%d" % i for i in range(1, 5)]
RAM = 256 << 20
GUEST_MAC, GUEST_IP = "52:54:00:00:00:3a", "10.0.0.1"
PEER_GUEST_MAC, PEER_GUEST_IP = "52:54:00:00:02:3a", "10.0.0.3"
UPLINK_MAC, UPLINK_IP = bytes.fromhex("020000000099"), socket.inet_aton("10.0.0.2")
LIMIT_MS = 100
ALL = ["guest-announce", "rarp", "two-hosts"]
NONE = os.environ.get("VFE_ANNOUNCE_NONE") == "1"
results = []


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff


class Host:
    """One host: a sim (PF, 4 VFs, a UDP uplink) and its own vfe-vhostd,
    every file under its own prefix in the work dir."""

    def __init__(self, work, tag, uplink, mac_prefix, dialect="both"):
        self.work, self.tag = work, tag
        self.root = os.path.join(work, tag + "root")
        self.rpc = os.path.join(work, tag + "vhostd.sock")
        self.sim = spawn([SIM, "--root", self.root, "--pf", PF, "--vfs", str(len(VFS)), "--uplink", uplink,
                          "--mac-prefix", mac_prefix, "--admin-dialect", dialect],
                         os.path.join(work, tag + "sim.log"))
        wait_file(os.path.join(self.root, "ready"))
        self.log_path = os.path.join(work, tag + "vhostd.log")
        self.vhostd = spawn([VHOSTD, "--state-dir", os.path.join(work, tag + "state"), "--pci-root", self.root,
                             "--rpc", self.rpc, "--iface", os.path.join(work, tag + "vf-"), "--log-level", "info"],
                            self.log_path)
        wait_log(self.log_path, "ready: RPC", 15)
        mgmt(self.rpc, "mgmtpf", "-a", PF)
        self.socks = {}
        for i, vf in enumerate(VFS):
            self.socks[vf] = os.path.join(work, "%svf%d.sock" % (tag, i + 1))
            mgmt(self.rpc, "vf", "-a", vf, "-v", self.socks[vf], "-u", "vm-%d" % i)

    def stop(self):
        if self.vhostd.poll() is None:
            for vf in VFS:
                try:
                    mgmt(self.rpc, "vf", "-r", vf)
                except GuestError as e:
                    log("cleanup: %s" % e)
        stop(self.vhostd)
        stop(self.sim)
        codes = {"sim": self.sim.returncode, "vhostd": self.vhostd.returncode}
        if any(codes.values()):
            raise GuestError("%sexit status: %s" % (self.tag, codes))


class NoAnnounceGuest(Guest):
    """A guest whose virtio-net device has guest_announce=off: QEMU cannot
    have the guest announce itself and sends SEND_RARP instead."""

    def cmdline(self):
        return [a + ",guest_announce=off" if a.startswith("virtio-net-pci,") else a for a in super().cmdline()]


class Pinger(threading.Thread):
    """The host on the sim's uplink (UPLINK_IP): answers ARP and sends an ICMP
    echo request to the guest every 10 ms; records when each reply came."""

    def __init__(self, sock, sim_port):
        super().__init__(daemon=True)
        self.sock, self.dest = sock, ("127.0.0.1", sim_port)
        self.running = True
        self.seq = 0
        self.replies = []          # (time received, seq)
        self.dst_mac = bytes.fromhex(GUEST_MAC.replace(":", ""))

    def echo(self, seq):
        icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x7a7a, seq) + b"vfe-announce".ljust(32, b"."))
        icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0, UPLINK_IP,
                                   socket.inet_aton(GUEST_IP)))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
        return self.dst_mac + UPLINK_MAC + b"\x08\x00" + bytes(ip) + bytes(icmp)

    def handle(self, f):
        if len(f) < 42:
            return
        etype = f[12:14]
        if etype == b"\x08\x06" and f[20:22] == b"\x00\x01" and f[38:42] == UPLINK_IP:
            arp = b"\x00\x01\x08\x00\x06\x04\x00\x02" + UPLINK_MAC + UPLINK_IP + f[22:28] + f[28:32]
            self.send(f[6:12] + UPLINK_MAC + b"\x08\x06" + arp)
        elif etype == b"\x08\x00" and f[23] == 1 and f[30:34] == UPLINK_IP and f[34] == 0 and len(f) >= 42:
            ident, seq = struct.unpack("!HH", f[38:42])
            if ident == 0x7a7a:
                self.replies.append((time.time(), seq))

    def run(self):
        nxt = time.time()
        while self.running:
            now = time.time()
            if now >= nxt:
                self.seq = (self.seq + 1) & 0xffff
                self.send(self.echo(self.seq))
                nxt += 0.01
                if nxt < now:
                    nxt = now + 0.01
            self.sock.settimeout(max(0.0005, nxt - time.time()))
            try:
                self.handle(self.sock.recv(65536))
            except socket.timeout:
                continue
            except OSError:
                return

    def send(self, frame):
        try:
            self.sock.sendto(frame, self.dest)
        except OSError:
            pass

    def replies_after(self, t):
        return [r for r in list(self.replies) if r[0] > t]


def silence(g):
    """The guest transmits nothing by itself: no IPv6, a static neighbour.
    It says where it is once, as a booting host does (a gratuitous ARP): the
    switch may still send its MAC to a port of an earlier scenario."""
    rc, out = g.run("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
                    "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6; "
                    "arp -i eth0 -s %s %s; arping -U -c 1 -I eth0 %s"
                    % (socket.inet_ntoa(UPLINK_IP), UPLINK_MAC.hex(":"), GUEST_IP))
    if rc:
        raise GuestError("%s: cannot silence the guest: %s" % (g.name, out))


def migrate(what, qs, qd, port, src, dst):
    """Migrate and wait until it completed and the destination is paused;
    returns the number of differing guest pages (both paused)."""
    qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
    qs.call("migrate", uri="tcp:127.0.0.1:%d" % port)
    st = wait_migrated_paused(qs, qd, what, 120)
    bad = differing_pages(guest_ram_fd(src.proc.pid, RAM), guest_ram_fd(dst.proc.pid, RAM), RAM)
    log("%s: migrated in %.1f s (downtime %s ms), %d guest pages differ"
        % (what, st.get("total-time", 0) / 1000., st.get("downtime"), len(bad)))
    return bad


def s_silent(name, host, pinger, vs, vd, work, kernel, initrd, cls):
    """A silent guest pinged from the uplink, migrated vs -> vd: ms from cont to the first reply."""
    port = free_port()
    src = cls(name + "-src", work, kernel, initrd, host.socks[vs], GUEST_MAC, GUEST_IP + "/24", qmp=True)
    dst = cls(name + "-dst", work, kernel, initrd, host.socks[vd], GUEST_MAC, GUEST_IP + "/24", qmp=True,
              incoming="tcp:127.0.0.1:%d" % port)
    qs = qd = None
    try:
        src.boot(120, log)
        silence(src)
        t = time.time()
        poll("%s: echo replies from the guest on %s" % (name, vs), lambda: len(pinger.replies_after(t)) >= 5, 30)
        dst.start()
        qs, qd = Qmp(src.qmp_path), Qmp(dst.qmp_path)
        poll("%s: destination connected" % name, lambda: vf_stats(host.rpc, vd)["vhost_user"] == "connected")
        bad = migrate(name, qs, qd, port, src, dst)
        time.sleep(1.0)     # QEMU's announce rounds (SEND_RARP) run now, the guest paused
        stopped = pinger.seq
        if pinger.replies_after(time.time() - 0.5):
            raise GuestError("%s: echo replies while both guests are paused" % name)
        t_cont = time.time()
        qd.call("cont")
        try:
            poll("%s: an echo reply after cont" % name, lambda: pinger.replies_after(t_cont), 10, 0.005)
        except GuestError:
            raise GuestError("%s: no echo reply within 10 s of cont: the network did not find the guest on %s "
                             "(announce stats %s)" % (name, vd, vf_stats(host.rpc, vd).get("announce")))
        first = pinger.replies_after(t_cont)[0]
        ms = (first[0] - t_cont) * 1000
        time.sleep(0.5)
        answered = set(seq for _, seq in pinger.replies_after(t_cont))
        end = pinger.seq
        lost = sum(1 for k in range(stopped + 1, end + 1) if (k & 0xffff) not in answered)
        ann = vf_stats(host.rpc, vd)["announce"]
        log("%s: first echo reply %.1f ms after cont (limit %d ms); %d requests unanswered since cont; %d pages "
            "differ; announce stats on %s: %s" % (name, ms, LIMIT_MS, lost, len(bad), vd, ann))
        results.append((name, ms, len(bad), lost))
        if bad:
            raise GuestError("%s: %d guest pages differ" % (name, len(bad)))
        if ms > LIMIT_MS:
            raise GuestError("%s: the first echo reply came %.1f ms after cont, more than %d ms" % (name, ms,
                                                                                                   LIMIT_MS))
        if cls is NoAnnounceGuest and ann["sent"] < 1:
            raise GuestError("%s: QEMU's SEND_RARP did not make the device announce: %s" % (name, ann))
    finally:
        for q in (qs, qd):
            if q:
                q.close()
        src.stop()
        dst.stop()


def bg_ping(g, name):
    rc, out = g.run("ping -q -i 0.01 %s > /tmp/ping.out 2>&1 & echo $! > /tmp/ping.pid" % GUEST_IP)
    if rc:
        raise GuestError("%s: background ping: %s" % (name, out))


def bg_ping_end(g):
    """Stop the background ping: (transmitted, received)."""
    g.run("kill -INT $(cat /tmp/ping.pid); sleep 0.5")
    rc, out = g.run("cat /tmp/ping.out")
    return ping_summary(out)


def s_two_hosts(work, kernel, initrd):
    name = "two-hosts"
    pa, pb = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    a = Host(work, "ha-", "udp:%d,127.0.0.1:%d" % (pa, pb), "02:fe:00:0a")
    b = None
    guests, qmps = [], []
    try:
        b = Host(work, "hb-", "udp:%d,127.0.0.1:%d" % (pb, pa), "02:fe:00:0b")
        port = free_port()
        peer = Guest(name + "-peer", work, kernel, initrd, a.socks[VFS[1]], PEER_GUEST_MAC, PEER_GUEST_IP + "/24",
                     qmp=True)
        src = Guest(name + "-src", work, kernel, initrd, a.socks[VFS[0]], GUEST_MAC, GUEST_IP + "/24", qmp=True)
        dst = Guest(name + "-dst", work, kernel, initrd, b.socks[VFS[0]], GUEST_MAC, GUEST_IP + "/24", qmp=True,
                    incoming="tcp:127.0.0.1:%d" % port)
        guests += [peer, src, dst]
        peer.boot(120, log)
        src.boot(120, log)
        rc, out = peer.run("ping -c 3 -W 3 %s" % GUEST_IP, timeout=60)
        if rc:
            raise GuestError("%s: the peer does not reach the guest before the migration:\n%s" % (name, out))
        dst.start()
        qs, qd = Qmp(src.qmp_path), Qmp(dst.qmp_path)
        qmps += [qs, qd]
        poll("%s: destination connected" % name, lambda: vf_stats(b.rpc, VFS[0])["vhost_user"] == "connected")
        bg_ping(peer, name)
        time.sleep(1)
        bad = migrate(name, qs, qd, port, src, dst)
        sent, got = bg_ping_end(peer)
        log("%s: the peer on host A pinged every 10 ms until the migration completed: %d sent, %d answered"
            % (name, sent, got))
        results.append((name + " pages", None, len(bad), None))
        if bad:
            raise GuestError("%s: %d guest pages differ" % (name, len(bad)))
        bg_ping(peer, name)
        t_cont = time.time()
        qd.call("cont")
        time.sleep(3)
        sent, got = bg_ping_end(peer)
        log("%s: from cont on, the peer on host A pinged every 10 ms: %d sent, %d answered, %d lost (about %d ms "
            "unreachable)" % (name, sent, got, sent - got, (sent - got) * 10))
        if got == 0:
            raise GuestError("%s: the peer never reached the guest on host B after cont" % name)
        rc, out = peer.run("ping -c 5 -i 0.1 -W 2 %s" % GUEST_IP, timeout=60)
        if rc:
            raise GuestError("%s: the peer no longer reaches the guest on host B:\n%s" % (name, out))
        tx = vf_stats(b.rpc, VFS[0])["rings_running"]
        log("%s: after cont the peer reaches the guest on host B (%d rings running there); %.1f s since cont"
            % (name, tx, time.time() - t_cont))
        results.append((name + " after cont", None, len(bad), sent - got))
    finally:
        for q in qmps:
            q.close()
        for g in guests:
            g.stop()
        if b:
            b.stop()
        a.stop()


def main():
    only = [x for x in os.environ.get("VFE_ANNOUNCE_ONLY", "").split(",") if x] or (["rarp"] if NONE else ALL)
    unknown = set(only) - set(ALL)
    if unknown:
        print("VFE_ANNOUNCE_ONLY: unknown scenarios %s (known: %s)" % (sorted(unknown), ALL))
        return 1

    def body(work, kernel, initrd):
        if "guest-announce" in only or "rarp" in only:
            peer_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer_sock.bind(("127.0.0.1", 0))
            sim_port = free_port(socket.SOCK_DGRAM)
            host = Host(work, "", "udp:%d,127.0.0.1:%d" % (sim_port, peer_sock.getsockname()[1]), "02:fe:00:00",
                        "virtio" if NONE else "both")
            pinger = Pinger(peer_sock, sim_port)
            pinger.start()
            try:
                if "guest-announce" in only:
                    s_silent("guest-announce", host, pinger, VFS[0], VFS[1], work, kernel, initrd, Guest)
                if "rarp" in only:
                    s_silent("rarp" + (" (device cannot announce)" if NONE else ""), host, pinger, VFS[2], VFS[3],
                             work, kernel, initrd, NoAnnounceGuest)
            finally:
                pinger.running = False
                pinger.join(2)
                peer_sock.close()
                host.stop()
        if "two-hosts" in only:
            s_two_hosts(work, kernel, initrd)
        print("SUMMARY " + "; ".join("%s: %s ms, %s pages differ, %s lost" % (n, "%.1f" % ms if ms is not None
                                                                                else "-", bad, lost)
                                     for n, ms, bad, lost in results), flush=True)

    return run_test("vfe-announce-", body)


if __name__ == "__main__":
    sys.exit(main())
