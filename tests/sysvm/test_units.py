#!/usr/bin/env python3
"""The systemd units as installed: `systemd-analyze verify` prints nothing for
each (a line is a warning: a setting that does not parse, an ExecStart that is
not there, a Documentation= man page that does not exist, a missing
dependency), and `systemd-analyze security` scores vfe-vhostd and vfe-vhostd-ha
at 3.0 or below.

The root verified: a temporary directory holding this build's binaries at the
installed paths (/usr/sbin, /usr/bin), the units and the sim's drop-in under
/lib/systemd/system, and this machine's own system units (sysinit.target,
modprobe@.service ...).  Man pages are those the build generated (MAN_DIR);
without them the man check is off and says so.  A control unit with a setting
systemd 252 cannot parse must make verify print: a verify that says nothing
about anything would pass every unit."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("VFE_BUILD_DIR", os.path.join(SRC, "build"))
MAN_DIR = os.environ.get("VFE_MAN_DIR", os.path.join(BUILD, "man"))
UNITDIR = "lib/systemd/system"
BINARIES = {"app/vfe-vdpa/vfe-vhostd": "usr/sbin/vfe-vhostd", "ha/vfe-vhostd-ha": "usr/sbin/vfe-vhostd-ha",
            "tools/vhostmgmt/vhostmgmt": "usr/bin/vhostmgmt", "sim/vfe-dpu-sim": "usr/bin/vfe-dpu-sim"}
UNITS = ["vfe-vhostd.service", "vfe-vhostd-ha.service", "vfe-dpu-sim.service"]
DROPIN = "vfe-vhostd.service.d/vfe-dpu-sim.conf"
SCORED = {"vfe-vhostd.service": 3.0, "vfe-vhostd-ha.service": 3.0}


def make_root(root):
    for src, dst in BINARIES.items():
        os.makedirs(os.path.dirname(os.path.join(root, dst)), exist_ok=True)
        shutil.copy(os.path.join(BUILD, src), os.path.join(root, dst))
    shutil.copytree("/lib/systemd/system", os.path.join(root, UNITDIR), symlinks=True)
    for u in UNITS + [DROPIN]:
        dst = os.path.join(root, UNITDIR, u)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy(os.path.join(SRC, "systemd", u), dst)


def man_env(root):
    """(extra verify args, env): the build's man pages on MANPATH, or --man=no."""
    pages = glob.glob(os.path.join(MAN_DIR, "*.[18]"))
    if not pages:
        print("note: no man pages in %s (built with -Dman=false?): Documentation=man: not checked" % MAN_DIR)
        return ["--man=no"], dict(os.environ)
    mandir = os.path.join(root, "usr", "share", "man")
    for p in pages:
        sect = os.path.join(mandir, "man" + p[-1])
        os.makedirs(sect, exist_ok=True)
        shutil.copy(p, sect)
    return [], dict(os.environ, MANPATH=mandir)


def verify(root, unit, args, env):
    r = subprocess.run(["systemd-analyze", "verify", "--root=" + root] + args + [os.path.join(root, UNITDIR, unit)],
                       capture_output=True, text=True, env=env, timeout=60)
    return r.returncode, [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]


def exposure(path):
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", path],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    return float(m.group(1)) if m else None, r.stdout + r.stderr


def main():
    if not shutil.which("systemd-analyze"):
        print("SKIP: systemd-analyze not installed")
        return 77
    for src in BINARIES:
        if not os.access(os.path.join(BUILD, src), os.X_OK):
            print("FAIL %s missing: build vfe first" % src)
            return 1
    failed = []

    def check(ok, what, detail=""):
        print("%s %s%s" % ("ok  " if ok else "FAIL", what, "" if ok else "\n    " + detail.replace("\n", "\n    ")))
        if not ok:
            failed.append(what)

    with tempfile.TemporaryDirectory(prefix="vfe-units-") as root:
        make_root(root)
        args, env = man_env(root)
        for unit in UNITS:
            rc, lines = verify(root, unit, args, env)
            check(rc == 0 and not lines, "verify %s: silent" % unit, "exit %d:\n%s" % (rc, "\n".join(lines)))
        # the sim's drop-in is loaded with vfe-vhostd.service: a bad key there must be seen
        control = os.path.join(root, UNITDIR, "vfe-control.service")
        with open(os.path.join(SRC, "systemd", "vfe-vhostd.service")) as f:
            text = f.read()
        check("SystemCallErrorNumber=EPERM" in text, "the control's anchor line is in vfe-vhostd.service")
        with open(control, "w") as f:
            f.write(text.replace("SystemCallErrorNumber=EPERM", "SystemCallFilter=~@raw-io:ioperm"))
        rc, lines = verify(root, "vfe-control.service", args, env)
        check(any("ioperm" in line for line in lines), "verify reports a SystemCallFilter it cannot parse",
              "got: %s" % lines)
        os.unlink(control)
        with open(os.path.join(root, UNITDIR, DROPIN), "a") as f:
            f.write("NoSuchSetting=1\n")
        rc, lines = verify(root, "vfe-vhostd.service", args, env)
        check(any("NoSuchSetting" in line for line in lines), "verify reads the sim's drop-in", "got: %s" % lines)

        for unit, limit in SCORED.items():
            score, out = exposure(os.path.join(SRC, "systemd", unit))
            check(score is not None and score <= limit, "security %s: exposure %s <= %.1f" % (unit, score, limit),
                  out[-2000:])
        # the control: the sim's unit opens no device and no network namespace is private; it must score higher
        # than the HA unit, or the parse above reads a constant
        sim, _ = exposure(os.path.join(SRC, "systemd", "vfe-dpu-sim.service"))
        ha, _ = exposure(os.path.join(SRC, "systemd", "vfe-vhostd-ha.service"))
        check(sim is not None and ha is not None and sim > ha, "exposure parse tells units apart (sim %s > ha %s)"
              % (sim, ha))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
