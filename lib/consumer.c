/* SPDX-License-Identifier: MIT */
/*
 * The consumer side of the ring.  Barrier pairs (doc/memory-ordering.md):
 *   A2 (consumer_refresh) / R1 (producer_publish): records before the index.
 *   R2 (consumer_publish) / A3 (producer_refresh): space is reused only after
 *       our reads of it.
 *   B1 (in sleeper_announce) / B2 (in apq_waker_check): no lost wakeup.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apq/ring.h>

#include "atomic.h"
#include "endpoint.h"
#include "util.h"

/* The endpoint's waker wakes the producer (space word), its sleeper waits
 * for data (data word). */
struct apq_consumer {
	struct apq_endpoint ep;
	uint32_t cons;		/* the next record to look at; private */
	uint32_t released;	/* what we last stored to region->cons */
	uint32_t prod_cache;	/* the producer's index, last read and checked */
	uint32_t peeked;	/* packets peeked since the last release */
	bool sleep_seen;	/* consumer_stuck(): an unwoken producer sleep
				 * seen since the last release */
	uint64_t stuck_episode;	/* its episode */
	int64_t stuck_since;	/* seen first then */
	bool stuck;		/* -EDEADLK said; holds until apq_release() */
};

static int consumer_fail(struct apq_consumer *c, int err)
{
	return apq_endpoint_fail(&c->ep, err);
}

/* Re-read the producer's index.  @return 0; -EPROTO. */
static int consumer_refresh(struct apq_consumer *c)
{
	/* Single fetch.  A2: acquire, pairs with R1 in producer_publish().
	 * Valid only if it moved forward and stays within a ring of us. */
	uint32_t prod = apq_load_acquire(&c->ep.region->prod);

	if ((uint32_t)(prod - c->cons) > c->ep.size ||
	    (uint32_t)(prod - c->prod_cache) > (uint32_t)(prod - c->cons) ||
	    prod % REC_HEADER != 0)
		return consumer_fail(c, -EPROTO);
	c->prod_cache = prod;
	return 0;
}

/*
 * Find the packet at the cursor, passing pads.  @return its length with
 * *payload and *rec (its record size) set; -EAGAIN (none yet); -EPROTO.
 * Inline: it is most of every receive.
 */
static inline ssize_t consumer_next(struct apq_consumer *c,
				    const unsigned char **payload,
				    uint32_t *rec)
{
	for (;;) {
		uint32_t avail = c->prod_cache - c->cons;
		uint32_t pos, to_end, len, tag, size;
		uint64_t header;
		int r;

		if (apq_unlikely(avail == 0)) {
			r = consumer_refresh(c);
			if (r)
				return r;
			avail = c->prod_cache - c->cons;
			if (avail == 0)
				return -EAGAIN;
		}
		pos = c->cons & (c->ep.size - 1);
		to_end = c->ep.size - pos;
		/* Single fetch of the header the producer wrote; everything
		 * below uses the copy. */
		header = apq_load_once((uint64_t *)(c->ep.ring + pos));
		len = (uint32_t)header;
		tag = (uint32_t)(header >> 32);
		if (apq_unlikely(len > c->ep.size - REC_HEADER))
			return consumer_fail(c, -EPROTO);
		size = rec_size(len);
		if (apq_unlikely(size > to_end || size > avail))
			return consumer_fail(c, -EPROTO);
		if (apq_likely(tag == REC_TAG_PACKET)) {
			*payload = c->ep.ring + pos + REC_HEADER;
			*rec = size;
			return len;
		}
		/* A pad fills the ring's end, and never starts at offset 0,
		 * where every record fits: so at most one per call, however
		 * fast a hostile producer writes them. */
		if (tag != REC_TAG_PAD || size != to_end || pos == 0)
			return consumer_fail(c, -EPROTO);
		c->cons += size;
	}
}

/* Give the space up to the cursor back and run the wakeup check (its
 * failure sticks: apq_endpoint_wake_check()). */
APQ_HOT int consumer_publish(struct apq_consumer *c)
{
	/* R2: release, pairs with A3 in producer_refresh(): our reads of the
	 * space we give back are done before the producer writes it. */
	apq_store_release(&c->ep.region->cons, c->cons);
	c->released = c->cons;
	return apq_endpoint_wake_check(&c->ep);
}

