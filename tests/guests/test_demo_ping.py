#!/usr/bin/env python3
"""The demo's own behaviour, without guests: per-step counter deltas of
demo_ping.py, usage on --help, no escape codes when stdout is not a tty, and
the migration step's options, output lines and QMP handling (demo_migrate.py)."""
import io
import json
import os
import subprocess
import sys
import tempfile
from contextlib import redirect_stdout

here = os.path.dirname(os.path.abspath(__file__))
top = os.path.dirname(os.path.dirname(here))
sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, here)
import demo_migrate  # noqa: E402
import demo_ping  # noqa: E402
from vfe_guests import GuestError  # noqa: E402

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL: " + what)


def fake_stats(tmp, rx, tx):
    """A stats command printing the VF with these totals, as vhostmgmt --json does."""
    path = os.path.join(tmp, "stats.json")
    with open(path, "w") as f:
        json.dump({"vfs": [{"vf": "0000:3b:00.1", "state": "running", "dirty_tracking": False,
                            "counters": {"rx_packets": rx, "rx_bytes": rx * 100, "rx_drops": 0,
                                         "tx_packets": tx, "tx_bytes": tx * 100, "tx_drops": 0}}]}, f)
    return ["cat", path]


def test_step_deltas(tmp):
    cmd = fake_stats(tmp, 500, 500)          # what an earlier demo step sent
    s = demo_ping.VfStats(cmd)
    s.baseline()
    fake_stats(tmp, 511, 509)
    out = io.StringIO()
    with redirect_stdout(out):
        s.step("step one")
    check("rx 11 frames (1100 bytes), tx 9 frames (900 bytes)" in out.getvalue(),
          "first step counts from the baseline: %r" % out.getvalue())
    fake_stats(tmp, 513, 511)
    out = io.StringIO()
    with redirect_stdout(out):
        s.step("step two")
    check("rx 2 frames (200 bytes), tx 2 frames (200 bytes)" in out.getvalue(),
          "second step counts from the end of the first: %r" % out.getvalue())
    out = io.StringIO()
    with redirect_stdout(out):
        s.show()
    check("counters" not in out.getvalue() and "dirty_tracking       false" in out.getvalue(),
          "live view without totals, JSON spelling: %r" % out.getvalue())
    s = demo_ping.VfStats(["false"])
    out = io.StringIO()
    with redirect_stdout(out):
        s.baseline()
        s.step("a failing command")
    check("stats unavailable" in out.getvalue(), "a failing stats command is reported: %r" % out.getvalue())


