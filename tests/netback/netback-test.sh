#!/bin/sh
# SPDX-License-Identifier: MIT
#
# netback-test.sh - the netback example carrying real traffic, end to end,
# through netback-link.sh as a user would drive it.
#
# usage: netback-test.sh LINK_SCRIPT NETCHECK [--backend futex|xen]
#
#   LINK_SCRIPT  examples/netback/netback-link.sh
#   NETCHECK     the netcheck program (ping sweeps, bulk transfers)
#   --backend    futex (default) runs everything below; xen (inside dom0,
#                from tests/xen) runs what busybox allows: the ping
#                sweeps, the bulk transfers, the counters, a killed peer
#                and the clean-up.
#
# On a link with jumbo frames (MTU 9000): one ping of every size from 0 to
# 8972 bytes each way, no loss, every reply intact; a flood ping; iperf3 TCP
# and UDP each way; a 32 MiB TCP transfer each way whose SHA-256 matches;
# under load, wakeups skipped.  A peer killed with SIGKILL makes the other
# side report it and exit, and `status` says the link is down.  `down`
# leaves no namespace, process or state behind, also after a crash and an
# interrupted `up`.  Then the other policies, the socketpair relay and
# plain frames (no offloads) each carry pings and a checked transfer.
#
# Needs root (exit 77 otherwise).  Every traffic generator is bounded in
# count and time, and runs inside the two namespaces on link-local
# addresses.  Ends with a summary line: "netback-test: PASS ..." or
# "netback-test: FAIL ...".
set -u

[ $# -ge 2 ] || { echo "usage: $0 LINK_SCRIPT NETCHECK [--backend futex|xen]" >&2; exit 2; }
link=$1
netcheck=$2
shift 2
backend=futex
while [ $# -gt 0 ]; do
	case $1 in
	--backend) backend=$2; shift 2 ;;
	*) echo "$0: unknown argument $1" >&2; exit 2 ;;
	esac
done

skip() { echo "netback-test: skipped: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, TAP devices)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
for tool in ip nsenter unshare sha256sum; do
	command -v $tool >/dev/null 2>&1 || skip "$tool not found"
done

NS_A=apq-a
NS_B=apq-b
ADDR_A=169.254.77.1
ADDR_B=169.254.77.2
state=${APQ_NETBACK_STATE:-/run/apq-netback}
work=$(mktemp -d "${TMPDIR:-/tmp}/netback-test.XXXXXX")
passed=0
failed=0
facts=

in_ns() { ns=$1; shift; nsenter -n"/run/netns/$ns" "$@"; }
kv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1; }
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $*"; }
# Milliseconds since boot (busybox's date has no %N).
ms() { awk '{ printf "%d", $1 * 1000 }' /proc/uptime; }
# check DESCRIPTION COMMAND...: the command's output is kept in $work/out.
check() {
	what=$1
	shift
	t0=$(ms)
	if "$@" >"$work/out" 2>&1; then
		ok "$what ($(( $(ms) - t0 )) ms)"
	else
		not_ok "$what ($(( $(ms) - t0 )) ms)"
		sed 's/^/#   /' "$work/out"
	fi
}
fact() { facts="$facts${facts:+; }$*"; }

