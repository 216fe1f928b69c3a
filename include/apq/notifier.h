/* SPDX-License-Identifier: MIT */
/*
 * apq/notifier.h - how a sleeper blocks and how it is woken.
 *
 * Overview
 *   A notifier is the process-local half of a wakeup mechanism.  The words a
 *   side sleeps on (a mode word and a wake sequence, see <apq/mode.h>) live in
 *   the shared region, so each process builds its own notifier and both still
 *   meet.  One notifier may serve any number of endpoints of its process, a
 *   producer and a consumer at once included.
 *
 * Protocol (what every backend guarantees)
 *   The waker bumps the wake sequence word in shared memory, then notifies.
 *   The sleeper snapshots the sequence before it announces SLEEPING and blocks
 *   only while the sequence still equals the snapshot, so a wake sent between
 *   the snapshot and the block is never lost.  A wait may return early (a
 *   spurious wakeup); the caller re-checks its condition.
 *
 * Backends
 *   futex   Linux futexes on the sequence word.  Works between threads and,
 *           over MAP_SHARED memory, between processes (non-private futex
 *           operations).
 */
#ifndef APQ_NOTIFIER_H
#define APQ_NOTIFIER_H

#ifdef __cplusplus
extern "C" {
#endif

struct apq_notifier;

/*
 * Create a futex notifier.
 *
 * @return 0 and *out set; -EINVAL if out is NULL; -ENOMEM.
 * Concurrency: any thread.  The notifier may then be shared by the endpoints
 *   of this process, from their own threads.
 */
int apq_notifier_futex(struct apq_notifier **out);

/*
 * For an event loop that polls the notifier's file descriptor (Xen:
 * apq_notifier_xen_fd()): take what made it readable, without blocking,
 * so that it stops being readable: the pending notifications, and the
 * backstop's expiry (the descriptor also wakes 50 ms after a sleeper was
 * armed).  Then receive (or send) with timeout 0 until -EAGAIN, arm again
 * (apq_consumer_arm(), apq_producer_arm() or apq_sleeper_arm()) and poll.
 * In a storm of notifications that bring nothing, the notifier stops
 * listening for a while (the descriptor wakes again when it listens), so
 * that the storm costs a bounded share of a CPU.
 *
 * @return 1 if notifications were pending, 0 if none (also for backends
 *   without a descriptor, such as futex), or a negative errno; -EINVAL if n
 *   is NULL.
 * Concurrency: any thread; a thread blocked in an apq wait on the same
 *   notifier takes the notifications itself.
 */
int apq_notifier_ack(struct apq_notifier *n);

/*
 * Free a notifier.  NULL is a no-op.  Every endpoint, sleeper and waker that
 * uses it must have been detached or freed first.
 */
void apq_notifier_free(struct apq_notifier *n);

#ifdef __cplusplus
}
#endif

#endif /* APQ_NOTIFIER_H */
