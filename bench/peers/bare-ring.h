/* SPDX-License-Identifier: MIT */
/*
 * bare-ring.h - the least a busy-polling SPSC ring of packets can do: the
 * ceiling apq-bench holds the queues against.  No wakeups, no validation of
 * the shared memory, no end-of-stream protocol beyond a flag.  Used by
 * peer-bare.c (threads), ../xproc/xproc-bare.c (two processes over a
 * MAP_SHARED memfd) and ../standalone/bare-ring.c.
 *
 * Layout (one block, cache-line aligned, position independent):
 *   line 0   head: packets ever published (producer-written)
 *   line 1   tail: packets ever taken (consumer-written)
 *   line 2   the geometry and `ended` (written once, at the end)
 *   then     `slots` slots of `stride` bytes: a 32-bit length and the bytes
 * head and tail run free (64 bits never wrap); slot i holds packet
 * number p with p mod slots == i.  Each side keeps the other's index as it
 * last read it, and reads the shared one again only when that says full or
 * empty, so that in a steady stream the index lines move rarely.
 *
 * Orderings (C11 atomics):
 *   B1  producer: release store of head after writing the slots;
 *       pairs with B1', the consumer's acquire load of head: a consumer that
 *       sees head == p + 1 sees packet p's length and bytes.
 *   B2  consumer: release store of tail after copying the slots out;
 *       pairs with B2', the producer's acquire load of tail: a producer
 *       that sees tail == p + 1 reuses slot p only after the copy is done.
 *   E1  producer: release store of ended after its last B1;
 *       pairs with E1', the consumer's acquire load of ended, after which
 *       it loads head (B1') once more: it sees every packet sent.
 */
#ifndef APQ_BENCH_BARE_RING_H
#define APQ_BENCH_BARE_RING_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define BARE_LINE	64

struct bare_ring {
	_Alignas(BARE_LINE) _Atomic uint64_t head;
	_Alignas(BARE_LINE) _Atomic uint64_t tail;
	_Alignas(BARE_LINE) uint32_t slots;	/* a power of two */
	uint32_t stride;
	uint32_t max_pkt;
	_Atomic int ended;
};

struct bare_slot {
	uint32_t len;
	uint32_t spare;		/* keeps the bytes 8-byte aligned */
	unsigned char data[];
};

/* One side's view of a ring: private to the thread or process. */
struct bare_end {
	struct bare_ring *ring;
	unsigned char *slot0;
	uint64_t mine;		/* head (producer) or tail (consumer) */
	uint64_t theirs;	/* the other index, as last read */
	uint32_t mask, stride;
};

static inline size_t bare_stride(size_t max_pkt)
{
	return (sizeof(struct bare_slot) + max_pkt + 7) & ~(size_t)7;
}

/* Bytes a ring of `slots` slots (a power of two) for packets of up to
 * max_pkt bytes takes. */
static inline size_t bare_ring_bytes(uint32_t slots, size_t max_pkt)
{
	return sizeof(struct bare_ring) + (size_t)slots * bare_stride(max_pkt);
}

/* Lay out an empty ring in zeroed memory of bare_ring_bytes(). */
static inline void bare_ring_init(struct bare_ring *r, uint32_t slots,
				  size_t max_pkt)
{
	r->slots = slots;
	r->stride = (uint32_t)bare_stride(max_pkt);
	r->max_pkt = (uint32_t)max_pkt;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	atomic_init(&r->ended, 0);
}

/* Either side's view of r; the ring is empty, so theirs is 0 too. */
static inline void bare_end_init(struct bare_end *e, struct bare_ring *r)
{
	*e = (struct bare_end){
		.ring = r,
		.slot0 = (unsigned char *)(r + 1),
		.mask = r->slots - 1,
		.stride = r->stride,
	};
}

static inline struct bare_slot *bare_slot_at(const struct bare_end *e,
					     uint64_t p)
{
	return (struct bare_slot *)(e->slot0 +
				    (size_t)(p & e->mask) * e->stride);
}

