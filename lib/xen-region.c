/* SPDX-License-Identifier: MIT */
/*
 * Regions in granted pages (libxengnttab).  The frontend allocates and
 * grants the region's pages and a link page; the backend maps them.  The
 * link page is a page of its own because libxengnttab offers unmap
 * notification only on single-page shares, and the region must stay
 * contiguous: each side owns a liveness byte on it, and registers Xen's
 * unmap notification on it, so that when a side's mappings go (it unmaps,
 * exits or is killed) Xen clears its byte and raises the event channel.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <xengnttab.h>

#include <apq/ring.h>
#include <apq/xen.h>

#include "atomic.h"
#include "util.h"
#include "xen.h"

/* Grants are made of 4 KiB pages whatever the CPU's page size. */
#define XEN_PAGE	4096u

#define LINK_MAGIC	UINT32_C(0x4b4e4c41)	/* "ALNK" */

/* Liveness byte values.  GONE is what Xen's unmap notification writes. */
#define LINK_GONE	0
#define LINK_ALIVE	1
#define LINK_PENDING	2	/* the backend has not mapped the region yet */

enum link_side { LINK_FRONTEND, LINK_BACKEND };

/* The link page: written by the frontend before it hands the refs over;
 * afterwards each side writes only its own liveness byte. */
struct xen_link {
	uint32_t magic;
	uint32_t ring_bytes;
	unsigned char pad[56];
	uint8_t alive[2][64];	/* indexed by enum link_side */
};

struct apq_xen_region {
	struct xen_evtchn *notifier;
	bool served;			/* the notifier watches this region */
	enum link_side side;
	xengntshr_handle *xgs;		/* frontend */
	xengnttab_handle *xgt;		/* backend */
	struct xen_link *link;
	void *mem;
	size_t mem_bytes;
	uint32_t pages;
};

APQ_EXPORT size_t apq_xen_region_refs(size_t ring_bytes)
{
	size_t bytes = apq_region_size(ring_bytes);

	return bytes ? 1 + (bytes + XEN_PAGE - 1) / XEN_PAGE : 0;
}

static int xen_region_new(struct apq_xen_region **out, size_t ring_bytes,
			  struct apq_notifier *n, const uint32_t *refs,
			  enum link_side side)
{
	struct xen_evtchn *x = apq_xen_evtchn_of(n);
	struct apq_xen_region *region;

	if (!out || !x || !refs || !apq_region_size(ring_bytes) ||
	    apq_xen_evtchn_serving(x))
		return -EINVAL;
	region = calloc(1, sizeof(*region));
	if (!region)
		return -ENOMEM;
	region->notifier = x;
	region->side = side;
	region->pages = (uint32_t)(apq_xen_region_refs(ring_bytes) - 1);
	region->mem_bytes = (size_t)region->pages * XEN_PAGE;
	*out = region;
	return 0;
}

/* Let the notifier serve the region: its waits watch the peer's liveness
 * byte.  @return 0; -EINVAL if it serves another region already. */
static int xen_region_link(struct apq_xen_region *region)
{
	enum link_side peer = region->side == LINK_FRONTEND ? LINK_BACKEND
							     : LINK_FRONTEND;
	int r = apq_xen_evtchn_serve(region->notifier, region->mem,
				     &region->link->alive[peer][0]);

	region->served = r == 0;
	return r;
}

static uint32_t link_notify_offset(enum link_side side)
{
	return (uint32_t)offsetof(struct xen_link, alive[side][0]);
}

APQ_EXPORT int apq_xen_region_share(struct apq_xen_region **out,
				    uint32_t remote_domid, size_t ring_bytes,
				    struct apq_notifier *n, uint32_t *refs)
{
	struct apq_xen_region *region;
	struct xen_link *link;
	int r = xen_region_new(&region, ring_bytes, n, refs, LINK_FRONTEND);

