/* SPDX-License-Identifier: MIT */
/*
 * apq/ring.h - the single-producer single-consumer packet ring.
 *
 * Overview
 *   A region is one contiguous block of memory the caller provides (malloc,
 *   a MAP_SHARED memfd, grant-mapped Xen pages): a control area, then a ring
 *   of ring_bytes bytes holding variable-length packets.  The region holds
 *   offsets only, never pointers, so both sides may map it at different
 *   addresses.  Producer and consumer fields sit on separate cache lines, and
 *   each side caches the peer's index, so a send or recv touches the peer's
 *   line only when its cached view runs out.
 *
 *   A producer and a consumer attach to the region, each in its own thread or
 *   process, each with a notifier of its own process (<apq/notifier.h>).  A
 *   side that must wait polls as its policy says, then sleeps; the other side
 *   wakes it only if it sleeps (<apq/mode.h> describes the handshake).
 *
 * Names
 *   burst: as many packets as possible, at least one.  Zero-copy calls work
 *   in the ring itself: apq_reserve()/apq_commit() on the producer side,
 *   apq_peek()/apq_release() on the consumer side.
 *
 * Timeouts
 *   timeout_ns 0: do not block; < 0: block forever; > 0: at most that long
 *   (CLOCK_MONOTONIC).  Signals never end a wait early.
 *
 * Errors
 *   Every call returns -EINVAL for a NULL endpoint or buffer pointer (a NULL
 *   buffer with length 0 is fine).  When an error happens after packets have
 *   changed hands (the wakeup check after a publish finds the peer's mode
 *   word corrupt, or the notifier fails), the endpoint keeps the error and
 *   returns it from every later call; the calls below say whether they also
 *   return it at once.
 *
 * A peer that goes away
 *   -EPIPE means the peer detached, or its process died.  A side that
 *   detaches tells the other at once; a process that dies cannot, so each
 *   side watches its peer's process (through a pidfd, found from what the
 *   peer wrote into its mode word at attach) whenever it has nothing to do,
 *   and notices a death within about 50 ms when it blocks, 10 ms when it
 *   polls or calls with timeout 0.  A consumer first receives every packet
 *   the peer published; a producer may queue up to a ring's worth of
 *   packets into a dead consumer's ring before it learns.  Limits: threads of
 *   one process are one peer, and a peer in another pid namespace is seen
 *   only when it detaches (SECURITY.md).
 *
 * Hostile memory
 *   Every field the peer writes is read once into a local and validated.  A
 *   corrupt region makes the call return -EPROTO, and the endpoint then
 *   returns -EPROTO from every call until it is detached.  Nothing the peer
 *   writes makes this side access memory outside the region.  Packet bytes
 *   are the peer's to choose: validate what you read, and with apq_peek()
 *   copy before validating, since the peer may change them meanwhile.  A
 *   peer that wakes this side for nothing is counted (spurious_wakeups) and,
 *   in a flood, throttled: it costs a few percent of a CPU at most
 *   (SECURITY.md).
 */
#ifndef APQ_RING_H
#define APQ_RING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <apq/common.h>
#include <apq/notifier.h>

