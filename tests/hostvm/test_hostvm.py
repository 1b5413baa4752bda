#!/usr/bin/env python3
"""vfe on kernel VFIO, inside a host VM: q35 + intel-iommu (TCG) with two
virtio-net-pci functions whose netdevs are UDP sockets this test holds.

Inside the VM: vfe-vhostd --pci-root /sys/bus/pci/devices; function 1 stays on
its kernel driver and vhostmgmt's add of it is refused, naming the driver;
function 2 is bound to vfio-pci and served in direct mode on a vhost-user
socket; the test front-end (vfe-frontend exchange) plays QEMU:
  - its frames leave the VM on function 2's netdev byte for byte, and frames
    sent in from outside reach it byte for byte;
  - round 0 runs with vfe-vhostd stopped (SIGSTOP): kicks can only reach the
    device through ioeventfds and interrupts the front-end through MSI-X
    eventfds (vfio-msix counts in /proc/interrupts rise, the daemon runs
    --no-host-notifiers so every kick is an eventfd write);
  - round 1 follows a memory-table change (SET_MEM_TABLE, DMA remapped);
  - a second front-end connection on the same function (as after a QEMU restart);
  - the function is removed and added again and traffic flows again;
  - a new vfe-vhostd with host notifiers serves both functions with one VM id:
    their groups share one container, each guest-memory region is mapped once,
    two front-ends (memory at different GPAs) move frames through both at once,
    kicking through the mapped doorbell pages (page-per-vq=on);
  - function 1 is hot-unplugged (sysfs remove): the request IRQ makes vfe-vhostd
    release it, the removal completes and function 2 keeps serving.
VFE_HOSTVM_BENCH=N: after the test, N frames out through the same path, frames/s
as one JSON line (bench/run hostvm).
Exit 0 pass, 1 fail, 77 skipped (no qemu)."""
import json
import os
import random
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "guests"))
from vfe_hostvm import HostVM, Wire, build_hostvm  # noqa: E402
from vfe_harness import BUILD, GuestError, log, poll, run_test  # noqa: E402

MACS = ["52:54:00:12:00:01", "52:54:00:12:00:02"]
KERNEL_FN, VFIO_FN = 0, 1
OUTSIDE_MAC = bytes.fromhex("020000fe0001")
FE_MAC = bytes.fromhex("02fa00000001")
RPC = "/run/vhostd.sock"
SOCK = "/tmp/fn.sock"
VM_ID = "6c1b0d32-5e1f-4a70-9d1e-0000000000aa"     # one DMA domain for both functions
SOCKS = ["/tmp/fn0.sock", "/tmp/fn1.sock"]
GPA_BASES = [0, 0x100000000]        # the two front-ends' guest memory must not overlap in the shared IOVA space
PER_ROUND = 8                       # frames each way per round
SIZES = (60, 61, 64, 127, 128, 512, 1000, 1514)


def frames(rng, n, dst, src, tag):
    """n frames of varied sizes with distinct random payloads (0x88b5: local experimental ethertype)."""
    out = []
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        out.append(dst + src + b"\x88\xb5" + bytes([tag, i]) + rng.randbytes(size - 16))
    return out


def describe_mismatch(what, want, got):
    lines = ["%s: %d frames expected, %d arrived" % (what, len(want), len(got))]
    for i in range(max(len(want), len(got))):
        w = want[i] if i < len(want) else None
        g = got[i] if i < len(got) else None
        if w == g:
            continue
        if w is None or g is None:
            lines.append("  #%d: %s" % (i, "extra frame of %d bytes" % len(g) if w is None else "missing"))
            continue
        diff = [j for j in range(min(len(w), len(g))) if w[j] != g[j]]
        zeros = sum(1 for j in diff if g[j] == 0)
        lines.append("  #%d: %d bytes sent, %d arrived, %d bytes differ from offset %s (%d of them zero: "
                     "a DMA through an unmapped IOVA reads zeros)" % (i, len(w), len(g), len(diff),
                                                                      diff[0] if diff else "-", zeros))
        if len(lines) > 8:
            break
    return "\n".join(lines)


