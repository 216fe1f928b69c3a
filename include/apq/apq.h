/* SPDX-License-Identifier: MIT */
/*
 * apq/apq.h - adaptive poll/notify queues: everything in one include.
 *
 * A producer hands packets to a consumer through a lock-free single-producer
 * single-consumer ring in shared memory.  Each side publishes whether it is
 * POLLING or SLEEPING, and the other side sends a wakeup (futex wake, Xen
 * event, eventfd write) only to a sleeper: under load almost no wakeups are
 * sent, and when idle the consumer sleeps instead of burning a core.
 *
 *   <apq/ring.h>      regions, producers, consumers: send and receive
 *   <apq/mode.h>      the mode state machine alone, for a ring you already have
 *   <apq/notifier.h>  wakeup backends
 *   <apq/common.h>    policies, configuration, statistics
 *   <apq/version.h>   the version compiled against, and apq_version()
 *   <apq/xen.h>       Xen event channels and grant-shared regions (not
 *                     included here: it needs Xen's headers)
 *
 * Errors are negative errno values; success is 0 or a length.
 */
#ifndef APQ_APQ_H
#define APQ_APQ_H

#include <apq/common.h>
#include <apq/mode.h>
#include <apq/notifier.h>
#include <apq/ring.h>
#include <apq/version.h>

#endif /* APQ_APQ_H */
