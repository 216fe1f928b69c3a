/* SPDX-License-Identifier: MIT */
/*
 * peer-wfcq.c - liburcu's wait-free concurrent queue (wfcqueue) between one
 * producer and one consumer, nodes from a preallocated pool.
 *
 * Layout
 *   A pool of `cap` nodes (cap being the packets asked for), each a
 *   struct cds_wfcq_node followed by the length and max_pkt bytes.  Three
 *   queues move them: `q` carries packets to the consumer, `free` brings
 *   nodes back to the producer, and `cache` is the producer's private stock.
 *   No malloc in the timed loop; the pool bounds the queue like a ring.
 *
 * The return path
 *   The consumer copies a packet out, then cds_wfcq_enqueue()s its node on
 *   `free` (one xchg, as for the packet's own enqueue).  The producer takes
 *   nodes from `cache`, which no other thread touches (a cmpxchg on its own
 *   tail for the last node); when `cache` runs dry it splices all of `free`
 *   into it at once (one xchg), so the return costs the producer one
 *   contended atomic per batch, not per packet.  With `cache` and `free`
 *   both empty (or the consumer's latest return half done) the queue is
 *   full.
 *
 * Ordering
 *   cds_wfcq_enqueue() issues a full barrier before it links the node: the
 *   packet bytes (producer) or the finished read of them (consumer, on
 *   `free`) come before the node is seen on the other side.  Dequeue, splice
 *   and iteration of a queue are done by one thread each, which is the
 *   mutual exclusion wfcqueue asks of its callers: `q` is dequeued or
 *   spliced from by the consumer only, `free` by the producer only.
 *
 * Variants
 *   busy-poll         one cds_wfcq_enqueue() per packet;
 *                     __cds_wfcq_dequeue_nonblocking() per packet.
 *   busy-poll-splice  the producer links a batch into a private queue and
 *                     splices it onto `q` (one xchg on q's tail per batch);
 *                     the consumer splices all of `q` into a private queue
 *                     (__cds_wfcq_splice_nonblocking) and dequeues from that.
 *
 * Why _nonblocking
 *   A dequeue or splice can meet an enqueue half done: the tail swapped, the
 *   link to the new node not stored yet.  The _blocking calls then wait for
 *   the link: 10 pauses, then poll() for 10 ms (WFCQ_ADAPT_ATTEMPTS,
 *   WFCQ_WAIT).  Between two busy threads the link is a cross-core store
 *   away, longer than 10 pauses on some CPUs: on this project's CI machine
 *   the consumer slept in poll() often enough to use 23% of a core and show
 *   a 10 ms p99.  The _nonblocking calls return CDS_WFCQ_WOULDBLOCK (with
 *   the queue unchanged) instead, and we spin and retry like on an empty
 *   queue: a busy-polling user's way to call wfcqueue.
 *
 * Copies: len bytes in, len bytes out.
 * Waits: both sides busy-poll; wfcqueue has no way to sleep on empty.
 */
#define _LGPL_SOURCE	/* the inline versions of the queue operations */

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/wfcqueue.h>

#include "peers.h"

struct wfcq_pkt {
	struct cds_wfcq_node node;
	uint32_t len;
	unsigned char data[];
};

struct wfcq {
	unsigned char *pool;
	size_t stride;
	size_t max_pkt;
	bool splice;
	int ended;			/* E1/E1' in peers.h */

	/* `q`: head consumer-side, tail producer-side, on separate lines as
	 * wfcqueue.h advises. */
	_Alignas(PEER_CACHELINE) struct __cds_wfcq_head q_head;
	_Alignas(PEER_CACHELINE) struct cds_wfcq_tail q_tail;

	/* `free`: head producer-side, tail consumer-side. */
	_Alignas(PEER_CACHELINE) struct __cds_wfcq_head free_head;
	_Alignas(PEER_CACHELINE) struct cds_wfcq_tail free_tail;

	/* Producer-owned: the node stock, a batch being built, counters. */
	_Alignas(PEER_CACHELINE) struct __cds_wfcq_head cache_head;
	struct cds_wfcq_tail cache_tail;
	struct __cds_wfcq_head batch_head;
	struct cds_wfcq_tail batch_tail;
	uint64_t sent;

	/* Consumer-owned: what it spliced off `q`, counters. */
	_Alignas(PEER_CACHELINE) struct __cds_wfcq_head local_head;
	struct cds_wfcq_tail local_tail;
	uint64_t received;
};

static const bool wfcq_single = false, wfcq_splice = true;

static const struct bench_variant wfcq_variants[] = {
	{ "busy-poll", &wfcq_single, BENCH_WAIT_BUSY_POLLS },
	{ "busy-poll-splice", &wfcq_splice, BENCH_WAIT_BUSY_POLLS },
};

static void wfcq_close(void *qv)
{
	struct wfcq *q = qv;

	if (q == NULL)
		return;
	free(q->pool);
	free(q);
}

static int wfcq_open(void **out, const struct bench_variant *v,
		     size_t ring_bytes, size_t max_pkt)
{
	struct wfcq *q;
	size_t n, i;
	int r;

	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;

	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->splice = v != NULL && v->arg != NULL && *(const bool *)v->arg;
	q->max_pkt = max_pkt;
	q->stride = peer_stride(sizeof(struct wfcq_pkt), max_pkt);
	q->pool = peer_zalloc(n * q->stride);
	if (q->pool == NULL) {
		wfcq_close(q);
		return -ENOMEM;
	}
	__cds_wfcq_init(&q->q_head, &q->q_tail);
	__cds_wfcq_init(&q->free_head, &q->free_tail);
	__cds_wfcq_init(&q->cache_head, &q->cache_tail);
	__cds_wfcq_init(&q->batch_head, &q->batch_tail);
	__cds_wfcq_init(&q->local_head, &q->local_tail);
	for (i = 0; i < n; i++) {
		struct wfcq_pkt *p = (struct wfcq_pkt *)(q->pool +
							 i * q->stride);

		cds_wfcq_node_init(&p->node);
		cds_wfcq_enqueue(&q->cache_head, &q->cache_tail, &p->node);
	}
	*out = q;
	return 0;
}

