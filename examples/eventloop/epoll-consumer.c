/* SPDX-License-Identifier: MIT */
/*
 * epoll-consumer: an apq consumer that never blocks in apq, only in
 * epoll_wait(), next to whatever else its loop watches.  The pattern:
 *   receive with timeout 0 until -EAGAIN, then apq_consumer_arm();
 *   0: wait in the loop for apq_notifier_fd() to become readable;
 *   readable: apq_notifier_ack(), and receive again.
 * The producer (pump.h) runs in another process, or a thread (--threads),
 * over the futex or the eventfd backend (--backend).
 */
#include <sys/epoll.h>

#include "pump.h"

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct pump p;
	int ep;

	pump_start(&p, argc, argv);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p.fd, &ev) < 0)
		pump_die(&p, "epoll", -errno);
	for (int more = pump_drain(&p); more;) {
		int r = epoll_wait(ep, &ev, 1, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != 1)
			pump_die(&p, "epoll_wait", -errno);
		more = pump_woke(&p);
	}
	close(ep);
	return pump_finish(&p, "epoll");
}
