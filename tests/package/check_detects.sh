#!/usr/bin/env bash
# The package check must notice a broken package: rebuild a copy of the vfe
# .deb without vhostmgmt's man page and with a compressed doc, and expect
# check_debs.py to fail naming both.
# usage: check_detects.sh SOURCE_ROOT DEB_DIR
set -euo pipefail
src=$1 debs=$2
here=$(dirname "$0")
tmp=$(mktemp -d /tmp/vfe-pkg-bad.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
shopt -s nullglob
vfe=("$debs"/vfe_*.deb)
[ "${#vfe[@]}" -eq 1 ] || { echo "FAIL: no vfe_*.deb in $debs (run scripts/build-deb first)"; exit 1; }
cp "$debs"/vfe-dpu-sim_*.deb "$debs"/lintian.txt "$tmp/"
dpkg-deb -R "${vfe[0]}" "$tmp/tree"
rm "$tmp/tree/usr/share/man/man8/vhostmgmt.8.gz"
gzip -9n "$tmp/tree/usr/share/doc/vfe/ha.md"
dpkg-deb --root-owner-group -b "$tmp/tree" "$tmp/$(basename "${vfe[0]}")" >/dev/null
if out=$(python3 "$here/check_debs.py" "$src" "$tmp"); then
    echo "FAIL: check_debs.py passed a package without vhostmgmt.8.gz:"; echo "$out"; exit 1
fi
rc=0
for want in "/usr/share/man/man8/vhostmgmt.8.gz: missing from vfe" \
            "vfe-vhost-cli.8.gz -> vhostmgmt.8.gz: dangling" \
            "/usr/share/doc/vfe/ha.md.gz: compressed"; do
    grep -qF "$want" <<<"$out" || { echo "FAIL: check_debs.py did not report: $want"; rc=1; }
done
[ "$rc" -ne 0 ] && echo "$out"
[ "$rc" -eq 0 ] && echo "check_debs.py reported the missing page, the dangling link and the compressed doc"
exit $rc
