#!/usr/bin/env python3
"""Dynamic MSI-X with real QEMU: the sim's PF pool is reclaimed, two VFs are
sized for 2 queue pairs (6 vectors each) and two TCG guests with 2 vCPUs and
queues=2 ping each other over both pairs' rings; a third VF sized for 1 pair
is refused by QEMU started with queues=2 at negotiation (GET_QUEUE_NUM: QEMU
logs it and never brings the NIC up; no hang of the daemon, no ring started);
removing with --release-msix returns the vectors.
Exit 0 pass, 1 fail, 77 skipped (no qemu)."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError  # noqa: E402
from vfe_harness import run_test, SIM, VHOSTD, log, mgmt, spawn, stop, vf_stats, wait_file  # noqa: E402

PF, VF1, VF2, VF3 = "0000:3b:00.0", "0000:3b:00.1", "0000:3b:00.2", "0000:3b:00.3"


def pool(rpc):
    pf = json.loads(mgmt(rpc, "--json", "mgmtpf", "-l"))["devices"][0]
    return pf["msix_total"], pf["msix_free"]


def poll_log(path, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path, errors="replace") as f:
            if needle in f.read():
                return True
        time.sleep(0.2)
    return False


def scenario(work, kernel, initrd):
    root = os.path.join(work, "root")
    sim = spawn([SIM, "--root", root, "--pf", PF, "--vfs", "3", "--total-vfs", "4", "--qpairs", "1",
                 "--msix-pool", "16"], os.path.join(work, "sim.log"))
    wait_file(os.path.join(root, "ready"))
    rpc = os.path.join(work, "vhostd.sock")
    vhostd = spawn([VHOSTD, "--no-state", "--pci-root", root, "--rpc", rpc, "--iface", os.path.join(work, "vf-")],
                   os.path.join(work, "vhostd.log"))
    wait_file(rpc)
    mgmt(rpc, "mgmtpf", "-a", PF)
    mgmt(rpc, "mgmtpf", "--reclaim-msix", PF)
    if pool(rpc) != (16, 16):
        raise GuestError("pool after reclaim: %s" % (pool(rpc),))
    socks = [os.path.join(work, n + ".sock") for n in ("a", "b", "c")]
    mgmt(rpc, "vf", "-a", VF1, "-v", socks[0], "--queues", "2")
    mgmt(rpc, "vf", "-a", VF2, "-v", socks[1], "--queues", "2")
    mgmt(rpc, "vf", "-a", VF3, "-v", socks[2], "--queues", "1")
    if pool(rpc) != (16, 0):
        raise GuestError("pool after sizing 6 + 6 + 4: %s" % (pool(rpc),))
    log("VFs sized: 2, 2 and 1 queue pairs; 0 of 16 vectors free")
    a = Guest("a", work, kernel, initrd, socks[0], "52:54:00:00:00:0a", "10.0.0.1/24", smp=2, queues=2)
    b = Guest("b", work, kernel, initrd, socks[1], "52:54:00:00:00:0b", "10.0.0.2/24", smp=2, queues=2)
    c = Guest("c", work, kernel, initrd, socks[2], "52:54:00:00:00:0c", "10.0.0.3/24", smp=2, queues=2)
    try:
        a.start()
        b.start()
        a.wait_ready(180)
        b.wait_ready(180)
        rc, out = a.run("ls /sys/class/net/eth0/queues")
        if "rx-1" not in out or "tx-1" not in out:
            raise GuestError("guest a has not 2 queue pairs:\n" + out)
        rc, out = a.run("ping -c 3 -W 3 10.0.0.2", timeout=40)
        if rc:
            raise GuestError("ping a -> b failed:\n" + out)
        st = vf_stats(rpc, VF1)
        if st["rings_running"] != 4 or st["msix_vectors"] != 6 or st["queue_pairs"] != 2:
            raise GuestError("VF1 stats: rings %s, vectors %s, pairs %s" % (st["rings_running"], st["msix_vectors"],
                                                                           st["queue_pairs"]))
        log("guests with queues=2 ping each other; VF1 runs 4 rings on 6 vectors")
        # QEMU reads GET_QUEUE_NUM and refuses the netdev itself; with reconnect it retries, never booting
        c.start()
        if not poll_log(c.log_path, "more queues than supported", 30):
            raise GuestError("QEMU with queues=2 on a 1-pair VF: no refusal in %s" % c.log_path)
        if "VFE-GUEST-READY" in c.buf.decode(errors="replace"):
            raise GuestError("guest c with queues=2 booted on a VF with 1 queue pair")
        if vf_stats(rpc, VF3)["rings_running"] != 0:
            raise GuestError("VF3 runs rings for a refused front-end")
        log("QEMU with queues=2 on a 1-pair VF refused at negotiation (\"you are asking more queues than "
            "supported: 1\")")
    finally:
        a.stop()
        b.stop()
        c.stop()
    for vf in (VF1, VF2, VF3):
        mgmt(rpc, "vf", "-r", vf, "--release-msix")
    if pool(rpc) != (16, 16):
        raise GuestError("pool after --release-msix: %s" % (pool(rpc),))
    log("vectors released: 16 of 16 free")
    stop(vhostd)
    stop(sim)
    if vhostd.returncode or sim.returncode:
        raise GuestError("exit status: vhostd %s, sim %s" % (vhostd.returncode, sim.returncode))


def main():
    return run_test("vfe-msix-guest-", scenario)


if __name__ == "__main__":
    sys.exit(main())
