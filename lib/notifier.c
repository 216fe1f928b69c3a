/* SPDX-License-Identifier: MIT */
/* What every notifier backend shares: freeing, and event-loop descriptors. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "notifier.h"
#include "util.h"

void apq_notifier_init(struct apq_notifier *n,
		       const struct apq_notifier_ops *ops)
{
	*n = (struct apq_notifier){ .ops = ops, .loop_fd = -1, .timer_fd = -1 };
}

int apq_notifier_loop_open(struct apq_notifier *n, int source_fd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	n->loop_fd = epoll_create1(EPOLL_CLOEXEC);
	n->timer_fd = timerfd_create(CLOCK_MONOTONIC,
				     TFD_NONBLOCK | TFD_CLOEXEC);
	if (n->loop_fd < 0 || n->timer_fd < 0)
		goto fail;
	ev.data.fd = source_fd;
	if (epoll_ctl(n->loop_fd, EPOLL_CTL_ADD, source_fd, &ev) < 0)
		goto fail;
	ev.data.fd = n->timer_fd;
	if (epoll_ctl(n->loop_fd, EPOLL_CTL_ADD, n->timer_fd, &ev) < 0)
		goto fail;
	return 0;
fail:
	r = -errno;
	apq_notifier_loop_close(n);
	return r;
}

void apq_notifier_loop_close(struct apq_notifier *n)
{
	if (n->loop_fd >= 0)
		close(n->loop_fd);
	if (n->timer_fd >= 0)
		close(n->timer_fd);
	n->loop_fd = n->timer_fd = -1;
}

void apq_notifier_loop_timer(struct apq_notifier *n, int64_t ns)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ns / 1000000000,
			      .tv_nsec = ns % 1000000000 },
	}, cur;

	if (n->timer_fd < 0)
		return;
	/* One shot, and never later than a time already set: whoever asked
	 * for the earlier one needs it.  A failure costs only the timer:
	 * the wakeups themselves still come. */
	if (timerfd_gettime(n->timer_fd, &cur) == 0 &&
	    (cur.it_value.tv_sec || cur.it_value.tv_nsec) &&
	    (int64_t)cur.it_value.tv_sec * 1000000000 + cur.it_value.tv_nsec <=
	    ns)
		return;
	(void)timerfd_settime(n->timer_fd, 0, &its, NULL);
}

APQ_EXPORT void apq_notifier_free(struct apq_notifier *n)
{
	if (!n)
		return;
	apq_notifier_loop_close(n);
	n->ops->destroy(n);
}

APQ_EXPORT int apq_notifier_ack(struct apq_notifier *n)
{
	uint64_t expirations;

	if (!n)
		return -EINVAL;
	/* The backstop's expiry only had to wake the loop. */
	if (n->timer_fd >= 0 &&
	    read(n->timer_fd, &expirations, sizeof(expirations)) < 0 &&
	    errno != EAGAIN)
		return -errno;
	return n->ops->ack ? n->ops->ack(n) : 0;
}
