/* SPDX-License-Identifier: MIT */
/*
 * fuzz-region.c - a hostile peer's bytes against both endpoints of a ring.
 *
 * libFuzzer's input is a program.  Its first byte picks the ring size; the
 * rest is read as operations, each an opcode byte and its arguments.  Some
 * are the honest side's calls, on a producer and a consumer attached to one
 * region in this process (sends, receives, bursts, zero copy, arming, short
 * waits, detach and attach again); the others are the hostile peer, which
 * writes arbitrary values anywhere in the region between those calls: the
 * header, the indices, the mode words, the wake sequences, record headers,
 * payload.
 *
 * The region is a heap block of exactly apq_region_size() bytes, so that
 * ASan reports any access outside it; receive buffers are exactly as large
 * as the capacity passed.  Every call's result must be one its header
 * documents for the call (a length within the buffer, a peeked packet
 * inside the ring, -EPROTO sticky until detach...): anything else aborts,
 * which libFuzzer reports as a crash.
 *
 * Built two ways: with clang's libFuzzer (-fsanitize=fuzzer, by
 * run-fuzzer.sh), and into replay.c's driver with any compiler, which feeds
 * it the corpus in tests/fuzz/corpus (meson suite fuzz).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <apq/apq.h>

#include "../testlib.h"

#define MAX_OPS		256
#define MAX_PKT		4096
#define BURST		4
#define WAIT_NS		2000	/* "short waits": a couple of microseconds */

/* The input, read front to back; past its end, zeros. */
struct input {
	const uint8_t *p;
	size_t left;
};

static uint8_t in8(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

static uint32_t in32(struct input *in)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = v << 8 | in8(in);
	return v;
}

static uint64_t in64(struct input *in)
{
	return (uint64_t)in32(in) << 32 | in32(in);
}

enum op {
	OP_SEND, OP_RECV, OP_SEND_BURST, OP_RECV_BURST, OP_RESERVE,
	OP_PEEK, OP_RELEASE, OP_ARM, OP_WAIT, OP_REATTACH, OP_FILL,
	OP_DRAIN, OP_POKE32, OP_POKE64, OP_POKE_RECORD, OP_POKE_RANGE,
	N_OPS
};

struct state {
	unsigned char *mem;
	size_t bytes, ring;
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	bool p_broken, c_broken;	/* -EPROTO seen: sticky */
	bool reserved;
	void *room;
	size_t room_len;
	unsigned int peeked;
};

static void fail(const char *what, long r)
{
	fprintf(stderr, "fuzz-region: %s: %ld\n", what, r);
	abort();
}

/* A result any producer call may give on a possibly corrupt ring. */
static void check_p(struct state *s, long r, const char *call)
{
	if (s->p_broken && r != -EPROTO)
		fail(call, r);	/* -EPROTO is sticky */
	switch (r) {
	case -EPROTO:
		s->p_broken = true;
		/* fall through */
	case -EAGAIN:
	case -ETIMEDOUT:
	case -EPIPE:
	case -EMSGSIZE:
	case -EBUSY:
	case -EINVAL:
		return;
	default:
		if (r < 0)
			fail(call, r);
	}
}

static void check_c(struct state *s, long r, const char *call)
{
	if (s->c_broken && r != -EPROTO)
		fail(call, r);
	switch (r) {
	case -EPROTO:
		s->c_broken = true;
		/* fall through */
	case -EAGAIN:
	case -ETIMEDOUT:
	case -EPIPE:
	case -EMSGSIZE:
	case -EBUSY:
	case -EDEADLK:
		return;
	default:
		if (r < 0)
			fail(call, r);
	}
}

static int64_t timeout(struct input *in)
{
	return in8(in) & 1 ? WAIT_NS : 0;
}

