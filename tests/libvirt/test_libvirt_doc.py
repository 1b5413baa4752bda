#!/usr/bin/env python3
"""docs/libvirt.md shows what the libvirt test runs: its domain XML is the
test's (vfe-g2, mode='client', two queue pairs), and its `virsh migrate` and
`vhostmgmt vf -a` lines are the test's commands.  No QEMU or libvirt needed."""
import os
import re
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_libvirt_migrate as t  # noqa: E402
from vfe_libvirt import domain_xml  # noqa: E402

DOC = os.path.join(HERE, "..", "..", "docs", "libvirt.md")


class Named:
    def __init__(self, name):
        self.name = name


def main():
    doc = open(DOC).read()
    errors = []
    blocks = re.findall(r"```xml\n(.*?)```", doc, re.S)
    g2 = t.G2
    want = domain_xml(g2["name"], g2["uuid"], g2["mac"], g2["ip"] + "/24", t.sock_of(g2), "client", 2)
    if len(blocks) != 1:
        errors.append("docs/libvirt.md has %d xml blocks, expected the test's one domain" % len(blocks))
    elif blocks[0] != want:
        errors.append("the domain XML in docs/libvirt.md is not the test's:\n--- doc\n%s--- test\n%s"
                      % (blocks[0], want))
    cmd = " ".join(t.migrate_cmd(Named("host-a"), Named("host-b"), g2))
    if cmd + "\n" not in doc:
        errors.append("docs/libvirt.md does not show the test's migrate command: %s" % cmd)
    vf_add = "vhostmgmt vf -a %s -v %s -u %s" % (t.VF_G2_A, t.sock_of(g2), g2["uuid"])
    if vf_add + "\n" not in doc:
        errors.append("docs/libvirt.md does not show the test's VF provisioning: %s" % vf_add)
    if "mode='server'" not in doc:
        errors.append("docs/libvirt.md does not describe mode='server'")
    for e in errors:
        print("FAIL: " + e)
    print("docs/libvirt.md: %s" % ("matches the test" if not errors else "%d mismatches" % len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
