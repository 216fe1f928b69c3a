#!/bin/sh
# SPDX-License-Identifier: MIT
#
# domu-dom0.sh - run by boot-xen.sh (with --guest) in dom0: start a PV
# guest with xl, run xen-domu's frontend in it and its backend here, and
# report.  boot-xen.sh copies xen-domu beside this script and into the
# guest's /tests, and has started xenstored and xenconsoled.
#
# Usage: domu-dom0.sh [SCENARIO...]
#   Without names, every scenario of xen-domu, destroy-midstream last.
#   boot-xen.sh passes APQ_XEN_ARGS here.
#
# xen-domu's backend prints the "APQ-XEN-RESULT: ..." line; then come the
# guest's own lines (its statistics, its init's) from its console log, and
# a FAIL line if the guest did not end as it should.
here=$(dirname "$0")
name=apq-guest
console=/var/log/xen/console/guest-$name.log
now() { cut -d" " -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# start_guest NAME RUN ARGS: create a guest that runs /tests/RUN with ARGS
# (comma-separated); print its domain id.  Its console goes to
# /var/log/xen/console/guest-NAME.log.
start_guest() {
	cat >"/tmp/$1.cfg" <<-EOF
	name = "$1"
	type = "pv"
	kernel = "/guest/vmlinux"
	ramdisk = "/guest/initrd.cpio.gz"
	memory = 128
	vcpus = 1
	extra = "console=hvc0 rdinit=/init apq_run=$2 apq_args=$3"
	EOF
	xl create "/tmp/$1.cfg" >"/tmp/$1.xl.log" 2>&1 || {
		cat "/tmp/$1.xl.log"
		return 1
	}
	xl domid "$1"
}

# gone NAME SECONDS: wait until the domain NAME no longer exists.
gone() {
	i=0
	while xl domid "$1" >/dev/null 2>&1; do
		[ "$i" -lt $(($2 * 10)) ] || return 1
		i=$((i + 1))
		sleep 0.1
	done
}

t0=$(now)
domid=$(start_guest $name xen-domu front) || {
	echo "APQ-XEN-RESULT: FAIL domu: xl create failed"
	exit 1
}
echo "xen-domu: xl create took $(since "$t0") s: guest $name is domain $domid"
t1=$(now)
# The backend bounds every wait itself; timeout is the last resort.  It
# runs in dom0's own pid namespace, as the guest's front runs in the
# guest's: apq must tell the two kernels apart (doc/xen-domu.md).
timeout 400 "$here/xen-domu" back "$domid" "$@" 2>&1 |
	tee /tmp/xen-domu-back.log
echo "xen-domu: the backend ran for $(since "$t1") s"
if gone $name 30; then
	echo "xen-domu: the guest is gone, $(since "$t0") s after xl create"
else
	echo "xen-domu: the guest did not power off within 30 s: destroying it"
	xl destroy $name
fi

echo "----- the guest's console (its kernel's lines left out) -----"
grep -v '^\[ *[0-9]*\.[0-9]*\] ' "$console" | tr -d '\r'
echo "----- end of the guest's console -----"
if ! grep -q 'APQ-XEN-RESULT: PASS' /tmp/xen-domu-back.log; then
	echo "----- the guest's whole console -----"
	tr -d '\r' <"$console"
	echo "----- end of the guest's whole console -----"
	grep -q 'APQ-XEN-RESULT:' /tmp/xen-domu-back.log ||
		echo "APQ-XEN-RESULT: FAIL domu: the backend printed no verdict"
elif ! grep -q 'destroyed the guest on purpose' /tmp/xen-domu-back.log &&
     ! grep -q '^APQ-GUEST-INIT: /tests/xen-domu exited with status 0 ' "$console"; then
	echo "APQ-XEN-RESULT: FAIL domu: the guest's frontend did not exit with status 0"
fi
