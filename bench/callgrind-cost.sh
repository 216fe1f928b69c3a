#!/bin/sh
# SPDX-License-Identifier: MIT
# Instructions per packet through each in-process queue, counted by callgrind
# (repeatable on a noisy machine; see cost.c for what it does not see).
#
# usage: bench/callgrind-cost.sh BUILD_DIR [OUT_DIR]
#   BUILD_DIR  a meson build with the bench option (bench/apq-bench-cost)
#   OUT_DIR    where the callgrind.out files go (default: a temporary one);
#              `callgrind_annotate --inclusive=yes FILE` breaks one down
set -eu

build=${1:?usage: callgrind-cost.sh BUILD_DIR [OUT_DIR]}
cost=$build/bench/apq-bench-cost
out=${2:-$(mktemp -d)}
n=20000

command -v valgrind >/dev/null || { echo "callgrind-cost: no valgrind" >&2; exit 77; }
[ -x "$cost" ] || { echo "callgrind-cost: no $cost" >&2; exit 1; }
mkdir -p "$out"

# What apq-bench-cost knows (queue variant pairs of this build).
pairs=$("$build/bench/apq-bench" --list | awk '
	$2 == "threads:" { for (i = 3; i <= NF; i++) { v = $i; sub(/\(.*/, "", v); print $1 " " v } }
	/^scenarios:/ { exit }')

printf '%-14s %-19s %6s %5s %12s\n' impl variant size batch instr/pkt
for sb in "8 1" "64 1" "1500 1" "8 32" "1500 32"; do
	set -- $sb
	size=$1 batch=$2
	echo "$pairs" | while read -r impl variant; do
		f=$out/callgrind.$impl.$variant.$size.$batch
		valgrind --tool=callgrind --toggle-collect=cost_loop \
			--callgrind-out-file="$f" \
			"$cost" "$impl" "$variant" "$size" "$batch" "$n" \
			>/dev/null 2>&1 || { echo "callgrind-cost: $impl $variant failed" >&2; continue; }
		ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f")
		awk -v ir="$ir" -v n="$n" -v b="$batch" -v i="$impl" -v v="$variant" \
		    -v s="$size" 'BEGIN { printf "%-14s %-19s %6d %5d %12.1f\n", i, v, s, b, ir / n / b }'
	done
done
echo "callgrind files: $out"
