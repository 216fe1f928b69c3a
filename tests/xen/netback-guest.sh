#!/bin/sh
# SPDX-License-Identifier: MIT
#
# netback-guest.sh - the guest's half of netback-domu.sh, run by the
# guest's /init (apq_run=netback-guest.sh): apq-netback's front over Xen
# rings to dom0, met in xenstore, its TAP device up as 169.254.77.2.  It
# takes one bulk transfer from dom0 and sends one back, printing each
# file's SHA-256 on the console, where dom0 reads them; then it waits for
# dom0's back to go, which the front sees as the rings' -EPIPE (status 3).
#
# Every line dom0 looks for starts with "APQ-GUEST-NETBACK:".  The
# transfers give up on their own (netcheck's limit); the last wait, for
# the front, ends when dom0 stops its back or destroys this guest.
here=$(dirname "$0")
size=8388608
say() { echo "APQ-GUEST-NETBACK: $*"; }
# A failed check, then the front's counters and the kernel's for the TAP
# device, which tell where a frame went.
gfail() {
	say "FAIL $*"
	if kill -USR1 "$front" 2>/dev/null; then
		sleep 1
		sed 's/^/APQ-GUEST-NETBACK: front /' /tmp/front.stats
	fi
	ip -s link show apq0 2>/dev/null | sed 's/^/APQ-GUEST-NETBACK: /'
	exit 1
}

[ -c /dev/net/tun ] || { mkdir -p /dev/net && mknod /dev/net/tun c 10 200; }
"$here/apq-netback" front --backend xen --xenstore --domid 0 --tap apq0 \
	--stats /tmp/front.stats &
front=$!
i=0
until ip link show apq0 >/dev/null 2>&1; do
	if ! kill -0 $front 2>/dev/null; then
		wait $front
		say "FAIL the front exited with status $? before its TAP device was up"
		exit 1
	fi
	[ $i -lt 300 ] || { say "FAIL no TAP device apq0 after 300 looks"; exit 1; }
	i=$((i + 1))
	sleep 0.1
done
ip addr add 169.254.77.2/24 dev apq0 && ip link set apq0 up ||
	{ say "FAIL cannot configure apq0"; exit 1; }
"$here/netcheck" bulk-recv 5202 /tmp/bulk.out 2>&1 &
recv=$!
head -c $size /dev/urandom >/tmp/bulk.in
say "ready"
wait $recv || gfail "bulk-recv: status $?"
say "received $(wc -c </tmp/bulk.out) bytes sha256 $(sha256sum </tmp/bulk.out | cut -d' ' -f1)"
# dom0 listens before it sends: its receiver is up by now.
"$here/netcheck" bulk-send 169.254.77.1 5203 /tmp/bulk.in 2>&1 ||
	gfail "bulk-send: status $?"
say "sent $size bytes sha256 $(sha256sum </tmp/bulk.in | cut -d' ' -f1)"
wait $front
status=$?
say "front exited with status $status: $(grep '^reason=' /tmp/front.stats)"
grep -E '^(tx|rx)_(frames|wakeups_sent|wakeups_skipped|sleeps|rescues)=' \
	/tmp/front.stats | tr '\n' ' ' | sed 's/^/APQ-GUEST-NETBACK: front /'
echo
[ $status -eq 3 ] || exit 1
