/* SPDX-License-Identifier: MIT */
/*
 * Hostile memory: thousands of randomly corrupted rings.
 *
 * Each iteration initialises a region, runs random traffic through it (which
 * must succeed: the ring is clean), corrupts it in one of several ways, then
 * drives producer and consumer calls with timeout 0 or a few microseconds.
 * Every result must be one that <apq/ring.h> documents for that call in that
 * state: -EAGAIN only without a timeout, -ETIMEDOUT only with one, -EBUSY
 * only with a reservation or peeked packets pending, -EMSGSIZE only for a
 * packet or buffer size that calls for it, received lengths within the
 * buffer, peeked packets inside the ring, and after -EPROTO nothing but
 * -EPROTO from that endpoint until it is detached.  No call may crash (the
 * region sits against a PROT_NONE page, or in a heap block that ASan
 * watches; recv buffers carry canaries), or take longer than a generous
 * bound (the Check timeout catches a call that never returns).
 *
 * Corrupting an index, a record header, a mode word or the header with a
 * random value must yield -EPROTO in nearly every iteration, reported by the
 * side that reads that field (the consumer for prod and records, the
 * producer for cons and the consumer's mode word, attach for the header),
 * since such a value is valid with negligible probability: the test asserts
 * it for each kind separately.
 *
 * A second variant runs a hostile peer in another thread that scribbles on
 * the region while the victim calls run.  Those scribbles are atomic stores,
 * as the library's own accesses to shared words are; under ThreadSanitizer
 * the peer leaves the ring's payload alone (the library copies payload with
 * plain memcpy, and a peer writing it concurrently is a data race by design
 * that TSan would rightly report) and scribbles the control area only.
 *
 * The seed is printed; APQ_SEED=n replays a run.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include <apq/apq.h>

#include "testlib.h"

#define SEC(x)		((int64_t)(x) * 1000000000)
/* No call may take longer, whatever the corruption: the timeouts used are
 * at most 50 us, so this is slack for sanitizers on a loaded machine. */
#define CALL_LIMIT	SEC(2)
#define MAX_TIMEOUT_NS	50000
#define CANARY		0xc3
#define BUF_BYTES	(1 << 15)
#define RINGS		3		/* 4096, 8192, 16384 */

static uint64_t seed;

/*
 * Check's ck_assert_*() report every passed check to the parent process
 * through a pipe: millions of them would dominate the run time.  The hot
 * paths use this instead, which only reports a failure.
 */
#define CHECK(cond, ...)					\
	do {							\
		if (!(cond))					\
			ck_abort_msg(__VA_ARGS__);		\
	} while (0)

/*
 * Memory for a region: either ending exactly at a PROT_NONE page (an access
 * past the end faults, with or without ASan) with canary bytes before it, or
 * a heap block (ASan's redzones on both sides).
 */
struct arena {
	unsigned char *map;
	size_t map_bytes;
	size_t page;
	size_t slack;		/* canary bytes before the region */
	unsigned char *mem;
	size_t bytes;
	size_t ring;
};

