/* SPDX-License-Identifier: MIT */
/*
 * The futex notifier.  The wake sequence word is the futex word: the waker
 * bumps it, then FUTEX_WAKEs; the sleeper FUTEX_WAITs for it to differ from
 * its snapshot, which the kernel checks under its own lock, so a wake that
 * lands between the snapshot and the wait makes the wait return at once.
 * The operations are the non-private ones, so that two processes mapping the
 * same MAP_SHARED page meet on the same futex.
 *
 * Event loops.  A futex has no descriptor, and the waker may be another
 * process that shares nothing with us but the memory.  So the first time an
 * event loop asks for the notifier's descriptor, the notifier makes an
 * eventfd, and for each word a sleeper arms on, a bridge thread that waits
 * on the futex as a blocking sleeper would and writes the eventfd when the
 * word moves.  It costs a thread per armed word (two, for a producer and a
 * consumer) and one more wakeup per wake, and only to users of event loops.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <urcu/futex.h>

#include "atomic.h"
#include "notifier.h"
#include "util.h"

/* Words a notifier's event loops may have armed at once. */
#define BRIDGES_MAX	16

struct bridge {
	struct futex_ctx *f;
	pthread_t thread;
	const uint32_t *seq;
	uint32_t token;
	bool armed;		/* a move of *seq away from token is news */
};

struct futex_ctx {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* bridges wait here to be armed */
	int efd;		/* -1 until an event loop asks */
	bool stopping;
	unsigned int n_bridges;
	struct bridge bridges[BRIDGES_MAX];
};

