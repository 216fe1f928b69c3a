#!/bin/bash
# SPDX-License-Identifier: MIT
#
# boot-xen.sh - run static test programs in dom0 of a real Xen hypervisor,
# booted under qemu-system-x86_64 (software emulation: no KVM needed).
#
# Usage: boot-xen.sh CACHE_DIR WORK_DIR [--file=FILE...] [--guest=FILE...]
#                    PROGRAM [PROGRAM...]
#
#   CACHE_DIR  where the hypervisor, dom0 kernel, its Xen modules and busybox
#              are kept between runs.  They come from Debian packages fetched
#              with `apt-get download` (never installed on the host) the first
#              time, and again only when apt's candidate version changes.
#   WORK_DIR   scratch space: the initramfs, the serial log (serial.log).
#   FILE       copied to /tests beside the programs, not run: what a
#              program needs (a script it calls, a static helper).
#   --guest=FILE  copied to /tests of a guest domain's initramfs.  With it,
#              dom0 also gets Xen's toolstack and starts it before the
#              programs run: xenstored, xen-init-dom0, xenconsoled, and `xl`
#              on the PATH (from xen-utils-4.17, xenstore-utils and their
#              libraries, fetched and cached the same way).  A program
#              starts the guest itself with `xl create`: the same Debian
#              kernel, as an ELF image, is /guest/vmlinux, the guest's
#              initramfs /guest/initrd.cpio.gz (busybox, the xen-evtchn,
#              xen-gntalloc, xen-gntdev and tun modules, the files).  The
#              guest's /init runs /tests/NAME ARG... as root, where the
#              kernel command line (xl's `extra`) holds apq_run=NAME and
#              apq_args=ARG,ARG..., then powers the guest off.  Its console
#              is /var/log/xen/console/guest-DOMAIN_NAME.log in dom0.
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
#   APQ_XEN_CPU      QEMU's -cpu model (default qemu64: see below)
#
# The boot line, as measured on hosts without KVM: QEMU's -kernel loads Xen
# (a multiboot image once gunzipped) and -initrd passes dom0's kernel, with
# its command line, and the initramfs as multiboot modules.  -cpu qemu64, a
# plain model: with -cpu max, Xen's PV dom0 crashes at once (a #PF in
# create_bounce_frame) unless SMAP is off, and with max,-smap static programs
# die of SIGSEGV at random (busybox in dom0 as well as apq's programs in a
# guest): in each of four runs on 2026-12-02 with XSAVE on, also without
# fsgsbase or without pcid and invpcid, and in none of three without XSAVE
# (max,-smap,-xsave,-avx,-avx2).  So it is QEMU's emulation of the extended
# register state under Xen, not these programs.
# console=com1 for Xen, hvc0 for dom0: both end on the serial port, which
# -nographic puts on stdout.  -no-reboot: a crashing dom0 makes Xen reboot,
# which then ends QEMU instead.  Booting takes 10 to 15 s on an idle host.

set -eu
set -o pipefail

me=${0##*/}
die() { echo "$me: error: $*" >&2; exit 1; }
skip() { echo "$me: skipped: $*" >&2; exit 77; }

[ $# -ge 3 ] || { echo "usage: $me CACHE_DIR WORK_DIR [--file=FILE...] [--guest=FILE...] PROGRAM [PROGRAM...]" >&2; exit 2; }
cache=$1
work=$2
shift 2
timeout_s=${APQ_XEN_TIMEOUT:-600}
extra=()
guest=()
while [ $# -gt 0 ]; do
	case $1 in
	--file=*) extra+=("${1#--file=}") ;;
	--guest=*) guest+=("${1#--guest=}") ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 1 ] || die "no program to run"

for p in "${extra[@]}" "${guest[@]}"; do
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
for tool in dpkg-deb tar cpio gzip gunzip xz timeout; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

mkdir -p "$cache" "$work"
cache=$(cd "$cache" && pwd)
work=$(cd "$work" && pwd)

# ---------------------------------------------------------------------------
# 1. The packages: resolve names and versions, fetch and unpack when the
#    cache does not hold exactly these versions.
# ---------------------------------------------------------------------------

