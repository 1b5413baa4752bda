#!/usr/bin/env python3
"""Bench (not a test): bulk provisioning with vf_batch against one VF per call.
For 256 VFs (1 PF) and 1024 VFs (4 PFs x 256), with the provisioning file on:
  single  one `vf` add call per VF (what vhostmgmt script mode did before)
  script  vhostmgmt script mode (consecutive `vf -a` lines as vf_batch calls)
  batch   one vf_batch call, while a second client calls `version` in a loop:
          that call's latency (median, p99, max) is the "daemon never stalls" figure
Each: total time, per VF, state file writes, daemon RSS.  Prints one JSON object.
   bench/batch.py [BUILD_DIR]     (BENCH_DIR: where sockets go, default $TMPDIR;
   a tmpfs such as /dev/shm is what /run is in production)"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SIM = os.path.join(BUILD, "sim/vfe-dpu-sim")
VHOSTD = os.path.join(BUILD, "app/vfe-vdpa/vfe-vhostd")
MGMT = os.path.join(BUILD, "tools/vhostmgmt/vhostmgmt")


def rpc(path, method, params=None, sock=None):
    s = sock or socket.socket(socket.AF_UNIX)
    if not sock:
        s.connect(path)
    s.sendall((json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}) + "\n").encode())
    if sock:
        return None
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    s.close()
    return json.loads(buf)


def vf_bdf(pf_rid, n):
    rid = pf_rid + n
    return "0000:%02x:%02x.%x" % (rid >> 8, (rid >> 3) & 0x1F, rid & 7)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def wait(path):
    for _ in range(400):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError(path + " did not appear")


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def run(npf, per_pf, mode, base):
    work = tempfile.mkdtemp(prefix="vfe-bench-batch-", dir=base)
    pfs = [0x3B00 + 0x200 * i for i in range(npf)]
    args = [SIM, "--root", work + "/root", "--total-vfs", "256", "--log-level", "warning"]
    for p in pfs:
        args += ["--pf", "0000:%02x:00.0" % (p >> 8), "--vfs", str(per_pf)]
    sim = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    d = None
    try:
        wait(work + "/root/ready")
        path = work + "/rpc.sock"
        d = subprocess.Popen([VHOSTD, "--pci-root", work + "/root", "--rpc", path, "--iface", work + "/v-",
                              "--state-dir", work + "/state", "--log-level", "warning"], stderr=subprocess.DEVNULL)
        wait(path)
        for p in pfs:
            rpc(path, "mgmtpf", {"add": True, "dev": "0000:%02x:00.0" % (p >> 8)})
        writes0 = rpc(path, "health")["result"]["state"]["writes"]
        vfs = [vf_bdf(p, i) for p in pfs for i in range(1, per_pf + 1)]
        lat = []
        t0 = time.perf_counter()
        if mode == "single":
            for v in vfs:
                assert "result" in rpc(path, "vf", {"add": True, "vfdev": v})
        elif mode == "script":
            subprocess.run([MGMT, "-s", path], input="".join("vf -a %s\n" % v for v in vfs), text=True, check=True,
                           capture_output=True)
        else:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            rpc(path, "vf_batch", {"ops": [{"add": True, "vfdev": v} for v in vfs]}, sock=s)
            s.setblocking(False)
            buf = b""
            while not buf.endswith(b"\n"):
                t = time.perf_counter()
                rpc(path, "version")
                lat.append((time.perf_counter() - t) * 1000)
                try:
                    while True:
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            break
                        buf += chunk
                except BlockingIOError:
                    pass
            res = json.loads(buf)["result"]
            assert res["failed"] == 0, res
        dt = time.perf_counter() - t0
        h = rpc(path, "health")["result"]
        assert h["vfs"] == len(vfs), h
        out = {"mode": mode, "vfs": len(vfs), "pfs": npf, "provision_s": round(dt, 3),
               "per_vf_ms": round(dt * 1000 / len(vfs), 2), "state_writes": h["state"]["writes"] - writes0,
               "daemon_rss_kib": rss_kib(d.pid)}
        if lat:
            out.update({"version_calls": len(lat), "version_ms_median": round(statistics.median(lat), 2),
                        "version_ms_p99": round(pct(lat, 0.99), 2), "version_ms_max": round(max(lat), 2)})
        return out
    finally:
        for p in (d, sim):
            if p:
                p.terminate()
                p.wait(30)
        shutil.rmtree(work, ignore_errors=True)


def main():
    base = os.environ.get("BENCH_DIR")
    results = [run(npf, 256, mode, base) for npf in (1, 4) for mode in ("single", "script", "batch")]
    print(json.dumps({"bench": "batch", "sockets_in": base or tempfile.gettempdir(), "results": results}))


if __name__ == "__main__":
    main()
