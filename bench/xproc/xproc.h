/* SPDX-License-Identifier: MIT */
/*
 * xproc.h - what the two-process adapters of apq-bench share: their
 * declarations and a clock.  The contract itself is in ../bench.h.
 *
 *   xproc-apq.c        apq over a MAP_SHARED memfd, futex notifiers
 *   xproc-iceoryx.c    Eclipse iceoryx through its C binding, RouDi started
 *                      by setup
 *   xproc-boost.cpp    Boost.Interprocess message_queue
 *   xproc-bare.c       bare-ring, the ceiling: a minimal busy-polling ring
 *   registry.c         the table the harness reads
 */
#ifndef APQ_BENCH_XPROC_H
#define APQ_BENCH_XPROC_H

#include <stdint.h>
#include <time.h>

#include "../bench.h"

#ifdef __cplusplus
extern "C" {
#endif

extern const struct bench_xproc_impl bench_xproc_apq;
extern const struct bench_xproc_impl bench_xproc_iceoryx;	/* BENCH_HAVE_ICEORYX */
extern const struct bench_xproc_impl bench_xproc_boost;		/* BENCH_HAVE_BOOST */
extern const struct bench_xproc_impl bench_xproc_bare;

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t xproc_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

#ifdef __cplusplus
}
#endif

#endif /* APQ_BENCH_XPROC_H */
