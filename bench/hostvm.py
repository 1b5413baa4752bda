#!/usr/bin/env python3
"""bench/run hostvm: frames/s from the test front-end through vfe on kernel
VFIO (direct mode) out of the TCG host VM's virtio-net-pci to a UDP socket
outside.  Runs the hostvm test (tests/hostvm/test_hostvm.py) with its bench
step; the test's progress goes to stderr, its JSON line to stdout.
    hostvm.py BUILD_DIR [--frames N]      (default 2000 frames of 64 bytes)"""
import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(prog="bench/run hostvm")
    ap.add_argument("build")
    ap.add_argument("--frames", type=int, default=2000)
    a = ap.parse_args()
    if not 2 <= a.frames <= 1000000:
        ap.error("--frames: 2..1000000")
    env = dict(os.environ, VFE_HOSTVM_BENCH=str(a.frames), VFE_BUILD_DIR=os.path.abspath(a.build))
    r = subprocess.run([sys.executable, os.path.join(HERE, "..", "tests", "hostvm", "test_hostvm.py")], env=env,
                       stdout=subprocess.PIPE, text=True)
    lines = r.stdout.splitlines()
    result = [ln for ln in lines if ln.startswith('{"bench"')]
    sys.stderr.write("".join(ln + "\n" for ln in lines if not ln.startswith('{"bench"')))
    if r.returncode != 0 or not result:
        print("bench/run hostvm: the hostvm test failed (exit %d)" % r.returncode, file=sys.stderr)
        return 1
    print(result[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
