#!/bin/sh
# SPDX-License-Identifier: MIT
#
# netback-domu.sh - run by boot-xen.sh (with --guest) in dom0: the netback
# example across a domain boundary.  A guest runs apq-netback's front
# (netback-guest.sh) with its TAP device; dom0 runs the back in a network
# namespace of its own with the other TAP device; the two meet in xenstore
# and carry frames over granted rings and event channels.  dom0 then pings
# the guest, sends it a file and takes one back, each checked by SHA-256,
# and kills its back with SIGKILL: no detach, only dom0's kernel tearing
# the grant mappings down, which the guest's front must see as the peer
# gone (Xen's unmap notification, then the rings' -EPIPE).
#
# Link-local addresses only (169.254.77.1 here, .2 in the guest), in a
# namespace that dies with the script: nothing leaves the two domains.
# One "APQ-XEN-RESULT: PASS ..." or "... FAIL ..." line at the end.
here=$(dirname "$0")
name=apq-netfront
console=/var/log/xen/console/guest-$name.log
size=8388608
peer=169.254.77.2

now() { cut -d" " -f1 /proc/uptime; }
fail() {
	echo "APQ-XEN-RESULT: FAIL netback-domu: $*"
	exit 1
}
# In the namespace: the reason, for the outer script's verdict, then what
# tells where a frame went: the back's counters (SIGUSR1 rewrites its stats
# file) and the kernel's for the TAP device.
ifail() {
	echo "netback-domu: FAIL $*"
	if [ -n "${back:-}" ] && kill -USR1 "$back" 2>/dev/null; then
		sleep 1
		sed 's/^/netback-domu: back /' /tmp/back.stats
	fi
	ip -s link show apq0 2>/dev/null | sed 's/^/netback-domu: /'
	exit 1
}
# console_line WHAT SECONDS: wait until the guest's console has a line
# "APQ-GUEST-NETBACK: WHAT...", print it; fail on its FAIL line or timeout.
console_line() {
	i=0
	while :; do
		line=$(tr -d '\r' <"$console" 2>/dev/null | grep "^APQ-GUEST-NETBACK: $1" | head -n1)
		[ -z "$line" ] || { echo "$line"; return 0; }
		bad=$(tr -d '\r' <"$console" 2>/dev/null | grep '^APQ-GUEST-NETBACK: FAIL')
		[ -z "$bad" ] || { echo "guest: $bad" >&2; return 1; }
		[ $i -lt $(($2 * 5)) ] || { echo "guest: no '$1' line after $2 s" >&2; return 1; }
		i=$((i + 1))
		sleep 0.2
	done
}
sha() { sha256sum <"$1" | cut -d' ' -f1; }

