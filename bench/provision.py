#!/usr/bin/env python3
"""Bench (not a test): provisioning at scale through vhostmgmt, end to end.

Layouts (PFs x VFs each): 1x256, 4x256 (1024), 1x1024, 4x1024 (4096).  For each:
time to add every VF (one vhostmgmt script; --no-state, and 1x1024 once more
with the state file, as the daemon runs by default), daemon and sim RSS, daemon fds per
VF, idle CPU over 5 s after provisioning, RPC `version` latency measured by a
second client while the VFs are being added, and the time one `stats` page of
256 and of 1024 VFs holds the loop.  Then one slow device: two sims behind one
PCI tree, PF B's admin queue delayed (sim fault admin_delay), PF A's 256 VFs
provisioned alone, next to B's without the fault, next to B's with it, and
next to 4 and to 32 of B's being added with sim B stopped (SIGSTOP: a device
that does not answer; `version` latency meanwhile).
Prints one JSON object (method and results: docs/scale.md).
    bench/provision.py [BUILD_DIR] [--quick] [--stall-only]"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
QUICK = "--quick" in sys.argv
STALL_ONLY = "--stall-only" in sys.argv
REPS = 5
BUILD = ARGS[0] if ARGS else "build"
SIM = os.path.join(BUILD, "sim/vfe-dpu-sim")
VHOSTD = os.path.join(BUILD, "app/vfe-vdpa/vfe-vhostd")
MGMT = os.path.join(BUILD, "tools/vhostmgmt/vhostmgmt")
CLK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])   # utime + stime


def wait(path, tries=400):
    for _ in range(tries):
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError(path + " did not appear")


def rid(bdf):
    _, b, df = bdf.split(":")
    d, f = df.split(".")
    return int(b, 16) << 8 | int(d, 16) << 3 | int(f, 16)


def vf_bdf(pf, n):
    """VF n of pf: routing id + First VF Offset (1) + (n-1) * VF Stride (1)."""
    r = rid(pf) + 1 + (n - 1)
    return "0000:%02x:%02x.%x" % (r >> 8, (r >> 3) & 0x1f, r & 7)


def pf_bdfs(npfs, total):
    """PFs 1 + total routing ids apart, from bus 10."""
    out, r = [], 0x1000
    for _ in range(npfs):
        out.append("0000:%02x:%02x.%x" % (r >> 8, (r >> 3) & 0x1f, r & 7))
        r += 1 + total
        r = (r + 0xff) & ~0xff   # next PF on a bus of its own
    return out


class Rpc:
    """A JSON-RPC client on the daemon's socket (one connection, kept)."""
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""
        self.id = 0

    def call(self, method, params=None):
        self.id += 1
        req = {"jsonrpc": "2.0", "method": method, "id": self.id}
        if params is not None:
            req["params"] = params
        self.s.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self.buf:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("daemon closed the RPC connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self):
        self.s.close()


def sim_start(root, pfs, vfs, total):
    argv = [SIM, "--root", root, "--total-vfs", str(total), "--log-level", "warning"]
    for pf in pfs:
        argv += ["--pf", pf, "--vfs", str(vfs)]
    p = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    wait(os.path.join(root, "ready"))
    return p


def daemon_start(root, rpc, iface, state_dir=None):
    state = ["--state-dir", state_dir] if state_dir else ["--no-state"]
    d = subprocess.Popen([VHOSTD] + state + ["--pci-root", root, "--rpc", rpc, "--iface", iface,
                          "--log-level", "warning"], stderr=subprocess.DEVNULL)
    wait(rpc)
    return d


def add_pfs(rpc, pfs):
    for pf in pfs:
        subprocess.run([MGMT, "-s", rpc, "--timeout", "30", "mgmtpf", "-a", pf], check=True, capture_output=True)


def provision(rpc, bdfs):
    script = "".join("vf -a %s\n" % b for b in bdfs)
    t0 = time.perf_counter()
    r = subprocess.run([MGMT, "-s", rpc], input=script, text=True, capture_output=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError("provisioning failed: " + r.stderr[-500:])
    return dt


def probe_latency(rpc, stop, out):
    c = Rpc(rpc)
    while not stop.is_set():
        t = time.perf_counter()
        c.call("version")
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.002)
    c.close()


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p / 100))], 2)


