#!/bin/sh
# The main job: build apq and run apq-bench's headline comparison (--quick:
# apq's wakeup policies against ck_ring, rte_ring, wfcqueue, moodycamel, a
# mutex+condvar queue, iceoryx and Boost.Interprocess, in under two
# minutes).  The table goes to stdout; JSON, CSV and PNG plots to
# bench-results/.  Arguments go to apq-bench instead of --quick (see
# `build/bench/apq-bench --help`).
set -eu
cd "$(dirname -- "$0")/.."
. scripts/deps.sh
# shellcheck disable=SC2086
apq_install_packages $APQ_PACKAGES $APQ_BENCH_PACKAGES $APQ_EXAMPLE_PACKAGES $APQ_NETBACK_PACKAGES
apq_build build
# The other queues' futex wakeups are counted on the syscalls:sys_enter_futex
# tracepoint, which needs tracefs (and root); without it they show as "?".
if [ "$(id -u)" -eq 0 ] && ! [ -e /sys/kernel/tracing/events ]; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
mkdir -p bench-results
if [ $# -eq 0 ]; then
	set -- --quick
fi
exec build/bench/apq-bench --json bench-results/quick.json "$@"
