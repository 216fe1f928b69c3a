#!/bin/sh
# SPDX-License-Identifier: MIT
#
# mutants.sh SRC_DIR WORK_DIR - the lost-wakeup tests have teeth.
#
# Builds the library and the stress program again, each time with one part
# of the wakeup handshake taken out, and runs two tests of
# tests/test-stress.c against it:
#   handshake  the race round by round: both sides meet before each round,
#              the consumer arms while the producer sends, and a round in
#              which the consumer armed and no wake was sent is a loss;
#   pingpong   the torture: a lost wakeup stalls an exchange until the
#              backstop, which counts a rescue, which it asserts is 0.
# Every mutant must make one of them fail; the pingpong runs only if the
# handshake did not.  The handshake is the one that does not need luck:
# the pingpong meets a missing barrier only when the two threads' accesses
# happen to overlap, and on a loaded machine it once let no-B1 survive a
# whole run.  The unchanged sources, built and run the same way, must pass
# both.
#
#   no-B1         the sleeper's full barrier between its SLEEPING store and
#                 its re-check (sleeper_announce() in lib/mode.c)
#   no-B2         the waker's full barrier between its publish and its read
#                 of the mode word (apq_waker_check() in lib/mode.h, and
#                 apq_waker_check_slow() in lib/mode.c, where a waker that
#                 skipped it takes it after all)
#   no-recheck    the sleeper's re-check after the announcement
#   same-episode  every announcement reuses the first episode, which the
#                 waker then takes for one it woke already
#   no-membarrier on private memory, the sleeper's barrier for the waker's
#                 thread (B1' in sleeper_announce()), which stands in for
#                 the B2 that waker skips (the pp-private cases); ASYM is
#                 forced on, since the sleeper turns it on only where
#                 sleeps are rare
#
# asym-control, ASYM forced on with B1' in place, must pass like control.
#
# Exit 0 if the control passed and every mutant was caught; 1 otherwise.
# Environment: APQ_MUTANT_SECONDS (default 24): APQ_STRESS_SECONDS for each
# run, of which the ping-pong cases get about 40 % and the handshake 5 %;
# CC (default cc).
set -eu

