/* SPDX-License-Identifier: MIT */
/*
 * apq/mode.h - the mode state machine on its own, for a ring you already have.
 *
 * Overview
 *   A mode word lives in memory both sides map.  The side that may run out of
 *   work (the sleeper: a consumer waiting for data, a producer waiting for
 *   space) publishes in it whether it is POLLING or SLEEPING; the other side
 *   (the waker) sends a wakeup only when it finds SLEEPING.  apq's own ring
 *   uses two of them, one per direction; a Xen netif ring or a virtio ring can
 *   use them the same way, because all the sleeper needs from its caller is a
 *   "is there work?" function.
 *
 * The handshake
 *   sleeper: snapshot the wake sequence; store SLEEPING(episode); full barrier
 *            (pairs with the waker's); call has_work() once more; block only if
 *            it still says no and the sequence has not moved.
 *   waker:   publish work; apq_waker_notify(): full barrier (pairs with the
 *            sleeper's); if the word says SLEEPING(e) and e was not woken yet,
 *            bump the sequence and notify.
 *   Whichever side's store the other misses, the other's barrier guarantees it
 *   sees the first: either the sleeper finds the work or the waker finds
 *   SLEEPING.  Each announcement carries a fresh episode, so a burst that lands
 *   while the sleeper is being scheduled costs one wakeup, not one per packet.
 *
 * Hostile memory
 *   The word is read once per decision and validated; a corrupt word makes the
 *   call return -EPROTO.  A peer that writes the word can cost this side
 *   spurious or missed wakeups of its own making, never memory safety: every
 *   wait is bounded by a backstop re-check.
 */
#ifndef APQ_MODE_H
#define APQ_MODE_H

#include <stdint.h>

#include <apq/common.h>
#include <apq/notifier.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One direction's rendezvous, in shared memory: 64 bytes, 64-byte aligned. */
struct apq_mode_word {
	uint64_t opaque[8];
} __attribute__((aligned(64)));

/* Answers "is there work?": > 0 yes, 0 no, < 0 an error to hand back. */
typedef int (*apq_has_work_fn)(void *arg);

struct apq_sleeper;
struct apq_waker;

/*
 * Initialise a word: POLLING, episode 0, open.  Call once, before either side
 * creates its sleeper or waker.
 * Concurrency: nobody else may use the word meanwhile.
 */
void apq_mode_word_init(struct apq_mode_word *w);

/*
 * Become the sleeping side of word w.  The episode counter continues from the
 * word, so a sleeper that replaces an earlier one never reuses an episode, and
 * a word closed by an earlier sleeper is reopened.
 *
 * @return 0; -EINVAL (NULL out, w or n, misaligned w, bad cfg); -EPROTO (the
 *   word is corrupt); -ENOMEM.
 * Concurrency: one sleeper per word at a time.
 */
int apq_sleeper_create(struct apq_sleeper **out, struct apq_mode_word *w,
		       enum apq_channel ch, struct apq_notifier *n,
		       const struct apq_config *cfg);

/*
 * Wait until has_work(arg) says yes: poll as the policy says, then announce
 * SLEEPING and block.  has_work is called any number of times, also after the
 * SLEEPING announcement; it must read the shared state afresh each time.
 *
 * @return has_work's positive or negative answer; -EAGAIN if timeout_ns is 0
 *   and there is no work; -ETIMEDOUT; -EINVAL (s or has_work NULL); another
 *   negative errno from the notifier.
 * Concurrency: the sleeper's own thread.
 * Ordering: a full barrier separates the SLEEPING store from the has_work()
 *   call after it (it pairs with the barrier in apq_waker_notify()).
 */
int apq_sleeper_wait(struct apq_sleeper *s, apq_has_work_fn has_work, void *arg,
		     int64_t timeout_ns);

/*
 * For an event loop that blocks in its own poll(), on the notifier's file
 * descriptor: announce SLEEPING and look for work once more, without
 * blocking.  If there is none, the waker's next apq_waker_notify() wakes the
 * descriptor.  The announcement lasts until the next apq_sleeper_wait() or
 * apq_sleeper_arm(); work found meanwhile costs at most one spare wakeup.
 *
 * @return has_work's positive or negative answer (do not block: there is
 *   work, or an error); 0: armed, block; -EINVAL (s or has_work NULL);
 *   the notifier's error when it cannot wake the loop (not armed then).
 * Concurrency: the sleeper's own thread.
 * Ordering: as apq_sleeper_wait().
 */
int apq_sleeper_arm(struct apq_sleeper *s, apq_has_work_fn has_work, void *arg);

/*
 * Mark the word closed (the waker's apq_waker_peer() and apq_waker_notify()
 * then return -EPIPE) and free the sleeper.  NULL is a no-op.
 * Ordering: release: a waker that sees the word closed also sees everything
 *   this side stored before.
 */
void apq_sleeper_close(struct apq_sleeper *s);

/*
 * Become the waking side of word w.  Only APQ_POLICY_ALWAYS_NOTIFY changes a
 * waker's behaviour: it then notifies on every call.
 * @return 0; -EINVAL; -ENOMEM.
 */
int apq_waker_create(struct apq_waker **out, struct apq_mode_word *w,
		     enum apq_channel ch, struct apq_notifier *n,
		     const struct apq_config *cfg);

/*
 * Call after publishing work, once per publishing call (never defer it to a
 * later call: the last burst could then wait forever).
 *
 * @return 1 if a wakeup was sent, 0 if it was skipped (sleeper polling, or its
 *   episode already woken); -EPIPE (sleeper closed); -EPROTO (word corrupt);
 *   another negative errno from the notifier.
 * Concurrency: the waker's own thread.
 * Ordering: starts with a full barrier (pairs with apq_sleeper_wait()'s):
 *   everything stored before the call is visible to the sleeper's re-check, or
 *   the call sees SLEEPING and wakes it.
 */
int apq_waker_notify(struct apq_waker *wk);

/*
 * The sleeper's state as last published, without a barrier and without
 * waking anyone: 0 open; -EPIPE closed; -EPROTO corrupt.
 * Ordering: acquire: after -EPIPE, everything the sleeper stored before
 *   closing is visible.
 */
int apq_waker_peer(const struct apq_waker *wk);

/* Free a waker.  NULL is a no-op. */
void apq_waker_free(struct apq_waker *wk);

/*
 * Copy the counters (sleeps, spurious_wakeups, rescues for a sleeper;
 * wakeups_sent, wakeups_skipped for a waker; the others are 0).
 * @return 0; -EINVAL if an argument is NULL.
 * Concurrency: any thread.
 */
int apq_sleeper_stats(const struct apq_sleeper *s, struct apq_stats *out);
int apq_waker_stats(const struct apq_waker *wk, struct apq_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* APQ_MODE_H */
