#!/bin/sh
# SPDX-License-Identifier: MIT
#
# netback-link.sh - an Ethernet link between two network namespaces, carried
# by apq: namespace apq-a (169.254.77.1) <-> TAP <-> apq-netback back <=apq=>
# apq-netback front <-> TAP <-> namespace apq-b (169.254.77.2).
#
#   netback-link.sh up [--backend futex|xen|socketpair|veth] [--policy NAME]
#                      [--mtu N] [--ring BYTES] [--no-offload]
#       Create both namespaces, start both processes, configure the
#       devices, and return once a ping crosses the link.  --backend:
#       futex (default; two processes over a shared memfd), xen (grants and
#       event channels; both processes in this domain, which must be dom0),
#       socketpair (the same processes relaying frames over an AF_UNIX
#       socketpair, no apq: the baseline), veth (no processes: a veth pair,
#       the kernel's own path).  --policy: adaptive (default), always,
#       busy, spin-<N>us.  --mtu: default 1500 (9000: jumbo frames).
#   netback-link.sh stats [--raw]
#       Per direction: frames, bytes, wakeups sent and skipped, the
#       receiver's sleeps; and whether the link is up.  --raw: every
#       counter of both processes as key=value lines.
#   netback-link.sh status
#       One line; exit 0 if the link is up, 1 if not.
#   netback-link.sh down
#       Stop both processes and remove everything `up` made (namespaces,
#       devices, state), also after a crash or an interrupted `up`.
#
# Needs root.  Nothing is routed outside the two namespaces: the addresses
# are link-local, and neither namespace has another device.  Runs under
# bash, dash and busybox sh; without `ip netns` (busybox) it makes the
# namespaces with unshare.  Installs iproute2, iputils-ping and iperf3 with
# apt-get when they are missing and apt-get is there.
#
# Environment: APQ_NETBACK_BIN (the apq-netback program; default: the
# build tree's, then $PATH), APQ_NETBACK_STATE (default /run/apq-netback).
set -eu

