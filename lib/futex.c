/* SPDX-License-Identifier: MIT */
/*
 * The futex notifier.  The wake sequence word is the futex word: the waker
 * bumps it, then FUTEX_WAKEs; the sleeper FUTEX_WAITs for it to differ from
 * its snapshot, which the kernel checks under its own lock, so a wake that
 * lands between the snapshot and the wait makes the wait return at once.
 * The operations are the non-private ones, so that two processes mapping the
 * same MAP_SHARED page meet on the same futex.
 */
#include <errno.h>
#include <stdlib.h>

#include <urcu/futex.h>

#include "atomic.h"
#include "notifier.h"
#include "util.h"

static int futex_wait(struct apq_notifier *n, enum apq_channel ch,
		      uint32_t *seq, uint32_t token, int64_t timeout_ns)
{
	int64_t deadline = apq_now_ns() + timeout_ns;
	struct timespec ts;
	int64_t left;

	(void)n;
	(void)ch;
	for (;;) {
		/* Pairs with the waker's release bump in apq_waker_check(). */
		if (apq_load_acquire(seq) != token)
			return 0;
		left = deadline - apq_now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		if (futex_async((int32_t *)seq, FUTEX_WAIT, (int32_t)token, &ts,
				NULL, 0) == 0)
			continue;	/* woken, perhaps spuriously: re-check */
		switch (errno) {
		case EAGAIN:		/* the word had already moved */
		case EINTR:
		case ETIMEDOUT:		/* the loop decides, on our clock */
			continue;
		default:
			return -errno;
		}
	}
}

static int futex_wake(struct apq_notifier *n, enum apq_channel ch,
		      uint32_t *seq)
{
	int woken;

	(void)n;
	(void)ch;
	/* One sleeper per word, but waking all costs the same and keeps a
	 * misused word (two sleepers) from hanging one of them. */
	woken = futex_async((int32_t *)seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	if (woken < 0)
		return -errno;
	return woken > 0;
}

static void futex_destroy(struct apq_notifier *n)
{
	free(n);
}

static const struct apq_notifier_ops futex_ops = {
	.wait = futex_wait,
	.wake = futex_wake,
	.destroy = futex_destroy,
};

APQ_EXPORT int apq_notifier_futex(struct apq_notifier **out)
{
	struct apq_notifier *n;

	if (!out)
		return -EINVAL;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	apq_notifier_init(n, &futex_ops);
	*out = n;
	return 0;
}
