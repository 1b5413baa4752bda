#!/usr/bin/env python3
"""QEMU-reported migration downtime: the same guest on vfe and on DPDK testpmd.

usage: bench/downtime.py BUILD_DIR [--runs N] [--backends vfe,dpdk] [--downtime-limit MS] [--queues Q]
                        [--host-notifiers on|off] [--merge JSON]

One busybox guest (tests/guests, TCG, 256 MiB memfd RAM shared with the
back-end, one virtio-net NIC with Q queue pairs, 1 unless --queues, and as
many vCPUs) is migrated N times (10)
between two QEMUs on this host (TCP on 127.0.0.1, the destination started with
-incoming and running as soon as it has loaded), back and forth between two
vhost-user sockets of the same back-end:
  vfe   vfe-dpu-sim with two VFs and vfe-vhostd (one socket per VF; with
        --host-notifiers off, vfe-vhostd --no-host-notifiers); per
        migration also vfe's own switchover timeline (source VF: first
        GET_VRING_BASE -> last answer; destination VF: memory table -> rings
        running) and vfe-vhostd's CPU time during the pre-copy;
  dpdk  one dpdk-testpmd (22.11) with two vhost PMD ports (--no-huge), its
        ports started but not forwarding (a forwarding lcore busy-polls one of
        the two cores the TCG guests run on), the reference.
The guest is idle (its own ARP and timers): what differs is the back-end's
control path (stop, state hand-over, start) and its CPU use.
QEMU's `downtime` (query-migrate, ms) is the time the source kept the guest
paused: device stops, the last RAM pass and the device state, until the source
has sent everything.  QEMU switches over once it expects the rest of the RAM
to take less than its downtime-limit: QEMU's default, 300 ms, lets the last
RAM pass dominate (70-300 ms under TCG, bimodal); the bench sets 5 ms so that
the pass is small and the back-end's part shows (--downtime-limit 300: QEMU's).  The destination's device start runs after that and is
not in it (vfe's destination half shows it).  Every migration is checked: the
migrated guest answers on its console.  Prints one JSON object: median and p90
per back-end and the ratio vfe / dpdk.  With --merge, the object given (the
`migrate` bench's) gets it as "qemu_downtime".  Not a test: no goal is
checked here; docs/migration-timing.md has the numbers and the caveats.
Needs qemu-system-x86_64 (else "skipped"); dpdk-testpmd for the reference."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # importing tests/guests leaves no __pycache__ in the source tree
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(here), "tests", "guests"))
from demo_migrate import DestinationGuest, free_port  # noqa: E402  (a destination that runs once loaded)
from vfe_guests import GuestError, Qmp, build_guest  # noqa: E402

PF, VFS = "0000:3b:00.0", ("0000:3b:00.1", "0000:3b:00.2")
MAC, IP = "52:54:00:00:00:5a", "10.0.0.1/24"
MIGRATE_TIMEOUT = 180


def log(msg):
    print("downtime: " + msg, file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest rank, as the C benches do."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, -(-len(v) * p // 100))
    return v[int(k) - 1]


def median(values):
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def dist(values):
    vals = [x for x in values if x is not None]
    r = {"median": median(vals), "p90": pct(vals, 90), "min": min(vals, default=None),
         "max": max(vals, default=None)}
    r = {k: round(x, 3) if isinstance(x, float) else x for k, x in r.items()}
    r["n"] = len(vals)
    return r


def cpu_ms(pid):
    """CPU time of every thread of pid so far (schedstat), ms."""
    total = 0
    try:
        for t in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
    except OSError:
        return None
    return total / 1e6


class Procs:
    """Processes this bench started, stopped by PID."""

    def __init__(self, work):
        self.work, self.procs = work, []

    def spawn(self, args, name, stdin=subprocess.DEVNULL, **kw):
        out = open(os.path.join(self.work, name + ".log"), "ab")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, **kw)
        out.close()
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > end:
            raise GuestError("%s: not within %d s" % (what, timeout))
        time.sleep(0.02)


class VfeBackend:
    name = "vfe"

    def __init__(self, build, work, procs, queues, notifiers=True):
        self.build, self.work, self.procs, self.queues = build, work, procs, queues
        self.extra = [] if notifiers else ["--no-host-notifiers"]
        self.sim_bin = os.environ.get("VFE_SIM_BIN", os.path.join(build, "sim/vfe-dpu-sim"))
        self.vhostd_bin = os.environ.get("VFE_VHOSTD", os.path.join(build, "app/vfe-vdpa/vfe-vhostd"))
        self.mgmt_bin = os.environ.get("VFE_VHOSTMGMT", os.path.join(build, "tools/vhostmgmt/vhostmgmt"))
        self.rpc = os.path.join(work, "vhostd.sock")
        self.socks = [os.path.join(work, "vfe-%d.sock" % i) for i in range(2)]
        self.vhostd = None

    def mgmt(self, *args):
        r = subprocess.run([self.mgmt_bin, "-s", self.rpc] + list(args), capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise GuestError("vhostmgmt %s: %s" % (" ".join(args), r.stderr.strip()))
        return r.stdout

    def stats(self, side):
        return json.loads(self.mgmt("--json", "stats", VFS[side]))["vfs"][0]

    def start(self):
        root = os.path.join(self.work, "root")
        self.procs.spawn([self.sim_bin, "--root", root, "--pf", PF, "--vfs", "2", "--qpairs", str(self.queues),
                          "--log-level", "warning"], "sim")
        wait_for(lambda: os.path.exists(os.path.join(root, "ready")), 10, "the sim's ready file")
        self.vhostd = self.procs.spawn([self.vhostd_bin, "--no-state", "--pci-root", root, "--rpc", self.rpc,
                                        "--iface", os.path.join(self.work, "vf-"), "--log-level", "warning"] + self.extra,
                                       "vhostd")
        wait_for(lambda: os.path.exists(self.rpc), 10, "vfe-vhostd's RPC socket")
        self.mgmt("mgmtpf", "-a", PF)
        for side in (0, 1):
            self.mgmt("vf", "-a", VFS[side], "-v", self.socks[side], "-u", "bench-%d" % side)

    def idle(self, side):
        """The socket's VF waits for a new front-end (the last QEMU on it has gone)."""
        wait_for(lambda: self.stats(side).get("vhost_user") == "waiting", 10, "VF %s waiting" % VFS[side])

    def cpu_ms(self):
        return cpu_ms(self.vhostd.pid)

    def source_half(self, side):
        return (self.stats(side).get("migration") or {}).get("source") or {}

    def destination_half(self, side):
        """The destination half once its rings run (the guest runs there)."""
        def done():
            d = (self.stats(side).get("migration") or {}).get("destination") or {}
            return d if d.get("switchover_ms") is not None else None
        return wait_for(done, 20, "VF %s destination switchover" % VFS[side])


