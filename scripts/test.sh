#!/bin/sh
# Builds apq and runs its unit and stress suites.  Extra arguments go to
# `meson test` (e.g. --suite unit, or a test's name).
set -eu
cd "$(dirname -- "$0")/.."
. scripts/deps.sh
# shellcheck disable=SC2086
apq_install_packages $APQ_PACKAGES
apq_build build
if [ $# -eq 0 ]; then
	set -- --suite unit --suite stress
fi
meson test -C build --print-errorlogs "$@"
