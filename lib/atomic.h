/* SPDX-License-Identifier: MIT */
/*
 * Memory-ordering primitives of apq (private).
 *
 * Shared words are accessed through the C11 memory model's __atomic builtins:
 * the compilers map them to plain loads and stores on x86 and to the right
 * barriers elsewhere, and ThreadSanitizer understands them.  liburcu 0.13
 * (Debian 12) has no acquire/release accessors and its CMM_LOAD_SHARED and
 * uatomic_* are volatile accesses or inline assembly that ThreadSanitizer
 * cannot see, so we use liburcu for the pause in polling loops and for
 * futexes.
 * doc/memory-ordering.md lists every barrier pair.
 */
#ifndef APQ_LIB_ATOMIC_H
#define APQ_LIB_ATOMIC_H

#include <urcu/arch.h>

/* A single fetch of a word another thread or process may write. */
#define apq_load_once(p)	__atomic_load_n((p), __ATOMIC_RELAXED)
#define apq_store_once(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define apq_load_acquire(p)	__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define apq_store_release(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)

/*
 * Store->load ordering: the handshake's barriers B1 and B2.  The C11 fence,
 * not liburcu's cmm_smp_mb(): on x86-64 liburcu 0.13 emits mfence, which
 * costs ~20 ns on the AMD EPYC CI machines against ~2 ns for the locked
 * instruction GCC emits here (Linux's smp_mb() made the same switch); any
 * locked instruction orders ordinary stores before later loads.
 */
#define apq_full_barrier()	__atomic_thread_fence(__ATOMIC_SEQ_CST)

#define apq_cpu_relax()		caa_cpu_relax()

#endif /* APQ_LIB_ATOMIC_H */