cleanup() {
	"$link" down >/dev/null 2>&1
	rm -rf "$work"
}
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Whether process $1 runs apq-netback (a zombie has an empty cmdline: it
# has exited, and only waits for its parent to collect it).
running() {
	tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -n 1 | grep -q 'apq-netback$'
}

# Nothing of a link is left: namespaces, state, processes.
nothing_left() {
	left=
	for ns in $NS_A $NS_B; do
		[ -e "/run/netns/$ns" ] && left="$left netns:$ns"
	done
	[ -e "$state" ] && left="$left $state"
	for p in /proc/[0-9]*; do
		running "${p#/proc/}" && left="$left pid:${p#/proc/}"
	done
	[ -z "$left" ] || { echo "left behind:$left"; return 1; }
}

link_up() { "$link" up --backend "$backend" "$@"; }

sweep() { # FROM_NS TO_ADDR FIRST LAST
	in_ns "$1" "$netcheck" ping-sweep "$2" "$3" "$4"
}

# bulk FROM_NS TO_NS TO_ADDR MIB: a checked transfer.
bulk() {
	head -c $(($4 * 1048576)) /dev/urandom >"$work/bulk.in" || return 1
	rm -f "$work/bulk.out"
	in_ns "$2" "$netcheck" bulk-recv 5202 "$work/bulk.out" >"$work/recv.log" 2>&1 &
	rpid=$!
	i=0
	until grep -q listening "$work/recv.log" 2>/dev/null; do
		[ $i -lt 100 ] || { kill $rpid; echo "receiver did not start"; return 1; }
		sleep 0.05
		i=$((i + 1))
	done
	in_ns "$1" "$netcheck" bulk-send "$3" 5202 "$work/bulk.in" || { kill $rpid; return 1; }
	wait $rpid || { cat "$work/recv.log"; return 1; }
	a=$(sha256sum <"$work/bulk.in" | cut -d' ' -f1)
	b=$(sha256sum <"$work/bulk.out" | cut -d' ' -f1)
	echo "sha256 sent $a received $b"
	[ "$a" = "$b" ]
}

# iperf3 FROM_NS TO_ADDR TO_NS ARGS...: a bounded run that must complete.
iperf() {
	from=$1 to=$2 srv=$3
	shift 3
	in_ns "$srv" iperf3 -s -1 -B "$to" >"$work/iperf-s.log" 2>&1 &
	spid=$!
	i=0
	until in_ns "$from" iperf3 -c "$to" -t 3 --connect-timeout 2000 "$@" >"$work/iperf.log" 2>&1; do
		[ $i -lt 10 ] || { kill $spid 2>/dev/null; cat "$work/iperf.log"; return 1; }
		sleep 0.1	# the server is not listening yet
		i=$((i + 1))
	done
	wait $spid
	cat "$work/iperf.log"
	grep -q receiver "$work/iperf.log"
}

# The receiver's Gbit/s from the last iperf3 run.
iperf_gbps() {
	awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i+1) ~ /bits\/sec/) {
		v = $i; u = $(i+1); f = u ~ /^G/ ? 1 : u ~ /^M/ ? 1e-3 : u ~ /^K/ ? 1e-6 : 1e-9;
		printf "%.2f", v * f } }' "$work/iperf.log"
}

# wait_exit SIDE SECONDS: the side's process ended by then.
wait_exit() {
	pid=$(cat "$state/$1.pid")
	i=0
	while running "$pid"; do
		[ $i -lt $(($2 * 20)) ] || return 1
		sleep 0.05
		i=$((i + 1))
	done
}

# kill_peer VICTIM SURVIVOR: SIGKILL one side mid-traffic; the other must
# report its peer gone and exit within 2 s, and the link show as down.
kill_peer() {
	in_ns $NS_A ping -c 1000 -i 0.01 -W 1 $ADDR_B >/dev/null 2>&1 &
	ppid=$!
	sleep 0.3
	k0=$(ms)
	kill -KILL "$(cat "$state/$1.pid")"
	wait_exit "$2" 2 || { kill $ppid; echo "$2 still runs 2 s after $1 was killed"; return 1; }
	k1=$(ms)
	kill $ppid 2>/dev/null
	wait $ppid 2>/dev/null
	reason=$(kv "$state/$2.stats" reason)
	echo "$2 exited after $((k1 - k0)) ms: $reason"
	fact "$1 killed: $2 out in $((k1 - k0)) ms"
	case $reason in peer-gone*) ;; *) return 1 ;; esac
	"$link" stats
	if "$link" status; then
		echo "status says up"
		return 1
	fi
	"$link" stats | grep -q 'link: down'
}

if [ -e "/run/netns/$NS_A" ] || [ -e "/run/netns/$NS_B" ] || [ -e "$state" ]; then
	echo "netback-test: a netback link is already set up; not touching it ($link down removes it)"
	exit 1
fi

