#!/bin/sh
# The main job: build apq and run the futex demo (two processes, bursty
# traffic, wakeups sent versus skipped).  Arguments go to the demo.
set -eu
cd "$(dirname -- "$0")/.."
. scripts/deps.sh
# shellcheck disable=SC2086
apq_install_packages $APQ_PACKAGES $APQ_BENCH_PACKAGES
apq_build build
exec build/examples/futex-demo "$@"
