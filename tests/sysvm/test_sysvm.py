#!/usr/bin/env python3
"""vfe's .debs under a real systemd: a Debian 12 VM (TCG) booted with systemd
as PID 1 (build-sysvm) gets build/deb's vfe and vfe-dpu-sim installed offline
with apt, then:

- install: nothing starts by itself during the install (policy-rc.d, so that
  the test starts the units), vfe-vhostd is enabled, every Documentation= of
  the units is an installed man page or file;
- `systemctl start vfe-dpu-sim vfe-vhostd`: vfe-vhostd-ha is pulled in and
  active before vfe-vhostd's process starts, the sim was ready (Type=notify)
  before it too, and the daemon reads the sim's tree (the drop-in);
- the sandbox is in force (capability bounding set, seccomp, private /dev);
- a PF and two VFs provisioned with vhostmgmt, their sockets there, in the
  --rpc-group and --socket-group given in /etc/default/vfe-vhostd: a member of
  the RPC group calls the RPC socket, a member of the vhost-user sockets' group
  (QEMU's) and a non-member cannot; --compat-tcp answers on
  127.0.0.1 through the unit's IP firewall (IPAddressAllow=localhost);
- frames between the two VFs through the sim, byte for byte, from two
  vfe-frontend sessions (one per VF's vhost-user socket);
- journald priorities: a second front-end on a VF's socket is refused with a
  warning, in `journalctl -p warning`;
  `-p err` has no info or notice line, the daemon's "<N>" prefixes are gone;
- `systemctl restart vfe-vhostd` resumes through vfe-vhostd-ha (the same HA
  process, health's last_resume: 1 PF and 2 VFs resumed, none reset), the
  front-end sessions survive and frames still flow both ways;
- `systemctl stop vfe-vhostd vfe-vhostd-ha`: both inactive with result
  success, no failed unit, no vfe process left;
- `systemctl reboot`: after the boot the provisioning is back with no
  operator action (the units active, both VFs listed, their sockets serving:
  frames both ways again);
- kernel VFIO under the same sandbox (the VM has an intel-iommu and one
  virtio-net-pci function): with the sim's drop-in masked, vfe-vhostd on
  /sys/bus/pci, vfio-pci loaded before it by modprobe@vfio_pci.service,
  `vhostmgmt bind` takes the function, its group node shows in the daemon's
  private /dev, `vf -a --direct` serves it and a front-end starts its rings.
Every wait is bounded; QEMU is killed by PID at the end.  VFE_SYSVM_KEEP=1
keeps the work directory (the console's log: sysvm.log)."""
import glob
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vfe_sysvm  # noqa: E402
from vfe_sysvm import GuestError  # noqa: E402

BUILD = os.path.abspath(os.environ.get("VFE_BUILD_DIR", os.path.join(HERE, "..", "..", "build")))
DEB_DIR = os.path.join(BUILD, "deb")
FRONTEND = os.path.join(BUILD, "tests", "frontend", "vfe-frontend")
PF = "0000:3b:00.0"
VFS = ["0000:3b:00.1", "0000:3b:00.2"]
# the sim's MAC of VF n of its first PF: 02:fe:00:00:00:n (--mac-prefix default)
MACS = {VFS[0]: bytes.fromhex("02fe00000001"), VFS[1]: bytes.fromhex("02fe00000002")}
SOCK = "/tmp/vf-%s"          # vfe-vhostd's default --iface prefix + BDF
PER_ROUND = 16
GROUP = "vfe-ops"            # --rpc-group in /etc/default/vfe-vhostd; user "op" is a member
QEMU_GROUP = "vfe-qemu"      # --socket-group (the vhost-user sockets'); user "qemu" is a member
COMPAT_PORT = 12190          # --compat-tcp, on loopback (IPAddressAllow=localhost)
PAYLOAD = "/mnt/payload"
T0 = time.time()
# frames each front-end sends: FRAMES[tag][vf], written to the payload disk as TAG-I.hex
FRAMES = {}


