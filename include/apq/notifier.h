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
 *   futex    Linux futexes on the sequence word.  Works between threads and,
 *            over MAP_SHARED memory, between processes (non-private futex
 *            operations), with nothing to exchange but the memory.
 *   eventfd  Each side sleeps on an eventfd of its own, which the other side
 *            writes to wake it.  Between threads, or between processes that
 *            pass the descriptors (at fork, or over a UNIX socket).
 *   Xen      Event channels between domains: <apq/xen.h>.
 *   yours    apq_notifier_create() takes a table of operations, as
 *            ConcurrencyKit's ck_ec does.
 *
 * Event loops
 *   Every notifier has a descriptor for poll(), epoll, libuv or libevent
 *   (apq_notifier_fd()).  A consumer that lives in an event loop receives
 *   with timeout 0 until -EAGAIN, then calls apq_consumer_arm(): it returns
 *   0 when the loop may block, and from then on a wake the consumer needs
 *   makes the descriptor readable.  When it is, apq_notifier_ack() and
 *   receive again.  A producer waiting for room does the same with
 *   apq_producer_arm(), a sleeper of <apq/mode.h> with apq_sleeper_arm().
 *   Call apq_notifier_fd() before the first arm: an arm before it has no
 *   loop to wake.  With the eventfd backend, a notifier polled by a loop
 *   should not also serve a thread that blocks in apq calls: both take
 *   wakes from the one eventfd, and a wake the thread takes reaches the
 *   loop only at the backstop.  Give each its own notifier (and eventfd
 *   pair).  The futex backend has no such limit.
 */
#ifndef APQ_NOTIFIER_H
#define APQ_NOTIFIER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct apq_notifier;

/* Which direction a word serves; backends whose wakeups are not addressed by
 * the word itself use it to keep the two directions apart. */
enum apq_channel {
	APQ_CHANNEL_DATA = 0,	/* wakes a consumer: data arrived */
	APQ_CHANNEL_SPACE = 1,	/* wakes a producer: space was freed */
};

/*
 * Create a futex notifier.
 *
 * @return 0 and *out set; -EINVAL if out is NULL; -ENOMEM.
 * Concurrency: any thread.  The notifier may then be shared by the endpoints
 *   of this process, from their own threads.
 */
int apq_notifier_futex(struct apq_notifier **out);

/*
 * Make the two eventfds an eventfd pair of notifiers needs: each side
 * sleeps on one and wakes the other through the other one.  Side A then
 * uses apq_notifier_eventfd(&n, fds[0], fds[1]), side B
 * apq_notifier_eventfd(&n, fds[1], fds[0]).
 *
 * @return 0 and fds[] set (non-blocking, close-on-exec); -EINVAL if fds is
 *   NULL; a negative errno from eventfd().
 */
int apq_eventfd_pair(int fds[2]);

/*
 * Create an eventfd notifier: this side sleeps on wait_fd and wakes its
 * peer by writing to wake_fd, both eventfds (apq_eventfd_pair()).  The
 * notifier takes its own duplicates of both (and makes them non-blocking):
 * the caller may close its descriptors after the call.  A notifier that
 * serves both sides of a region in one process takes one eventfd as both.  wait_fd is also the notifier's event-loop
 * source: it becomes readable only when the peer wakes this side, which it
 * does only for a sleeper that announced SLEEPING.
 *
 * @return 0 and *out set; -EINVAL (out NULL, a descriptor that is not an
 *   eventfd); -ENOMEM; a negative errno from dup().
 * Concurrency: as apq_notifier_futex().
 */
int apq_notifier_eventfd(struct apq_notifier **out, int wait_fd, int wake_fd);

