"""QEMU test guests (TCG) whose virtio-net device is a vhost-user back-end.

Guest memory is a shared memfd (vhost-user needs it), the NIC has vectors=0
(MSI-X with vhost-user crashes QEMU 7.2 under TCG), the serial console is a
unix socket the harness talks to: the guest's /init runs each line it reads
and answers "VFE-CMD-DONE rc=N".  Every wait is bounded.
"""
import json
import os
import re
import select
import signal
import socket
import subprocess
import time


class GuestError(Exception):
    pass


class Guest:
    def __init__(self, name, workdir, kernel, initrd, vhost_sock, mac, ip, vhost_server=False, reboot=False,
                 more_nics=(), smp=1, queues=1, qmp=False, incoming=None):
        """more_nics: (vhost_sock, mac) of further NICs, eth1 and on, configured by the test.
        queues: queue pairs of every NIC (needs smp >= queues for the guest to use them all).
        qmp: open a QMP socket (self.qmp_path).  incoming: a migration destination
        waiting paused (-S) on this URI."""
        self.name, self.dir = name, workdir
        self.kernel, self.initrd = kernel, initrd
        self.vhost_sock, self.mac, self.ip = vhost_sock, mac, ip
        self.nics = [(vhost_sock, mac)] + list(more_nics)
        self.vhost_server, self.reboot_ok = vhost_server, reboot
        self.serial_path = os.path.join(workdir, name + ".serial")
        self.log_path = os.path.join(workdir, name + ".log")
        self.smp, self.queues, self.incoming = smp, queues, incoming
        self.qmp_path = os.path.join(workdir, name + ".qmp") if qmp else None
        self.proc = None
        self.sock = None
        self.buf = b""
        self.log = open(self.log_path, "ab")

    def cmdline(self):
        nics = []
        for i, (sock, mac) in enumerate(self.nics):
            mq = ",queues=%d" % self.queues if self.queues > 1 else ""
            nics += ["-chardev", "socket,id=c%d,path=%s%s" % (i, sock, ",server=on,wait=off" if self.vhost_server else ""),
                     "-netdev", "vhost-user,id=n%d,chardev=c%d%s" % (i, i, mq),
                     "-device", "virtio-net-pci,netdev=n%d,mac=%s,disable-legacy=on,page-per-vq=on,vectors=0%s"
                     % (i, mac, ",mq=on" if mq else "")]
        extra = []
        if self.qmp_path:
            extra += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.incoming:
            extra += ["-incoming", self.incoming, "-S"]
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-smp", str(self.smp), "-m", "256M", "-nodefaults", "-no-user-config",
            "-display", "none", "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet panic=-1 vfe.ip=%s" % self.ip,
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-machine", "memory-backend=mem",
        ] + nics + [
            "-chardev", "socket,id=ser,path=%s,server=on,wait=off" % self.serial_path, "-serial", "chardev:ser",
        ] + extra + ([] if self.reboot_ok else ["-no-reboot"])

    def start(self):
        for own in (self.serial_path, self.qmp_path):
            if own and os.path.exists(own):
                os.unlink(own)
        self.proc = subprocess.Popen(self.cmdline(), stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise GuestError("%s: qemu exited with %s (see %s)" % (self.name, self.proc.returncode, self.log_path))
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.serial_path)
                self.sock = s
                self.buf = b""
                return
            except OSError:
                s.close()
                time.sleep(0.2)
        raise GuestError("%s: serial socket never appeared" % self.name)

    def _read(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return False
        data = self.sock.recv(65536)
        if not data:
            raise GuestError("%s: serial closed (qemu gone?)" % self.name)
        self.log.write(data)
        self.log.flush()
        self.buf += data
        return True

    def expect(self, marker, timeout):
        deadline = time.time() + timeout
        m = marker.encode()
        while m not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise GuestError("%s: no '%s' within %d s (see %s)" % (self.name, marker, timeout, self.log_path))
            self._read(min(left, 0.2))
        i = self.buf.index(m)
        out, self.buf = self.buf[:i], self.buf[i + len(m):]
        return out.decode(errors="replace")

    def wait_ready(self, timeout=90):
        self.expect("VFE-GUEST-READY", timeout)
        self.expect("\n", 5)

    def boot(self, timeout=120, log=print):
        """start + wait_ready, booting once more if the guest never printed a
        line while QEMU itself stays responsive (a 4-vCPU TCG guest has hung
        early in boot on a loaded machine).  A QEMU whose monitor does not
        answer may be blocked on its vhost-user back-end: that fails at once,
        as does a second silent boot.  Needs qmp=True."""
        self.start()
        try:
            self.wait_ready(timeout)
        except GuestError:
            if self.buf.strip() or not self.qmp_path:
                raise
            try:
                q = Qmp(self.qmp_path, timeout=5)
                status = q.call("query-status")["status"]
                q.close()
            except (GuestError, OSError) as e:
                raise GuestError("%s: no console output in %d s and QEMU's monitor does not answer (%s): blocked, "
                                 "maybe on its vhost-user back-end" % (self.name, timeout, e))
            log("%s: no console output in %d s, QEMU %s and answering: killed, booting again"
                % (self.name, timeout, status))
            self.kill()
            self.start()
            self.wait_ready(timeout)

    def run(self, cmd, timeout=30):
        self.sock.sendall(cmd.encode() + b"\n")
        out = self.expect("VFE-CMD-DONE rc=", timeout)
        rc = int(self.expect("\n", 5).strip() or "-1")
        return rc, out

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.sock:
            self.sock.close()
            self.sock = None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.sock:
            self.sock.close()
            self.sock = None


class Qmp:
    """A QMP client with bounded waits; events are skipped."""

    def __init__(self, path, timeout=20):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise GuestError("QMP socket %s never answered" % path)
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        self.buf = b""
        self._read()                       # greeting
        self.call("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise GuestError("QMP closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd, **args):
        self.sock.sendall(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise GuestError("QMP %s: %s" % (cmd, r["error"].get("desc")))

    def close(self):
        self.sock.close()


def guest_ram_fd(pid, size):
    """/proc path of QEMU's guest RAM: the memfd of exactly `size` bytes."""
    fddir = "/proc/%d/fd" % pid
    for n in os.listdir(fddir):
        try:
            link = os.readlink(os.path.join(fddir, n))
            if link.startswith("/memfd:memory-backend-memfd") and os.stat(os.path.join(fddir, n)).st_size == size:
                return os.path.join(fddir, n)
        except OSError:
            continue
    raise GuestError("no guest RAM memfd of %d bytes in %s" % (size, fddir))


def differing_pages(path_a, path_b, size, page=4096):
    """Pages (4 KiB) whose content differs between two RAM files."""
    bad = []
    chunk = 1 << 20
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        for off in range(0, size, chunk):
            x, y = a.read(chunk), b.read(chunk)
            if x == y:
                continue
            for p in range(0, len(x), page):
                if x[p:p + page] != y[p:p + page]:
                    bad.append((off + p) // page)
    return bad


def describe_pages(path_a, path_b, pages, page=4096, limit=8):
    """Lines saying how each of the first pages differs (for a failure report)."""
    out = []
    with open(path_a, "rb") as a, open(path_b, "rb") as b:
        for pg in pages[:limit]:
            a.seek(pg * page)
            b.seek(pg * page)
            x, y = a.read(page), b.read(page)
            diff = [i for i in range(page) if x[i] != y[i]]
            lo, hi = max(0, diff[0] - 64) & ~15, min(page, diff[-1] + 16)
            out.append("page %d (gpa %#x): %d bytes differ in [%#x, %#x]; at %#x source %s, destination %s"
                       % (pg, pg * page, len(diff), diff[0], diff[-1], lo, x[lo:hi].hex(), y[lo:hi].hex()))
    return out


def ping_summary(out):
    """(transmitted, received) from ping's closing statistics line."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", out)
    if not m:
        raise GuestError("no ping statistics in:\n" + out)
    return int(m.group(1)), int(m.group(2))


def build_guest(build_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.path.join(here, "build-guest"), os.path.join(build_dir, "guest-cache")],
                         check=True, capture_output=True, text=True).stdout.split()
    return out[0], out[1]
