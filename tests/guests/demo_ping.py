#!/usr/bin/env python3
"""Demo step: boot two TCG guests on two vhost-user sockets and let them ping;
then run CMD (if given) while they still run, to show what the daemon sees.
   demo_ping.py BUILD_DIR SOCK_A SOCK_B WORKDIR [CMD ...]"""
import subprocess
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_guests import Guest, GuestError, build_guest  # noqa: E402


def main():
    build, sock_a, sock_b, work = sys.argv[1:5]
    kernel, initrd = build_guest(build)
    print("  guest image: %s + busybox initramfs" % os.path.basename(kernel), flush=True)
    a = Guest("guest-a", work, kernel, initrd, sock_a, "52:54:00:00:00:0a", "10.0.0.1/24")
    b = Guest("guest-b", work, kernel, initrd, sock_b, "52:54:00:00:00:0b", "10.0.0.2/24")
    try:
        a.start()
        b.start()
        print("  booting two QEMU guests (TCG, vhost-user virtio-net on the VFs)...", flush=True)
        a.wait_ready()
        b.wait_ready()
        print("  both guests up; guest-a (10.0.0.1) pings guest-b (10.0.0.2):", flush=True)
        rc, out = a.run("ping -c 4 -W 3 10.0.0.2", timeout=40)
        for line in out.strip().splitlines():
            print("    " + line.strip())
        if rc:
            print("  ping FAILED")
            return 1
        rc, out = b.run("ping -c 2 -W 3 10.0.0.1", timeout=30)
        print("  guest-b pings back: %s" % ("ok" if rc == 0 else "FAILED"))
        if sys.argv[5:]:
            print("\n  while the guests run:\n  $ %s" % " ".join(os.path.basename(a) if i == 0 else a
                                                        for i, a in enumerate(sys.argv[5:])), flush=True)
            out = subprocess.run(sys.argv[5:], capture_output=True, text=True, timeout=10)
            for line in (out.stdout + out.stderr).strip().splitlines():
                print("    " + line)
        return rc
    except GuestError as e:
        print("  FAILED: %s" % e)
        return 1
    finally:
        a.stop()
        b.stop()


if __name__ == "__main__":
    sys.exit(main())
