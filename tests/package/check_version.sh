#!/usr/bin/env bash
# A program's --version is one line "NAME (vfe) VERSION" on stdout, exit 0, and
# its --help goes to stdout with exit 0 (help2man reads both).
# usage: check_version.sh NAME VERSION PROGRAM
set -uo pipefail
name=$1 version=$2 prog=$3
rc=0
out=$("$prog" --version 2>/tmp/vfe-version-err.$$); st=$?
err=$(cat /tmp/vfe-version-err.$$); rm -f /tmp/vfe-version-err.$$
if [ "$st" -ne 0 ] || [ "$out" != "$name (vfe) $version" ] || [ -n "$err" ]; then
    echo "FAIL: $name --version: exit $st, stdout '$out', stderr '$err'"; rc=1
fi
out=$("$prog" --help 2>/dev/null); st=$?
if [ "$st" -ne 0 ] || [[ "$out" != "Usage: $name"* ]] || ! grep -q -- '--version' <<<"$out"; then
    echo "FAIL: $name --help: exit $st, or no usage line or no --version in it"; rc=1
fi
[ "$rc" -eq 0 ] && echo "$name: --version and --help as help2man expects"
exit $rc