/* Send as many of pkts[0..n) as there is room for, lengths already known
 * to be <= max_pkt.  @return how many (0: full). */
static inline unsigned int bare_send(struct bare_end *e,
				     const struct iovec *pkts, unsigned int n)
{
	uint64_t room = e->ring->slots - (e->mine - e->theirs);
	unsigned int i;

	if (room < n) {
		e->theirs = atomic_load_explicit(&e->ring->tail,
						 memory_order_acquire); /* B2' */
		room = e->ring->slots - (e->mine - e->theirs);
		if (room < n)
			n = (unsigned int)room;
	}
	for (i = 0; i < n; i++) {
		struct bare_slot *s = bare_slot_at(e, e->mine + i);

		s->len = (uint32_t)pkts[i].iov_len;
		memcpy(s->data, pkts[i].iov_base, pkts[i].iov_len);
	}
	if (n) {
		e->mine += n;
		atomic_store_explicit(&e->ring->head, e->mine,
				      memory_order_release);		/* B1 */
	}
	return n;
}

/* Receive up to n packets (iov_len: capacity in, length out).  @return how
 * many (0: empty), or -EMSGSIZE for a packet longer than its buffer. */
static inline int bare_recv(struct bare_end *e, struct iovec *bufs,
			    unsigned int n)
{
	uint64_t avail = e->theirs - e->mine;
	unsigned int i;

	if (avail < n) {
		e->theirs = atomic_load_explicit(&e->ring->head,
						 memory_order_acquire); /* B1' */
		avail = e->theirs - e->mine;
		if (avail < n)
			n = (unsigned int)avail;
	}
	for (i = 0; i < n; i++) {
		const struct bare_slot *s = bare_slot_at(e, e->mine + i);

		if (s->len > bufs[i].iov_len)
			return -EMSGSIZE;
		memcpy(bufs[i].iov_base, s->data, s->len);
		bufs[i].iov_len = s->len;
	}
	if (n) {
		e->mine += n;
		atomic_store_explicit(&e->ring->tail, e->mine,
				      memory_order_release);		/* B2 */
	}
	return (int)n;
}

/* Zero copy, producer: whether the next slot (bare_slot_at(e, e->mine))
 * is free to fill; then bare_commit() publishes it. */
static inline int bare_room(struct bare_end *e)
{
	if (e->mine - e->theirs < e->ring->slots)
		return 1;
	e->theirs = atomic_load_explicit(&e->ring->tail,
					 memory_order_acquire);		/* B2' */
	return e->mine - e->theirs < e->ring->slots;
}

static inline void bare_commit(struct bare_end *e, size_t len)
{
	bare_slot_at(e, e->mine)->len = (uint32_t)len;
	e->mine++;
	atomic_store_explicit(&e->ring->head, e->mine,
			      memory_order_release);			/* B1 */
}

/* Zero copy, consumer: whether packet e->mine + k is there to read in
 * place (bare_slot_at()); bare_release() then frees the slots of the n
 * packets read. */
static inline int bare_peek(struct bare_end *e, uint64_t k)
{
	if (e->theirs - e->mine > k)
		return 1;
	e->theirs = atomic_load_explicit(&e->ring->head,
					 memory_order_acquire);		/* B1' */
	return e->theirs - e->mine > k;
}

static inline void bare_release(struct bare_end *e, uint64_t n)
{
	e->mine += n;
	atomic_store_explicit(&e->ring->tail, e->mine,
			      memory_order_release);			/* B2 */
}

static inline void bare_end_stream(struct bare_end *e)
{
	atomic_store_explicit(&e->ring->ended, 1, memory_order_release); /* E1 */
}

static inline int bare_stream_ended(const struct bare_end *e)
{
	return atomic_load_explicit(&e->ring->ended,
				    memory_order_acquire);		/* E1' */
}

#endif /* APQ_BENCH_BARE_RING_H */