/*
 * Nothing new to take, and peeked packets held: if the producer sleeps
 * waiting for space, that space is what we hold, and waiting would deadlock.
 * A sleep we woke is on its way out; a fresh one may still be in its
 * re-check, about to find room we gave back just before.  So the first
 * unwoken sleep seen since our last release only starts the watch; it is
 * stuck when seen again STUCK_NS later, or when a later unwoken sleep is
 * seen.  That later sleep was announced after our look at the first, which
 * came after our release and its wake check: by B1 against B2 (or B1'), its
 * re-check sees every space we gave back, and it slept on anyway.  The
 * second case matters: the producer re-announces at each of its backstops,
 * in step with ours, so a consumer that only looks at its backstops may
 * never see one episode twice.  Once said, it holds until apq_release().
 * @return -EDEADLK; 0 (wait on); -EPROTO.
 */
#define STUCK_NS	(1000 * 1000)

static int consumer_stuck(struct apq_consumer *c)
{
	/* Single fetch of the producer's word, validated before use. */
	uint64_t m = apq_load_once(&c->ep.waker.word->mode), ep;
	int64_t now;

	if (!mode_valid(m))
		return consumer_fail(c, -EPROTO);
	ep = mode_episode(m);
	if (!(m & MODE_SLEEPING) || m & MODE_CLOSED ||
	    ep == c->ep.waker.last_woken)
		return 0;
	if (c->stuck)
		return -EDEADLK;
	now = apq_now_ns();
	if (!c->sleep_seen) {
		c->sleep_seen = true;
		c->stuck_episode = ep;
		c->stuck_since = now;
		return 0;
	}
	if (ep == c->stuck_episode && now - c->stuck_since < STUCK_NS)
		return 0;
	c->stuck = true;
	return -EDEADLK;
}

static int consumer_has_data(void *arg)
{
	struct apq_consumer *c = arg;
	int r = consumer_refresh(c), gone;

	if (r)
		return r;
	if (c->prod_cache != c->cons)
		return 1;
	r = apq_endpoint_peer_state(&c->ep);
	if (r == 0)
		return c->peeked ? consumer_stuck(c) : 0;
	if (r != -EPIPE && r != APQ_PEER_DIED)
		return r;
	/* Gone.  A producer that closed published its last packets before
	 * (R3), and mode_peer_state()'s acquire makes them visible now; one
	 * that died left what it had published, and its death (seen through
	 * a syscall: the pidfd, or the backend's) follows its stores. */
	gone = r;
	r = consumer_refresh(c);
	if (r)
		return r;
	return c->prod_cache != c->cons ? 1 : gone;
}

/* No packet at the cursor: give back what was passed, wait, look again. */
static ssize_t consumer_wait(struct apq_consumer *c,
			     const unsigned char **payload, uint32_t *rec,
			     int64_t timeout_ns)
{
	int64_t deadline = apq_deadline(timeout_ns);
	ssize_t len;
	int r;

	do {
		/* Give passed pads back, unless peeked packets hold the
		 * release back anyway. */
		if (c->peeked == 0 && c->cons != c->released) {
			r = consumer_publish(c);
			if (r)
				return r;
		}
		r = apq_sleeper_wait_until(&c->ep.sleeper, consumer_has_data, c,
					   deadline);
		if (r < 0)
			return consumer_fail(c, r);
		len = consumer_next(c, payload, rec);
	} while (len == -EAGAIN);
	return len;
}

/* The next packet, waiting for it as timeout_ns allows. */
static inline ssize_t consumer_get(struct apq_consumer *c,
				   const unsigned char **payload,
				   uint32_t *rec, int64_t timeout_ns)
{
	ssize_t len = consumer_next(c, payload, rec);

	if (apq_unlikely(len == -EAGAIN))
		len = consumer_wait(c, payload, rec, timeout_ns);
	return len;
}

APQ_HOT int consumer_begin(const struct apq_consumer *c, const void *buf,
			   size_t cap)
{
	if (!c || (!buf && cap))
		return -EINVAL;
	if (c->ep.err)
		return c->ep.err;
	return c->peeked ? -EBUSY : 0;
}

APQ_HOT void consumer_take(struct apq_consumer *c, uint32_t rec,
			   ssize_t len)
{
	c->cons += rec;
	apq_endpoint_count(&c->ep, 1, (size_t)len);
}

