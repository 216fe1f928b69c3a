/* SPDX-License-Identifier: MIT */
/* What producers and consumers share: attach, detach, counters. */
#include "endpoint.h"

int apq_endpoint_init(struct apq_endpoint *e, struct apq_region *region,
		      uint32_t ring_bytes, struct apq_mode_word *own_word,
		      enum apq_channel own_channel,
		      struct apq_mode_word *peer_word,
		      enum apq_channel peer_channel, struct apq_notifier *n,
		      const struct apq_config *cfg)
{
	int r = apq_sleeper_init(&e->sleeper, own_word, own_channel, n, cfg);

	if (r)
		return r;
	apq_waker_init(&e->waker, peer_word, peer_channel, n, cfg);
	/* Asymmetric fences (asym.h): only on private memory, where the
	 * peer is surely a thread of this process and within our barrier's
	 * reach, as we are within its. */
	if (apq_mem_kind(region) == APQ_MEM_PRIVATE &&
	    apq_sleeper_use_asym(&e->sleeper, &e->packets) == 0)
		apq_waker_skip_b2(&e->waker);
	apq_peer_watch_init(&e->watch, mode_layout(peer_word));
	e->region = region;
	e->ring = region->ring;
	e->size = ring_bytes;
	return 0;
}

void apq_endpoint_fini(struct apq_endpoint *e)
{
	apq_sleeper_mark_closed(&e->sleeper);
	/* Wake a peer that sleeps, so that it sees the close (B2 inside). */
	(void)apq_waker_check(&e->waker);
	apq_peer_watch_fini(&e->watch);
}

void apq_endpoint_stats(const struct apq_endpoint *e, struct apq_stats *out)
{
	*out = (struct apq_stats){
		.packets = apq_counter(&e->packets),
		.bytes = apq_counter(&e->bytes),
	};
	apq_sleeper_add_stats(&e->sleeper, out);
	apq_waker_add_stats(&e->waker, out);
}