me=${0##*/}
here=$(cd "$(dirname -- "$0")" && pwd)
state=${APQ_NETBACK_STATE:-/run/apq-netback}
ns_dir=/run/netns
NS_A=apq-a
NS_B=apq-b
ADDR_A=169.254.77.1
ADDR_B=169.254.77.2
DEV=apq0

die() { echo "$me: $*" >&2; exit 1; }
usage() { sed -n '8,24s/^# \{0,1\}//p' "$0" >&2; exit 2; }

need_root() {
	[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TAP devices)"
}

# Installs what is missing, if apt-get is there; a missing tool is an error
# only where it is used.
ensure_tools() {
	missing=
	command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
	command -v ping >/dev/null 2>&1 || missing="$missing iputils-ping"
	command -v iperf3 >/dev/null 2>&1 || missing="$missing iperf3"
	[ -n "$missing" ] || return 0
	command -v apt-get >/dev/null 2>&1 || return 0
	echo "$me: installing:$missing" >&2
	# shellcheck disable=SC2086 # the list splits on purpose
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2 ||
		{ DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 &&
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >&2; }
}

have_ip_netns() { ip netns list >/dev/null 2>&1; }

ns_exists() { [ -e "$ns_dir/$1" ]; }

ns_create() {
	if have_ip_netns; then
		ip netns add "$1"
	else
		mkdir -p "$ns_dir"
		: >"$ns_dir/$1"
		unshare --net="$ns_dir/$1" true
	fi
	in_ns "$1" ip link set lo up
}

ns_delete() {
	ns_exists "$1" || return 0
	if have_ip_netns; then
		ip netns delete "$1"
	else
		umount "$ns_dir/$1" 2>/dev/null || true
		rm -f "$ns_dir/$1"
	fi
}

# Runs a command in a namespace.
in_ns() {
	ns=$1
	shift
	nsenter -n"$ns_dir/$ns" "$@"
}

find_bin() {
	if [ -n "${APQ_NETBACK_BIN:-}" ]; then
		echo "$APQ_NETBACK_BIN"
	elif [ -x "$here/../../build/examples/netback/apq-netback" ]; then
		echo "$here/../../build/examples/netback/apq-netback"
	elif command -v apq-netback >/dev/null 2>&1; then
		command -v apq-netback
	else
		die "apq-netback not found: build it (scripts/test.sh or ninja -C build) or set APQ_NETBACK_BIN"
	fi
}

# kv FILE KEY: the value of KEY= in FILE, or nothing.
kv() { sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1; }

# Whether side $1's process runs (and is apq-netback, not a reused pid).
alive() {
	[ -f "$state/$1.pid" ] || return 1
	pid=$(cat "$state/$1.pid")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		grep -q apq-netback "/proc/$pid/cmdline" 2>/dev/null
}

# Asks side $1 for fresh counters (SIGUSR1) and waits until its file shows
# them; a process that is gone left its last ones.
refresh() {
	alive "$1" || return 0
	before=$(kv "$state/$1.stats" seq)
	kill -USR1 "$(cat "$state/$1.pid")" 2>/dev/null || return 0
	i=0
	while [ $i -lt 100 ]; do
		[ "$(kv "$state/$1.stats" seq)" != "$before" ] && return 0
		sleep 0.02
		i=$((i + 1))
	done
}

link_up() {
	backend=$(kv "$state/config" backend)
	[ -n "$backend" ] || return 1
	if [ "$backend" = veth ]; then
		ns_exists $NS_A && in_ns $NS_A ip link show $DEV >/dev/null 2>&1
	else
		alive back && alive front
	fi
}

# One line: up, with its configuration, or down and why.
describe() {
	if [ ! -f "$state/config" ]; then
		echo "link: down (not set up)"
		return
	fi
	cfg="$(kv "$state/config" backend), $(kv "$state/config" policy), mtu $(kv "$state/config" mtu)"
	if link_up; then
		echo "link: up ($cfg)"
		return
	fi
	why=
	for side in back front; do
		alive $side && continue
		r=$(kv "$state/$side.stats" reason)
		why="$why${why:+; }$side exited: ${r:-no reason recorded}"
	done
	echo "link: down ($cfg; $why)"
}

cmd_down() {
	need_root
	for side in back front; do
		alive $side && kill -TERM "$(cat "$state/$side.pid")" 2>/dev/null || true
	done
	for side in back front; do
		i=0
		while alive $side && [ $i -lt 50 ]; do
			sleep 0.05
			i=$((i + 1))
		done
		alive $side && kill -KILL "$(cat "$state/$side.pid")" 2>/dev/null || true
	done
	# The namespaces take their devices with them.
	ns_delete $NS_A
	ns_delete $NS_B
	rm -rf "$state"
}

cmd_up() {
	backend=futex
	policy=adaptive
	mtu=1500
	ring=
	offload=
	while [ $# -gt 0 ]; do
		case $1 in
		--backend) [ $# -ge 2 ] || usage; backend=$2; shift 2 ;;
		--policy) [ $# -ge 2 ] || usage; policy=$2; shift 2 ;;
		--mtu) [ $# -ge 2 ] || usage; mtu=$2; shift 2 ;;
		--ring) [ $# -ge 2 ] || usage; ring=$2; shift 2 ;;
		--no-offload) offload=--no-offload; shift ;;
		*) usage ;;
		esac
	done
	case $backend in futex|xen|socketpair|veth) ;; *) die "unknown backend '$backend'" ;; esac
	case $mtu in ''|*[!0-9]*) die "--mtu: a number" ;; esac
	[ "$backend" != socketpair ] && [ "$backend" != veth ] || policy=-
	need_root
	ensure_tools
	if [ -d "$state" ] || ns_exists $NS_A || ns_exists $NS_B; then
		die "a link is already set up ($(describe)); run '$me down' first"
	fi
	[ "$backend" = veth ] || bin=$(find_bin)
	# From here on, whatever goes wrong (or an interrupt) undoes it all.
	trap 'cmd_down; exit 130' INT TERM
	trap 'status=$?; [ $status -eq 0 ] || cmd_down; exit $status' EXIT
	mkdir -p "$state"
	printf 'backend=%s\npolicy=%s\nmtu=%s\n' "$backend" "$policy" "$mtu" >"$state/config"
	ns_create $NS_A
	ns_create $NS_B
	if [ "$backend" = veth ]; then
		ip link add $DEV netns $NS_A type veth peer name $DEV netns $NS_B
	else
		set -- --ctl "$state/ctl.sock" --tap $DEV --backend "$backend"
		[ "$policy" = - ] || set -- "$@" --policy "$policy"
		# Not through in_ns: a function run in the background is a
		# subshell, whose pid $! would be.  nsenter execs the program.
		nsenter -n"$ns_dir/$NS_A" "$bin" back "$@" \
			--stats "$state/back.stats" >"$state/back.log" 2>&1 &
		echo $! >"$state/back.pid"
		# shellcheck disable=SC2086 # empty or one word
		nsenter -n"$ns_dir/$NS_B" "$bin" front "$@" ${ring:+--ring "$ring"} \
			$offload --stats "$state/front.stats" >"$state/front.log" 2>&1 &
		echo $! >"$state/front.pid"
		i=0
		until [ "$(kv "$state/back.stats" state)" = running ] &&
		      [ "$(kv "$state/front.stats" state)" = running ]; do
			for side in back front; do
				alive $side && continue
				cat "$state/$side.log" >&2
				die "apq-netback $side exited while connecting"
			done
			[ $i -lt 300 ] || die "the two processes did not connect within 15 s"
			sleep 0.05
			i=$((i + 1))
		done
	fi
	in_ns $NS_A ip link set $DEV mtu "$mtu" up
	in_ns $NS_A ip addr add $ADDR_A/24 dev $DEV
	in_ns $NS_B ip link set $DEV mtu "$mtu" up
	in_ns $NS_B ip addr add $ADDR_B/24 dev $DEV
	i=0
	until in_ns $NS_A ping -c 1 -W 1 $ADDR_B >/dev/null 2>&1; do
		[ $i -lt 10 ] || die "no ping crossed the link within 10 s"
		i=$((i + 1))
	done
	trap - INT TERM EXIT
	echo "$me: $NS_A $ADDR_A <-> $NS_B $ADDR_B; $(describe)"
}

