/* SPDX-License-Identifier: MIT */
/*
 * peers.h - what the in-process peer adapters share (private to bench/peers).
 *
 * Overview
 *   Each adapter wraps one queue that people use today behind struct
 *   bench_impl (../bench.h).  They size their queues the same way, wait with
 *   the same deadline and report the same counters, so that the differences
 *   apq-bench shows are the queues', not the adapters'.
 *
 * Sizing
 *   All these queues hold fixed-size elements.  A queue asked for ring_bytes
 *   of packets of up to max_pkt bytes holds at least
 *   peer_packets(ring_bytes, max_pkt) = ceil(ring_bytes / max_pkt) packets
 *   (some round up to a power of two).  The harness should therefore pass the
 *   scenario's packet size as max_pkt: a queue opened for 1500-byte packets
 *   and fed 64-byte ones holds 23 times fewer packets than apq's byte ring.
 *
 * Copies
 *   Every adapter copies a packet's bytes twice, len bytes each time: from the
 *   harness's buffer into the queue's element, and out of it into the
 *   consumer's buffer.  No whole-element copies, no staging buffers.  (ck_ring
 *   and rte_ring carry packets of up to 8 bytes in their ring entries
 *   themselves, as their users pass small values: an 8-byte entry is the
 *   element, and a full-size packet's copy.)
 *
 * End of stream
 *   producer_end() raises `ended` with a release store after the last
 *   enqueue; a consumer that finds its queue empty reads `ended` with an
 *   acquire load and, if it is set, looks at the queue once more before it
 *   returns 0 (the queues that sleep use a marker element or their mutex).
 */
#ifndef APQ_BENCH_PEERS_H
#define APQ_BENCH_PEERS_H

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEER_CACHELINE		64

/* The largest packet an adapter accepts (lengths travel as uint32_t). */
#define PEER_MAX_PKT		65536

/* The most packets a queue may be asked to hold (2^24: 1 GiB of 64-byte
 * slots); beyond it open() fails with -E2BIG rather than try. */
#define PEER_MAX_PACKETS	(UINT32_C(1) << 24)

/* A busy-polling side reads the clock every this many failed attempts. */
#define PEER_SPINS_PER_CLOCK	1024

#ifndef __cplusplus
/* A fixed-size slot of the C adapters: the length, then the bytes; slots are
 * peer_stride(sizeof(struct peer_slot), max_pkt) bytes apart. */
struct peer_slot {
	uint32_t len;
	uint32_t spare;
	unsigned char data[];
};
#endif

/* The adapters (each defined when its package was found). */
extern const struct bench_impl bench_peer_ck_impl;
extern const struct bench_impl bench_peer_rte_impl;
extern const struct bench_impl bench_peer_wfcq_impl;
extern const struct bench_impl bench_peer_mutex_impl;
extern const struct bench_impl bench_peer_moodycamel_impl;
/* The harness's own yardsticks, always built. */
extern const struct bench_impl bench_peer_null_impl;
extern const struct bench_impl bench_peer_bare_impl;

static inline int64_t peer_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * How many packets a queue opened with (ring_bytes, max_pkt) must hold.
 * @return 0 with *n set; -EINVAL for max_pkt 0; -EMSGSIZE for max_pkt over
 * PEER_MAX_PKT; -E2BIG for more than PEER_MAX_PACKETS packets.
 */
static inline int peer_packets(size_t ring_bytes, size_t max_pkt, size_t *n)
{
	size_t k;

	if (max_pkt == 0)
		return -EINVAL;
	if (max_pkt > PEER_MAX_PKT)
		return -EMSGSIZE;
	k = ring_bytes / max_pkt + (ring_bytes % max_pkt != 0);
	if (k == 0)
		k = 1;
	if (k > PEER_MAX_PACKETS)
		return -E2BIG;
	*n = k;
	return 0;
}

/* Zeroed memory aligned to a cache line, or NULL; free() releases it. */
static inline void *peer_zalloc(size_t size)
{
	void *p;

	if (posix_memalign(&p, PEER_CACHELINE, size != 0 ? size : 1) != 0)
		return NULL;
	memset(p, 0, size);
	return p;
}

/* The smallest power of two >= x, for x <= 2^31. */
static inline uint32_t peer_pow2(uint32_t x)
{
	uint32_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

/* The stride of a slot holding a header of hdr bytes and max_pkt bytes,
 * rounded to a cache line so that slots do not share lines. */
static inline size_t peer_stride(size_t hdr, size_t max_pkt)
{
	return (hdr + max_pkt + PEER_CACHELINE - 1) &
	       ~(size_t)(PEER_CACHELINE - 1);
}

/*
 * A busy-polling wait: call peer_spin() after each attempt that found the
 * queue empty (or full).  It pauses the CPU and, every PEER_SPINS_PER_CLOCK
 * calls (some tens of microseconds), reads the clock and yields the CPU:
 *  - the deadline starts at the first reading, so the fast path never reads
 *    the clock and a wait gives up BENCH_IO_TIMEOUT_NS (plus at most
 *    PEER_SPINS_PER_CLOCK pauses) after it began;
 *  - sched_yield() returns at once when nothing else wants this CPU (the
 *    harness pins the two threads to two CPUs), and lets the peer thread run
 *    when both share one (one CPU, sanitizer runs, a busy machine), where a
 *    pure spin would wait for the end of its time slice for every packet.
 *    It is not a sleep: the harness counts futex calls, not yields.
 */
struct peer_spin {
	int64_t deadline;	/* 0: not read yet */
	unsigned int n;
};

#define PEER_SPIN_INIT	{ 0, 0 }

/* @return 0 to try again, -ETIMEDOUT once the deadline has passed. */
static inline int peer_spin(struct peer_spin *s)
{
	int64_t now;

#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
	if (++s->n % PEER_SPINS_PER_CLOCK != 0)
		return 0;
	now = peer_now_ns();
	if (s->deadline == 0)
		s->deadline = now + BENCH_IO_TIMEOUT_NS;
	else if (now >= s->deadline)
		return -ETIMEDOUT;
	sched_yield();
	return 0;
}

/* The end-of-stream flag: written once by the producer, read by the
 * consumer.  E1: the release store pairs with E1' (the acquire load): a
 * consumer that sees the flag sees every enqueue made before it. */
static inline void peer_end_set(int *ended)
{
	__atomic_store_n(ended, 1, __ATOMIC_RELEASE);		/* E1 */
}

static inline int peer_end_seen(const int *ended)
{
	return __atomic_load_n(ended, __ATOMIC_ACQUIRE);	/* E1' */
}

#ifdef __cplusplus
}
#endif

#endif /* APQ_BENCH_PEERS_H */
