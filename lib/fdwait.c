/* SPDX-License-Identifier: MIT */
/* Waiting on a shared descriptor: see fdwait.h. */
#include <errno.h>
#include <poll.h>
#include <time.h>

#include "atomic.h"
#include "fdwait.h"
#include "util.h"

int apq_fdwait_init(struct apq_fdwait *w)
{
	pthread_condattr_t attr;
	int r = -ENOMEM;

	w->polling = false;
	w->check_every_ns = 0;
	if (pthread_condattr_init(&attr))
		return -ENOMEM;
	/* Deadlines are CLOCK_MONOTONIC, like every apq timeout. */
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&w->cond, &attr) == 0)
		r = pthread_mutex_init(&w->lock, NULL) ? -ENOMEM : 0;
	pthread_condattr_destroy(&attr);
	return r;
}

void apq_fdwait_fini(struct apq_fdwait *w)
{
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
}

/* Poll fd until the deadline.  @return 1 readable, 0 not yet, -errno. */
static int poll_until(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t left = deadline - apq_now_ns();
	struct timespec ts;
	int r;

	if (left <= 0)
		return 0;
	ts.tv_sec = left / 1000000000;
	ts.tv_nsec = left % 1000000000;
	r = ppoll(&pfd, 1, &ts, NULL);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	return r;
}

/* Where a poll stops: the deadline, or sooner when check() must run. */
static int64_t slice_end(const struct apq_fdwait *w, int64_t deadline)
{
	int64_t end;

	if (w->check_every_ns <= 0)
		return deadline;
	end = apq_now_ns() + w->check_every_ns;
	return end < deadline ? end : deadline;
}

int apq_fdwait(struct apq_fdwait *w, int fd, const struct apq_fdwait_ops *ops,
	       void *ctx, const uint32_t *seq, uint32_t token,
	       int64_t deadline)
{
	struct timespec until = {
		.tv_sec = deadline / 1000000000,
		.tv_nsec = deadline % 1000000000,
	};
	bool taken;
	int r;

	pthread_mutex_lock(&w->lock);
	r = ops->prepare ? ops->prepare(ctx) : 0;
	while (r == 0) {
		/* Pairs with the waker's release bump in apq_waker_wake(). */
		if (apq_load_acquire(seq) != token)
			break;
		r = ops->check ? ops->check(ctx) : 0;
		if (r)
			break;
		if (apq_now_ns() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		if (w->polling) {
			pthread_cond_timedwait(&w->cond, &w->lock, &until);
			continue;
		}
		w->polling = true;
		pthread_mutex_unlock(&w->lock);
		r = poll_until(fd, slice_end(w, deadline));
		taken = r > 0;
		if (taken)
			r = ops->take(ctx);
		pthread_mutex_lock(&w->lock);
		w->polling = false;
		/* The notification may have been meant for another waiter;
		 * and at a slice's end, the others run check() too. */
		pthread_cond_broadcast(&w->cond);
		if (taken && r == 0 && apq_now_ns() < deadline &&
		    apq_load_acquire(seq) == token)
			break;	/* taken: back to the caller, who looks */
		/* Not taken (a slice ended, a signal): look again, here. */
	}
	pthread_mutex_unlock(&w->lock);
	return r;
}
