/* SPDX-License-Identifier: MIT */
/*
 * The mode state machine's internals (private): the layout of a mode word and
 * the sleeper and waker that the ring embeds in its endpoints.
 */
#ifndef APQ_LIB_MODE_H
#define APQ_LIB_MODE_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <apq/common.h>
#include <apq/mode.h>

#include "asym.h"
#include "atomic.h"
#include "flood.h"
#include "policy.h"
#include "util.h"

/*
 * struct apq_mode_word, as seen from inside.  `mode` is written by the
 * sleeper only; `seq` is bumped by the waker only.  Both sit on one line: the
 * waker reads `mode` once per publishing call and writes `seq` only when it
 * wakes, the sleeper touches the line only around a sleep.
 *
 * mode: bits 63..56 MODE_MAGIC, 55..2 the episode, 1 CLOSED, 0 SLEEPING.
 * The magic turns a scribbled word into -EPROTO; 54 bits of episode do not
 * wrap in decades even at millions of announcements a second.
 */
struct apq_mode_layout {
	uint64_t mode;
	uint32_t seq;
	/* The process that owns the word (its sleeper's), written when it
	 * attaches, so that the peer can tell when it dies (liveness.h).
	 * 0 where unknown. */
	uint32_t owner_pid;
	uint64_t owner_start;	/* its start time, clock ticks after boot */
	uint64_t owner_pidns;	/* the inode of its pid namespace */
	/* Advice from the waker to the sleeper's policy (policy.h), stored
	 * with each wake: its notify call's smoothed cost, and when it woke
	 * (CLOCK_MONOTONIC).  Read once and clamped: a lie moves a spin
	 * budget within its bounds, nothing else. */
	uint32_t wake_call_ns;
	/* Nonzero while the waker skips wakes between flood probes (see
	 * IDLE_STREAK_MAX in mode.c): the sleeper then re-checks every
	 * probe pause instead of every backstop.  Advice too: a lie costs
	 * the sleeper a cheap re-check a millisecond. */
	uint32_t waker_probing;
	uint64_t woken_at_ns;
	uint32_t unused[4];
};

/*
 * has_work's answer, inside the library, when the peer's process is gone
 * without having detached.  It is not a closed word: no wake announced it,
 * so a backstop that finds it is no rescue.  The ring's calls report it as
 * -EPIPE.
 */
#define APQ_PEER_DIED	(-EOWNERDEAD)

#define MODE_SLEEPING		UINT64_C(1)
#define MODE_CLOSED		UINT64_C(2)
#define MODE_EPISODE_SHIFT	2
#define MODE_EPISODE_MASK	((UINT64_C(1) << 54) - 1)
#define MODE_MAGIC_SHIFT	56
#define MODE_MAGIC		UINT64_C(0xa5)
/* In the magic byte (0xe5): the sleeper follows every SLEEPING announcement
 * with a barrier for every thread of its process (asym.h). */
#define MODE_ASYM		(UINT64_C(0x40) << MODE_MAGIC_SHIFT)

static inline uint64_t mode_make(uint64_t episode, uint64_t flags)
{
	return MODE_MAGIC << MODE_MAGIC_SHIFT |
	       (episode & MODE_EPISODE_MASK) << MODE_EPISODE_SHIFT | flags;
}

static inline bool mode_valid(uint64_t m)
{
	return (m & ~MODE_ASYM) >> MODE_MAGIC_SHIFT == MODE_MAGIC;
}

static inline uint64_t mode_episode(uint64_t m)
{
	return m >> MODE_EPISODE_SHIFT & MODE_EPISODE_MASK;
}

static inline struct apq_mode_layout *mode_layout(struct apq_mode_word *w)
{
	return (struct apq_mode_layout *)w;
}

/*
 * The sleeper's state as last published: 0 open, -EPIPE closed, -EPROTO
 * corrupt.  A single fetch.  Acquire: pairs with the release in
 * apq_sleeper_mark_closed(), so after -EPIPE the sleeper's earlier stores
 * (the producer's last packets) are visible.
 */
static inline int mode_peer_state(const struct apq_mode_layout *w)
{
	uint64_t m = apq_load_acquire(&w->mode);

	if (!mode_valid(m))
		return -EPROTO;
	return m & MODE_CLOSED ? -EPIPE : 0;
}

