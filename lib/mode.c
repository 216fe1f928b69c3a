/* SPDX-License-Identifier: MIT */
/*
 * The mode state machine: when to poll, when to announce SLEEPING and block,
 * and when a waker must send a wakeup.  doc/memory-ordering.md walks through
 * the handshake; the barrier pairs are labelled B1/B2 and A1/R3 here.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "atomic.h"
#include "liveness.h"
#include "mode.h"
#include "notifier.h"
#include "util.h"

_Static_assert(sizeof(struct apq_mode_layout) == sizeof(struct apq_mode_word),
	       "layout");


/*
 * A sleeper that a backstop re-check found with work and no wakeup waits this
 * much longer, still SLEEPING, before it counts a rescue: the waker may be
 * between its publish and its check, and will then wake the announced
 * episode.  Only a lost wakeup pays this delay.
 */
#define RESCUE_GRACE_NS	(10 * 1000 * 1000)

/* How many polls between two looks at the clock. */
#define POLLS_PER_CLOCK_READ	16

/*
 * Floods (flood.h).  A peer may bump our wake sequence, or notify, as often
 * as it likes; each time we wake and find nothing, and in a flood of such
 * wakeups the sleeper pauses (POLLING) before it listens again.  A peer may
 * also announce SLEEPING again and again without ever sleeping; after
 * IDLE_STREAK_MAX wakes in a row that found nobody waiting (a backend that
 * can tell: futex), the waker only bumps the sequence, which a sleeper on
 * its way into the wait still sees, and sends a real wake once per
 * APQ_FLOOD_PAUSE_NS.  No honest peer comes near either.
 */
#define IDLE_STREAK_MAX		64

APQ_EXPORT void apq_mode_word_init(struct apq_mode_word *w)
{
	struct apq_mode_layout *l = mode_layout(w);

	*l = (struct apq_mode_layout){ .mode = mode_make(0, 0) };
}

int apq_sleeper_init(struct apq_sleeper *s, struct apq_mode_word *w,
		     enum apq_channel ch, struct apq_notifier *n,
		     const struct apq_config *cfg)
{
	struct apq_mode_layout *l = mode_layout(w);
	/* Single fetch of our own word, which the peer may have scribbled on. */
	uint64_t m = apq_load_once(&l->mode);

	if (!mode_valid(m))
		return -EPROTO;
	*s = (struct apq_sleeper){
		.word = l,
		.notifier = n,
		.channel = ch,
		/* Continue the word's episodes: a waker that woke an earlier
		 * sleeper's episode must not mistake ours for it. */
		.episode = mode_episode(m),
	};
	apq_policy_init(&s->policy, cfg);
	apq_owner_publish(l);
	/* Reopens a word an earlier sleeper closed. */
	apq_store_once(&l->mode, mode_make(s->episode, 0));
	return 0;
}

void apq_sleeper_mark_closed(struct apq_sleeper *s)
{
	/* R3: release, pairs with the acquire in mode_peer_state(): a waker
	 * that sees CLOSED also sees what this side published before. */
	apq_store_release(&s->word->mode,
			  mode_make(s->episode, MODE_CLOSED | s->asym));
}

/*
 * Poll has_work for the policy's budget, from start (now).  @return its
 * answer if it found work or an error, 0 when the budget is spent,
 * -ETIMEDOUT at the deadline; *crowded if the poll lost its CPU (a long
 * stretch between two looks at the clock), *found_at when it found work.
 */
static int sleeper_poll(struct apq_sleeper *s, apq_has_work_fn has_work,
			void *arg, int64_t start, int64_t deadline,
			bool *crowded, int64_t *found_at)
{
	uint64_t budget = apq_policy_budget(&s->policy, start);
	int64_t spin_end, now = start, before;
	unsigned int i;
	int r;

	if (budget == 0)
		return 0;
	spin_end = budget >= (uint64_t)(APQ_DEADLINE_NEVER - now)
		? APQ_DEADLINE_NEVER : now + (int64_t)budget;
	for (i = 1;; i++) {
		r = has_work(arg);
		if (r) {
			*found_at = apq_now_ns();
			return r;
		}
		apq_cpu_relax();
		if (i % POLLS_PER_CLOCK_READ == 0) {
			before = now;
			now = apq_now_ns();
			if (now - before > APQ_POLICY_PREEMPTED_NS)
				*crowded = true;
			if (now >= deadline)
				return -ETIMEDOUT;
			if (now >= spin_end)
				return 0;
		}
	}
}

