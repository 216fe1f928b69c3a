#!/bin/bash
# SPDX-License-Identifier: MIT
#
# boot-xen.sh - run static test programs in dom0 of a real Xen hypervisor,
# booted under qemu-system-x86_64 (software emulation: no KVM needed).
#
# Usage: boot-xen.sh CACHE_DIR WORK_DIR [--file=FILE...] PROGRAM [PROGRAM...]
#
#   CACHE_DIR  where the hypervisor, dom0 kernel, its Xen modules and busybox
#              are kept between runs.  They come from Debian packages fetched
#              with `apt-get download` (never installed on the host) the first
#              time, and again only when apt's candidate version changes.
#   WORK_DIR   scratch space: the initramfs, the serial log (serial.log).
#   FILE       copied to /tests beside the programs, not run: what a
#              program needs (a script it calls, a static helper).
#   PROGRAM    statically linked programs, or scripts for busybox sh;
#              dom0's /init runs them in order as root, with
#              /dev/xen/{evtchn,gntalloc,gntdev} and /dev/net/tun present,
#              then powers the machine off.
#
# Each program must print a line "APQ-XEN-RESULT: PASS ..." or
# "APQ-XEN-RESULT: FAIL ...".  The run passes (exit 0) only if the serial log
# holds one PASS line per program and no FAIL line; otherwise it exits 1.
# QEMU's exit status says nothing: it exits 0 also when dom0 crashed and Xen
# tried to reboot.  Exit 77 (meson's "skipped") when the host cannot run it
# at all (no qemu-system-x86_64, no apt).
#
# Environment:
#   APQ_XEN_TIMEOUT  seconds before the whole boot is killed (default 600)
#   APQ_XEN_ARGS     arguments passed to every program, split at blanks
#   APQ_SEED         exported to the programs if set
#   APQ_XEN_QUIET    if set to 1 and the run passes, print only Xen's banner
#                    and the programs' own lines instead of the whole serial
#                    log (which is always in WORK_DIR/serial.log)
#
# The boot line, as measured on hosts without KVM: QEMU's -kernel loads Xen
# (a multiboot image once gunzipped) and -initrd passes dom0's kernel, with
# its command line, and the initramfs as multiboot modules.  -cpu max,-smap:
# with SMAP, Xen's PV dom0 crashes at once (a #PF in create_bounce_frame).
# console=com1 for Xen, hvc0 for dom0: both end on the serial port, which
# -nographic puts on stdout.  -no-reboot: a crashing dom0 makes Xen reboot,
# which then ends QEMU instead.  Booting takes 10 to 15 s on an idle host.

set -eu
set -o pipefail

