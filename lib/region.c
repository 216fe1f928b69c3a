/* SPDX-License-Identifier: MIT */
/* Regions: sizing, initialisation, and the checks both sides run on attach. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <apq/ring.h>

#include "atomic.h"
#include "policy.h"
#include "region.h"
#include "util.h"

_Static_assert(offsetof(struct apq_region, prod) == 128, "layout");
_Static_assert(offsetof(struct apq_region, cons) == 256, "layout");
_Static_assert(offsetof(struct apq_region, data_word) == 384, "layout");
_Static_assert(offsetof(struct apq_region, space_word) == 512, "layout");
_Static_assert(sizeof(struct apq_region) == 640, "layout");

APQ_EXPORT size_t apq_region_size(size_t ring_bytes)
{
	if (!ring_bytes_valid(ring_bytes))
		return 0;
	return sizeof(struct apq_region) + ring_bytes;
}

APQ_EXPORT size_t apq_packet_max(size_t ring_bytes)
{
	if (!ring_bytes_valid(ring_bytes))
		return 0;
	return ring_bytes - REC_HEADER;
}

APQ_EXPORT int apq_region_init(void *mem, size_t mem_bytes, size_t ring_bytes)
{
	struct apq_region *r = mem;

	if (!mem || (uintptr_t)mem % 64 != 0 || !ring_bytes_valid(ring_bytes) ||
	    mem_bytes < apq_region_size(ring_bytes))
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->magic = REGION_MAGIC;
	r->version = REGION_VERSION;
	r->ring_bytes = (uint32_t)ring_bytes;
	apq_mode_word_init(&r->data_word);
	apq_mode_word_init(&r->space_word);
	return 0;
}

int apq_config_check(const struct apq_config *cfg)
{
	size_t i;

	if (!cfg)
		return 0;
	if (apq_policy_check(cfg) || cfg->flags)
		return -EINVAL;
	for (i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
		if (cfg->reserved[i])
			return -EINVAL;
	return 0;
}

int apq_region_open(void *mem, size_t mem_bytes, const void *out,
		    const struct apq_notifier *n, const struct apq_config *cfg,
		    struct apq_region_state *state)
{
	struct apq_region *r = mem;
	uint32_t magic, version, size, prod, cons;

	if (!out || !mem || !n || (uintptr_t)mem % 64 != 0 ||
	    mem_bytes < apq_region_size(RING_MIN))
		return -EINVAL;
	if (apq_config_check(cfg))
		return -EINVAL;
	/* Single fetch of each header field; the copies are all we use. */
	magic = apq_load_once(&r->magic);
	version = apq_load_once(&r->version);
	size = apq_load_once(&r->ring_bytes);
	if (magic != REGION_MAGIC || version != REGION_VERSION ||
	    !ring_bytes_valid(size) || apq_region_size(size) > mem_bytes)
		return -EPROTO;
	/* Single fetch of each index: the peer writes one, an earlier
	 * incarnation of this side left the other, and either may be corrupt.
	 * Acquire: A2 and A3 as in consumer_refresh() and producer_refresh(). */
	prod = apq_load_acquire(&r->prod);
	cons = apq_load_acquire(&r->cons);
	if ((uint32_t)(prod - cons) > size || prod % REC_HEADER ||
	    cons % REC_HEADER)
		return -EPROTO;
	*state = (struct apq_region_state){
		.ring_bytes = size,
		.prod = prod,
		.cons = cons,
	};
	return 0;
}
