/* SPDX-License-Identifier: MIT */
/*
 * Asymmetric fences (private).  The handshake needs store-to-load order on
 * both sides: the waker's B2 after every publishing call, the sleeper's B1
 * after every SLEEPING announcement.  Wakers run once per packet, sleepers
 * once per sleep; so where the kernel can make a barrier for another thread
 * (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED), the sleeper pays for
 * both and the waker pays nothing.
 *
 * The barrier reaches the threads of this process, so it serves private
 * memory only, whose peer is surely one of them.  A sleeper issues it and
 * marks its mode word ASYM while it does (MODE_ASYM in mode.h); a waker on
 * private memory skips B2.  A word without ASYM (a sleeper that does not
 * issue the barrier, or one the waker cannot see yet) sends the waker back
 * to B2 and a second look (apq_waker_check()).  doc/memory-ordering.md has
 * the proof, and why shared memory does without (..._GLOBAL_EXPEDITED
 * misses threads on Linux 6.18: a lost wakeup seen in tests/mutants).
 */
#ifndef APQ_LIB_ASYM_H
#define APQ_LIB_ASYM_H

#include <stdbool.h>

/* Where a region's memory lives, as /proc/self/maps says. */
enum apq_mem_kind {
	APQ_MEM_PRIVATE,	/* a private mapping: this process alone */
	APQ_MEM_SHARED,		/* may be mapped by other processes */
	APQ_MEM_UNKNOWN,	/* /proc could not tell */
};

enum apq_mem_kind apq_mem_kind(const void *mem);

/* Whether this process registered for the barrier (once per process;
 * fork() keeps it, exec() drops it along with the library). */
bool apq_asym_ready(void);

/* The barrier: every running thread of this process executes a full
 * barrier before it returns.  @return 0 or a negative errno. */
int apq_asym_barrier(void);

#endif /* APQ_LIB_ASYM_H */