/*
 * The notifier's descriptor, for an event loop to poll (readable: POLLIN).
 * It becomes readable when a wake arrives for a sleeper armed on this
 * notifier (apq_consumer_arm(), apq_producer_arm(), apq_sleeper_arm()),
 * and at the backstop, 50 ms after an arm, so that a lost wake or a peer
 * that died costs the loop at most that much.  The first call sets it up:
 * for futex, a helper thread per sleeping word turns futex wakes into
 * eventfd writes (a futex has no descriptor of its own).
 *
 * @return the descriptor, which the notifier owns; -EINVAL if n is NULL;
 *   -ENOTSUP for a backend of your own without a descriptor; a negative
 *   errno.
 * Concurrency: any thread.
 */
int apq_notifier_fd(struct apq_notifier *n);

/*
 * For an event loop that polls apq_notifier_fd(): take what made it
 * readable, without blocking, so that it stops being readable: the pending
 * notifications, and the backstop's expiry.  Then receive (or send) with
 * timeout 0 until -EAGAIN, arm again and poll.  In a storm of notifications
 * that bring nothing, a backend may stop listening for a while (the
 * descriptor wakes again when it listens), so that the storm costs a
 * bounded share of a CPU.
 *
 * @return 1 if notifications were pending, 0 if none, or a negative errno;
 *   -EINVAL if n is NULL.
 * Concurrency: any thread; a thread blocked in an apq wait on the same
 *   notifier takes the notifications itself.
 */
int apq_notifier_ack(struct apq_notifier *n);

/*
 * A backend of your own.  apq calls these with the ctx given to
 * apq_notifier_create(); it never touches ctx itself.  The sequence words
 * are in the shared region; `seq` of one sleeper is always the same word.
 */
struct apq_notifier_ops {
	/* sizeof(struct apq_notifier_ops) as the caller compiled it, so that
	 * members added later are known to be absent. */
	size_t size;
	/*
	 * Block while *seq equals token, at most timeout_ns (> 0).  May return
	 * early.  @return 0 (the word moved, or may have); -ETIMEDOUT; -EPIPE
	 * if the backend knows the peer is gone; another negative errno, which
	 * the blocked call returns.
	 */
	int (*wait)(void *ctx, enum apq_channel ch, const uint32_t *seq,
		    uint32_t token, int64_t timeout_ns);
	/*
	 * Wake whoever sleeps on *seq, which apq has just bumped (a release
	 * read-modify-write).  @return 1 (woken, or cannot tell); 0 (the
	 * backend knows nobody was waiting); a negative errno.
	 */
	int (*wake)(void *ctx, enum apq_channel ch, uint32_t *seq);
	/* Optional (NULL): the descriptor an event loop polls, readable when a
	 * wake arrives; the backend owns it.  @return it, or a negative errno. */
	int (*fd)(void *ctx);
	/* Optional: a sleeper armed for an event loop: from now on, a move of
	 * *seq away from token must make fd() readable.  @return 0, or a
	 * negative errno if it cannot (the arm call then fails with it). */
	int (*arm)(void *ctx, enum apq_channel ch, const uint32_t *seq,
		   uint32_t token);
	/* Optional: take pending notifications without blocking.  @return 1
	 * if there were some, 0, or a negative errno. */
	int (*ack)(void *ctx);
	/* Optional: -EPIPE if the backend knows the peer is gone, else 0. */
	int (*peer)(void *ctx);
	/* Optional: release ctx (apq_notifier_free()). */
	void (*destroy)(void *ctx);
};

/*
 * Create a notifier over your own backend.  ops must stay valid as long as
 * the notifier; apq copies nothing but the pointers.
 *
 * @return 0 and *out set; -EINVAL (out or ops NULL, ops->size too small for
 *   wait and wake, wait or wake NULL); -ENOMEM.
 */
int apq_notifier_create(struct apq_notifier **out,
			const struct apq_notifier_ops *ops, void *ctx);

/*
 * Free a notifier.  NULL is a no-op.  Every endpoint, sleeper and waker that
 * uses it must have been detached or freed first.
 */
void apq_notifier_free(struct apq_notifier *n);

#ifdef __cplusplus
}
#endif

#endif /* APQ_NOTIFIER_H */
