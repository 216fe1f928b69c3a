/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend: a notifier over an event channel (libxenevtchn) and
 * regions in granted pages (libxengnttab), with a link page whose liveness
 * bytes Xen's unmap notification clears when a side goes away.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

#include <apq/ring.h>
#include <apq/xen.h>

#include "atomic.h"
#include "flood.h"
#include "mode.h"
#include "notifier.h"
#include "region.h"
#include "util.h"

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

struct xen_notifier {
	struct apq_notifier base;
	xenevtchn_handle *xce;
	evtchn_port_t port;
	bool owns_handle;
	/* Set while a region serves the notifier. */
	const struct apq_xen_region *region;
	const uint8_t *peer_alive;
	/* Only one thread may poll the handle and take its events (see
	 * xenevtchn_fd() in xenevtchn.h); it tells the others through cond. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool polling;
	/* Event storms in event loops (xen_ack()): the wake sequences the
	 * last ack saw, and a port left masked until late_until. */
	struct apq_flood storm;
	uint32_t acked_seq[2];
	bool masked;
	int64_t late_until;
};

struct apq_xen_region {
	struct xen_notifier *notifier;
	enum link_side side;
	xengntshr_handle *xgs;		/* frontend */
	xengnttab_handle *xgt;		/* backend */
	struct xen_link *link;
	void *mem;
	size_t mem_bytes;
	uint32_t pages;
};

/* A library must not print: Xen's libraries log through this instead. */
static void quiet_vmessage(struct xentoollog_logger *logger,
			   xentoollog_level level, int errnoval,
			   const char *context, const char *format, va_list al)
{
	(void)logger;
	(void)level;
	(void)errnoval;
	(void)context;
	(void)format;
	(void)al;
}

static void quiet_destroy(struct xentoollog_logger *logger)
{
	(void)logger;
}

static struct xentoollog_logger quiet_logger = {
	.vmessage = quiet_vmessage,
	.destroy = quiet_destroy,
};

static const struct apq_notifier_ops xen_ops;

static struct xen_notifier *xen_notifier_of(const struct apq_notifier *n)
{
	return n && n->ops == &xen_ops ? (struct xen_notifier *)n : NULL;
}

/* @return 0 if the sequence moved, -EPIPE if the peer went away,
 * -ETIMEDOUT at the deadline, 1 to go on waiting. */
static int xen_wait_state(const struct xen_notifier *x, const uint32_t *seq,
			  uint32_t token, int64_t deadline)
{
	/* Pairs with the waker's release bump in apq_waker_check(). */
	if (apq_load_acquire(seq) != token)
		return 0;
	/* Single fetch of the peer's liveness byte; any value but GONE is
	 * alive, so a peer that scribbles on it harms only itself. */
	if (x->peer_alive && apq_load_once(x->peer_alive) == LINK_GONE)
		return -EPIPE;
	return apq_now_ns() >= deadline ? -ETIMEDOUT : 1;
}

/*
 * Wait for one event until the deadline and consume it.  @return 1 (an
 * event), 0 (a timeout or a signal: the caller re-checks) or a negative
 * errno.
 */
static int xen_take_event(struct xen_notifier *x, int64_t deadline)
{
	int64_t left = deadline - apq_now_ns();
	struct pollfd pfd = { .fd = xenevtchn_fd(x->xce), .events = POLLIN };
	struct timespec ts;
	xenevtchn_port_or_error_t port;
	int r;

	if (left <= 0)
		return 0;
	ts.tv_sec = left / 1000000000;
	ts.tv_nsec = left % 1000000000;
	r = ppoll(&pfd, 1, &ts, NULL);
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	if (r == 0)
		return 0;
	port = xenevtchn_pending(x->xce);
	if (port < 0)
		return -errno;
	if (xenevtchn_unmask(x->xce, (evtchn_port_t)port) < 0)
		return -errno;
	return 1;
}

/* An event loop's ack left the port masked (a storm): listen again. */
static int xen_unmask_late(struct xen_notifier *x)
{
	if (!x->masked)
		return 0;
	x->masked = false;
	return xenevtchn_unmask(x->xce, x->port) < 0 ? -errno : 0;
}

