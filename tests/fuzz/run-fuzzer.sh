#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run-fuzzer.sh SRC_DIR WORK_DIR [SECONDS] - a bounded libFuzzer session
# against fuzz-region.c, built with clang under ASan and UBSan.
#
# Starts from a copy of tests/fuzz/corpus, runs for SECONDS (default 60),
# and fails on any finding: the crash input is left in WORK_DIR, and
# `fuzz-replay FILE` (any build) replays it.  New inputs that add coverage
# stay in WORK_DIR/corpus; `fuzz-region -merge=1 tests/fuzz/corpus
# WORK_DIR/corpus` adds them to the repository's corpus.
# Exit 77 without clang or its libFuzzer runtime.
set -eu

[ $# -ge 2 ] || { echo "usage: $0 SRC_DIR WORK_DIR [SECONDS]" >&2; exit 2; }
src=$(cd "$1" && pwd)
work=$2
seconds=${3:-60}
mkdir -p "$work"
work=$(cd "$work" && pwd)
command -v clang >/dev/null 2>&1 || { echo "run-fuzzer: skipped: no clang"; exit 77; }

cd "$src"
tests/version-h.sh "$src" "$work/gen"
# shellcheck disable=SC2046 # the source list and flags split on purpose
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -D_GNU_SOURCE -std=c11 \
	-Iinclude -I"$work/gen" -Ilib $(ls lib/*.c | grep -v '/xen-') \
	tests/fuzz/fuzz-region.c $(pkg-config --cflags --libs liburcu) \
	-o "$work/fuzz-region" 2>"$work/build.log"; then
	if grep -q 'fuzzer' "$work/build.log"; then
		cat "$work/build.log"
		echo "run-fuzzer: skipped: clang has no libFuzzer runtime (libclang-rt-*-dev)"
		exit 77
	fi
	cat "$work/build.log"
	exit 1
fi
rm -rf "$work/corpus"
mkdir -p "$work/corpus"
cp tests/fuzz/corpus/* "$work/corpus/"
cd "$work"
rm -f crash-* leak-* timeout-* oom-*
# -max_len: programs of up to some hundred operations, as in the corpus.
if ./fuzz-region -max_len=600 -max_total_time="$seconds" -timeout=10 \
	-print_final_stats=1 corpus >fuzz.log 2>&1; then
	status=0
else
	status=$?
fi
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added)' fuzz.log || true
findings=$(ls crash-* leak-* timeout-* oom-* 2>/dev/null || true)
if [ $status -ne 0 ] || [ -n "$findings" ]; then
	tail -n 60 fuzz.log
	echo "run-fuzzer: FAIL: a finding (${findings:-exit status $status}) in $work"
	exit 1
fi
echo "run-fuzzer: PASS: no finding in ${seconds} s"
