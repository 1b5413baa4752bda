#!/usr/bin/env python3
"""End to end with real QEMU: the sim with a PF and 3 VFs, vfe-vhostd, vhostmgmt
provisioning, two TCG guests on the VFs' sockets ping each other; guest a has
a second NIC on a VF of the same VM (one DMA domain) and pings through it too;
one guest reboots and pings again; QEMU is killed and restarted on the same
socket and pings again; the same with the daemon in vhost-user client mode
(QEMU server=on).
Exit 0 pass, 1 fail, 77 skipped (no qemu)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError  # noqa: E402
from vfe_harness import run_test, SIM, VHOSTD, log, mgmt, sim_ctl, spawn, stop, vf_stats, wait_file  # noqa: E402

PF, VF1, VF2, VF3 = "0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3"


def ping(a, b_ip, count=3):
    rc, out = a.run("ping -c %d -W 3 %s" % (count, b_ip), timeout=40)
    if rc != 0:
        raise GuestError("%s: ping %s failed:\n%s" % (a.name, b_ip, out))
    return out


def sim_counter(root, bdf, key):
    return sim_ctl(root, {"cmd": "counters", "bdf": bdf})[key]


def domain(rpc, vf):
    return vf_stats(rpc, vf)["dma_domain"]


def second_nic(rpc, a, b, mode):
    """Guest a's second NIC is on VF3, in the DMA domain of VF1 (same VM):
    both carry traffic, and the domain holds one set of maps for both."""
    rc, out = a.run("for i in 1 2 3 4 5 6 7 8 9 10; do [ -e /sys/class/net/eth1 ] && break; sleep 0.5; done; "
                    "ip link set eth1 up && ip addr add 10.0.1.1/24 dev eth1")
    if rc:
        raise GuestError("guest a: eth1 setup failed:\n" + out)
    rc, out = b.run("ip addr add 10.0.1.2/24 dev eth0")
    if rc:
        raise GuestError("guest b: second address failed:\n" + out)
    ping(a, "10.0.1.2")
    sent = vf_stats(rpc, VF3)["counters"]["tx_packets"]
    if sent < 3:
        raise GuestError("VF3 sent %d frames for 3 pings" % sent)
    d1, d3 = domain(rpc, VF1), domain(rpc, VF3)
    if d1["members"] != 2 or d1["maps"] != d3["maps"] or d1["maps"] < 1 or domain(rpc, VF2)["members"] != 1:
        raise GuestError("DMA domains: VF1 %s, VF3 %s, VF2 %s" % (d1, d3, domain(rpc, VF2)))
    log("%s mode: guest a pings through its second NIC (VF3, same DMA domain as VF1: %d maps)" % (mode, d1["maps"]))


def scenario(work, kernel, initrd, client):
    mode = "client" if client else "server"
    root = os.path.join(work, "root-" + mode)
    sim = spawn([SIM, "--root", root, "--pf", PF, "--vfs", "3"], os.path.join(work, "sim-%s.log" % mode))
    wait_file(os.path.join(root, "ready"))
    rpc = os.path.join(work, "vhostd-%s.sock" % mode)
    args = [VHOSTD, "--no-state", "--pci-root", root, "--rpc", rpc, "--iface", os.path.join(work, "%s-vf-" % mode)]
    vhostd = spawn(args + (["--client"] if client else []), os.path.join(work, "vhostd-%s.log" % mode))
    wait_file(rpc)
    mgmt(rpc, "mgmtpf", "-a", PF)
    socks = [os.path.join(work, "%s-%s.sock" % (mode, n)) for n in ("a", "b", "a2")]
    mgmt(rpc, "vf", "-a", VF1, "-v", socks[0], "-u", "vm-a")
    mgmt(rpc, "vf", "-a", VF2, "-v", socks[1], "-u", "vm-b")
    mgmt(rpc, "vf", "-a", VF3, "-v", socks[2], "-u", "vm-a")
    log("%s mode: provisioned %s and %s for guest a, %s for guest b" % (mode, VF1, VF3, VF2))
    a = Guest("a-" + mode, work, kernel, initrd, socks[0], "52:54:00:00:00:0a", "10.0.0.1/24", client, reboot=True,
              more_nics=[(socks[2], "52:54:00:00:01:0a")])
    b = Guest("b-" + mode, work, kernel, initrd, socks[1], "52:54:00:00:00:0b", "10.0.0.2/24", client)
    try:
        a.start()
        b.start()
        a.wait_ready()
        b.wait_ready()
        log("%s mode: both guests up" % mode)
        ping(a, "10.0.0.2")
        ping(b, "10.0.0.1")
        log("%s mode: guests ping each other through the VFs" % mode)
        stats = mgmt(rpc, "stats", VF1)
        if "running" not in stats:
            raise GuestError("VF1 not running while pinging:\n" + stats)
        # QEMU mapped the doorbell pages vfe offered: the guest kicked the device directly
        offered = vf_stats(rpc, VF1)["host_notifiers"]
        direct = sim_counter(root, VF1, "mapped_doorbell_kicks")
        if offered != 2 or direct == 0:
            raise GuestError("host notifiers: %d offered, %d guest kicks through them" % (offered, direct))
        log("%s mode: guest kicks reach the device through host notifiers (%d)" % (mode, direct))
        second_nic(rpc, a, b, mode)
        a.sock.sendall(b"reboot -f\n")
        a.expect("VFE-GUEST-READY", 120)
        a.expect("\n", 5)
        ping(a, "10.0.0.2")
        log("%s mode: guest a rebooted and pings again" % mode)
        a.kill()
        a.start()
        a.wait_ready()
        ping(a, "10.0.0.2")
        log("%s mode: qemu of guest a killed and restarted, pings again" % mode)
    finally:
        a.stop()
        b.stop()
        for vf in (VF1, VF2, VF3):
            mgmt(rpc, "vf", "-r", vf)
        stop(vhostd)
        stop(sim)
    if vhostd.returncode or sim.returncode:
        raise GuestError("exit status: vhostd %s, sim %s" % (vhostd.returncode, sim.returncode))


def main():
    def body(work, kernel, initrd):
        scenario(work, kernel, initrd, client=False)
        scenario(work, kernel, initrd, client=True)
    return run_test("vfe-guests-", body)


if __name__ == "__main__":
    sys.exit(main())
