/* SPDX-License-Identifier: MIT */
/*
 * bare-ring.c - bare-ring (../peers/bare-ring.h) alone: 8-byte items
 * copied in and out of slots, one per call or 32 per call, both sides
 * spinning.  32768 slots, what apq-bench's adapter opens for 8-byte
 * packets in its default 256 KiB.
 *
 * usage: standalone-bare-ring [SECONDS [single|burst]]
 */
#include "../peers/bare-ring.h"
#include "standalone.h"

#define BARE_SLOTS	32768

/* On lines of their own: each is one side's. */
static _Alignas(BARE_LINE) struct bare_end prod_end;
static _Alignas(BARE_LINE) struct bare_end cons_end;
static unsigned int per_call = 1;

static void *producer(void *arg)
{
	struct sa_run *run = arg;
	uint64_t seq = 0, items[SA_BURST];
	struct iovec iov[SA_BURST];
	unsigned int i, n;

	for (i = 0; i < SA_BURST; i++)
		iov[i] = (struct iovec){ &items[i], sizeof(items[i]) };
	pthread_barrier_wait(&run->start);
	while (!sa_stopped(run)) {
		for (i = 0; i < per_call; i++)
			items[i] = seq + i;
		n = bare_send(&prod_end, iov, per_call);
		if (n) {
			seq += n;
			sa_spend(n);
		} else
			sa_pause();
	}
	bare_end_stream(&prod_end);
	return NULL;
}

static void *consumer(void *arg)
{
	struct sa_run *run = arg;
	uint64_t want = 0, bad = 0, got = 0, items[SA_BURST];
	struct iovec iov[SA_BURST];
	int64_t t0;
	int i, n;

	pthread_barrier_wait(&run->start);
	t0 = sa_now_ns();
	for (;;) {
		for (i = 0; i < (int)per_call; i++)
			iov[i] = (struct iovec){ &items[i], sizeof(items[i]) };
		n = bare_recv(&cons_end, iov, per_call);
		if (n < 0) {
			run->err = n;
			break;
		}
		for (i = 0; i < n; i++)
			sa_item(&want, &bad, items[i]);
		got += (unsigned int)n;
		if (n)
			continue;
		if (bare_stream_ended(&cons_end) && !bare_peek(&cons_end, 0))
			break;
		sa_pause();
	}
	sa_consumer_end(run, t0, got, bad);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct sa_run run;
	const char *mode = sa_args(argc, argv, &run);
	size_t bytes = bare_ring_bytes(BARE_SLOTS, sizeof(uint64_t));
	void *ring;

	if (mode && !strcmp(mode, "burst"))
		per_call = SA_BURST;
	run.name = per_call > 1 ? "bare-ring burst-32" : "bare-ring single";
	if (posix_memalign(&ring, BARE_LINE, bytes))
		return 1;
	memset(ring, 0, bytes);
	bare_ring_init(ring, BARE_SLOTS, sizeof(uint64_t));
	bare_end_init(&prod_end, ring);
	bare_end_init(&cons_end, ring);
	return sa_main(&run, producer, consumer);
}
