/* SPDX-License-Identifier: MIT */
/*
 * What a producer and a consumer share (private): the region and its ring,
 * the sticky error, the two halves of the handshake on their words (a
 * sleeper on its own, a waker on the peer's), the watch on the peer's
 * process, and the counters.  The two sides differ in their index and how
 * they move it; everything mirrored lives here once.
 */
#ifndef APQ_LIB_ENDPOINT_H
#define APQ_LIB_ENDPOINT_H

#include <stdint.h>

#include <apq/common.h>

#include "liveness.h"
#include "mode.h"
#include "notifier.h"
#include "region.h"

struct apq_endpoint {
	struct apq_region *region;
	unsigned char *ring;
	uint32_t size;			/* ring bytes */
	int err;			/* sticky: -EPROTO, or a notifier's */
	struct apq_waker waker;		/* wakes the peer */
	struct apq_sleeper sleeper;	/* waits for the peer */
	struct apq_peer_watch watch;	/* the peer's process */
	uint64_t packets;
	uint64_t bytes;
};

/*
 * Attach: region already opened (apq_region_open()); the sleeper goes on
 * own_word, the waker on peer_word.  @return 0; -EPROTO (own_word corrupt).
 */
int apq_endpoint_init(struct apq_endpoint *e, struct apq_region *region,
		      uint32_t ring_bytes, struct apq_mode_word *own_word,
		      enum apq_channel own_channel,
		      struct apq_mode_word *peer_word,
		      enum apq_channel peer_channel, struct apq_notifier *n,
		      const struct apq_config *cfg);

/* Detach: close our word and wake the peer so that it sees the close. */
void apq_endpoint_fini(struct apq_endpoint *e);

void apq_endpoint_stats(const struct apq_endpoint *e, struct apq_stats *out);

/* An error to return: -EPROTO sticks; a peer that died reads -EPIPE. */
static inline int apq_endpoint_fail(struct apq_endpoint *e, int err)
{
	if (err == -EPROTO)
		e->err = err;
	return err == APQ_PEER_DIED ? -EPIPE : err;
}

/*
 * The wakeup check after this side published (its release store done).
 * @return 0, or the check's failure, which also sticks: what was published
 * is out, but the endpoint can no longer be sure to wake its peer.
 */
static inline int apq_endpoint_wake_check(struct apq_endpoint *e)
{
	int r = apq_waker_check(&e->waker);

	/* -EPIPE: nobody is left to wake; the next call reports it. */
	if (r >= 0 || r == -EPIPE)
		return 0;
	e->err = r;
	return r;
}

/*
 * Whether the peer is gone, from cheapest to dearest: its word closed, the
 * backend's own knowledge, its process.  @return 0; -EPIPE; APQ_PEER_DIED;
 * -EPROTO.
 */
static inline int apq_endpoint_peer_state(struct apq_endpoint *e)
{
	int r = mode_peer_state(e->waker.word);

	if (r == 0)
		r = apq_notifier_peer(e->sleeper.notifier);
	return r ? r : apq_peer_watch_check(&e->watch);
}

static inline void apq_endpoint_count(struct apq_endpoint *e,
				      unsigned int packets, size_t bytes)
{
	apq_count(&e->packets, packets);
	apq_count(&e->bytes, bytes);
}

#endif /* APQ_LIB_ENDPOINT_H */
