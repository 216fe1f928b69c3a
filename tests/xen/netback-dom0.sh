#!/bin/sh
# SPDX-License-Identifier: MIT
#
# netback-dom0.sh - run by boot-xen.sh in dom0: the netback example over
# the Xen backend (grant-shared rings, event channels), both processes in
# dom0, driven by netback-test.sh.  boot-xen.sh copies netback-link.sh,
# netback-test.sh and the static apq-netback and netcheck beside it.
here=$(dirname "$0")
export APQ_NETBACK_BIN="$here/apq-netback"
sh "$here/netback-test.sh" "$here/netback-link.sh" "$here/netcheck" \
	--backend xen 2>&1 | tee /tmp/netback-test.log
summary=$(tail -n 1 /tmp/netback-test.log)
case $summary in
"netback-test: PASS"*) echo "APQ-XEN-RESULT: PASS ${summary#netback-test: PASS }" ;;
*) echo "APQ-XEN-RESULT: FAIL netback: ${summary#netback-test: }" ;;
esac
