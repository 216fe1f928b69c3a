/* SPDX-License-Identifier: MIT */
/*
 * libuv-consumer: the same consumer as epoll-consumer.c, in a libuv loop:
 * a uv_poll_t on apq_notifier_fd() whose callback acks, drains and
 * re-arms; when the stream ends it stops the poll and the loop runs out.
 */
#include <uv.h>

#include "pump.h"

static void on_readable(uv_poll_t *h, int status, int events)
{
	struct pump *p = h->data;

	(void)events;
	if (status < 0)
		pump_die(p, "uv_poll", 0);
	if (!pump_woke(p))
		uv_poll_stop(h);
}

int main(int argc, char **argv)
{
	uv_loop_t loop;
	uv_poll_t poll;
	struct pump p;

	pump_start(&p, argc, argv);
	if (uv_loop_init(&loop) || uv_poll_init(&loop, &poll, p.fd))
		pump_die(&p, "libuv", 0);
	poll.data = &p;
	if (pump_drain(&p)) {
		if (uv_poll_start(&poll, UV_READABLE, on_readable))
			pump_die(&p, "uv_poll_start", 0);
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	uv_close((uv_handle_t *)&poll, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return pump_finish(&p, "libuv");
}
