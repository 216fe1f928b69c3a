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

void apq_notifier_arm(struct apq_notifier *n)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = APQ_BACKSTOP_NS / 1000000000,
			      .tv_nsec = APQ_BACKSTOP_NS % 1000000000 },
	};

	/* One shot, restarted by every arm: a loop that keeps running keeps
	 * looking, one that sleeps wakes at the backstop.  A failure costs
	 * only the backstop: the wakeups themselves still come. */
	if (n->timer_fd >= 0)
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
