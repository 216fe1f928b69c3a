#!/bin/sh
# SPDX-License-Identifier: MIT
#
# check.sh MODEL WORK_DIR - verify the handshake model with spin, and show
# that each mutant of it is rejected.
#
# The model (handshake.pml) must satisfy "both sides eventually finish"
# under weak fairness, for several ring sizes and packet counts: no lost
# wakeup and no livelock, on a memory with store buffers, with the
# symmetric barriers and with the asymmetric ones (-DASYM).  Each mutant (a
# barrier removed, the re-check removed, an episode reused) must violate
# it.  Exit 0 if both hold, 1 if not, 77 without spin or a C compiler.
set -eu

[ $# -eq 2 ] || { echo "usage: $0 MODEL WORK_DIR" >&2; exit 2; }
model=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$2
cc=${CC:-cc}
for tool in spin "$cc"; do
	command -v "$tool" >/dev/null 2>&1 || { echo "check.sh: skipped: no $tool"; exit 77; }
done
mkdir -p "$work"
cd "$work"

# verify DEFINES...: @prints the errors spin found and the states it stored.
verify() {
	rm -f pan pan.* ./*.trail
	spin -a "$@" "$model" >spin.log 2>&1 || { cat spin.log; echo "spin -a failed"; return 1; }
	"$cc" -O2 -w -DNFAIR=3 -o pan pan.c || { echo "cannot compile pan.c"; return 1; }
	./pan -a -f -m1000000 >pan.log 2>&1 || true
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.log)
	states=$(sed -n 's/^ *\([0-9e.+]*\) states, stored.*/\1/p' pan.log)
	[ -n "$errors" ] || { cat pan.log; echo "no verdict from pan"; return 1; }
	echo "$errors $states"
}

status=0
printf '%-40s %-9s %s\n' model verdict "states stored"
for cfg in "-DRING=1 -DPKTS=3" "-DRING=2 -DPKTS=4" "-DRING=3 -DPKTS=5" \
	   "-DASYM -DRING=1 -DPKTS=3" "-DASYM -DRING=2 -DPKTS=4" \
	   "-DASYM -DRING=3 -DPKTS=5"; do
	# shellcheck disable=SC2086 # the defines split on purpose
	set -- $(verify $cfg) || { status=1; continue; }
	if [ "$1" = 0 ]; then v=holds; else v=VIOLATED; status=1; fi
	printf '%-40s %-9s %s\n' "handshake $cfg" "$v" "$2"
done
for m in NO_B1 NO_B2 NO_RECHECK SAME_EPISODE "ASYM -DNO_MEMBARRIER" \
	 "ASYM -DNO_B1"; do
	# shellcheck disable=SC2086 # the defines split on purpose
	set -- $(verify -D$m -DRING=1 -DPKTS=3) || { status=1; continue; }
	if [ "$1" != 0 ]; then v=rejected; else v=ACCEPTED; status=1; fi
	printf '%-40s %-9s %s\n' "mutant $m" "$v" "$2"
done
if [ $status -eq 0 ]; then
	echo "model: PASS: the handshake holds; every mutant is rejected"
else
	echo "model: FAIL (work files in $work)"
fi
exit $status
