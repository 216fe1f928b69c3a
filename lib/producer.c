/* SPDX-License-Identifier: MIT */
/*
 * The producer side of the ring.  Barrier pairs (doc/memory-ordering.md):
 *   R1 (producer_publish) / A2 (consumer_refresh): records before the index.
 *   A3 (producer_refresh) / R2 (consumer_publish): space is reused only after
 *       the consumer's reads of it.
 *   B2 (in apq_waker_check) / B1 (in sleeper_announce): no lost wakeup.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apq/ring.h>

#include "atomic.h"
#include "endpoint.h"
#include "util.h"

/* The endpoint's waker wakes the consumer (data word), its sleeper waits
 * for space (space word). */
struct apq_producer {
	struct apq_endpoint ep;
	uint32_t prod;		/* where the next record goes; private */
	uint32_t published;	/* what we last stored to region->prod */
	uint32_t cons_cache;	/* the consumer's index, last read and checked */
	bool reserved;
	uint32_t reserved_len;
};

static int producer_fail(struct apq_producer *p, int err)
{
	return apq_endpoint_fail(&p->ep, err);
}

/* Re-read the consumer's index.  @return 0; -EPROTO. */
static int producer_refresh(struct apq_producer *p)
{
	/* Single fetch.  A3: acquire, pairs with R2 in consumer_publish().
	 * Valid only if it moved forward, and no further than we published. */
	uint32_t cons = apq_load_acquire(&p->ep.region->cons);

	if ((uint32_t)(cons - p->cons_cache) >
		    (uint32_t)(p->published - p->cons_cache) ||
	    cons % REC_HEADER != 0)
		return producer_fail(p, -EPROTO);
	p->cons_cache = cons;
	return 0;
}

/* What must be free before the next step: the record, or the pad that takes
 * the rest of the ring when the record does not fit before its end. */
static uint32_t producer_step(const struct apq_producer *p, uint32_t rec)
{
	uint32_t to_end = p->ep.size - (p->prod & (p->ep.size - 1));

	return rec <= to_end ? rec : to_end;
}

static uint32_t producer_free(const struct apq_producer *p)
{
	return p->ep.size - (p->prod - p->cons_cache);
}

/* The fast path: the record fits before the ring's end, in the space our
 * cached copy of the consumer's index already shows. */
static inline bool producer_fits(const struct apq_producer *p, uint32_t rec)
{
	return rec <= p->ep.size - (p->prod & (p->ep.size - 1)) &&
	       rec <= producer_free(p);
}

/*
 * Make room for a record of rec bytes at p->prod, first writing (not
 * publishing) a pad if the record must start over at offset 0.
 * @return 0; -EAGAIN (not enough space yet); -EPROTO.
 */
static int producer_room(struct apq_producer *p, uint32_t rec)
{
	for (;;) {
		uint32_t pos = p->prod & (p->ep.size - 1);
		uint32_t step = producer_step(p, rec);
		int r;

		if (producer_free(p) < step) {
			r = producer_refresh(p);
			if (r)
				return r;
			if (producer_free(p) < step)
				return -EAGAIN;
		}
		if (step == rec)
			return 0;
		apq_store_once((uint64_t *)(p->ep.ring + pos),
			       rec_header(step - REC_HEADER, REC_TAG_PAD));
		p->prod += step;
	}
}

/* Publish what was written and run the wakeup check (its failure
 * sticks: apq_endpoint_wake_check()). */
APQ_HOT int producer_publish(struct apq_producer *p)
{
	/* R1: release, pairs with A2 in consumer_refresh(): a consumer that
	 * reads the new index also reads the records before it. */
	apq_store_release(&p->ep.region->prod, p->prod);
	p->published = p->prod;
	return apq_endpoint_wake_check(&p->ep);
}

struct room_query {
	struct apq_producer *p;
	uint32_t rec;
};

static int producer_has_room(void *arg)
{
	const struct room_query *q = arg;
	int r = producer_refresh(q->p);

	if (r)
		return r;
	if (producer_free(q->p) >= producer_step(q->p, q->rec))
		return 1;
	return apq_endpoint_peer_state(&q->p->ep);
}

static int producer_wait_room(struct apq_producer *p, uint32_t rec,
			      int64_t timeout_ns)
{
	struct room_query q = { .p = p, .rec = rec };
	int64_t deadline = 0;
	bool deadline_set = false;
	int r;

	for (;;) {
		r = producer_room(p, rec);
		if (r != -EAGAIN)
			return r;
		/* A pad: the consumer must pass it to free what we wait for. */
		if (p->prod != p->published) {
			r = producer_publish(p);
			if (r)
				return r;
		}
		if (!deadline_set) {
			deadline = apq_deadline(timeout_ns);
			deadline_set = true;
		}
		r = apq_sleeper_wait_until(&p->ep.sleeper, producer_has_room, &q,
					   deadline);
		if (r < 0)
			return producer_fail(p, r);
	}
}

/* The checks every sending call starts with. */
APQ_HOT int producer_begin(struct apq_producer *p, const void *pkt,
			   size_t len)
{
	if (!p || (!pkt && len))
		return -EINVAL;
	if (p->ep.err)
		return p->ep.err;
	if (p->reserved)
		return -EBUSY;
	if (len > p->ep.size - REC_HEADER)
		return -EMSGSIZE;
	return producer_fail(p, mode_peer_state(p->ep.waker.word));
}

