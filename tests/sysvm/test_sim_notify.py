#!/usr/bin/env python3
"""vfe-dpu-sim under a Type=notify manager, without systemd: NOTIFY_SOCKET is a
datagram socket of this test.  READY=1 must come exactly once and only when
the tree, ROOT/ready and every function's vfio-user socket exist; STOPPING=1
on SIGTERM, before the tree is gone; nothing sent when NOTIFY_SOCKET is unset
is an error (the sim runs as before).  Skipped (77) when meson found no
libsystemd (VFE_HAVE_SYSTEMD=0)."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("VFE_BUILD_DIR", "build")
SIM = os.path.join(BUILD, "sim", "vfe-dpu-sim")
PF, VF1 = "0000:3b:00.0", "0000:3b:00.1"


def recv_all(sock, timeout):
    """Every datagram within timeout seconds, as (time, text)."""
    out, deadline = [], time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(0.01, deadline - time.time()))
        try:
            out.append((time.time(), sock.recv(4096).decode()))
        except socket.timeout:
            break
    return out


def main():
    if os.environ.get("VFE_HAVE_SYSTEMD", "1") != "1":
        print("SKIP: built without libsystemd")
        return 77
    failed = []

    def check(ok, what):
        print("%s %s" % ("ok  " if ok else "FAIL", what))
        if not ok:
            failed.append(what)

    with tempfile.TemporaryDirectory(prefix="vfe-sim-notify-") as work:
        root = os.path.join(work, "tree")
        nsock_path = os.path.join(work, "notify.sock")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(nsock_path)
        env = dict(os.environ, NOTIFY_SOCKET=nsock_path)
        p = subprocess.Popen([SIM, "--root", root, "--pf", PF, "--vfs", "2", "--log-level", "err"], env=env,
                             stdin=subprocess.DEVNULL)
        try:
            ns.settimeout(20)
            try:
                first = ns.recv(4096).decode()
            except socket.timeout:
                first = ""
            # what must exist when READY=1 arrives
            need = [os.path.join(root, "ready"), os.path.join(root, PF, "vfio-user.sock"),
                    os.path.join(root, VF1, "vfio-user.sock"), os.path.join(root, "sim-ctl.sock")]
            missing = [n for n in need if not os.path.exists(n)]
            check("READY=1" in first.split("\n"), "first notification is READY=1 (got %r)" % first)
            check(not missing, "tree, ready and sockets exist at READY=1 (missing: %s)" % missing)
            more = recv_all(ns, 0.5)
            check(not more, "READY=1 sent once, nothing more while running (got %r)" % more)
            p.send_signal(signal.SIGTERM)
            ns.settimeout(10)
            try:
                stop = ns.recv(4096).decode()
            except socket.timeout:
                stop = ""
            check("STOPPING=1" in stop.split("\n"), "STOPPING=1 on SIGTERM (got %r)" % stop)
            rc = p.wait(10)
            check(rc == 0, "exit 0 after SIGTERM (got %d)" % rc)
            check(not os.path.exists(root), "tree removed after exit")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            ns.close()

        # no manager: runs and stops as before
        env = dict(os.environ)
        env.pop("NOTIFY_SOCKET", None)
        p = subprocess.Popen([SIM, "--root", root, "--pf", PF, "--log-level", "err"], env=env,
                             stdin=subprocess.DEVNULL)
        try:
            deadline = time.time() + 20
            while not os.path.exists(os.path.join(root, "ready")) and time.time() < deadline and p.poll() is None:
                time.sleep(0.05)
            check(os.path.exists(os.path.join(root, "ready")), "without NOTIFY_SOCKET the sim still gets ready")
            p.send_signal(signal.SIGTERM)
            check(p.wait(10) == 0, "without NOTIFY_SOCKET: exit 0 after SIGTERM")
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