[ $# -eq 2 ] || { echo "usage: $0 SRC_DIR WORK_DIR" >&2; exit 2; }
src=$(cd "$1" && pwd)
work=$2
seconds=${APQ_MUTANT_SECONDS:-24}
cc=${CC:-cc}
mkdir -p "$work"
work=$(cd "$work" && pwd)

for tool in "$cc" pkg-config awk timeout; do
	command -v "$tool" >/dev/null 2>&1 || { echo "mutants: skipped: no $tool"; exit 77; }
done
pkg-config --exists check liburcu || { echo "mutants: skipped: check or liburcu missing"; exit 77; }

# mutate FILE MARKER PATTERN REPLACEMENT: in FILE, the first line that
# matches PATTERN after the first line holding MARKER becomes REPLACEMENT.
# Fails unless exactly that one line changed.
mutate() {
	awk -v marker="$2" -v pat="$3" -v repl="$4" '
		!seen && index($0, marker) { seen = 1 }
		seen && !done && $0 ~ pat { print repl; done = 1; next }
		{ print }
		END { if (!done) exit 1 }' "$1" >"$1.new" ||
		{ echo "mutants: $1: no line matching '$3' after '$2'" >&2; return 1; }
	[ "$(diff "$1" "$1.new" | grep -c '^[<>]')" -eq 2 ] ||
		{ echo "mutants: $1: the mutation changed more than one line" >&2; return 1; }
	mv "$1.new" "$1"
}

# force_asym DIR: sleepers on private memory use asymmetric fences always.
force_asym() {
	mutate "$1/lib/mode.c" "static void sleeper_judge_asym" "if \\(!s->asym && worth" "	if (!s->asym) {" &&
	mutate "$1/lib/mode.c" "static void sleeper_judge_asym" "} else if \\(s->asym && worth" "	} else if (0) {"
}

# build NAME: a copy of the sources in WORK_DIR/NAME, compiled.
build() {
	dir=$work/$1
	rm -rf "$dir"
	mkdir -p "$dir/tests"
	cp -r "$src/lib" "$src/include" "$dir/"
	cp "$src/tests/test-stress.c" "$src/tests/testlib.h" "$dir/tests/"
	case $1 in
	no-B1) mutate "$dir/lib/mode.c" "B1: pairs with B2" "apq_full_barrier\\(\\);" "	;" ;;
	no-B2) mutate "$dir/lib/mode.h" "B2: pairs with B1" "apq_full_barrier\\(\\);" "		;" &&
		mutate "$dir/lib/mode.c" "B2: pairs with B1" "apq_full_barrier\\(\\);" "		;" ;;
	no-recheck) mutate "$dir/lib/mode.c" "B1: pairs with B2" "r = has_work\\(arg\\);" "	r = 0;" ;;
	same-episode) mutate "$dir/lib/mode.c" "static int sleeper_announce" "s->episode = \\(s->episode \\+ 1\\)" "	;" ;;
	asym-control) force_asym "$dir" ;;
	no-membarrier) force_asym "$dir" &&
		mutate "$dir/lib/mode.c" "B1': stands in for B2" "r = sleeper_asym_barrier\\(s\\);" "		r = 0;" ;;
	control) ;;
	esac
	# shellcheck disable=SC2046 # the flags split on purpose
	"$src/tests/version-h.sh" "$src" "$dir/gen"
	(cd "$dir" && "$cc" -std=c11 -O2 -D_GNU_SOURCE -pthread -Iinclude -Igen -Ilib \
		$(ls lib/*.c | grep -v '/xen-') tests/test-stress.c \
		$(pkg-config --cflags --libs check liburcu) -o stress) \
		>"$dir/build.log" 2>&1 ||
		{ cat "$dir/build.log" >&2; echo "mutants: $1 does not build" >&2; return 1; }
}

# run NAME TCASE: @return the test's exit status; its output appended to
# NAME/run.log.
run() {
	case $1 in
	asym-control|no-membarrier) forced=1 ;;
	*) forced=0 ;;
	esac
	(cd "$work/$1" && CK_RUN_CASE=$2 APQ_STRESS_SECONDS=$seconds \
		APQ_FORCED_ASYM=$forced \
		CK_DEFAULT_TIMEOUT=600 timeout 900 ./stress >>run.log 2>&1)
}

# run_both NAME: the handshake, then the pingpong if the handshake passed
# or NAME is a control.  @return 0 if both passed.
run_both() {
	: >"$work/$1/run.log"
	if run "$1" handshake; then
		run "$1" pingpong
	else
		status=$?
		case $1 in
		*control) run "$1" pingpong || true ;;
		esac
		return $status
	fi
}

verdict=0
printf '%-14s %-9s %s\n' variant verdict evidence
for m in control asym-control no-B1 no-B2 no-recheck same-episode no-membarrier; do
	build "$m" || { verdict=1; continue; }
	t0=$(date +%s)
	if run_both "$m"; then status=0; else status=$?; fi
	took=$(($(date +%s) - t0))
	evidence=$(grep -m1 -oE '(hs|pp)-[a-z0-9-]+: lost wakeups caught[^"]*|stalled|request [0-9]+: [a-zA-Z ]+' \
		"$work/$m/run.log" | head -n 1)
	if [ "$m" = control ] || [ "$m" = asym-control ]; then
		if [ $status -eq 0 ]; then v=passes; else v=FAILS; verdict=1; fi
		evidence="$(grep -c '^\[\(hs\|pp\)-' "$work/$m/run.log") report lines, ${took}s"
	elif [ $status -ne 0 ]; then
		v=caught
		evidence="${evidence:-exit status $status}, ${took}s"
	else
		v=SURVIVED
		verdict=1
		evidence="both tests passed (${took}s)"
	fi
	printf '%-14s %-9s %s\n' "$m" "$v" "$evidence"
done
if [ $verdict -eq 0 ]; then
	echo "mutants: PASS: the control passes and every mutant is caught"
else
	echo "mutants: FAIL (logs in $work)"
fi
exit $verdict
