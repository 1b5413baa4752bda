"""The systemd VM: the cloud kernel, a busybox initrd that mounts /dev/vda and
switch_roots to systemd, the Debian 12 root of build-sysvm with snapshot=on
(writes go to QEMU's temporary overlay: kept across the VM's reboots, the
cached image is never written), and a payload disk
(/dev/vdb, ext4 made with mkfs.ext4 -d) carrying the .debs and test tools in.
The VM also has an intel-iommu and one virtio-net-pci function (VFIO_FN) for
kernel VFIO.  QEMU reboots the VM in place (no -no-reboot); the serial console is driven as
the test guests' is (vfe_guests.Guest: "VFE-CMD-DONE rc=N")."""
import os
import subprocess
import sys

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "guests"))
import vfe_guests  # noqa: E402
from vfe_guests import GuestError  # noqa: E402,F401


def build_sysvm(build_dir):
    """(kernel, initrd, root image) from build-sysvm (cached in build_dir/sysvm-cache)."""
    r = subprocess.run([os.path.join(HERE, "build-sysvm"), build_dir], capture_output=True, text=True)
    if r.returncode != 0:
        raise GuestError("build-sysvm failed: %s" % r.stderr.strip())
    return tuple(r.stdout.split())


def make_payload(workdir, payload_dir):
    """This run's payload image (in workdir) holding payload_dir's files."""
    payload = os.path.join(workdir, "payload.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "payload", "-d", payload_dir, payload, "128M"], check=True,
                   capture_output=True)
    return payload


class SysVM(vfe_guests.Guest):
    VFIO_FN = "0000:01:00.0"

    def __init__(self, workdir, kernel, initrd, root_disk, payload_disk, mem="1G"):
        super().__init__("sysvm", workdir, kernel, initrd, vhost_sock=None, mac=None, ip=None, reboot=True, qmp=True)
        self.root_disk, self.payload_disk, self.mem = root_disk, payload_disk, mem

    def cmdline(self):
        return [
            "qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-smp", "1", "-m", self.mem,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", self.kernel, "-initrd", self.initrd,
            "-append", "console=ttyS0 quiet loglevel=3 systemd.show_status=false panic=-1 net.ifnames=0 "
                       "intel_iommu=on",
            # one virtio-net function behind an IOMMU for vhostmgmt bind (kernel VFIO), alone in its
            # root port (its own IOMMU group); no netdev: nothing leaves the VM
            "-device", "intel-iommu,intremap=on,caching-mode=on",
            "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,addr=0x4",
            "-device", "virtio-net-pci,id=nic0,bus=rp1,disable-legacy=on,iommu_platform=on,page-per-vq=on",
            "-drive", "file=%s,format=raw,if=virtio,snapshot=on,cache=unsafe" % self.root_disk,
            "-drive", "file=%s,format=raw,if=virtio,cache=unsafe" % self.payload_disk,
            "-chardev", "socket,id=ser,path=%s,server=on,wait=off" % self.serial_path, "-serial", "chardev:ser",
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
        ]

    def wait_ready(self, timeout=150):
        """Until the console unit runs: the boot is over; returns systemd's state
        (running, or degraded with a failed unit)."""
        self.expect("VFE-GUEST-READY", timeout)
        return self.expect("\n", 5).strip()

    def must(self, cmd, what, timeout=30):
        """Run cmd in the VM; its output, or GuestError naming what failed."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError("%s: '%s' exited %d:\n%s" % (what, cmd, rc, out.strip()))
        return out
