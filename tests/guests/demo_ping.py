#!/usr/bin/env python3
"""Demo step: boot two TCG guests on two vhost-user sockets and let them ping.

usage: demo_ping.py BUILD_DIR SOCK_A SOCK_B WORKDIR [STATS_CMD ...]

STATS_CMD (optional) prints one VF's stats as JSON, e.g.
  vhostmgmt -s RPC --json stats 0000:3b:00.1
It runs before the guests boot and after each step: the VF's traffic counters
are shown per step (what that step alone moved), and at the end the rest of
the stats while the guests still run."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import GuestError, Guest, build_guest  # noqa: E402


class VfStats:
    """One VF's stats from STATS_CMD; counters as deltas against a baseline
    that moves to the current values after each step."""

    def __init__(self, cmd):
        self.cmd = cmd
        self.base = None
        self.error = None

    def fetch(self):
        if not self.cmd:
            return None
        try:
            out = subprocess.run(self.cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.error = str(e)
            return None
        if out.returncode != 0:
            self.error = (out.stderr or out.stdout).strip()
            return None
        try:
            vfs = json.loads(out.stdout).get("vfs") or []
        except ValueError as e:
            self.error = "not JSON: %s" % e
            return None
        return vfs[0] if vfs and isinstance(vfs[0], dict) else None

    def baseline(self):
        vf = self.fetch()
        self.base = (vf or {}).get("counters")

    def step(self, what):
        """Print what the VF moved since the last baseline, then move it."""
        vf = self.fetch()
        if vf is None:
            if self.cmd:
                print("    (stats unavailable: %s)" % self.error)
            return
        now = vf.get("counters")
        if not isinstance(now, dict) or not isinstance(self.base, dict):
            self.base = now
            return
        d = {k: now.get(k, 0) - self.base.get(k, 0) for k in now if isinstance(now.get(k), int)}
        print("    VF %s during %s: rx %d frames (%d bytes), tx %d frames (%d bytes), drops rx %d tx %d"
              % (vf.get("vf", "?"), what, d.get("rx_packets", 0), d.get("rx_bytes", 0), d.get("tx_packets", 0),
                 d.get("tx_bytes", 0), d.get("rx_drops", 0), d.get("tx_drops", 0)))
        self.base = now

    def show(self):
        """The VF as the daemon sees it now (counters are shown per step)."""
        vf = self.fetch()
        if vf is None:
            print("    (stats unavailable: %s)" % self.error)
            return
        for k, v in vf.items():
            if k == "counters":
                continue
            if not isinstance(v, str):
                v = json.dumps(v, separators=(",", ":"))
            print("    %-20s %s" % (k, v))


def usage(out):
    out.write(__doc__.split("\n\n", 1)[1] + "\n")


def main(argv):
    if any(a in ("-h", "--help") for a in argv[:4]):
        usage(sys.stdout)
        return 0
    if len(argv) < 4:
        usage(sys.stderr)
        return 2
    build, sock_a, sock_b, work = argv[:4]
    stats = VfStats(argv[4:])
    kernel, initrd = build_guest(build)
    print("  guest image: %s + busybox initramfs" % os.path.basename(kernel), flush=True)
    a = Guest("guest-a", work, kernel, initrd, sock_a, "52:54:00:00:00:0a", "10.0.0.1/24")
    b = Guest("guest-b", work, kernel, initrd, sock_b, "52:54:00:00:00:0b", "10.0.0.2/24")
    stats.baseline()   # what earlier demo steps sent through the VF is not counted here
    try:
        a.start()
        b.start()
        print("  booting two QEMU guests (TCG, vhost-user virtio-net on the VFs)...", flush=True)
        a.wait_ready()
        b.wait_ready()
        stats.step("the boot")
        print("  both guests up; guest-a (10.0.0.1) pings guest-b (10.0.0.2):", flush=True)
        rc, out = a.run("ping -c 4 -W 3 10.0.0.2", timeout=40)
        for line in out.strip().splitlines():
            print("    " + line.strip())
        if rc:
            print("  ping FAILED")
            return 1
        stats.step("guest-a's ping")
        rc, out = b.run("ping -c 2 -W 3 10.0.0.1", timeout=30)
        print("  guest-b pings back: %s" % ("ok" if rc == 0 else "FAILED"), flush=True)
        stats.step("guest-b's ping")
        if stats.cmd:
            print("\n  while the guests run:\n  $ %s" % " ".join(
                os.path.basename(x) if i == 0 else x for i, x in enumerate(stats.cmd)), flush=True)
            stats.show()
        return rc
    except GuestError as e:
        print("  FAILED: %s" % e)
        return 1
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