struct apq_sleeper {
	struct apq_mode_layout *word;
	struct apq_notifier *notifier;
	enum apq_channel channel;
	struct apq_policy_state policy;	/* how long to poll */
	uint64_t episode;		/* the last one announced */
	uint64_t asym;			/* MODE_ASYM in every store, or 0 */
	/* Whether asym pays (sleeper_judge_asym()); asym_work NULL: never
	 * on.  Sleeper's thread only. */
	const uint64_t *asym_work;	/* packets moved, the endpoint's */
	uint64_t asym_work_seen;	/* at the last announcement */
	int64_t asym_work_per_sleep;	/* smoothed, once a sleep had work */
	bool asym_judged;		/* per_sleep is measured, not prior */
	int64_t asym_barrier_ns;	/* what B1' costs, smoothed */
	struct apq_flood spurious;	/* wakeups that found nothing */
	uint64_t sleeps;
	uint64_t spurious_wakeups;
	uint64_t rescues;
};

struct apq_waker {
	struct apq_mode_layout *word;
	struct apq_notifier *notifier;
	enum apq_channel channel;
	bool always_notify;
	/* The word of a peer that polls, open, as the fast path expects it:
	 * with MODE_ASYM in both when this waker skips B2 (asym.h). */
	uint64_t polling_mask, polling_value;
	uint64_t last_woken;		/* episode; starts at one none takes */
	uint32_t idle_streak;		/* wakes in a row that found nobody */
	bool probing;			/* as last stored to waker_probing */
	int64_t next_probe_ns;		/* then: the next wake sent anyway */
	uint32_t call_ns;		/* the notify call's cost, smoothed */
	uint64_t wakeups_sent;
	uint64_t wakeups_skipped;
};

int apq_sleeper_init(struct apq_sleeper *s, struct apq_mode_word *w,
		     enum apq_channel ch, struct apq_notifier *n,
		     const struct apq_config *cfg);
/* deadline: absolute, APQ_DEADLINE_NONE or APQ_DEADLINE_NEVER. */
int apq_sleeper_wait_until(struct apq_sleeper *s, apq_has_work_fn has_work,
			   void *arg, int64_t deadline);
void apq_sleeper_mark_closed(struct apq_sleeper *s);
/* Follow announcements with the barrier of asym.h, and say so in the word,
 * whenever the work between sleeps (*work, a counter of this side's
 * packets) makes the peer's B2s dearer than our barrier.  @return 0, or
 * -ENOTSUP where this process cannot issue it. */
int apq_sleeper_use_asym(struct apq_sleeper *s, const uint64_t *work);
/* apq_sleeper_arm() without the argument checks. */
int apq_sleeper_arm_internal(struct apq_sleeper *s, apq_has_work_fn has_work,
			     void *arg);

void apq_waker_init(struct apq_waker *wk, struct apq_mode_word *w,
		    enum apq_channel ch, struct apq_notifier *n,
		    const struct apq_config *cfg);
/* The slow path of apq_waker_check(): bump the sequence and notify. */
int apq_waker_wake(struct apq_waker *wk, uint64_t episode);
/* Skip B2 while the peer's word says ASYM: only where its sleepers'
 * barrier surely reaches us (asym.h). */
void apq_waker_skip_b2(struct apq_waker *wk);
/* apq_waker_check() under ALWAYS_NOTIFY, out of the hot path. */
int apq_waker_check_always(struct apq_waker *wk);
/* apq_waker_check() past its fast path: m is the peer's word as read. */
int apq_waker_check_slow(struct apq_waker *wk, uint64_t m);

/*
 * The waker's check, run once per publishing call; inline, since it runs
 * for every send and recv.  @return 1 woken, 0 skipped, -EPIPE, -EPROTO, or
 * the notifier's error.
 */
static inline int apq_waker_check(struct apq_waker *wk)
{
	uint64_t m;

	if (apq_unlikely(wk->always_notify))
		return apq_waker_check_always(wk);
	/* B2: pairs with B1 in sleeper_announce(): either the sleeper's
	 * re-check sees what we published before this call, or we see its
	 * SLEEPING announcement below.  Skipped where a sleeper's barrier
	 * (B1', asym.h) reaches our thread and puts it there; the word must
	 * then say ASYM, or apq_waker_check_slow() takes B2 after all. */
	if (!(wk->polling_value & MODE_ASYM))
		apq_full_barrier();
	/* Single fetch of the peer's word; validated before use.  The
	 * common case, a valid open word that is not SLEEPING, is one
	 * test. */
	m = apq_load_once(&wk->word->mode);
	if (apq_likely((m & wk->polling_mask) == wk->polling_value)) {
		apq_count(&wk->wakeups_skipped, 1);
		return 0;
	}
	return apq_waker_check_slow(wk, m);
}

void apq_sleeper_add_stats(const struct apq_sleeper *s, struct apq_stats *out);
void apq_waker_add_stats(const struct apq_waker *wk, struct apq_stats *out);

#endif /* APQ_LIB_MODE_H */