def run_layout(npfs, per_pf, work, state=False):
    tag = "%dx%d%s" % (npfs, per_pf, "+state" if state else "")
    root, rpc = os.path.join(work, "root" + tag), os.path.join(work, "rpc" + tag + ".sock")
    pfs = pf_bdfs(npfs, per_pf)
    sim = sim_start(root, pfs, per_pf, per_pf)
    d = None
    try:
        d = daemon_start(root, rpc, os.path.join(work, "v%s-" % tag), os.path.join(work, "state" + tag) if state else None)
        add_pfs(rpc, pfs)
        before_rss, before_fds = rss_kib(d.pid), len(os.listdir("/proc/%d/fd" % d.pid))
        bdfs = [vf_bdf(pf, n) for pf in pfs for n in range(1, per_pf + 1)]
        lat, stop = [], threading.Event()
        th = threading.Thread(target=probe_latency, args=(rpc, stop, lat))
        th.start()
        dt = provision(rpc, bdfs)
        stop.set()
        th.join()
        rss, fds = rss_kib(d.pid), len(os.listdir("/proc/%d/fd" % d.pid))
        c0, t0 = cpu_ticks(d.pid), time.monotonic()
        time.sleep(5)
        idle = (cpu_ticks(d.pid) - c0) / CLK / (time.monotonic() - t0) * 100
        c = Rpc(rpc)
        page = {}
        for limit in (256, 1024):
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                r = c.call("stats", {"limit": limit})
                ts.append((time.perf_counter() - t) * 1000)
            page[str(limit)] = {"ms_median": round(statistics.median(ts), 2),
                                "items": len(r["result"]["vfs"]), "total": r["result"]["total"]}
        c.close()
        n = len(bdfs)
        return {"layout": tag, "vfs": n, "provision_s": round(dt, 3), "per_vf_ms": round(dt * 1000 / n, 3),
                "daemon_rss_mib": round(rss / 1024, 1), "daemon_rss_kib_per_vf": round((rss - before_rss) / n, 1),
                "daemon_fds_per_vf": round((fds - before_fds) / n, 2),
                "sim_rss_mib": round(rss_kib(sim.pid) / 1024, 1),
                "idle_cpu_pct_5s": round(idle, 2),
                "version_ms_during_adds": {"n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99),
                                           "max": pct(lat, 100)},
                "stats_page_ms": page}
    finally:
        for p in (d, sim):
            if p:
                p.terminate()
                p.wait(30)


