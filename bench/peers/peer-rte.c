/* SPDX-License-Identifier: MIT */
/*
 * peer-rte.c - DPDK's rte_ring, single producer and single consumer, without
 * the EAL.
 *
 * What goes through the ring
 *   rte_ring's entries are 8-byte values (rte_ring_sp_enqueue() is
 *   rte_ring_sp_enqueue_elem() with esize sizeof(void *)), so:
 *   - inline, for max_pkt <= sizeof(void *) (the single-8 and burst32-8
 *     runs): the entry carries the packet's bytes, as
 *     bench/standalone/rte-ring.c does;
 *   - slot, for larger packets: the entry points at a slot the adapter
 *     owns, as DPDK applications move mbufs.  Not the _elem calls with
 *     esize max_pkt: they copy whole elements, 32 bits at a time, from a
 *     contiguous table, so a packet would be staged into {len,
 *     bytes[max_pkt]} first and copied whole twice more; a slot takes only
 *     len bytes in and out.
 *
 * Layout
 *   An rte_ring initialised with rte_ring_init() in 64-byte-aligned memory
 *   we allocate, RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ: it holds
 *   exactly `cap` entries, cap being the packets asked for.  S = cap +
 *   RTE_Q_CHUNK places beside it, each side going through them in order,
 *   wrapping at S: inline, a byte table of lengths, filled with max_pkt at
 *   open and written only where a packet's length differs from what it
 *   holds (in a stream of one size its lines are only ever read, so they
 *   stay in both CPUs' caches instead of moving with the packets); slot, S
 *   slots of struct peer_slot.
 *
 * Producer
 *   It writes a place only while the ring has room for its entry: `room` is
 *   a lower bound of the free entries (the last free count the ring
 *   reported, less what we enqueued since; only the consumer raises it),
 *   refreshed from rte_ring_free_count() when it reaches 0.  Then the
 *   enqueue's store barrier orders the place's writes before prod.tail.
 *
 * Consumer
 *   It dequeues at most RTE_Q_CHUNK entries at a time and reads their
 *   places before the next dequeue; a dequeue frees its entries at once, so
 *   up to RTE_Q_CHUNK dequeued places may still be being read.  The
 *   producer writes entry p only when p < cons.tail + cap, and every place
 *   still being read belongs to an entry >= cons.tail - RTE_Q_CHUNK: they
 *   are fewer than S = cap + RTE_Q_CHUNK entries apart, so never the same
 *   place.  The place reads are ordered before the next dequeue's cons.tail
 *   store as rte_ring orders its own element reads (a load before a later
 *   store: x86 keeps that order; the C11 build of rte_ring stores cons.tail
 *   with release).  The producer's free-count read comes before its writes
 *   by a control dependency, which no CPU breaks.
 *
 * Variants
 *   busy-poll        rte_ring_sp_enqueue() / rte_ring_sc_dequeue(), one
 *                    packet per call, looped over the harness's batch.
 *   busy-poll-burst  rte_ring_sp_enqueue_burst() /
 *                    rte_ring_sc_dequeue_burst(): a batch in one call each.
 *
 * Copies: len bytes in, len bytes out; inline, fixed 8-byte loads and
 * stores for full-size packets (no memcpy call).
 * Waits: both sides busy-poll; rte_ring has no way to sleep.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <rte_ring.h>

#include "peers.h"

/* The most entries a burst enqueues or dequeues in one call. */
#define RTE_Q_CHUNK	32

/* The largest packet the ring's entries carry themselves. */
#define RTE_Q_INLINE_MAX	sizeof(void *)

struct rteq {
	struct rte_ring *ring;
	unsigned char *lens;	/* inline: nslots lengths; NULL for slots */
	unsigned char *slots;	/* slot: nslots slots; NULL inline */
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
	_Alignas(PEER_CACHELINE) uint32_t next_read;
	uint64_t received;
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
	free(q->lens);
	free(q->slots);
	free(q);
}

