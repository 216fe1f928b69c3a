/* SPDX-License-Identifier: MIT */
/* Until bench/peers/ exists: no peer adapters (meson picks this file only
 * then). */
#include "bench.h"

const struct bench_impl *const bench_peer_impls[] = { NULL };
const size_t bench_n_peer_impls = 0;
const struct bench_missing bench_peer_missing[] = {
	{ "peers", "bench/peers/ is not in this tree yet" },
};
const size_t bench_n_peer_missing = 1;