APQ_EXPORT ssize_t apq_recv(struct apq_consumer *c, void *buf, size_t cap,
			    int64_t timeout_ns)
{
	const unsigned char *payload;
	uint32_t rec;
	ssize_t len;
	int r = consumer_begin(c, buf, cap);

	if (r)
		return r;
	len = consumer_get(c, &payload, &rec, timeout_ns);
	if (apq_unlikely(len < 0))
		return len;
	if (apq_unlikely((size_t)len > cap)) {
		if (c->cons != c->released) {
			r = consumer_publish(c);
			if (r)
				return r;
		}
		return -EMSGSIZE;
	}
	apq_copy(buf, payload, (size_t)len);
	consumer_take(c, rec, len);
	/* The packet is the caller's now: a failed check is the next call's
	 * to report. */
	(void)consumer_publish(c);
	return len;
}

APQ_EXPORT int apq_recv_burst(struct apq_consumer *c, struct iovec *bufs,
			      unsigned int n, int64_t timeout_ns)
{
	const unsigned char *payload;
	unsigned int i;
	size_t bytes = 0;
	uint32_t rec;
	ssize_t len;
	int r;

	if (!bufs && n)
		return -EINVAL;
	if (n == 0)
		return c ? 0 : -EINVAL;
	r = consumer_begin(c, bufs[0].iov_base, bufs[0].iov_len);
	if (r)
		return r;
	len = consumer_get(c, &payload, &rec, timeout_ns);
	for (i = 0; i < n && len >= 0; i++) {
		if ((size_t)len > bufs[i].iov_len ||
		    (!bufs[i].iov_base && bufs[i].iov_len))
			break;
		apq_copy(bufs[i].iov_base, payload, (size_t)len);
		bufs[i].iov_len = (size_t)len;
		c->cons += rec;
		bytes += (size_t)len;
		if (i + 1 < n)
			len = consumer_next(c, &payload, &rec);
	}
	apq_endpoint_count(&c->ep, i, bytes);
	if (c->cons != c->released)
		(void)consumer_publish(c);	/* as in apq_recv() */
	if (i > 0)
		return (int)i;
	return len < 0 ? (int)len : -EMSGSIZE;
}

APQ_EXPORT int apq_consumer_arm(struct apq_consumer *c)
{
	int r = consumer_begin(c, NULL, 0);

	if (r)
		return r;
	/* Pads passed are space the producer may be waiting for. */
	if (c->cons != c->released) {
		r = consumer_publish(c);
		if (r)
			return r;
	}
	r = apq_sleeper_arm_internal(&c->ep.sleeper, consumer_has_data, c);
	return r < 0 ? consumer_fail(c, r) : r;
}

APQ_EXPORT ssize_t apq_peek(struct apq_consumer *c, const void **pkt,
			    int64_t timeout_ns)
{
	const unsigned char *payload;
	uint32_t rec;
	ssize_t len;

	if (!c || !pkt)
		return -EINVAL;
	if (c->ep.err)
		return c->ep.err;
	len = consumer_get(c, &payload, &rec, timeout_ns);
	if (len < 0)
		return len;
	*pkt = payload;
	consumer_take(c, rec, len);
	c->peeked++;
	return len;
}

APQ_EXPORT int apq_release(struct apq_consumer *c)
{
	if (!c)
		return -EINVAL;
	if (c->ep.err)
		return c->ep.err;
	c->peeked = 0;
	c->sleep_seen = false;
	c->stuck = false;
	return c->cons != c->released ? consumer_publish(c) : 0;
}

APQ_EXPORT int apq_consumer_attach(struct apq_consumer **out, void *mem,
				   size_t mem_bytes, struct apq_notifier *n,
				   const struct apq_config *cfg)
{
	struct apq_region *region = mem;
	struct apq_region_state state;
	struct apq_consumer *c;
	int r;

	r = apq_region_open(mem, mem_bytes, out, n, cfg, &state);
	if (r)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = apq_endpoint_init(&c->ep, region, state.ring_bytes,
			      &region->data_word, APQ_CHANNEL_DATA,
			      &region->space_word, APQ_CHANNEL_SPACE, n, cfg);
	if (r) {
		free(c);
		return r;
	}
	c->cons = state.cons;
	c->released = state.cons;
	c->prod_cache = state.prod;
	*out = c;
	return 0;
}

APQ_EXPORT void apq_consumer_detach(struct apq_consumer *c)
{
	if (!c)
		return;
	/* Peeked packets count as received: a later consumer must not see
	 * them again. */
	if (c->cons != c->released)
		apq_store_release(&c->ep.region->cons, c->cons);	/* R2 */
	apq_endpoint_fini(&c->ep);
	free(c);
}

APQ_EXPORT int apq_consumer_stats(const struct apq_consumer *c,
				  struct apq_stats *out)
{
	if (!c || !out)
		return -EINVAL;
	apq_endpoint_stats(&c->ep, out);
	return 0;
}
