/* SPDX-License-Identifier: MIT */
/*
 * libevent-consumer: the same consumer as epoll-consumer.c, in a libevent
 * loop: apq_notifier_fd() is a persistent read event whose callback acks,
 * drains and re-arms; the loop ends when the stream does.
 */
#include <event2/event.h>

#include "pump.h"

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct pump *p = arg;

	(void)fd;
	(void)what;
	if (!pump_woke(p))
		event_base_loopbreak(p->base);
}

int main(int argc, char **argv)
{
	struct event *ev;
	struct pump p;

	pump_start(&p, argc, argv);
	p.base = event_base_new();
	ev = p.base ? event_new(p.base, p.fd, EV_READ | EV_PERSIST, on_readable,
				&p) : NULL;
	if (!ev || event_add(ev, NULL) < 0)
		pump_die(&p, "libevent", 0);
	/* Packets may be there already: drain before the first wait. */
	if (pump_drain(&p) && event_base_dispatch(p.base) < 0)
		pump_die(&p, "event_base_dispatch", 0);
	event_free(ev);
	event_base_free(p.base);
	return pump_finish(&p, "libevent");
}
