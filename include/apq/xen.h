/* SPDX-License-Identifier: MIT */
/*
 * apq/xen.h - apq between Xen domains: event channels and granted pages.
 *
 * Overview
 *   A frontend (in a guest) and a backend (in Dom0 or a driver domain) share
 *   an apq region through grant tables and wake each other through an event
 *   channel.  Each domain builds its own notifier, the local end of the one
 *   event channel between them, and its own view of the region:
 *
 *   frontend                                   backend
 *   apq_notifier_xen_unbound(&n, back_domid)
 *   apq_xen_region_share(&x, back_domid,
 *       ring_bytes, n, refs)
 *   publish refs and apq_notifier_xen_port(n)
 *       (xenstore in real deployments)  ---->  read them
 *                                              apq_notifier_xen_interdomain(&n,
 *                                                  front_domid, port)
 *                                              apq_xen_region_map(&x, front_domid,
 *                                                  ring_bytes, refs, n)
 *   apq_producer_attach(...,                   apq_consumer_attach(...,
 *       apq_xen_region_mem(x), ...bytes, n)        apq_xen_region_mem(x), ...bytes, n)
 *
 *   Either side may be producer or consumer, and either may attach first.
 *
 * Semantics of events
 *   An event says only "state may have changed", never how many packets:
 *   events coalesce (they are pending bits, not counters).  The wake sequence
 *   word in the region says whether a wake was meant for the sleeper, so
 *   spurious events, such as the one Xen raises on the binding side's port at
 *   bind time, are absorbed.
 *
 * A peer that goes away
 *   The region carries a link page in which each side owns a liveness byte.
 *   Both sides register Xen's unmap notification on it: when a side's
 *   mappings go, because it unmaps, exits or is killed, its kernel clears
 *   that side's byte and raises the event channel.  A wait on the other side
 *   then returns -EPIPE instead of sleeping on.  A detach, the normal way to
 *   leave, makes the peer see -EPIPE through the ring itself.  A domain that
 *   is destroyed runs no kernel to do this; Xen turns the other end of its
 *   channel back to unbound instead, which waits ask Xen about (before they
 *   block and every 20 ms while blocked, through /dev/xen/privcmd where the
 *   process may open it), so the survivor gets -EPIPE within about 20 ms of
 *   its last packet.  On -EPIPE, detach and free the region: a destroyed domain
 *   lingers until every page it granted is unmapped.
 *
 * Processes
 *   Open Xen handles after fork(): an inherited handle is only safe to close.
 *   One notifier serves one region (one peer).  Several threads of a process
 *   may wait on it at once; one of them polls the event channel and hands
 *   every event on to the others.
 */
#ifndef APQ_XEN_H
#define APQ_XEN_H

#include <stddef.h>
#include <stdint.h>

#include <apq/notifier.h>

#ifdef __cplusplus
extern "C" {
#endif

struct xenevtchn_handle;
struct apq_xen_region;

/*
 * Frontend: open the event channel driver and bind a new port that
 * remote_domid may connect to; apq_notifier_xen_port() tells its number.
 * @return 0; -ENOMEM; a negative errno from the driver (-ENOENT: no
 *   /dev/xen/evtchn, -EACCES: not allowed).
 */
int apq_notifier_xen_unbound(struct apq_notifier **out, uint32_t remote_domid);

/*
 * Backend: bind to remote_port, which remote_domid bound with
 * apq_notifier_xen_unbound().
 * @return 0; -ENOMEM; a negative errno from the driver (-EINVAL: the remote
 *   port is not waiting for us).
 */
int apq_notifier_xen_interdomain(struct apq_notifier **out,
				 uint32_t remote_domid, uint32_t remote_port);

/*
 * Use a port the caller bound already, on its own handle.  The notifier
 * does not unbind the port nor close the handle when freed, and must be the
 * only user of the handle's events while it lives.
 * @return 0; -EINVAL; -ENOMEM.
 */
int apq_notifier_xen_adopt(struct apq_notifier **out,
			   struct xenevtchn_handle *xce, uint32_t local_port);

/* The notifier's local port, or -EINVAL if n is not a Xen notifier. */
int apq_notifier_xen_port(const struct apq_notifier *n);

/*
 * The notifier's event-loop descriptor, as apq_notifier_fd() (kept for
 * callers of version 0.1): it becomes readable when an event is pending on the channel,
 * and also at the backstop, 50 ms after a sleeper was armed
 * (apq_consumer_arm(), apq_producer_arm(), apq_sleeper_arm()), so that a
 * lost event or a peer that died costs at most that much delay.  Take what
 * made it readable with apq_notifier_ack(), never with xenevtchn_pending():
 * apq's own waits consume the events.
 * @return the fd (the notifier owns it), or -EINVAL if n is not a Xen
 *   notifier.
 */
int apq_notifier_xen_fd(const struct apq_notifier *n);

/* Grant references a region with a ring of ring_bytes needs (the region's
 * pages and the link page), or 0 if ring_bytes is not valid. */
size_t apq_xen_region_refs(size_t ring_bytes);

/*
 * Frontend: allocate the pages of a region with a ring of ring_bytes, grant
 * them to remote_domid, lay out an empty region in them, and register the
 * unmap notification on n's port.  refs receives apq_xen_region_refs()
 * grant references, to hand to the backend in this order.
 * @return 0; -EINVAL (bad ring_bytes, NULL argument, n not a Xen notifier,
 *   or already serving a region); -ENOMEM; a negative errno from the driver
 *   (-ENOENT: no /dev/xen/gntalloc).
 */
int apq_xen_region_share(struct apq_xen_region **out, uint32_t remote_domid,
			 size_t ring_bytes, struct apq_notifier *n,
			 uint32_t *refs);

/*
 * Backend: map the region remote_domid shared, refs as the frontend handed
 * them over, and register the unmap notification on n's port.
 * @return 0; -EINVAL (as above); -EPROTO (the link page is not an apq link
 *   page, or for another ring size); -ENOMEM; a negative errno from the
 *   driver (-ENOENT: no /dev/xen/gntdev).
 */
int apq_xen_region_map(struct apq_xen_region **out, uint32_t remote_domid,
		       size_t ring_bytes, const uint32_t *refs,
		       struct apq_notifier *n);

/* The region's memory and size, for apq_producer_attach() or
 * apq_consumer_attach(). */
void *apq_xen_region_mem(const struct apq_xen_region *x);
size_t apq_xen_region_bytes(const struct apq_xen_region *x);

/*
 * Unshare or unmap the region; NULL is a no-op.  The peer's waits then
 * return -EPIPE.  Detach the endpoint first, free the notifier after.
 */
void apq_xen_region_free(struct apq_xen_region *x);

#ifdef __cplusplus
}
#endif

#endif /* APQ_XEN_H */
