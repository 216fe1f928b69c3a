#!/bin/sh
# SPDX-License-Identifier: MIT
#
# run.sh BUILD_DIR - the acceptance check from outside the project.
#
# Installs the build in BUILD_DIR into a temporary DESTDIR, then builds
# api-check.c the way a user would: only through `pkg-config apq`, against
# the staged headers and libraries, never the source tree.  Runs it linked
# against the staged libapq.so (and proves with ldd that it is that one), then
# linked statically against the staged libapq.a.
#
# Env: CC (default cc), APQ_SEED (passed on: replays a run),
#      KEEP=1 keeps the staging directory.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 BUILD_DIR" >&2
	exit 2
fi
build=$1
here=$(cd "$(dirname "$0")" && pwd)
cc=${CC:-cc}
cflags="-std=c11 -O2 -g -Wall -Wextra -Werror"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/apq-external.XXXXXX")
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo "run.sh: staging kept in $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

result() {
	echo "external API check: $1"
	[ "$1" = PASS ]
}
die() {
	echo "run.sh: $*" >&2
	result FAIL
	exit 1
}

echo "run.sh: staging $build into $tmp"
meson install -C "$build" --destdir "$tmp" --quiet ||
	die "meson install failed"

# The prefix and libdir (/usr/local, lib/<multiarch>) are the project's to
# choose: find apq.pc rather than guess where it went.
pcfile=$(find "$tmp" -name apq.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pcfile" ] || die "no apq.pc installed"
PKG_CONFIG_PATH=$(dirname "$pcfile")
# The .pc file names the final paths (/usr/local/...); the sysroot makes
# pkg-config point -I and -L into the staging directory instead.  (It also
# prefixes liburcu's flags from Requires.private, which then name missing
# directories; the compiler's default paths still find liburcu.)
PKG_CONFIG_SYSROOT_DIR=$tmp
export PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
pkg-config --exists apq || die "pkg-config does not find apq"
echo "run.sh: apq $(pkg-config --modversion apq) from $pcfile"

cflags_apq=$(pkg-config --cflags apq)
libs_apq=$(pkg-config --libs apq)
libdir=$(pkg-config --variable=libdir apq)
# pkgconf applies the sysroot to variables too, pkg-config 0.29 does not.
case $libdir in
"$tmp"/*) staged_libdir=$libdir ;;
*) staged_libdir=$tmp$libdir ;;
esac
[ -e "$staged_libdir/libapq.so" ] || die "no libapq.so in $staged_libdir"
[ -e "$staged_libdir/libapq.a" ] || die "no libapq.a in $staged_libdir"
case " $cflags_apq " in
*" -I$tmp/"*) ;;
*) die "pkg-config --cflags does not point into the staging dir: $cflags_apq" ;;
esac

# --- Shared: only pkg-config's flags. ---
echo "run.sh: $cc $cflags api-check.c $cflags_apq $libs_apq"
# shellcheck disable=SC2086 # the flags are word lists
$cc $cflags -o "$tmp/api-check" "$here/api-check.c" $cflags_apq $libs_apq ||
	die "build (shared) failed"

LD_LIBRARY_PATH=$staged_libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
uses=$(ldd "$tmp/api-check" | awk '/libapq\.so/ { print $3 }')
[ -n "$uses" ] || die "ldd: api-check does not link libapq.so"
real_uses=$(readlink -f "$uses")
real_staged=$(readlink -f "$staged_libdir/libapq.so")
[ "$real_uses" = "$real_staged" ] ||
	die "api-check would load $uses, not the staged $staged_libdir/libapq.so"
echo "run.sh: ldd: libapq => $uses (staged)"

# --- Static: the same flags, libapq taken from libapq.a. ---
libs_static=$(pkg-config --static --libs apq)
libs_static=$(echo "$libs_static" |
	sed 's/\(^\| \)-lapq\( \|$\)/\1-Wl,-Bstatic -lapq -Wl,-Bdynamic\2/')
case "$libs_static" in
*"-Wl,-Bstatic -lapq -Wl,-Bdynamic"*) ;;
*) die "pkg-config --static --libs has no -lapq: $libs_static" ;;
esac
echo "run.sh: $cc $cflags api-check.c $cflags_apq $libs_static"
# shellcheck disable=SC2086
$cc $cflags -o "$tmp/api-check-static" "$here/api-check.c" $cflags_apq \
	$libs_static || die "build (static) failed"
if ldd "$tmp/api-check-static" | grep -q libapq; then
	die "api-check-static still loads libapq.so"
fi
nm "$tmp/api-check-static" | grep -q ' T apq_send$' ||
	die "api-check-static does not contain apq_send"
echo "run.sh: api-check-static carries libapq.a (no libapq.so in ldd)"

status=0
echo "run.sh: === api-check (shared libapq.so) ==="
"$tmp/api-check" || status=1
echo "run.sh: === api-check (static libapq.a) ==="
"$tmp/api-check-static" || status=1

if [ $status -eq 0 ]; then
	result PASS
else
	result FAIL
fi
