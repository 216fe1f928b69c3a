#!/bin/sh
# Builds apq and runs its unit, eventloop, stress, bench and netback suites (the xen
# suite, which boots Xen under QEMU, runs in .ci/run; netback needs root
# and is skipped without it).  Extra arguments go to `meson test` instead
# (e.g. --suite unit, or a test's name).
set -eu
cd "$(dirname -- "$0")/.."
. scripts/deps.sh
# shellcheck disable=SC2086
apq_install_packages $APQ_PACKAGES $APQ_BENCH_PACKAGES $APQ_EXAMPLE_PACKAGES $APQ_NETBACK_PACKAGES
apq_build build
if [ $# -eq 0 ]; then
	set -- --suite unit --suite eventloop --suite stress --suite bench --suite netback
fi
meson test -C build --print-errorlogs "$@"
