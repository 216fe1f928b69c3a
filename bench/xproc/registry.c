/* SPDX-License-Identifier: MIT */
/*
 * registry.c - the two-process queues this build has, and those it left out.
 *
 * meson.build defines BENCH_HAVE_ICEORYX and BENCH_HAVE_BOOST when it found
 * the packages.  apq and bare-ring are always there.  ISO C has no empty
 * arrays, so the list of missing queues always holds one element more than
 * it declares.
 */
#include <stddef.h>

#include "xproc.h"

const struct bench_xproc_impl *const bench_xproc_impls[] = {
	&bench_xproc_apq,
#ifdef BENCH_HAVE_ICEORYX
	&bench_xproc_iceoryx,
#endif
#ifdef BENCH_HAVE_BOOST
	&bench_xproc_boost,
#endif
	&bench_xproc_bare,
};

const size_t bench_n_xproc_impls =
	sizeof(bench_xproc_impls) / sizeof(bench_xproc_impls[0]);

const struct bench_missing bench_xproc_missing[] = {
#ifndef BENCH_HAVE_ICEORYX
	{ "iceoryx", "not built: the iceoryx C binding (Debian: "
		     "libiceoryx-binding-c-dev) was not found" },
#endif
#ifndef BENCH_HAVE_BOOST
	{ "boost-mq", "not built: a C++ compiler or Boost.Interprocess "
		      "(Debian: g++, libboost-dev) was not found" },
#endif
	{ NULL, NULL },		/* not counted: keeps the array non-empty */
};

const size_t bench_n_xproc_missing =
	sizeof(bench_xproc_missing) / sizeof(bench_xproc_missing[0]) - 1;
