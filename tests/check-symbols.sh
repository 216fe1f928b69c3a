#!/bin/sh
# Fails when libapq.so exports a symbol that lib/apq.map does not list, when
# the map lists one the library does not export, when anything without the
# apq_ prefix leaks, or when an exported name is declared in no public header.
# usage: check-symbols.sh LIBRARY MAP INCLUDE_DIR [OPTIONAL_PREFIX...]
# Map entries starting with an OPTIONAL_PREFIX may be missing from the
# library (a feature, such as Xen, that this build leaves out).
set -eu
lib=$1 map=$2 inc=$3
shift 3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ { sub(/@.*/, "", $3); print $3 }' |
	sort -u >"$tmp/exported"
sed -n 's/^[[:space:]]*\(apq_[a-z0-9_]*\);.*/\1/p' "$map" | sort -u >"$tmp/mapped"

status=0
if ! [ -s "$tmp/exported" ]; then
	echo "no exported symbols found in $lib"; exit 1
fi
leaked=$(grep -v '^apq_' "$tmp/exported" || true)
if [ -n "$leaked" ]; then
	echo "symbols without the apq_ prefix leak:"; echo "$leaked"; status=1
fi
unmapped=$(comm -23 "$tmp/exported" "$tmp/mapped")
if [ -n "$unmapped" ]; then
	echo "exported but not in $map:"; echo "$unmapped"; status=1
fi
missing=$(comm -13 "$tmp/exported" "$tmp/mapped")
for prefix in "$@"; do
	missing=$(printf '%s\n' "$missing" | grep -v "^$prefix" || true)
done
if [ -n "$missing" ]; then
	echo "in $map but not exported:"; echo "$missing"; status=1
fi
while read -r sym; do
	grep -rqw "$sym" "$inc/apq" || { echo "exported but declared in no public header: $sym"; status=1; }
done <"$tmp/exported"
[ $status -eq 0 ] && echo "$(wc -l <"$tmp/exported") exported symbols, all apq_, all in the map and the headers"
exit $status
