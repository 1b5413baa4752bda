"""The host VM: a q35 TCG machine with an intel-iommu and virtio-net-pci
functions behind their own PCIe root ports (each alone in its IOMMU group,
with FLR, and page-per-vq=on: each queue's doorbell alone in a page, which
host notifiers need), whose QEMU netdevs are UDP sockets on loopback that the test reads
and writes from outside.  The console is driven like the test guests'
(vfe_guests.Guest: one command per line, "VFE-CMD-DONE rc=N")."""
import os
import socket
import subprocess
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "guests"))
import vfe_guests  # noqa: E402
from vfe_guests import GuestError  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))


def build_hostvm(build_dir):
    """(kernel, initrd) from build-hostvm (cached in build_dir/hostvm-cache)."""
    r = subprocess.run([os.path.join(HERE, "build-hostvm"), build_dir], capture_output=True, text=True)
    if r.returncode != 0:
        raise GuestError("build-hostvm failed: %s" % r.stderr.strip())
    kernel, initrd = r.stdout.split()
    return kernel, initrd


class Wire:
    """The outside end of one function's netdev: QEMU sends the function's
    frames to `port` and receives on `qemu_port`; one datagram is one frame."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.qemu_port = free_udp_port()

    def send(self, frame):
        self.sock.sendto(frame, ("127.0.0.1", self.qemu_port))

    def recv(self, timeout):
        """One frame or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None

    def drain(self):
        while self.recv(0.01) is not None:
            pass

    def close(self):
        self.sock.close()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HostVM(vfe_guests.Guest):
    """nics: list of (Wire, mac); function i sits behind root port i+1 at
    bus i+1, so its BDF is 0000:0i+1:00.0 (see bdf())."""

    def __init__(self, workdir, kernel, initrd, nics, mem="512M"):
        super().__init__("hostvm", workdir, kernel, initrd, vhost_sock=None, mac=None, ip=None, qmp=True)
        self.wires = nics
        self.mem = mem

    @staticmethod
    def bdf(i):
        return "0000:%02x:00.0" % (i + 1)

    def cmdline(self):
        nics = []
        for i, (wire, mac) in enumerate(self.wires):
            nics += ["-netdev", "socket,id=n%d,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d"
                     % (i, wire.port, wire.qemu_port),
                     "-device", "pcie-root-port,id=rp%d,bus=pcie.0,chassis=%d,addr=0x%x" % (i + 1, i + 1, i + 4),
                     "-device", "virtio-net-pci,id=nic%d,netdev=n%d,bus=rp%d,mac=%s,disable-legacy=on,"
                     "iommu_platform=on,page-per-vq=on"
                     % (i, i, i + 1, mac)]
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-smp", "1", "-m", self.mem,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-device", "intel-iommu,intremap=on,caching-mode=on",
            "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet intel_iommu=on panic=-1",
        ] + nics + [
            "-chardev", "socket,id=ser,path=%s,server=on,wait=off" % self.serial_path, "-serial", "chardev:ser",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
        ]

    def device_queues(self, i):
        """QEMU's view of function i's virtqueues (what the device saw), for a failure report."""
        q = vfe_guests.Qmp(self.qmp_path, timeout=5)
        path = "/machine/peripheral/nic%d/virtio-backend" % i
        try:
            st = q.call("x-query-virtio-status", path=path)
            out = ["device %s: status %s" % (path, [s.split(":")[0] for s in st["status"]["statuses"]])]
            for n in range(3):
                qs = q.call("x-query-virtio-queue-status", path=path, queue=n)
                out.append("queue %d: desc %#x avail %#x used %#x num %d, last_avail %d, used_idx %d, shadow_avail %d"
                           % (n, qs["vring-desc"], qs["vring-avail"], qs["vring-used"], qs["vring-num"],
                              qs["last-avail-idx"], qs["used-idx"], qs["shadow-avail-idx"]))
        finally:
            q.close()
        return "\n".join(out)

    def must(self, cmd, what, timeout=30):
        """Run cmd in the VM; its output, or GuestError naming what failed."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError("%s: '%s' exited %d:\n%s" % (what, cmd, rc, out.strip()))
        return out