class DpdkBackend:
    name = "dpdk"

    def __init__(self, build, work, procs, queues, notifiers=True):
        self.work, self.procs, self.queues = work, procs, queues
        self.socks = [os.path.join(work, "pmd-%d.sock" % i) for i in range(2)]
        self.prefix = "vfe-bench-%d" % os.getpid()
        self.proc = None

    def start(self):
        binary = shutil.which("dpdk-testpmd")
        if not binary:
            raise GuestError("dpdk-testpmd not installed")
        vdevs = []
        for i, s in enumerate(self.socks):
            vdevs += ["--vdev", "net_vhost%d,iface=%s,queues=%d" % (i, s, self.queues)]
        # the ports start, forwarding does not: its lcore would busy-poll one of
        # the two cores the TCG guests need (the guest is idle: no data path)
        args = [binary, "--no-pci", "--no-huge", "-m", "512", "--no-shconf", "-l", "0-1",
                "--file-prefix=" + self.prefix] + vdevs + \
               ["--", "-i", "--forward-mode=io", "--nb-cores=1", "--total-num-mbufs=16384",
                "--rxq=%d" % self.queues, "--txq=%d" % self.queues]
        self.proc = self.procs.spawn(args, "testpmd", stdin=subprocess.PIPE)
        wait_for(lambda: all(os.path.exists(s) for s in self.socks) or self.proc.poll() is not None, 30,
                 "testpmd's vhost sockets")
        if self.proc.poll() is not None:
            raise GuestError("testpmd exited with %s (see %s)" % (self.proc.returncode,
                                                                   os.path.join(self.work, "testpmd.log")))

    def idle(self, side):
        time.sleep(0.5)   # testpmd's vhost server listens again once the old connection is gone

    def cpu_ms(self):
        return cpu_ms(self.proc.pid)

    def source_half(self, side):
        return None

    def destination_half(self, side):
        return None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.stdin.write(b"stop\nquit\n")
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        # only our own, empty, runtime dir
        base = "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
        try:
            os.rmdir(os.path.join(base, "dpdk", self.prefix))
        except OSError:
            pass