/* A free node for the producer, or NULL when all are in flight or the
 * consumer's return of one is half done (try again). */
static struct wfcq_pkt *wfcq_get(struct wfcq *q)
{
	struct cds_wfcq_node *node;
	enum cds_wfcq_ret ret;

	node = __cds_wfcq_dequeue_nonblocking(&q->cache_head, &q->cache_tail);
	if (node == NULL) {
		/* Take back everything the consumer has returned. */
		ret = __cds_wfcq_splice_nonblocking(&q->cache_head,
						    &q->cache_tail,
						    &q->free_head,
						    &q->free_tail);
		if (ret == CDS_WFCQ_RET_SRC_EMPTY ||
		    ret == CDS_WFCQ_RET_WOULDBLOCK)
			return NULL;
		node = __cds_wfcq_dequeue_nonblocking(&q->cache_head,
						      &q->cache_tail);
	}
	if (node == NULL || node == CDS_WFCQ_WOULDBLOCK)
		return NULL;
	return caa_container_of(node, struct wfcq_pkt, node);
}

static int wfcq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct wfcq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	unsigned int i;
	int r;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->max_pkt)
			return -EMSGSIZE;

	for (i = 0; i < n;) {
		struct wfcq_pkt *p = wfcq_get(q);

		if (p == NULL) {	/* full */
			if (i > 0)
				break;
			r = peer_spin(&spin);
			if (r < 0)
				return r;
			continue;
		}
		cds_wfcq_node_init(&p->node);
		p->len = (uint32_t)pkts[i].iov_len;
		memcpy(p->data, pkts[i].iov_base, pkts[i].iov_len);
		if (q->splice && n > 1)
			cds_wfcq_enqueue(&q->batch_head, &q->batch_tail,
					 &p->node);
		else
			cds_wfcq_enqueue(&q->q_head, &q->q_tail, &p->node);
		i++;
	}
	/* Never waits: this thread made every link of the batch. */
	if (q->splice && n > 1)
		__cds_wfcq_splice_blocking(&q->q_head, &q->q_tail,
					   &q->batch_head, &q->batch_tail);
	q->sent += i;
	return (int)i;
}

/* The next packet for the consumer, or NULL when `q` is empty or its
 * newest enqueue is half done (try again). */
static struct wfcq_pkt *wfcq_take(struct wfcq *q)
{
	struct cds_wfcq_node *node;
	enum cds_wfcq_ret ret;

	if (!q->splice) {
		node = __cds_wfcq_dequeue_nonblocking(&q->q_head, &q->q_tail);
	} else {
		node = __cds_wfcq_dequeue_nonblocking(&q->local_head,
						      &q->local_tail);
		if (node == NULL) {
			ret = __cds_wfcq_splice_nonblocking(&q->local_head,
							    &q->local_tail,
							    &q->q_head,
							    &q->q_tail);
			if (ret != CDS_WFCQ_RET_SRC_EMPTY &&
			    ret != CDS_WFCQ_RET_WOULDBLOCK)
				node = __cds_wfcq_dequeue_nonblocking(
					&q->local_head, &q->local_tail);
		}
	}
	if (node == NULL || node == CDS_WFCQ_WOULDBLOCK)
		return NULL;
	return caa_container_of(node, struct wfcq_pkt, node);
}

static int wfcq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct wfcq *q = qv;
	struct peer_spin spin = PEER_SPIN_INIT;
	bool last_look = false;
	unsigned int got = 0;
	int r;

	if (n == 0)
		return -EINVAL;
	while (got < n) {
		struct wfcq_pkt *p = wfcq_take(q);

		if (p == NULL) {	/* empty */
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
		if (p->len > bufs[got].iov_len)
			return -EMSGSIZE;
		memcpy(bufs[got].iov_base, p->data, p->len);
		bufs[got].iov_len = p->len;
		got++;
		/* Give the node back, after we read it. */
		cds_wfcq_node_init(&p->node);
		cds_wfcq_enqueue(&q->free_head, &q->free_tail, &p->node);
	}
	q->received += got;
	return (int)got;
}

static void wfcq_producer_end(void *qv, struct bench_counters *out)
{
	struct wfcq *q = qv;

	peer_end_set(&q->ended);
	memset(out, 0, sizeof(*out));
	out->packets = q->sent;
}

static void wfcq_consumer_end(void *qv, struct bench_counters *out)
{
	struct wfcq *q = qv;

	memset(out, 0, sizeof(*out));
	out->packets = q->received;
}

const struct bench_impl bench_peer_wfcq_impl = {
	.name = "wfcqueue",
	.variants = wfcq_variants,
	.n_variants = sizeof(wfcq_variants) / sizeof(wfcq_variants[0]),
	.counts_wakeups = false,
	.open = wfcq_open,
	.send = wfcq_send,
	.recv = wfcq_recv,
	.producer_end = wfcq_producer_end,
	.consumer_end = wfcq_consumer_end,
	.close = wfcq_close,
};
