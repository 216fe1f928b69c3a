/* SPDX-License-Identifier: MIT */
/* The notifier backends' operations (private). */
#ifndef APQ_LIB_NOTIFIER_H
#define APQ_LIB_NOTIFIER_H

#include <stdint.h>

#include <apq/mode.h>
#include <apq/notifier.h>

struct apq_notifier_ops {
	/*
	 * Block while *seq still equals token, for at most timeout_ns (> 0).
	 * May return early.  @return 0 (the sequence moved, or may have);
	 * -ETIMEDOUT; another negative errno.
	 */
	int (*wait)(struct apq_notifier *n, enum apq_channel ch,
		    uint32_t *seq, uint32_t token, int64_t timeout_ns);
	/* Wake the sleeper of *seq, which the caller has just bumped.
	 * @return 0 or a negative errno. */
	int (*wake)(struct apq_notifier *n, enum apq_channel ch, uint32_t *seq);
	void (*destroy)(struct apq_notifier *n);
	/* Optional.  -EPIPE when the backend itself knows the peer is gone
	 * (Xen: its liveness byte), else 0. */
	int (*peer)(struct apq_notifier *n);
	/* Optional.  Take pending notifications without blocking, for an
	 * event loop.  @return 1 if there were some, 0, or a negative errno. */
	int (*ack)(struct apq_notifier *n);
};

/* Each backend embeds this as its first member. */
struct apq_notifier {
	const struct apq_notifier_ops *ops;
};

static inline int apq_notifier_peer(struct apq_notifier *n)
{
	return n->ops->peer ? n->ops->peer(n) : 0;
}

#endif /* APQ_LIB_NOTIFIER_H */
