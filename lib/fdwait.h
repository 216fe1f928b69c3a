/* SPDX-License-Identifier: MIT */
/*
 * Waiting on a descriptor that many threads share (private): the Xen event
 * channel and the eventfd backends.  A descriptor's notification can be
 * taken only once, so one thread polls and takes at a time, and tells the
 * others through a condition variable; every waiter then looks at its own
 * sequence word.  (xenevtchn.h says as much for its handle.)
 */
#ifndef APQ_LIB_FDWAIT_H
#define APQ_LIB_FDWAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct apq_fdwait {
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC */
	bool polling;			/* a thread polls the descriptor */
	/* > 0: while blocked, run ops->check at least this often, for a
	 * peer whose end raises no notification (a destroyed Xen domain). */
	int64_t check_every_ns;
};

/* @return 0 or -ENOMEM. */
int apq_fdwait_init(struct apq_fdwait *w);
void apq_fdwait_fini(struct apq_fdwait *w);

struct apq_fdwait_ops {
	/* Take one pending notification from the descriptor (it is readable).
	 * Called without the lock.  @return 0 or a negative errno. */
	int (*take)(void *ctx);
	/* Optional: what the backend knows besides the word, with the lock
	 * held: 0 (wait on), -EPIPE (the peer is gone), a negative errno. */
	int (*check)(void *ctx);
	/* Optional: called with the lock held before waiting, so that a
	 * backend can undo what an event loop's ack left (a masked port). */
	int (*prepare)(void *ctx);
};

/*
 * Block while *seq equals token, until the deadline (absolute
 * CLOCK_MONOTONIC), polling fd.  Returns after every notification taken,
 * meant for this waiter or not: the caller looks (a spurious wakeup, if it
 * finds nothing).  @return 0; -ETIMEDOUT; what check() or take() said.
 */
int apq_fdwait(struct apq_fdwait *w, int fd, const struct apq_fdwait_ops *ops,
	       void *ctx, const uint32_t *seq, uint32_t token,
	       int64_t deadline);

#endif /* APQ_LIB_FDWAIT_H */
