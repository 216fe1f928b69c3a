/* SPDX-License-Identifier: MIT */
/*
 * standalone.h - what the minimal loops of bench/standalone share: two
 * threads pinned like apq-bench's (producer on the first CPU this process
 * may use, consumer on the second), a start barrier, a stop flag, and the
 * result line.
 *
 * Each program moves 8-byte items, the numbers 0, 1, 2, ..., from its
 * producer to its consumer through one queue for the seconds given, and
 * prints the items the consumer received per second of its run (from the
 * start to its last item, as apq-bench counts).  The consumer compares
 * each item with the number it expects, one compare, so that a loop that
 * loses items cannot post a rate.  No clock reads, no stamps, no calls
 * but the queue's: the rate the queue reaches with nothing around it.
 *
 * APQ_SA_WORK=N in the environment gives each side N rounds of a
 * one-cycle step per item (the producer before it sends an item, the
 * consumer after it takes one): a stand-in for what any program, and
 * apq-bench's stamps and checks, do with each item.  How far a queue's
 * rate falls with a little of it says how much of its bare rate a
 * program around it would see (bench/README.md, "The harness against
 * the standalone loops").
 */
#ifndef APQ_BENCH_STANDALONE_H
#define APQ_BENCH_STANDALONE_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"	/* placement_pick(), thread_start_pinned() */

/* Items per burst call, as apq-bench's burst32 scenarios. */
#define SA_BURST	32

/* APQ_SA_WORK: rounds per item and side (each program is one file, so
 * one copy). */
static unsigned int sa_work;

struct sa_run {
	const char *name;	/* the queue and its variant, for the line */
	double seconds;
	void *q;		/* the program's queue */
	pthread_barrier_t start;
	/* Raised by main when the time is up; producers look at it between
	 * calls (read-only until then, so it stays in their cache). */
	_Alignas(64) atomic_int stop;
	/* Raised by a producer after its last item, read by its consumer
	 * when the queue is empty, which then looks once more: for the
	 * queues without an end of their own. */
	_Alignas(64) atomic_int done;
	/* The consumer's results, written once at its end. */
	_Alignas(64) int64_t t_ns;
	uint64_t received;
	uint64_t bad;		/* items out of sequence */
	int err;		/* negative errno of a failed call */
};

static inline int64_t sa_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

static inline bool sa_stopped(struct sa_run *run)
{
	/* Relaxed: the flag publishes nothing; the threads' results reach
	 * main through pthread_join(). */
	return atomic_load_explicit(&run->stop, memory_order_relaxed);
}

/* D1: release, after the producer's last enqueue; pairs with D1', the
 * consumer's acquire load: a consumer that sees it sees every item. */
static inline void sa_producer_done(struct sa_run *run)
{
	atomic_store_explicit(&run->done, 1, memory_order_release);	/* D1 */
}

static inline bool sa_producer_was_done(struct sa_run *run)
{
	return atomic_load_explicit(&run->done, memory_order_acquire);	/* D1' */
}

static inline void sa_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* The stand-in work for n items: a loop the compiler must keep (the empty
 * asm is volatile) and that touches no memory, about one cycle a round. */
static inline void sa_spend(unsigned int n)
{
	for (unsigned long i = (unsigned long)n * sa_work; i > 0; i--)
		__asm__ __volatile__("");
}

/* argv[1]: seconds (default 1); APQ_SA_WORK from the environment.
 * @return the first argument after the seconds, or NULL. */
static inline const char *sa_args(int argc, char **argv, struct sa_run *run)
{
	const char *work = getenv("APQ_SA_WORK");

	run->seconds = argc > 1 ? atof(argv[1]) : 1.0;
	if (run->seconds <= 0)
		run->seconds = 1.0;
	if (work != NULL)
		sa_work = (unsigned int)strtoul(work, NULL, 10);
	return argc > 2 ? argv[2] : NULL;
}

/* Run producer and consumer (each takes the struct sa_run, waits at
 * run->start first) for run->seconds and print the result.  @return the
 * exit status. */
static inline int sa_main(struct sa_run *run, void *(*producer)(void *),
			  void *(*consumer)(void *))
{
	struct timespec nap;
	struct placement pl = placement_pick();
	int *cpu = pl.cpu, r;
	pthread_t th[2];

	atomic_init(&run->stop, 0);
	atomic_init(&run->done, 0);
	r = pthread_barrier_init(&run->start, NULL, 3);
	if (!r)
		r = -thread_start_pinned(&th[1], cpu[1], consumer, run);
	if (!r)
		r = -thread_start_pinned(&th[0], cpu[0], producer, run);
	if (r) {
		fprintf(stderr, "%s: cannot start its threads: %s\n",
			run->name, strerror(r));
		return 1;
	}
	pthread_barrier_wait(&run->start);
	nap.tv_sec = (time_t)run->seconds;
	nap.tv_nsec = (long)((run->seconds - (double)nap.tv_sec) * 1e9);
	while (nanosleep(&nap, &nap) == -1 && errno == EINTR)
		;
	atomic_store_explicit(&run->stop, 1, memory_order_relaxed);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	pthread_barrier_destroy(&run->start);
	if (run->err || run->bad) {
		printf("%s: FAILED: %s, %" PRIu64 " items out of sequence\n",
		       run->name, run->err ? strerror(-run->err) : "no error",
		       run->bad);
		return 1;
	}
	printf("%s: %.0f items/s (%" PRIu64 " in %.3f s; CPUs %d, %d; work %u)\n",
	       run->name, (double)run->received * 1e9 / (double)run->t_ns,
	       run->received, (double)run->t_ns / 1e9, cpu[0], cpu[1], sa_work);
	return 0;
}

/* The consumer's bookkeeping, in its locals: item x arrived. */
static inline void sa_item(uint64_t *want, uint64_t *bad, uint64_t x)
{
	sa_spend(1);
	*bad += x != *want;
	*want = x + 1;
}

/* The consumer's end: its counts and how long it ran. */
static inline void sa_consumer_end(struct sa_run *run, int64_t t0,
				   uint64_t received, uint64_t bad)
{
	run->t_ns = sa_now_ns() - t0;
	run->received = received;
	run->bad = bad;
}

#endif /* APQ_BENCH_STANDALONE_H */
