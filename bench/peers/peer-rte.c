/* SPDX-License-Identifier: MIT */
/*
 * peer-rte.c - DPDK's rte_ring, single producer and single consumer, without
 * the EAL.
 *
 * Why pointers, not rte_ring's _elem calls
 *   The _elem calls copy whole elements of a fixed esize (a multiple of 4),
 *   32 bits at a time, and take them from a contiguous table: a packet would
 *   be staged into {len, bytes[max_pkt]} first and copied whole twice more.
 *   DPDK applications move packets as pointers (mbufs) through rte_rings;
 *   so do we, into a table of slots the adapter owns, and copy only len
 *   bytes in and out.
 *
 * Layout
 *   An rte_ring initialised with rte_ring_init() in 64-byte-aligned memory
 *   we allocate, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ: it holds
 *   exactly `cap` pointers, cap being the packets asked for.  S = cap +
 *   RTE_Q_CHUNK slots of struct peer_slot; the producer fills them in
 *   order, wrapping at S.
 *
 * Producer
 *   It writes a slot only while the ring has room for it: `room` is a lower
 *   bound of the free entries (the last free count the ring reported, less
 *   what we enqueued since; only the consumer raises it), refreshed from
 *   rte_ring_free_count() when it reaches 0.  Then the enqueue's store
 *   barrier orders the slot writes before prod.tail.
 *
 * Consumer
 *   It dequeues at most RTE_Q_CHUNK pointers at a time and copies their
 *   packets out before the next dequeue; a dequeue frees its entries at
 *   once, so up to RTE_Q_CHUNK dequeued slots may still be being read.  The
 *   producer writes entry p only when p < cons.tail + cap, and every slot
 *   still being read belongs to an entry >= cons.tail - RTE_Q_CHUNK: they
 *   are fewer than S = cap + RTE_Q_CHUNK entries apart, so never the same
 *   slot.  The slot reads are ordered before the next dequeue's cons.tail
 *   store as rte_ring orders its own element reads (a load before a later
 *   store: x86 keeps that order; the C11 build of rte_ring stores cons.tail
 *   with release).  The producer's free-count read comes before its slot
 *   writes by a control dependency, which no CPU breaks.
 *
 * Variants
 *   busy-poll        rte_ring_sp_enqueue() / rte_ring_sc_dequeue(), one
 *                    packet per call, looped over the harness's batch.
 *   busy-poll-burst  rte_ring_sp_enqueue_burst() /
 *                    rte_ring_sc_dequeue_burst(): a batch in one call each.
 *
 * Copies: len bytes in, len bytes out; 8-byte pointers through the ring.
 * Waits: both sides busy-poll; rte_ring has no way to sleep.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ring.h>

#include "peers.h"

/* The most pointers a burst enqueues or dequeues in one call. */
#define RTE_Q_CHUNK	32

struct rteq {
	struct rte_ring *ring;
	unsigned char *slots;
	size_t stride;
	size_t max_pkt;
	uint32_t nslots;	/* cap + RTE_Q_CHUNK */
	bool burst;
	int ended;		/* E1/E1' in peers.h */

	/* Producer-owned. */
	_Alignas(PEER_CACHELINE) uint32_t next_slot;
	unsigned int room;	/* free entries, a lower bound */
	uint64_t sent;

	/* Consumer-owned. */
	_Alignas(PEER_CACHELINE) uint64_t received;
};

static const bool rteq_single = false, rteq_burst = true;

static const struct bench_variant rteq_variants[] = {
	{ "busy-poll", &rteq_single, BENCH_WAIT_BUSY_POLLS },
	{ "busy-poll-burst", &rteq_burst, BENCH_WAIT_BUSY_POLLS },
};

static void rteq_close(void *qv)
{
	struct rteq *q = qv;

	if (q == NULL)
		return;
	free(q->ring);
	free(q->slots);
	free(q);
}

