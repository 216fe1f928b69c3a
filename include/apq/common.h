/* SPDX-License-Identifier: MIT */
/*
 * apq/common.h - configuration, policies and statistics shared by every layer.
 *
 * Overview
 *   A side that finds nothing to do (a consumer with an empty ring, a producer
 *   with a full one) first polls, then announces SLEEPING and blocks until its
 *   peer wakes it.  The policy decides how long it polls.  Statistics are kept
 *   in process-local memory, so a peer that shares the ring cannot falsify them.
 */
#ifndef APQ_COMMON_H
#define APQ_COMMON_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How long a side polls before it announces SLEEPING and blocks. */
enum apq_policy {
	/* The default: learn online what a sleep costs on this backend and
	 * how long waits last, and poll for that cost only while polling
	 * saves more than it wastes; not at all on a crowded CPU
	 * (doc/adaptive.md). */
	APQ_POLICY_ADAPTIVE = 0,
	/* Poll for spin_ns nanoseconds (0: not at all), then sleep. */
	APQ_POLICY_SPIN = 1,
	/* The prior art, kept for comparison: never poll, and wake the peer
	 * after every publishing call whether it sleeps or not. */
	APQ_POLICY_ALWAYS_NOTIFY = 2,
	/* Never sleep: poll until there is work or the timeout expires. */
	APQ_POLICY_BUSY_POLL = 3,
};

/*
 * Per-endpoint configuration.  A zeroed structure (or a NULL pointer where one
 * is accepted) means the defaults.  Fields added later take the place of
 * `reserved`, whose words must be zero (-EINVAL otherwise), so that code
 * compiled against this header keeps working.
 */
struct apq_config {
	enum apq_policy policy;
	uint32_t flags;		/* none defined yet: must be 0 */
	uint64_t spin_ns;	/* APQ_POLICY_SPIN: how long to poll */
	uint64_t reserved[6];
};

/*
 * Counters of one endpoint (or of one sleeper or waker of <apq/mode.h>).
 * Every counter is written by the owning thread only and read atomically, one
 * by one: a snapshot taken while the endpoint runs is not consistent across
 * fields.
 */
struct apq_stats {
	uint64_t packets;		/* packets this side sent or received */
	uint64_t bytes;			/* their payload bytes */
	/* Each publishing call (and detach, and the library's own publish of
	 * a pad at the ring's end while it waits for room) runs one wakeup
	 * check, which either sends or skips. */
	uint64_t wakeups_sent;		/* notifications this side sent */
	uint64_t wakeups_skipped;	/* checks that found the peer polling,
					 * or its sleep already woken */
	uint64_t sleeps;		/* times this side blocked (a long sleep
					 * that backstop re-checks continue
					 * counts once) */
	uint64_t spurious_wakeups;	/* woken, and found nothing to do */
	uint64_t rescues;		/* woke by a backstop re-check and found
					 * work (or the peer gone) for which no
					 * wake had been sent: a lost wakeup
					 * caught.  Stays 0. */
	/* What this side's ADAPTIVE sleeper has learned (0 under the other
	 * policies, and before its first block), smoothed, in ns: the CPU a
	 * block costs, which is the peer's notify call and this side's own
	 * CPU to block and resume (polling for their sum is the rule,
	 * doc/adaptive.md), and the time from the notify to this side
	 * running.  Since 0.2. */
	uint64_t wake_call_ns;
	uint64_t block_cpu_ns;
	uint64_t wake_late_ns;
	uint64_t polling;		/* 1: ADAPTIVE polls before it blocks;
					 * 0: it blocks at once (or another
					 * policy) */
	uint64_t reserved[5];		/* zero */
};

#ifdef __cplusplus
}
#endif

#endif /* APQ_COMMON_H */
