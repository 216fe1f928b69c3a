/* SPDX-License-Identifier: MIT */
/*
 * ck-ring.c - ck_ring SPSC alone: 8-byte items as the ring's pointer
 * values, ck_ring_enqueue_spsc() / ck_ring_dequeue_spsc(), both sides
 * spinning.  65536 entries, what apq-bench's adapter opens for 8-byte
 * packets in its default 256 KiB.
 *
 * usage: standalone-ck-ring [SECONDS]
 */
#include <ck_ring.h>

#include "standalone.h"

#define CK_ENTRIES	65536

struct ck_q {
	struct ck_ring ring;
	struct ck_ring_buffer *buf;
};

static void *producer(void *arg)
{
	struct sa_run *run = arg;
	struct ck_q *q = run->q;
	uintptr_t seq = 0;

	pthread_barrier_wait(&run->start);
	while (!sa_stopped(run)) {
		if (ck_ring_enqueue_spsc(&q->ring, q->buf, (void *)seq)) {
			seq++;
			sa_spend(1);
		} else
			sa_pause();
	}
	sa_producer_done(run);
	return NULL;
}

static void *consumer(void *arg)
{
	struct sa_run *run = arg;
	struct ck_q *q = run->q;
	uint64_t want = 0, bad = 0, got = 0;
	int64_t t0;
	void *p;

	pthread_barrier_wait(&run->start);
	t0 = sa_now_ns();
	for (;;) {
		if (ck_ring_dequeue_spsc(&q->ring, q->buf, &p)) {
			sa_item(&want, &bad, (uintptr_t)p);
			got++;
		} else if (sa_producer_was_done(run) &&
			   !ck_ring_size(&q->ring)) {
			break;
		} else {
			sa_pause();
		}
	}
	sa_consumer_end(run, t0, got, bad);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct ck_q q;
	static struct sa_run run = { .name = "ck_ring spsc" };

	sa_args(argc, argv, &run);
	q.buf = calloc(CK_ENTRIES, sizeof(*q.buf));
	if (!q.buf)
		return 1;
	ck_ring_init(&q.ring, CK_ENTRIES);
	run.q = &q;
	return sa_main(&run, producer, consumer);
}