class Inside:
    """Commands in the host VM, each checked."""

    def __init__(self, vm):
        self.vm = vm

    def must(self, cmd, what, timeout=30):
        return self.vm.must(cmd, what, timeout)

    def ok(self, cmd, timeout=30):
        return self.vm.run(cmd, timeout)[0] == 0

    def out(self, cmd, timeout=30):
        return self.vm.run(cmd, timeout)[1]

    def value(self, cmd, what):
        """The last output line of cmd (the first lines echo the command)."""
        lines = [ln.strip() for ln in self.must(cmd, what).splitlines() if ln.strip()]
        return lines[-1] if len(lines) > 1 else ""

    def driver(self, bdf):
        return self.value("basename $(readlink /sys/bus/pci/devices/%s/driver) 2>/dev/null || echo none" % bdf,
                          "driver of " + bdf)

    def mgmt(self, args, timeout=30):
        return self.vm.run("vhostmgmt -s %s %s 2>&1" % (RPC, args), timeout)

    def stats(self, bdf):
        rc, out = self.mgmt("--json stats " + bdf)
        start = out.find("\n{")      # after the echoed command line
        try:
            return json.loads(out[start:])["vfs"][0]
        except (ValueError, KeyError, IndexError):
            raise GuestError("vhostmgmt stats %s (rc %d):\n%s" % (bdf, rc, out))

    def put_frames(self, path, fs):
        self.must("rm -f " + path, "rm " + path)
        for f in fs:
            self.must("echo %s >> %s" % (f.hex(), path), "writing " + path)

    def get_frames(self, path):
        out = self.must("cat %s" % path, "reading " + path)
        return [bytes.fromhex(ln.strip()) for ln in out.splitlines()
                if len(ln.strip()) >= 120 and re.fullmatch(r"([0-9a-f]{2})+", ln.strip())]

    def msix_count(self, bdf):
        """Interrupts counted on the function's vfio-msix vectors (the eventfds vfio-pci signals)."""
        out = self.out("grep 'vfio-msix.*%s' /proc/interrupts" % bdf)
        return sum(int(n) for ln in out.splitlines() if "vfio-msix" in ln and "grep" not in ln
                   for n in ln.split(":", 1)[1].split()[:1] if n.isdigit())

    def save(self, work, path):
        """Copy a file of the VM into the work dir (for a failed run's logs)."""
        try:
            data = self.out("cat " + path, 10)
            with open(os.path.join(work, "vm-" + os.path.basename(path) + ".log"), "w") as f:
                f.write(data)
        except GuestError:
            pass


def check_topology(vm):
    for i in (KERNEL_FN, VFIO_FN):
        bdf = HostVM.bdf(i)
        drv = vm.driver(bdf)
        if drv != "virtio-pci":
            raise GuestError("%s is bound to %s at boot, virtio-pci expected" % (bdf, drv))
        members = vm.must("ls /sys/bus/pci/devices/%s/iommu_group/devices" % bdf, "IOMMU group of " + bdf).split()
        if [m for m in members if m.startswith("0000:")] != [bdf]:
            raise GuestError("%s is not alone in its IOMMU group: %s (intel-iommu missing?)" % (bdf, members))
    log("host VM: %s and %s on virtio-pci, each alone in its IOMMU group" % (HostVM.bdf(0), HostVM.bdf(1)))


def start_daemon(vm, host_notifiers=False):
    vm.must("vfe-vhostd --no-state%s --pci-root /sys/bus/pci/devices --rpc %s --iface /tmp/vf- "
            "--log-level debug </dev/null >>/tmp/vhostd.log 2>&1 & echo $! > /tmp/vhostd.pid"
            % ("" if host_notifiers else " --no-host-notifiers", RPC), "starting vfe-vhostd")
    poll("vfe-vhostd's RPC socket", lambda: vm.ok("test -S " + RPC) or not vm.ok("kill -0 $(cat /tmp/vhostd.pid)"),
         20, 0.2)
    if not vm.ok("kill -0 $(cat /tmp/vhostd.pid)"):
        raise GuestError("vfe-vhostd exited at start:\n" + vm.out("cat /tmp/vhostd.log"))


def stop_daemon(vm, socks):
    """SIGTERM to vfe-vhostd (by its pid): it exits and takes its vhost-user sockets with it."""
    vm.must("kill -TERM $(cat /tmp/vhostd.pid)", "SIGTERM to vfe-vhostd")
    poll("vfe-vhostd to exit", lambda: not vm.ok("kill -0 $(cat /tmp/vhostd.pid)"), 10, 0.2)
    left = [p for p in socks + [RPC] if vm.ok("test -e " + p)]
    if left:
        raise GuestError("vfe-vhostd exited on SIGTERM but left %s behind" % left)
    vm.must("echo '--- vfe-vhostd stopped ---' >> /tmp/vhostd.log", "marking the log")