def run_stall(work, n, delay_ms):
    """PF A (sim 1) and PF B (sim 2) behind one tree of symlinks; B's admin queue delayed."""
    base = os.path.join(work, "stall")
    tree, r1, r2 = os.path.join(base, "tree"), os.path.join(base, "s1"), os.path.join(base, "s2")
    os.makedirs(tree)
    pa, pb = "0000:10:00.0", "0000:20:00.0"
    s1, s2 = sim_start(r1, [pa], n, n), sim_start(r2, [pb], n, n)
    for r in (r1, r2):
        for e in os.listdir(r):
            if e.startswith("0000:"):
                os.symlink(os.path.join(r, e), os.path.join(tree, e))
    rpc = os.path.join(base, "rpc.sock")
    d = None
    res = {"vfs_per_pf": n, "admin_delay_ms": delay_ms}
    try:
        d = daemon_start(tree, rpc, os.path.join(base, "v-"))
        add_pfs(rpc, [pa, pb])
        va, vb = [vf_bdf(pa, i) for i in range(1, n + 1)], [vf_bdf(pb, i) for i in range(1, n + 1)]

        def remove(bdfs):
            subprocess.run([MGMT, "-s", rpc], input="".join("vf -r %s\n" % b for b in bdfs), text=True,
                           capture_output=True)

        res["a_alone_s"] = round(provision(rpc, va), 3)
        remove(va)
        for label, fault in (("a_next_to_b_s", False), ("a_next_to_slow_b_s", True)):
            ctl = socket.socket(socket.AF_UNIX)
            ctl.connect(os.path.join(r2, "sim-ctl.sock"))
            cmd = {"cmd": "fault", "type": "admin_delay", "ms": delay_ms} if fault else {"cmd": "fault", "type": "clear"}
            ctl.sendall(json.dumps(cmd).encode() + b"\n")
            ctl.recv(4096)
            ctl.close()
            tb_s = []
            tb = threading.Thread(target=lambda: tb_s.append(provision(rpc, vb)))
            tb.start()
            time.sleep(0.05)
            res[label] = round(provision(rpc, va), 3)
            tb.join()
            res[("slow_b" if fault else "b") + "_itself_s"] = round(tb_s[0], 3) if tb_s else None
            remove(va)
            remove(vb)
        res["slowdown_pct"] = round((res["a_next_to_slow_b_s"] / res["a_next_to_b_s"] - 1) * 100, 1)
        # a device that does not answer at all: sim 2 stopped (SIGSTOP, by its PID) while NB of B's VFs
        # are being added (pending on the stopped device); A's provisioning meanwhile, and `version`
        # alternated, REPS rounds, medians: this box's timings drift by tens of % between runs
        alone, stopped, lat_by, fail_by = [], {4: [], 32: []}, {4: [], 32: []}, {4: [], 32: []}
        lat_alone = []
        for _ in range(REPS):
            lat, stop = [], threading.Event()   # the same second client as in the stopped rounds
            th = threading.Thread(target=probe_latency, args=(rpc, stop, lat))
            th.start()
            alone.append(provision(rpc, va))
            stop.set()
            th.join()
            lat_alone += lat
            remove(va)
            for nb in (4, 32):
                os.kill(s2.pid, signal.SIGSTOP)
                try:
                    tb_s = []
                    t0 = time.perf_counter()
                    tb = threading.Thread(target=lambda: tb_s.append(
                        (subprocess.run([MGMT, "-s", rpc, "--keep-going"],
                                        input="".join("vf -a %s\n" % b for b in vb[:nb]), text=True,
                                        capture_output=True), time.perf_counter() - t0)))
                    tb.start()
                    time.sleep(0.2)   # B's adds are pending on the stopped device
                    lat, stop = [], threading.Event()
                    th = threading.Thread(target=probe_latency, args=(rpc, stop, lat))
                    th.start()
                    stopped[nb].append(provision(rpc, va))
                    stop.set()
                    th.join()
                    lat_by[nb] += lat
                    tb.join()
                    r, tb_dt = tb_s[0]
                    fail_by[nb].append((tb_dt, r.returncode))
                finally:
                    os.kill(s2.pid, signal.SIGCONT)
                remove(va)
                remove(vb[:nb])
        res["stopped_rounds"] = REPS
        res["a_alone_s_median"] = round(statistics.median(alone), 3)
        res["a_alone_s_all"] = [round(x, 3) for x in alone]
        res["version_ms_alone"] = {"n": len(lat_alone), "p50": pct(lat_alone, 50), "p99": pct(lat_alone, 99),
                                   "max": pct(lat_alone, 100)}
        for nb in (4, 32):
            m = statistics.median(stopped[nb])
            res["a_next_to_stopped_b%d_s_median" % nb] = round(m, 3)
            res["a_next_to_stopped_b%d_s_all" % nb] = [round(x, 3) for x in stopped[nb]]
            res["stopped_b%d_slowdown_pct" % nb] = round((m / statistics.median(alone) - 1) * 100, 1)
            res["version_ms_next_to_stopped_b%d" % nb] = {"n": len(lat_by[nb]), "p50": pct(lat_by[nb], 50),
                                                          "p99": pct(lat_by[nb], 99), "max": pct(lat_by[nb], 100)}
            res["stopped_b%d_adds_answered_after_s" % nb] = [round(t, 2) for t, _ in fail_by[nb]]
            res["stopped_b%d_vhostmgmt_exit" % nb] = [rc for _, rc in fail_by[nb]]
    finally:
        for p in (d, s1, s2):
            if p:
                p.terminate()
                p.wait(30)
    return res


def main():
    work = tempfile.mkdtemp(prefix="vfe-bench-")
    layouts = [(1, 256), (4, 256)] if QUICK else [(1, 256), (4, 256), (1, 1024), (4, 1024)]
    try:
        results = [] if STALL_ONLY else [run_layout(p, v, work) for p, v in layouts]
        # the default: every add rewrites and fsyncs the whole state file
        if not STALL_ONLY:
            results.append(run_layout(1, 256 if QUICK else 1024, work, state=True))
        stall = run_stall(work, 64 if QUICK else 256, 20)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"bench": "provision", "results": results, "stalled_device": stall}, indent=1))


if __name__ == "__main__":
    main()
