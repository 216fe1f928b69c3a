/* SPDX-License-Identifier: MIT */
/*
 * registry.c - the peer adapters this build has, and the ones it left out.
 *
 * bench/peers/meson.build defines HAVE_CK, HAVE_DPDK, HAVE_WFCQ,
 * HAVE_MOODYCAMEL (0 or 1) from what it found, and HAVE_CXX when a C++
 * compiler was there.  Each table ends with a sentinel that the counts
 * leave out, since C has no empty arrays: every build compiles, whichever
 * packages are present.
 */
#include <stddef.h>

#include "peers.h"

#if !defined(HAVE_CK) || !defined(HAVE_DPDK) || !defined(HAVE_WFCQ) || \
	!defined(HAVE_MOODYCAMEL) || !defined(HAVE_CXX)
#error "compile with bench_peer_c_args (bench/peers/meson.build): HAVE_*"
#endif

const struct bench_impl *const bench_peer_impls[] = {
	&bench_peer_mutex_impl,		/* plain pthreads: always there */
#if HAVE_CK
	&bench_peer_ck_impl,
#endif
#if HAVE_DPDK
	&bench_peer_rte_impl,
#endif
#if HAVE_WFCQ
	&bench_peer_wfcq_impl,
#endif
#if HAVE_MOODYCAMEL
	&bench_peer_moodycamel_impl,
#endif
	&bench_peer_bare_impl,		/* the ceiling of a ring */
	&bench_peer_null_impl,		/* the harness alone */
	NULL
};

const size_t bench_n_peer_impls =
	sizeof(bench_peer_impls) / sizeof(bench_peer_impls[0]) - 1;

const struct bench_missing bench_peer_missing[] = {
#if !HAVE_CK
	{ "ck_ring", "libck-dev not installed (ck_ring.h)" },
#endif
#if !HAVE_DPDK
	{ "rte_ring",
	  "dpdk-dev not installed (rte_ring.h, librte_ring, librte_eal)" },
#endif
#if !HAVE_WFCQ
	{ "wfcqueue", "liburcu-dev not installed (urcu/wfcqueue.h)" },
#endif
#if !HAVE_MOODYCAMEL && !HAVE_CXX
	{ "moodycamel", "no C++ compiler" },
#elif !HAVE_MOODYCAMEL
	{ "moodycamel", "libreaderwriterqueue-dev not installed "
	  "(readerwriterqueue/readerwriterqueue.h)" },
#endif
	{ NULL, NULL }
};

const size_t bench_n_peer_missing =
	sizeof(bench_peer_missing) / sizeof(bench_peer_missing[0]) - 1;
