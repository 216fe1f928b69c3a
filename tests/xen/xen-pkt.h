/* SPDX-License-Identifier: MIT */
/*
 * xen-pkt.h - what the Xen test programs share: content-checked packets, the
 * names of return values, an event loop's receive, statistics deltas.
 *
 * xen-test (both sides in dom0) and xen-domu (a frontend in a guest, the
 * backend in dom0) check the same packets.  Two processes, or two domains,
 * that call pkt_init() with one seed agree on every packet's length and
 * bytes without telling each other anything else.
 *
 * Header-only and libc plus apq only: the programs are linked statically.
 */
#ifndef APQ_TEST_XEN_PKT_H
#define APQ_TEST_XEN_PKT_H

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include <apq/apq.h>

#include "../testlib.h"

#define PKT_MS		INT64_C(1000000)

/* A packet starts with this header; the rest is pattern[] from an offset
 * that the stream and sequence number give. */
struct pkt_hdr {
	uint64_t seq;
	uint32_t len;
	uint32_t check;
};
#define HDR		sizeof(struct pkt_hdr)
#define PATTERN_PERIOD	4096u
#define MAX_PKT		4096u	/* a quarter of the stream rings */

enum stream_id { S_STREAM = 1, S_REQ, S_RESP, S_KILL, S_DETACH };

static uint64_t pkt_seed;
static unsigned char pattern[PATTERN_PERIOD + MAX_PKT];

/* Both peers must call this with the same seed before any packet. */
static inline void pkt_init(uint64_t seed)
{
	size_t i;

	pkt_seed = seed;
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)mix64(seed ^ i);
}

static inline uint64_t hash3(uint64_t stream, uint64_t seq, uint64_t salt)
{
	return mix64(pkt_seed ^ mix64(stream << 48 ^ seq) ^ salt);
}

/* Length of packet seq of a stream: header only, near max (so records
 * straddle the ring's end and pads appear), or anything in between. */
static inline size_t pkt_len(enum stream_id s, uint64_t seq, size_t max)
{
	uint64_t h = hash3(s, seq, 1);

	switch (h & 7) {
	case 0:
		return HDR;
	case 1:
		return max - (size_t)((h >> 8) % 64);
	default:
		return HDR + (size_t)((h >> 8) % (max < 700 + HDR ? max - HDR : 700));
	}
}

static inline void pkt_fill(void *buf, enum stream_id s, uint64_t seq, size_t len)
{
	struct pkt_hdr h = {
		.seq = seq,
		.len = (uint32_t)len,
		.check = (uint32_t)hash3(s, seq, len),
	};

	memcpy(buf, &h, HDR);
	memcpy((unsigned char *)buf + HDR,
	       pattern + hash3(s, seq, 2) % PATTERN_PERIOD, len - HDR);
}

/* NULL if buf holds packet seq of stream s, of length len; else what
 * differs. */
static inline const char *pkt_bad(const void *buf, size_t len, enum stream_id s,
				  uint64_t seq, size_t want_len)
{
	struct pkt_hdr h;

	if (len != want_len)
		return "wrong length";
	memcpy(&h, buf, HDR);
	if (h.seq != seq)
		return "wrong sequence number";
	if (h.len != len || h.check != (uint32_t)hash3(s, seq, len))
		return "corrupt header";
	if (memcmp((const unsigned char *)buf + HDR,
		   pattern + hash3(s, seq, 2) % PATTERN_PERIOD, len - HDR))
		return "corrupt payload";
	return NULL;
}

static inline const char *err_name(long r)
{
	switch (r) {
	case 0: return "0";
	case -EAGAIN: return "-EAGAIN";
	case -ETIMEDOUT: return "-ETIMEDOUT";
	case -EPIPE: return "-EPIPE";
	case -EPROTO: return "-EPROTO";
	case -EMSGSIZE: return "-EMSGSIZE";
	case -EBUSY: return "-EBUSY";
	case -EINVAL: return "-EINVAL";
	case -ENOENT: return "-ENOENT";
	case -ENOMEM: return "-ENOMEM";
	case -EACCES: return "-EACCES";
	case -EPERM: return "-EPERM";
	default: return r < 0 ? strerror((int)-r) : "positive";
	}
}

/*
 * Receive as an event loop does that blocks only in its own poll() on the
 * notifier's descriptor fd (apq_notifier_fd() or apq_notifier_xen_fd() of
 * n): receive with timeout 0; on -EAGAIN arm (announce SLEEPING, so the
 * producer notifies), poll, take the notification, again.  A poll that
 * stays quiet for stall_ns is -ETIMEDOUT: armed, never woken (not even by
 * the backstop).
 */
static inline ssize_t recv_event_loop(struct apq_consumer *k, struct apq_notifier *n,
				      int fd, void *buf, size_t cap, int64_t stall_ns)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t r;
	int armed, got;

	if (fd < 0)
		return fd;
	for (;;) {
		r = apq_recv(k, buf, cap, 0);
		if (r != -EAGAIN)
			return r;
		armed = apq_consumer_arm(k);
		if (armed < 0)
			return armed;
		if (armed > 0)
			continue;
		got = poll(&pfd, 1, (int)(stall_ns / PKT_MS));
		if (got == 0)
			return -ETIMEDOUT;
		if (got < 0 && errno != EINTR)
			return -errno;
		r = apq_notifier_ack(n);
		if (r < 0)
			return r;
	}
}

static inline struct apq_stats stats_delta(struct apq_stats a, const struct apq_stats *b)
{
	a.packets -= b->packets;
	a.bytes -= b->bytes;
	a.wakeups_sent -= b->wakeups_sent;
	a.wakeups_skipped -= b->wakeups_skipped;
	a.sleeps -= b->sleeps;
	a.spurious_wakeups -= b->spurious_wakeups;
	a.rescues -= b->rescues;
	return a;
}

/* For qsort() of round-trip times. */
static inline int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

#endif /* APQ_TEST_XEN_PKT_H */
