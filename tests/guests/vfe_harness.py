"""What every QEMU end-to-end test needs around its guests: the binaries,
processes started and stopped by PID, bounded waits, vhostmgmt and the sim's
control socket, and the logs of a failed run."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from vfe_guests import GuestError, build_guest

BUILD = os.environ.get("VFE_BUILD_DIR", "build")
SIM = os.environ.get("VFE_SIM_BIN", os.path.join(BUILD, "sim/vfe-dpu-sim"))
VHOSTD = os.environ.get("VFE_VHOSTD", os.path.join(BUILD, "app/vfe-vdpa/vfe-vhostd"))
MGMT = os.environ.get("VFE_VHOSTMGMT", os.path.join(BUILD, "tools/vhostmgmt/vhostmgmt"))
VHOSTD_HA = os.environ.get("VFE_VHOSTD_HA", os.path.join(BUILD, "ha/vfe-vhostd-ha"))

T0 = time.time()
procs = []


def log(msg):
    print("[%6.1f] %s" % (time.time() - T0, msg), flush=True)


def poll(what, cond, timeout=20, interval=0.05):
    """cond()'s first true value, asked every interval; GuestError after timeout s."""
    end = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > end:
            raise GuestError("%s: not within %d s" % (what, timeout))
        time.sleep(interval)


def wait_migration(qs, what, timeout=180):
    """QMP query-migrate on the source until the migration ended: its last answer."""
    return poll("%s: the migration to end" % what,
                lambda: (lambda st: st if st.get("status") in ("completed", "failed", "cancelled") else None)(
                    qs.call("query-migrate")), timeout, 0.1)


def wait_migrated_paused(qs, qd, what, timeout=180):
    """The migration completed (GuestError if not) and the destination holds
    the guest paused: the source's last query-migrate answer."""
    st = wait_migration(qs, what, timeout)
    if st["status"] != "completed":
        raise GuestError("%s: migration %s: %s" % (what, st["status"], st.get("error-desc", "")))
    poll(what + ": destination paused", lambda: qd.call("query-status")["status"] == "paused", 60, 0.1)
    return st


def spawn(args, out, **kw):
    p = subprocess.Popen(args, stdout=open(out, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def stop_all():
    for p in procs:
        stop(p)


def wait_file(path, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise GuestError("%s did not appear" % path)


def wait_log(path, needle, timeout=10, start=0, interval=0.02):
    """Wait until the file holds needle at or after byte offset start; the
    offset just past it (a later wait can start there)."""
    end = time.time() + timeout
    n = needle.encode()
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                data = f.read()
            i = data.find(n)
            if i >= 0:
                return start + i + len(n)
        except OSError:
            pass
        if time.time() > end:
            raise GuestError("%s: no '%s' within %d s" % (path, needle, timeout))
        time.sleep(interval)


def kill9(p):
    """SIGKILL a process started by spawn and reap it."""
    if p.poll() is None:
        p.kill()
    p.wait(10)


def mgmt(rpc, *args):
    r = subprocess.run([MGMT, "-s", rpc] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode:
        raise GuestError("vhostmgmt %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def vf_stats(rpc, vf):
    return json.loads(mgmt(rpc, "--json", "stats", vf))["vfs"][0]


def sim_ctl(root, req):
    """One request on the sim's control socket; its reply (ok checked)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(os.path.join(root, "sim-ctl.sock"))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    r = json.loads(buf)
    if not r.get("ok"):
        raise GuestError("sim %s: %s" % (req, r))
    return r


def sim_counters(root, bdf):
    """The sim's counters of one function (PF or VF): rx/tx, resets, client_disconnects, ..."""
    return sim_ctl(root, {"cmd": "counters", "bdf": bdf})


def dump_logs(work, tail=2500):
    for name in sorted(os.listdir(work)):
        if name.endswith(".log"):
            print("---- %s (last lines)" % name)
            with open(os.path.join(work, name), "rb") as f:
                print(f.read()[-tail:].decode(errors="replace"))


def run_test(prefix, body):
    """The frame of a QEMU test: skip without QEMU (77), a work dir, the
    guest kernel, body(work, kernel, initrd); on failure the logs; processes
    stopped by PID either way.  Returns the exit status."""
    if not shutil.which("qemu-system-x86_64"):
        print("qemu-system-x86_64 not installed: skipped")
        return 77
    work = tempfile.mkdtemp(prefix=prefix)
    ok = False
    try:
        kernel, initrd = build_guest(BUILD)
        log("guest kernel %s" % os.path.basename(kernel))
        body(work, kernel, initrd)
        ok = True
    except (GuestError, subprocess.CalledProcessError, OSError) as e:
        print("FAIL: %s" % e)
        dump_logs(work)
    finally:
        stop_all()
        if ok and not os.environ.get("VFE_TEST_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    log("passed" if ok else "failed (logs in %s)" % work)
    return 0 if ok else 1
