/* SPDX-License-Identifier: MIT */
/*
 * Notifiers inside the library (private): the operations table of
 * <apq/notifier.h> with its context, and the event-loop descriptor every
 * notifier can have: an epoll set of the backend's descriptor and a
 * backstop timer.
 */
#ifndef APQ_LIB_NOTIFIER_H
#define APQ_LIB_NOTIFIER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apq/notifier.h>

struct apq_notifier {
	const struct apq_notifier_ops *ops;
	void *ctx;
	pthread_mutex_t loop_lock;	/* guards the loop's set-up */
	int loop_fd;			/* epoll set; -1 until asked for */
	int timer_fd;			/* the backstop, in the set */
};

/*
 * However long a sleeper blocks, it looks at the shared state again this
 * often, so that a wakeup lost to a peer's bug or malice costs at most this
 * much delay (and is counted: rescues), and a peer that died unseen is
 * noticed.
 */
#define APQ_BACKSTOP_NS		(50 * 1000 * 1000)

/* Whether ops, as its caller compiled it, has member m set. */
#define APQ_OPS_HAS(ops, m)						\
	((ops)->size >= offsetof(struct apq_notifier_ops, m) +		\
			sizeof((ops)->m) && (ops)->m)

/* What apq_notifier_create() does, for the library's own backends. */
int apq_notifier_new(struct apq_notifier **out,
		     const struct apq_notifier_ops *ops, void *ctx);

static inline int apq_notifier_wait(struct apq_notifier *n,
				    enum apq_channel ch, const uint32_t *seq,
				    uint32_t token, int64_t timeout_ns)
{
	return n->ops->wait(n->ctx, ch, seq, token, timeout_ns);
}

static inline int apq_notifier_wake(struct apq_notifier *n,
				    enum apq_channel ch, uint32_t *seq)
{
	return n->ops->wake(n->ctx, ch, seq);
}

static inline int apq_notifier_peer(struct apq_notifier *n)
{
	return APQ_OPS_HAS(n->ops, peer) ? n->ops->peer(n->ctx) : 0;
}

/* A sleeper armed for an event loop, with the snapshot token of its
 * sequence: tell the backend, and start the backstop timer.  @return 0, or
 * the backend's error (it cannot wake the loop for this word). */
int apq_notifier_armed(struct apq_notifier *n, enum apq_channel ch,
		       const uint32_t *seq, uint32_t token);

/* Make the event-loop descriptor readable in ns at the latest (never later
 * than a time already set): the backstop, or the end of a flood pause. */
void apq_notifier_loop_timer(struct apq_notifier *n, int64_t ns);

#endif /* APQ_LIB_NOTIFIER_H */
