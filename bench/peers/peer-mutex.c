/* SPDX-License-Identifier: MIT */
/*
 * peer-mutex.c - the classic sleeping queue: a bounded ring under a
 * pthread mutex, with two condition variables.
 *
 * Layout
 *   `cap` slots of struct peer_slot (cap being the packets asked for),
 *   `head` (next to read) and `count`, all guarded by `lock`.
 *
 * Producer
 *   Under the lock it copies as many packets as fit and calls
 *   pthread_cond_signal(&not_empty) after every one, waiter or not: that is
 *   the prior art apq is measured against (glibc's signal without waiters
 *   costs no syscall; the harness counts the futex calls).  With the ring
 *   full it waits on not_full.
 *
 * Consumer
 *   Under the lock it waits on not_empty while the ring is empty and the
 *   stream has not ended, then copies out up to n packets, signalling
 *   not_full after every one.
 *
 * Waits: pthread_cond_timedwait() on CLOCK_MONOTONIC, BENCH_IO_TIMEOUT_NS
 * from the start of the call; `sleeps` counts the waits of each side.
 * Copies: len bytes in, len bytes out, both under the lock.
 * End of stream: `ended`, set under the lock with a signal.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "peers.h"

struct mq {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	pthread_cond_t not_full;
	unsigned char *slots;
	size_t stride;
	size_t max_pkt;
	uint32_t cap;
	/* Guarded by lock. */
	uint32_t head;
	uint32_t count;
	bool ended;
	bool inited;

	/* Producer-owned. */
	_Alignas(PEER_CACHELINE) uint64_t sent;
	uint64_t p_sleeps;

	/* Consumer-owned. */
	_Alignas(PEER_CACHELINE) uint64_t received;
	uint64_t c_sleeps;
};

static const struct bench_variant mq_variants[] = {
	{ "condvar", NULL, BENCH_WAIT_SLEEPS },
};

static void mq_close(void *qv)
{
	struct mq *q = qv;

	if (q == NULL)
		return;
	if (q->inited) {
		pthread_cond_destroy(&q->not_full);
		pthread_cond_destroy(&q->not_empty);
		pthread_mutex_destroy(&q->lock);
	}
	free(q->slots);
	free(q);
}

static int mq_open(void **out, const struct bench_variant *v,
		   size_t ring_bytes, size_t max_pkt)
{
	pthread_condattr_t ca;
	struct mq *q;
	size_t n;
	int r;

	(void)v;
	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;
	q = peer_zalloc(sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->cap = (uint32_t)n;
	q->max_pkt = max_pkt;
	q->stride = peer_stride(sizeof(struct peer_slot), max_pkt);
	q->slots = peer_zalloc(n * q->stride);
	if (q->slots == NULL) {
		mq_close(q);
		return -ENOMEM;
	}

	r = pthread_condattr_init(&ca);
	if (r != 0) {
		mq_close(q);
		return -r;
	}
	r = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (r == 0) {
		r = pthread_mutex_init(&q->lock, NULL);
		if (r == 0) {
			r = pthread_cond_init(&q->not_empty, &ca);
			if (r == 0) {
				r = pthread_cond_init(&q->not_full, &ca);
				if (r != 0)
					pthread_cond_destroy(&q->not_empty);
			}
			if (r != 0)
				pthread_mutex_destroy(&q->lock);
		}
	}
	pthread_condattr_destroy(&ca);
	if (r != 0) {
		mq_close(q);
		return -r;
	}
	q->inited = true;
	*out = q;
	return 0;
}

static struct timespec mq_deadline(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += BENCH_IO_TIMEOUT_NS / 1000000000;
	return ts;
}

static struct peer_slot *mq_slot(struct mq *q, uint32_t i)
{
	if (i >= q->cap)
		i -= q->cap;
	return (struct peer_slot *)(q->slots + (size_t)i * q->stride);
}

static int mq_send(void *qv, const struct iovec *pkts, unsigned int n)
{
	struct mq *q = qv;
	struct timespec deadline;
	bool have_deadline = false;
	unsigned int i;
	int r = 0;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > q->max_pkt)
			return -EMSGSIZE;

	pthread_mutex_lock(&q->lock);
	while (q->count == q->cap) {
		if (!have_deadline) {
			deadline = mq_deadline();
			have_deadline = true;
		}
		q->p_sleeps++;
		r = pthread_cond_timedwait(&q->not_full, &q->lock, &deadline);
		if (r == ETIMEDOUT && q->count == q->cap) {
			pthread_mutex_unlock(&q->lock);
			return -ETIMEDOUT;
		}
	}
	for (i = 0; i < n && q->count < q->cap; i++) {
		struct peer_slot *slot = mq_slot(q, q->head + q->count);

		slot->len = (uint32_t)pkts[i].iov_len;
		memcpy(slot->data, pkts[i].iov_base, pkts[i].iov_len);
		q->count++;
		pthread_cond_signal(&q->not_empty);
	}
	pthread_mutex_unlock(&q->lock);
	q->sent += i;
	return (int)i;
}

static int mq_recv(void *qv, struct iovec *bufs, unsigned int n)
{
	struct mq *q = qv;
	struct timespec deadline;
	bool have_deadline = false;
	unsigned int got;
	int r;

	if (n == 0)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	while (q->count == 0) {
		if (q->ended) {
			pthread_mutex_unlock(&q->lock);
			return 0;
		}
		if (!have_deadline) {
			deadline = mq_deadline();
			have_deadline = true;
		}
		q->c_sleeps++;
		r = pthread_cond_timedwait(&q->not_empty, &q->lock, &deadline);
		if (r == ETIMEDOUT && q->count == 0 && !q->ended) {
			pthread_mutex_unlock(&q->lock);
			return -ETIMEDOUT;
		}
	}
	for (got = 0; got < n && q->count > 0; got++) {
		const struct peer_slot *slot = mq_slot(q, q->head);

		if (slot->len > bufs[got].iov_len) {
			pthread_mutex_unlock(&q->lock);
			return -EMSGSIZE;
		}
		memcpy(bufs[got].iov_base, slot->data, slot->len);
		bufs[got].iov_len = slot->len;
		if (++q->head == q->cap)
			q->head = 0;
		q->count--;
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->lock);
	q->received += got;
	return (int)got;
}

static void mq_producer_end(void *qv, struct bench_counters *out)
{
	struct mq *q = qv;

	pthread_mutex_lock(&q->lock);
	q->ended = true;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
	memset(out, 0, sizeof(*out));
	out->packets = q->sent;
	out->sleeps = q->p_sleeps;
}

static void mq_consumer_end(void *qv, struct bench_counters *out)
{
	struct mq *q = qv;

	memset(out, 0, sizeof(*out));
	out->packets = q->received;
	out->sleeps = q->c_sleeps;
}

const struct bench_impl bench_peer_mutex_impl = {
	.name = "mutex-condvar",
	.variants = mq_variants,
	.n_variants = sizeof(mq_variants) / sizeof(mq_variants[0]),
	.counts_wakeups = false,
	.open = mq_open,
	.send = mq_send,
	.recv = mq_recv,
	.producer_end = mq_producer_end,
	.consumer_end = mq_consumer_end,
	.close = mq_close,
};