# The apq counters of one direction: from the sending side's producer and
# the receiving side's consumer.  socketpair has no wakeup handshake: its
# receiver's sleeps are what its sender's send() had to wake.
direction() {
	name=$1 tx=$state/$2.stats rx=$state/$3.stats
	if [ "$(kv "$tx" backend)" = socketpair ]; then
		sent=$(kv "$rx" rx_recv_sleeps) skipped=- sleeps=$sent
	else
		sent=$(kv "$tx" tx_wakeups_sent) skipped=$(kv "$tx" tx_wakeups_skipped)
		sleeps=$(kv "$rx" rx_sleeps)
	fi
	printf '%-6s %12s %12s %14s %12s %14s %12s\n' "$name" \
		"$(kv "$tx" tx_frames)" "$(kv "$rx" rx_frames)" \
		"$(kv "$tx" tx_bytes)" "$sent" "$skipped" "$sleeps"
}

cmd_stats() {
	raw=0
	case ${1:-} in --raw) raw=1 ;; '') ;; *) usage ;; esac
	need_root
	[ -f "$state/config" ] || die "no link is set up"
	refresh back
	refresh front
	if [ $raw = 1 ]; then
		for side in back front; do
			sed "s/^/$side./" "$state/$side.stats" 2>/dev/null || true
		done
		echo "link=$(link_up && echo up || echo down)"
		return
	fi
	describe
	[ "$(kv "$state/config" backend)" != veth ] || return 0
	printf '%-6s %12s %12s %14s %12s %14s %12s\n' direction sent delivered \
		bytes wakeups-sent wakeups-skipped sleeps
	direction 'A->B' back front
	direction 'B->A' front back
}

cmd_status() {
	describe
	link_up
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
up) cmd_up "$@" ;;
down) [ $# -eq 0 ] || usage; cmd_down ;;
stats) cmd_stats "$@" ;;
status) [ $# -eq 0 ] || usage; need_root; cmd_status ;;
*) usage ;;
esac