# One apt-cache call for all (each call costs half a second): lines
# "package=candidate-version", or die naming the package apt does not know.
candidates() {
	local out p
	out=$(LC_ALL=C apt-cache policy "$@" 2>/dev/null |
	      awk '/^[^ ].*:$/ { p = substr($0, 1, length($0) - 1) }
		   $1 == "Candidate:" && $2 != "(none)" { print p "=" $2 }') || true
	for p in "$@"; do
		grep -q "^$p=" <<<"$out" ||
			die "apt knows no candidate version of '$p' (run apt-get update, or add the Debian archive that carries it to apt's sources)"
	done
	printf '%s\n' "$out"
}

# fetch DIR MANIFEST: download each package=version of MANIFEST into DIR.
fetch() {
	local pv
	rm -rf "$1"
	mkdir -p "$1"
	for pv in $2; do
		# apt-get download writes into the current directory; as root it
		# warns that _apt cannot write there, which is harmless.
		if ! (cd "$1" && apt-get download -q "$pv") >"$1/apt.log" 2>&1; then
			cat "$1/apt.log" >&2
			die "apt-get download $pv failed (network? apt sources?)"
		fi
	done
}

# deb DIR PKG: the one .deb of package PKG in DIR.
deb() {
	local d
	d=$(ls "$1/$2"_*.deb 2>/dev/null | head -n1) || true
	[ -n "$d" ] || die "apt-get download left no $2_*.deb in $1"
	echo "$d"
}

kpkg=$(LC_ALL=C apt-cache depends linux-image-amd64 2>/dev/null |
       sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1) || true
[ -n "$kpkg" ] || die "cannot resolve the dom0 kernel package: 'apt-cache depends linux-image-amd64' names no linux-image-<version>-amd64"
kver=${kpkg#linux-image-}
xpkg=xen-hypervisor-4.17-amd64
bpkg=busybox-static
manifest=$(candidates $xpkg "$kpkg" $bpkg)

files=$cache/files
# Modules, by their path under the kernel's kernel/drivers/.  dom0 loads
# the Xen devices, then TAP devices (the netback test); with a guest, also
# privcmd and xenfs, which the toolstack needs (xenfs uses privcmd).  The
# cache holds them all, whichever set a run loads.
modpaths="xen/xen-evtchn xen/xen-privcmd xen/xenfs/xenfs xen/xen-gntalloc xen/xen-gntdev net/tun"
if [ ${#guest[@]} -gt 0 ]; then
	mods="xen-evtchn xen-privcmd xenfs xen-gntalloc xen-gntdev tun"
else
	mods="xen-evtchn xen-gntalloc xen-gntdev tun"
fi
guest_mods="xen-evtchn xen-gntalloc xen-gntdev tun"
have_all() {
	local f m
	for f in xen vmlinuz vmlinux busybox $(for m in $modpaths; do echo "${m##*/}.ko"; done); do
		[ -s "$files/$f" ] || return 1
	done
}

if [ -f "$cache/manifest" ] && [ "$(cat "$cache/manifest")" = "$manifest" ] && have_all; then
	echo "$me: cached: $(tr '\n' ' ' <"$cache/manifest")"
else
	echo "$me: fetching: $(tr '\n' ' ' <<<"$manifest")"
	rm -rf "$cache/files.new" "$cache/manifest"
	fetch "$cache/dl" "$manifest"
	mkdir -p "$cache/files.new"
	x=$cache/dl/x
	mkdir -p "$x"
	# dpkg-deb -x would unpack the whole kernel package (some 400 MB of
	# modules); take only the files needed, straight from its data tarball.
	dpkg-deb --fsys-tarfile "$(deb "$cache/dl" $xpkg)" |
		tar -x -C "$x" ./boot/xen-4.17-amd64.gz ||
		die "$xpkg holds no boot/xen-4.17-amd64.gz"
	gunzip -c "$x/boot/xen-4.17-amd64.gz" >"$cache/files.new/xen" ||
		die "cannot gunzip boot/xen-4.17-amd64.gz"
	# Modules live in lib/modules, or usr/lib/modules on merged-/usr.
	dpkg-deb --fsys-tarfile "$(deb "$cache/dl" "$kpkg")" |
		tar -x -C "$x" --wildcards "./boot/vmlinuz-$kver" \
			$(for m in $modpaths; do echo "./*lib/modules/$kver/kernel/drivers/$m.ko*"; done) ||
		die "$kpkg holds no boot/vmlinuz-$kver or not all of these modules: $modpaths"
	cp "$x/boot/vmlinuz-$kver" "$cache/files.new/vmlinuz"
	# The guest's kernel: the ELF image inside the bzImage.  Given the
	# bzImage, xl create spends 6.5 s decompressing it under emulation;
	# given the ELF, 1.2 s.  The payload is the stream that starts at the
	# first xz (or gzip) magic; --single-stream stops at its end.
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$x/boot/vmlinuz-$kver" | head -n1 | cut -d: -f1) || true
	if [ -n "$off" ]; then
		tail -c +$((off + 1)) "$x/boot/vmlinuz-$kver" |
			xz -dcq --single-stream >"$cache/files.new/vmlinux" 2>/dev/null || true
	else
		off=$(LC_ALL=C grep -obUaP '\x1f\x8b\x08' "$x/boot/vmlinuz-$kver" | head -n1 | cut -d: -f1) || true
		[ -z "$off" ] || tail -c +$((off + 1)) "$x/boot/vmlinuz-$kver" |
			gunzip -cq >"$cache/files.new/vmlinux" 2>/dev/null || true
	fi
	[ "$(head -c 4 "$cache/files.new/vmlinux" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ] ||
		die "cannot find the ELF image in boot/vmlinuz-$kver (neither xz nor gzip inside?)"
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
	dpkg-deb --fsys-tarfile "$(deb "$cache/dl" $bpkg)" | tar -x -C "$x" ./bin/busybox ||
		die "$bpkg holds no bin/busybox"
	cp "$x/bin/busybox" "$cache/files.new/busybox"
	rm -rf "$files"
	mv "$cache/files.new" "$files"
	rm -rf "$cache/dl"
	printf '%s\n' "$manifest" >"$cache/manifest"
	have_all || die "cache incomplete after unpacking"
fi

# The toolstack, only for a guest: the programs dom0 runs, and the shared
# libraries they load, as a tree to copy into dom0's initramfs.
toolstack=$cache/toolstack
xenbin=usr/lib/xen-4.17/bin
ts_progs="$xenbin/xl $xenbin/xenstored $xenbin/xenconsoled $xenbin/xen-init-dom0
	  $xenbin/libxl-save-helper usr/bin/xenstore"
libdir=lib/x86_64-linux-gnu

# Debian's packages and their library packages, followed through Depends
# one level per apt-cache call; python3 and the like (for tools we do not
# copy) are left out by following only library packages.
toolstack_packages() {
	local seen=" $* " todo="$*" next p
	while [ -n "$todo" ]; do
		# shellcheck disable=SC2086 # one package name a word
		next=$(LC_ALL=C apt-cache depends --no-recommends --no-suggests \
			--no-conflicts --no-breaks --no-replaces --no-enhances $todo 2>/dev/null |
		       sed -n 's/^ *\(Pre\)\{0,1\}Depends: \([a-z0-9][a-z0-9.+-]*\)$/\2/p' |
		       grep -E '^(lib|zlib)' | sort -u) || true
		todo=
		for p in $next; do
			case $seen in *" $p "*) ;; *) seen="$seen$p "; todo="$todo $p" ;; esac
		done
	done
	echo "${seen# }"
}

# elf_needs ROOT FILE...: the shared libraries FILE... load, transitively,
# as paths under ROOT; die on one the packages do not hold.
elf_needs() {
	local root=$1 f so d hit
	local -A seen=()
	local todo=("${@:2}")
	while [ ${#todo[@]} -gt 0 ]; do
		f=${todo[0]}
		todo=("${todo[@]:1}")
		for so in $(LC_ALL=C readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
			[ -z "${seen[$so]:-}" ] || continue
			hit=
			for d in $libdir usr/$libdir; do
				[ -e "$root/$d/$so" ] && { hit=$root/$d/$so; break; }
			done
			[ -n "$hit" ] || die "no $so (which ${f#"$root"/} needs) in the toolstack's packages"
			seen[$so]=$hit
			todo+=("$hit")
		done
	done
	printf '%s\n' "${seen[@]}"
}

if [ ${#guest[@]} -gt 0 ]; then
	command -v readelf >/dev/null || die "readelf not found (binutils)"
	# shellcheck disable=SC2046 # one package name a word
	ts_manifest=$(candidates $(toolstack_packages xen-utils-4.17 xenstore-utils))
	if [ -f "$toolstack/manifest" ] && [ "$(cat "$toolstack/manifest")" = "$ts_manifest" ] &&
	   [ -s "$toolstack/root/lib64/ld-linux-x86-64.so.2" ]; then
		echo "$me: cached toolstack: $(wc -l <"$toolstack/manifest") packages"
	else
		echo "$me: fetching the toolstack: $(tr '\n' ' ' <<<"$ts_manifest")"
		rm -rf "$toolstack"
		fetch "$cache/dl-toolstack" "$ts_manifest"
		x=$cache/dl-toolstack/x
		mkdir -p "$x"
		for d in "$cache/dl-toolstack"/*.deb; do
			dpkg-deb -x "$d" "$x" || die "cannot unpack $d"
		done
		r=$toolstack/root.new
		mkdir -p "$r/$libdir" "$r/lib64" "$r/$xenbin" "$r/usr/bin"
		for p in $ts_progs; do
			[ -f "$x/$p" ] || die "the toolstack's packages hold no $p"
			cp "$x/$p" "$r/$p"
		done
		# pthread_cancel() loads libgcc_s at run time, which xl calls:
		# no NEEDED entry names it.
		# shellcheck disable=SC2046 # no blanks in these paths
		for l in $(elf_needs "$x" $(for p in $ts_progs; do echo "$x/$p"; done)) \
			 "$x/$libdir/libgcc_s.so.1"; do
			cp -L "$l" "$r/$libdir/${l##*/}"
		done
		[ -s "$r/$libdir/ld-linux-x86-64.so.2" ] || die "the toolstack's packages hold no dynamic loader"
		mv "$r/$libdir/ld-linux-x86-64.so.2" "$r/lib64/"
		ln -s ../../lib64/ld-linux-x86-64.so.2 "$r/$libdir/ld-linux-x86-64.so.2"
		# xenstore is one program that acts by the name it runs under.
		for n in read write ls list rm exists chmod watch; do
			ln -s xenstore "$r/usr/bin/xenstore-$n"
		done
		mv "$r" "$toolstack/root"
		rm -rf "$cache/dl-toolstack"
		printf '%s\n' "$ts_manifest" >"$toolstack/manifest"
	fi
fi

# ---------------------------------------------------------------------------
# 2. The initramfs: busybox, /init, the modules, the programs and files;
#    with a guest, the toolstack and the guest's kernel and initramfs.
# ---------------------------------------------------------------------------

# base_root DIR MODULE...: busybox and the modules in a new tree DIR.
base_root() {
	local m
	rm -rf "$1"
	mkdir -p "$1/bin" "$1/lib/modules" "$1/tests" "$1/proc" "$1/sys" "$1/dev" \
		"$1/run" "$1/tmp"
	install -m 0755 "$files/busybox" "$1/bin/busybox"
	for m in "${@:2}"; do
		install -m 0644 "$files/$m.ko" "$1/lib/modules/$m.ko"
	done
}

# add_tests DIR FILE...: the files in DIR/tests, executable.
add_tests() {
	local p b
	for p in "${@:2}"; do
		b=${p##*/}
		[ ! -e "$1/tests/$b" ] || die "two files named $b"
		install -m 0755 "$p" "$1/tests/$b"
	done
}

# pack DIR OUT: DIR as a gzipped newc cpio archive.
pack() {
	(cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
		gzip -1 >"$2.tmp" || die "cannot build the initramfs $2"
	mv "$2.tmp" "$2"
}

root=$work/initramfs
# shellcheck disable=SC2086 # one module a word
base_root "$root" $mods
add_tests "$root" "${extra[@]}"
progs=""
for p in "$@"; do
	add_tests "$root" "$p"
	progs="$progs /tests/${p##*/}"
done

case ${APQ_SEED:-0} in
*[!0-9a-fA-Fx]*) die "APQ_SEED must be a number: '$APQ_SEED'" ;;
esac

if [ ${#guest[@]} -gt 0 ]; then
	groot=$work/guest-initramfs
	# shellcheck disable=SC2086
	base_root "$groot" $guest_mods
	add_tests "$groot" "${guest[@]}"
	{
		echo '#!/bin/busybox sh'
		echo "mods=\"$guest_mods\""
		# Two tabs of this script's indentation come off.
		sed 's/^\t\t//' <<'GUEST_INIT'
		/bin/busybox --install -s /bin
		export PATH=/bin
		mount -t proc proc /proc
		mount -t sysfs sysfs /sys
		mount -t devtmpfs devtmpfs /dev
		now() { cut -d" " -f1 /proc/uptime; }
		echo "APQ-GUEST-INIT: up after $(now) s: $(uname -r)"
		for m in $mods; do
			insmod /lib/modules/$m.ko || echo "APQ-GUEST-INIT: insmod $m failed"
		done
		for i in 1 2 3 4 5 6 7 8 9 10; do
			[ -c /dev/xen/evtchn ] && [ -c /dev/xen/gntalloc ] && break
			sleep 0.2
		done
		run= args=
		for w in $(cat /proc/cmdline); do
			case $w in
			apq_run=*) run=${w#apq_run=} ;;
			apq_args=*) args=$(echo "${w#apq_args=}" | tr , " ") ;;
			esac
		done
		if [ -n "$run" ]; then
			echo "APQ-GUEST-INIT: running /tests/$run $args at $(now) s"
			/tests/$run $args 2>&1
			echo "APQ-GUEST-INIT: /tests/$run exited with status $? at $(now) s"
		else
			echo "APQ-GUEST-INIT: no apq_run= on the kernel command line"
		fi
		sync
		poweroff -f
GUEST_INIT
	} >"$groot/init"
	chmod 0755 "$groot/init"
	mkdir -p "$root/guest"
	pack "$groot" "$root/guest/initrd.cpio.gz"
	cp -a "$toolstack/root/." "$root/"
	mkdir -p "$root/var/lib/xen" "$root/var/lib/xenstored" "$root/var/log/xen/console" \
		"$root/etc/xen" "$root/dev/pts"
	ln -s /run "$root/var/run"
	# dom0 has a fixed size (dom0_mem): xl takes guests' memory from
	# Xen's free pool and never shrinks dom0.
	echo 'autoballoon="off"' >"$root/etc/xen/xl.conf"
fi

{
	echo '#!/bin/busybox sh'
	echo '/bin/busybox --install -s /bin'
	if [ ${#guest[@]} -gt 0 ]; then
		echo "export PATH=/bin:/usr/bin:/$xenbin"
	else
		echo 'export PATH=/bin'
	fi
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
	if [ ${#guest[@]} -gt 0 ]; then
		# devpts: xenconsoled gives each guest's console a pty, and
		# without one `xl create` waits for it until it times out.
		sed 's/^\t\t//' <<'TOOLSTACK'
		mkdir -p /dev/pts
		mount -t devpts devpts /dev/pts
		mount -t tmpfs tmpfs /run
		mkdir -p /run/xen /run/xenstored
		mount -t xenfs xenfs /proc/xen
		xenstored --pid-file /run/xenstore.pid
		for i in $(seq 50); do
			xenstore-read -s / >/dev/null 2>&1 && break
			sleep 0.1
		done
		xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 ||
			{ echo "APQ-XEN-INIT: xen-init-dom0 failed:"; cat /tmp/xen-init-dom0.log; }
		xenconsoled --log=guest --log-dir=/var/log/xen/console
		echo "APQ-XEN-INIT: toolstack up after $(cut -d" " -f1 /proc/uptime) s: $(xl info 2>/dev/null | grep -E '^(xen_version|free_memory)' | tr -s ' ' | tr '\n' ' ')"
TOOLSTACK
	fi
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
pack "$root" "$initrd"
if [ ${#guest[@]} -gt 0 ]; then
	# The guest's kernel (some 60 MB) goes in an uncompressed archive
	# after the gzipped one: the kernel takes concatenated archives, and
	# inflating that much would cost seconds of emulated CPU at boot.  It
	# looks for an uncompressed one only at a multiple of 4 bytes, and
	# skips the zeros before it.
	size=$(stat -c %s "$initrd")
	head -c $(((4 - size % 4) % 4)) /dev/zero >>"$initrd"
	big=$work/initramfs-kernel
	rm -rf "$big"
	mkdir -p "$big/guest"
	ln -s "$files/vmlinux" "$big/guest/vmlinux"
	(cd "$big" && printf '%s\n' guest/vmlinux | cpio -o -H newc -R 0:0 -L --quiet) \
		>>"$initrd" || die "cannot append the guest's kernel to the initramfs"
fi

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
	qemu-system-x86_64 -m 1024 -smp 2 -cpu "${APQ_XEN_CPU:-qemu64}" \
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