# ---- jumbo frames, the main configuration ----
check "up --backend $backend --mtu 9000" link_up --mtu 9000
check "status says up" "$link" status
check "ping sweep A->B, every size 0..8972, no loss, intact" sweep $NS_A $ADDR_B 0 8972
fact "$(sed -n 's/^ping-sweep //p' "$work/out")"
check "ping sweep B->A, every size 0..8972, no loss, intact" sweep $NS_B $ADDR_A 0 8972
if [ "$backend" = futex ]; then
	check "flood ping A->B, 2000 x 1400 B, no loss" sh -c \
		"nsenter -n/run/netns/$NS_A ping -q -f -c 2000 -s 1400 -w 30 $ADDR_B | tee /dev/stderr | grep -q ' 0% packet loss'"
	check "iperf3 TCP A->B completes" iperf $NS_A $ADDR_B $NS_B
	fact "iperf3 TCP A->B $(iperf_gbps) Gbit/s"
	check "iperf3 TCP B->A completes" iperf $NS_B $ADDR_A $NS_A
	check "iperf3 UDP A->B completes" iperf $NS_A $ADDR_B $NS_B -u -b 300M
	check "iperf3 UDP B->A completes" iperf $NS_B $ADDR_A $NS_A -u -b 300M
fi
check "bulk TCP A->B, 32 MiB, SHA-256 matches" bulk $NS_A $NS_B $ADDR_B 32
check "bulk TCP B->A, 32 MiB, SHA-256 matches" bulk $NS_B $NS_A $ADDR_A 32
"$link" stats --raw >"$work/stats"
"$link" stats
skipped=$(kv "$work/stats" back.tx_wakeups_skipped)
sent=$(kv "$work/stats" back.tx_wakeups_sent)
frames=$(kv "$work/stats" back.tx_frames)
fact "A->B $frames frames, $sent wakeups sent, $skipped skipped"
check "under load, wakeups skipped (A->B: $skipped of $((sent + skipped)))" \
	test "${skipped:-0}" -gt 0
rescues=$(( $(kv "$work/stats" back.rx_rescues) + $(kv "$work/stats" front.rx_rescues) ))
check "no lost wakeup caught (rescues $rescues)" test "$rescues" -eq 0
check "front killed: the back reports it and exits; the link shows down" kill_peer front back
"$link" down
check "down after a crash leaves nothing behind" nothing_left

check "up again (MTU 1500)" link_up
check "up refuses while a link is up" sh -c '! "$1" up --backend "$2"' - "$link" "$backend"
check "back killed: the front reports it and exits; the link shows down" kill_peer back front
"$link" down
check "down leaves nothing behind" nothing_left

# An interrupted up: SIGINT while it connects or configures, then down.
"$link" up --backend "$backend" >/dev/null 2>&1 &
upid=$!
sleep 0.3
kill -INT $upid 2>/dev/null
wait $upid
"$link" down
check "down after an interrupted up leaves nothing behind" nothing_left

# ---- every policy, the relay, plain frames: a sweep and a transfer each ----
if [ "$backend" = futex ]; then
	configs="--policy=always --policy=busy --policy=spin-10us --backend=socketpair --no-offload"
else
	configs="--policy=always"
fi
for cfg in $configs; do
	# shellcheck disable=SC2046 # --key=value into two words
	set -- $(echo "$cfg" | tr = ' ')
	case $1 in --backend) b=$2; shift 2 ;; *) b=$backend ;; esac
	name="${b}${*:+ $*}"
	if ! check "$name: up" "$link" up --backend "$b" "$@"; then
		"$link" down
		continue
	fi
	check "$name: ping sweep A->B, sizes 0..1472" sweep $NS_A $ADDR_B 0 1472
	check "$name: ping sweep B->A, sizes 1473..3000 (IP fragments)" sweep $NS_B $ADDR_A 1473 3000
	check "$name: bulk TCP A->B, 8 MiB, SHA-256 matches" bulk $NS_A $NS_B $ADDR_B 8
	"$link" down
	check "$name: down leaves nothing behind" nothing_left
done

echo "# $facts"
if [ $failed -eq 0 ]; then
	echo "netback-test: PASS ($passed checks, $backend): $facts"
	exit 0
fi
echo "netback-test: FAIL ($failed of $((passed + failed)) checks failed, $backend)"
exit 1
