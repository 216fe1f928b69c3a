/* SPDX-License-Identifier: MIT */
/*
 * What the Xen backend's two halves share (private): xen-evtchn.c, the
 * notifier over an event channel, and xen-region.c, regions in granted
 * pages with the link page whose liveness bytes Xen's unmap notification
 * clears.
 */
#ifndef APQ_LIB_XEN_H
#define APQ_LIB_XEN_H

#include <stdbool.h>
#include <stdint.h>

#include <xentoollog.h>

#include "notifier.h"

/* A library must not print: Xen's libraries log through this instead. */
extern struct xentoollog_logger apq_xen_quiet_logger;

struct xen_evtchn;

/* n's event channel, or NULL if n is not a Xen notifier. */
struct xen_evtchn *apq_xen_evtchn_of(const struct apq_notifier *n);
uint32_t apq_xen_evtchn_port(const struct xen_evtchn *x);

/*
 * Let the notifier serve a region: its waits watch the peer's liveness
 * byte, its event loop's storm guard reads the region's wake sequences.
 * @return 0; -EINVAL if it serves a region already.
 */
int apq_xen_evtchn_serve(struct xen_evtchn *x, const void *region_mem,
			 const uint8_t *peer_alive);
/* Whether the notifier serves a region already. */
bool apq_xen_evtchn_serving(struct xen_evtchn *x);
/* The region goes: stop looking at it. */
void apq_xen_evtchn_unserve(struct xen_evtchn *x, const void *region_mem);

#endif /* APQ_LIB_XEN_H */