APQ_HOT void producer_put(struct apq_producer *p, const void *pkt,
			   size_t len)
{
	uint32_t pos = p->prod & (p->ep.size - 1);

	apq_copy(p->ep.ring + pos + REC_HEADER, pkt, len);
	apq_store_once((uint64_t *)(p->ep.ring + pos),
		       rec_header((uint32_t)len, REC_TAG_PACKET));
	p->prod += rec_size((uint32_t)len);
}

APQ_EXPORT int apq_send(struct apq_producer *p, const void *pkt, size_t len,
			int64_t timeout_ns)
{
	int r = producer_begin(p, pkt, len);
	uint32_t rec;

	if (apq_unlikely(r))
		return r;
	rec = rec_size((uint32_t)len);
	if (apq_unlikely(!producer_fits(p, rec))) {
		r = producer_wait_room(p, rec, timeout_ns);
		if (r)
			return r;
	}
	producer_put(p, pkt, len);
	apq_endpoint_count(&p->ep, 1, len);
	return producer_publish(p);
}

APQ_EXPORT int apq_send_burst(struct apq_producer *p, const struct iovec *pkts,
			      unsigned int n, int64_t timeout_ns)
{
	unsigned int i;
	size_t bytes;
	int r;

	if (!p || (!pkts && n))
		return -EINVAL;
	if (n == 0)
		return 0;
	r = producer_begin(p, pkts[0].iov_base, pkts[0].iov_len);
	if (r)
		return r;
	r = producer_wait_room(p, rec_size((uint32_t)pkts[0].iov_len),
			       timeout_ns);
	if (r)
		return r;
	producer_put(p, pkts[0].iov_base, pkts[0].iov_len);
	bytes = pkts[0].iov_len;
	for (i = 1; i < n; i++) {
		size_t len = pkts[i].iov_len;
		uint32_t rec;

		if (len > p->ep.size - REC_HEADER || (!pkts[i].iov_base && len))
			break;
		rec = rec_size((uint32_t)len);
		if (!producer_fits(p, rec) && producer_room(p, rec))
			break;
		producer_put(p, pkts[i].iov_base, len);
		bytes += len;
	}
	apq_endpoint_count(&p->ep, i, bytes);
	/* The packets are out: a failed check is the next call's to report. */
	(void)producer_publish(p);
	return (int)i;
}

APQ_EXPORT int apq_producer_arm(struct apq_producer *p, size_t len)
{
	struct room_query q = { .p = p };
	int r = producer_begin(p, NULL, 0);

	if (r)
		return r;
	if (len > p->ep.size - REC_HEADER)
		return -EMSGSIZE;
	q.rec = rec_size((uint32_t)len);
	r = producer_room(p, q.rec);
	if (r != -EAGAIN)
		return r ? r : 1;
	/* A pad written to make room must reach the consumer first. */
	if (p->prod != p->published) {
		r = producer_publish(p);
		if (r)
			return r;
	}
	r = apq_sleeper_arm_internal(&p->ep.sleeper, producer_has_room, &q);
	return r < 0 ? producer_fail(p, r) : r;
}

APQ_EXPORT int apq_reserve(struct apq_producer *p, size_t len, void **buf,
			   int64_t timeout_ns)
{
	int r;

	if (!buf)
		return -EINVAL;
	r = producer_begin(p, NULL, 0);
	if (r)
		return r;
	if (len > p->ep.size - REC_HEADER)
		return -EMSGSIZE;
	r = producer_wait_room(p, rec_size((uint32_t)len), timeout_ns);
	if (r)
		return r;
	*buf = p->ep.ring + (p->prod & (p->ep.size - 1)) + REC_HEADER;
	p->reserved = true;
	p->reserved_len = (uint32_t)len;
	return 0;
}

APQ_EXPORT int apq_commit(struct apq_producer *p, size_t len)
{
	uint32_t pos;

	if (!p || !p->reserved || len > p->reserved_len)
		return -EINVAL;
	pos = p->prod & (p->ep.size - 1);
	apq_store_once((uint64_t *)(p->ep.ring + pos),
		       rec_header((uint32_t)len, REC_TAG_PACKET));
	p->prod += rec_size((uint32_t)len);
	p->reserved = false;
	apq_endpoint_count(&p->ep, 1, len);
	return producer_publish(p);
}

APQ_EXPORT int apq_producer_attach(struct apq_producer **out, void *mem,
				   size_t mem_bytes, struct apq_notifier *n,
				   const struct apq_config *cfg)
{
	struct apq_region *region = mem;
	struct apq_region_state state;
	struct apq_producer *p;
	int r;

	r = apq_region_open(mem, mem_bytes, out, n, cfg, &state);
	if (r)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	r = apq_endpoint_init(&p->ep, region, state.ring_bytes,
			      &region->space_word, APQ_CHANNEL_SPACE,
			      &region->data_word, APQ_CHANNEL_DATA, n, cfg);
	if (r) {
		free(p);
		return r;
	}
	p->prod = state.prod;
	p->published = state.prod;
	p->cons_cache = state.cons;
	*out = p;
	return 0;
}

APQ_EXPORT void apq_producer_detach(struct apq_producer *p)
{
	if (!p)
		return;
	apq_endpoint_fini(&p->ep);
	free(p);
}

APQ_EXPORT int apq_producer_stats(const struct apq_producer *p,
				  struct apq_stats *out)
{
	if (!p || !out)
		return -EINVAL;
	apq_endpoint_stats(&p->ep, out);
	return 0;
}