me=${0##*/}
die() { echo "$me: error: $*" >&2; exit 1; }
skip() { echo "$me: skipped: $*" >&2; exit 77; }

[ $# -ge 3 ] || { echo "usage: $me CACHE_DIR WORK_DIR [--file=FILE...] PROGRAM [PROGRAM...]" >&2; exit 2; }
cache=$1
work=$2
shift 2
timeout_s=${APQ_XEN_TIMEOUT:-600}
extra=()
while [ $# -gt 0 ] && [[ $1 == --file=* ]]; do
	extra+=("${1#--file=}")
	shift
done
[ $# -ge 1 ] || die "no program to run"

for p in "${extra[@]}"; do
	[ -f "$p" ] || die "file '$p' is not there"
done
for p in "$@"; do
	[ -f "$p" ] && [ -x "$p" ] || die "program '$p' is not an executable file"
	# A dynamically linked program would find no libraries in the initramfs.
	if file_out=$(LC_ALL=C readelf -l "$p" 2>/dev/null) &&
	   grep -q 'INTERP' <<<"$file_out"; then
		die "program '$p' is dynamically linked; link it with -static"
	fi
done
for tool in qemu-system-x86_64 apt-get apt-cache; do
	command -v "$tool" >/dev/null || skip "$tool not found"
done
for tool in dpkg-deb tar cpio gzip gunzip timeout; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

mkdir -p "$cache" "$work"
cache=$(cd "$cache" && pwd)
work=$(cd "$work" && pwd)

# ---------------------------------------------------------------------------
# 1. The packages: resolve names and versions, fetch and unpack when the
#    cache does not hold exactly these versions.
# ---------------------------------------------------------------------------

kpkg=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1) || true
[ -n "$kpkg" ] || die "cannot resolve the dom0 kernel package: 'apt-cache depends linux-image-amd64' names no linux-image-<version>-amd64"
kver=${kpkg#linux-image-}
xpkg=xen-hypervisor-4.17-amd64
bpkg=busybox-static

# One apt-cache call for the three (each call costs half a second): lines
# "package=candidate-version".
manifest=$(LC_ALL=C apt-cache policy $xpkg "$kpkg" $bpkg 2>/dev/null |
	   awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) }
		$1 == "Candidate:" && $2 != "(none)" { print p "=" $2 }') || true
for p in $xpkg "$kpkg" $bpkg; do
	grep -q "^$p=" <<<"$manifest" ||
		die "apt knows no candidate version of '$p' (run apt-get update, or add the Debian archive that carries it to apt's sources)"
done

files=$cache/files
# Modules, by their path under the kernel's kernel/drivers/, loaded in
# this order: the Xen devices, then TAP devices (the netback test).
modpaths="xen/xen-evtchn xen/xen-gntalloc xen/xen-gntdev net/tun"
mods=
for m in $modpaths; do mods="$mods${mods:+ }${m##*/}"; done
have_all() {
	local f
	for f in xen vmlinuz busybox $(for m in $mods; do echo "$m.ko"; done); do
		[ -s "$files/$f" ] || return 1
	done
}

if [ -f "$cache/manifest" ] && [ "$(cat "$cache/manifest")" = "$manifest" ] && have_all; then
	echo "$me: cached: $(tr '\n' ' ' <"$cache/manifest")"
else
	echo "$me: fetching: $(tr '\n' ' ' <<<"$manifest")"
	rm -rf "$cache/dl" "$cache/files.new" "$cache/manifest"
	mkdir -p "$cache/dl" "$cache/files.new"
	for pv in $manifest; do
		# apt-get download writes into the current directory; as root it
		# warns that _apt cannot write there, which is harmless.
		if ! (cd "$cache/dl" && apt-get download -q "$pv") >"$cache/dl/apt.log" 2>&1; then
			cat "$cache/dl/apt.log" >&2
			die "apt-get download $pv failed (network? apt sources?)"
		fi
	done
	deb() { # the one .deb of package $1 in dl/
		local d
		d=$(ls "$cache/dl/$1"_*.deb 2>/dev/null | head -n1) || true
		[ -n "$d" ] || die "apt-get download left no $1_*.deb in $cache/dl"
		echo "$d"
	}
	x=$cache/dl/x
	mkdir -p "$x"
	# dpkg-deb -x would unpack the whole kernel package (some 400 MB of
	# modules); take only the files needed, straight from its data tarball.
	dpkg-deb --fsys-tarfile "$(deb $xpkg)" |
		tar -x -C "$x" ./boot/xen-4.17-amd64.gz ||
		die "$xpkg holds no boot/xen-4.17-amd64.gz"
	gunzip -c "$x/boot/xen-4.17-amd64.gz" >"$cache/files.new/xen" ||
		die "cannot gunzip boot/xen-4.17-amd64.gz"
	# Modules live in lib/modules, or usr/lib/modules on merged-/usr.
	dpkg-deb --fsys-tarfile "$(deb "$kpkg")" |
		tar -x -C "$x" --wildcards "./boot/vmlinuz-$kver" \
			$(for m in $modpaths; do echo "./*lib/modules/$kver/kernel/drivers/$m.ko*"; done) ||
		die "$kpkg holds no boot/vmlinuz-$kver or not all of these modules: $modpaths"
	cp "$x/boot/vmlinuz-$kver" "$cache/files.new/vmlinuz"
	drv=$(find "$x" -type d -path "*/modules/$kver/kernel/drivers" | head -n1)
	[ -n "$drv" ] || die "$kpkg holds no kernel/drivers directory"
	for mp in $modpaths; do
		m=${mp##*/}
		src=$drv/$mp
		# busybox insmod loads plain .ko only: decompress here if the
		# kernel package ships compressed modules.
		if [ -f "$src.ko" ]; then
			cp "$src.ko" "$cache/files.new/$m.ko"
		elif [ -f "$src.ko.xz" ]; then
			xz -dc "$src.ko.xz" >"$cache/files.new/$m.ko" || die "cannot unxz $m.ko.xz"
		elif [ -f "$src.ko.zst" ]; then
			zstd -dqc "$src.ko.zst" >"$cache/files.new/$m.ko" || die "cannot unzstd $m.ko.zst"
		else
			die "$kpkg holds no $mp.ko (nor .ko.xz, .ko.zst): is it still built as a module?"
		fi
	done
	dpkg-deb --fsys-tarfile "$(deb $bpkg)" | tar -x -C "$x" ./bin/busybox ||
		die "$bpkg holds no bin/busybox"
	cp "$x/bin/busybox" "$cache/files.new/busybox"
	rm -rf "$files"
	mv "$cache/files.new" "$files"
	rm -rf "$cache/dl"
	printf '%s\n' "$manifest" >"$cache/manifest"
	have_all || die "cache incomplete after unpacking"
fi

# ---------------------------------------------------------------------------
# 2. The initramfs: busybox, /init, the modules, the programs and files.
# ---------------------------------------------------------------------------

root=$work/initramfs
rm -rf "$root"
mkdir -p "$root/bin" "$root/lib/modules" "$root/tests" "$root/proc" "$root/sys" "$root/dev" \
	"$root/run" "$root/tmp"
install -m 0755 "$files/busybox" "$root/bin/busybox"
for m in $mods; do
	install -m 0644 "$files/$m.ko" "$root/lib/modules/$m.ko"
done
for p in "${extra[@]}"; do
	b=${p##*/}
	[ ! -e "$root/tests/$b" ] || die "two files named $b"
	install -m 0755 "$p" "$root/tests/$b"
done
progs=""
for p in "$@"; do
	b=${p##*/}
	[ ! -e "$root/tests/$b" ] || die "two programs named $b"
	install -m 0755 "$p" "$root/tests/$b"
	progs="$progs /tests/$b"
done

case ${APQ_SEED:-0} in
*[!0-9a-fA-Fx]*) die "APQ_SEED must be a number: '$APQ_SEED'" ;;
esac
{
	echo '#!/bin/busybox sh'
	echo '/bin/busybox --install -s /bin'
	echo 'export PATH=/bin'
	echo 'mount -t proc proc /proc'
	echo 'mount -t sysfs sysfs /sys'
	echo 'mount -t devtmpfs devtmpfs /dev'
	echo 'echo "APQ-XEN-INIT: dom0 up after $(cut -d" " -f1 /proc/uptime) s: $(uname -r), $(grep -c ^processor /proc/cpuinfo) vcpus"'
	echo "for m in $mods; do"
	echo '	insmod /lib/modules/$m.ko || echo "APQ-XEN-INIT: insmod $m failed"'
	echo 'done'
	echo 'for i in 1 2 3 4 5 6 7 8 9 10; do'
	echo '	[ -c /dev/xen/evtchn ] && [ -c /dev/xen/gntalloc ] && [ -c /dev/xen/gntdev ] && break'
	echo '	sleep 0.2'
	echo 'done'
	echo '[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }'
	echo 'echo "APQ-XEN-INIT: $(ls /dev/xen | tr "\n" " ")"'
	if [ -n "${APQ_SEED:-}" ]; then
		echo "export APQ_SEED=$APQ_SEED"
	fi
	echo "for t in$progs; do"
	echo '	echo "APQ-XEN-INIT: running $t at $(cut -d" " -f1 /proc/uptime) s"'
	echo "	\$t ${APQ_XEN_ARGS:-} 2>&1"
	echo '	echo "APQ-XEN-INIT: $t exited with status $? at $(cut -d" " -f1 /proc/uptime) s"'
	echo 'done'
	echo 'sync'
	echo 'poweroff -f'
} >"$root/init"
chmod 0755 "$root/init"

initrd=$work/initrd.cpio.gz
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
	gzip -1 >"$initrd.tmp" || die "cannot build the initramfs"
mv "$initrd.tmp" "$initrd"

# ---------------------------------------------------------------------------
# 3. Boot.  The serial console is dom0's and Xen's; timestamp the first
#    result line on the host as it arrives.
# ---------------------------------------------------------------------------

log=$work/serial.log
rm -f "$log" "$work/result-at"
echo "$me: booting Xen ($(stat -c %s "$files/xen") B), dom0 $kver, initramfs $(stat -c %s "$initrd") B, timeout ${timeout_s}s"
t0=$EPOCHREALTIME
set +e
# -initrd takes comma-separated modules; a comma in a path would split it.
case "$cache$work" in *,*) die "paths must not contain commas: $cache $work" ;; esac
timeout --kill-after=10 "$timeout_s" \
	qemu-system-x86_64 -m 1024 -smp 2 -cpu max,-smap \
		-nographic -no-reboot -monitor none \
		-kernel "$files/xen" \
		-append "console=com1 dom0_mem=512M" \
		-initrd "$files/vmlinuz console=hvc0 rdinit=/init,$initrd" \
		</dev/null 2>&1 |
	while IFS= read -r line; do
		# Drop carriage returns and the BIOS's terminal escapes.
		line=${line//$'\r'/}
		line=${line//$'\e'c/}
		while [[ $line =~ $'\e'\[[0-9\;?]*[A-Za-z] ]]; do
			line=${line/"${BASH_REMATCH[0]}"/}
		done
		printf '%s\n' "$line"
		case $line in
		*APQ-XEN-RESULT:*)
			[ -f "$work/result-at" ] || echo "$EPOCHREALTIME" >"$work/result-at" ;;
		esac
	done >"$log"
status=${PIPESTATUS[0]}
set -e
t1=$EPOCHREALTIME

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

npass=$(grep -c 'APQ-XEN-RESULT: PASS' "$log" || true)
nfail=$(grep -c 'APQ-XEN-RESULT: FAIL' "$log" || true)
ok=0
[ "$nfail" -eq 0 ] && [ "$npass" -eq $# ] && ok=1

if [ "${APQ_XEN_QUIET:-0}" = 1 ] && [ $ok = 1 ]; then
	echo "----- serial log: Xen's banner, the programs' lines (all: $log) -----"
	grep -oE '\(XEN\) (Xen version|Command line|Dom0 has).*' "$log" || true
	sed -n '/about to get started/,$p' "$log" |
		grep -vE '^\(XEN\) |^\[ *[0-9]+\.[0-9]+\] ' || true
else
	echo "----- serial log ($log) -----"
	cat "$log"
fi
echo "----- end of serial log -----"

if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
	echo "$me: QEMU did not finish within ${timeout_s}s and was killed"
fi
echo "$me: QEMU exited with status $status after $(elapsed "$t0" "$t1") s"
if [ -f "$work/result-at" ]; then
	echo "$me: boot to first result line: $(elapsed "$t0" "$(cat "$work/result-at")") s"
fi

if [ $ok = 1 ]; then
	echo "$me: PASS ($npass of $# programs passed)"
	exit 0
fi
if grep -q '(XEN) Hardware Dom0 crashed\|Kernel panic\|(XEN) Panic' "$log"; then
	echo "$me: dom0 or Xen crashed: see the log above"
fi
echo "$me: FAIL ($npass of $# programs passed, $nfail failed)"
exit 1