	if (r)
		return r;
	region->xgs = xengntshr_open(&apq_xen_quiet_logger, 0);
	if (!region->xgs)
		goto fail;
	link = xengntshr_share_page_notify(region->xgs, remote_domid, &refs[0],
					   1, link_notify_offset(LINK_FRONTEND),
					   apq_xen_evtchn_port(region->notifier));
	if (!link)
		goto fail;
	region->link = link;
	/* Nobody maps the pages before it has the refs: plain stores. */
	link->magic = LINK_MAGIC;
	link->ring_bytes = (uint32_t)ring_bytes;
	link->alive[LINK_FRONTEND][0] = LINK_ALIVE;
	link->alive[LINK_BACKEND][0] = LINK_PENDING;
	region->mem = xengntshr_share_pages(region->xgs, remote_domid,
					    (int)region->pages, &refs[1], 1);
	if (!region->mem)
		goto fail;
	apq_region_init(region->mem, region->mem_bytes, ring_bytes);
	r = xen_region_link(region);
	if (r) {
		apq_xen_region_free(region);
		return r;
	}
	*out = region;
	return 0;
fail:
	r = errno ? -errno : -EIO;
	apq_xen_region_free(region);
	return r;
}

APQ_EXPORT int apq_xen_region_map(struct apq_xen_region **out,
				  uint32_t remote_domid, size_t ring_bytes,
				  const uint32_t *refs, struct apq_notifier *n)
{
	struct apq_xen_region *region;
	struct xen_link *link;
	int r = xen_region_new(&region, ring_bytes, n, refs, LINK_BACKEND);

	if (r)
		return r;
	region->xgt = xengnttab_open(&apq_xen_quiet_logger, 0);
	if (!region->xgt)
		goto fail;
	link = xengnttab_map_grant_ref_notify(region->xgt, remote_domid,
					      refs[0], PROT_READ | PROT_WRITE,
					      link_notify_offset(LINK_BACKEND),
					      apq_xen_evtchn_port(region->notifier));
	if (!link)
		goto fail;
	region->link = link;
	/* Single fetch of each field the frontend wrote. */
	if (apq_load_once(&link->magic) != LINK_MAGIC ||
	    apq_load_once(&link->ring_bytes) != ring_bytes) {
		apq_xen_region_free(region);
		return -EPROTO;
	}
	/* The library only reads refs; its prototype lacks the const. */
	region->mem = xengnttab_map_domain_grant_refs(region->xgt,
						      region->pages,
						      remote_domid,
						      (uint32_t *)&refs[1],
						      PROT_READ | PROT_WRITE);
	if (!region->mem)
		goto fail;
	r = xen_region_link(region);
	if (r) {
		apq_xen_region_free(region);
		return r;
	}
	apq_store_once(&link->alive[LINK_BACKEND][0], LINK_ALIVE);
	*out = region;
	return 0;
fail:
	r = errno ? -errno : -EIO;
	apq_xen_region_free(region);
	return r;
}

APQ_EXPORT void *apq_xen_region_mem(const struct apq_xen_region *x)
{
	return x ? x->mem : NULL;
}

APQ_EXPORT size_t apq_xen_region_bytes(const struct apq_xen_region *x)
{
	return x ? x->mem_bytes : 0;
}

APQ_EXPORT void apq_xen_region_free(struct apq_xen_region *region)
{
	if (!region)
		return;
	if (region->served)
		apq_xen_evtchn_unserve(region->notifier, region->mem);
	/* Unmapping the link page is what clears our liveness byte and
	 * raises the event on the peer's side. */
	if (region->xgs) {
		if (region->mem)
			xengntshr_unshare(region->xgs, region->mem,
					  region->pages);
		if (region->link)
			xengntshr_unshare(region->xgs, region->link, 1);
		xengntshr_close(region->xgs);
	}
	if (region->xgt) {
		if (region->mem)
			xengnttab_unmap(region->xgt, region->mem,
					region->pages);
		if (region->link)
			xengnttab_unmap(region->xgt, region->link, 1);
		xengnttab_close(region->xgt);
	}
	free(region);
}