def log(msg):
    print("[%5.1f s] %s" % (time.time() - T0, msg), flush=True)


def frames(rng, n, dst, src, tag):
    """n frames dst <- src of 60..1514 bytes, ethertype 0x88b5 (local experimental), tagged, random payload."""
    out = []
    for i in range(n):
        size = rng.choice([60, 64, 128, 512, 1000, 1514])
        body = bytes([tag, i]) + rng.randbytes(size - 16)
        out.append(dst + src + b"\x88\xb5" + body)
    return out


def poll(what, fn, timeout, step=0.5):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise GuestError("timed out (%d s) waiting for %s" % (timeout, what))
        time.sleep(step)


class Test:
    def __init__(self, vm):
        self.vm = vm

    def sh(self, cmd, what, timeout=60):
        return self.vm.must(cmd, what, timeout)

    def ok(self, cmd, timeout=30):
        return self.vm.run(cmd, timeout)[0] == 0

    def out(self, cmd, timeout=30):
        return self.vm.run(cmd, timeout)[1]

    def mgmt_json(self, args, what):
        return json.loads(self.sh("vhostmgmt --json " + args, what))

    def show(self, unit, *props):
        text = self.sh("systemctl show -p %s %s" % (",".join(props), unit), "systemctl show " + unit)
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    # -- steps ------------------------------------------------------------------------------------------------
    def install(self):
        self.sh("mkdir -p %s && mount -o ro /dev/vdb %s" % (PAYLOAD, PAYLOAD), "mounting the payload disk")
        # the test starts the units itself: no start from the maintainer scripts
        self.sh("printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d",
                "policy-rc.d")
        t = time.time()
        self.sh("cd %s && DEBIAN_FRONTEND=noninteractive apt-get install -q -y "
                "$PWD/vfe_*.deb $PWD/vfe-dpu-sim_*.deb" % PAYLOAD, "apt install of the .debs", timeout=180)
        self.sh("rm /usr/sbin/policy-rc.d", "policy-rc.d")
        log("apt install ./vfe_*.deb ./vfe-dpu-sim_*.deb: %.1f s" % (time.time() - t))
        for path in ("/usr/sbin/vfe-vhostd", "/usr/sbin/vfe-vhostd-ha", "/usr/bin/vhostmgmt", "/usr/bin/vfe-dpu-sim",
                     "/lib/systemd/system/vfe-vhostd.service.d/vfe-dpu-sim.conf"):
            self.sh("test -e %s" % path, "installed " + path)
        enabled = self.out("systemctl is-enabled vfe-vhostd").strip()
        if enabled != "enabled":
            raise GuestError("vfe-vhostd.service after install: is-enabled says %r" % enabled)
        active = self.out("systemctl is-active vfe-vhostd vfe-vhostd-ha vfe-dpu-sim").split()
        if active != ["inactive"] * 3:
            raise GuestError("units started during the install despite policy-rc.d: %s" % active)
        self.documentation()
        # operators' group for the RPC socket, QEMU's group for the vhost-user sockets (docs/libvirt.md)
        self.sh("groupadd %s && useradd -M -G %s op" % (GROUP, GROUP), "an RPC group and a member")
        self.sh("groupadd %s && useradd -M -G %s qemu" % (QEMU_GROUP, QEMU_GROUP), "a socket group and a member")
        self.sh("echo 'VFE_VHOSTD_OPTS=\"--rpc-group %s --socket-group %s --compat-tcp %d\"' >> /etc/default/vfe-vhostd"
                % (GROUP, QEMU_GROUP, COMPAT_PORT), "vfe-vhostd options")
        # two VFs, one queue pair (TCG): the sim's conffile, as an operator edits it
        self.sh("printf 'VFE_SIM_VFS=2\\nVFE_SIM_OPTS=\"--qpairs 1\"\\n' >> /etc/default/vfe-dpu-sim", "sim options")
        self.sh("install -m 755 %s/vfe-frontend /usr/local/bin/" % PAYLOAD, "vfe-frontend")

    def documentation(self):
        """Every Documentation= of the units (with the sim's drop-in) is an installed file."""
        seen = []
        for unit in ("vfe-vhostd", "vfe-vhostd-ha", "vfe-dpu-sim"):
            for uri in self.show(unit, "Documentation")["Documentation"].replace('"', "").split():
                m = re.fullmatch(r"man:([\w.-]+)\((\d)\)", uri)
                if m:
                    path = "/usr/share/man/man%s/%s.%s.gz" % (m.group(2), m.group(1), m.group(2))
                elif uri.startswith("file://"):
                    path = uri[len("file://"):]
                else:
                    raise GuestError("%s: Documentation=%s is neither man: nor file://" % (unit, uri))
                self.sh("test -f %s" % path, "%s: Documentation=%s installed as %s" % (unit, uri, path))
                seen.append(uri)
        log("Documentation= of the units, all installed: %s" % " ".join(seen))

    def start(self):
        t = time.time()
        self.sh("systemctl start vfe-dpu-sim vfe-vhostd", "systemctl start vfe-dpu-sim vfe-vhostd", timeout=120)
        log("systemctl start vfe-dpu-sim vfe-vhostd: %.1f s" % (time.time() - t))
        active = self.out("systemctl is-active vfe-dpu-sim vfe-vhostd-ha vfe-vhostd").split()
        if active != ["active"] * 3:
            raise GuestError("after start: is-active of sim, ha, daemon: %s" % active)
        ha = self.show("vfe-vhostd-ha", "ActiveEnterTimestampMonotonic", "MainPID")
        sim = self.show("vfe-dpu-sim", "ActiveEnterTimestampMonotonic", "Type")
        d = self.show("vfe-vhostd", "ExecMainStartTimestampMonotonic", "MainPID")
        t_ha, t_sim = int(ha["ActiveEnterTimestampMonotonic"]), int(sim["ActiveEnterTimestampMonotonic"])
        t_d = int(d["ExecMainStartTimestampMonotonic"])
        if not (0 < t_ha < t_d and 0 < t_sim < t_d):
            raise GuestError("order: HA active at %d, sim ready at %d, daemon's process started at %d (us)"
                             % (t_ha, t_sim, t_d))
        if sim["Type"] != "notify":
            raise GuestError("vfe-dpu-sim.service Type=%s" % sim["Type"])
        log("vfe-vhostd-ha active %.0f ms and vfe-dpu-sim ready (Type=notify) %.0f ms before vfe-vhostd's process"
            % ((t_d - t_ha) / 1000, (t_d - t_sim) / 1000))
        self.ha_pid = ha["MainPID"]
        text = self.out("journalctl -b -u vfe-vhostd -o cat")
        if "PCI tree /run/vfe-dpu-sim" not in text:
            raise GuestError("vfe-vhostd did not take the sim's tree from the drop-in:\n" + text[-1500:])

    def sandbox(self):
        pid = self.show("vfe-vhostd", "MainPID")["MainPID"]
        status = self.sh("cat /proc/%s/status" % pid, "the daemon's status")
        bnd = int(re.search(r"^CapBnd:\s*(\S+)", status, re.M).group(1), 16)
        want = (1 << 0) | (1 << 1) | (1 << 3) | (1 << 14)   # CHOWN DAC_OVERRIDE FOWNER IPC_LOCK
        seccomp = re.search(r"^Seccomp:\s*(\d+)", status, re.M).group(1)
        nnp = re.search(r"^NoNewPrivs:\s*(\d+)", status, re.M).group(1)
        if bnd != want or seccomp != "2" or nnp != "1":
            raise GuestError("vfe-vhostd runs with CapBnd %#x (want %#x), Seccomp %s, NoNewPrivs %s"
                             % (bnd, want, seccomp, nnp))
        # its /dev: pseudo devices only (no disk), /run and the state dir writable, /usr not
        devs = self.sh("nsenter -t %s -m ls /dev" % pid, "the daemon's /dev").split()
        if "vda" in devs or "null" not in devs:
            raise GuestError("the daemon's /dev is not private: %s" % devs)
        ro = self.out("nsenter -t %s -m sh -c 'touch /usr/vfe-rw-probe' 2>&1" % pid)
        if "Read-only" not in ro:
            raise GuestError("the daemon's /usr is writable (ProtectSystem=strict): %s" % ro.strip())
        # sysfs read-only (ProtectKernelTunables) except where binding to vfio-pci writes
        mounts = {}
        for line in self.sh("nsenter -t %s -m cat /proc/self/mountinfo" % pid, "the daemon's mounts").splitlines():
            f = line.split()
            mounts[f[4]] = f[5].split(",")[0]
        want_modes = {"/sys": "ro", "/sys/bus/pci": "rw", "/sys/devices": "rw", "/": "ro", "/run": "rw",
                      "/var/lib/vfe-vhostd": "rw"}
        got_modes = {m: mounts.get(m) for m in want_modes}
        if got_modes != want_modes:
            raise GuestError("the daemon's mounts: %s, want %s" % (got_modes, want_modes))
        log("sandbox: CapBnd %#x, seccomp filter, NoNewPrivs, private /dev (%d nodes), mounts %s"
            % (bnd, len(devs), " ".join("%s:%s" % kv for kv in got_modes.items())))

    def provision(self):
        self.sh("vhostmgmt mgmtpf -a %s" % PF, "vhostmgmt mgmtpf -a")
        for vf in VFS:
            self.sh("vhostmgmt vf -a %s" % vf, "vhostmgmt vf -a " + vf)
        self.check_provisioned("after vhostmgmt")
        self.socket_group()

    def socket_group(self):
        """--rpc-group and --socket-group under the unit: the sockets are 0660 in their groups (CAP_CHOWN
        kept), the runtime directory lets an RPC group member through to the RPC socket; QEMU's group and
        a non-member are kept out."""
        want = {"/run/vfe-vhostd/vhostd.sock": "660 " + GROUP, SOCK % VFS[0]: "660 " + QEMU_GROUP,
                "/run/vfe-vhostd/ha.sock": "600 root"}
        got = {p: self.out("stat -c '%%a %%G' %s" % p).strip() for p in want}
        if got != want:
            raise GuestError("socket modes and groups: %s, want %s" % (got, want))
        self.sh("runuser -u op -- vhostmgmt version", "vhostmgmt as a member of " + GROUP)
        for user in ("nobody", "qemu"):
            rc, out = self.vm.run("runuser -u %s -- vhostmgmt version" % user)
            if rc == 0:
                raise GuestError("vhostmgmt as %s (not in %s) was served: %s" % (user, GROUP, out))
        log("--rpc-group %s, --socket-group %s: sockets %s; a member calls the RPC, qemu and nobody are refused"
            % (GROUP, QEMU_GROUP, ", ".join("%s %s" % kv for kv in got.items())))
        # --compat-tcp through the unit's IP firewall (loopback allowed) and its caller check (sock_diag over
        # AF_NETLINK names the client's owner): root is served, nobody is refused (bash's /dev/tcp as the client)
        for user, want in (("root", 0), ("nobody", -13)):
            reply = self.sh("timeout 10 runuser -u %s -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; "
                            "echo \"{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":1,\\\"method\\\":\\\"version\\\"}\" >&3; "
                            "head -1 <&3'" % (user, COMPAT_PORT), "a version request on TCP as " + user)
            try:
                code = json.loads(reply)["result"]["errno"]
            except (ValueError, KeyError, TypeError):
                code = None
            if code != want:
                raise GuestError("--compat-tcp on 127.0.0.1:%d as %s answered %r, want errno %d"
                                 % (COMPAT_PORT, user, reply, want))
            log("--compat-tcp %d as %s: %s" % (COMPAT_PORT, user, reply.strip()[:120]))

    def check_provisioned(self, when):
        listed = self.mgmt_json("vf -l %s" % PF, "vhostmgmt vf -l")
        text = json.dumps(listed)
        missing = [vf for vf in VFS if vf not in text]
        if missing:
            raise GuestError("%s: vf -l %s lacks %s: %s" % (when, PF, missing, text))
        for vf in VFS:
            self.sh("test -S %s" % (SOCK % vf), "%s: %s's vhost-user socket" % (when, vf))
        log("%s: %s with VFs %s listed, their sockets there" % (when, PF, ", ".join(VFS)))

    def journal(self):
        """A second front-end on a VF's socket while the first is connected: vfe-vhostd refuses it with a
        warning.  Called while the front-ends run."""
        sock = SOCK % VFS[0]
        rc, out = self.vm.run("vfe-frontend --socket %s --timeout 5000 probe" % sock, 60)
        if rc == 0:
            raise GuestError("a second front-end on %s was served: %s" % (sock, out))
        bad = "second front-end on %s refused" % sock
        entries = []
        for line in self.sh("journalctl -b -u vfe-vhostd -o json --output-fields=PRIORITY,MESSAGE",
                            "journalctl -o json").splitlines():
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass
        warn = self.out("journalctl -b -u vfe-vhostd -p warning -o cat")
        err = self.out("journalctl -b -u vfe-vhostd -p err -o cat")
        mine = [e for e in entries if bad in str(e.get("MESSAGE"))]
        if not mine or bad not in warn:
            raise GuestError("the refused front-end is not in journalctl -p warning:\n%s\nall entries: %s" % (warn, entries))
        infos = [e for e in entries if e.get("PRIORITY") in ("5", "6")]
        if not infos:
            raise GuestError("no notice/info entry from vfe-vhostd (the ready line?): %s" % entries)
        leaked = [e["MESSAGE"] for e in infos if e["MESSAGE"] in err]
        if leaked:
            raise GuestError("journalctl -p err shows notice/info lines: %s" % leaked)
        prefixed = [e["MESSAGE"] for e in entries if re.match(r"<\d>", str(e.get("MESSAGE")))]
        if prefixed:
            raise GuestError("syslog prefixes reached the journal as text: %s" % prefixed[:3])
        log("journal: '%s' at priority %s in -p warning; -p err holds none of %d notice/info entries"
            % (mine[0]["MESSAGE"][:80], mine[0]["PRIORITY"], len(infos)))

    # -- frames -----------------------------------------------------------------------------------------------
    def start_frontends(self, tag, rounds):
        """One vfe-frontend exchange per VF, each sending PER_ROUND frames a round to the other VF
        (frames from the payload disk: FRAMES[tag][vf])."""
        self.rounds, self.tx = rounds, FRAMES[tag]
        for i in range(len(VFS)):
            self.sh("rm -f /tmp/rx%d.hex /tmp/go%d-* /tmp/fe%d.*" % (i, i, i), "cleaning up")
        for i, vf in enumerate(VFS):
            self.sh("vfe-frontend --socket %s --frames %s/%s-%d.hex --dump /tmp/rx%d.hex --rounds %d --count %d "
                    "--timeout 30000 --go /tmp/go%d- exchange </dev/null >/tmp/fe%d.json 2>/tmp/fe%d.log & "
                    "echo $! > /tmp/fe%d.pid" % (SOCK % vf, PAYLOAD, tag, i, i, rounds, PER_ROUND, i, i, i, i),
                    "starting vfe-frontend on " + vf)
        for i, vf in enumerate(VFS):
            poll("vfe-frontend on %s ready" % vf,
                 lambda: "round 0 waits" in self.out("cat /tmp/fe%d.log" % i), 60)

    def round(self, r):
        for i in range(len(VFS)):
            self.sh("touch /tmp/go%d-%d" % (i, r), "go")
        want = "round %d: sent %d, received %d" % (r, PER_ROUND * (r + 1), PER_ROUND * (r + 1))
        for i, vf in enumerate(VFS):
            poll("round %d of the front-end on %s" % (r, vf),
                 lambda: self.fe_log_has(i, want), 90, 1)
        for i, vf in enumerate(VFS):
            got = [bytes.fromhex(x) for x in self.out("cat /tmp/rx%d.hex" % i).split()]
            sent = self.tx[VFS[1 - i]][:PER_ROUND * (r + 1)]
            if got != sent:
                raise GuestError("round %d: %s received %d frames, %d of them as %s sent them (want all %d)"
                                 % (r, vf, len(got), sum(a == b for a, b in zip(got, sent)), VFS[1 - i], len(sent)))
        log("round %d: %d frames each way between %s and %s, byte for byte" % (r, PER_ROUND, VFS[0], VFS[1]))

    def fe_log_has(self, i, want):
        text = self.out("cat /tmp/fe%d.log" % i)
        if "(failed)" in text or "exchange:" in text:
            raise GuestError("vfe-frontend %d failed:\n%s" % (i, text))
        return want in text

    def finish_frontends(self):
        for i in range(len(VFS)):
            self.sh("touch /tmp/go%d-%d" % (i, self.rounds), "go")
        for i, vf in enumerate(VFS):
            poll("vfe-frontend on %s to finish" % vf, lambda: not self.ok("kill -0 $(cat /tmp/fe%d.pid)" % i), 60)
            res = re.search(r"^\{\"command\":\"exchange\".*\}\s*$", self.out("cat /tmp/fe%d.json" % i), re.M)
            if not res:
                raise GuestError("vfe-frontend on %s printed no result:\n%s" % (vf, self.out("cat /tmp/fe%d.log" % i)))
            res = json.loads(res.group(0))
            n = PER_ROUND * self.rounds
            if res["sent"] != n or res["received"] != n or res["rx_errors"]:
                raise GuestError("vfe-frontend on %s: %s" % (vf, res))

    # -- restart, stop, reboot --------------------------------------------------------------------------------
    def restart(self):
        before = self.show("vfe-vhostd", "MainPID")["MainPID"]
        t = time.time()
        self.sh("systemctl restart vfe-vhostd", "systemctl restart vfe-vhostd", timeout=120)
        log("systemctl restart vfe-vhostd: %.1f s" % (time.time() - t))
        after = self.show("vfe-vhostd", "MainPID", "ActiveState")
        ha = self.show("vfe-vhostd-ha", "MainPID", "ActiveState")
        if after["ActiveState"] != "active" or after["MainPID"] == before:
            raise GuestError("vfe-vhostd after restart: %s (pid before %s)" % (after, before))
        if ha["ActiveState"] != "active" or ha["MainPID"] != self.ha_pid:
            raise GuestError("vfe-vhostd-ha did not survive the restart: %s (pid before %s)" % (ha, self.ha_pid))
        health = poll("health's last_resume", lambda: (self.mgmt_json("health", "vhostmgmt health").get("ha") or {})
                      .get("last_resume"), 30)
        counts = (health.get("pfs"), health.get("vfs"), health.get("reset_pfs"), health.get("reset_vfs"))
        if counts != (1, len(VFS), 0, 0):
            raise GuestError("after restart: health last_resume %s, want 1 PF and %d VFs resumed, none reset"
                             % (health, len(VFS)))
        log("restart: the same vfe-vhostd-ha (pid %s); last_resume: %d PF, %d VFs resumed, none reset, in %.1f ms"
            % (self.ha_pid, counts[0], counts[1], health.get("ms", -1)))

    def status(self):
        out = self.sh("systemctl status --no-pager vfe-vhostd", "systemctl status vfe-vhostd")
        if "active (running)" not in out:
            raise GuestError("systemctl status vfe-vhostd:\n" + out)

    def stop(self):
        t = time.time()
        self.sh("systemctl stop vfe-vhostd vfe-vhostd-ha", "systemctl stop", timeout=120)
        log("systemctl stop vfe-vhostd vfe-vhostd-ha: %.1f s" % (time.time() - t))
        for unit in ("vfe-vhostd", "vfe-vhostd-ha"):
            st = self.show(unit, "ActiveState", "Result")
            if st != {"ActiveState": "inactive", "Result": "success"}:
                raise GuestError("%s after stop: %s" % (unit, st))
        failed = self.out("systemctl list-units --failed --no-legend --plain").strip()
        if failed:
            raise GuestError("failed units after stop: %s" % failed)
        procs = self.out("for p in /proc/[0-9]*; do c=$(cat $p/comm 2>/dev/null); "
                         "case $c in vfe-vhostd*) echo ${p#/proc/} $c;; esac; done").strip()
        if procs:
            raise GuestError("processes left after stop: %s" % procs)
        log("stop: both units inactive with result success, no failed unit, no vfe-vhostd process")

    def reboot(self):
        t = time.time()
        self.vm.buf = b""
        self.vm.sock.sendall(b"systemctl reboot\n")
        state = self.vm.wait_ready(180)
        log("reboot: up again in %.1f s, systemd %s" % (time.time() - t, state))
        if state != "running":
            raise GuestError("after reboot the system is %s: %s" % (state, self.out("systemctl --failed")))
        active = self.out("systemctl is-active vfe-dpu-sim vfe-vhostd-ha vfe-vhostd").split()
        if active != ["active"] * 3:
            raise GuestError("after reboot: is-active of sim, ha, daemon: %s" % active)
        poll("the provisioning re-applied", lambda: all(self.ok("test -S %s" % (SOCK % vf)) for vf in VFS), 60)
        self.check_provisioned("after reboot, no operator action")
        self.sh("mount -o ro /dev/vdb %s" % PAYLOAD, "mounting the payload disk again")

    def vfio(self):
        """Kernel VFIO under the sandbox: the daemon on the real /sys/bus/pci (the sim's drop-in masked),
        vfio-pci loaded by modprobe@vfio_pci.service before it started, `vhostmgmt bind` of the VM's
        virtio-net function, the group node visible in the daemon's private /dev, `vf -a --direct` and a
        front-end that negotiates and starts the rings (guest memory mapped for DMA through the IOMMU)."""
        fn = vfe_sysvm.SysVM.VFIO_FN
        for vf in VFS:
            self.sh("vhostmgmt vf -r %s" % vf, "vhostmgmt vf -r " + vf)
        self.sh("vhostmgmt mgmtpf -r %s" % PF, "vhostmgmt mgmtpf -r")
        self.sh("mkdir -p /etc/systemd/system/vfe-vhostd.service.d && "
                "ln -s /dev/null /etc/systemd/system/vfe-vhostd.service.d/vfe-dpu-sim.conf && "
                "systemctl daemon-reload && systemctl stop vfe-dpu-sim && systemctl restart vfe-vhostd",
                "vfe-vhostd without the sim's drop-in", timeout=120)
        pid = self.show("vfe-vhostd", "MainPID")["MainPID"]
        text = self.out("journalctl -b -u vfe-vhostd -o cat _PID=%s" % pid)
        if "PCI tree /sys/bus/pci/devices" not in text:
            raise GuestError("vfe-vhostd without the drop-in does not read /sys/bus/pci/devices:\n" + text[-1500:])
        self.sh("test -d /sys/bus/pci/drivers/vfio-pci && test -c /dev/vfio/vfio",
                "vfio-pci loaded by modprobe@vfio_pci.service before vfe-vhostd")
        drv = self.out("basename $(readlink /sys/bus/pci/devices/%s/driver)" % fn).strip()
        self.sh("vhostmgmt bind %s --force" % fn, "vhostmgmt bind %s (was on %s)" % (fn, drv))
        now = self.out("basename $(readlink /sys/bus/pci/devices/%s/driver)" % fn).strip()
        group = self.out("basename $(readlink /sys/bus/pci/devices/%s/iommu_group)" % fn).strip()
        if now != "vfio-pci" or not group.isdigit():
            raise GuestError("%s after bind: driver %s, IOMMU group %r" % (fn, now, group))
        self.sh("nsenter -t %s -m test -c /dev/vfio/%s" % (pid, group),
                "/dev/vfio/%s in the daemon's private /dev" % group)
        sock = "/tmp/vfio-fn.sock"
        self.sh("vhostmgmt vf -a %s -v %s --direct" % (fn, sock), "vhostmgmt vf -a %s --direct" % fn)
        self.sh("test -S %s" % sock, "the socket of " + fn)
        probe = self.sh("vfe-frontend --socket %s --timeout 20000 probe" % sock, "vfe-frontend probe of " + fn, 90)
        log("kernel VFIO under the sandbox: %s taken from %s by vhostmgmt bind (group %s, seen in the daemon's "
            "/dev), added in direct mode, a front-end negotiated and started its rings: %s"
            % (fn, drv or "no driver", group, probe.strip()[:160]))