static void attach_p(struct state *s)
{
	int r = apq_producer_attach(&s->p, s->mem, s->bytes, s->n, NULL);

	s->p_broken = false;
	s->reserved = false;
	if (r && r != -EPROTO)
		fail("apq_producer_attach", r);
	if (r)
		s->p = NULL;
}

static void attach_c(struct state *s)
{
	int r = apq_consumer_attach(&s->c, s->mem, s->bytes, s->n, NULL);

	s->c_broken = false;
	s->peeked = 0;
	if (r && r != -EPROTO)
		fail("apq_consumer_attach", r);
	if (r)
		s->c = NULL;
}

static void do_op(struct state *s, struct input *in)
{
	static unsigned char buf[BURST][MAX_PKT];
	struct iovec iov[BURST];
	const void *pkt;
	size_t len, off;
	unsigned int k, n;
	long r;

	switch (in8(in) % N_OPS) {
	case OP_SEND:
		if (!s->p)
			return;
		len = in32(in) % (s->ring + 16);
		if (len > MAX_PKT)
			len = MAX_PKT;
		r = apq_send(s->p, buf[0], len, timeout(in));
		check_p(s, r, "apq_send");
		return;
	case OP_RECV:
		if (!s->c)
			return;
		len = in32(in) % (MAX_PKT + 1);
		{
			/* Exactly len bytes: ASan sees any overrun. */
			unsigned char *b = malloc(len ? len : 1);

			r = apq_recv(s->c, b, len, timeout(in));
			free(b);
		}
		check_c(s, r, "apq_recv");
		if (r > (long)len)
			fail("apq_recv: longer than the buffer", r);
		return;
	case OP_SEND_BURST:
		if (!s->p)
			return;
		n = 1 + in8(in) % BURST;
		for (k = 0; k < n; k++)
			iov[k] = (struct iovec){ buf[k], in32(in) % MAX_PKT };
		r = apq_send_burst(s->p, iov, n, timeout(in));
		check_p(s, r, "apq_send_burst");
		if (r > (long)n)
			fail("apq_send_burst: more than asked", r);
		return;
	case OP_RECV_BURST:
		if (!s->c)
			return;
		n = 1 + in8(in) % BURST;
		for (k = 0; k < n; k++)
			iov[k] = (struct iovec){ buf[k], in32(in) % MAX_PKT };
		r = apq_recv_burst(s->c, iov, n, timeout(in));
		check_c(s, r, "apq_recv_burst");
		if (r > (long)n)
			fail("apq_recv_burst: more than asked", r);
		for (k = 0; r > 0 && k < (unsigned int)r; k++)
			if (iov[k].iov_len > MAX_PKT)
				fail("apq_recv_burst: a length past its buffer",
				     (long)iov[k].iov_len);
		return;
	case OP_RESERVE:
		if (!s->p)
			return;
		if (s->reserved) {
			/* Fill what was reserved (ASan checks the bounds),
			 * then commit part of it. */
			memset(s->room, 0x5a, s->room_len);
			r = apq_commit(s->p, s->room_len ? in32(in) %
					(s->room_len + 1) : 0);
			s->reserved = false;
			check_p(s, r, "apq_commit");
			return;
		}
		len = in32(in) % MAX_PKT;
		r = apq_reserve(s->p, len, &s->room, timeout(in));
		check_p(s, r, "apq_reserve");
		if (r == 0) {
			if ((unsigned char *)s->room < s->mem ||
			    (unsigned char *)s->room + len > s->mem + s->bytes)
				fail("apq_reserve: room outside the region", 0);
			s->reserved = true;
			s->room_len = len;
		}
		return;
	case OP_PEEK:
		if (!s->c)
			return;
		r = apq_peek(s->c, &pkt, timeout(in));
		check_c(s, r, "apq_peek");
		if (r >= 0) {
			if ((const unsigned char *)pkt < s->mem ||
			    (const unsigned char *)pkt + r > s->mem + s->bytes)
				fail("apq_peek: a packet outside the region", r);
			/* Read it all: ASan sees a packet past the region. */
			(void)!memcmp(pkt, buf[0], (size_t)r < MAX_PKT
				      ? (size_t)r : MAX_PKT);
			s->peeked++;
		}
		return;
	case OP_RELEASE:
		if (!s->c)
			return;
		r = apq_release(s->c);
		check_c(s, r, "apq_release");
		s->peeked = 0;
		return;
	case OP_ARM:
		if (in8(in) & 1) {
			if (s->c)
				check_c(s, apq_consumer_arm(s->c),
					"apq_consumer_arm");
		} else if (s->p) {
			check_p(s, apq_producer_arm(s->p, in32(in) % MAX_PKT),
				"apq_producer_arm");
		}
		return;
	case OP_WAIT:
		/* A wait long enough to sleep: the corrupt words go through
		 * the sleep path. */
		if (s->c)
			check_c(s, apq_recv(s->c, buf[0], MAX_PKT, 20 * WAIT_NS),
				"apq_recv(wait)");
		return;
	case OP_REATTACH:
		if (in8(in) & 1) {
			apq_producer_detach(s->p);
			attach_p(s);
		} else {
			apq_consumer_detach(s->c);
			attach_c(s);
		}
		return;
	case OP_FILL:
		/* Honest traffic, fast: the ring full of len-byte packets, so
		 * that pads and wrap-arounds come within a few operations. */
		if (!s->p)
			return;
		len = in32(in) % MAX_PKT;
		for (k = 0; k < s->ring / 8; k++) {
			r = apq_send(s->p, buf[0], len, 0);
			check_p(s, r, "apq_send(fill)");
			if (r)
				break;
		}
		return;
	case OP_DRAIN:
		if (!s->c)
			return;
		n = in8(in);
		for (k = 0; k < n; k++) {
			r = apq_recv(s->c, buf[0], MAX_PKT, 0);
			check_c(s, r, "apq_recv(drain)");
			if (r < 0)
				break;
		}
		return;
	case OP_POKE32:
		off = in32(in) % (s->bytes - 3) & ~(size_t)3;
		set32(s->mem, off, in32(in));
		return;
	case OP_POKE64:
		/* Anywhere in the control area, aligned: the words a peer
		 * knows. */
		off = in32(in) % (CTRL / 8) * 8;
		set64(s->mem, off, in64(in));
		return;
	case OP_POKE_RECORD:
		/* A record header where the consumer will look next, or at
		 * a random 8-byte slot of the ring: a packet or a pad (or any
		 * tag) of a length near the ring's scale. */
		k = in8(in);
		off = k & 1 ? get32(s->mem, OFF_CONS) % s->ring
			    : in32(in) % (s->ring / 8) * 8;
		len = in32(in) % (2 * s->ring);
		set64(s->mem, CTRL + (off & ~(size_t)7),
		      REC(len, k & 6 ? (k & 4 ? TAG_PACKET : TAG_PAD) : in32(in)));
		return;
	case OP_POKE_RANGE:
		off = in32(in) % s->bytes;
		len = in8(in);
		for (k = 0; k < len && off + k < s->bytes; k++)
			s->mem[off + k] = in8(in);
		return;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct state s = { 0 };
	unsigned int ops;

	s.ring = (size_t)4096 << (in8(&in) % 3);
	s.bytes = apq_region_size(s.ring);
	s.mem = aligned_alloc(64, s.bytes);
	if (!s.mem || apq_region_init(s.mem, s.bytes, s.ring))
		fail("setup", 0);
	if (apq_notifier_futex(&s.n))
		fail("apq_notifier_futex", 0);
	attach_p(&s);
	attach_c(&s);
	for (ops = 0; ops < MAX_OPS && in.left; ops++)
		do_op(&s, &in);
	apq_producer_detach(s.p);
	apq_consumer_detach(s.c);
	apq_notifier_free(s.n);
	free(s.mem);
	return 0;
}