# The dom0 half, in its own network namespace (the script again, under
# unshare -n): prints the checks' lines, exits 0 if all passed.
if [ "${1:-}" = --in-netns ]; then
	domid=$2
	ip link set lo up
	"$here/apq-netback" back --xenstore --domid "$domid" --tap apq0 \
		--stats /tmp/back.stats &
	back=$!
	trap 'kill $back 2>/dev/null' EXIT
	i=0
	# The back makes its TAP once it has read the front's rings, after
	# the guest has booted.
	until ip link show apq0 >/dev/null 2>&1; do
		kill -0 $back 2>/dev/null || ifail "the back exited before its TAP was up"
		[ $i -lt 600 ] || ifail "no TAP device apq0 after 60 s"
		i=$((i + 1))
		sleep 0.1
	done
	ip addr add 169.254.77.1/24 dev apq0 && ip link set apq0 up ||
		ifail "cannot configure apq0"
	"$here/netcheck" bulk-recv 5203 /tmp/from-guest &
	recv=$!
	console_line ready 60 || ifail "the guest's side did not come up"
	t0=$(now)
	ping -c 3 -W 10 $peer >/tmp/ping.log 2>&1 || { cat /tmp/ping.log; ifail "ping $peer"; }
	echo "netback-domu: ping: $(grep -E 'packets|round-trip' /tmp/ping.log | tr '\n' ' ')"
	"$here/netcheck" ping-sweep $peer 0 1472 || ifail "ping sweep 0..1472 bytes"
	head -c $size /dev/urandom >/tmp/to-guest
	"$here/netcheck" bulk-send $peer 5202 /tmp/to-guest || ifail "bulk transfer to the guest"
	got=$(console_line "received" 60) || ifail "the guest reported no transfer"
	echo "netback-domu: $got"
	case $got in
	*"received $size bytes sha256 $(sha /tmp/to-guest)"*) ;;
	*) ifail "the guest received other bytes than dom0 sent (dom0 sent sha256 $(sha /tmp/to-guest))" ;;
	esac
	wait $recv || ifail "bulk transfer from the guest: netcheck status $?"
	sent=$(console_line "sent" 60) || ifail "the guest reported no send"
	echo "netback-domu: $sent"
	case $sent in
	*"sent $size bytes sha256 $(sha /tmp/from-guest)"*) ;;
	*) ifail "dom0 received other bytes than the guest sent (dom0 got $(wc -c </tmp/from-guest) bytes, sha256 $(sha /tmp/from-guest))" ;;
	esac
	echo "netback-domu: two transfers of $size bytes checked, after the pings, in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
	# Its counters first (SIGUSR1 rewrites the file), then the kill.
	kill -USR1 $back
	sleep 1
	kill -KILL $back
	wait $back
	trap - EXIT
	grep -E '^(tx|rx)_(frames|wakeups_sent|wakeups_skipped|sleeps|rescues)=' \
		/tmp/back.stats | tr '\n' ' ' | sed 's/^/netback-domu: back /'
	echo
	exit 0
fi

cat >/tmp/$name.cfg <<EOF
name = "$name"
type = "pv"
kernel = "/guest/vmlinux"
ramdisk = "/guest/initrd.cpio.gz"
memory = 128
vcpus = 1
extra = "console=hvc0 rdinit=/init apq_run=netback-guest.sh"
EOF
xl create /tmp/$name.cfg >/tmp/$name.xl.log 2>&1 || {
	cat /tmp/$name.xl.log
	fail "xl create"
}
domid=$(xl domid $name) || fail "xl domid $name"
echo "netback-domu: guest $name is domain $domid"
timeout 300 unshare -n sh "$0" --in-netns "$domid" 2>&1 | tee /tmp/netback-domu.log
why=$(grep '^netback-domu: FAIL' /tmp/netback-domu.log | head -n1)
# The guest's front ends when the back does; then its init powers it off.
i=0
while xl domid $name >/dev/null 2>&1 && [ $i -lt 300 ]; do
	i=$((i + 1))
	sleep 0.1
done
xl domid $name >/dev/null 2>&1 && { echo "netback-domu: the guest is still there: destroying it"; xl destroy $name; }
echo "----- the guest's lines -----"
tr -d '\r' <"$console" | grep -E '^APQ-GUEST' || true
echo "----- end of the guest's lines -----"
if [ -n "$why" ] || ! grep -q '^netback-domu: two transfers' /tmp/netback-domu.log; then
	echo "----- the guest's whole console -----"
	tr -d '\r' <"$console"
	echo "----- end of the guest's whole console -----"
fi
[ -z "$why" ] || fail "${why#netback-domu: FAIL }"
grep -q '^netback-domu: two transfers' /tmp/netback-domu.log ||
	fail "dom0's side ended before its checks (timeout?)"
tr -d '\r' <"$console" | grep -q '^APQ-GUEST-NETBACK: front exited with status 3' ||
	fail "the guest's front did not see dom0's back killed (status 3, peer gone)"
echo "APQ-XEN-RESULT: PASS netback-domu: ping, a 0..1472-byte ping sweep and $size bytes each way between dom0 and a guest, checked; the front saw the back killed"