def main():
    debs = sorted(glob.glob(os.path.join(DEB_DIR, "vfe_*.deb")) + glob.glob(os.path.join(DEB_DIR, "vfe-dpu-sim_*.deb")))
    if len(debs) != 2:
        print("FAIL: %s must hold one vfe_*.deb and one vfe-dpu-sim_*.deb (found %s): run ./scripts/build-deb first"
              % (DEB_DIR, [os.path.basename(d) for d in debs] or "none"))
        return 1
    if not os.access(FRONTEND, os.X_OK):
        print("FAIL: %s missing: build vfe first" % FRONTEND)
        return 1
    kernel, initrd, image = vfe_sysvm.build_sysvm(BUILD)
    log("VM image ready (build/sysvm-cache)")
    rng = random.Random(12)
    work = tempfile.mkdtemp(prefix="vfe-sysvm-")
    try:
        return run(work, kernel, initrd, image, debs, rng)
    finally:
        if os.environ.get("VFE_SYSVM_KEEP") == "1":
            print("kept %s (sysvm.log: the console)" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(work, kernel, initrd, image, debs, rng):
    """Every step in one VM; 0 when all passed."""
    payload_dir = os.path.join(work, "payload")
    os.makedirs(payload_dir)
    for d in debs + [FRONTEND]:
        shutil.copy(d, payload_dir)
    for tag, rounds in (("before-reboot", 2), ("after-reboot", 1)):
        FRAMES[tag] = {}
        for i, vf in enumerate(VFS):
            FRAMES[tag][vf] = frames(rng, PER_ROUND * rounds, MACS[VFS[1 - i]], MACS[vf], 0x10 * rounds + i)
            with open(os.path.join(payload_dir, "%s-%d.hex" % (tag, i)), "w") as f:
                f.write("".join(fr.hex() + "\n" for fr in FRAMES[tag][vf]))
    payload = vfe_sysvm.make_payload(work, payload_dir)
    vm = vfe_sysvm.SysVM(work, kernel, initrd, image, payload)
    t = Test(vm)
    try:
        vm.start()
        state = vm.wait_ready(180)
        log("booted, systemd %s" % state)
        if state != "running":
            raise GuestError("after boot the system is %s: %s" % (state, t.out("systemctl --failed")))
        t.install()
        t.start()
        t.sandbox()
        t.provision()
        t.start_frontends("before-reboot", 2)
        t.round(0)
        t.journal()
        t.restart()
        t.round(1)
        t.finish_frontends()
        t.status()
        t.stop()
        t.reboot()
        t.start_frontends("after-reboot", 1)
        t.round(0)
        t.finish_frontends()
        t.vfio()
    except GuestError as e:
        print("FAIL: %s" % e)
        try:
            print(t.out("journalctl -b --no-pager -u 'vfe*' | tail -40", 20))
        except GuestError:
            pass
        tail = open(vm.log_path, errors="replace").read()[-3000:]
        print("--- console tail ---\n" + tail)
        return 1
    finally:
        vm.kill()
    log("sysvm: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