def migrate(src, qs, dst_uri, backend, limit):
    """One migration through QMP: (query-migrate's final answer, the back-end's
    CPU ms while the migration was still in pre-copy: up to the last poll
    that saw it "active", 10 ms steps)."""
    qs.call("migrate-set-parameters", **{"max-bandwidth": 1 << 30, "downtime-limit": limit})
    c0 = c_active = backend.cpu_ms()
    t0 = time.time()
    qs.call("migrate", uri=dst_uri)
    while True:
        c = backend.cpu_ms()
        st = qs.call("query-migrate")
        if st.get("status") in ("setup", "active"):
            c_active = c
        if st.get("status") in ("completed", "failed", "cancelled"):
            break
        if time.time() - t0 > MIGRATE_TIMEOUT:
            raise GuestError("%s: migration still %s after %d s" % (src.name, st.get("status"), MIGRATE_TIMEOUT))
        time.sleep(0.01)
    if st["status"] != "completed":
        raise GuestError("%s: migration %s: %s" % (src.name, st["status"], st.get("error-desc", "")))
    return st, (c_active - c0 if c0 is not None and c_active is not None else None)


def run_backend(backend, work, kernel, initrd, runs, limit, queues):
    """runs migrations of one guest, back and forth between the back-end's two sockets."""
    backend.start()
    side = 0
    g = DestinationGuest("g0", work, kernel, initrd, backend.socks[0], MAC, IP, qmp=True, smp=queues, queues=queues)
    samples = []
    try:
        g.boot(120, log)
        qs = Qmp(g.qmp_path)
        for n in range(runs):
            other = 1 - side
            backend.idle(other)
            port = free_port()
            d = DestinationGuest("g%d" % (n + 1), work, kernel, initrd, backend.socks[other], MAC, IP, qmp=True,
                             smp=queues, queues=queues, incoming="tcp:127.0.0.1:%d" % port)
            d.start()
            qd = Qmp(d.qmp_path)
            try:
                st, cpu = migrate(g, qs, "tcp:127.0.0.1:%d" % port, backend, limit)
                src_half = backend.source_half(side)   # before the source QEMU goes: its session holds it
                dst_half = backend.destination_half(other)
                wait_for(lambda: qd.call("query-status")["status"] == "running", 60, "destination running")
                rc, out = d.run("echo migrated", timeout=30)
                if rc or "migrated" not in out:
                    raise GuestError("the migrated guest does not answer: %r" % out)
            except BaseException:
                qd.close()
                d.stop()
                raise
            qs.close()
            g.stop()
            g, qs, side = d, qd, other
            s = {"downtime_ms": st.get("downtime"), "total_ms": st.get("total-time"),
                 "setup_ms": st.get("setup-time"), "backend_cpu_ms_precopy": round(cpu, 3) if cpu is not None else None}
            if src_half is not None:
                s["vfe_source_ms"] = src_half.get("switchover_ms")
                s["vfe_destination_ms"] = dst_half.get("switchover_ms")
            samples.append(s)
            log("%s %d/%d: downtime %s ms, total %s ms%s" % (
                backend.name, n + 1, runs, s["downtime_ms"], s["total_ms"],
                ", vfe switchover source %s ms destination %s ms" % (s["vfe_source_ms"], s["vfe_destination_ms"])
                if "vfe_source_ms" in s else ""))
        qs.close()
    finally:
        g.stop()
    out = {"runs": len(samples), "downtime_ms": dist([s["downtime_ms"] for s in samples]),
           "total_ms": dist([s["total_ms"] for s in samples]),
           "backend_cpu_ms_precopy": dist([s["backend_cpu_ms_precopy"] for s in samples]),
           "samples": samples}
    if samples and "vfe_source_ms" in samples[0]:
        out["vfe_source_switchover_ms"] = dist([s["vfe_source_ms"] for s in samples])
        out["vfe_destination_switchover_ms"] = dist([s["vfe_destination_ms"] for s in samples])
    return out


