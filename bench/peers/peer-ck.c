/* SPDX-License-Identifier: MIT */
/*
 * peer-ck.c - ConcurrencyKit's ck_ring, single producer and single consumer.
 *
 * Two layouts, chosen by max_pkt at open():
 *
 * Inline (max_pkt <= sizeof(void *): the single-8 and burst32-8 runs)
 *   The ring entry itself carries the packet's bytes, as DPDK and ck users
 *   pass small values, and as bench/standalone/ck-ring.c does: no slot
 *   table, no pointer to chase, one 8-byte entry per packet.  The lengths go
 *   in a byte table in lockstep with the ring (lens[p mod R]), filled with
 *   max_pkt at open and written only where a packet's length differs from
 *   what the table holds: in a stream of one size its lines are only ever
 *   read, so they stay in both CPUs' caches instead of moving with every
 *   packet.
 *
 * Slot (larger packets)
 *   R slots of struct peer_slot in lockstep with the ring: the entry at
 *   position p points at slot p mod R.
 *
 * Ring
 *   A ck_ring of R pointer entries, R a power of two with R - 1 >= the
 *   packets asked for (ck keeps one entry free).
 *
 * Producer
 *   ck_ring_enqueue_reserve_spsc() hands out the entry at position p only
 *   while the ring has room (p - c_head <= R - 2).  Only then do we write
 *   lens[p mod R] or slot p mod R (when full, that is the one the consumer
 *   may still be reading), then the entry, and
 *   ck_ring_enqueue_commit_spsc() publishes them: its store fence orders
 *   our writes before the new p_tail.
 *
 * Consumer
 *   ck_ring_dequeue_spsc() fetches the entry and frees its position at
 *   once; we read the length and copy the packet out before the next
 *   dequeue.  The table entry and the slot stay ours until then: the
 *   producer can reserve positions up to c_head + R - 2, and none of them
 *   maps to the one we read (position c_head - 1).  That is the guarantee ck
 *   gives its own element copy in dequeue (copy, store fence, c_head),
 *   stretched to the next dequeue's fence.
 *
 * Copies: len bytes in, len bytes out; inline, fixed 8-byte loads and
 * stores for full-size packets (no memcpy call).
 * Waits: both sides busy-poll; ck_ring has no way to sleep.
 * Bursts: ck_ring has no burst calls for SPSC; send and recv loop.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <ck_ring.h>

#include "peers.h"

/* The largest packet the ring's entries carry themselves. */
#define CKQ_INLINE_MAX	sizeof(void *)

struct ckq {
	struct ck_ring ring;	/* ck puts c_head and p_tail on separate lines */
	struct ck_ring_buffer *entries;
	unsigned char *lens;	/* inline: R lengths; NULL for slots */
	unsigned char *slots;	/* slot: R slots; NULL inline */
	size_t stride;
	size_t max_pkt;
	unsigned int mask;	/* R - 1 */
	int ended;		/* E1/E1' in peers.h */

	/* Producer-owned. */
	_Alignas(PEER_CACHELINE) unsigned int p_pos;	/* == ring.p_tail */
	uint64_t sent;

	/* Consumer-owned. */
	_Alignas(PEER_CACHELINE) unsigned int c_pos;	/* == ring.c_head */
	uint64_t received;
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
	free(q->lens);
	free(q->slots);
	free(q);
}

static int ckq_open(void **out, const struct bench_variant *v,
		    size_t ring_bytes, size_t max_pkt)
{
	struct ckq *q;
	size_t n;
	uint32_t r_entries;
	void *table;
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
	q->mask = r_entries - 1;
	q->entries = peer_zalloc(r_entries * sizeof(*q->entries));
	if (max_pkt <= CKQ_INLINE_MAX) {
		table = q->lens = peer_zalloc(r_entries);
		if (q->lens != NULL)
			memset(q->lens, (int)max_pkt, r_entries);
	} else {
		q->stride = peer_stride(sizeof(struct peer_slot), max_pkt);
		table = q->slots = peer_zalloc(r_entries * q->stride);
	}
	if (q->entries == NULL || table == NULL) {
		ckq_close(q);
		return -ENOMEM;
	}
	ck_ring_init(&q->ring, r_entries);
	*out = q;
	return 0;
}

/* The entry for pkt at the producer's position. */
static void *ckq_pack(struct ckq *q, const struct iovec *pkt)
{
	unsigned char *len = &q->lens[q->p_pos & q->mask];
	void *e = NULL;

	if (pkt->iov_len == CKQ_INLINE_MAX)
		memcpy(&e, pkt->iov_base, CKQ_INLINE_MAX);
	else
		memcpy(&e, pkt->iov_base, pkt->iov_len);
	/* Read-mostly: see Inline above. */
	if (*len != pkt->iov_len)
		*len = (unsigned char)pkt->iov_len;
	return e;
}

static void *ckq_fill(struct ckq *q, const struct iovec *pkt)
{
	struct peer_slot *slot;

	slot = (struct peer_slot *)(q->slots +
				    (q->p_pos & q->mask) * q->stride);
	slot->len = (uint32_t)pkt->iov_len;
	memcpy(slot->data, pkt->iov_base, pkt->iov_len);
	return slot;
}

/* Copy the packet of entry e, at the consumer's position, into buf.
 * @return 0 or -EMSGSIZE. */
static int ckq_unpack(const struct ckq *q, void *e, struct iovec *buf)
{
	size_t len = q->lens[q->c_pos & q->mask];

	if (len > buf->iov_len)
		return -EMSGSIZE;
	if (len == CKQ_INLINE_MAX)
		memcpy(buf->iov_base, &e, CKQ_INLINE_MAX);
	else
		memcpy(buf->iov_base, &e, len);
	buf->iov_len = len;
	return 0;
}

static int ckq_copy_out(const void *e, struct iovec *buf)
{
	const struct peer_slot *slot = e;

	if (slot->len > buf->iov_len)
		return -EMSGSIZE;
	memcpy(buf->iov_base, slot->data, slot->len);
	buf->iov_len = slot->len;
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

		entry = ck_ring_enqueue_reserve_spsc(&q->ring, q->entries);
		if (entry == NULL) {	/* full */
			if (i > 0)
				break;
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		*entry = q->lens != NULL ? ckq_pack(q, &pkts[i])
					 : ckq_fill(q, &pkts[i]);
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
		void *e;

		if (!ck_ring_dequeue_spsc(&q->ring, q->entries, &e)) {
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
		r = q->lens != NULL ? ckq_unpack(q, e, &bufs[got])
				    : ckq_copy_out(e, &bufs[got]);
		q->c_pos++;
		if (r < 0)
			return r;
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
