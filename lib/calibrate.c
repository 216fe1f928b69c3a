/* SPDX-License-Identifier: MIT */
/*
 * The ADAPTIVE policy's budget.  Polling for as long as one sleep/wake costs
 * is the classic competitive choice: the sleeper never pays more than twice
 * the better of "poll until the work comes" and "sleep at once".  The cost is
 * measured once per process, with a short futex ping-pong between two threads
 * (about a millisecond), since it differs by an order of magnitude between
 * bare metal, virtual machines and emulators.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include <urcu/futex.h>

#include "atomic.h"
#include "util.h"

#define ROUNDS		32
#define WARMUP_ROUNDS	4
/* Bounds: below, polling would not cover even a syscall; above, a machine
 * so slow that polling any longer costs more CPU than it saves. */
#define SPIN_MIN_NS	1000
#define SPIN_MAX_NS	100000
#define SPIN_FALLBACK_NS 20000

static uint64_t adaptive_spin_ns;
static pthread_once_t adaptive_once = PTHREAD_ONCE_INIT;

/* Ball passing: the main thread makes the word odd, the echo thread even. */
static uint32_t ball;

static void ball_wait_for(uint32_t value)
{
	uint32_t seen;

	/* Pairs with the release in ball_set(). */
	while ((seen = apq_load_acquire(&ball)) != value)
		futex_async((int32_t *)&ball, FUTEX_WAIT, (int32_t)seen, NULL,
			    NULL, 0);
}

static void ball_set(uint32_t value)
{
	apq_store_release(&ball, value);	/* pairs with ball_wait_for() */
	futex_async((int32_t *)&ball, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void *echo(void *arg)
{
	uint32_t i;

	(void)arg;
	for (i = 0; i < ROUNDS + WARMUP_ROUNDS; i++) {
		ball_wait_for(2 * i + 1);
		ball_set(2 * i + 2);
	}
	return NULL;
}

static int compare_ns(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static void calibrate(void)
{
	int64_t rounds[ROUNDS], start, cost;
	pthread_t thread;
	uint32_t i;

	adaptive_spin_ns = SPIN_FALLBACK_NS;
	ball = 0;
	if (pthread_create(&thread, NULL, echo, NULL) != 0)
		return;
	for (i = 0; i < ROUNDS + WARMUP_ROUNDS; i++) {
		start = apq_now_ns();
		ball_set(2 * i + 1);
		ball_wait_for(2 * i + 2);
		if (i >= WARMUP_ROUNDS)
			rounds[i - WARMUP_ROUNDS] = apq_now_ns() - start;
	}
	pthread_join(thread, NULL);
	/* The median ignores rounds in which either thread was preempted;
	 * each round is two sleeps and two wakes. */
	qsort(rounds, ROUNDS, sizeof(rounds[0]), compare_ns);
	cost = rounds[ROUNDS / 2] / 2;
	if (cost < SPIN_MIN_NS)
		cost = SPIN_MIN_NS;
	if (cost > SPIN_MAX_NS)
		cost = SPIN_MAX_NS;
	adaptive_spin_ns = (uint64_t)cost;
}

uint64_t apq_adaptive_spin_ns(void)
{
	pthread_once(&adaptive_once, calibrate);
	return adaptive_spin_ns;
}
