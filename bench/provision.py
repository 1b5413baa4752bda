#!/usr/bin/env python3
"""Bench (not a test): provisioning through vhostmgmt, end to end.
For N = 1, 64, 256 VFs: time to add them all (one vhostmgmt script), daemon
memory per provisioned VF (RSS growth), and vhostmgmt call latency.
Prints one JSON object.   bench/provision.py [BUILD_DIR]"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SIM = os.path.join(BUILD, "sim/vfe-dpu-sim")
VHOSTD = os.path.join(BUILD, "app/vfe-vdpa/vfe-vhostd")
MGMT = os.path.join(BUILD, "tools/vhostmgmt/vhostmgmt")
PF = "0000:3b:00.0"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait(path):
    for _ in range(200):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError(path + " did not appear")


def vf_bdf(n):
    rid = 0x3b00 + n
    return "0000:%02x:%02x.%x" % (rid >> 8, (rid >> 3) & 0x1f, rid & 7)


def run(n, work):
    root, rpc = os.path.join(work, "root%d" % n), os.path.join(work, "rpc%d.sock" % n)
    sim = subprocess.Popen([SIM, "--root", root, "--pf", PF, "--vfs", str(n), "--total-vfs", "256",
                            "--log-level", "warning"], stderr=subprocess.DEVNULL)
    d = None
    try:
        wait(os.path.join(root, "ready"))
        d = subprocess.Popen([VHOSTD, "--no-state", "--pci-root", root, "--rpc", rpc, "--iface", os.path.join(work, "v%d-" % n),
                              "--log-level", "warning"], stderr=subprocess.DEVNULL)
        wait(rpc)
        subprocess.run([MGMT, "-s", rpc, "mgmtpf", "-a", PF], check=True, capture_output=True)
        before = rss_kib(d.pid)
        script = "".join("vf -a %s\n" % vf_bdf(i) for i in range(1, n + 1))
        t0 = time.perf_counter()
        subprocess.run([MGMT, "-s", rpc], input=script, text=True, check=True, capture_output=True)
        dt = time.perf_counter() - t0
        after = rss_kib(d.pid)
        lat = []
        for _ in range(30):
            t = time.perf_counter()
            subprocess.run([MGMT, "-s", rpc, "version"], check=True, capture_output=True)
            lat.append((time.perf_counter() - t) * 1000)
        return {"vfs": n, "provision_s": round(dt, 3), "per_vf_ms": round(dt * 1000 / n, 2),
                "daemon_rss_kib_per_vf": round((after - before) / n, 1),
                "vhostmgmt_latency_ms_median": round(statistics.median(lat), 2)}
    finally:
        for p in (d, sim):
            if p:
                p.terminate()
                p.wait(10)


def main():
    work = tempfile.mkdtemp(prefix="vfe-bench-")
    try:
        results = [run(n, work) for n in (1, 64, 256)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"bench": "provision", "results": results}))


if __name__ == "__main__":
    main()
