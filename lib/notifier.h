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
	 * @return 1 (woken, or cannot tell); 0 (nobody was waiting: the
	 * backend knows); a negative errno. */
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
	/* For event loops (apq_notifier_loop_open()): an epoll set of the
	 * backend's descriptor and the backstop timer; -1 without. */
	int loop_fd;
	int timer_fd;
};

/*
 * However long a sleeper blocks, it looks at the shared state again this
 * often, so that a wakeup lost to a peer's bug or malice costs at most this
 * much delay (and is counted: rescues), and a peer that died unseen is
 * noticed.
 */
#define APQ_BACKSTOP_NS		(50 * 1000 * 1000)

/* Set up n's base, without an event-loop descriptor. */
void apq_notifier_init(struct apq_notifier *n,
		       const struct apq_notifier_ops *ops);

/*
 * Give n an event-loop descriptor: an epoll set holding source_fd (readable
 * when a notification is pending) and a timer that apq_notifier_arm()
 * starts, so that a loop blocked in poll() wakes at the backstop too.
 * @return 0 or a negative errno.
 */
int apq_notifier_loop_open(struct apq_notifier *n, int source_fd);

/* Close what apq_notifier_loop_open() opened. */
void apq_notifier_loop_close(struct apq_notifier *n);

/* Make the event-loop descriptor readable in ns at the latest: the
 * backstop of an armed sleeper, or the end of a flood pause. */
void apq_notifier_loop_timer(struct apq_notifier *n, int64_t ns);

static inline int apq_notifier_peer(struct apq_notifier *n)
{
	return n->ops->peer ? n->ops->peer(n) : 0;
}

#endif /* APQ_LIB_NOTIFIER_H */
