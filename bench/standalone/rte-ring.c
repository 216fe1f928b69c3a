/* SPDX-License-Identifier: MIT */
/*
 * rte-ring.c - DPDK's rte_ring SP/SC alone, without the EAL: 8-byte items
 * as the ring's pointer values, one per call (rte_ring_sp_enqueue() /
 * rte_ring_sc_dequeue()) or 32 per call (rte_ring_sp_enqueue_burst() /
 * rte_ring_sc_dequeue_burst()), both sides spinning.  32768 entries
 * exactly, what apq-bench's adapter opens for 8-byte packets in its default
 * 256 KiB.
 *
 * usage: standalone-rte-ring [SECONDS [single|burst]]
 */
#include <rte_ring.h>

#include "standalone.h"

#define RTE_ENTRIES	32768

static bool burst;

static void *producer(void *arg)
{
	struct sa_run *run = arg;
	struct rte_ring *r = run->q;
	uintptr_t seq = 0;
	void *objs[SA_BURST];
	unsigned int i, n;

	pthread_barrier_wait(&run->start);
	while (!sa_stopped(run)) {
		if (!burst) {
			if (rte_ring_sp_enqueue(r, (void *)seq) == 0) {
				seq++;
				sa_spend(1);
			} else
				sa_pause();
			continue;
		}
		for (i = 0; i < SA_BURST; i++)
			objs[i] = (void *)(seq + i);
		n = rte_ring_sp_enqueue_burst(r, objs, SA_BURST, NULL);
		if (n) {
			seq += n;
			sa_spend(n);
		} else
			sa_pause();
	}
	sa_producer_done(run);
	return NULL;
}

static void *consumer(void *arg)
{
	struct sa_run *run = arg;
	struct rte_ring *r = run->q;
	uint64_t want = 0, bad = 0, got = 0;
	void *objs[SA_BURST];
	unsigned int i, n;
	int64_t t0;

	pthread_barrier_wait(&run->start);
	t0 = sa_now_ns();
	for (;;) {
		if (!burst)
			n = rte_ring_sc_dequeue(r, &objs[0]) == 0;
		else
			n = rte_ring_sc_dequeue_burst(r, objs, SA_BURST, NULL);
		for (i = 0; i < n; i++)
			sa_item(&want, &bad, (uintptr_t)objs[i]);
		got += n;
		if (n)
			continue;
		if (sa_producer_was_done(run) && rte_ring_empty(r))
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
	ssize_t mem;
	void *r;

	burst = mode && !strcmp(mode, "burst");
	run.name = burst ? "rte_ring sp/sc burst-32" : "rte_ring sp/sc single";
	mem = rte_ring_get_memsize(2 * RTE_ENTRIES);
	if (mem < 0 || posix_memalign(&r, 64, (size_t)mem))
		return 1;
	memset(r, 0, (size_t)mem);
	if (rte_ring_init(r, "standalone", RTE_ENTRIES,
			  RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ) < 0)
		return 1;
	run.q = r;
	return sa_main(&run, producer, consumer);
}