def refuse_kernel_bound(vm):
    bdf = HostVM.bdf(KERNEL_FN)
    rc, out = vm.mgmt("vf -a %s -v /tmp/kernel.sock" % bdf)
    msg = " ".join(ln for ln in out.splitlines() if "vhostmgmt -s" not in ln).strip()
    if rc == 0:
        raise GuestError("vhostmgmt vf -a %s (bound to virtio-pci, eth0 up in the kernel) was accepted:\n%s"
                         % (bdf, out))
    if "virtio-pci" not in msg:
        raise GuestError("vhostmgmt vf -a %s was refused, but the message does not say the function is bound to "
                         "its kernel driver virtio-pci: %s" % (bdf, msg))
    if vm.driver(bdf) != "virtio-pci" or not vm.ok("ls /sys/bus/pci/devices/%s/virtio*/net" % bdf):
        raise GuestError("the refused function %s lost its kernel driver or net device (now %s)"
                         % (bdf, vm.driver(bdf)))
    if vm.ok("test -e /tmp/kernel.sock"):
        raise GuestError("the refused add left /tmp/kernel.sock behind")
    log("vf -a of %s on its kernel driver refused: %s" % (bdf, msg))


def bind_vfio(vm, bdf):
    """Bind through vhostmgmt's bind command when it has one, else through sysfs; the group number."""
    help_text = vm.out("vhostmgmt --help 2>&1")
    if re.search(r"^\s+bind\b", help_text, re.M):
        # the function is on virtio-pci (its net device unused): taking it needs --force
        force = " --force" if re.search(r"^\s+bind\b.*--force", help_text, re.M) else ""
        rc, out = vm.mgmt("bind %s%s" % (bdf, force))
        if rc:
            raise GuestError("vhostmgmt bind %s%s failed:\n%s" % (bdf, force, out))
        how = "vhostmgmt bind" + force
    else:
        vm.must("echo %s > /sys/bus/pci/devices/%s/driver/unbind" % (bdf, bdf), "unbinding %s" % bdf)
        vm.must("echo vfio-pci > /sys/bus/pci/devices/%s/driver_override" % bdf, "driver_override of " + bdf)
        vm.must("echo %s > /sys/bus/pci/drivers_probe" % bdf, "drivers_probe of " + bdf)
        how = "sysfs (vhostmgmt has no bind command)"
    drv = vm.driver(bdf)
    if drv != "vfio-pci":
        raise GuestError("%s is bound to %s after binding through %s, vfio-pci expected" % (bdf, drv, how))
    group = vm.value("basename $(readlink /sys/bus/pci/devices/%s/iommu_group)" % bdf, "IOMMU group of " + bdf)
    poll("/dev/vfio/%s" % group, lambda: vm.ok("test -c /dev/vfio/" + group), 10, 0.2)
    log("%s bound to vfio-pci through %s: /dev/vfio/%s" % (bdf, how, group))
    return group


def add_direct(vm, bdf, sock=SOCK, vm_id=None):
    help_text = vm.out("vhostmgmt --help 2>&1")
    direct = " --direct" if "--direct" in help_text else ""
    if vm_id:
        direct += " -u " + vm_id
    rc, out = vm.mgmt("vf -a %s -v %s%s" % (bdf, sock, direct))
    if rc:
        raise GuestError("vhostmgmt vf -a %s%s (bound to vfio-pci) failed:\n%s\nvfe-vhostd's log:\n%s"
                         % (bdf, direct, out, vm.out("tail -20 /tmp/vhostd.log")))
    poll(sock, lambda: vm.ok("test -S " + sock), 10, 0.2)
    st = vm.stats(bdf)
    if st.get("mode") not in (None, "direct"):
        raise GuestError("%s serves in mode %s, direct expected (no PF admin queue here)" % (bdf, st.get("mode")))
    log("%s added%s: vhost-user on %s, stats mode %s" % (bdf, direct, sock, st.get("mode", "(not shown)")))


def wait_vm_log(vm, path, needle, what, timeout=30):
    poll(what, lambda: vm.ok("grep -q '%s' %s" % (needle, path)), timeout, 0.2)