static int rteq_open(void **out, const struct bench_variant *v,
		     size_t ring_bytes, size_t max_pkt)
{
	struct rteq *q;
	ssize_t mem;
	size_t n;
	void *table;
	int r;

	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;

	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->burst = v != NULL && v->arg != NULL && *(const bool *)v->arg;
	q->max_pkt = max_pkt;
	q->nslots = (uint32_t)n + RTE_Q_CHUNK;

	/* RING_F_EXACT_SZ: n usable entries in a power-of-two table. */
	mem = rte_ring_get_memsize(peer_pow2((uint32_t)n + 1));
	if (mem < 0) {
		rteq_close(q);
		return (int)mem;
	}
	q->ring = peer_zalloc((size_t)mem);
	if (max_pkt <= RTE_Q_INLINE_MAX) {
		table = q->lens = peer_zalloc(q->nslots);
		if (q->lens != NULL)
			memset(q->lens, (int)max_pkt, q->nslots);
	} else {
		q->stride = peer_stride(sizeof(struct peer_slot), max_pkt);
		table = q->slots = peer_zalloc((size_t)q->nslots * q->stride);
	}
	if (q->ring == NULL || table == NULL) {
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

/* The entry for pkt, at the producer's next place: its bytes (inline) or
 * its slot, filled. */
static void *rteq_fill(struct rteq *q, const struct iovec *pkt)
{
	uint32_t at = q->next_slot;
	struct peer_slot *slot;
	void *e = NULL;

	q->next_slot = at + 1 == q->nslots ? 0 : at + 1;
	if (q->lens != NULL) {
		if (pkt->iov_len == RTE_Q_INLINE_MAX)
			memcpy(&e, pkt->iov_base, RTE_Q_INLINE_MAX);
		else
			memcpy(&e, pkt->iov_base, pkt->iov_len);
		/* Read-mostly: see Layout above. */
		if (q->lens[at] != pkt->iov_len)
			q->lens[at] = (unsigned char)pkt->iov_len;
		return e;
	}
	slot = (struct peer_slot *)(q->slots + (size_t)at * q->stride);
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
		void *objs[RTE_Q_CHUNK];
		unsigned int k, j;

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
		k = q->burst ? n - i : 1;
		if (k > q->room)
			k = q->room;
		if (k > RTE_Q_CHUNK)
			k = RTE_Q_CHUNK;
		for (j = 0; j < k; j++)
			objs[j] = rteq_fill(q, &pkts[i + j]);
		/* Cannot fail: only this thread adds, and k <= room.  A burst
		 * brings the free count back fresh. */
		if (!q->burst) {
			if (rte_ring_sp_enqueue(q->ring, objs[0]) != 0)
				return -EIO;
			q->room--;
		} else if (rte_ring_sp_enqueue_burst(q->ring, objs, k,
						     &q->room) != k) {
			return -EIO;
		}
		i += k;
	}
	q->sent += i;
	return (int)i;
}

/* Copy the packet of dequeued entry e out, from the consumer's next
 * place.  @return 0 or -EMSGSIZE. */
static int rteq_copy_out(struct rteq *q, void *e, struct iovec *buf)
{
	const struct peer_slot *slot = e;
	uint32_t at;
	size_t len;

	if (q->lens == NULL) {
		if (slot->len > buf->iov_len)
			return -EMSGSIZE;
		memcpy(buf->iov_base, slot->data, slot->len);
		buf->iov_len = slot->len;
		return 0;
	}
	at = q->next_read;
	q->next_read = at + 1 == q->nslots ? 0 : at + 1;
	len = q->lens[at];
	if (len > buf->iov_len)
		return -EMSGSIZE;
	if (len == RTE_Q_INLINE_MAX)
		memcpy(buf->iov_base, &e, RTE_Q_INLINE_MAX);
	else
		memcpy(buf->iov_base, &e, len);
	buf->iov_len = len;
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
			r = rteq_copy_out(q, objs[j], &bufs[got + j]);
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
