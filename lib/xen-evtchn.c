/* SPDX-License-Identifier: MIT */
/*
 * The Xen notifier: one event channel (libxenevtchn).  An event says only
 * "state may have changed": the region's wake sequence says whether a wake
 * was meant for a sleeper, so coalesced events and the one Xen raises at
 * bind time cost at most a spurious wakeup.
 *
 * A peer process that goes away clears its liveness byte on the link page
 * (xen-region.c) and raises the event: its kernel does that as it unmaps.
 * A peer domain that is destroyed does neither, since its kernel never
 * runs again; but Xen turns our end of the channel from interdomain back
 * to unbound.  So a wait also asks Xen for the port's state
 * (EVTCHNOP_status, through libxencall): before it blocks, and every
 * PORT_SLICE_NS while it does, so a destroyed peer is seen within about
 * that long of its last packet.  That takes /dev/xen/privcmd; without it
 * only the liveness byte tells.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* The hypercall ABI of Xen 4.6 on, for EVTCHNOP_status: without it Xen's
 * headers (xenevtchn.h includes them) name the pre-3.2 compat call. */
#define __XEN_INTERFACE_VERSION__ 0x00040600
#include <xen/event_channel.h>
#include <xencall.h>
#include <xenevtchn.h>

#include <apq/xen.h>

#include "atomic.h"
#include "fdwait.h"
#include "flood.h"
#include "mode.h"
#include "region.h"
#include "util.h"
#include "xen.h"

/* Liveness byte value that Xen's unmap notification writes. */
#define LINK_GONE	0

/* How often at most a wait asks Xen for the port's state (a hypercall,
 * microseconds natively), and how long a blocked wait goes without asking:
 * 50 wakeups a second of an idle sleeper, for a destroyed peer seen within
 * 20 ms. */
#define PORT_CHECK_NS	(10 * 1000 * 1000)
#define PORT_SLICE_NS	(20 * 1000 * 1000)

struct xen_evtchn {
	struct apq_notifier *base;
	xenevtchn_handle *xce;
	evtchn_port_t port;
	bool owns_handle;
	/* Only one thread may poll the handle and take its events (see
	 * xenevtchn_fd() in xenevtchn.h); fw.lock guards the rest. */
	struct apq_fdwait fw;
	/* Set while a region is served. */
	const struct apq_region *region;
	const uint8_t *peer_alive;
	/* Event storms in event loops (xen_ack()): the wake sequences the
	 * last ack saw, and a port left masked until late_until. */
	struct apq_flood storm;
	uint32_t acked_seq[2];
	bool masked;
	int64_t late_until;
	/* The port's state (NULL: no /dev/xen/privcmd); status points into
	 * hypercall-safe memory of xcall. */
	xencall_handle *xcall;
	struct evtchn_status *status;
	int64_t port_checked_at;
	bool port_connected;	/* seen interdomain once */
};

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

struct xentoollog_logger apq_xen_quiet_logger = {
	.vmessage = quiet_vmessage,
	.destroy = quiet_destroy,
};

/*
 * With fw.lock held: -EPIPE if the port, once connected, is no longer: the
 * peer's domain (or, in the same domain, its handle) is gone.  A port that
 * was never seen connected is one whose peer has not bound yet (the side
 * that bound it unbound waits for that), and says nothing.
 */
static int xen_port_check(struct xen_evtchn *x)
{
	int64_t now;

	if (!x->xcall)
		return 0;
	now = apq_now_ns();
	if (now - x->port_checked_at < PORT_CHECK_NS)
		return 0;
	x->port_checked_at = now;
	x->status->dom = DOMID_SELF;
	x->status->port = x->port;
	if (xencall2(x->xcall, __HYPERVISOR_event_channel_op, EVTCHNOP_status,
		     (uint64_t)(uintptr_t)x->status) < 0)
		return 0;	/* cannot tell: the liveness byte still can */
	if (x->status->status == EVTCHNSTAT_interdomain) {
		x->port_connected = true;
		return 0;
	}
	return x->port_connected ? -EPIPE : 0;
}

/* The port-state check's handle and buffer; without them (no privcmd: an
 * unprivileged process, a domain without the driver) the check is off. */
static void xen_port_open(struct xen_evtchn *x)
{
	x->xcall = xencall_open(&apq_xen_quiet_logger, 0);
	if (!x->xcall)
		return;
	x->status = xencall_alloc_buffer(x->xcall, sizeof(*x->status));
	if (!x->status) {
		xencall_close(x->xcall);
		x->xcall = NULL;
		return;
	}
	x->fw.check_every_ns = PORT_SLICE_NS;
}