def session(vm, wire, rng, rounds, tag, stop_daemon=False, fn=VFIO_FN, sock=SOCK, notifiers=False):
    """One front-end connection: per round PER_ROUND frames out and PER_ROUND in,
    each checked byte for byte; the memory table changes before every round after the first.
    notifiers: vfe-vhostd runs with host notifiers, the front-end must kick through the doorbell pages."""
    bdf = HostVM.bdf(fn)
    tx = frames(rng, PER_ROUND * rounds, OUTSIDE_MAC, FE_MAC, tag)
    rx = frames(rng, PER_ROUND * rounds, bytes.fromhex(MACS[fn].replace(":", "")), OUTSIDE_MAC, tag | 0x80)
    vm.put_frames("/tmp/tx.hex", tx)
    vm.must("rm -f /tmp/rx.hex /tmp/go* /tmp/fe.log /tmp/fe.json", "cleaning up")
    wire.drain()
    vm.must("vfe-frontend --socket %s --frames /tmp/tx.hex --dump /tmp/rx.hex --rounds %d --count %d --timeout 20000 "
            "--go /tmp/go --remap --mem-table exchange </dev/null >/tmp/fe.json 2>/tmp/fe.log & echo $! > /tmp/fe.pid"
            % (sock, rounds, PER_ROUND), "starting vfe-frontend")
    maps, calls, hn = [], [], 0
    for r in range(rounds):
        wait_vm_log(vm, "/tmp/fe.log", "round %d waits" % r, "the front-end ready for round %d" % r)
        st = poll("the function running", lambda: (lambda s: s if s.get("state") == "running" else None)(
            vm.stats(bdf)), 20, 0.3)
        # DMA maps of the domain: one per region; the table change before round 1 added one
        maps.append(st["dma_domain"]["maps"])
        hn = max(hn, st.get("host_notifiers", 0))
        if r and maps[r] != maps[0] + 1:
            raise GuestError("after the memory-table change (3 regions) the DMA domain holds %d maps, %d before"
                             % (maps[r], maps[0]))
        stopped = stop_daemon and r == 0
        if stopped:
            vm.must("kill -STOP $(cat /tmp/vhostd.pid)", "SIGSTOP to vfe-vhostd")
        vm.must("touch /tmp/go%d" % r, "go")
        want = tx[r * PER_ROUND:(r + 1) * PER_ROUND]
        got = []
        end = time.time() + 30
        while len(got) < len(want) and time.time() < end:
            f = wire.recv(0.5)
            if f is not None:
                got.append(f)
        extra = wire.recv(0.3)
        if got != want or extra is not None:
            raise GuestError(describe_mismatch("round %d: front-end -> outside%s" % (
                r, " (vfe-vhostd stopped: kicks only through ioeventfd)" if stopped else ""),
                want, got + ([extra] if extra else [])) + "\nfront-end: " + vm.out("cat /tmp/fe.log"))
        for f in rx[r * PER_ROUND:(r + 1) * PER_ROUND]:
            wire.send(f)
        try:
            wait_vm_log(vm, "/tmp/fe.log", "round %d: sent" % r, "the front-end's round %d" % r, 40)
        finally:
            if stopped:
                vm.must("kill -CONT $(cat /tmp/vhostd.pid)", "SIGCONT to vfe-vhostd")
        line = vm.out("grep 'round %d:' /tmp/fe.log" % r)
        m = re.search(r"rx interrupts (\d+)", line)
        calls.append(int(m.group(1)) if m else 0)
        if "failed" in line:
            raise GuestError("round %d%s: the front-end did not get the frames sent in from outside:\n%s" % (
                r, " (vfe-vhostd stopped: interrupts only through MSI-X eventfds)" if stopped else "",
                vm.out("cat /tmp/fe.log")))
        if stopped and calls[r] - (calls[r - 1] if r else 0) < 1:
            raise GuestError("round %d: frames came in with vfe-vhostd stopped but no interrupt reached the "
                             "front-end's call eventfd (MSI-X eventfds not wired to it?):\n%s" % (r, line))
        log("round %d: %d frames out and %d in, byte for byte%s%s" % (
            r, len(want), PER_ROUND, " (after a memory-table change: %d DMA maps, %d before)" % (maps[r], maps[0])
            if r else "",
            " with vfe-vhostd stopped" if stopped else ""))
    # the front-end holds the device running until the last go file: MSI-X is still on
    wait_vm_log(vm, "/tmp/fe.log", "stop waits", "the front-end done")
    irqs = vm.msix_count(bdf)
    vm.must("touch /tmp/go%d" % rounds, "go")
    poll("the front-end to finish", lambda: not vm.ok("kill -0 $(cat /tmp/fe.pid)"), 30, 0.2)
    res = re.search(r"^\{\"command\":\"exchange\".*\}\s*$", vm.out("cat /tmp/fe.json"), re.M)
    if not res:
        raise GuestError("the front-end printed no result:\n" + vm.out("cat /tmp/fe.log"))
    res = json.loads(res.group(0))
    got = vm.get_frames("/tmp/rx.hex")
    if got != rx:
        raise GuestError(describe_mismatch("outside -> front-end", rx, got))
    if res["remaps"] != rounds - 1 or res["sent"] != len(tx) or res["received"] != len(rx):
        raise GuestError("front-end result %s: %d remaps, %d sent and %d received expected" % (
            res, rounds - 1, len(tx), len(rx)))
    if res["rx_calls"] < 1 or irqs < 1:
        raise GuestError("no interrupt reached the front-end through MSI-X (rx_calls %d, vfio-msix interrupts %d)"
                         % (res["rx_calls"], irqs))
    check_kicks(res, notifiers, hn, bdf)
    log("session: %d kicks (eventfd -> ioeventfd), %d through the doorbell page, %d rx interrupts seen by the "
        "front-end, %d vfio-msix interrupts" % (res["kicks"], res["notifier_kicks"], res["rx_calls"], irqs))
    return res


