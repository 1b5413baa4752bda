#!/usr/bin/env python3
"""`virsh migrate --live` of a guest on a vfe VF between two libvirt hosts
(docs/libvirt.md).

Two hosts on this machine (namespaces, see vfe_libvirt.py), joined by a veth
pair; each runs virtlogd, libvirtd (TCP, no auth: test only), a vfe-dpu-sim
whose uplink goes over the veth to the other host's sim, and vfe-vhostd with
its vhost-user sockets in group libvirt-qemu.  QEMU runs as libvirt-qemu.
Host A runs G1 (the pinger) and G2, each on a VF provisioned with the
domain's UUID as VM id.  Steps, each asserted:
  no-backend: B has no VF for G2's socket: with mode='client' `virsh
              migrate` fails at once with QEMU's connect error; with
              mode='server' it waits (domjobabort on A does not end it) until
              `virsh destroy` on B.  Either way G2
              keeps running on A, reachable.
  perm:       a socket in a directory libvirt-qemu cannot use: `virsh
              create` fails with "Permission denied".
  a-to-b:     B's VF provisioned with the same socket path and VM id
              (mode='server': only once the migration waits for it);
              migrate --live --suspend while G1 pings G2 every 10 ms; the
              source's guest RAM (its memfd, held open here) and the paused
              destination's are identical page for page; resume; G1 reaches
              G2 on B; `virsh list` shows G2 on B only.
  b-to-a:     migrate back --live (not suspended) while G1 pings G2: the
              pings lost over the whole migration are counted and bounded.
VFE_LIBVIRT_MODE=server runs the same with `mode='server'` (vfe-vhostd
--client, QEMU creates the sockets).  Exit 0 pass, 1 fail, 77 skipped."""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vfe_libvirt import Host, LibvirtGuest, join, log, poll, PF, RPC, SOCK_DIR  # noqa: E402
from vfe_guests import GuestError, differing_pages, guest_ram_fd, ping_summary  # noqa: E402
from vfe_harness import MGMT, run_test  # noqa: E402

MODE = os.environ.get("VFE_LIBVIRT_MODE", "client")
RAM = 256 << 20
G1 = dict(name="vfe-g1", uuid="6c0d5a52-1f0e-4c52-9a43-0000000000a1", mac="52:54:00:00:0c:01", ip="10.0.0.1")
G2 = dict(name="vfe-g2", uuid="6c0d5a52-1f0e-4c52-9a43-0000000000a2", mac="52:54:00:00:0c:02", ip="10.0.0.2")
G3 = dict(name="vfe-g3", uuid="6c0d5a52-1f0e-4c52-9a43-0000000000a3", mac="52:54:00:00:0c:03", ip="10.0.0.3")
VF_G1, VF_G2_A, VF_G2_B, VF_G3 = PF[:-1] + "1", PF[:-1] + "2", PF[:-1] + "3", PF[:-1] + "4"
MAX_LOST = 100      # pings every 10 ms: a second unreachable over the whole live migration
results = {}


def sock_of(g):
    return "%s/%s.sock" % (SOCK_DIR, g["name"])


def provision(host, vf, g):
    host.mgmt("vf", "-a", vf, "-v", sock_of(g), "-u", g["uuid"])


def vf_info(host, vf):
    return json.loads(host.mgmt("--json", "stats", vf))["vfs"][0]


def migrate_cmd(src, dst, g, *extra):
    return ["virsh", "-c", "qemu+tcp://%s/system" % src.name, "migrate", "--live"] + list(extra) + \
        [g["name"], "qemu+tcp://%s/system" % dst.name, "--migrateuri", "tcp://%s" % dst.name]


def bg_ping(g1, ip):
    rc, out = g1.run("ping -q -i 0.01 %s > /tmp/ping.out 2>&1 & echo $! > /tmp/ping.pid" % ip)
    if rc:
        raise GuestError("background ping: %s" % out)


def bg_ping_end(g1):
    g1.run("kill -INT $(cat /tmp/ping.pid); sleep 0.3")
    _, out = g1.run("cat /tmp/ping.out")
    return ping_summary(out)


def reach(g1, ip, what):
    rc, out = g1.run("ping -c 3 -i 0.2 -W 2 %s" % ip, timeout=30)
    if rc:
        raise GuestError("%s: G1 does not reach G2:\n%s" % (what, out))


def where(a, b, name):
    return {h.name: h.domains().get(name) for h in (a, b)}


