#!/bin/sh
# SPDX-License-Identifier: MIT
# version-h.sh SRC_DIR OUT_DIR - write OUT_DIR/apq/version.h from
# include/apq/version.h.in and the project's version in meson.build, as the
# build does, for the scripts that compile the library by hand (mutants,
# the fuzzer).
set -eu
src=$1 out=$2
version=$(sed -n "s/^  version: '\([0-9.]*\)',$/\1/p" "$src/meson.build")
[ -n "$version" ] || { echo "version-h: no version in $src/meson.build" >&2; exit 1; }
IFS=. read -r major minor patch <<EOV
$version
EOV
mkdir -p "$out/apq"
sed -e "s/@MAJOR@/$major/" -e "s/@MINOR@/$minor/" -e "s/@PATCH@/$patch/" \
	-e "s/@VERSION@/$version/" "$src/include/apq/version.h.in" >"$out/apq/version.h"