def check_kicks(res, notifiers, host_notifiers, bdf):
    """Without host notifiers every kick is an eventfd write; with them the doorbell pages are mapped
    (stats host_notifiers: both rings) and the front-end's kicks go through them."""
    if not notifiers and (res["kicks"] < 1 or res["notifier_kicks"] or host_notifiers):
        raise GuestError("%s kicks: %d eventfd writes, %d doorbell-page writes, %d host notifiers (vfe-vhostd runs "
                         "--no-host-notifiers: eventfd kicks only expected)"
                         % (bdf, res["kicks"], res["notifier_kicks"], host_notifiers))
    if notifiers and (res["notifier_kicks"] < 1 or host_notifiers != 2):
        raise GuestError("%s: host notifiers over kernel VFIO: %d kicks through the doorbell page (%d eventfd "
                         "writes), %d host-notifier messages reached the front-end, stats host_notifiers %d (2 "
                         "expected: the rx and tx rings' doorbells each alone in a page with page-per-vq=on); see "
                         "'host notifiers' and 'mmap areas' in vfe-vhostd's log"
                         % (bdf, res["notifier_kicks"], res["kicks"], res.get("notifier_msgs", -1), host_notifiers))


def daemon_log(vm):
    """vfe-vhostd's log since the last restart."""
    return vm.out("sed -n '/--- vfe-vhostd stopped ---/,$p' /tmp/vhostd.log", 10)


def check_shared_container(vm, bdfs):
    """Both functions' IOMMU groups joined one container, the DMA domain of VM_ID (vfio_kernel logs it)."""
    text = daemon_log(vm)
    how = {}
    for bdf in bdfs:
        m = re.findall(r"%s: IOMMU group \d+ \(\S+\) in (new|shared) container (\S+)" % re.escape(bdf), text)
        if len(m) != 1:
            raise GuestError("%s: %d 'IOMMU group ... container' lines in vfe-vhostd's log, 1 expected:\n%s"
                             % (bdf, len(m), "\n".join(ln for ln in text.splitlines() if "container" in ln)))
        how[bdf] = m[0]
    kinds = sorted(k for k, _ in how.values())
    keys = set(key for _, key in how.values())
    if kinds != ["new", "shared"] or len(keys) != 1:
        raise GuestError("functions of one VM (-u %s) must share one container: %s" % (VM_ID, how))
    for bdf in bdfs:
        dom = vm.stats(bdf)["dma_domain"]
        if dom["members"] != 2 or dom["vm_uuid"] != VM_ID:
            raise GuestError("%s: DMA domain %s, 2 members of %s expected" % (bdf, dom, VM_ID))
    log("one VFIO container for both functions (%s): %s" % (keys.pop(), ", ".join(
        "%s %s" % (b, k) for b, (k, _) in sorted(how.items()))))