def test_ha_args_and_replies():
    """--kill and --restart come together, before the positional arguments;
    replies are counted from the console output, which echoes the command."""
    pos = ["build", "a.sock", "b.sock", "/tmp/w"]
    check(demo_ping.parse_args(pos) == ({}, pos), "no options")
    check(demo_ping.parse_args(["--kill", "k", "--restart", "r"] + pos + ["stats"]) ==
          ({"kill": "k", "restart": "r"}, pos + ["stats"]), "both options")
    check(demo_ping.parse_args(["--kill", "k"] + pos) is None, "--kill without --restart")
    check(demo_ping.parse_args(["--kill", "k", "--kill", "k2", "--restart", "r"] + pos) is None, "--kill twice")
    check(demo_ping.parse_args(["--kill", "", "--restart", "r"] + pos) is None, "empty command")
    check(demo_ping.parse_args(["--kill", "k", "--restart", "r"] + pos[:3]) is None, "too few positionals")
    out = ("echo REPLIES $(grep -c 'bytes from' /tmp/p); grep 'bytes from' /tmp/p | tail -n 1\n"
           "REPLIES 412\n64 bytes from 10.0.0.2: seq=411 ttl=64 time=3.1 ms\n")
    check(demo_ping.count_replies(out) == (412, "64 bytes from 10.0.0.2: seq=411 ttl=64 time=3.1 ms"),
          "replies: %r" % (demo_ping.count_replies(out),))
    check(demo_ping.count_replies("echo REPLIES $(grep -c x)\nREPLIES 0\n") == (0, ""), "no replies yet")
    r = subprocess.run([sys.executable, os.path.join(here, "demo_ping.py"), "--kill", "true", "b", "a", "b", "w"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "usage:" in r.stderr, "demo_ping.py --kill without --restart: %r" % (r,))


def test_migrate_args():
    """--migrate and --timeline come together, with or without --kill/--restart."""
    pos = ["build", "a.sock", "b.sock", "/tmp/w"]
    both = ["--kill", "k", "--restart", "r", "--migrate", "m.sock", "--timeline", "t"]
    check(demo_ping.parse_args(both + pos + ["stats"]) ==
          ({"kill": "k", "restart": "r", "migrate": "m.sock", "timeline": "t"}, pos + ["stats"]), "all four options")
    check(demo_ping.parse_args(["--migrate", "m.sock", "--timeline", "t"] + pos) ==
          ({"migrate": "m.sock", "timeline": "t"}, pos), "migration only")
    check(demo_ping.parse_args(["--migrate", "m.sock"] + pos) is None, "--migrate without --timeline")
    check(demo_ping.parse_args(["--timeline", "t", "--kill", "k", "--restart", "r"] + pos) is None,
          "--timeline without --migrate")
    check(demo_ping.parse_args(["--migrate", "", "--timeline", "t"] + pos) is None, "empty socket path")
    check(demo_ping.parse_args(["--migrate", "m", "--migrate", "m", "--timeline", "t"] + pos) is None,
          "--migrate twice")
    check(demo_ping.parse_args(["--migrate", "m.sock", "--timeline", "t"] + pos[:3]) is None,
          "too few positionals")
    r = subprocess.run([sys.executable, os.path.join(here, "demo_ping.py"), "--timeline", "t", "b", "a", "b", "w"],
                       capture_output=True, text=True)
    check(r.returncode == 2 and "usage:" in r.stderr, "demo_ping.py --timeline alone: %r" % (r,))


def test_migrate_output():
    """QEMU's numbers and the ping loss as the demo prints them."""
    st = {"status": "completed", "total-time": 312, "downtime": 7, "setup-time": 1,
          "ram": {"transferred": 3 * (1 << 20) + (1 << 19)}}
    check(demo_migrate.qemu_summary(st) ==
          "QEMU: migrated in 312 ms (3.5 MiB sent), downtime 7 ms (the guest paused on the source)",
          "QEMU's line: %r" % demo_migrate.qemu_summary(st))
    check("downtime ? ms" in demo_migrate.qemu_summary({"status": "completed"}), "no numbers from QEMU")
    line = demo_migrate.loss_summary("guest-a", 400, 392, 4.0)
    check(line == "guest-a: 400 pings sent across the migration (one per 10 ms), 392 replies, 8 lost: about 80 ms "
          "without replies", "loss line: %r" % line)
    line = demo_migrate.loss_summary("guest-a", 40, 36, 2.0)
    check("(one per 50 ms)" in line and "4 lost: about 200 ms" in line, "a slower pace: %r" % line)
    check(demo_migrate.loss_summary("guest-a", 10, 12, 1.0).endswith("0 lost: about 0 ms without replies"),
          "duplicates do not count as negative loss")
    check("0 lost" in demo_migrate.loss_summary("guest-a", 0, 0, 1.0), "no ping sent")


class FakeQmp:
    """Answers query-migrate from a list, the last one repeated."""

    def __init__(self, answers):
        self.answers, self.calls, self.params = list(answers), 0, []

    def call(self, cmd, **args):
        if cmd == "migrate-set-parameters":
            self.params.append(args)
            return {}
        assert cmd == "query-migrate"
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def test_migrate_wait():
    q = FakeQmp([{"status": "setup"}, {"status": "active"}, {"status": "completed", "downtime": 3}])
    check(demo_migrate.wait_migration(q, 5) == {"status": "completed", "downtime": 3} and q.calls == 3,
          "waits through setup and active")
    for answers, what in (([{"status": "failed", "error-desc": "boom"}], "boom"),
                          ([{"status": "cancelled"}], "cancelled"),
                          ([{"status": "active"}], "still active")):
        try:
            demo_migrate.wait_migration(FakeQmp(answers), 0.2)
            check(False, "%s: no error" % what)
        except GuestError as e:
            check(what in str(e), "%s: %s" % (what, e))
    # a migration that does not converge under the demo's limit gets QEMU's default back, once
    q = FakeQmp([{"status": "active"}] * 6 + [{"status": "completed"}])
    out = io.StringIO()
    with redirect_stdout(out):
        st = demo_migrate.wait_migration(q, 5, relax_after=0.1)
    check(st["status"] == "completed" and q.params == [{"downtime-limit": 300}] and "not converging" in out.getvalue(),
          "relaxed once: %r %r" % (q.params, out.getvalue()))
    q = FakeQmp([{"status": "active"}, {"status": "completed"}])
    demo_migrate.wait_migration(q, 5, relax_after=10)
    check(q.params == [], "no relaxing when it converges: %r" % q.params)


def test_destination_runs_at_once(tmp):
    """The destination QEMU waits on -incoming but not paused (-S): the guest's
    outage is what the migration takes, not how fast the demo says cont."""
    d = demo_migrate.DestinationGuest("d", tmp, "k", "i", "/tmp/x.sock", "52:54:00:00:00:0b", "10.0.0.2/24", qmp=True,
                                      incoming="tcp:127.0.0.1:4444")
    cmd = d.cmdline()
    d.log.close()
    check("-incoming" in cmd and cmd[cmd.index("-incoming") + 1] == "tcp:127.0.0.1:4444" and "-S" not in cmd,
          "destination command line: %r" % cmd)


def test_demo_script_migrates():
    """scripts/demo provisions the destination VF, hands both options over and removes the VF."""
    src = open(os.path.join(top, "scripts", "demo")).read()
    check("--vfs 3" in src and 'mgmt vf -a "$vf3"' in src and 'mgmt vf -r "$vf3"' in src,
          "scripts/demo: a third VF added and removed")
    call = src[src.index("python3 tests/guests/demo_ping.py"):]
    call = call[:call.index("\n", call.index("build "))]
    check('--migrate "$work/guest-b-moved.sock" --timeline "$timeline_cmd"' in call, "demo_ping.py gets --migrate")
    check("migration $vf2" in src and "migration $vf3" in src, "the timeline of both VFs")


def test_usage():
    r = subprocess.run([sys.executable, os.path.join(here, "demo_ping.py"), "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and r.stdout.startswith("usage: demo_ping.py"), "demo_ping.py --help: %r" % (r,))
    r = subprocess.run([sys.executable, os.path.join(here, "demo_ping.py")], capture_output=True, text=True)
    check(r.returncode == 2 and "usage:" in r.stderr, "demo_ping.py without arguments: %r" % (r,))
    demo = os.path.join(top, "scripts", "demo")
    r = subprocess.run([demo, "--help"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and r.stdout.startswith("usage: scripts/demo"), "scripts/demo --help: %r" % (r,))
    check("\033" not in r.stdout, "escape codes in a pipe")
    r = subprocess.run([demo, "--no-such-option"], capture_output=True, text=True, timeout=10)
    check(r.returncode == 2 and "usage:" in r.stderr, "scripts/demo with a bad option: %r" % (r,))


def test_no_colour_in_pipe():
    """scripts/demo's step() colours a terminal only."""
    demo = os.path.join(top, "scripts", "demo")
    src = open(demo).read()
    start = src.index("if [ -t 1 ]; then")
    end = src.index("fi\n", start) + 3
    r = subprocess.run(["bash", "-c", src[start:end] + 'step "hello"'], capture_output=True, text=True)
    check(r.stdout == "\n==> hello\n", "step() into a pipe: %r" % r.stdout)


def main():
    with tempfile.TemporaryDirectory(prefix="vfe-demo-test.") as tmp:
        test_step_deltas(tmp)
        test_destination_runs_at_once(tmp)
    test_ha_args_and_replies()
    test_migrate_args()
    test_migrate_output()
    test_migrate_wait()
    test_demo_script_migrates()
    test_usage()
    test_no_colour_in_pipe()
    print("demo_ping: %d check(s) failed" % failures if failures else "demo_ping: ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