/*
 * A backstop re-check found work although the sequence did not move.  The
 * waker may still be on its way: give it RESCUE_GRACE_NS, still SLEEPING
 * (its check then sees the announced episode and wakes it), before calling
 * this a rescue.
 */
static void sleeper_judge_rescue(struct apq_sleeper *s, uint32_t token,
				 int64_t deadline)
{
	int64_t grace = deadline - apq_now_ns();
	int r;

	if (grace > RESCUE_GRACE_NS)
		grace = RESCUE_GRACE_NS;
	if (grace <= 0)
		return;
	r = apq_notifier_wait(s->notifier, s->channel, &s->word->seq, token,
			      grace);
	/* A notifier that cannot wait any more (its peer is gone) leaves
	 * nothing to judge; the work found is still the caller's. */
	if (r < 0 && r != -ETIMEDOUT)
		return;
	if (apq_load_once(&s->word->seq) == token)
		apq_count(&s->rescues, 1);
}

/* A wakeup found nothing to do: in a flood, pause before listening again
 * (POLLING meanwhile: the peer need not wake us, we look afterwards). */
static void sleeper_flood_pause(struct apq_sleeper *s, int64_t deadline)
{
	int64_t now = apq_now_ns();
	int64_t pause = apq_flood_event(&s->spurious, now, APQ_SPURIOUS_BUDGET);

	if (pause == 0)
		return;
	apq_sleep_until(deadline - now > pause ? now + pause : deadline);
	apq_flood_paused(&s->spurious, apq_now_ns());
}

/*
 * Asymmetric fences, when they pay: B1' costs a syscall that interrupts
 * every other CPU running one of our threads (about 1-2 us on bare metal,
 * 55 us in this project's virtual machines), and saves one full barrier
 * per publishing call of the peer, ASYM_FENCE_NS each.  So ASYM is on
 * while the packets moved between two sleeps are worth more than twice
 * B1', and off when they are worth less than B1' once.
 */
#define ASYM_FENCE_NS		20
#define ASYM_BARRIER_PRIOR_NS	(50 * 1000)
#define ASYM_SHIFT		3

/* B1' (asym.h), timed for the judgement above. */
static int sleeper_asym_barrier(struct apq_sleeper *s)
{
	int64_t start = apq_now_ns();
	int r = apq_asym_barrier();

	s->asym_barrier_ns += (apq_now_ns() - start - s->asym_barrier_ns) >>
			      ASYM_SHIFT;
	return r;
}

static void sleeper_judge_asym(struct apq_sleeper *s)
{
	uint64_t work = apq_counter(s->asym_work);
	int64_t moved = (int64_t)(work - s->asym_work_seen), worth;

	s->asym_work_seen = work;
	/* The first sleep with work replaces the prior outright: an idle
	 * queue pays two barriers, not the dozen an average would take.
	 * Sleeps before any work (a consumer that starts first) say
	 * nothing. */
	if (!s->asym_judged) {
		if (moved == 0)
			return;
		s->asym_judged = true;
		s->asym_work_per_sleep = moved;
	} else {
		s->asym_work_per_sleep += (moved - s->asym_work_per_sleep) >>
					  ASYM_SHIFT;
	}
	worth = s->asym_work_per_sleep * ASYM_FENCE_NS;
	if (!s->asym && worth > 2 * s->asym_barrier_ns) {
		/* The SLEEPING store that follows says ASYM. */
		s->asym = MODE_ASYM;
	} else if (s->asym && worth < s->asym_barrier_ns) {
		/* Off: say so, then B1'' (pairs with the waker's skipped
		 * B2): a waker that still acts on an ASYM word it read
		 * before has its publish visible once this returns, to our
		 * next re-check, and every later look at our word sees ASYM
		 * gone and takes B2.  Until that is done, ASYM stays. */
		apq_store_once(&s->word->mode, mode_make(s->episode, 0));
		if (sleeper_asym_barrier(s) == 0)
			s->asym = 0;
		else
			apq_store_once(&s->word->mode,
				       mode_make(s->episode, s->asym));
	}
}