def check_maps_once(vm, bdfs):
    """Each region of the two front-ends' memory mapped into the shared container once (MAP_DMA lines of
    vfe-vhostd's debug log), as many maps as the DMA domain holds."""
    iovas = re.findall(r": MAP_DMA iova (0x[0-9a-f]+|0) size", daemon_log(vm))
    twice = sorted(set(i for i in iovas if iovas.count(i) > 1))
    maps = [vm.stats(b)["dma_domain"]["maps"] for b in bdfs]
    want = 2 * len(bdfs)                # two memfd regions per front-end
    if twice or len(iovas) != want or maps != [want] * len(bdfs):
        raise GuestError("guest memory of one VM in one container: %d MAP_DMA (%s), %d expected, each IOVA once "
                         "(twice: %s); the DMA domain holds %s maps" % (len(iovas), iovas, want, twice or "none", maps))
    log("%d MAP_DMA for %d regions (IOVAs %s), each once, though two functions use them" % (
        len(iovas), want, ", ".join(iovas)))


def pair_session(vm, wires, rng, tag):
    """One front-end per function at the same time (one DMA domain, guest memory at GPA_BASES), one round
    each way on both, byte for byte at both outside netdevs; kicks through the host notifiers."""
    fns = (KERNEL_FN, VFIO_FN)
    tx = {i: frames(rng, PER_ROUND, OUTSIDE_MAC, FE_MAC, tag + i) for i in fns}
    rx = {i: frames(rng, PER_ROUND, bytes.fromhex(MACS[i].replace(":", "")), OUTSIDE_MAC, (tag + i) | 0x80)
          for i in fns}
    for i in fns:
        vm.put_frames("/tmp/tx%d.hex" % i, tx[i])
        vm.must("rm -f /tmp/rx%d.hex /tmp/go%d-* /tmp/fe%d.log /tmp/fe%d.json" % (i, i, i, i), "cleaning up")
        wires[i].drain()
    for i in fns:
        vm.must("vfe-frontend --socket %s --gpa-base %#x --frames /tmp/tx%d.hex --dump /tmp/rx%d.hex --rounds 1 "
                "--count %d --timeout 20000 --go /tmp/go%d- exchange </dev/null >/tmp/fe%d.json 2>/tmp/fe%d.log & "
                "echo $! > /tmp/fe%d.pid" % (SOCKS[i], GPA_BASES[i], i, i, PER_ROUND, i, i, i, i),
                "starting vfe-frontend on " + SOCKS[i])
    hn = {}
    for i in fns:
        wait_vm_log(vm, "/tmp/fe%d.log" % i, "round 0 waits", "the front-end of %s ready" % SOCKS[i])
        st = poll("%s running" % HostVM.bdf(i), lambda: (lambda s: s if s.get("state") == "running" else None)(
            vm.stats(HostVM.bdf(i))), 20, 0.3)
        hn[i] = st.get("host_notifiers", 0)
    check_maps_once(vm, [HostVM.bdf(i) for i in fns])
    text = daemon_log(vm)
    for i in fns:
        # the doorbells' BAR as vfio-pci describes it (6.1: no capability chain, the whole BAR mappable)
        areas = re.findall(r"%s: region (\d+): size (\S+) flags (\S+), ([1-9]\d*) mmap areas"
                           % re.escape(HostVM.bdf(i)), text)
        if not areas:
            raise GuestError("%s: vfe-vhostd found no mappable area in any region (host notifiers need one):\n%s"
                             % (HostVM.bdf(i), "\n".join(ln for ln in text.splitlines() if "region" in ln)))
    log("mappable regions: %s" % ", ".join("region %s size %s flags %s: %s areas" % a for a in set(areas)))
    for i in fns:
        vm.must("touch /tmp/go%d-0" % i, "go")
    for i in fns:
        got = []
        end = time.time() + 30
        while len(got) < PER_ROUND and time.time() < end:
            f = wires[i].recv(0.5)
            if f is not None:
                got.append(f)
        extra = wires[i].recv(0.3)
        if got != tx[i] or extra is not None:
            raise GuestError(describe_mismatch("two front-ends, one DMA domain: front-end of %s -> outside netdev "
                                               "of %s" % (SOCKS[i], HostVM.bdf(i)), tx[i],
                                               got + ([extra] if extra else []))
                             + "\nfront-end: " + vm.out("cat /tmp/fe%d.log" % i))
    for i in fns:
        for f in rx[i]:
            wires[i].send(f)
    for i in fns:
        wait_vm_log(vm, "/tmp/fe%d.log" % i, "stop waits", "the front-end of %s's round" % SOCKS[i], 40)
        vm.must("touch /tmp/go%d-1" % i, "go")
    for i in fns:
        poll("the front-end of %s to finish" % SOCKS[i], lambda: not vm.ok("kill -0 $(cat /tmp/fe%d.pid)" % i), 30,
             0.2)
        res = re.search(r"^\{\"command\":\"exchange\".*\}\s*$", vm.out("cat /tmp/fe%d.json" % i), re.M)
        if not res:
            raise GuestError("the front-end of %s printed no result:\n%s" % (SOCKS[i], vm.out("cat /tmp/fe%d.log" % i)))
        res = json.loads(res.group(0))
        got = vm.get_frames("/tmp/rx%d.hex" % i)
        if got != rx[i]:
            raise GuestError(describe_mismatch("two front-ends, one DMA domain: outside -> front-end of %s"
                                               % SOCKS[i], rx[i], got))
        check_kicks(res, True, hn[i], HostVM.bdf(i))
        log("%s: %d frames out and %d in, byte for byte; %d kicks through the doorbell page (%d eventfd writes), "
            "%d host notifiers" % (HostVM.bdf(i), PER_ROUND, PER_ROUND, res["notifier_kicks"], res["kicks"], hn[i]))