static int xen_wait(struct apq_notifier *n, enum apq_channel ch, uint32_t *seq,
		    uint32_t token, int64_t timeout_ns)
{
	struct xen_notifier *x = (struct xen_notifier *)n;
	int64_t deadline = apq_now_ns() + timeout_ns;
	struct timespec until = {
		.tv_sec = deadline / 1000000000,
		.tv_nsec = deadline % 1000000000,
	};
	int r;

	(void)ch;
	pthread_mutex_lock(&x->lock);
	r = xen_unmask_late(x);
	while (r == 0) {
		r = xen_wait_state(x, seq, token, deadline);
		if (r <= 0)
			break;
		if (x->polling) {
			pthread_cond_timedwait(&x->cond, &x->lock, &until);
			r = 0;
			continue;
		}
		x->polling = true;
		pthread_mutex_unlock(&x->lock);
		r = xen_take_event(x, deadline);
		pthread_mutex_lock(&x->lock);
		x->polling = false;
		/* The event may have been meant for another waiter. */
		pthread_cond_broadcast(&x->cond);
		/* An event: back to the sleeper, which looks, and counts an
		 * event that brought nothing as a spurious wakeup (and in a
		 * storm of them, pauses: flood.h). */
		if (r == 1) {
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

static int xen_wake(struct apq_notifier *n, enum apq_channel ch, uint32_t *seq)
{
	struct xen_notifier *x = (struct xen_notifier *)n;

	(void)ch;
	(void)seq;
	/* Whether anyone waited, an event channel does not tell. */
	return xenevtchn_notify(x->xce, x->port) < 0 ? -errno : 1;
}

static void xen_destroy(struct apq_notifier *n)
{
	struct xen_notifier *x = (struct xen_notifier *)n;

	if (x->owns_handle) {
		xenevtchn_unbind(x->xce, x->port);
		xenevtchn_close(x->xce);
	}
	pthread_cond_destroy(&x->cond);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

static int xen_peer(struct apq_notifier *n)
{
	struct xen_notifier *x = (struct xen_notifier *)n;
	int r;

	pthread_mutex_lock(&x->lock);
	/* Single fetch of the liveness byte, as in xen_wait_state(). */
	r = x->peer_alive && apq_load_once(x->peer_alive) == LINK_GONE
		? -EPIPE : 0;
	pthread_mutex_unlock(&x->lock);
	return r;
}

/*
 * Whether the event just taken moved neither of the region's wake
 * sequences since the last ack: an event that brought nothing.  Without a
 * region, the notifier cannot tell, and says no.
 */
static bool xen_event_spurious(struct xen_notifier *x)
{
	const struct apq_region *region;
	uint32_t seq[2];
	bool same;

	if (!x->region)
		return false;
	region = x->region->mem;
	/* Single fetch of each; compared only with what we read before. */
	seq[0] = apq_load_once(&mode_layout((struct apq_mode_word *)
					    &region->data_word)->seq);
	seq[1] = apq_load_once(&mode_layout((struct apq_mode_word *)
					    &region->space_word)->seq);
	same = seq[0] == x->acked_seq[0] && seq[1] == x->acked_seq[1];
	x->acked_seq[0] = seq[0];
	x->acked_seq[1] = seq[1];
	return same;
}

/*
 * The event loop's take.  An event loop cannot pause, so in a storm of
 * events that brought nothing (flood.h) the port stays masked instead, as
 * Xen's lateeoi does: no interrupts meanwhile, and the loop's timer brings
 * it back after the pause, when the next ack unmasks it.
 */
static int xen_ack(struct apq_notifier *n)
{
	struct xen_notifier *x = (struct xen_notifier *)n;
	struct pollfd pfd = { .fd = xenevtchn_fd(x->xce), .events = POLLIN };
	xenevtchn_port_or_error_t port;
	int64_t now = apq_now_ns(), pause;
	int r = 0;

	pthread_mutex_lock(&x->lock);
	if (x->masked && now >= x->late_until)
		r = xen_unmask_late(x);
	/* A waiter that polls takes the events itself; and xenevtchn_pending()
	 * blocks when nothing is pending, hence the zero-timeout poll. */
	if (r == 0 && !x->polling && !x->masked && poll(&pfd, 1, 0) == 1) {
		port = xenevtchn_pending(x->xce);
		pause = port >= 0 && xen_event_spurious(x)
			? apq_flood_event(&x->storm, now, APQ_SPURIOUS_BUDGET)
			: 0;
		if (port < 0) {
			r = -errno;
		} else if (pause) {
			x->masked = true;
			x->late_until = now + pause;
			apq_notifier_loop_timer(n, pause);
			apq_flood_paused(&x->storm, x->late_until);
			r = 1;
		} else {
			r = xenevtchn_unmask(x->xce, (evtchn_port_t)port) < 0
				? -errno : 1;
		}
	}
	pthread_mutex_unlock(&x->lock);
	return r;
}

static const struct apq_notifier_ops xen_ops = {
	.wait = xen_wait,
	.wake = xen_wake,
	.destroy = xen_destroy,
	.peer = xen_peer,
	.ack = xen_ack,
};

static int xen_notifier_new(struct xen_notifier **out, xenevtchn_handle *xce,
			    evtchn_port_t port, bool owns_handle)
{
	struct xen_notifier *x = calloc(1, sizeof(*x));
	pthread_condattr_t attr;
	int r;

	if (!x || pthread_condattr_init(&attr)) {
		free(x);
		return -ENOMEM;
	}
	/* Deadlines are CLOCK_MONOTONIC, like every apq timeout. */
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) ||
	    pthread_cond_init(&x->cond, &attr)) {
		pthread_condattr_destroy(&attr);
		free(x);
		return -ENOMEM;
	}
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&x->lock, NULL);
	apq_notifier_init(&x->base, &xen_ops);
	x->xce = xce;
	x->port = port;
	x->owns_handle = owns_handle;
	r = apq_notifier_loop_open(&x->base, xenevtchn_fd(xce));
	if (r) {
		pthread_cond_destroy(&x->cond);
		pthread_mutex_destroy(&x->lock);
		free(x);
		return r;
	}
	*out = x;
	return 0;
}

/* Open a handle, bind with bind(), wrap both.  bind returns a port or -1. */
static int xen_notifier_bind(struct apq_notifier **out, uint32_t domid,
			     uint32_t remote_port, bool interdomain)
{
	struct xen_notifier *x;
	xenevtchn_handle *xce;
	xenevtchn_port_or_error_t port;
	int r;

	if (!out)
		return -EINVAL;
	xce = xenevtchn_open(&quiet_logger, 0);
	if (!xce)
		return -errno;
	port = interdomain
		? xenevtchn_bind_interdomain(xce, domid, remote_port)
		: xenevtchn_bind_unbound_port(xce, domid);
	if (port < 0) {
		r = -errno;
		xenevtchn_close(xce);
		return r;
	}
	r = xen_notifier_new(&x, xce, (evtchn_port_t)port, true);
	if (r) {
		xenevtchn_unbind(xce, (evtchn_port_t)port);
		xenevtchn_close(xce);
		return r;
	}
	*out = &x->base;
	return 0;
}

APQ_EXPORT int apq_notifier_xen_unbound(struct apq_notifier **out,
					uint32_t remote_domid)
{
	return xen_notifier_bind(out, remote_domid, 0, false);
}

APQ_EXPORT int apq_notifier_xen_interdomain(struct apq_notifier **out,
					    uint32_t remote_domid,
					    uint32_t remote_port)
{
	return xen_notifier_bind(out, remote_domid, remote_port, true);
}

APQ_EXPORT int apq_notifier_xen_adopt(struct apq_notifier **out,
				      struct xenevtchn_handle *xce,
				      uint32_t local_port)
{
	struct xen_notifier *x;
	int r;

	if (!out || !xce)
		return -EINVAL;
	r = xen_notifier_new(&x, xce, local_port, false);
	if (r)
		return r;
	*out = &x->base;
	return 0;
}

APQ_EXPORT int apq_notifier_xen_port(const struct apq_notifier *n)
{
	const struct xen_notifier *x = xen_notifier_of(n);

	return x ? (int)x->port : -EINVAL;
}

APQ_EXPORT int apq_notifier_xen_fd(const struct apq_notifier *n)
{
	const struct xen_notifier *x = xen_notifier_of(n);

	return x ? x->base.loop_fd : -EINVAL;
}

APQ_EXPORT size_t apq_xen_region_refs(size_t ring_bytes)
{
	size_t bytes = apq_region_size(ring_bytes);

	return bytes ? 1 + (bytes + XEN_PAGE - 1) / XEN_PAGE : 0;
}

static int xen_region_new(struct apq_xen_region **out, size_t ring_bytes,
			  struct apq_notifier *n, const uint32_t *refs,
			  enum link_side side)
{
	struct xen_notifier *x = xen_notifier_of(n);
	struct apq_xen_region *region;

	if (!out || !x || !refs || x->region || !apq_region_size(ring_bytes))
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

/* Let the notifier's waits watch the peer's liveness byte. */
static void xen_region_link(struct apq_xen_region *region)
{
	struct xen_notifier *x = region->notifier;
	enum link_side peer = region->side == LINK_FRONTEND ? LINK_BACKEND
							     : LINK_FRONTEND;

	pthread_mutex_lock(&x->lock);
	x->region = region;
	x->peer_alive = &region->link->alive[peer][0];
	pthread_mutex_unlock(&x->lock);
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
	region->xgs = xengntshr_open(&quiet_logger, 0);
	if (!region->xgs)
		goto fail;
	link = xengntshr_share_page_notify(region->xgs, remote_domid, &refs[0],
					   1, link_notify_offset(LINK_FRONTEND),
					   region->notifier->port);
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
	xen_region_link(region);
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
	region->xgt = xengnttab_open(&quiet_logger, 0);
	if (!region->xgt)
		goto fail;
	link = xengnttab_map_grant_ref_notify(region->xgt, remote_domid,
					      refs[0], PROT_READ | PROT_WRITE,
					      link_notify_offset(LINK_BACKEND),
					      region->notifier->port);
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
	apq_store_once(&link->alive[LINK_BACKEND][0], LINK_ALIVE);
	xen_region_link(region);
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
	struct xen_notifier *x;

	if (!region)
		return;
	x = region->notifier;
	pthread_mutex_lock(&x->lock);
	if (x->region == region) {
		x->region = NULL;
		x->peer_alive = NULL;
	}
	pthread_mutex_unlock(&x->lock);
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
