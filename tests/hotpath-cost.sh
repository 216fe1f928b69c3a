#!/bin/sh
# SPDX-License-Identifier: MIT
# The library's instructions per packet, send plus receive (tests/hotpath.c),
# counted by callgrind, against a budget per case: a change that makes the
# hot path dearer fails here, on any machine, however noisy.
#
# usage: tests/hotpath-cost.sh HOTPATH_BINARY [OUT_DIR]
#   OUT_DIR keeps the callgrind.out files (`callgrind_annotate --auto=yes`
#   breaks one down by source line); default: a temporary directory.
set -eu

bin=${1:?usage: hotpath-cost.sh HOTPATH_BINARY [OUT_DIR]}
out=${2:-$(mktemp -d)}
command -v valgrind >/dev/null || { echo "hotpath-cost: no valgrind: skipped"; exit 77; }
mkdir -p "$out"

# size batch budget: instructions per packet, send + receive.  Measured with
# GCC 12 -O2 (208, 236, 558, 108, 463), with headroom for other compilers
# and, at 1500 bytes, for glibc's memcpy, which differs between CPUs.
fail=0
printf '%-6s %-6s %10s %8s\n' size batch instr/pkt budget
# Two runs, n1 and n2 rounds: the difference leaves out setup and warm-up.
n1=10000 n2=30000
count() {
	# Only what runs inside the four calls counts, not the loop around.
	valgrind --tool=callgrind --toggle-collect=apq_send \
		--toggle-collect=apq_recv --toggle-collect=apq_send_burst \
		--toggle-collect=apq_recv_burst \
		--callgrind-out-file="$out/callgrind.$1.$2.$3" "$bin" "$1" "$2" "$3" \
		>/dev/null 2>&1 || { echo "hotpath-cost: $1 x $2 failed" >&2; exit 1; }
	awk '/^(summary|totals):/ { print $2; exit }' "$out/callgrind.$1.$2.$3"
}
while read -r size batch budget; do
	ir1=$(count "$size" "$batch" $n1)
	ir2=$(count "$size" "$batch" $n2)
	per=$(awk -v a="$ir1" -v b="$ir2" -v n=$((n2 - n1)) -v k="$batch" \
		'BEGIN { printf "%.1f", (b - a) / n / k }')
	verdict=$(awk -v p="$per" -v b="$budget" 'BEGIN { print (p <= b) ? "ok" : "OVER" }')
	printf '%-6s %-6s %10s %8s %s\n' "$size" "$batch" "$per" "$budget" "$verdict"
	[ "$verdict" = ok ] || fail=1
done <<'CASES'
8 1 230
64 1 260
1500 1 680
8 32 120
1500 32 560
CASES
echo "callgrind files: $out"
exit $fail