def hot_unplug(vm, fn, sock):
    """echo 1 > remove: vfio-pci asks vfe-vhostd (request IRQ) to let the function go; it releases it and
    the removal completes."""
    bdf = HostVM.bdf(fn)
    vm.must("(echo 1 > /sys/bus/pci/devices/%s/remove; echo rc=$? > /tmp/unplug.done) </dev/null >/dev/null 2>&1 &"
            % bdf, "hot-unplug of " + bdf)
    t0 = time.time()
    try:
        poll("%s gone from /sys/bus/pci/devices" % bdf, lambda: not vm.ok("test -e /sys/bus/pci/devices/" + bdf),
             8, 0.2)
        poll("the removal to complete", lambda: vm.ok("test -e /tmp/unplug.done"), 5, 0.2)
    except GuestError as e:
        raise GuestError("%s (vfe-vhostd did not let the function go on the request IRQ?)\nvfe-vhostd's log:\n%s"
                         % (e, vm.out("tail -15 /tmp/vhostd.log")))
    took = time.time() - t0
    if not vm.ok("kill -0 $(cat /tmp/vhostd.pid)"):
        raise GuestError("vfe-vhostd died on the hot-unplug of %s:\n%s" % (bdf, vm.out("tail -20 /tmp/vhostd.log")))
    text = daemon_log(vm)
    if not re.search(r"VF %s: hot-unplug requested by the host" % re.escape(bdf), text):
        raise GuestError("vfe-vhostd's log does not say the host asked for %s back (request IRQ)" % bdf)
    if vm.ok("test -e " + sock):
        raise GuestError("%s still exists after the hot-unplug of %s" % (sock, bdf))
    rc, out = vm.mgmt("--json stats")
    if bdf in out.split("\n", 1)[-1] or rc:
        raise GuestError("vhostmgmt stats after the hot-unplug of %s (rc %d) still lists it:\n%s" % (bdf, rc, out))
    log("hot-unplug of %s: request IRQ logged, function released (socket gone, not in stats), removed from "
        "/sys/bus/pci/devices in %.1f s (%s)" % (bdf, took, vm.out("cat /tmp/unplug.done").split()[-1]))


def remove_readd(vm, bdf):
    rc, out = vm.mgmt("vf -r " + bdf)
    if rc:
        raise GuestError("vhostmgmt vf -r %s failed:\n%s" % (bdf, out))
    if vm.ok("test -e " + SOCK):
        raise GuestError("%s still exists after vf -r" % SOCK)
    if vm.driver(bdf) != "vfio-pci":
        raise GuestError("%s left vfio-pci on removal (now %s)" % (bdf, vm.driver(bdf)))
    log("%s removed: its socket is gone, the function stays on vfio-pci" % bdf)
    add_direct(vm, bdf)