static int rteq_open(void **out, const struct bench_variant *v,
		     size_t ring_bytes, size_t max_pkt)
{
	struct rteq *q;
	ssize_t mem;
	size_t n;
	int r;

	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;

	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->burst = v != NULL && v->arg != NULL && *(const bool *)v->arg;
	q->max_pkt = max_pkt;
	q->stride = peer_stride(sizeof(struct peer_slot), max_pkt);
	q->nslots = (uint32_t)n + RTE_Q_CHUNK;

	/* RING_F_EXACT_SZ: n usable entries in a power-of-two table. */
	mem = rte_ring_get_memsize(peer_pow2((uint32_t)n + 1));
	if (mem < 0) {
		rteq_close(q);
		return (int)mem;
	}
	q->ring = peer_zalloc((size_t)mem);
	q->slots = peer_zalloc((size_t)q->nslots * q->stride);
	if (q->ring == NULL || q->slots == NULL) {
		rteq_close(q);
		return -ENOMEM;
	}
	r = rte_ring_init(q->ring, "apq-bench", (unsigned int)n,
			  RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (r < 0) {
		rteq_close(q);
		return r;
	}
	if (rte_ring_get_capacity(q->ring) != n) {
		rteq_close(q);
		return -EINVAL;
	}
	q->room = (unsigned int)n;
	*out = q;
	return 0;
}

/* Copy pkt into the next slot.  @return the slot. */
static void *rteq_fill(struct rteq *q, const struct iovec *pkt)
{
	struct peer_slot *slot;

	slot = (struct peer_slot *)(q->slots +
				    (size_t)q->next_slot * q->stride);
	if (++q->next_slot == q->nslots)
		q->next_slot = 0;
	slot->len = (uint32_t)pkt->iov_len;
	memcpy(slot->data, pkt->iov_base, pkt->iov_len);
	return slot;
}

static int rteq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct rteq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	unsigned int i;
	int r;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->max_pkt)
			return -EMSGSIZE;

	for (i = 0; i < n;) {
		if (q->room == 0)
			q->room = rte_ring_free_count(q->ring);
		if (q->room == 0) {	/* full */
			if (i > 0)
				break;
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		if (!q->burst) {
			/* Cannot fail: only this thread adds, and room > 0. */
			if (rte_ring_sp_enqueue(q->ring,
						rteq_fill(q, &pkts[i])) != 0)
				return -EIO;
			q->room--;
			i++;
		} else {
			void *objs[RTE_Q_CHUNK];
			unsigned int k, j;

			k = n - i;
			if (k > q->room)
				k = q->room;
			if (k > RTE_Q_CHUNK)
				k = RTE_Q_CHUNK;
			for (j = 0; j < k; j++)
				objs[j] = rteq_fill(q, &pkts[i + j]);
			/* All k go (room); the free count comes back fresh. */
			if (rte_ring_sp_enqueue_burst(q->ring, objs, k,
						      &q->room) != k)
				return -EIO;
			i += k;
		}
	}
	q->sent += i;
	return (int)i;
}

/* Copy one dequeued packet out.  @return 0 or -EMSGSIZE. */
static int rteq_copy_out(const void *p, struct iovec *buf)
{
	const struct peer_slot *slot = p;

	if (slot->len > buf->iov_len)
		return -EMSGSIZE;
	memcpy(buf->iov_base, slot->data, slot->len);
	buf->iov_len = slot->len;
	return 0;
}

static int rteq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct rteq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	bool last_look = false;
	unsigned int got = 0;
	int r;

	if (n == 0)
		return -EINVAL;
	while (got < n) {
		void *objs[RTE_Q_CHUNK];
		unsigned int k, j;

		if (!q->burst) {
			k = rte_ring_sc_dequeue(q->ring, &objs[0]) == 0;
		} else {
			k = n - got;
			if (k > RTE_Q_CHUNK)
				k = RTE_Q_CHUNK;
			k = rte_ring_sc_dequeue_burst(q->ring, objs, k, NULL);
		}
		if (k == 0) {	/* empty */
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
		for (j = 0; j < k; j++) {
			r = rteq_copy_out(objs[j], &bufs[got + j]);
			if (r < 0)
				return r;
		}
		got += k;
	}
	q->received += got;
	return (int)got;
}

static void rteq_producer_end(void *qv, struct bench_counters *out)
{
	struct rteq *q = qv;

	peer_end_set(&q->ended);
	memset(out, 0, sizeof(*out));
	out->packets = q->sent;
}

static void rteq_consumer_end(void *qv, struct bench_counters *out)
{
	struct rteq *q = qv;

	memset(out, 0, sizeof(*out));
	out->packets = q->received;
}

const struct bench_impl bench_peer_rte_impl = {
	.name = "rte_ring",
	.variants = rteq_variants,
	.n_variants = sizeof(rteq_variants) / sizeof(rteq_variants[0]),
	.counts_wakeups = false,
	.open = rteq_open,
	.send = rteq_send,
	.recv = rteq_recv,
	.producer_end = rteq_producer_end,
	.consumer_end = rteq_consumer_end,
	.close = rteq_close,
};
