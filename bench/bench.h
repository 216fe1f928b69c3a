/* SPDX-License-Identifier: MIT */
/*
 * bench.h - the contracts inside apq-bench: queue adapters and their registry.
 *
 * apq-bench compares queues side by side in one run.  Each queue enters
 * through an adapter that knows how to open it, move packets through it and
 * end the stream; the harness owns everything else (threads, processes,
 * pinning, pacing, packet contents, timestamps, latency, CPU, wakeup
 * counting, output), so that every queue is measured the same way.
 *
 * Two kinds of adapters:
 *   struct bench_impl        producer and consumer threads of one process
 *   struct bench_xproc_impl  producer and consumer in two processes
 *
 * Packets: the harness writes and checks their bytes (a sequence number and a
 * timestamp); an adapter moves them as opaque bytes and must deliver each
 * packet's exact length and bytes, in order, none lost.  An adapter whose
 * queue holds fixed-size elements copies the packet into one; it must not
 * move pointers to the harness's buffers (the producer reuses them at once).
 *
 * End of stream: the producer side calls its end function after its last
 * send; the consumer's receive then returns 0 once it has delivered every
 * packet sent before.  Adapters for queues without such a notion send a
 * marker of their own.
 *
 * Errors: negative errno values.  A queue that cannot run here (its package
 * is missing at build time, or a daemon did not start) is skipped with a
 * reason, never counted as a failure.
 */
#ifndef APQ_BENCH_H
#define APQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* No healthy send or receive blocks this long: past it, a run fails. */
#define BENCH_IO_TIMEOUT_NS	(10 * INT64_C(1000000000))

/* What an adapter reports for one side at the end of a run. */
struct bench_counters {
	uint64_t packets;
	/* Wakeups this side sent to its peer, if the queue counts them
	 * (counts_wakeups); the harness counts futex syscalls otherwise. */
	uint64_t wakeups;
	uint64_t sleeps;	/* times this side blocked, if known */
	uint64_t rescues;	/* apq: lost wakeups caught; must stay 0 */
};

/* How a variant's consumer waits for work: the table says so. */
enum bench_wait {
	BENCH_WAIT_SLEEPS,	/* blocks in the kernel when idle */
	BENCH_WAIT_BUSY_POLLS,	/* spins; the queue has no way to sleep */
};

struct bench_variant {
	const char *name;	/* "policy" in the table and the JSON */
	const void *arg;	/* the adapter's own configuration */
	enum bench_wait wait;
};

/*
 * Threads of one process.  open() and close() run in the main thread; the
 * producer calls (send, producer_end) in the producer thread, the consumer
 * calls (recv, consumer_end) in the consumer thread.
 */
struct bench_impl {
	const char *name;		/* "impl" in the table and the JSON */
	const struct bench_variant *variants;
	size_t n_variants;
	bool counts_wakeups;		/* bench_counters.wakeups is real */
	/* A queue holding at least ring_bytes of packets of up to max_pkt
	 * bytes.  @return 0 or -errno. */
	int (*open)(void **q, const struct bench_variant *v, size_t ring_bytes,
		    size_t max_pkt);
	/* Send pkts[0..n), n >= 1, blocking until at least one went (at most
	 * BENCH_IO_TIMEOUT_NS).  @return how many were sent, or -errno. */
	int (*send)(void *q, const struct iovec *pkts, unsigned int n);
	/* Receive up to n packets (iov_len: capacity in, length out),
	 * blocking until at least one is there.  @return how many; 0 at the
	 * end of the stream; -errno. */
	int (*recv)(void *q, struct iovec *bufs, unsigned int n);
	void (*producer_end)(void *q, struct bench_counters *out);
	void (*consumer_end)(void *q, struct bench_counters *out);
	void (*close)(void *q);
};

/*
 * Two processes.  setup() and teardown() run in the harness's process
 * before it forks and after both children have exited; everything else runs
 * in one child, after the fork, on an endpoint opened there.  A scenario
 * uses one channel (a stream) or two (ping-pong: channel 0 carries requests
 * from the first child to the second, channel 1 the replies back).
 */
struct bench_xproc_impl {
	const char *name;
	const struct bench_variant *variants;
	size_t n_variants;
	bool counts_wakeups;
	/* Shared state for `channels` channels of packets up to max_pkt bytes
	 * (memfds, queue names, a daemon).  @return 0, -errno, or -ENOTSUP
	 * with *why set to say why the queue cannot run here (skipped). */
	int (*setup)(void **shared, const struct bench_variant *v,
		     size_t max_pkt, unsigned int channels, const char **why);
	int (*open_producer)(void *shared, unsigned int channel, void **ep);
	int (*open_consumer)(void *shared, unsigned int channel, void **ep);
	/* Copying send and receive, blocking (at most BENCH_IO_TIMEOUT_NS).
	 * recv returns the length, 0 at the end of the stream, or -errno. */
	int (*send)(void *ep, const void *pkt, size_t len);
	ssize_t (*recv)(void *ep, void *buf, size_t cap);
	/* Zero copy, or NULL: loan a buffer of len bytes in the queue, fill
	 * it, publish it; take a packet in place, then give it back. */
	int (*loan)(void *ep, size_t len, void **buf);
	int (*publish)(void *ep, size_t len);
	ssize_t (*take)(void *ep, const void **pkt);
	int (*give_back)(void *ep);
	void (*close_producer)(void *ep, struct bench_counters *out);
	void (*close_consumer)(void *ep, struct bench_counters *out);
	void (*teardown)(void *shared);
};

/* A queue this build left out, and why (its package was missing). */
struct bench_missing {
	const char *name;
	const char *why;
};

/* The registry: bench/impl-apq.c, bench/peers/registry.c and
 * bench/xproc/registry.c fill these in. */
extern const struct bench_impl bench_apq_impl;
extern const struct bench_impl *const bench_peer_impls[];
extern const size_t bench_n_peer_impls;
extern const struct bench_missing bench_peer_missing[];
extern const size_t bench_n_peer_missing;
extern const struct bench_xproc_impl *const bench_xproc_impls[];
extern const size_t bench_n_xproc_impls;
extern const struct bench_missing bench_xproc_missing[];
extern const size_t bench_n_xproc_missing;

#ifdef __cplusplus
}
#endif

#endif /* APQ_BENCH_H */