def precheck(b):
    """The destination's VF shows G2's socket and VM id (the check docs/libvirt.md suggests)."""
    info = b.mgmt("vf", "-i", VF_G2_B)
    if sock_of(G2) not in info or G2["uuid"] not in info:
        raise GuestError("vhostmgmt vf -i on host-b does not show G2's socket and VM id:\n%s" % info)


def no_backend(a, b, g1):
    """host-b has no VF for G2's socket.  mode='client': the destination QEMU
    cannot connect and exits, the migration fails at once.  mode='server':
    the destination QEMU waits for a back-end before it even answers libvirt,
    and the migration waits with it (domjobabort on the source does not end
    it); `virsh destroy` on the destination does.  Either way G2 keeps
    running on host-a and G1 reaches it."""
    t = time.time()
    m = subprocess.Popen(a.ns() + ["--"] + migrate_cmd(a, b, G2), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        if MODE == "client":
            out = m.communicate(timeout=60)[0].strip()
            dt = time.time() - t
            if m.returncode == 0:
                raise GuestError("no-backend: the migration to a host without G2's VF succeeded")
            if "Failed to connect to '%s'" % sock_of(G2) not in out:
                raise GuestError("no-backend: the error does not name the vhost-user socket: %s" % out)
            how = "refused in %.1f s" % dt
        else:
            time.sleep(5)
            if m.poll() is not None:
                raise GuestError("no-backend: virsh migrate ended (%s) while the destination had no back-end: %s"
                                 % (m.returncode, m.communicate()[0]))
            w = where(a, b, G2["name"])
            if w != {"host-a": "running", "host-b": "paused"}:
                raise GuestError("no-backend: while waiting: %s" % w)
            a.virsh("domjobabort", G2["name"], check=False)
            time.sleep(3)
            if m.poll() is not None:
                raise GuestError("no-backend: virsh domjobabort on host-a ended the waiting migration (%s): "
                                 "docs/libvirt.md says it does not" % m.returncode)
            t_destroy = time.time()
            b.virsh("destroy", G2["name"], check=False)
            out = m.communicate(timeout=30)[0].strip()
            if m.returncode == 0:
                raise GuestError("no-backend: the migration succeeded after the destination was destroyed")
            how = ("still waiting after 5 s and 3 s after domjobabort on host-a, failed %.1f s after virsh destroy "
                   "on host-b" % (time.time() - t_destroy))
        log("no-backend: virsh migrate exit %d (%s): %s" % (m.returncode, how, out.splitlines()[0] if out else ""))
    finally:
        if m.poll() is None:
            m.kill()
            m.wait(10)
    w = where(a, b, G2["name"])
    if w != {"host-a": "running", "host-b": None}:
        raise GuestError("no-backend: G2 is not running on host-a only: %s" % w)
    reach(g1, G2["ip"], "after the failed migration")
    results["no-backend"] = how + ", G2 still running on host-a"


def perm(a):
    """A socket in a directory QEMU (libvirt-qemu) cannot search (client
    mode) or write (server mode), here vfe-vhostd's own 0750 root directory:
    the domain does not start and says why."""
    path = "/run/vfe-vhostd/%s.sock" % G3["name"]
    a.mgmt("vf", "-a", VF_G3, "-v", path, "-u", G3["uuid"])
    g3 = LibvirtGuest(G3["name"], a.dir, a, G3["uuid"], G3["mac"], G3["ip"] + "/24", path,
                      "server" if MODE == "server" else "client")
    r = a.virsh("create", g3.xml_path, timeout=60, check=False)
    a.mgmt("vf", "-r", VF_G3)
    if r.returncode == 0 or "Permission denied" not in r.stderr:
        raise GuestError("perm: a domain whose socket libvirt-qemu cannot reach: exit %d: %s"
                         % (r.returncode, r.stderr.strip()))
    log("perm: socket in a directory libvirt-qemu cannot use: %s" % r.stderr.strip().splitlines()[-1])
    # --socket-group applies to the RPC socket too: its directory keeps QEMU out
    r = a.run(["setpriv", "--reuid=libvirt-qemu", "--regid=libvirt-qemu", "--init-groups", os.path.abspath(MGMT),
               "-s", RPC, "version"], check=False)
    if r.returncode == 0:
        raise GuestError("perm: libvirt-qemu can call vfe-vhostd's RPC: %s" % r.stdout.strip())
    log("perm: libvirt-qemu calling the RPC socket: %s" % r.stderr.strip())
    results["perm"] = "refused (Permission denied)"


def real_state_snapshot():
    """Names under the real host's libvirt and vfe paths: must not change."""
    seen = set()
    for top in ("/run/libvirt", "/run/vfe-vhost", "/run/vfe-vhostd", "/run/vfe-dpu-sim", "/var/lib/libvirt",
                "/etc/libvirt", "/var/log/libvirt", "/var/cache/libvirt"):
        for root, dirs, files in os.walk(top):
            for n in dirs + files:
                p = os.path.join(root, n)
                try:
                    st = os.lstat(p)
                    seen.add((p, st.st_mtime_ns, st.st_uid))
                except OSError:
                    pass
        if os.path.exists(top):
            seen.add((top, os.lstat(top).st_mtime_ns, 0))
    return seen


def body(work, kernel, initrd):
    before = real_state_snapshot()
    t_setup = time.time()
    a = Host(work, "host-a", "192.0.2.1", "192.0.2.2", "5d1c0a5e-0000-4000-8000-00000000000a", "02:fe:00:0a",
             MODE == "server")
    b = Host(work, "host-b", "192.0.2.2", "192.0.2.1", "5d1c0a5e-0000-4000-8000-00000000000b", "02:fe:00:0b",
             MODE == "server")
    hosts = []
    g1 = g2 = None
    try:
        for h, peer in ((a, b), (b, a)):
            h.prepare(peer.name, kernel, initrd)
            h.start()
            hosts.append(h)
        join(a, b)
        for h in (a, b):
            h.start_libvirt()
            h.start_vfe()
        log("two hosts up in %.1f s (libvirtd, vfe-dpu-sim joined over the veth, vfe-vhostd each)"
            % (time.time() - t_setup))
        vm_mode = "server" if MODE == "server" else "client"
        g1 = LibvirtGuest(G1["name"], work, a, G1["uuid"], G1["mac"], G1["ip"] + "/24", sock_of(G1), vm_mode)
        g2 = LibvirtGuest(G2["name"], work, a, G2["uuid"], G2["mac"], G2["ip"] + "/24", sock_of(G2), vm_mode,
                          queues=2)
        provision(a, VF_G1, G1)
        provision(a, VF_G2_A, G2)
        t = time.time()
        g1.start()
        g2.start()
        g1.wait_ready(120)
        g2.wait_ready(120)
        log("G1 and G2 booted on host-a in %.1f s" % (time.time() - t))
        reach(g1, G2["ip"], "before migrating")
        qemu_uid = os.stat("/proc/%d" % a.qemu_pid(G2["name"])).st_uid
        if qemu_uid != pwd.getpwnam("libvirt-qemu").pw_uid:
            raise GuestError("G2's QEMU runs as uid %d, not libvirt-qemu" % qemu_uid)
        uuid = a.virsh("domuuid", G2["name"]).stdout.strip()
        st = vf_info(a, VF_G2_A)
        if st["dma_domain"]["vm_uuid"] != uuid or st["vhost_user"] != "connected":
            raise GuestError("G2's VF on host-a: vm_uuid %s (virsh domuuid %s), vhost_user %s"
                             % (st["dma_domain"]["vm_uuid"], uuid, st["vhost_user"]))

        no_backend(a, b, g1)
        perm(a)

        # a-to-b: the destination prepared as docs/libvirt.md says, kept paused for the RAM comparison.
        # mode='server': the VF is provisioned only once the migration waits for it (the recovery the
        # doc names), then the migration goes on.
        late = MODE == "server"
        if not late:
            provision(b, VF_G2_B, G2)
            precheck(b)
        src_pid = a.qemu_pid(G2["name"])
        src_ram = open(guest_ram_fd(src_pid, RAM), "rb")       # outlives the source QEMU
        m = None
        try:
            bg_ping(g1, G2["ip"])
            time.sleep(0.5)
            t = time.time()
            m = subprocess.Popen(a.ns() + ["--"] + migrate_cmd(a, b, G2, "--suspend"), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
            if late:
                time.sleep(2)
                if m.poll() is not None:
                    raise GuestError("a-to-b: the migration ended (%s) before host-b had a back-end: %s"
                                     % (m.returncode, m.communicate()[0]))
                provision(b, VF_G2_B, G2)
                precheck(b)
            try:
                out = m.communicate(timeout=180)[0].strip()
            except subprocess.TimeoutExpired:
                raise GuestError("a-to-b: virsh migrate did not end within 180 s")
            dt = time.time() - t
            sent, got = bg_ping_end(g1)
            if m.returncode:
                raise GuestError("a-to-b: virsh migrate failed: %s" % out)
            w = where(a, b, G2["name"])
            if w != {"host-a": None, "host-b": "paused"}:
                raise GuestError("a-to-b: after the migration G2 is not paused on host-b only: %s" % w)
            poll("a-to-b: the source QEMU ended", lambda: not os.path.exists("/proc/%d" % src_pid), 30, 0.1)
            dst_pid = b.qemu_pid(G2["name"])
            bad = differing_pages("/proc/self/fd/%d" % src_ram.fileno(), guest_ram_fd(dst_pid, RAM), RAM)
            src_ram.seek(0)
            used = sum(1 for _ in range(4096) if src_ram.read(4096).strip(b"\0"))
            if used < 256:
                raise GuestError("a-to-b: only %d of the source's first 4096 pages hold data: not the guest's RAM?"
                                 % used)
        finally:
            src_ram.close()
            if m and m.poll() is None:
                m.kill()
                m.wait(10)
        if late:
            log("a-to-b: the migration waited 2 s for host-b's back-end and went on once the VF was provisioned")
        log("a-to-b: virsh migrate --live --suspend took %.1f s; %d guest pages differ (%d of the first 4096 hold "
            "data); G1 pinged every 10 ms meanwhile: %d sent, %d answered" % (dt, len(bad), used, sent, got))
        if bad:
            raise GuestError("a-to-b: %d guest pages differ between source and destination (first %s)"
                             % (len(bad), bad[:8]))
        b.virsh("resume", G2["name"])
        g2.attach(b)
        reach(g1, G2["ip"], "a-to-b, after resume on host-b")
        rc, out = g2.run("echo still-here", timeout=10)
        if rc or "still-here" not in out:
            raise GuestError("a-to-b: G2's console on host-b does not answer")
        st = vf_info(b, VF_G2_B)
        if st["dma_domain"]["vm_uuid"] != uuid or st["vhost_user"] != "connected" or not st["rings_running"]:
            raise GuestError("a-to-b: G2's VF on host-b: %s" % st)
        w = where(a, b, G2["name"])
        if w != {"host-a": None, "host-b": "running"}:
            raise GuestError("a-to-b: G2 is not running on host-b only: %s" % w)
        results["a-to-b"] = "%s%.1f s, 0 pages differ, %d of %d pings answered until the end" % (
            "VF provisioned late, " if late else "", dt, got, sent)

        # b-to-a: back, live, G1 pinging all along
        bg_ping(g1, G2["ip"])
        time.sleep(0.5)
        t = time.time()
        r = b.run(migrate_cmd(b, a, G2), timeout=180, check=False)
        dt = time.time() - t
        if r.returncode:
            bg_ping_end(g1)
            raise GuestError("b-to-a: virsh migrate failed: %s" % r.stderr.strip())
        g2.attach(a)
        time.sleep(1.5)
        sent, got = bg_ping_end(g1)
        lost = sent - got
        log("b-to-a: virsh migrate --live took %.1f s; G1 pinged every 10 ms from 0.5 s before to 1.5 s after: "
            "%d sent, %d answered, %d lost" % (dt, sent, got, lost))
        w = where(a, b, G2["name"])
        if w != {"host-a": "running", "host-b": None}:
            raise GuestError("b-to-a: G2 is not running on host-a only: %s" % w)
        if lost > MAX_LOST:
            raise GuestError("b-to-a: %d pings lost (more than %d)" % (lost, MAX_LOST))
        reach(g1, G2["ip"], "b-to-a")
        results["b-to-a"] = "%.1f s, %d of %d pings lost" % (dt, lost, sent)
    except Exception:
        for h in hosts:
            h.dump_logs()
        raise
    finally:
        for g in (g1, g2):
            if g:
                g.stop()
        for h in reversed(hosts):
            h.stop()
    after = real_state_snapshot()
    if after != before:
        raise GuestError("the real host's libvirt/vfe paths changed: %s"
                         % sorted(p for p, _, _ in after.symmetric_difference(before))[:10])
    print("SUMMARY mode=%s; %s" % (MODE, "; ".join("%s: %s" % kv for kv in results.items())), flush=True)


def main():
    for tool in ("virsh", "libvirtd", "virtlogd", "unshare", "nsenter"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("%s not installed: skipped" % tool)
            return 77
    if os.geteuid() != 0:
        print("needs root (namespaces, libvirtd): skipped")
        return 77
    if MODE not in ("client", "server"):
        print("VFE_LIBVIRT_MODE must be client or server")
        return 1
    try:
        subprocess.run(["id", "libvirt-qemu"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        print("no user libvirt-qemu (libvirt-daemon-system): skipped")
        return 77
    # meson's SIGTERM at a time-out: unwind, so that every host is ended
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("SIGTERM"))
    return run_test("vfe-libvirt-", body)


if __name__ == "__main__":
    sys.exit(main())
