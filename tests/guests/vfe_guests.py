"""QEMU test guests (TCG) whose virtio-net device is a vhost-user back-end.

Guest memory is a shared memfd (vhost-user needs it), the NIC has vectors=0
(MSI-X with vhost-user crashes QEMU 7.2 under TCG), the serial console is a
unix socket the harness talks to: the guest's /init runs each line it reads
and answers "VFE-CMD-DONE rc=N".  Every wait is bounded.
"""
import os
import select
import signal
import socket
import subprocess
import time


class GuestError(Exception):
    pass


class Guest:
    def __init__(self, name, workdir, kernel, initrd, vhost_sock, mac, ip, vhost_server=False, reboot=False,
                 more_nics=()):
        """more_nics: (vhost_sock, mac) of further NICs, eth1 and on, configured by the test."""
        self.name, self.dir = name, workdir
        self.kernel, self.initrd = kernel, initrd
        self.vhost_sock, self.mac, self.ip = vhost_sock, mac, ip
        self.nics = [(vhost_sock, mac)] + list(more_nics)
        self.vhost_server, self.reboot_ok = vhost_server, reboot
        self.serial_path = os.path.join(workdir, name + ".serial")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None
        self.sock = None
        self.buf = b""
        self.log = open(self.log_path, "ab")

    def cmdline(self):
        nics = []
        for i, (sock, mac) in enumerate(self.nics):
            nics += ["-chardev", "socket,id=c%d,path=%s%s" % (i, sock, ",server=on,wait=off" if self.vhost_server else ""),
                     "-netdev", "vhost-user,id=n%d,chardev=c%d" % (i, i),
                     "-device", "virtio-net-pci,netdev=n%d,mac=%s,disable-legacy=on,page-per-vq=on,vectors=0" % (i, mac)]
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-smp", "1", "-m", "256M", "-nodefaults", "-no-user-config",
            "-display", "none", "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet panic=-1 vfe.ip=%s" % self.ip,
            "-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-machine", "memory-backend=mem",
        ] + nics + [
            "-chardev", "socket,id=ser,path=%s,server=on,wait=off" % self.serial_path, "-serial", "chardev:ser",
        ] + ([] if self.reboot_ok else ["-no-reboot"])

    def start(self):
        if os.path.exists(self.serial_path):
            os.unlink(self.serial_path)
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


def build_guest(build_dir):
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.path.join(here, "build-guest"), os.path.join(build_dir, "guest-cache")],
                         check=True, capture_output=True, text=True).stdout.split()
    return out[0], out[1]