static void xen_port_close(struct xen_evtchn *x)
{
	if (!x->xcall)
		return;
	xencall_free_buffer(x->xcall, x->status);
	xencall_close(x->xcall);
}

/* With fw.lock held: -EPIPE if the peer's liveness byte says gone, or its
 * domain is.  Single fetch; any value but GONE is alive, so a peer that
 * scribbles on it harms only itself. */
static int xen_check(void *ctx)
{
	struct xen_evtchn *x = ctx;

	if (x->peer_alive && apq_load_once(x->peer_alive) == LINK_GONE)
		return -EPIPE;
	return xen_port_check(x);
}

/* Take one pending event (the descriptor is readable) and unmask it. */
static int xen_take(void *ctx)
{
	struct xen_evtchn *x = ctx;
	xenevtchn_port_or_error_t port = xenevtchn_pending(x->xce);

	if (port < 0 || xenevtchn_unmask(x->xce, (evtchn_port_t)port) < 0)
		return -errno;
	return 0;
}

/* With fw.lock held: an event loop's ack left the port masked (a storm):
 * a blocking wait must listen again. */
static int xen_unmask_late(void *ctx)
{
	struct xen_evtchn *x = ctx;

	if (!x->masked)
		return 0;
	x->masked = false;
	return xenevtchn_unmask(x->xce, x->port) < 0 ? -errno : 0;
}

static const struct apq_fdwait_ops xen_fdwait = {
	.take = xen_take,
	.check = xen_check,
	.prepare = xen_unmask_late,
};

static int xen_wait(void *ctx, enum apq_channel ch, const uint32_t *seq,
		    uint32_t token, int64_t timeout_ns)
{
	struct xen_evtchn *x = ctx;

	(void)ch;
	/* Returns after every event: the sleeper looks, and counts an event
	 * that brought nothing as a spurious wakeup (and pauses in a storm
	 * of them: flood.h). */
	return apq_fdwait(&x->fw, xenevtchn_fd(x->xce), &xen_fdwait, x, seq,
			  token, apq_now_ns() + timeout_ns);
}

static int xen_wake(void *ctx, enum apq_channel ch, uint32_t *seq)
{
	struct xen_evtchn *x = ctx;

	(void)ch;
	(void)seq;
	/* Whether anyone waited, an event channel does not tell. */
	return xenevtchn_notify(x->xce, x->port) < 0 ? -errno : 1;
}

static int xen_fd(void *ctx)
{
	return xenevtchn_fd(((struct xen_evtchn *)ctx)->xce);
}

static int xen_peer(void *ctx)
{
	struct xen_evtchn *x = ctx;
	int r;

	pthread_mutex_lock(&x->fw.lock);
	r = xen_check(x);
	pthread_mutex_unlock(&x->fw.lock);
	return r;
}

/*
 * With fw.lock held: whether the event just taken moved neither of the
 * served region's wake sequences since the last ack: an event that brought
 * nothing.  Without a region, the notifier cannot tell, and says no.
 */