/*
 * Announce SLEEPING with a fresh episode and look for work once more.
 * @return has_work's answer; when it is not 0 the announcement is withdrawn.
 */
static int sleeper_announce(struct apq_sleeper *s, apq_has_work_fn has_work,
			    void *arg)
{
	struct apq_mode_layout *w = s->word;
	int r;

	if (s->asym_work)
		sleeper_judge_asym(s);
	s->episode = (s->episode + 1) & MODE_EPISODE_MASK;
	apq_store_once(&w->mode, mode_make(s->episode, MODE_SLEEPING | s->asym));
	/* B1: pairs with B2 in apq_waker_check(): either has_work() below
	 * sees what the waker published, or the waker sees SLEEPING(episode)
	 * and wakes us. */
	apq_full_barrier();
	/* B1': stands in for B2 in a waker that skipped it (asym.h): the
	 * waker's thread runs a full barrier now, so either its publish is
	 * visible to has_work() below, or its later look at our word comes
	 * after that barrier and sees SLEEPING(episode). */
	if (s->asym) {
		r = sleeper_asym_barrier(s);
		if (r) {
			apq_store_once(&w->mode, mode_make(s->episode, s->asym));
			return r;
		}
	}
	r = has_work(arg);
	if (r)
		apq_store_once(&w->mode, mode_make(s->episode, s->asym));
	return r;
}

int apq_sleeper_arm_internal(struct apq_sleeper *s, apq_has_work_fn has_work,
			     void *arg)
{
	int r = has_work(arg);
	uint32_t token;

	if (r)
		return r;
	/* A1, as in apq_sleeper_wait_until(): a backend that waits on the
	 * word for the loop (futex) needs the snapshot. */
	token = apq_load_acquire(&s->word->seq);
	r = sleeper_announce(s, has_work, arg);
	if (r)
		return r;
	/* Armed: the loop's descriptor wakes on the wake, or at the
	 * backstop.  A backend that cannot arm could not wake the loop:
	 * withdraw the announcement and say so. */
	r = apq_notifier_armed(s->notifier, s->channel, &s->word->seq, token);
	if (r)
		apq_store_once(&s->word->mode, mode_make(s->episode, s->asym));
	return r;
}

/* A wake ended a block with work: what the waker left for the policy. */
static void sleeper_learn_wake(struct apq_sleeper *s, bool *crowded,
			       int64_t *found_at)
{
	/* Single fetches of what the peer wrote; the policy clamps them. */
	uint32_t call_ns = apq_load_once(&s->word->wake_call_ns);
	uint64_t woken_at = apq_load_once(&s->word->woken_at_ns);
	int64_t now = apq_now_ns();

	if (apq_policy_woken(&s->policy, call_ns, woken_at, now))
		*crowded = true;
	/* The gap ended when the waker woke us, if its clock is ours. */
	*found_at = woken_at && woken_at <= (uint64_t)now ? (int64_t)woken_at
							  : now;
}

/*
 * The blocking part of a wait, after the poll: announce, block, re-check,
 * until work, the deadline, or an error.  On work that a wake brought,
 * *found_at is when the waker woke us (its stamp; else now), and *crowded
 * if that wake came late.
 */
