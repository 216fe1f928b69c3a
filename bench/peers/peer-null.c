/* SPDX-License-Identifier: MIT */
/*
 * peer-null.c - the null queue: send and receive only hand the packet over,
 * so that its row measures the harness itself.
 *
 * Layout
 *   An array of slots, each a one-packet handoff of its own: a `full` flag,
 *   the length, the bytes.  The producer fills slots in order and the
 *   consumer empties them in order, wrapping at the end.  There is no shared
 *   index: only the slots travel between the threads, so a stream moves no
 *   cache line but the packets' own.
 *
 * Orderings
 *   N1  producer: release store of full = 1 after writing the length and
 *       bytes; pairs with N1', the consumer's acquire load that finds it 1:
 *       the consumer copies out what the producer wrote.
 *   N2  consumer: release store of full = 0 after copying out; pairs with
 *       N2', the producer's acquire load that finds it 0: the producer
 *       overwrites the slot only after the copy.
 *   End of stream: E1/E1' in peers.h; the consumer looks at its next slot
 *   once more after seeing the flag.
 *
 * Copies: len bytes in, len bytes out.  Waits: both sides busy-poll.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "peers.h"

struct null_slot {
	_Atomic uint32_t full;
	uint32_t len;
	unsigned char data[];
};

struct nullq {
	unsigned char *slots;
	size_t stride;
	size_t max_pkt;
	uint32_t n_slots;
	int ended;		/* E1/E1' in peers.h */

	/* Producer-owned. */
	_Alignas(PEER_CACHELINE) uint32_t p_pos;
	uint64_t sent;

	/* Consumer-owned. */
	_Alignas(PEER_CACHELINE) uint32_t c_pos;
	uint64_t received;
};

static const struct bench_variant nullq_variants[] = {
	{ "handover", NULL, BENCH_WAIT_BUSY_POLLS },
};

static void nullq_close(void *qv)
{
	struct nullq *q = qv;

	if (q == NULL)
		return;
	free(q->slots);
	free(q);
}

static int nullq_open(void **out, const struct bench_variant *v,
		      size_t ring_bytes, size_t max_pkt)
{
	struct nullq *q;
	size_t n;
	int r;

	(void)v;
	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;
	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->max_pkt = max_pkt;
	/* Slots packed 8-byte aligned, several to a line for small packets,
	 * as the bytes of a stream would be. */
	q->stride = (sizeof(struct null_slot) + max_pkt + 7) & ~(size_t)7;
	q->n_slots = (uint32_t)n;
	q->slots = peer_zalloc(n * q->stride);
	if (q->slots == NULL) {
		nullq_close(q);
		return -ENOMEM;
	}
	*out = q;
	return 0;
}

static struct null_slot *nullq_slot(const struct nullq *q, uint32_t pos)
{
	return (struct null_slot *)(q->slots + (size_t)pos * q->stride);
}

static int nullq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct nullq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	unsigned int i;
	int r;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->max_pkt)
			return -EMSGSIZE;
	for (i = 0; i < n;) {
		struct null_slot *s = nullq_slot(q, q->p_pos);

		if (atomic_load_explicit(&s->full,
					 memory_order_acquire)) {	/* N2' */
			if (i > 0)
				break;
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		s->len = (uint32_t)pkts[i].iov_len;
		memcpy(s->data, pkts[i].iov_base, pkts[i].iov_len);
		atomic_store_explicit(&s->full, 1, memory_order_release); /* N1 */
		if (++q->p_pos == q->n_slots)
			q->p_pos = 0;
		i++;
	}
	q->sent += i;
	return (int)i;
}

static int nullq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct nullq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	bool last_look = false;
	unsigned int got = 0;
	int r;

	if (n == 0)
		return -EINVAL;
	while (got < n) {
		struct null_slot *s = nullq_slot(q, q->c_pos);

		if (!atomic_load_explicit(&s->full,
					  memory_order_acquire)) {	/* N1' */
			if (got > 0 || last_look)
				break;
			if (peer_end_seen(&q->ended)) {
				last_look = true;
				continue;
			}
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		if (s->len > bufs[got].iov_len)
			return -EMSGSIZE;
		memcpy(bufs[got].iov_base, s->data, s->len);
		bufs[got].iov_len = s->len;
		atomic_store_explicit(&s->full, 0, memory_order_release); /* N2 */
		if (++q->c_pos == q->n_slots)
			q->c_pos = 0;
		got++;
	}
	q->received += got;
	return (int)got;
}

static void nullq_producer_end(void *qv, struct bench_counters *out)
{
	struct nullq *q = qv;

	peer_end_set(&q->ended);
	*out = (struct bench_counters){ .packets = q->sent };
}

static void nullq_consumer_end(void *qv, struct bench_counters *out)
{
	struct nullq *q = qv;

	*out = (struct bench_counters){ .packets = q->received };
}

const struct bench_impl bench_peer_null_impl = {
	.name = "null",
	.variants = nullq_variants,
	.n_variants = sizeof(nullq_variants) / sizeof(nullq_variants[0]),
	.counts_wakeups = false,
	.open = nullq_open,
	.send = nullq_send,
	.recv = nullq_recv,
	.producer_end = nullq_producer_end,
	.consumer_end = nullq_consumer_end,
	.close = nullq_close,
};
