#!/usr/bin/env python3
"""Demo step: boot two TCG guests on two vhost-user sockets and let them ping.

usage: demo_ping.py [--kill CMD --restart CMD] [--migrate SOCK --timeline CMD]
                    BUILD_DIR SOCK_A SOCK_B WORKDIR [STATS_CMD ...]

STATS_CMD (optional) prints one VF's stats as JSON, e.g.
  vhostmgmt -s RPC --json stats 0000:3b:00.1
It runs before the guests boot and after each step: the VF's traffic counters
are shown per step (what that step alone moved), and at the end the rest of
the stats while the guests still run.
--kill CMD and --restart CMD (shell commands, both or neither): while the
guests ping each other every 10 ms, CMD kills the daemon, the guests keep
pinging for a few seconds without it, --restart's CMD starts it again; the
replies counted before, without and after the daemon are shown, and the step
fails if none arrived while no daemon ran or more than 1% were lost.
--migrate SOCK and --timeline CMD (both or neither): then guest-b is migrated
(QEMU live migration over TCP on 127.0.0.1) to a QEMU whose NIC is on SOCK
while guest-a pings it every 10 ms; QEMU's downtime, the pings lost and CMD's
output (the switchover timeline) are shown; the step fails if guest-b's
network does not come back."""
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True   # importing tests/guests leaves no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import GuestError, Guest, build_guest, ping_summary  # noqa: E402
import demo_migrate  # noqa: E402

DOWN_SECS = 3          # how long the guests ping with no daemon running


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


OPTION_PAIRS = (("kill", "restart"), ("migrate", "timeline"))


def parse_args(argv):
    """({"kill": CMD, "restart": CMD, "migrate": SOCK, "timeline": CMD}, each
    pair present or not, positional arguments), or None if they are wrong."""
    opts = {}
    names = ["--" + n for pair in OPTION_PAIRS for n in pair]
    while argv and argv[0] in names:
        if len(argv) < 2 or not argv[1] or argv[0][2:] in opts:
            return None
        opts[argv[0][2:]] = argv[1]
        argv = argv[2:]
    if any((a in opts) != (b in opts) for a, b in OPTION_PAIRS) or len(argv) < 4:
        return None
    return opts, argv


def replies(g, path):
    """Echo replies a background ping (not -q) wrote to path so far, and its last one."""
    rc, out = g.run("echo REPLIES $(grep -c 'bytes from' %s); grep 'bytes from' %s | tail -n 1" % (path, path))
    return count_replies(out)


def count_replies(out):
    """(count, last reply line) from the console output of replies()' command
    (the console echoes the command line first)."""
    m = re.search(r"^REPLIES (\d+)\s*$", out, re.M)
    last = re.findall(r"^\d+ bytes from .*$", out, re.M)
    return (int(m.group(1)) if m else 0), (last[-1].strip() if last else "")


def shell(cmd):
    """A demo command, its output indented; True if it succeeded."""
    r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=60)
    for line in (r.stdout + r.stderr).rstrip().splitlines():
        print("    " + line)
    sys.stdout.flush()
    return r.returncode == 0


def ha_step(a, b, opts):
    """The daemon killed and restarted while the guests ping: 0 if the
    guests kept their network, 1 if not."""
    print("\n  guest-a and guest-b ping each other every 10 ms in the background:", flush=True)
    for g, peer in ((a, "10.0.0.2"), (b, "10.0.0.1")):
        rc, out = g.run("ping -i 0.01 %s >/tmp/ha-ping 2>&1 & echo $! >/tmp/ha-ping.pid" % peer)
        if rc:
            print("  background ping FAILED: %s" % out)
            return 1
    time.sleep(1)
    before, _ = replies(a, "/tmp/ha-ping")
    print("    guest-a got %d replies in the first second" % before, flush=True)
    if not shell(opts["kill"]):
        print("  kill FAILED")
        return 1
    t0 = time.time()
    time.sleep(DOWN_SECS)
    down, last = replies(a, "/tmp/ha-ping")
    print("    %.1f s without a daemon: guest-a got %d more replies (last: %s)"
          % (time.time() - t0, down - before, last or "none"), flush=True)
    ok = shell(opts["restart"])
    time.sleep(1)
    lost = sent = 0
    for g in (a, b):
        g.run("kill -INT $(cat /tmp/ha-ping.pid)")
        time.sleep(0.5)
        rc, out = g.run("tail -n 3 /tmp/ha-ping")
        try:
            n, got = ping_summary(out)
        except GuestError:
            print("  %s: no ping statistics: %s" % (g.name, out.strip()))
            return 1
        sent, lost = sent + n, lost + n - got
        print("    %s: %d pings sent across the kill and the restart, %d replies, %d lost" % (g.name, n, got, n - got))
    if not ok or down <= before or lost * 100 > sent:
        print("  the guests did NOT keep their network while the daemon was killed")
        return 1
    print("  the guests kept their network: the device forwards, the HA process held every session")
    return 0


def usage(out):
    out.write(__doc__.split("\n\n", 1)[1] + "\n")


def main(argv):
    if any(a in ("-h", "--help") for a in argv[:12]):
        usage(sys.stdout)
        return 0
    parsed = parse_args(argv)
    if parsed is None:
        usage(sys.stderr)
        return 2
    opts, argv = parsed
    build, sock_a, sock_b, work = argv[:4]
    stats = VfStats(argv[4:])
    kernel, initrd = build_guest(build)
    print("  guest image: %s + busybox initramfs" % os.path.basename(kernel), flush=True)
    a = Guest("guest-a", work, kernel, initrd, sock_a, "52:54:00:00:00:0a", "10.0.0.1/24")
    b = Guest("guest-b", work, kernel, initrd, sock_b, "52:54:00:00:00:0b", "10.0.0.2/24", qmp="migrate" in opts)
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
        if rc == 0 and "kill" in opts:
            rc = ha_step(a, b, opts)
            stats.step("the kill and the restart")
        if rc == 0 and "migrate" in opts:
            rc, b = demo_migrate.migrate_step(a, b, opts["migrate"], opts["timeline"], shell, replies, "10.0.0.2")
            stats.step("the migration")
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