static bool xen_event_spurious(struct xen_evtchn *x)
{
	uint32_t seq[2];
	bool same;

	if (!x->region)
		return false;
	/* Single fetch of each; compared only with what we read before. */
	seq[0] = apq_load_once(&mode_layout((struct apq_mode_word *)
					    &x->region->data_word)->seq);
	seq[1] = apq_load_once(&mode_layout((struct apq_mode_word *)
					    &x->region->space_word)->seq);
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
static int xen_ack(void *ctx)
{
	struct xen_evtchn *x = ctx;
	struct pollfd pfd = { .fd = xenevtchn_fd(x->xce), .events = POLLIN };
	xenevtchn_port_or_error_t port;
	int64_t now = apq_now_ns(), pause;
	int r = 0;

	pthread_mutex_lock(&x->fw.lock);
	if (x->masked && now >= x->late_until)
		r = xen_unmask_late(x);
	/* A waiter that polls takes the events itself; and xenevtchn_pending()
	 * blocks when nothing is pending, hence the zero-timeout poll. */
	if (r == 0 && !x->fw.polling && !x->masked && poll(&pfd, 1, 0) == 1) {
		port = xenevtchn_pending(x->xce);
		pause = port >= 0 && xen_event_spurious(x)
			? apq_flood_event(&x->storm, now, APQ_SPURIOUS_BUDGET)
			: 0;
		if (port < 0) {
			r = -errno;
		} else if (pause) {
			x->masked = true;
			x->late_until = now + pause;
			apq_notifier_loop_timer(x->base, pause);
			apq_flood_paused(&x->storm, x->late_until);
			r = 1;
		} else {
			r = xenevtchn_unmask(x->xce, (evtchn_port_t)port) < 0
				? -errno : 1;
		}
	}
	pthread_mutex_unlock(&x->fw.lock);
	return r;
}

static void xen_destroy(void *ctx)
{
	struct xen_evtchn *x = ctx;

	if (x->owns_handle) {
		xenevtchn_unbind(x->xce, x->port);
		xenevtchn_close(x->xce);
	}
	xen_port_close(x);
	apq_fdwait_fini(&x->fw);
	free(x);
}

static const struct apq_notifier_ops xen_ops = {
	.size = sizeof(struct apq_notifier_ops),
	.wait = xen_wait,
	.wake = xen_wake,
	.fd = xen_fd,
	.ack = xen_ack,
	.peer = xen_peer,
	.destroy = xen_destroy,
};

struct xen_evtchn *apq_xen_evtchn_of(const struct apq_notifier *n)
{
	return n && n->ops == &xen_ops ? n->ctx : NULL;
}

uint32_t apq_xen_evtchn_port(const struct xen_evtchn *x)
{
	return x->port;
}

int apq_xen_evtchn_serve(struct xen_evtchn *x, const void *region_mem,
			 const uint8_t *peer_alive)
{
	int r = 0;

	pthread_mutex_lock(&x->fw.lock);
	if (x->region) {
		r = -EINVAL;
	} else {
		x->region = region_mem;
		x->peer_alive = peer_alive;
	}
	pthread_mutex_unlock(&x->fw.lock);
	return r;
}

bool apq_xen_evtchn_serving(struct xen_evtchn *x)
{
	bool r;

	pthread_mutex_lock(&x->fw.lock);
	r = x->region != NULL;
	pthread_mutex_unlock(&x->fw.lock);
	return r;
}

void apq_xen_evtchn_unserve(struct xen_evtchn *x, const void *region_mem)
{
	pthread_mutex_lock(&x->fw.lock);
	if (x->region == region_mem) {
		x->region = NULL;
		x->peer_alive = NULL;
	}
	pthread_mutex_unlock(&x->fw.lock);
}

/* Wrap a bound port.  The event-loop descriptor is made at once: xen.h
 * hands it out through a const pointer. */
static int xen_new(struct apq_notifier **out, xenevtchn_handle *xce,
		   evtchn_port_t port, bool owns_handle)
{
	struct xen_evtchn *x = calloc(1, sizeof(*x));
	int r;

	if (!x)
		return -ENOMEM;
	r = apq_fdwait_init(&x->fw);
	if (r) {
		free(x);
		return r;
	}
	x->xce = xce;
	x->port = port;
	xen_port_open(x);
	r = apq_notifier_new(out, &xen_ops, x);
	if (r == 0) {
		x->base = *out;
		r = apq_notifier_fd(*out);
		if (r >= 0) {
			x->owns_handle = owns_handle;
			return 0;
		}
		apq_notifier_free(*out);	/* frees x: it owns no handle */
		return r;
	}
	xen_port_close(x);
	apq_fdwait_fini(&x->fw);
	free(x);
	return r;
}

/* Open a handle, bind, wrap both. */
static int xen_bind(struct apq_notifier **out, uint32_t domid,
		    uint32_t remote_port, bool interdomain)
{
	xenevtchn_handle *xce;
	xenevtchn_port_or_error_t port;
	int r;

	if (!out)
		return -EINVAL;
	xce = xenevtchn_open(&apq_xen_quiet_logger, 0);
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
	r = xen_new(out, xce, (evtchn_port_t)port, true);
	if (r) {
		xenevtchn_unbind(xce, (evtchn_port_t)port);
		xenevtchn_close(xce);
	}
	return r;
}

APQ_EXPORT int apq_notifier_xen_unbound(struct apq_notifier **out,
					uint32_t remote_domid)
{
	return xen_bind(out, remote_domid, 0, false);
}

APQ_EXPORT int apq_notifier_xen_interdomain(struct apq_notifier **out,
					    uint32_t remote_domid,
					    uint32_t remote_port)
{
	return xen_bind(out, remote_domid, remote_port, true);
}

APQ_EXPORT int apq_notifier_xen_adopt(struct apq_notifier **out,
				      struct xenevtchn_handle *xce,
				      uint32_t local_port)
{
	if (!out || !xce)
		return -EINVAL;
	return xen_new(out, xce, local_port, false);
}

APQ_EXPORT int apq_notifier_xen_port(const struct apq_notifier *n)
{
	const struct xen_evtchn *x = apq_xen_evtchn_of(n);

	return x ? (int)x->port : -EINVAL;
}

APQ_EXPORT int apq_notifier_xen_fd(const struct apq_notifier *n)
{
	return apq_xen_evtchn_of(n) ? n->loop_fd : -EINVAL;
}