static int sleeper_block(struct apq_sleeper *s, apq_has_work_fn has_work,
			 void *arg, int64_t deadline, bool *crowded,
			 int64_t *found_at)
{
	struct apq_mode_layout *w = s->word;
	bool backstop, rechecked = false, spurious, sampled;
	int64_t now, chunk, cpu = 0;
	uint32_t token;
	int r, waited;

	for (;;) {
		now = apq_now_ns();
		if (now >= deadline)
			return -ETIMEDOUT;
		sampled = !rechecked && apq_policy_sample_block(&s->policy);
		if (sampled)
			cpu = apq_policy_thread_cpu_ns();
		/* A1: acquire, so the snapshot is taken before the SLEEPING
		 * store in sleeper_announce(); pairs with the waker's bump,
		 * which follows its read of SLEEPING.  A bump we miss here
		 * makes the wait return at once instead of being lost. */
		token = apq_load_acquire(&w->seq);
		r = sleeper_announce(s, has_work, arg);
		if (r)
			return r;

		backstop = deadline - now > APQ_BACKSTOP_NS;
		chunk = backstop ? APQ_BACKSTOP_NS : deadline - now;
		/* Single fetch of the waker's advice: while it skips wakes
		 * between probes, a wake meant for us may be one of them. */
		if (apq_load_once(&w->waker_probing) &&
		    chunk > APQ_FLOOD_PAUSE_NS)
			chunk = APQ_FLOOD_PAUSE_NS;
		/* A sleep that a backstop re-check continues is still one. */
		if (!rechecked)
			apq_count(&s->sleeps, 1);
		waited = apq_notifier_wait(s->notifier, s->channel, &w->seq,
					   token, chunk);
		/* -EPIPE: the backend says the peer is gone.  What it left
		 * comes first: has_work() decides below. */
		if (waited < 0 && waited != -ETIMEDOUT && waited != -EPIPE) {
			apq_store_once(&w->mode, mode_make(s->episode, s->asym));
			return waited;
		}
		r = has_work(arg);
		spurious = false;
		/* Work, or a peer that closed, is news a wake should have
		 * brought; a corrupt word is not. */
		if ((r > 0 || r == -EPIPE) && waited == -ETIMEDOUT && backstop &&
		    apq_load_once(&w->seq) == token) {
			sleeper_judge_rescue(s, token, deadline);
		} else if (r == 0 && waited == 0) {
			spurious = true;
			apq_count(&s->spurious_wakeups, 1);
		}
		apq_store_once(&w->mode, mode_make(s->episode, s->asym));
		if (r > 0 && waited == 0) {
			sleeper_learn_wake(s, crowded, found_at);
			if (sampled)
				apq_policy_blocked(&s->policy,
						   apq_policy_thread_cpu_ns() -
						   cpu);
		}
		if (r)
			return r;
		if (waited == -EPIPE)
			return -EPIPE;
		if (spurious)
			sleeper_flood_pause(s, deadline);
		rechecked = waited == -ETIMEDOUT;
	}
}

int apq_sleeper_wait_until(struct apq_sleeper *s, apq_has_work_fn has_work,
			   void *arg, int64_t deadline)
{
	bool crowded = false;
	int64_t start, end, found_at = 0;
	int r;

	unsigned int i;

	r = has_work(arg);
	if (r)
		return r;
	if (deadline == APQ_DEADLINE_NONE)
		return -EAGAIN;
	/* Under load most gaps end within a few polls, each cheaper than a
	 * clock read: look that long before the clock is read at all. */
	if (apq_policy_polls_quick(&s->policy)) {
		for (i = 0; i < POLLS_PER_CLOCK_READ; i++) {
			apq_cpu_relax();
			r = has_work(arg);
			if (r) {
				apq_policy_waited(&s->policy, 0, r > 0, false,
						  0);
				return r;
			}
		}
	}
	start = apq_now_ns();
	r = sleeper_poll(s, has_work, arg, start, deadline, &crowded,
			 &found_at);
	if (r == 0)
		r = sleeper_block(s, has_work, arg, deadline, &crowded,
				  &found_at);
	/* The gap, for the policy: until the work was found (or the wake
	 * that brought it sent), or until the wait gave up. */
	end = apq_now_ns();
	apq_policy_waited(&s->policy,
			  (found_at >= start ? found_at : end) - start, r > 0,
			  crowded, end);
	return r;
}

int apq_waker_check_slow(struct apq_waker *wk, uint64_t m)
{
	uint64_t episode;

	/* We skipped B2, and the word does not say that its sleeper's B1'
	 * stands in for it (another sleeper, or a look that ran ahead of our
	 * publish): B2 after all, and a second single fetch. */
	if ((wk->polling_value & ~m) & MODE_ASYM) {
		/* B2: pairs with B1 in sleeper_announce(), as in
		 * apq_waker_check(). */
		apq_full_barrier();
		m = apq_load_once(&wk->word->mode);
	}
	if (!mode_valid(m))
		return -EPROTO;
	if (m & MODE_CLOSED)
		return -EPIPE;
	episode = mode_episode(m);
	if (!(m & MODE_SLEEPING) || episode == wk->last_woken) {
		apq_count(&wk->wakeups_skipped, 1);
		return 0;
	}
	return apq_waker_wake(wk, episode);
}

