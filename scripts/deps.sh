#!/bin/sh
# Installs the Debian packages apq needs that are missing, with apt-get (as
# root, or through sudo).  Sourced by the other scripts; `deps.sh [extra...]`
# also works on its own.
set -eu

# The library, its tests and the Xen backend (built when libxen-dev is there).
APQ_PACKAGES="gcc g++ meson ninja-build pkg-config liburcu-dev check libxen-dev"
# The queues apq-bench compares against, and gnuplot for its plots.  Both
# quick-start commands install them, so that build/ is configured the same
# whichever runs first.
APQ_BENCH_PACKAGES="libck-dev dpdk-dev libreaderwriterqueue-dev iceoryx libiceoryx-binding-c-dev libboost-dev gnuplot-nox"
# The event-loop examples' libraries (the eventloop suite; each example is
# skipped at configure time when its library is missing).
APQ_EXAMPLE_PACKAGES="libevent-dev libuv1-dev"
# The netback example's link (ip netns, ping) and its traffic (iperf3): the
# netback test suite and apq-bench's netback section.
APQ_NETBACK_PACKAGES="iproute2 iputils-ping iperf3"
# The model checker and the fuzzer's compiler and runtime (.ci/run: suites
# model and mutants, the libFuzzer session).
# shellcheck disable=SC2034
APQ_CHECK_PACKAGES="spin clang libclang-rt-14-dev"
# The xen suite boots Xen under QEMU; the hypervisor and dom0 kernel are
# downloaded by the test itself, never installed.  (.ci/run uses it.)
# shellcheck disable=SC2034
APQ_XEN_TEST_PACKAGES="qemu-system-x86 cpio"

apq_missing_packages() {
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null |
			grep -q '^install ok installed$' || echo "$pkg"
	done
}

apq_install_packages() {
	missing=$(apq_missing_packages "$@")
	[ -n "$missing" ] || return 0
	if [ "$(id -u)" -eq 0 ]; then
		sudo=
	elif command -v sudo >/dev/null 2>&1; then
		sudo=sudo
	else
		echo "missing packages: $missing; run as root or install sudo" >&2
		return 1
	fi
	echo "installing: $missing" >&2
	# shellcheck disable=SC2086 # word splitting of the lists is intended
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2
}

# Configures (once) and builds the tree in $1.
apq_build() {
	dir=$1
	shift
	[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"
	ninja -C "$dir"
}

if [ "$(basename -- "$0")" = deps.sh ]; then
	# shellcheck disable=SC2086
	apq_install_packages $APQ_PACKAGES $APQ_BENCH_PACKAGES $APQ_EXAMPLE_PACKAGES $APQ_NETBACK_PACKAGES "$@"
fi
