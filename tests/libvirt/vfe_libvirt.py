"""Two libvirt "hosts" on one machine, each with its own vfe-dpu-sim and
vfe-vhostd, and libvirt guests on vfe VFs (docs/libvirt.md).

A host is a set of namespaces (mount, UTS, network, pid) whose PID 1 is
host-init: its own hostname, /run (tmpfs), copies of /etc/libvirt,
/var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt under the host's
directory, its own /etc/hosts.  Commands run in it through nsenter.  The
host's PID 1 is the only process this module kills: SIGKILL to it ends every
process of the pid namespace (libvirtd, QEMU, the sim, vfe-vhostd) and with
them the mounts.  Nothing is written to the real /run, /etc/libvirt or
/var/lib/libvirt.
"""
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "guests"))
from vfe_guests import Guest, GuestError  # noqa: E402
from vfe_harness import MGMT, SIM, VHOSTD, log, poll, wait_file  # noqa: E402

PF = "0000:3b:00.0"
# The paths are the same on every host (each has its own /run and /var/lib/libvirt).
RPC = "/run/vfe-vhostd/vhostd.sock"
SOCK_DIR = "/run/vfe-vhost"
SIM_ROOT = "/run/vfe-dpu-sim"
IMAGES = "/var/lib/libvirt/images"
UPLINK_PORT = 4790
PRIVATE = ("/etc/libvirt", "/var/lib/libvirt", "/var/log/libvirt", "/var/cache/libvirt")

DOMAIN_XML = """<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/var/lib/libvirt/images/vfe-guest-vmlinuz</kernel>
    <initrd>/var/lib/libvirt/images/vfe-guest-initrd</initrd>
    <cmdline>console=ttyS0 quiet panic=-1 vfe.ip={ip}</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_reboot>destroy</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <interface type='vhostuser'>
      <mac address='{mac}'/>
      <source type='unix' path='{sock}' mode='{mode}'/>
      <model type='virtio'/>
      <driver queues='{queues}'/>
    </interface>
    <serial type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/{name}.serial'/>
    </serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:override>
    <qemu:device alias='net0'>
      <qemu:frontend>
        <qemu:property name='vectors' type='unsigned' value='0'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
"""


def domain_xml(name, uuid, mac, ip, sock, mode, queues=1):
    """The domain of docs/libvirt.md: mode 'client' when vfe-vhostd serves
    the socket, 'server' when it runs with --client; queues: queue pairs."""
    return DOMAIN_XML.format(name=name, uuid=uuid, mac=mac, ip=ip, sock=sock, mode=mode, queues=queues)


