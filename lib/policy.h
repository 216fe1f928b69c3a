/* SPDX-License-Identifier: MIT */
/*
 * Wakeup policies (private): how long a sleeper polls before it blocks, and
 * whether a waker notifies a peer that polls.  Everything a policy decides
 * is here; the mode state machine (mode.c) only asks and reports.
 *
 * ADAPTIVE learns, per sleeper and online, what blocking costs on its
 * backend and how long its waits last, and polls only while polling is the
 * cheaper bet (doc/adaptive.md).  The sleeper reports four things:
 *   - each wait's gap, from running dry to finding work (or giving up);
 *   - each wake that ended a block: what the waker's call cost, and how
 *     late the sleeper ran after it (the waker's stamps in the mode word);
 *   - on a sample of blocks, the CPU it spent blocking and resuming;
 *   - whether a poll was preempted (its CPU is oversubscribed).
 */
#ifndef APQ_LIB_POLICY_H
#define APQ_LIB_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include <apq/common.h>

/* What one sleeper's policy knows; embedded in the sleeper, no globals. */
struct apq_policy_state {
	bool adaptive;
	bool spinning;		/* ADAPTIVE: polls now (with hysteresis) */
	uint64_t fixed_ns;	/* otherwise: the budget; UINT64_MAX never
				 * sleeps */
	/* ADAPTIVE's estimates, in ns; rates in 1/1024. */
	/* Written by the sleeper's thread only, read atomically by stats. */
	int64_t wake_call_ns;	/* the waker's notify call */
	int64_t block_cpu_ns;	/* this side's own CPU to block and resume */
	int64_t wake_late_ns;	/* from the notify to this side running */
	bool woken;		/* measured at least once */
	uint32_t blocks;	/* counts blocks, to sample some */
	int64_t hit_gap_ns;	/* gaps shorter than a block's cost */
	int32_t hit_rate;	/* share of such gaps */
	int32_t crowd_rate;	/* share of waits that saw the CPU crowded */
	int64_t quiet_until;	/* crowded: no polling before then */
};

/* -EINVAL for a configuration no policy accepts, else 0 (NULL: defaults). */
int apq_policy_check(const struct apq_config *cfg);
void apq_policy_init(struct apq_policy_state *p, const struct apq_config *cfg);
/* Whether the waker notifies whatever mode the peer announced. */
bool apq_policy_always_notify(const struct apq_config *cfg);

/* How long to poll before blocking, from now; UINT64_MAX: never block. */
uint64_t apq_policy_budget(struct apq_policy_state *p, int64_t now);

/*
 * Whether the budget, whatever the clock says, is at least APQ_POLICY_QUICK_NS
 * of polling: then a wait may first poll a few times without reading the
 * clock, which costs more than a poll (and under load most gaps end within
 * those few polls).  A gap found so is reported as 0 ns, and not crowded.
 */
#define APQ_POLICY_QUICK_NS	1000
bool apq_policy_polls_quick(const struct apq_policy_state *p);

/*
 * A wait ended.  gap_ns: from running dry to finding work, or how long it
 * went without (found false: a timeout, which is at least that long).
 * crowded: a poll lost its CPU, or the wake came late (see below).
 */
void apq_policy_waited(struct apq_policy_state *p, int64_t gap_ns, bool found,
		       bool crowded, int64_t now);

/*
 * A block ended by a wake, with what the waker wrote beside its wake
 * sequence (read once; the peer may lie, so both are clamped): the cost of
 * its notify call and when it made it.  @return whether the wake came so
 * late that the CPU must be crowded.
 */
bool apq_policy_woken(struct apq_policy_state *p, uint32_t wake_call_ns,
		      uint64_t woken_at_ns, int64_t now);

/* Whether to measure this block's CPU (a sample: reading a thread's CPU
 * clock is a syscall). */
bool apq_policy_sample_block(struct apq_policy_state *p);
/* The thread's CPU time, for the sample. */
int64_t apq_policy_thread_cpu_ns(void);
/* A sampled block cost this side cpu_ns, from announcing to resuming. */
void apq_policy_blocked(struct apq_policy_state *p, int64_t cpu_ns);

/* For apq_stats, from any thread. */
void apq_policy_add_stats(const struct apq_policy_state *p,
			  struct apq_stats *out);

/* A poll that went this long between two looks at the clock lost its CPU. */
#define APQ_POLICY_PREEMPTED_NS	(50 * 1000)

/* For wakers: the cost of a notify call, smoothed, as published. */
uint32_t apq_policy_wake_call_ewma(uint32_t published, int64_t call_ns);

#endif /* APQ_LIB_POLICY_H */