def bench(vm, wire, n, sock):
    """n frames of 64 bytes from the front-end out of the VM: frames/s at the outside socket."""
    vm.must("vfe-frontend --socket %s --count %d --size 64 --dst-mac 02:00:00:fe:00:01 --timeout 20000 send "
            "</dev/null >/tmp/bench.json 2>&1 & echo $! > /tmp/fe.pid" % (sock, n), "starting the bench")
    wire.drain()
    got, first, last = 0, None, None
    end = time.time() + 60
    while got < n and time.time() < end:
        f = wire.recv(2.0 if got else 20.0)
        if f is None:
            break
        last = time.time()
        first = first or last
        got += 1
    poll("the bench front-end to finish", lambda: not vm.ok("kill -0 $(cat /tmp/fe.pid)"), 30, 0.2)
    rate = (got - 1) / (last - first) if got > 1 and last > first else 0.0
    return {"bench": "hostvm", "path": "vfe-frontend -> vfe (kernel VFIO, direct mode, host notifiers) -> "
            "virtio-net-pci -> UDP (TCG host VM)", "frames": n, "received": got, "size": 64, "frames_per_s": round(rate, 1)}


def body(work, kernel, initrd):
    kernel, initrd = build_hostvm(os.path.abspath(BUILD))
    wires = [Wire(), Wire()]
    vm = HostVM(work, kernel, initrd, [(wires[i], MACS[i]) for i in range(2)])
    inside = Inside(vm)
    t0 = time.time()
    try:
        vm.start()
        vm.wait_ready(90)
        log("host VM up in %.1f s" % (time.time() - t0))
        check_topology(inside)
        start_daemon(inside)
        refuse_kernel_bound(inside)
        bdf = HostVM.bdf(VFIO_FN)
        bind_vfio(inside, bdf)
        add_direct(inside, bdf)
        rng = random.Random(11)
        session(inside, wires[VFIO_FN], rng, rounds=2, tag=1, stop_daemon=True)
        session(inside, wires[VFIO_FN], rng, rounds=1, tag=3)
        log("a new front-end connection (as after a QEMU restart) on the same function: traffic flows")
        remove_readd(inside, bdf)
        session(inside, wires[VFIO_FN], rng, rounds=1, tag=2)
        log("traffic flows again after remove and re-add")
        # one DMA domain for both functions, with host notifiers: a new daemon, both functions on vfio-pci
        stop_daemon(inside, [SOCK])
        start_daemon(inside, host_notifiers=True)
        bind_vfio(inside, HostVM.bdf(KERNEL_FN))
        for i in (KERNEL_FN, VFIO_FN):
            add_direct(inside, HostVM.bdf(i), SOCKS[i], VM_ID)
        check_shared_container(inside, [HostVM.bdf(i) for i in (KERNEL_FN, VFIO_FN)])
        pair_session(inside, wires, rng, tag=4)
        hot_unplug(inside, KERNEL_FN, SOCKS[KERNEL_FN])
        session(inside, wires[VFIO_FN], rng, rounds=1, tag=6, sock=SOCKS[VFIO_FN], notifiers=True)
        log("%s still served after the hot-unplug of %s: traffic flows" % (bdf, HostVM.bdf(KERNEL_FN)))
        if inside.value("dmesg | grep -i 'DMAR.*fault' | wc -l", "DMAR faults") != "0":
            raise GuestError("DMA faults in the host VM's log:\n" + inside.out("dmesg | grep -i dmar | tail"))
        n = int(os.environ.get("VFE_HOSTVM_BENCH", "0"))
        if n:
            print(json.dumps(bench(inside, wires[VFIO_FN], n, SOCKS[VFIO_FN])), flush=True)
    except GuestError:
        if vm.sock:
            for path in ("/tmp/vhostd.log", "/tmp/fe.log", "/tmp/fe.json", "/tmp/fe0.log", "/tmp/fe1.log"):
                inside.save(work, path)
            try:
                with open(os.path.join(work, "vm-dmesg.log"), "w") as f:
                    f.write(inside.out("dmesg | tail -60", 10))
                with open(os.path.join(work, "qemu-virtqueues.log"), "w") as f:
                    f.write(vm.device_queues(VFIO_FN) + "\n")
            except (GuestError, OSError, KeyError):
                pass
        raise
    finally:
        vm.kill()
        for w in wires:
            w.close()
    log("host VM test done in %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    sys.exit(run_test("vfe-hostvm-", body))