int apq_waker_check_always(struct apq_waker *wk)
{
	/* Single fetch of the peer's word; validated before use.  No
	 * barrier: we wake whatever we read, and A1 orders our bump. */
	uint64_t m = apq_load_once(&wk->word->mode);

	if (!mode_valid(m))
		return -EPROTO;
	if (m & MODE_CLOSED)
		return -EPIPE;
	return apq_waker_wake(wk, mode_episode(m));
}

int apq_waker_wake(struct apq_waker *wk, uint64_t episode)
{
	struct apq_mode_layout *w = wk->word;
	int64_t now, start;
	int r;

	start = apq_now_ns();
	/* For the sleeper's policy: no order needed, a stale stamp is a
	 * sample it rejects or a slightly wrong one. */
	apq_store_once(&w->woken_at_ns, (uint64_t)start);
	/* Release: under ALWAYS_NOTIFY a sleeper whose snapshot (A1) sees the
	 * bump must also see what we published. */
	__atomic_fetch_add(&w->seq, 1, __ATOMIC_RELEASE);
	/* A peer that announces sleeps it never takes: the bump alone, and a
	 * real wake now and then (see IDLE_STREAK_MAX).  The episode is not
	 * taken for woken, so that the next check bumps again and the next
	 * probe wakes it: an honest sleeper that did reach its wait is late
	 * by a probe's pause at most while we publish. */
	if (wk->idle_streak >= IDLE_STREAK_MAX) {
		/* A sleeper that did reach its wait may miss this wake: tell
		 * it to look again at the probe's pace. */
		if (!wk->probing) {
			wk->probing = true;
			apq_store_once(&w->waker_probing, 1);
		}
		now = apq_now_ns();
		if (now < wk->next_probe_ns) {
			apq_count(&wk->wakeups_skipped, 1);
			return 0;
		}
		wk->next_probe_ns = now + APQ_FLOOD_PAUSE_NS;
	}
	wk->last_woken = episode;
	apq_count(&wk->wakeups_sent, 1);
	r = apq_notifier_wake(wk->notifier, wk->channel, &w->seq);
	if (r < 0)
		return r;
	wk->call_ns = apq_policy_wake_call_ewma(wk->call_ns,
						apq_now_ns() - start);
	apq_store_once(&w->wake_call_ns, wk->call_ns);
	/* ALWAYS_NOTIFY wakes sleepers and pollers alike: nobody waiting
	 * is no news there. */
	wk->idle_streak = r == 0 && !wk->always_notify ? wk->idle_streak + 1 : 0;
	if (wk->idle_streak == 0 && wk->probing) {
		wk->probing = false;
		apq_store_once(&w->waker_probing, 0);
	}
	return 1;
}

void apq_waker_init(struct apq_waker *wk, struct apq_mode_word *w,
		    enum apq_channel ch, struct apq_notifier *n,
		    const struct apq_config *cfg)
{
	*wk = (struct apq_waker){
		.word = mode_layout(w),
		.notifier = n,
		.channel = ch,
		.always_notify = apq_policy_always_notify(cfg),
		/* Either magic: a sleeper's barrier costs us nothing. */
		.polling_mask = (UINT64_C(0xff) << MODE_MAGIC_SHIFT & ~MODE_ASYM) |
				MODE_CLOSED | MODE_SLEEPING,
		.polling_value = MODE_MAGIC << MODE_MAGIC_SHIFT,
		.last_woken = UINT64_MAX,
	};
	/* A waker before us may have left it set. */
	apq_store_once(&wk->word->waker_probing, 0);
}

void apq_waker_skip_b2(struct apq_waker *wk)
{
	wk->polling_mask |= MODE_ASYM;
	wk->polling_value |= MODE_ASYM;
}

int apq_sleeper_use_asym(struct apq_sleeper *s, const uint64_t *work)
{
	if (!apq_asym_ready())
		return -ENOTSUP;
	/* A sleeper that never blocks announces only when an event loop
	 * arms it: its peer's B2s are all waste, so ASYM for good. */
	if (apq_policy_budget(&s->policy, 0) == UINT64_MAX) {
		s->asym = MODE_ASYM;
		apq_store_once(&s->word->mode, mode_make(s->episode, s->asym));
		return 0;
	}
	/* On until the sleeps say otherwise: a loaded queue never pays B2,
	 * an idle one pays for a few barriers before the judgement turns
	 * ASYM off. */
	s->asym = MODE_ASYM;
	s->asym_work = work;
	s->asym_work_seen = apq_counter(work);
	s->asym_work_per_sleep = 4 * ASYM_BARRIER_PRIOR_NS / ASYM_FENCE_NS;
	s->asym_barrier_ns = ASYM_BARRIER_PRIOR_NS;
	apq_store_once(&s->word->mode, mode_make(s->episode, s->asym));
	return 0;
}