def die_with_parent():
    """In the child before exec: SIGKILL when the process that started it ends."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


PR_SET_PDEATHSIG = 1


class Host:
    """One libvirt host.  addr/peer_addr: the two ends of the veth pair."""

    def __init__(self, work, name, addr, peer_addr, host_uuid, mac_prefix, vhost_client=False):
        self.name, self.addr, self.peer_addr = name, addr, peer_addr
        self.mac_prefix, self.vhost_client = mac_prefix, vhost_client
        self.dir = os.path.join(work, name)
        self.host_uuid = host_uuid
        self.pid = None        # PID 1 of the host's pid namespace, as seen from here
        self.init = None       # unshare, its parent here
        self.spawned = []      # nsenter of each foreground daemon (it ends with the daemon)

    def prepare(self, peer_name, kernel, initrd):
        os.makedirs(self.dir + "/etc")
        os.makedirs(self.dir + "/var/lib")
        os.makedirs(self.dir + "/var/log")
        os.makedirs(self.dir + "/var/cache")
        for d in PRIVATE:
            if os.path.isdir(d):
                subprocess.run(["cp", "-a", d, self.dir + d], check=True)
            else:
                os.makedirs(self.dir + d)
        # no autostarted networks (the domains use no libvirt network)
        auto = self.dir + "/etc/libvirt/qemu/networks/autostart"
        if os.path.isdir(auto):
            for f in os.listdir(auto):
                os.unlink(os.path.join(auto, f))
        with open(self.dir + "/etc/libvirt/libvirtd.conf", "a") as f:
            f.write('\n# vfe test host %s\nhost_uuid = "%s"\nlisten_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n'
                    % (self.name, self.host_uuid))
        with open(self.dir + "/etc/libvirt/qemu.conf", "a") as f:
            f.write("\n# vfe test host %s: both libvirtd share one cgroup tree; no ownership xattrs left behind\n"
                    "cgroup_controllers = [ ]\nremember_owner = 0\n" % self.name)
        with open(self.dir + "/etc/hosts", "w") as f:
            f.write("127.0.0.1 localhost\n%s %s\n%s %s\n" % (self.addr, self.name, self.peer_addr, peer_name))
        img = self.dir + IMAGES
        os.makedirs(img, exist_ok=True)
        subprocess.run(["cp", kernel, img + "/vfe-guest-vmlinuz"], check=True)
        subprocess.run(["cp", initrd, img + "/vfe-guest-initrd"], check=True)
        os.chmod(self.dir, 0o755)

    def start(self):
        # If the test dies without its clean-up (SIGKILL at a meson time-out),
        # unshare gets SIGKILL from the kernel and --kill-child passes it on to
        # the host's PID 1: the whole host goes with the test.
        self.init = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--net", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc",
             "--propagation", "private", os.path.join(HERE, "host-init"), self.name, self.dir],
            stdout=open(self.path("host-init.log"), "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent)
        wait_file(self.path("ns-ready"), 10)
        kids = open("/proc/%d/task/%d/children" % (self.init.pid, self.init.pid)).read().split()
        if len(kids) != 1:
            raise GuestError("%s: unshare has children %s" % (self.name, kids))
        self.pid = int(kids[0])

    def path(self, name):
        return os.path.join(self.dir, name)

    def real(self, path):
        """Where a path inside the host is, seen from here (through its PID 1's root)."""
        return "/proc/%d/root%s" % (self.pid, path)

    def ns(self, net_only=False):
        return ["nsenter", "-t", str(self.pid), "-n"] + ([] if net_only else ["-m", "-u", "-p", "--wd=/"])

    def run(self, args, timeout=30, check=True, net_only=False):
        try:
            r = subprocess.run(self.ns(net_only) + ["--"] + args, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise GuestError("%s: %s: no exit within %d s" % (self.name, " ".join(args), timeout))
        if check and r.returncode:
            raise GuestError("%s: %s: exit %d: %s" % (self.name, " ".join(args), r.returncode,
                                                      (r.stderr or r.stdout).strip()))
        return r

    def spawn(self, args, logname):
        """A foreground daemon inside the host (nsenter stays its parent here)."""
        p = subprocess.Popen(self.ns() + ["--"] + args, stdout=open(self.path(logname), "ab"),
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.spawned.append(p)
        return p

    def start_libvirt(self):
        self.run(["virtlogd", "-d"])
        self.run(["libvirtd", "-d", "--listen"])
        poll("%s: libvirtd answers" % self.name,
             lambda: self.run(["virsh", "-c", "qemu:///system", "version"], check=False).returncode == 0, 30, 0.2)

    def start_vfe(self, socket_group="libvirt-qemu"):
        """The sim (its uplink on the veth) and vfe-vhostd with the vhost-user
        sockets in group socket_group; the socket directory as docs/libvirt.md
        says (mode 0750 group libvirt-qemu, or 0770 for QEMU's own sockets
        when vfe-vhostd runs with --client)."""
        self.run(["install", "-d", "-m", "0770" if self.vhost_client else "0750", "-g", "libvirt-qemu", SOCK_DIR])
        self.sim = self.spawn([os.path.abspath(SIM), "--root", SIM_ROOT, "--pf", PF, "--vfs", "4", "--uplink",
                               "udp:%s:%d,%s:%d" % (self.addr, UPLINK_PORT, self.peer_addr, UPLINK_PORT),
                               "--mac-prefix", self.mac_prefix], "sim.log")
        wait_file(self.real(SIM_ROOT + "/ready"), 10)
        args = [os.path.abspath(VHOSTD), "--pci-root", SIM_ROOT, "--rpc", RPC, "--no-state",
                "--socket-group", socket_group, "--iface", SOCK_DIR + "/vf-", "--log-level", "info"]
        self.vhostd = self.spawn(args + (["--client"] if self.vhost_client else []), "vhostd.log")
        poll("%s: vfe-vhostd ready" % self.name, lambda: b"ready: RPC" in open(self.path("vhostd.log"), "rb").read(),
             15, 0.05)
        self.mgmt("mgmtpf", "-a", PF)

    def mgmt(self, *args):
        return self.run([os.path.abspath(MGMT), "-s", RPC] + list(args)).stdout

    def virsh(self, *args, timeout=30, check=True):
        return self.run(["virsh", "-c", "qemu:///system"] + list(args), timeout=timeout, check=check)

    def domains(self):
        """{name: state} of the running (and paused) domains."""
        out = self.virsh("list", "--all", "--name").stdout.split()
        return {n: self.virsh("domstate", n).stdout.strip() for n in out}

    def qemu_pid(self, name):
        """PID (here) of the QEMU of domain name on this host."""
        my_ns = os.readlink("/proc/%d/ns/pid" % self.pid)
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % p) != my_ns:
                    continue
                cmd = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
            except OSError:
                continue
            guest = b"guest=%s," % name.encode()
            if cmd[0].endswith(b"qemu-system-x86_64") and any(arg.startswith(guest) for arg in cmd):
                return int(p)
        raise GuestError("%s: no QEMU of %s" % (self.name, name))

    def dump_logs(self, tail=2500):
        for rel in ("host-init.log", "sim.log", "vhostd.log", "var/log/libvirt/libvirtd.log"):
            p = self.path(rel)
            if os.path.exists(p):
                print("---- %s %s (last lines)" % (self.name, rel))
                with open(p, "rb") as f:
                    text = f.read()[-tail * 4:].decode(errors="replace")
                print("\n".join(x for x in text.splitlines() if "ethtool" not in x)[-tail:])
        qlog = self.path("var/log/libvirt/qemu")
        for n in sorted(os.listdir(qlog)) if os.path.isdir(qlog) else []:
            print("---- %s qemu/%s (last lines)" % (self.name, n))
            with open(os.path.join(qlog, n), "rb") as f:
                print(f.read()[-tail:].decode(errors="replace"))

    def stop(self):
        """The host's PID 1 gets SIGKILL: everything in it ends."""
        if self.init and self.init.poll() is None:
            if self.pid:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.init.wait(15)
            except subprocess.TimeoutExpired:
                self.init.kill()
                self.init.wait(5)
        for p in self.spawned:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def join(a, b):
    """The veth pair between two hosts, created in a's network namespace with
    its other end straight in b's: nothing appears in this namespace."""
    a.run(["ip", "link", "add", "vfe-" + a.name, "type", "veth", "peer", "name", "vfe-" + b.name, "netns",
           str(b.pid)], net_only=True)
    for h in (a, b):
        h.run(["ip", "addr", "add", h.addr + "/24", "dev", "vfe-" + h.name], net_only=True)
        h.run(["ip", "link", "set", "vfe-" + h.name, "up"], net_only=True)


class LibvirtGuest(Guest):
    """A test guest (tests/guests/build-guest) run by libvirt: started with
    `virsh create`, its serial console a unix socket QEMU binds in the host's
    /var/lib/libvirt/qemu."""

    def __init__(self, name, work, host, uuid, mac, ip, sock, mode, queues=1):
        super().__init__(name, work, None, None, sock, mac, ip, queues=queues)
        self.host, self.uuid, self.mode = host, uuid, mode
        self.xml_path = os.path.join(work, name + ".xml")
        with open(self.xml_path, "w") as f:
            f.write(domain_xml(name, uuid, mac, ip, sock, mode, queues))
        self.serial_path = host.real("/var/lib/libvirt/qemu/%s.serial" % name)

    def start(self):
        self.host.virsh("create", self.xml_path, timeout=60)
        self.attach(self.host)

    def attach(self, host):
        """Connect to the serial console on host (after a migration: the destination's)."""
        if self.sock:
            self.sock.close()
            self.sock = None
        self.host = host
        self.serial_path = host.real("/var/lib/libvirt/qemu/%s.serial" % self.name)
        deadline = time.time() + 20
        while True:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(self.serial_path)
                self.sock = s
                self.buf = b""
                return
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise GuestError("%s: serial socket %s never answered" % (self.name, self.serial_path))
                time.sleep(0.2)

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None

