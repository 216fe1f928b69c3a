/* SPDX-License-Identifier: MIT */
/* What every notifier shares: creation, freeing, the event-loop descriptor. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "notifier.h"
#include "util.h"

int apq_notifier_new(struct apq_notifier **out,
		     const struct apq_notifier_ops *ops, void *ctx)
{
	struct apq_notifier *n;

	if (!out || !ops || !APQ_OPS_HAS(ops, wait) || !APQ_OPS_HAS(ops, wake))
		return -EINVAL;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = (struct apq_notifier){
		.ops = ops,
		.ctx = ctx,
		.loop_fd = -1,
		.timer_fd = -1,
	};
	pthread_mutex_init(&n->loop_lock, NULL);
	*out = n;
	return 0;
}

APQ_EXPORT int apq_notifier_create(struct apq_notifier **out,
				   const struct apq_notifier_ops *ops,
				   void *ctx)
{
	return apq_notifier_new(out, ops, ctx);
}

static void loop_close(struct apq_notifier *n)
{
	if (n->loop_fd >= 0)
		close(n->loop_fd);
	if (n->timer_fd >= 0)
		close(n->timer_fd);
	n->loop_fd = n->timer_fd = -1;
}

/* The epoll set of the backend's descriptor and the backstop timer.  Under
 * loop_lock. */
static int loop_open(struct apq_notifier *n)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int source, ep, timer, r;

	if (!APQ_OPS_HAS(n->ops, fd))
		return -ENOTSUP;
	source = n->ops->fd(n->ctx);
	if (source < 0)
		return source;
	ep = epoll_create1(EPOLL_CLOEXEC);
	timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (ep < 0 || timer < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, source, &ev) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, timer, &ev) < 0) {
		r = -errno;
		if (ep >= 0)
			close(ep);
		if (timer >= 0)
			close(timer);
		return r;
	}
	n->loop_fd = ep;
	/* Release: pairs with the acquires in apq_notifier_loop_timer() and
	 * apq_notifier_ack(), which run without the lock. */
	__atomic_store_n(&n->timer_fd, timer, __ATOMIC_RELEASE);
	return 0;
}

APQ_EXPORT int apq_notifier_fd(struct apq_notifier *n)
{
	int r = 0;

	if (!n)
		return -EINVAL;
	pthread_mutex_lock(&n->loop_lock);
	if (n->loop_fd < 0)
		r = loop_open(n);
	if (r == 0)
		r = n->loop_fd;
	pthread_mutex_unlock(&n->loop_lock);
	return r;
}

void apq_notifier_loop_timer(struct apq_notifier *n, int64_t ns)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000 },
	}, cur;
	int fd = __atomic_load_n(&n->timer_fd, __ATOMIC_ACQUIRE);

	/* No descriptor asked for yet: no loop to wake. */
	if (fd < 0)
		return;
	/* One shot, and never later than a time already set: whoever asked
	 * for the earlier one needs it.  A failure costs only the timer:
	 * the wakeups themselves still come. */
	if (timerfd_gettime(fd, &cur) == 0 &&
	    (cur.it_value.tv_sec || cur.it_value.tv_nsec) &&
	    (int64_t)cur.it_value.tv_sec * 1000000000 + cur.it_value.tv_nsec <=
	    ns)
		return;
	(void)timerfd_settime(fd, 0, &its, NULL);
}

int apq_notifier_armed(struct apq_notifier *n, enum apq_channel ch,
		       const uint32_t *seq, uint32_t token)
{
	int r = APQ_OPS_HAS(n->ops, arm) ? n->ops->arm(n->ctx, ch, seq, token)
					 : 0;

	if (r == 0)
		apq_notifier_loop_timer(n, APQ_BACKSTOP_NS);
	return r;
}

APQ_EXPORT void apq_notifier_free(struct apq_notifier *n)
{
	if (!n)
		return;
	loop_close(n);
	if (APQ_OPS_HAS(n->ops, destroy))
		n->ops->destroy(n->ctx);
	pthread_mutex_destroy(&n->loop_lock);
	free(n);
}

APQ_EXPORT int apq_notifier_ack(struct apq_notifier *n)
{
	uint64_t expirations;
	int fd;

	if (!n)
		return -EINVAL;
	fd = __atomic_load_n(&n->timer_fd, __ATOMIC_ACQUIRE);
	/* The backstop's expiry only had to wake the loop. */
	if (fd >= 0 && read(fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		return -errno;
	return APQ_OPS_HAS(n->ops, ack) ? n->ops->ack(n->ctx) : 0;
}