static void arena_open(struct arena *a, size_t ring, bool guarded)
{
	memset(a, 0, sizeof(*a));
	a->ring = ring;
	a->bytes = apq_region_size(ring);
	ck_assert_uint_ne(a->bytes, 0);
	if (!guarded) {
		a->mem = aligned_alloc(64, a->bytes);
		ck_assert_ptr_nonnull(a->mem);
		return;
	}
	a->page = (size_t)sysconf(_SC_PAGESIZE);
	a->map_bytes = (a->bytes + a->page - 1) / a->page * a->page +
		       2 * a->page;
	a->map = mmap(NULL, a->map_bytes, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert(a->map != MAP_FAILED);
	ck_assert_int_eq(mprotect(a->map, a->page, PROT_NONE), 0);
	ck_assert_int_eq(mprotect(a->map + a->map_bytes - a->page, a->page,
				  PROT_NONE), 0);
	a->mem = a->map + a->map_bytes - a->page - a->bytes;
	ck_assert_uint_eq((uintptr_t)a->mem % 64, 0);
	a->slack = (size_t)(a->mem - (a->map + a->page));
	memset(a->map + a->page, CANARY, a->slack);
}

static void arena_check(const struct arena *a, const char *where)
{
	size_t i;

	for (i = 0; i < a->slack; i++)
		CHECK(a->map[a->page + i] == CANARY,
		      "%s: byte %zu before the region overwritten",
		      where, a->slack - i);
}

static void arena_close(struct arena *a)
{
	if (a->map)
		munmap(a->map, a->map_bytes);
	else
		free(a->mem);
}

/* One region with its two endpoints, and what the test knows of them. */
struct victim {
	unsigned char *mem;
	size_t bytes;
	size_t ring;
	size_t max;		/* apq_packet_max() */
	struct apq_notifier *n;
	struct apq_config pcfg, ccfg;
	struct apq_producer *p;	/* NULL: detached */
	struct apq_consumer *c;
	bool p_broken, c_broken;	/* -EPROTO seen */
	bool clean;		/* no corruption yet: no error may appear */
	bool reserved;
	size_t reserved_len;
	unsigned int peeked;
	unsigned int eproto;	/* -EPROTO results, attach included */
	unsigned int p_eproto, c_eproto, attach_eproto;	/* by whom */
	size_t mode_word;	/* which one C_MODE_WORD corrupted */
	unsigned long ok;	/* calls that succeeded */
	unsigned long calls;
	uint64_t *rng;
	const char *where;
	unsigned char *buf;	/* BUF_BYTES + canary */
};

static const unsigned char *payload;	/* constant bytes to send */

static int64_t pick_timeout(struct victim *v)
{
	return rnd_chance(v->rng, 85) ? 0 : 1 + (uint32_t)rnd_below(v->rng, MAX_TIMEOUT_NS);
}

/* Mostly small packets, some large, a few too large. */
static size_t pick_len(struct victim *v)
{
	uint32_t k = (uint32_t)rnd_below(v->rng, 100);

	if (k < 70)
		return (uint32_t)rnd_below(v->rng, 80);
	if (k < 92)
		return (uint32_t)rnd_below(v->rng, (uint32_t)v->ring / 4);
	if (k < 97)
		return v->max - (uint32_t)rnd_below(v->rng, 32);
	return v->max + 1 + (uint32_t)rnd_below(v->rng, 64);
}

static void random_config(uint64_t *rng, struct apq_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->policy = (enum apq_policy)(uint32_t)rnd_below(rng, 4);
	if (cfg->policy == APQ_POLICY_SPIN)
		cfg->spin_ns = (uint32_t)rnd_below(rng, 20000);
}

static void call_done(struct victim *v, int64_t start, const char *call)
{
	int64_t took = now_ns() - start;

	v->calls++;
	CHECK(took < CALL_LIMIT, "%s: %s took %lld ns", v->where, call,
	      (long long)took);
}

/*
 * The results every sending call shares (apq_send(), the first packet of
 * apq_send_burst(), apq_reserve()): documented, and consistent with the
 * state.  `len` is the packet's length.
 */
static void check_send_result(struct victim *v, int r, size_t len, int64_t t,
			      const char *call)
{
	bool ok;

	if (v->p_broken) {
		CHECK(r == -EPROTO, "%s: %s on a broken producer gave "
		      "%d", v->where, call, r);
		return;
	}
	switch (r) {
	case -EAGAIN:
		ok = t == 0 && !v->reserved && len <= v->max;
		break;
	case -ETIMEDOUT:
		ok = t > 0 && !v->reserved && len <= v->max;
		break;
	case -EMSGSIZE:
		ok = len > v->max;
		break;
	case -EBUSY:
		ok = v->reserved;
		break;
	case -EPIPE:
		ok = true;
		break;
	case -EPROTO:
		ok = true;
		v->p_broken = true;
		v->eproto++;
		v->p_eproto++;
		break;
	default:
		ok = r >= 0 && !v->reserved && len <= v->max;
		break;
	}
	if (r >= 0)
		v->ok++;
	CHECK(ok, "%s: %s(len %zu, timeout %lld%s) gave %d", v->where,
	      call, len, (long long)t, v->reserved ? ", reserved" : "",
	      r);
	if (v->clean)
		CHECK(r >= 0 || r == -EAGAIN || r == -ETIMEDOUT ||
		      r == -EMSGSIZE || r == -EBUSY,
		      "%s: %s gave %d on a clean ring", v->where, call, r);
}

static void check_recv_result(struct victim *v, ssize_t r, int64_t t,
			      bool small_cap, bool peek, const char *call)
{
	bool ok;

	if (v->c_broken) {
		CHECK(r == -EPROTO, "%s: %s on a broken consumer gave "
		      "%zd", v->where, call, r);
		return;
	}
	switch (r) {
	case -EAGAIN:
		ok = t == 0 && (peek || !v->peeked);
		break;
	case -ETIMEDOUT:
		ok = t > 0 && (peek || !v->peeked);
		break;
	case -EDEADLK:
		ok = peek && v->peeked;
		break;
	case -EMSGSIZE:
		ok = !peek && small_cap && !v->peeked;
		break;
	case -EBUSY:
		ok = !peek && v->peeked;
		break;
	case -EPIPE:
		ok = true;
		break;
	case -EPROTO:
		ok = true;
		v->c_broken = true;
		v->eproto++;
		v->c_eproto++;
		break;
	default:
		ok = r >= 0 && (peek || !v->peeked);
		break;
	}
	if (r >= 0)
		v->ok++;
	CHECK(ok, "%s: %s(timeout %lld, %u peeked) gave %zd", v->where,
	      call, (long long)t, v->peeked, r);
	if (v->clean)
		CHECK(r >= 0 || r == -EAGAIN || r == -ETIMEDOUT ||
		      r == -EMSGSIZE || r == -EBUSY || r == -EDEADLK,
		      "%s: %s gave %zd on a clean ring", v->where, call,
		      r);
}

static void v_send(struct victim *v)
{
	size_t len = pick_len(v);
	int64_t t = pick_timeout(v), start = now_ns();
	int r = apq_send(v->p, payload, len, t);

	call_done(v, start, "apq_send");
	check_send_result(v, r, len, t, "apq_send");
	CHECK(r <= 0, "%s: apq_send gave %d", v->where, r);
}

static void v_send_burst(struct victim *v)
{
	unsigned int n = 1 + (uint32_t)rnd_below(v->rng, 8), i;
	struct iovec iov[8];
	int64_t t = pick_timeout(v), start;
	int r;

	for (i = 0; i < n; i++)
		iov[i] = (struct iovec){ (void *)payload, pick_len(v) };
	start = now_ns();
	r = apq_send_burst(v->p, iov, n, t);
	call_done(v, start, "apq_send_burst");
	check_send_result(v, r, iov[0].iov_len, t, "apq_send_burst");
	CHECK(r <= (int)n, "%s: apq_send_burst sent %d of %u",
	      v->where, r, n);
	/* A packet too large stops the burst before it. */
	for (i = 0; (int)i < r; i++)
		CHECK(iov[i].iov_len <= v->max, "%s: apq_send_burst sent a "
		      "packet of %zu bytes", v->where, iov[i].iov_len);
}

static void v_reserve(struct victim *v)
{
	size_t len = pick_len(v);
	int64_t t = pick_timeout(v), start = now_ns();
	unsigned char *ring = v->mem + CTRL;
	void *buf = NULL;
	int r = apq_reserve(v->p, len, &buf, t);

	call_done(v, start, "apq_reserve");
	check_send_result(v, r, len, t, "apq_reserve");
	CHECK(r <= 0, "%s: apq_reserve gave %d", v->where, r);
	if (r)
		return;
	/* In the ring, 8-byte aligned, after a record header, and all of it
	 * writable. */
	CHECK((unsigned char *)buf >= ring + 8 &&
	      (unsigned char *)buf + len <= ring + v->ring &&
	      (uintptr_t)buf % 8 == 0,
	      "%s: apq_reserve(%zu) gave %p, ring at %p", v->where, len,
	      buf, (void *)ring);
	memset(buf, 0x5a, len);
	v->reserved = true;
	v->reserved_len = len;
}

static void v_commit(struct victim *v)
{
	int64_t start = now_ns();
	size_t len;
	int r;

	if (!v->reserved) {
		r = apq_commit(v->p, 0);
		call_done(v, start, "apq_commit");
		CHECK(r == -EINVAL, "%s: apq_commit without a "
		      "reservation gave %d", v->where, r);
		return;
	}
	if (rnd_chance(v->rng, 10)) {
		r = apq_commit(v->p, v->reserved_len + 1);
		CHECK(r == -EINVAL, "%s: apq_commit beyond the "
		      "reservation gave %d", v->where, r);
	}
	len = v->reserved_len ? (uint32_t)rnd_below(v->rng, (uint32_t)v->reserved_len + 1)
			      : 0;
	start = now_ns();
	r = apq_commit(v->p, len);
	call_done(v, start, "apq_commit");
	CHECK(r == 0 || (r == -EPROTO && !v->clean),
	      "%s: apq_commit gave %d", v->where, r);
	v->reserved = false;
	if (r == -EPROTO) {
		v->p_broken = true;
		v->eproto++;
		v->p_eproto++;
	}
}

static void v_recv(struct victim *v)
{
	bool small = rnd_chance(v->rng, 15);
	size_t cap = small ? (uint32_t)rnd_below(v->rng, 64) : BUF_BYTES;
	int64_t t = pick_timeout(v), start;
	ssize_t r;
	size_t i;

	memset(v->buf + cap, CANARY, 64);
	start = now_ns();
	r = apq_recv(v->c, v->buf, cap, t);
	call_done(v, start, "apq_recv");
	check_recv_result(v, r, t, cap < v->max, false, "apq_recv");
	CHECK(r <= (ssize_t)cap, "%s: apq_recv(cap %zu) gave %zd",
	      v->where, cap, r);
	for (i = 0; i < 64; i++)
		CHECK(v->buf[cap + i] == CANARY, "%s: apq_recv wrote "
		      "past its buffer", v->where);
}

static void v_recv_burst(struct victim *v)
{
	unsigned int n = 1 + (uint32_t)rnd_below(v->rng, 6), i;
	size_t caps[6], off = 0;
	struct iovec iov[6];
	bool small = false;
	int64_t t = pick_timeout(v), start;
	size_t j;
	int r;

	/* Buffers one after the other in v->buf, 64 canary bytes after
	 * each. */
	for (i = 0; i < n; i++) {
		caps[i] = rnd_chance(v->rng, 20) ? (uint32_t)rnd_below(v->rng, 64)
					     : BUF_BYTES / 8 - 64;
		small |= caps[i] < v->max;
		iov[i] = (struct iovec){ v->buf + off, caps[i] };
		memset(v->buf + off + caps[i], CANARY, 64);
		off += caps[i] + 64;
	}
	start = now_ns();
	r = apq_recv_burst(v->c, iov, n, t);
	call_done(v, start, "apq_recv_burst");
	check_recv_result(v, r, t, small, false, "apq_recv_burst");
	CHECK(r <= (int)n, "%s: apq_recv_burst got %d of %u", v->where,
	      r, n);
	for (i = 0, off = 0; i < n; i++) {
		if ((int)i < r)
			CHECK(iov[i].iov_len <= caps[i], "%s: "
			      "apq_recv_burst: length %zu, buffer %zu",
			      v->where, iov[i].iov_len, caps[i]);
		else
			CHECK(iov[i].iov_len == caps[i], "%s: apq_recv_burst "
			      "changed the length of buffer %u, not received",
			      v->where, i);
		for (j = 0; j < 64; j++)
			CHECK(v->buf[off + caps[i] + j] == CANARY,
			      "%s: apq_recv_burst wrote past buffer "
			      "%u", v->where, i);
		off += caps[i] + 64;
	}
}

static void v_peek(struct victim *v)
{
	const unsigned char *ring = v->mem + CTRL, *pkt = NULL;
	int64_t t = pick_timeout(v), start = now_ns();
	unsigned int sum = 0;
	ssize_t r = apq_peek(v->c, (const void **)&pkt, t);
	ssize_t i;

	call_done(v, start, "apq_peek");
	check_recv_result(v, r, t, false, true, "apq_peek");
	if (r < 0)
		return;
	CHECK(pkt >= ring + 8 && pkt + r <= ring + v->ring &&
	      (pkt - ring) % 8 == 0 && (size_t)r <= v->max,
	      "%s: apq_peek gave %zd bytes at %p, ring at %p", v->where,
	      r, (const void *)pkt, (const void *)ring);
	/* Touch every byte: out of bounds faults or trips ASan. */
	for (i = 0; i < r; i++)
		sum += pkt[i];
	(void)sum;
	v->peeked++;
}

static void v_release(struct victim *v)
{
	int64_t start = now_ns();
	int r = apq_release(v->c);

	call_done(v, start, "apq_release");
	if (v->c_broken)
		CHECK(r == -EPROTO, "%s: apq_release on a broken "
		      "consumer gave %d", v->where, r);
	else
		CHECK(r == 0 || (r == -EPROTO && !v->clean),
		      "%s: apq_release gave %d", v->where, r);
	if (r == -EPROTO && !v->c_broken) {
		v->c_broken = true;
		v->eproto++;
		v->c_eproto++;
	}
	v->peeked = 0;
}

static void v_stats(struct victim *v)
{
	struct apq_stats st;

	/* No rescue check: no wait here is long enough for a backstop
	 * re-check, and against a peer that scribbles on the mode words a
	 * missed wakeup would be of its own making anyway. */
	if (v->p)
		CHECK(apq_producer_stats(v->p, &st) == 0, "%s", v->where);
	if (v->c) {
		CHECK(apq_consumer_stats(v->c, &st) == 0, "%s", v->where);
		CHECK(st.bytes <= st.packets * v->max, "%s: %llu bytes in %llu "
		      "packets", v->where, (unsigned long long)st.bytes,
		      (unsigned long long)st.packets);
	}
}

static void v_attach_p(struct victim *v)
{
	int r = apq_producer_attach(&v->p, v->mem, v->bytes, v->n, &v->pcfg);

	v->calls++;
	CHECK(r == 0 || (r == -EPROTO && !v->clean),
	      "%s: apq_producer_attach gave %d", v->where, r);
	if (r) {
		v->p = NULL;
		v->eproto++;
		v->attach_eproto++;
	}
	v->p_broken = false;
	v->reserved = false;
}

static void v_attach_c(struct victim *v)
{
	int r = apq_consumer_attach(&v->c, v->mem, v->bytes, v->n, &v->ccfg);

	v->calls++;
	CHECK(r == 0 || (r == -EPROTO && !v->clean),
	      "%s: apq_consumer_attach gave %d", v->where, r);
	if (r) {
		v->c = NULL;
		v->eproto++;
		v->attach_eproto++;
	}
	v->c_broken = false;
	v->peeked = 0;
}

static void v_reattach_p(struct victim *v)
{
	apq_producer_detach(v->p);
	v->p = NULL;
	v_attach_p(v);
}

static void v_reattach_c(struct victim *v)
{
	apq_consumer_detach(v->c);
	v->c = NULL;
	v_attach_c(v);
}

/* One random call on whichever side is attached. */
static void v_random_call(struct victim *v)
{
	uint32_t k = (uint32_t)rnd_below(v->rng, 100);

	if (k < 55 && v->p) {
		if (k < 20)
			v_send(v);
		else if (k < 30)
			v_send_burst(v);
		else if (k < 42)
			v_reserve(v);
		else
			v_commit(v);
	} else if (k >= 55 && v->c) {
		if (k < 72)
			v_recv(v);
		else if (k < 82)
			v_recv_burst(v);
		else if (k < 92)
			v_peek(v);
		else
			v_release(v);
	}
	if (rnd_chance(v->rng, 5))
		v_stats(v);
}

/* The producer sends until something stops it: it then has had to look at
 * the consumer's index. */
static void drive_producer(struct victim *v)
{
	size_t i;
	int r;

	if (!v->p)
		return;
	if (v->reserved)
		v_commit(v);
	for (i = 0; i < v->ring / 8 + 4; i++) {
		size_t len = (uint32_t)rnd_below(v->rng, 64);
		int64_t start = now_ns();

		r = apq_send(v->p, payload, len, 0);
		call_done(v, start, "apq_send");
		check_send_result(v, r, len, 0, "apq_send");
		if (r)
			break;
	}
}

/* The consumer receives until something stops it: it then has had to look
 * at the producer's index and at every record up to it. */
static void drive_consumer(struct victim *v)
{
	size_t i;
	ssize_t r;

	if (!v->c)
		return;
	if (v->peeked)
		v_release(v);
	for (i = 0; i < v->ring / 8 + 4; i++) {
		int64_t start = now_ns();

		r = apq_recv(v->c, v->buf, BUF_BYTES, 0);
		call_done(v, start, "apq_recv");
		check_recv_result(v, r, 0, false, false, "apq_recv");
		if (r < 0)
			break;
	}
}

/*
 * Corruptions
 */

enum corruption {
	C_PROD,			/* prod := random */
	C_CONS,			/* cons := random */
	C_RECORD,		/* a live record's header := random */
	C_MODE_WORD,		/* a mode word := random */
	C_HEADER,		/* magic, version or ring_bytes := random */
	C_TARGETED,		/* the above must give -EPROTO */
	C_RECORD_NEAR = C_TARGETED,	/* a plausible record header */
	C_INDEX_NEAR,		/* an index moved by a little */
	C_BYTES,		/* random bytes anywhere */
	C_CTRL_WORDS,		/* random words in the control area */
	C_RING_GARBAGE,		/* the whole ring random */
	C_ALL_GARBAGE,		/* the whole region random */
	C_SEQ,			/* wake sequences (undetectable) */
	C_KINDS,
};

static const char *const corruption_names[C_KINDS] = {
	"prod", "cons", "record header", "mode word", "region header",
	"record header (plausible)", "index (near)", "random bytes",
	"control words", "ring garbage", "region garbage", "wake sequences",
};

/* Ring offsets of the published records the consumer has not passed.
 * Careful, as the region may be corrupt already (a second corruption in one
 * iteration): it stops at the first record that makes no sense.
 * @return how many. */
static unsigned int live_records(const struct victim *v, uint32_t *pos,
				 unsigned int max)
{
	uint32_t cons = get32(v->mem, OFF_CONS), prod = get32(v->mem, OFF_PROD);
	uint32_t size = (uint32_t)v->ring;
	unsigned int n = 0;

	if (prod - cons > size || cons % 8 != 0)
		return 0;
	while (cons != prod && n < max) {
		uint32_t at = cons % size;
		uint64_t h = get64(v->mem, CTRL + at);
		uint32_t len = (uint32_t)h;

		if (len > size - 8)
			break;
		pos[n++] = at;
		if ((uint32_t)(h >> 32) == TAG_PAD)
			cons += size - at;
		else
			cons += 8 + ((len + 7) & ~UINT32_C(7));
		if (prod - cons > size)
			break;
	}
	return n;
}

static void corrupt(struct victim *v, enum corruption kind)
{
	uint64_t *rng = v->rng;
	uint32_t pos[64];
	unsigned int n, i;
	size_t off;

	switch (kind) {
	case C_PROD:
		set32(v->mem, OFF_PROD, (uint32_t)rnd(rng));
		break;
	case C_CONS:
		set32(v->mem, OFF_CONS, (uint32_t)rnd(rng));
		break;
	case C_RECORD:
	case C_RECORD_NEAR:
		n = live_records(v, pos, 64);
		if (n == 0) {
			/* Nothing queued: corrupt what says so. */
			set32(v->mem, OFF_PROD, (uint32_t)rnd(rng));
			break;
		}
		off = CTRL + pos[(uint32_t)rnd_below(rng, n)];
		if (kind == C_RECORD) {
			set64(v->mem, off, rnd(rng));
			break;
		}
		switch ((uint32_t)rnd_below(rng, 5)) {
		case 0:	/* flip the tag between packet and pad */
			set64(v->mem, off, get64(v->mem, off) ^
			      ((uint64_t)(TAG_PACKET ^ TAG_PAD) << 32));
			break;
		case 1:	/* length off by a little */
			set64(v->mem, off, get64(v->mem, off) +
			      (8 * (1 + (uint32_t)rnd_below(rng, 4))) - 16);
			break;
		case 2:	/* length anything below the ring size */
			set64(v->mem, off, (get64(v->mem, off) &
					    ~UINT64_C(0xffffffff)) |
			      (uint32_t)rnd_below(rng, (uint32_t)v->ring));
			break;
		case 3:	/* length just below 2^32: padded, it wraps to
			 * a small record size */
			set64(v->mem, off, (get64(v->mem, off) &
					    ~UINT64_C(0xffffffff)) |
			      (UINT32_C(0xffffffff) - (uint32_t)rnd_below(rng, 8)));
			break;
		default: /* one random byte of it */
			set64(v->mem, off, get64(v->mem, off) ^
			      (uint64_t)(1 + (uint32_t)rnd_below(rng, 255)) <<
			      (8 * (uint32_t)rnd_below(rng, 8)));
			break;
		}
		break;
	case C_MODE_WORD:
		v->mode_word = rnd_chance(rng, 50) ? OFF_DATA_WORD : OFF_SPACE_WORD;
		set64(v->mem, v->mode_word, rnd(rng));
		break;
	case C_HEADER:
		set32(v->mem, 4 * (uint32_t)rnd_below(rng, 3), (uint32_t)rnd(rng));
		break;
	case C_INDEX_NEAR:
		off = rnd_chance(rng, 50) ? OFF_PROD : OFF_CONS;
		set32(v->mem, off, get32(v->mem, off) +
		      (uint32_t)(4 * (int)(uint32_t)rnd_below(rng, 9)) - 16);
		break;
	case C_BYTES:
		for (i = 1 + (uint32_t)rnd_below(rng, 16); i > 0; i--)
			v->mem[(uint32_t)rnd_below(rng, (uint32_t)v->bytes)] =
				(unsigned char)rnd(rng);
		break;
	case C_CTRL_WORDS:
		for (i = 1 + (uint32_t)rnd_below(rng, 4); i > 0; i--)
			set32(v->mem, 4 * (uint32_t)rnd_below(rng, CTRL / 4),
			      (uint32_t)rnd(rng));
		break;
	case C_RING_GARBAGE:
	case C_ALL_GARBAGE:
		for (off = kind == C_RING_GARBAGE ? CTRL : 0; off < v->bytes;
		     off += 8)
			set64(v->mem, off, rnd(rng));
		break;
	case C_SEQ:
		set32(v->mem, OFF_DATA_WORD + OFF_SEQ, (uint32_t)rnd(rng));
		set32(v->mem, OFF_SPACE_WORD + OFF_SEQ, (uint32_t)rnd(rng));
		break;
	case C_KINDS:
		break;
	}
}

struct tally {
	unsigned int iterations[C_KINDS];
	unsigned int eproto[C_KINDS];	/* iterations with -EPROTO */
	unsigned long calls;
};

static void one_iteration(struct arena *arenas, uint64_t *rng,
			  unsigned char *buf, unsigned int it, int test,
			  struct tally *tally)
{
	enum corruption kind = (enum corruption)(uint32_t)rnd_below(rng, C_KINDS);
	struct arena *a = &arenas[(uint32_t)rnd_below(rng, 2 * RINGS)];
	struct victim v = {
		.mem = a->mem, .bytes = a->bytes, .ring = a->ring,
		.max = apq_packet_max(a->ring), .rng = rng, .buf = buf,
		.clean = true,
	};
	char where[160];
	unsigned int i, steps, detected;

	snprintf(where, sizeof(where), "APQ_SEED=%llu test %d iteration %u "
		 "(%s, ring %zu)", (unsigned long long)seed, test, it,
		 corruption_names[kind], a->ring);
	v.where = where;
	CHECK(apq_region_init(v.mem, v.bytes, v.ring) == 0, "%s", where);
	CHECK(apq_notifier_futex(&v.n) == 0, "%s", where);
	random_config(rng, &v.pcfg);
	random_config(rng, &v.ccfg);
	v_attach_p(&v);
	v_attach_c(&v);

	/* Traffic on a clean ring: any state, including wrapped, full,
	 * reserved or peeked. */
	steps = (uint32_t)rnd_below(rng, 150);
	for (i = 0; i < steps; i++)
		v_random_call(&v);
	/* A record corruption aims at records the consumer has not passed
	 * yet, which needs its peeked ones given back first. */
	if ((kind == C_RECORD || kind == C_RECORD_NEAR) && v.peeked)
		v_release(&v);

	v.clean = false;
	corrupt(&v, kind);

	/* First the side that reads the corrupted field, before the other
	 * side's next store heals it. */
	switch (kind) {
	case C_CONS:
		drive_producer(&v);
		break;
	case C_MODE_WORD:
		if (rnd_chance(rng, 50)) {
			drive_producer(&v);
			drive_consumer(&v);
		} else {
			drive_consumer(&v);
			drive_producer(&v);
		}
		break;
	case C_HEADER:
		v_reattach_p(&v);
		v_reattach_c(&v);
		break;
	default:
		drive_consumer(&v);
		break;
	}
	if (kind == C_MODE_WORD || kind == C_CONS) {
		/* A mode word only the other side's attach reads, or a
		 * cons that was read by neither yet. */
		drive_consumer(&v);
		drive_producer(&v);
	}
	/* Counted only if the side that reads the field reported it. */
	tally->iterations[kind]++;
	switch (kind) {
	case C_PROD:
	case C_RECORD:
		detected = v.c_eproto;
		break;
	case C_CONS:
		detected = v.p_eproto;
		break;
	case C_MODE_WORD:
		detected = v.mode_word == OFF_DATA_WORD ? v.p_eproto
							: v.c_eproto;
		break;
	case C_HEADER:
		detected = v.attach_eproto;
		break;
	default:
		detected = v.eproto;
		break;
	}
	if (detected)
		tally->eproto[kind]++;

	/* Then anything, including detaching and attaching again. */
	steps = (uint32_t)rnd_below(rng, 60);
	for (i = 0; i < steps; i++) {
		v_random_call(&v);
		if (rnd_chance(rng, 3))
			v_reattach_p(&v);
		if (rnd_chance(rng, 3))
			v_reattach_c(&v);
	}
	if (rnd_chance(rng, 20))
		corrupt(&v, (enum corruption)(uint32_t)rnd_below(rng, C_KINDS));
	drive_producer(&v);
	drive_consumer(&v);
	v_stats(&v);
	apq_producer_detach(v.p);
	apq_consumer_detach(v.c);
	apq_notifier_free(v.n);
	arena_check(a, where);
	tally->calls += v.calls;
}

static void arenas_open(struct arena *arenas)
{
	unsigned int i;

	for (i = 0; i < 2 * RINGS; i++)
		arena_open(&arenas[i], (size_t)4096 << (i % RINGS), i < RINGS);
}

static void arenas_close(struct arena *arenas)
{
	unsigned int i;

	for (i = 0; i < 2 * RINGS; i++)
		arena_close(&arenas[i]);
}

static unsigned char *buf_new(void)
{
	unsigned char *buf = malloc(BUF_BYTES + 64);

	ck_assert_ptr_nonnull(buf);
	return buf;
}

static void payload_init(void)
{
	static unsigned char bytes[1 << 15];
	size_t i;

	for (i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 7 + 3);
	payload = bytes;
}

#define ITERATIONS	2500	/* per loop index; 4 of them */

/* _i: an independent share of the iterations, each with its own stream */
START_TEST(test_random_corruption)
{
	struct arena arenas[2 * RINGS];
	uint64_t rng = seed ^ (UINT64_C(0x1000193) * (uint64_t)(_i + 1));
	unsigned char *buf = buf_new();
	struct tally tally = { { 0 }, { 0 }, 0 };
	unsigned int it, k;

	payload_init();
	arenas_open(arenas);
	for (it = 0; it < ITERATIONS; it++)
		one_iteration(arenas, &rng, buf, it, _i, &tally);
	arenas_close(arenas);
	free(buf);

	/*
	 * A random index, record header, mode word or header field is valid
	 * with negligible probability (about 1 in 2^24 to 2^32; a random mode
	 * word 1 in 256): nearly every such iteration must have met -EPROTO.
	 */
	for (k = 0; k < C_TARGETED; k++) {
		CHECK(tally.iterations[k] >= ITERATIONS / C_KINDS / 2,
		      "only %u iterations of %s", tally.iterations[k],
		      corruption_names[k]);
		CHECK(tally.eproto[k] * 100 >= tally.iterations[k] * 95,
		      "APQ_SEED=%llu: %s: -EPROTO in only %u of %u "
		      "iterations", (unsigned long long)seed,
		      corruption_names[k], tally.eproto[k],
		      tally.iterations[k]);
	}
	/* The other kinds are often harmless, but not always. */
	ck_assert_uint_gt(tally.eproto[C_BYTES] + tally.eproto[C_RING_GARBAGE] +
			  tally.eproto[C_ALL_GARBAGE], 0);
	ck_assert_uint_gt(tally.calls, 50 * ITERATIONS);
	printf("test %d: %lu calls;", _i, tally.calls);
	for (k = 0; k < C_KINDS; k++)
		printf(" %s %u/%u", corruption_names[k], tally.eproto[k],
		       tally.iterations[k]);
	printf("\n");
}
END_TEST

/*
 * A hostile peer in another thread
 */

struct hostile {
	unsigned char *mem;
	size_t bytes;
	uint32_t header[3];	/* the valid values, to restore now and then */
	uint64_t rng;
	bool ring_too;
	int stop;
	unsigned long writes;
};

static void *hostile_peer(void *arg)
{
	struct hostile *h = arg;
	uint64_t *rng = &h->rng;
	unsigned int burst;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		for (burst = 1 + (uint32_t)rnd_below(rng, 4); burst > 0; burst--) {
			uint32_t k = (uint32_t)rnd_below(rng, 100), c;
			size_t off = rnd_chance(rng, 50) ? OFF_PROD : OFF_CONS;
			size_t word = rnd_chance(rng, 50) ? OFF_DATA_WORD
						      : OFF_SPACE_WORD;
			uint64_t x = rnd(rng);

			if (k < 10) {
				set32(h->mem, off, (uint32_t)x);
			} else if (k < 30) {
				/* Moved a little: often, but not always,
				 * inconsistent. */
				set32(h->mem, off, get32(h->mem, off) +
				      4 * (uint32_t)rnd_below(rng, 9) - 16);
			} else if (k < 40) {
				/* A consistent empty ring, so that attach
				 * can succeed again. */
				c = get32(h->mem, OFF_CONS) & ~UINT32_C(7);
				set32(h->mem, OFF_CONS, c);
				set32(h->mem, OFF_PROD, c);
			} else if (k < 55) {
				/* Magic right, SLEEPING and CLOSED at
				 * random: wakeups and -EPIPE, not -EPROTO. */
				set64(h->mem, word, UINT64_C(0xa5) << 56 |
				      (x & ((UINT64_C(1) << 56) - 1)));
			} else if (k < 60) {
				set64(h->mem, word, x);
			} else if (k < 70) {
				set32(h->mem, word + OFF_SEQ, (uint32_t)x);
			} else if (k < 78) {
				c = (uint32_t)rnd_below(rng, 3);
				set32(h->mem, 4 * c,
				      k < 72 ? (uint32_t)x : h->header[c]);
			} else if (h->ring_too) {
				/* Record headers and payload alike: random,
				 * or a plausible header. */
				off = CTRL + 8 * (uint32_t)rnd_below(rng, (uint32_t)
						       (h->bytes - CTRL) / 8);
				if (rnd_chance(rng, 50))
					x = (uint64_t)(rnd_chance(rng, 50)
						       ? TAG_PACKET : TAG_PAD)
					    << 32 | (uint32_t)rnd_below(rng, (uint32_t)
							  (h->bytes - CTRL));
				set64(h->mem, off, x);
			}
			h->writes++;
		}
		/* Let the victim make progress between bursts: a few calls,
		 * or a few hundred. */
		if (rnd_chance(rng, 50)) {
			sched_yield();
		} else {
			struct timespec ts = { 0, (uint32_t)rnd_below(rng, 50000) };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

#define HOSTILE_ROUNDS	12
#define HOSTILE_ROUND_NS	40000000	/* 40 ms each */

/* _i: 0 scribbles on everything it may, 1 on the control area only */
START_TEST(test_hostile_peer)
{
	struct arena arenas[2 * RINGS];
	uint64_t rng = seed ^ UINT64_C(0xfeedbeef) ^ (uint64_t)_i;
	unsigned char *buf = buf_new();
	unsigned long calls = 0, writes = 0, ok = 0;
	unsigned int round, eproto = 0;

	payload_init();
	arenas_open(arenas);
	for (round = 0; round < HOSTILE_ROUNDS; round++) {
		struct arena *a = &arenas[round % (2 * RINGS)];
		struct hostile h = {
			.mem = a->mem, .bytes = a->bytes, .rng = rnd(&rng),
			.ring_too = _i == 0 && !TEST_UNDER_TSAN,
		};
		struct victim v = {
			.mem = a->mem, .bytes = a->bytes, .ring = a->ring,
			.max = apq_packet_max(a->ring), .rng = &rng,
			.buf = buf, .clean = true,
		};
		char where[128];
		pthread_t th;
		unsigned int f;
		int64_t end;

		snprintf(where, sizeof(where), "APQ_SEED=%llu hostile peer %d "
			 "round %u (ring %zu)", (unsigned long long)seed, _i,
			 round, a->ring);
		v.where = where;
		ck_assert_int_eq(apq_region_init(v.mem, v.bytes, v.ring), 0);
		ck_assert_int_eq(apq_notifier_futex(&v.n), 0);
		random_config(&rng, &v.pcfg);
		random_config(&rng, &v.ccfg);
		v_attach_p(&v);
		v_attach_c(&v);
		v.clean = false;
		for (f = 0; f < 3; f++)
			h.header[f] = get32(a->mem, 4 * f);
		ck_assert_int_eq(pthread_create(&th, NULL, hostile_peer, &h),
				 0);
		end = now_ns() + HOSTILE_ROUND_NS;
		while (now_ns() < end) {
			v_random_call(&v);
			/* Broken or gone: attach again, to keep the peer
			 * busy with live endpoints (not at every turn: the
			 * region may stay unattachable for a while). */
			if ((!v.p || v.p_broken) && rnd_chance(&rng, 10))
				v_reattach_p(&v);
			if ((!v.c || v.c_broken) && rnd_chance(&rng, 10))
				v_reattach_c(&v);
		}
		__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		drive_producer(&v);
		drive_consumer(&v);
		v_stats(&v);
		apq_producer_detach(v.p);
		apq_consumer_detach(v.c);
		apq_notifier_free(v.n);
		arena_check(a, where);
		calls += v.calls;
		ok += v.ok;
		writes += h.writes;
		eproto += v.eproto;
	}
	arenas_close(arenas);
	free(buf);
	/* The peer did scribble while the victim ran, and was noticed. */
	ck_assert_uint_gt(writes, HOSTILE_ROUNDS);
	ck_assert_uint_gt(eproto, 0);
	ck_assert_uint_ge(calls, HOSTILE_ROUNDS * 100);
	/* And the victim got work done in between. */
	ck_assert_uint_ge(ok, HOSTILE_ROUNDS * 10);
	printf("hostile peer %d: %lu calls, %lu succeeded, %lu scribbles, "
	       "%u -EPROTO\n", _i, calls, ok, writes, eproto);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc;

	tc = tcase_create("corrupt");
	/* About a second each normally; sanitizers are 5-15 times slower. */
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_random_corruption, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("peer");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_hostile_peer, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	seed = test_seed();
	printf("test-hostile: APQ_SEED=%llu%s\n", (unsigned long long)seed,
	       TEST_UNDER_TSAN ? " (ThreadSanitizer: the peer spares the ring)"
			  : "");
	fflush(stdout);
	sr = srunner_create(hostile_suite());
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