def parse(argv):
    opts = {"runs": 10, "backends": ["vfe", "dpdk"], "merge": None, "limit": 5, "queues": 1, "notifiers": True}
    if not argv or argv[0].startswith("-"):
        return None
    opts["build"] = argv[0]
    i = 1
    while i < len(argv):
        if i + 1 >= len(argv):
            return None
        k, v = argv[i], argv[i + 1]
        if k == "--runs" and v.isdigit() and 1 <= int(v) <= 100:
            opts["runs"] = int(v)
        elif k == "--backends" and v and set(v.split(",")) <= {"vfe", "dpdk"}:
            opts["backends"] = v.split(",")
        elif k == "--downtime-limit" and v.isdigit() and int(v) <= 2000:
            opts["limit"] = int(v)
        elif k == "--queues" and v.isdigit() and 1 <= int(v) <= 16:
            opts["queues"] = int(v)
        elif k == "--host-notifiers" and v in ("on", "off"):
            opts["notifiers"] = v == "on"
        elif k == "--merge":
            opts["merge"] = v
        else:
            return None
        i += 2
    return opts


def main(argv):
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    opts = parse(argv)
    if opts is None:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    base = {"bench": "downtime"}
    if opts["merge"]:
        try:
            base = json.loads(opts["merge"])
        except ValueError:
            sys.stderr.write("downtime: --merge: not JSON\n")
            return 2
    q = opts["queues"]
    result = {"runs": opts["runs"], "queue_pairs": q,
              "guest": "busybox, TCG, %d vCPU, 256 MiB, %d queue pair%s" % (q, q, "s" if q > 1 else ""),
              "downtime_limit_ms": opts["limit"], "vfe_host_notifiers": opts["notifiers"]}
    rc = 0
    if not shutil.which("qemu-system-x86_64"):
        result["skipped"] = "qemu-system-x86_64 not installed"
    else:
        kernel, initrd = build_guest(opts["build"])
        for name in opts["backends"]:
            work = tempfile.mkdtemp(prefix="vfe-bench-downtime-%s." % name)
            procs = Procs(work)
            backend = (VfeBackend if name == "vfe" else DpdkBackend)(opts["build"], work, procs, q, opts["notifiers"])
            try:
                result[name] = run_backend(backend, work, kernel, initrd, opts["runs"], opts["limit"], q)
                shutil.rmtree(work, ignore_errors=True)
            except (GuestError, OSError, subprocess.SubprocessError, ValueError) as e:
                log("%s: FAILED: %s (logs in %s)" % (name, e, work))
                result[name] = {"error": str(e)}
                rc = 1
            finally:
                if isinstance(backend, DpdkBackend):
                    backend.stop()
                procs.stop_all()
        v, d = result.get("vfe", {}), result.get("dpdk", {})
        if v.get("downtime_ms", {}).get("median") and d.get("downtime_ms", {}).get("median"):
            result["ratio_vfe_to_dpdk"] = {k: round(v["downtime_ms"][k] / d["downtime_ms"][k], 3)
                                           for k in ("median", "p90")}
    if opts["merge"]:
        base["qemu_downtime"] = result
    else:
        base.update(result)
    print(json.dumps(base, separators=(",", ":")))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
