/* SPDX-License-Identifier: MIT */
/*
 * impl-apq.c - apq between two threads of one process: the adapter.
 *
 * One region in 64-byte aligned heap memory, one futex notifier for both
 * sides (one notifier per process is what the library asks for), producer
 * and consumer configured with the same policy.  A call with one packet goes
 * through apq_send()/apq_recv() themselves, what a one-packet-per-call user
 * runs; with more, through apq_send_burst()/apq_recv_burst(), which publish
 * the burst with one index store and one wakeup check.
 *
 * Variants are the wakeup policies: ADAPTIVE (the default), SPIN at four
 * budgets (0: sleep as soon as the ring is empty), ALWAYS_NOTIFY (the prior
 * art: wake on every publishing call, on both sides) and BUSY_POLL (never
 * sleep).  The wakeups reported are the library's own counters
 * (wakeups_sent), which the harness checks against the futex syscalls it
 * counts where it can.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apq/apq.h>

#include "bench.h"

struct apq_q {
	void *mem;
	size_t mem_bytes;
	struct apq_notifier *notifier;
	struct apq_producer *p;
	struct apq_consumer *c;
};

static const struct apq_config cfg_adaptive = {
	.policy = APQ_POLICY_ADAPTIVE,
};
static const struct apq_config cfg_spin_0us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 0,
};
static const struct apq_config cfg_spin_1us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 1000,
};
static const struct apq_config cfg_spin_10us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 10000,
};
static const struct apq_config cfg_spin_100us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 100000,
};
static const struct apq_config cfg_always = {
	.policy = APQ_POLICY_ALWAYS_NOTIFY,
};
static const struct apq_config cfg_busy = {
	.policy = APQ_POLICY_BUSY_POLL,
};

static const struct bench_variant apq_variants[] = {
	{ "adaptive", &cfg_adaptive, BENCH_WAIT_SLEEPS },
	{ "spin-0us", &cfg_spin_0us, BENCH_WAIT_SLEEPS },
	{ "spin-1us", &cfg_spin_1us, BENCH_WAIT_SLEEPS },
	{ "spin-10us", &cfg_spin_10us, BENCH_WAIT_SLEEPS },
	{ "spin-100us", &cfg_spin_100us, BENCH_WAIT_SLEEPS },
	{ "always", &cfg_always, BENCH_WAIT_SLEEPS },
	{ "busy", &cfg_busy, BENCH_WAIT_BUSY_POLLS },
};

static void apq_q_close(void *arg)
{
	struct apq_q *q = arg;

	if (!q)
		return;
	apq_producer_detach(q->p);
	apq_consumer_detach(q->c);
	apq_notifier_free(q->notifier);
	free(q->mem);
	free(q);
}

/* The smallest valid ring of at least want bytes. */
static size_t ring_size(size_t want)
{
	size_t r = 4096;

	while (r < want && r < ((size_t)1 << 30))
		r <<= 1;
	return r;
}

static int apq_q_open(void **out, const struct bench_variant *v,
		      size_t ring_bytes, size_t max_pkt)
{
	const struct apq_config *cfg = v->arg;
	struct apq_q *q = calloc(1, sizeof(*q));
	size_t ring, bytes;
	int r;

	if (!q)
		return -ENOMEM;
	ring = ring_size(ring_bytes);
	/* Room for a few of the largest packets at least. */
	while (apq_packet_max(ring) < 4 * max_pkt)
		ring <<= 1;
	bytes = apq_region_size(ring);
	/* aligned_alloc wants a multiple of the alignment. */
	q->mem_bytes = (bytes + 63) & ~(size_t)63;
	q->mem = aligned_alloc(64, q->mem_bytes);
	if (!q->mem) {
		free(q);
		return -ENOMEM;
	}
	/* Touch every page now, not in the first timed packets. */
	memset(q->mem, 0, q->mem_bytes);
	r = apq_region_init(q->mem, q->mem_bytes, ring);
	if (!r)
		r = apq_notifier_futex(&q->notifier);
	if (!r)
		r = apq_producer_attach(&q->p, q->mem, q->mem_bytes,
					q->notifier, cfg);
	if (!r)
		r = apq_consumer_attach(&q->c, q->mem, q->mem_bytes,
					q->notifier, cfg);
	if (r) {
		apq_q_close(q);
		return r;
	}
	*out = q;
	return 0;
}

static int apq_q_send(void *arg, const struct iovec *pkts, unsigned int n)
{
	struct apq_q *q = arg;
	int r;

	if (n == 1) {
		r = apq_send(q->p, pkts[0].iov_base, pkts[0].iov_len,
			     BENCH_IO_TIMEOUT_NS);
		return r < 0 ? r : 1;
	}
	return apq_send_burst(q->p, pkts, n, BENCH_IO_TIMEOUT_NS);
}

static int apq_q_recv(void *arg, struct iovec *bufs, unsigned int n)
{
	struct apq_q *q = arg;
	ssize_t len;
	int r;

	if (n == 1) {
		len = apq_recv(q->c, bufs[0].iov_base, bufs[0].iov_len,
			       BENCH_IO_TIMEOUT_NS);
		if (len == -EPIPE)
			return 0;
		if (len < 0)
			return (int)len;
		bufs[0].iov_len = (size_t)len;
		return 1;
	}
	r = apq_recv_burst(q->c, bufs, n, BENCH_IO_TIMEOUT_NS);
	return r == -EPIPE ? 0 : r;
}

static void counters(const struct apq_stats *s, struct bench_counters *out)
{
	*out = (struct bench_counters){
		.packets = s->packets,
		.wakeups = s->wakeups_sent,
		.sleeps = s->sleeps,
		.rescues = s->rescues,
	};
}

static void apq_q_producer_end(void *arg, struct bench_counters *out)
{
	struct apq_q *q = arg;
	struct apq_stats s;

	apq_producer_stats(q->p, &s);
	/* The detach's own wakeup check is the end of the stream, not a
	 * packet's: it is left out of the count. */
	counters(&s, out);
	apq_producer_detach(q->p);
	q->p = NULL;
}

static void apq_q_consumer_end(void *arg, struct bench_counters *out)
{
	struct apq_q *q = arg;
	struct apq_stats s;

	apq_consumer_stats(q->c, &s);
	counters(&s, out);
	apq_consumer_detach(q->c);
	q->c = NULL;
}

const struct bench_impl bench_apq_impl = {
	.name = "apq",
	.variants = apq_variants,
	.n_variants = sizeof(apq_variants) / sizeof(apq_variants[0]),
	.counts_wakeups = true,
	.open = apq_q_open,
	.send = apq_q_send,
	.recv = apq_q_recv,
	.producer_end = apq_q_producer_end,
	.consumer_end = apq_q_consumer_end,
	.close = apq_q_close,
};