#ifdef __cplusplus
extern "C" {
#endif

struct apq_producer;
struct apq_consumer;

/*
 * Bytes a region with a ring of ring_bytes needs: the control area plus the
 * ring.  ring_bytes must be a power of two from 4096 to 1 GiB.
 * @return the size, or 0 if ring_bytes is not valid.
 */
size_t apq_region_size(size_t ring_bytes);

/*
 * Largest packet a ring of ring_bytes carries (ring_bytes minus an 8-byte
 * record header), or 0 if ring_bytes is not valid.
 */
size_t apq_packet_max(size_t ring_bytes);

/*
 * Lay out an empty region in mem.  The region then counts as open on both
 * sides: either side may attach first.
 *
 * @return 0; -EINVAL (mem NULL or not 64-byte aligned, ring_bytes not valid,
 *   mem_bytes < apq_region_size(ring_bytes)).
 * Concurrency: nobody may be attached to the region meanwhile.
 */
int apq_region_init(void *mem, size_t mem_bytes, size_t ring_bytes);

/*
 * Attach the producer or the consumer side to an initialised region.  At
 * most one producer and one consumer are attached at a time; a side that
 * detached may be replaced by a new attach, which reopens it.
 *
 * @return 0 and *out set; -EINVAL (out, mem or n NULL, mem not 64-byte
 *   aligned, mem_bytes smaller than any region, bad cfg); -EPROTO (mem does
 *   not hold a valid region, or it is larger than mem_bytes); -ENOMEM.
 * Concurrency: the returned endpoint belongs to the calling thread: all calls
 *   on it come from one thread at a time.
 */
int apq_producer_attach(struct apq_producer **out, void *mem, size_t mem_bytes,
			struct apq_notifier *n, const struct apq_config *cfg);
int apq_consumer_attach(struct apq_consumer **out, void *mem, size_t mem_bytes,
			struct apq_notifier *n, const struct apq_config *cfg);

/*
 * Detach and free an endpoint; NULL is a no-op.  The peer then sees -EPIPE:
 * a consumer once it has drained what was sent before, a producer at once.
 * A sleeping peer is woken.  Packets reserved or peeked but not committed or
 * released are dropped.
 * Ordering: release: packets published before are visible to the consumer.
 */
void apq_producer_detach(struct apq_producer *p);
void apq_consumer_detach(struct apq_consumer *c);

/*
 * Copy one packet into the ring and publish it.
 *
 * @return 0; -EAGAIN (ring full and timeout_ns 0); -ETIMEDOUT; -EMSGSIZE
 *   (len > apq_packet_max() of this ring); -EPIPE (consumer detached or
 *   died);
 *   -EPROTO (region corrupt: the packet was queued if the corruption showed
 *   only after the publish); -EBUSY (a reservation is pending); another
 *   negative errno if the notifier failed to wake the consumer (the packet
 *   was queued).
 * Ordering: release: the consumer that receives the packet sees its bytes.
 */
int apq_send(struct apq_producer *p, const void *pkt, size_t len,
	     int64_t timeout_ns);

/*
 * Send up to n packets, publishing them together with one wakeup check.
 * Blocks (per timeout_ns) only until the first packet fits.
 *
 * @return the number of packets sent, from 1 to n (0 if n is 0); or, when
 *   none was sent, the error apq_send() would give for pkts[0].  A packet
 *   too large stops the burst before it.  An error after the publish is
 *   returned by the next call.
 */
int apq_send_burst(struct apq_producer *p, const struct iovec *pkts,
		   unsigned int n, int64_t timeout_ns);

/*
 * Copy the next packet out of the ring into buf.
 *
 * @return the packet's length (0 is a valid length); -EAGAIN (ring empty and
 *   timeout_ns 0); -ETIMEDOUT; -EMSGSIZE (cap is smaller than the packet,
 *   which stays queued: apq_peek() would take it and tell its length);
 *   -EPIPE (producer detached or died, and the ring is drained); -EPROTO
 *   (region corrupt); -EBUSY (packets peeked and not released).  An error
 *   after the packet was taken is returned by the next call, never instead
 *   of the packet.
 * Ordering: acquire: pairs with apq_send()'s release.
 */
ssize_t apq_recv(struct apq_consumer *c, void *buf, size_t cap,
		 int64_t timeout_ns);

/*
 * Receive up to n packets; bufs[i].iov_len holds the capacity on entry and
 * the packet's length on return.  Blocks only until the first packet is
 * there; stops before a packet that does not fit its buffer.
 *
 * @return the number received, from 1 to n (0 if n is 0); or, when none was,
 *   the error apq_recv() would give.  As there, an error after packets were
 *   taken is returned by the next call.
 */
int apq_recv_burst(struct apq_consumer *c, struct iovec *bufs, unsigned int n,
		   int64_t timeout_ns);

/*
 * Zero-copy send: reserve room for a packet of up to len bytes in the ring
 * and point *buf at it (8-byte aligned).  Fill it, then apq_commit().
 *
 * @return 0; -EBUSY (a reservation is already pending); otherwise as
 *   apq_send().
 */
int apq_reserve(struct apq_producer *p, size_t len, void **buf,
		int64_t timeout_ns);

/*
 * Publish the pending reservation as a packet of len bytes (len no larger
 * than reserved) and run the wakeup check.
 *
 * @return 0; -EINVAL (no reservation pending, or len too large; nothing is
 *   published); -EPROTO or a notifier error from the wakeup check (the
 *   packet was published).
 */
int apq_commit(struct apq_producer *p, size_t len);

/*
 * Zero-copy receive: point *pkt at the next packet, in the ring.  Each call
 * takes the next packet; none of their space is given back to the producer
 * until apq_release().  A call that holds packets and finds no new one
 * looks whether the producer sleeps waiting for space: that space is what
 * the held packets take, so the call returns -EDEADLK instead of waiting
 * on (within two of its 50 ms backstops).  A producer that busy-polls for
 * space is not seen waiting: with BUSY_POLL on the other side, release
 * before a long wait.
 *
 * @return the packet's length; -EDEADLK (no packet yet, packets are held,
 *   and the producer waits for their space: apq_release() first); otherwise
 *   as apq_recv() (never -EMSGSIZE or -EBUSY).
 */
ssize_t apq_peek(struct apq_consumer *c, const void **pkt, int64_t timeout_ns);

/*
 * Give the space of every peeked packet back to the producer (waking it if it
 * waits for space).  The pointers apq_peek() returned become invalid.
 *
 * @return 0 (also when nothing was peeked); -EPROTO (region corrupt) or a
 *   notifier error when waking the producer failed (the space was released).
 */
int apq_release(struct apq_consumer *c);

/*
 * Event loops.  Instead of blocking in apq_recv(), a consumer may block in
 * its own poll() on the notifier's file descriptor (apq_notifier_fd(), of
 * <apq/notifier.h>): receive with timeout 0 until -EAGAIN, then call
 * apq_consumer_arm(); if it returns 0, poll; when the descriptor is
 * readable, apq_notifier_ack() and receive again.  apq_consumer_arm()
 * announces SLEEPING, so the producer notifies; without it the producer
 * sees a consumer that polls and sends nothing.  A producer waiting for
 * room does the same with apq_producer_arm().  While armed, the descriptor
 * also becomes readable at the backstop (50 ms), so that a lost
 * notification or a peer that died costs the loop at most that much.
 *
 * @return 0: armed, poll; 1: do not block (a packet is there, or room for
 *   len bytes); -EPIPE (the peer is gone: for the consumer, once drained);
 *   -EPROTO; -EINVAL; -EBUSY (as apq_recv() and apq_send()); -EMSGSIZE
 *   (len > apq_packet_max()); the notifier's error when it cannot wake the
 *   loop for this endpoint (futex: -ENOSPC with more than 16 words armed at
 *   once on one notifier; not armed then, do not poll).
 * Concurrency: the endpoint's thread.
 * Ordering: as the blocking calls: a packet (or room) that arrives after
 *   the call returned 0 makes the peer notify.
 */
int apq_consumer_arm(struct apq_consumer *c);
int apq_producer_arm(struct apq_producer *p, size_t len);

/*
 * Copy the endpoint's counters.  @return 0; -EINVAL if an argument is NULL.
 * Concurrency: any thread; see struct apq_stats.
 */
int apq_producer_stats(const struct apq_producer *p, struct apq_stats *out);
int apq_consumer_stats(const struct apq_consumer *c, struct apq_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* APQ_RING_H */
