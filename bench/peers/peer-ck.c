/* SPDX-License-Identifier: MIT */
/*
 * peer-ck.c - ConcurrencyKit's ck_ring, single producer and single consumer.
 *
 * Layout
 *   A ck_ring of R pointer entries (R a power of two with R - 1 >= the
 *   packets asked for; ck keeps one entry free) and R slots of struct
 *   peer_slot in lockstep with the ring: the entry at position p points at
 *   slot p mod R.
 *
 * Producer
 *   ck_ring_enqueue_reserve_spsc() hands out the entry at position p only
 *   while the ring has room (p - c_head <= R - 2).  We copy the packet into
 *   slot p mod R, store the slot's address in the entry, and
 *   ck_ring_enqueue_commit_spsc() publishes both: its store fence orders our
 *   slot writes before the new p_tail.
 *
 * Consumer
 *   ck_ring_dequeue_spsc() fetches the pointer and frees its position at
 *   once; we copy the packet out before the next dequeue.  The slot stays
 *   ours until then: the producer can reserve positions up to c_head + R - 2,
 *   and none of their slots is the one we read (position c_head - 1).  That
 *   is the guarantee ck gives its own element copy in dequeue (copy, store
 *   fence, c_head), stretched to the next dequeue's fence.
 *
 * Copies: len bytes in, len bytes out; an 8-byte pointer through the ring.
 * Waits: both sides busy-poll; ck_ring has no way to sleep.
 * Bursts: ck_ring has no burst calls for SPSC; send and recv loop.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ck_ring.h>

#include "peers.h"

struct ckq {
	struct ck_ring ring;	/* ck puts c_head and p_tail on separate lines */
	struct ck_ring_buffer *entries;
	unsigned char *slots;
	size_t stride;
	size_t max_pkt;
	unsigned int mask;	/* R - 1 */
	int ended;		/* E1/E1' in peers.h */

	/* Producer-owned. */
	_Alignas(PEER_CACHELINE) unsigned int p_pos;	/* == ring.p_tail */
	uint64_t sent;

	/* Consumer-owned. */
	_Alignas(PEER_CACHELINE) uint64_t received;
};

static const struct bench_variant ckq_variants[] = {
	{ "busy-poll", NULL, BENCH_WAIT_BUSY_POLLS },
};

static void ckq_close(void *qv)
{
	struct ckq *q = qv;

	if (q == NULL)
		return;
	free(q->entries);
	free(q->slots);
	free(q);
}

static int ckq_open(void **out, const struct bench_variant *v,
		    size_t ring_bytes, size_t max_pkt)
{
	struct ckq *q;
	size_t n;
	uint32_t r_entries;
	int r;

	(void)v;
	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;
	r_entries = peer_pow2((uint32_t)n + 1);

	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->max_pkt = max_pkt;
	q->stride = peer_stride(sizeof(struct peer_slot), max_pkt);
	q->mask = r_entries - 1;
	q->entries = peer_zalloc(r_entries * sizeof(*q->entries));
	q->slots = peer_zalloc(r_entries * q->stride);
	if (q->entries == NULL || q->slots == NULL) {
		ckq_close(q);
		return -ENOMEM;
	}
	ck_ring_init(&q->ring, r_entries);
	*out = q;
	return 0;
}

static int ckq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct ckq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	unsigned int i;
	int r;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->max_pkt)
			return -EMSGSIZE;

	for (i = 0; i < n;) {
		void **entry;
		struct peer_slot *slot;

		entry = ck_ring_enqueue_reserve_spsc(&q->ring, q->entries);
		if (entry == NULL) {	/* full */
			if (i > 0)
				break;
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		slot = (struct peer_slot *)(q->slots +
					    (q->p_pos & q->mask) * q->stride);
		slot->len = (uint32_t)pkts[i].iov_len;
		memcpy(slot->data, pkts[i].iov_base, pkts[i].iov_len);
		*entry = slot;
		ck_ring_enqueue_commit_spsc(&q->ring);
		q->p_pos++;
		i++;
	}
	q->sent += i;
	return (int)i;
}

static int ckq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct ckq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	bool last_look = false;
	unsigned int got = 0;
	int r;

	if (n == 0)
		return -EINVAL;
	while (got < n) {
		const struct peer_slot *slot;
		void *p;

		if (!ck_ring_dequeue_spsc(&q->ring, q->entries, &p)) {
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
		slot = p;
		if (slot->len > bufs[got].iov_len)
			return -EMSGSIZE;
		memcpy(bufs[got].iov_base, slot->data, slot->len);
		bufs[got].iov_len = slot->len;
		got++;
	}
	q->received += got;
	return (int)got;
}

static void ckq_producer_end(void *qv, struct bench_counters *out)
{
	struct ckq *q = qv;

	peer_end_set(&q->ended);
	memset(out, 0, sizeof(*out));
	out->packets = q->sent;
}

static void ckq_consumer_end(void *qv, struct bench_counters *out)
{
	struct ckq *q = qv;

	memset(out, 0, sizeof(*out));
	out->packets = q->received;
}

const struct bench_impl bench_peer_ck_impl = {
	.name = "ck_ring",
	.variants = ckq_variants,
	.n_variants = sizeof(ckq_variants) / sizeof(ckq_variants[0]),
	.counts_wakeups = false,
	.open = ckq_open,
	.send = ckq_send,
	.recv = ckq_recv,
	.producer_end = ckq_producer_end,
	.consumer_end = ckq_consumer_end,
	.close = ckq_close,
};
