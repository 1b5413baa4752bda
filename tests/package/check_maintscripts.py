#!/usr/bin/env python3
"""Runs the maintainer scripts of the built .debs with recording stand-ins for
systemctl, deb-systemd-invoke and deb-systemd-helper, and checks what they
do to the units on install, upgrade, remove and purge (docs/install.md,
"Upgrades"):

- install: both vfe units enabled and started, vfe-vhostd-ha first; the sim
  neither enabled nor started, but systemd reloaded (its drop-in);
- upgrade: vfe-vhostd restarted (a hand-over), vfe-vhostd-ha never stopped
  nor restarted before it, and restarted after it only while vfe-vhostd runs;
  the sim restarted only if it ran;
- remove: every unit stopped; purge: /var/lib/vfe-vhostd deleted, and only then.

The scripts test for /run/systemd/system (systemd is PID 1); the copies run
here test for a temporary directory instead.

usage: check_maintscripts.py DEB_DIR
"""
import glob
import os
import shutil
import subprocess
import sys
import tempfile

DEB_DIR = sys.argv[1]
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


tmp = tempfile.mkdtemp(prefix="vfe-maint.")
try:
    fakebin = os.path.join(tmp, "bin")
    systemd_dir = os.path.join(tmp, "run-systemd-system")
    os.makedirs(fakebin)
    os.makedirs(systemd_dir)
    log = os.path.join(tmp, "calls")
    for tool in ("systemctl", "deb-systemd-invoke", "deb-systemd-helper"):
        with open(os.path.join(fakebin, tool), "w") as f:
            # records the call; `systemctl is-active U` succeeds for the units in $FAKE_ACTIVE
            # Answers: `systemctl --quiet is-active U`: U in $FAKE_ACTIVE; the helper's
            # `debian-installed U`: U in $FAKE_KNOWN (a unit of an earlier install);
            # `was-enabled U`: U in $FAKE_ENABLED, or never installed (as the real one).
            f.write('#!/bin/sh\necho "%s $*" >>"%s"\n'
                    'in_list() { case " $1 " in *" $2 "*) return 0 ;; *) return 1 ;; esac; }\n'
                    'case "%s $1 $2" in\n'
                    '  "systemctl --quiet is-active") in_list "$FAKE_ACTIVE" "$3"; exit $? ;;\n'
                    '  "deb-systemd-helper debian-installed "*) in_list "$FAKE_KNOWN" "$2"; exit $? ;;\n'
                    '  "deb-systemd-helper --quiet was-enabled")\n'
                    '    in_list "$FAKE_ENABLED" "$3" || ! in_list "$FAKE_KNOWN" "$3"; exit $? ;;\n'
                    'esac\nexit 0\n'
                    % (tool, log, tool))
        os.chmod(os.path.join(fakebin, tool), 0o755)

    scripts = {}
    for pkg in ("vfe", "vfe-dpu-sim"):
        debs = glob.glob(os.path.join(DEB_DIR, "%s_*.deb" % pkg))
        if len(debs) != 1:
            print("FAIL: %s: expected one %s_*.deb (run scripts/build-deb first)" % (DEB_DIR, pkg))
            sys.exit(1)
        ctl = os.path.join(tmp, pkg + ".control")
        subprocess.run(["dpkg-deb", "-e", debs[0], ctl], check=True)
        for name in ("preinst", "postinst", "prerm", "postrm"):
            p = os.path.join(ctl, name)
            if os.path.exists(p):
                text = open(p).read().replace("/run/systemd/system", systemd_dir)
                text = text.replace("/usr/bin/deb-systemd-helper", os.path.join(fakebin, "deb-systemd-helper"))
                with open(p, "w") as f:
                    f.write(text)
                scripts[(pkg, name)] = p

    def run(pkg, name, args, active=(), dpkg_root=None, known=(), enabled=()):
        """The calls the script made, as 'tool args' lines; [] if the package has no such script."""
        open(log, "w").close()
        p = scripts.get((pkg, name))
        if p is None:
            return []
        env = dict(os.environ, PATH=fakebin + ":" + os.environ["PATH"], FAKE_ACTIVE=" ".join(active),
                   FAKE_KNOWN=" ".join(known), FAKE_ENABLED=" ".join(enabled))
        env.pop("DPKG_ROOT", None)
        if dpkg_root:
            env["DPKG_ROOT"] = dpkg_root
        r = subprocess.run(["sh", "-e", p] + args, env=env, capture_output=True, text=True)
        if r.returncode:
            fail("%s %s %s: exit %d %s" % (pkg, name, " ".join(args), r.returncode, r.stderr))
        return [l.replace("'", "") for l in open(log).read().splitlines()]

    def index(calls, call):
        return calls.index(call) if call in calls else -1

    HA, D, SIM = "vfe-vhostd-ha.service", "vfe-vhostd.service", "vfe-dpu-sim.service"

    # fresh install
    c = run("vfe", "postinst", ["configure", ""])
    for u in (HA, D):
        if "deb-systemd-helper enable " + u not in c:
            fail("install: %s not enabled: %s" % (u, c))
    ha_start, d_start = index(c, "deb-systemd-invoke start " + HA), index(c, "deb-systemd-invoke start " + D)
    if ha_start < 0 or d_start < 0 or ha_start > d_start:
        fail("install: want start of %s then %s: %s" % (HA, D, c))
    if any("restart" in x or " stop" in x for x in c):
        fail("install: a restart or stop: %s" % c)
    c = run("vfe-dpu-sim", "postinst", ["configure", ""])
    if any(SIM in x and ("enable" in x.split() or "start" in x.split()) for x in c):
        fail("install: the sim is enabled or started: %s" % c)
    if "systemctl --system daemon-reload" not in c:
        fail("install: no daemon-reload after the sim's drop-in arrived: %s" % c)

    # upgrade, both running
    for pkg in ("vfe", "vfe-dpu-sim"):
        for name in ("preinst", "prerm"):
            c = run(pkg, name, ["upgrade", "0.2.0"], active=(HA, D, SIM), known=(HA, D, SIM))
            if any(" stop" in x or "restart" in x for x in c):
                fail("upgrade: %s %s stops a unit: %s" % (pkg, name, c))
    c = run("vfe", "postinst", ["configure", "0.0.9"], active=(HA, D), known=(HA, D), enabled=(HA, D))
    d_restart = index(c, "deb-systemd-invoke restart " + D)
    ha_restart = index(c, "deb-systemd-invoke restart " + HA)
    if d_restart < 0:
        fail("upgrade: %s not restarted: %s" % (D, c))
    if ha_restart < 0 or ha_restart < d_restart:
        fail("upgrade: want %s restarted after %s, while it runs: %s" % (HA, D, c))
    if any(x.startswith("deb-systemd-invoke") and HA in x and x.split()[1] in ("stop", "try-restart") for x in c):
        fail("upgrade: %s stopped: %s" % (HA, c))
    # upgrade with vfe-vhostd stopped: the HA process alone holds the devices
    c = run("vfe", "postinst", ["configure", "0.0.9"], active=(HA,), known=(HA, D), enabled=(HA, D))
    if any(HA in x and ("restart" in x or " stop" in x) for x in c):
        fail("upgrade with vfe-vhostd stopped: %s restarted or stopped: %s" % (HA, c))
    c = run("vfe-dpu-sim", "postinst", ["configure", "0.0.9"], active=(SIM,), known=(SIM,), enabled=(SIM,))
    if "deb-systemd-invoke try-restart " + SIM not in c:
        fail("upgrade: the sim is not restarted if it ran: %s" % c)

    # remove
    c = run("vfe", "prerm", ["remove"], active=(HA, D))
    for u in (HA, D):
        if "deb-systemd-invoke stop " + u not in c:
            fail("remove: %s not stopped: %s" % (u, c))
    c = run("vfe-dpu-sim", "prerm", ["remove"], active=(SIM,))
    if "deb-systemd-invoke stop " + SIM not in c:
        fail("remove: the sim not stopped: %s" % c)

    # the state directory: kept on remove and upgrade, deleted on purge
    droot = os.path.join(tmp, "root")
    state = os.path.join(droot, "var/lib/vfe-vhostd/provisioning.json")
    os.makedirs(os.path.dirname(state))
    open(state, "w").write('{"format": "vfe-vhostd-provisioning", "version": 1, "pfs": [], "vfs": []}\n')
    for args in (["upgrade", "0.2.0"], ["remove"]):
        run("vfe", "postrm", args, dpkg_root=droot)
        if not os.path.exists(state):
            fail("postrm %s deleted the provisioning" % " ".join(args))
    run("vfe", "postrm", ["purge"], dpkg_root=droot)
    if os.path.exists(os.path.dirname(state)):
        fail("purge left /var/lib/vfe-vhostd")
finally:
    shutil.rmtree(tmp)

print("%d failed checks" % len(failures))
sys.exit(1 if failures else 0)
