/* SPDX-License-Identifier: MIT */
/*
 * peer-bare.c - bare-ring (bare-ring.h) between two threads: the ceiling.
 *
 * A minimal busy-polling SPSC ring, no wakeups, no validation: what any
 * queue in the table costs beyond it is the queue's own doing, and what the
 * harness costs on top of it shows in this row against
 * ../standalone/bare-ring.c.
 *
 * Layout: one heap block, the ring of the smallest power of two >= the
 * packets asked for (peer_packets).  Bursts: one index store per call.
 * Copies: len bytes in, len bytes out.  Waits: both sides busy-poll.
 */
#include <errno.h>
#include <stdlib.h>

#include "bare-ring.h"
#include "peers.h"

struct bareq {
	struct bare_ring *ring;
	/* Each side's private view, on lines of its own. */
	_Alignas(PEER_CACHELINE) struct bare_end prod;
	uint64_t sent;
	_Alignas(PEER_CACHELINE) struct bare_end cons;
	uint64_t received;
};

static const struct bench_variant bareq_variants[] = {
	{ "busy-poll", NULL, BENCH_WAIT_BUSY_POLLS },
};

static void bareq_close(void *qv)
{
	struct bareq *q = qv;

	if (q == NULL)
		return;
	free(q->ring);
	free(q);
}

static int bareq_open(void **out, const struct bench_variant *v,
		      size_t ring_bytes, size_t max_pkt)
{
	struct bareq *q;
	uint32_t slots;
	size_t n;
	int r;

	(void)v;
	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;
	slots = peer_pow2((uint32_t)n);
	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->ring = peer_zalloc(bare_ring_bytes(slots, max_pkt));
	if (q->ring == NULL) {
		bareq_close(q);
		return -ENOMEM;
	}
	bare_ring_init(q->ring, slots, max_pkt);
	bare_end_init(&q->prod, q->ring);
	bare_end_init(&q->cons, q->ring);
	*out = q;
	return 0;
}

static int bareq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct bareq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	unsigned int i, sent;
	int r;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->ring->max_pkt)
			return -EMSGSIZE;
	while ((sent = bare_send(&q->prod, pkts, n)) == 0) {
		r = peer_spin(&spin);
		if (r < 0)
			return r;
	}
	q->sent += sent;
	return (int)sent;
}

static int bareq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct bareq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	int got, r;

	if (n == 0)
		return -EINVAL;
	for (;;) {
		got = bare_recv(&q->cons, bufs, n);
		if (got != 0)
			break;
		if (bare_stream_ended(&q->cons)) {
			/* Everything sent before the end is visible now. */
			got = bare_recv(&q->cons, bufs, n);
			break;
		}
		r = peer_spin(&spin);
		if (r < 0)
			return r;
	}
	if (got > 0)
		q->received += (unsigned int)got;
	return got;
}

static void bareq_producer_end(void *qv, struct bench_counters *out)
{
	struct bareq *q = qv;

	bare_end_stream(&q->prod);
	*out = (struct bench_counters){ .packets = q->sent };
}

static void bareq_consumer_end(void *qv, struct bench_counters *out)
{
	struct bareq *q = qv;

	*out = (struct bench_counters){ .packets = q->received };
}

const struct bench_impl bench_peer_bare_impl = {
	.name = "bare-ring",
	.variants = bareq_variants,
	.n_variants = sizeof(bareq_variants) / sizeof(bareq_variants[0]),
	.counts_wakeups = false,
	.open = bareq_open,
	.send = bareq_send,
	.recv = bareq_recv,
	.producer_end = bareq_producer_end,
	.consumer_end = bareq_consumer_end,
	.close = bareq_close,
};