void apq_sleeper_add_stats(const struct apq_sleeper *s, struct apq_stats *out)
{
	out->sleeps += apq_counter(&s->sleeps);
	out->spurious_wakeups += apq_counter(&s->spurious_wakeups);
	out->rescues += apq_counter(&s->rescues);
	apq_policy_add_stats(&s->policy, out);
}

void apq_waker_add_stats(const struct apq_waker *wk, struct apq_stats *out)
{
	out->wakeups_sent += apq_counter(&wk->wakeups_sent);
	out->wakeups_skipped += apq_counter(&wk->wakeups_skipped);
}

/* The public, heap-allocated face of the same machinery. */

static int mode_args_check(void *out, struct apq_mode_word *w,
			   enum apq_channel ch, struct apq_notifier *n,
			   const struct apq_config *cfg)
{
	if (!out || !w || !n || (uintptr_t)w % 64 != 0)
		return -EINVAL;
	if (ch != APQ_CHANNEL_DATA && ch != APQ_CHANNEL_SPACE)
		return -EINVAL;
	return apq_config_check(cfg);
}

APQ_EXPORT int apq_sleeper_create(struct apq_sleeper **out,
				  struct apq_mode_word *w, enum apq_channel ch,
				  struct apq_notifier *n,
				  const struct apq_config *cfg)
{
	struct apq_sleeper *s;
	int r = mode_args_check(out, w, ch, n, cfg);

	if (r)
		return r;
	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	r = apq_sleeper_init(s, w, ch, n, cfg);
	if (r) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

APQ_EXPORT int apq_sleeper_wait(struct apq_sleeper *s, apq_has_work_fn has_work,
				void *arg, int64_t timeout_ns)
{
	if (!s || !has_work)
		return -EINVAL;
	return apq_sleeper_wait_until(s, has_work, arg,
				      apq_deadline(timeout_ns));
}

APQ_EXPORT int apq_sleeper_arm(struct apq_sleeper *s, apq_has_work_fn has_work,
			       void *arg)
{
	if (!s || !has_work)
		return -EINVAL;
	return apq_sleeper_arm_internal(s, has_work, arg);
}

APQ_EXPORT void apq_sleeper_close(struct apq_sleeper *s)
{
	if (!s)
		return;
	apq_sleeper_mark_closed(s);
	free(s);
}

APQ_EXPORT int apq_waker_create(struct apq_waker **out, struct apq_mode_word *w,
				enum apq_channel ch, struct apq_notifier *n,
				const struct apq_config *cfg)
{
	struct apq_waker *wk;
	int r = mode_args_check(out, w, ch, n, cfg);

	if (r)
		return r;
	wk = malloc(sizeof(*wk));
	if (!wk)
		return -ENOMEM;
	apq_waker_init(wk, w, ch, n, cfg);
	*out = wk;
	return 0;
}

APQ_EXPORT int apq_waker_notify(struct apq_waker *wk)
{
	if (!wk)
		return -EINVAL;
	return apq_waker_check(wk);
}

APQ_EXPORT int apq_waker_peer(const struct apq_waker *wk)
{
	if (!wk)
		return -EINVAL;
	return mode_peer_state(wk->word);
}

APQ_EXPORT void apq_waker_free(struct apq_waker *wk)
{
	free(wk);
}

APQ_EXPORT int apq_sleeper_stats(const struct apq_sleeper *s,
				 struct apq_stats *out)
{
	if (!s || !out)
		return -EINVAL;
	*out = (struct apq_stats){ 0 };
	apq_sleeper_add_stats(s, out);
	return 0;
}

APQ_EXPORT int apq_waker_stats(const struct apq_waker *wk, struct apq_stats *out)
{
	if (!wk || !out)
		return -EINVAL;
	*out = (struct apq_stats){ 0 };
	apq_waker_add_stats(wk, out);
	return 0;
}