static int futex_wait(void *ctx, enum apq_channel ch, const uint32_t *seq,
		      uint32_t token, int64_t timeout_ns)
{
	int64_t deadline = apq_now_ns() + timeout_ns;
	struct timespec ts;
	int64_t left;

	(void)ctx;
	(void)ch;
	for (;;) {
		/* Pairs with the waker's release bump in apq_waker_wake(). */
		if (apq_load_acquire(seq) != token)
			return 0;
		left = deadline - apq_now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		if (futex_async((int32_t *)seq, FUTEX_WAIT, (int32_t)token, &ts,
				NULL, 0) == 0)
			return 0;	/* woken, perhaps spuriously */
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

static int futex_wake(void *ctx, enum apq_channel ch, uint32_t *seq)
{
	int woken;

	(void)ctx;
	(void)ch;
	/* One sleeper per word, but waking all costs the same and keeps a
	 * misused word (two sleepers, or a sleeper and a bridge) from
	 * hanging one of them. */
	woken = futex_async((int32_t *)seq, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
	if (woken < 0)
		return -errno;
	return woken > 0;
}

/*
 * A bridge: while armed, wait on the word as a sleeper would, and write the
 * eventfd when it moves.  It never reads the word itself: the kernel does,
 * in FUTEX_WAIT, and says EFAULT rather than crash if the region is gone
 * (a sleeper detached and the caller unmapped it).  Its waits last a
 * backstop at most, so that it sees a stop or a new token.
 */
static void *bridge_main(void *arg)
{
	struct bridge *b = arg;
	struct futex_ctx *f = b->f;
	struct timespec ts = { .tv_sec = APQ_BACKSTOP_NS / 1000000000,
			       .tv_nsec = APQ_BACKSTOP_NS % 1000000000 };
	uint64_t one = 1;

	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		const uint32_t *seq = b->seq;
		uint32_t token = b->token;
		int r;

		if (!b->armed) {
			pthread_cond_wait(&f->cond, &f->lock);
			continue;
		}
		pthread_mutex_unlock(&f->lock);
		r = futex_async((int32_t *)seq, FUTEX_WAIT, (int32_t)token, &ts,
				NULL, 0) == 0 ? 0 : errno;
		pthread_mutex_lock(&f->lock);
		/* Re-armed meanwhile (a new token): wait on that. */
		if (b->token != token || r == ETIMEDOUT || r == EINTR)
			continue;
		/* Woken, or the word had moved (EAGAIN): the loop looks.  A
		 * region gone (EFAULT): nothing more to watch. */
		b->armed = false;
		if (r != EFAULT)
			(void)!write(f->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

/* The notifier's event-loop source: an eventfd the bridges write. */
static int futex_fd(void *ctx)
{
	struct futex_ctx *f = ctx;
	int r;

	pthread_mutex_lock(&f->lock);
	if (f->efd < 0) {
		r = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		/* Release: pairs with the acquire in futex_ack(), which
		 * runs without the lock. */
		if (r >= 0)
			__atomic_store_n(&f->efd, r, __ATOMIC_RELEASE);
	}
	r = f->efd < 0 ? -errno : f->efd;
	pthread_mutex_unlock(&f->lock);
	return r;
}

/* Arm the word's bridge, starting it on the word's first arm. */
static int futex_arm(void *ctx, enum apq_channel ch, const uint32_t *seq,
		     uint32_t token)
{
	struct futex_ctx *f = ctx;
	struct bridge *b = NULL;
	unsigned int i;
	int r = 0;

	(void)ch;
	pthread_mutex_lock(&f->lock);
	if (f->efd < 0)
		goto out;	/* nobody polls: nothing to bridge to */
	for (i = 0; i < f->n_bridges; i++)
		if (f->bridges[i].seq == seq)
			b = &f->bridges[i];
	/* A word not seen before takes over an idle bridge (its sleeper
	 * may be gone for good), or gets a new one. */
	for (i = 0; !b && i < f->n_bridges; i++)
		if (!f->bridges[i].armed) {
			b = &f->bridges[i];
			b->seq = seq;
		}
	if (!b) {
		if (f->n_bridges == BRIDGES_MAX) {
			r = -ENOSPC;
			goto out;
		}
		b = &f->bridges[f->n_bridges];
		*b = (struct bridge){ .f = f, .seq = seq, .token = token,
				      .armed = true };
		r = -pthread_create(&b->thread, NULL, bridge_main, b);
		if (r == 0)
			f->n_bridges++;
		goto out;
	}
	b->token = token;
	b->armed = true;
	pthread_cond_broadcast(&f->cond);
	/* A bridge in FUTEX_WAIT on the old token is woken by the next
	 * move of the word, or at the backstop. */
out:
	pthread_mutex_unlock(&f->lock);
	return r;
}

static int futex_ack(void *ctx)
{
	struct futex_ctx *f = ctx;
	int efd = __atomic_load_n(&f->efd, __ATOMIC_ACQUIRE);
	uint64_t count;

	if (efd < 0)
		return 0;
	if (read(efd, &count, sizeof(count)) == sizeof(count))
		return 1;
	return errno == EAGAIN ? 0 : -errno;
}

static void futex_destroy(void *ctx)
{
	struct futex_ctx *f = ctx;
	unsigned int i, n;

	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	n = f->n_bridges;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	/* A bridge in its futex wait sees the stop at its next backstop. */
	for (i = 0; i < n; i++)
		pthread_join(f->bridges[i].thread, NULL);
	if (f->efd >= 0)
		close(f->efd);
	pthread_cond_destroy(&f->cond);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static const struct apq_notifier_ops futex_ops = {
	.size = sizeof(struct apq_notifier_ops),
	.wait = futex_wait,
	.wake = futex_wake,
	.fd = futex_fd,
	.arm = futex_arm,
	.ack = futex_ack,
	.destroy = futex_destroy,
};

APQ_EXPORT int apq_notifier_futex(struct apq_notifier **out)
{
	struct futex_ctx *f;
	int r;

	if (!out)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->efd = -1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	r = apq_notifier_new(out, &futex_ops, f);
	if (r) {
		pthread_cond_destroy(&f->cond);
		pthread_mutex_destroy(&f->lock);
		free(f);
	}
	return r;
}
