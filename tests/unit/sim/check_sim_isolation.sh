#!/bin/sh
# The sim is the device side: it must not share code or headers with the
# driver (drivers/), and its exported symbols carry a prefix (sim_, vfu_) so
# they cannot clash with a driver's or a test's.
# usage: check_sim_isolation.sh SIM_SOURCE_DIR LIBVFE_SIM_A
set -u
src=$1
lib=$2
fail=0
if grep -rn '#[[:space:]]*include[[:space:]]*"drivers/' "$src"; then
    echo "FAIL: sim sources include driver headers (above)"
    fail=1
fi
bad=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' | grep -v '^sim_' | grep -v '^vfu_' | sort -u)
if [ -n "$bad" ]; then
    echo "FAIL: exported sim symbols without the sim_/vfu_ prefix:"
    echo "$bad"
    fail=1
fi
n=$(nm -g --defined-only "$lib" | awk 'NF == 3' | wc -l)
if [ "$n" -lt 50 ]; then
    echo "FAIL: only $n exported symbols in $lib: not the sim library?"
    fail=1
fi
[ $fail -eq 0 ] && echo "ok: no driver includes, $n prefixed symbols"
exit $fail
