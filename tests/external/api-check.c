/* SPDX-License-Identifier: MIT */
/*
 * api-check - apq's acceptance test, written from outside the project.
 *
 * It includes <apq/apq.h> only, is built only with `pkg-config --cflags
 * --libs apq` against an installed library (tests/external/run.sh), and uses
 * only the names of the stable core (doc/stable-api.md).  Where a
 * check relies on something only <apq/ring.h> promises, its message says so.
 *
 * Every check runs in a process of its own, in a process group of its own,
 * under alarm(): a crash or a hang in the library becomes a FAIL line for that
 * check, never a stuck CI job, and the next check still runs.  A check's
 * helper processes (the peer in two-process checks) share its group and are
 * killed with it.  A check that fails returns at once and leaks what it holds:
 * its process exits right after.
 *
 * Usage: api-check [--list] [CHECK...]     no CHECK: run them all
 * Env:   APQ_SEED=N                        replay a run (the seed is printed)
 */
#define _GNU_SOURCE	/* memfd_create, MAP_ANONYMOUS, strsignal */

#include <apq/apq.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS		INT64_C(1000000)
#define SEC		INT64_C(1000000000)
#define MSG_BYTES	4096
#define BUF_BYTES	(1 << 17)
#define CANARY		0x5c

/* ------------------------------------------------------------------------
 * Reporting.  A check's process writes its details (or its failure) into
 * shared memory, so that the runner can print them even when the check was
 * killed half-way.
 */

struct report {
	char msg[MSG_BYTES];	/* the check process */
	char peer[MSG_BYTES];	/* its helper process, if one failed */
};

static struct report *rep;
static char *out_msg;		/* rep->msg, or rep->peer in a helper */
static uint64_t seed;

static void vnote(const char *fmt, va_list ap)
{
	size_t used = strnlen(out_msg, MSG_BYTES - 1);

	if (used && used + 3 < MSG_BYTES) {
		memcpy(out_msg + used, "; ", 3);
		used += 2;
	}
	vsnprintf(out_msg + used, MSG_BYTES - used, fmt, ap);
}

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vnote(fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 2, 3)))
static int fail_at(int line, const char *fmt, ...)
{
	char buf[MSG_BYTES];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	note("line %d: %s", line, buf);
	return -1;
}

#define FAIL(...)	fail_at(__LINE__, __VA_ARGS__)

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond))						\
			return FAIL(__VA_ARGS__);			\
	} while (0)

/* Compare a call's result with the one expected, naming both. */
#define EXPECT(expr, want)						\
	do {								\
		long got_ = (long)(expr);				\
		long want_ = (long)(want);				\
		if (got_ != want_)					\
			return FAIL("%s = %s, want %s", #expr,		\
				    errname(got_), errname(want_));	\
	} while (0)

#define TRY(expr)							\
	do {								\
		if ((expr) < 0)						\
			return -1;					\
	} while (0)

static const char *errname(long r)
{
	static char bufs[4][24];
	static unsigned int next;
	char *b;

	switch (r) {
	case -EAGAIN:		return "-EAGAIN";
	case -ETIMEDOUT:	return "-ETIMEDOUT";
	case -EMSGSIZE:		return "-EMSGSIZE";
	case -EPIPE:		return "-EPIPE";
	case -EPROTO:		return "-EPROTO";
	case -EINVAL:		return "-EINVAL";
	case -ENOMEM:		return "-ENOMEM";
	case -EBUSY:		return "-EBUSY";
	case -EINTR:		return "-EINTR";
	}
	b = bufs[next++ % 4];
	snprintf(b, sizeof(bufs[0]), "%ld", r);
	return b;
}

/* ------------------------------------------------------------------------
 * Time, randomness, packet contents.
 */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / SEC, .tv_nsec = ns % SEC };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double ms(int64_t ns)
{
	return (double)ns / 1e6;
}

/* splitmix64's finaliser: a good 64-bit mix, cheap enough per packet. */
static uint64_t mix64(uint64_t z)
{
	z += UINT64_C(0x9e3779b97f4a7c15);
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *g)
{
	g->s += UINT64_C(0x9e3779b97f4a7c15);
	return mix64(g->s);
}

static uint64_t rnd_below(struct rng *g, uint64_t n)
{
	return rnd(g) % n;
}

static struct rng check_rng;	/* seeded per check from seed and its name */

/* The bytes of packet `key`: whoever knows the key can check them. */
static void pkt_fill(unsigned char *b, size_t len, uint64_t key)
{
	struct rng g = { key };
	uint64_t v;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		v = rnd(&g);
		memcpy(b + i, &v, 8);
	}
	if (i < len) {
		v = rnd(&g);
		memcpy(b + i, &v, len - i);
	}
}

static bool pkt_ok(const unsigned char *b, size_t len, uint64_t key)
{
	struct rng g = { key };
	uint64_t v;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		v = rnd(&g);
		if (memcmp(b + i, &v, 8))
			return false;
	}
	if (i < len) {
		v = rnd(&g);
		if (memcmp(b + i, &v, len - i))
			return false;
	}
	return true;
}

static unsigned char txbuf[BUF_BYTES];
static unsigned char rxbuf[BUF_BYTES];

/* ------------------------------------------------------------------------
 * Regions, endpoints, helper processes.
 */

/* "A zeroed struct apq_config means defaults." */
static const struct apq_config cfg_default;

struct region {
	void *mem;
	size_t bytes;		/* apq_region_size(ring) */
	size_t ring;
};

/*
 * A memfd mapped MAP_SHARED, as two processes of a real deployment share a
 * region; a helper forked later inherits the mapping.
 */
static int region_shared(struct region *r, size_t ring)
{
	int fd;

	r->ring = ring;
	r->bytes = apq_region_size(ring);
	CHECK(r->bytes >= ring, "apq_region_size(%zu) = %zu", ring, r->bytes);
	fd = memfd_create("apq-api-check", MFD_CLOEXEC);
	CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)r->bytes)) {
		close(fd);
		return FAIL("ftruncate: %s", strerror(errno));
	}
	r->mem = mmap(NULL, r->bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	CHECK(r->mem != MAP_FAILED, "mmap: %s", strerror(errno));
	EXPECT(apq_region_init(r->mem, r->bytes, ring), 0);
	return 0;
}

static void region_free(struct region *r)
{
	if (r->mem)
		munmap(r->mem, r->bytes);
	r->mem = NULL;
}

/* Shared anonymous memory: helpers write results the check reads. */
static void *shm_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Both endpoints of one region in this process. */
struct pair {
	struct region r;
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
};

static int pair_open(struct pair *x, size_t ring, const struct apq_config *cfg)
{
	memset(x, 0, sizeof(*x));
	TRY(region_shared(&x->r, ring));
	EXPECT(apq_notifier_futex(&x->n), 0);
	EXPECT(apq_producer_attach(&x->p, x->r.mem, x->r.bytes, x->n, cfg), 0);
	EXPECT(apq_consumer_attach(&x->c, x->r.mem, x->r.bytes, x->n, cfg), 0);
	return 0;
}

static void pair_close(struct pair *x)
{
	apq_producer_detach(x->p);
	apq_consumer_detach(x->c);
	apq_notifier_free(x->n);
	region_free(&x->r);
}

static int send_key(struct apq_producer *p, uint64_t key, size_t len,
		    int64_t timeout_ns)
{
	pkt_fill(txbuf, len, key);
	return apq_send(p, txbuf, len, timeout_ns);
}

/* Receive one packet and check that it is packet `key` of len bytes. */
static int recv_key(struct apq_consumer *c, uint64_t key, size_t len,
		    int64_t timeout_ns)
{
	ssize_t r = apq_recv(c, rxbuf, sizeof(rxbuf), timeout_ns);

	CHECK(r == (ssize_t)len, "apq_recv = %s, want %zu (packet %#" PRIx64 ")",
	      errname(r), len, key);
	CHECK(pkt_ok(rxbuf, len, key), "packet %#" PRIx64 ": content differs",
	      key);
	return 0;
}

/* Send 100-byte packets key0, key0 + 1, ... until -EAGAIN.  @return count. */
static long fill_ring(struct apq_producer *p, uint64_t key0, size_t ring)
{
	long n;
	int r;

	for (n = 0;; n++) {
		r = send_key(p, key0 + (uint64_t)n, 100, 0);
		if (r == -EAGAIN)
			return n;
		CHECK(r == 0, "apq_send #%ld into a filling ring = %s", n,
		      errname(r));
		CHECK((size_t)n * 100 <= ring,
		      "a %zu-byte ring took %ld packets of 100 bytes", ring, n);
	}
}

/* Run fn(arg) in a helper process, under its own watchdog. */
static pid_t helper_start(int (*fn)(void *), void *arg, unsigned int seconds)
{
	pid_t pid;

	rep->peer[0] = '\0';
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		out_msg = rep->peer;
		alarm(seconds);
		_exit(fn(arg) ? 1 : 0);
	}
	return pid;
}

/* @return 0 if the helper exited with 0; else -1, saying how it ended. */
static int helper_wait(pid_t pid, const char *who)
{
	int st;

	if (pid < 0)
		return FAIL("fork (%s): %s", who, strerror(errno));
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return FAIL("waitpid (%s): %s", who, strerror(errno));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFSIGNALED(st))
		return FAIL("%s killed by signal %d (%s)%s [%s]", who,
			    WTERMSIG(st), strsignal(WTERMSIG(st)),
			    WTERMSIG(st) == SIGALRM ? ": its watchdog, it hung" : "",
			    rep->peer);
	return FAIL("%s failed [%s]", who, rep->peer);
}

static int wait_phase(atomic_int *phase, int want, int64_t timeout_ns)
{
	int64_t end = now_ns() + timeout_ns;

	while (atomic_load(phase) < want) {
		CHECK(now_ns() < end, "the peer did not reach phase %d", want);
		sleep_ns(100 * 1000);
	}
	return 0;
}

static bool stats_zero(const struct apq_stats *s)
{
	return !s->packets && !s->bytes && !s->wakeups_sent &&
	       !s->wakeups_skipped && !s->sleeps && !s->spurious_wakeups &&
	       !s->rescues;
}

/* ------------------------------------------------------------------------
 * Error codes, one process.
 */

static int check_region_size(void)
{
	static const size_t bad[] = { 0, 1, 64, 2048, 4095, 4097, 6144, 12288,
				      65535 };
	size_t ring, s, prev = 0, i;

	for (ring = 4096; ring <= (size_t)1 << 24; ring <<= 1) {
		s = apq_region_size(ring);
		CHECK(s >= ring && s > prev, "apq_region_size(%zu) = %zu",
		      ring, s);
		prev = s;
	}
	/* ring.h: 0 when ring_bytes is not a power of two >= 4096. */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(apq_region_size(bad[i]) == 0,
		      "apq_region_size(%zu) = %zu, want 0 (ring.h)", bad[i],
		      apq_region_size(bad[i]));
	note("apq_region_size(4096) = %zu", apq_region_size(4096));
	return 0;
}

static int check_init_einval(void)
{
	static const size_t bad_rings[] = { 0, 1, 2048, 4095, 4097, 6144 };
	static const size_t bad_offs[] = { 1, 4, 8, 16, 32, 63 };
	const size_t ring = 4096, bytes = apq_region_size(ring);
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	const size_t span = bytes + 2 * page;
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	unsigned char *base, *mem;
	size_t i;

	base = mmap(NULL, span, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(base != MAP_FAILED, "mmap: %s", strerror(errno));

	EXPECT(apq_region_init(NULL, bytes, ring), -EINVAL);
	for (i = 0; i < sizeof(bad_offs) / sizeof(bad_offs[0]); i++)
		CHECK(apq_region_init(base + bad_offs[i], bytes, ring) == -EINVAL,
		      "apq_region_init(mem + %zu: misaligned) = %s, want -EINVAL",
		      bad_offs[i],
		      errname(apq_region_init(base + bad_offs[i], bytes, ring)));
	EXPECT(apq_region_init(base, bytes - 1, ring), -EINVAL);
	EXPECT(apq_region_init(base, 0, ring), -EINVAL);
	for (i = 0; i < sizeof(bad_rings) / sizeof(bad_rings[0]); i++)
		CHECK(apq_region_init(base, span, bad_rings[i]) == -EINVAL,
		      "apq_region_init(ring_bytes %zu) = %s, want -EINVAL",
		      bad_rings[i],
		      errname(apq_region_init(base, span, bad_rings[i])));

	/* More memory than needed is fine. */
	EXPECT(apq_region_init(base, span, ring), 0);
	/* "mem needs 64-byte alignment and no more": 64 bytes past a page
	 * boundary is 64- but not 128-aligned, and must work end to end. */
	mem = base + 64;
	EXPECT(apq_region_init(mem, bytes, ring), 0);
	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_producer_attach(&p, mem, bytes, n, &cfg_default), 0);
	EXPECT(apq_consumer_attach(&c, mem, bytes, n, &cfg_default), 0);
	EXPECT(send_key(p, 42, 1000, 0), 0);
	TRY(recv_key(c, 42, 1000, 0));
	apq_producer_detach(p);
	apq_consumer_detach(c);
	apq_notifier_free(n);
	munmap(base, span);
	return 0;
}

/* Attach one side; detach at once if that worked.  side 0: producer. */
static int attach_side(int side, bool null_out, void *mem, size_t bytes,
		       struct apq_notifier *n, const struct apq_config *cfg)
{
	struct apq_producer *p = NULL;
	struct apq_consumer *c = NULL;
	int r;

	if (side == 0) {
		r = apq_producer_attach(null_out ? NULL : &p, mem, bytes, n, cfg);
		if (r == 0)
			apq_producer_detach(p);
	} else {
		r = apq_consumer_attach(null_out ? NULL : &c, mem, bytes, n, cfg);
		if (r == 0)
			apq_consumer_detach(c);
	}
	return r;
}

static int check_attach_errors(void)
{
	static const char *const side_name[] = { "producer", "consumer" };
	const struct apq_config bad_policy = { .policy = (enum apq_policy)4 };
	const struct apq_config bad_policy2 = { .policy = (enum apq_policy)1000 };
	struct region r, big, blank;
	struct apq_notifier *n;
	unsigned char *m;
	int side, pol, r1;

	TRY(region_shared(&r, 4096));
	TRY(region_shared(&big, 8192));
	/* A region nobody initialised: zeroes, as fresh shared memory. */
	TRY(region_shared(&blank, 4096));
	memset(blank.mem, 0, blank.bytes);
	EXPECT(apq_notifier_futex(&n), 0);
	m = r.mem;

	for (side = 0; side < 2; side++) {
		const char *s = side_name[side];

#define ATT(null_out, mem, bytes, notif, cfg, want, why)			\
	do {								\
		r1 = attach_side(side, null_out, mem, bytes, notif, cfg);	\
		CHECK(r1 == (want), "%s attach, %s: %s, want %s", s, why,	\
		      errname(r1), errname(want));			\
	} while (0)

		ATT(true, m, r.bytes, n, &cfg_default, -EINVAL, "out NULL");
		ATT(false, NULL, r.bytes, n, &cfg_default, -EINVAL, "mem NULL");
		ATT(false, m, r.bytes, NULL, &cfg_default, -EINVAL,
		    "notifier NULL");
		ATT(false, m + 8, r.bytes, n, &cfg_default, -EINVAL,
		    "mem + 8 (misaligned)");
		ATT(false, m + 32, r.bytes, n, &cfg_default, -EINVAL,
		    "mem + 32 (misaligned)");
		ATT(false, m, r.bytes, n, &bad_policy, -EINVAL, "policy 4");
		ATT(false, m, r.bytes, n, &bad_policy2, -EINVAL, "policy 1000");
		ATT(false, m, 0, n, &cfg_default, -EINVAL,
		    "mem_bytes 0 (ring.h)");
		ATT(false, m, 64, n, &cfg_default, -EINVAL,
		    "mem_bytes 64, smaller than any region (ring.h)");
		ATT(false, blank.mem, blank.bytes, n, &cfg_default, -EPROTO,
		    "memory never initialised (ring.h)");
		ATT(false, big.mem, apq_region_size(4096), n, &cfg_default,
		    -EPROTO, "region larger than mem_bytes (ring.h)");
		/* The failed attaches left nothing half-attached. */
		for (pol = 0; pol < 4; pol++) {
			struct apq_config cfg = {
				.policy = (enum apq_policy)pol,
				.spin_ns = pol == APQ_POLICY_SPIN ? 1000000 : 0,
			};

			ATT(false, m, r.bytes, n, &cfg, 0, "valid policy");
		}
		ATT(false, big.mem, big.bytes, n, &cfg_default, 0,
		    "8 KiB ring");
#undef ATT
	}
	apq_notifier_free(n);
	region_free(&r);
	region_free(&big);
	region_free(&blank);
	return 0;
}

static int check_eagain_etimedout(void)
{
	struct apq_stats st;
	struct pair x;
	int64_t t0, dt;
	long n, i;

	TRY(pair_open(&x, 4096, &cfg_default));

	t0 = now_ns();
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	dt = now_ns() - t0;
	CHECK(dt < 100 * MS, "apq_recv(timeout 0) took %.1f ms", ms(dt));
	t0 = now_ns();
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 30 * MS), -ETIMEDOUT);
	dt = now_ns() - t0;
	CHECK(dt >= 30 * MS && dt < SEC,
	      "apq_recv(timeout 30 ms) returned after %.1f ms", ms(dt));

	n = fill_ring(x.p, 0, 4096);
	TRY(n);
	/* Not a contract number: a user expects a 4 KiB ring to hold at
	 * least half its size in 100-byte packets. */
	CHECK(n * 100 >= 2048, "a 4096-byte ring took only %ld 100-byte packets",
	      n);
	t0 = now_ns();
	EXPECT(send_key(x.p, 999, 100, 30 * MS), -ETIMEDOUT);
	dt = now_ns() - t0;
	CHECK(dt >= 30 * MS && dt < SEC,
	      "apq_send(timeout 30 ms) returned after %.1f ms", ms(dt));
	EXPECT(send_key(x.p, 999, 100, 0), -EAGAIN);
	EXPECT(apq_producer_stats(x.p, &st), 0);
	CHECK(st.packets == (uint64_t)n && st.bytes == (uint64_t)n * 100,
	      "producer stats: %" PRIu64 " packets, %" PRIu64 " bytes after %ld"
	      " sends of 100 bytes and some failures", st.packets, st.bytes, n);

	/* Space the consumer frees is usable again. */
	TRY(recv_key(x.c, 0, 100, 0));
	TRY(recv_key(x.c, 1, 100, 0));
	EXPECT(send_key(x.p, (uint64_t)n, 100, 0), 0);
	for (i = 2; i <= n; i++)
		TRY(recv_key(x.c, (uint64_t)i, 100, 0));
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	note("a 4096-byte ring holds %ld packets of 100 bytes", n);
	pair_close(&x);
	return 0;
}

static int check_emsgsize_send(void)
{
	/* The last two would pass a check done on a 32-bit copy of len. */
	const size_t huge[] = { 4096, 4097, 8192, (size_t)1 << 20,
				((size_t)1 << 32) + 100, SIZE_MAX / 2, SIZE_MAX };
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *guard, *small;
	struct apq_stats st;
	struct pair x;
	size_t i, len;
	int64_t t0;
	long n;
	int r = 0;

	/* 16 valid bytes, then a PROT_NONE page: a send that touches the
	 * payload before it checks the length crashes here. */
	guard = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(guard != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(mprotect(guard + page, page, PROT_NONE) == 0, "mprotect: %s",
	      strerror(errno));
	small = guard + page - 16;

	TRY(pair_open(&x, 4096, &cfg_default));
	for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		CHECK((r = apq_send(x.p, small, huge[i], 0)) == -EMSGSIZE,
		      "apq_send(len %zu, 4096-byte ring) = %s, want -EMSGSIZE",
		      huge[i], errname(r));
		/* Too large never fits: no waiting for space. */
		CHECK((r = apq_send(x.p, small, huge[i], -1)) == -EMSGSIZE,
		      "apq_send(len %zu, timeout -1) = %s, want -EMSGSIZE",
		      huge[i], errname(r));
	}
	/* The largest packet an empty 4096-byte ring takes; every larger
	 * one is -EMSGSIZE, not -EAGAIN. */
	for (len = 4096; len > 4096 - 256; len--) {
		r = send_key(x.p, 7, len, 0);
		if (r == 0)
			break;
		CHECK(r == -EMSGSIZE, "apq_send(len %zu, empty 4096-byte ring)"
		      " = %s, want 0 or -EMSGSIZE", len, errname(r));
	}
	CHECK(r == 0, "an empty 4096-byte ring takes no packet of %zu bytes",
	      len + 1);
	TRY(recv_key(x.c, 7, len, 0));
	note("largest packet of a 4096-byte ring: %zu bytes", len);

	/* A full ring: -EMSGSIZE still comes at once, not after a wait. */
	n = fill_ring(x.p, 100, 4096);
	TRY(n);
	t0 = now_ns();
	EXPECT(apq_send(x.p, small, 8192, -1), -EMSGSIZE);
	EXPECT(apq_send(x.p, small, 4097, 200 * MS), -EMSGSIZE);
	CHECK(now_ns() - t0 < 100 * MS, "-EMSGSIZE on a full ring took %.1f ms",
	      ms(now_ns() - t0));
	for (i = 0; i < (size_t)n; i++)
		TRY(recv_key(x.c, 100 + i, 100, 0));
	/* The endpoint still works after all those refusals. */
	EXPECT(send_key(x.p, 8, 2048, 0), 0);
	TRY(recv_key(x.c, 8, 2048, 0));
	EXPECT(apq_producer_stats(x.p, &st), 0);
	CHECK(st.packets == (uint64_t)n + 2, "producer stats: %" PRIu64
	      " packets, want %ld (refused sends do not count)", st.packets,
	      n + 2);
	pair_close(&x);
	munmap(guard, 2 * page);
	return 0;
}

static int check_emsgsize_recv(void)
{
	struct apq_stats st;
	struct pair x;
	int i;

	TRY(pair_open(&x, 4096, &cfg_default));
	EXPECT(send_key(x.p, 1, 100, 0), 0);
	EXPECT(send_key(x.p, 2, 1, 0), 0);
	EXPECT(send_key(x.p, 3, 0, 0), 0);
	EXPECT(send_key(x.p, 4, 3000, 0), 0);

	/* "cap too small: the packet stays queued": however often asked,
	 * also with a timeout, since the packet is there. */
	for (i = 0; i < 100; i++) {
		EXPECT(apq_recv(x.c, rxbuf, 99, 0), -EMSGSIZE);
		EXPECT(apq_recv(x.c, rxbuf, 0, 0), -EMSGSIZE);
		EXPECT(apq_recv(x.c, rxbuf, 1, -1), -EMSGSIZE);
		EXPECT(apq_recv(x.c, rxbuf, 50, SEC), -EMSGSIZE);
	}
	EXPECT(apq_recv(x.c, rxbuf, 100, 0), 100);
	CHECK(pkt_ok(rxbuf, 100, 1), "packet 1 changed by the -EMSGSIZE calls");
	EXPECT(apq_recv(x.c, rxbuf, 0, 0), -EMSGSIZE);
	EXPECT(apq_recv(x.c, rxbuf, 1, 0), 1);
	CHECK(pkt_ok(rxbuf, 1, 2), "packet 2 differs");
	/* A zero-length packet fits any buffer. */
	EXPECT(apq_recv(x.c, rxbuf, 0, 0), 0);
	EXPECT(apq_recv(x.c, rxbuf, 2999, 0), -EMSGSIZE);
	EXPECT(apq_recv(x.c, rxbuf, 2999, -1), -EMSGSIZE);
	EXPECT(apq_recv(x.c, rxbuf, 3000, 0), 3000);
	CHECK(pkt_ok(rxbuf, 3000, 4), "packet 4 differs");
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	EXPECT(apq_consumer_stats(x.c, &st), 0);
	CHECK(st.packets == 4 && st.bytes == 3101, "consumer stats: %" PRIu64
	      " packets, %" PRIu64 " bytes, want 4 and 3101", st.packets,
	      st.bytes);

	/* The packet stays queued also once its producer is gone: -EMSGSIZE
	 * first, -EPIPE only when the ring is drained. */
	EXPECT(send_key(x.p, 5, 200, 0), 0);
	apq_producer_detach(x.p);
	x.p = NULL;
	EXPECT(apq_recv(x.c, rxbuf, 10, 0), -EMSGSIZE);
	EXPECT(apq_recv(x.c, rxbuf, 10, -1), -EMSGSIZE);
	TRY(recv_key(x.c, 5, 200, 0));
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EPIPE);
	pair_close(&x);
	return 0;
}

static int check_fresh_region_open(void)
{
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	struct region r;
	int64_t t0;
	int i;

	EXPECT(apq_notifier_futex(&n), 0);
	/* "A freshly initialised region counts as open on both sides":
	 * the producer may send before any consumer ever attached... */
	TRY(region_shared(&r, 4096));
	EXPECT(apq_producer_attach(&p, r.mem, r.bytes, n, &cfg_default), 0);
	for (i = 0; i < 5; i++)
		EXPECT(send_key(p, (uint64_t)i, 10 * (size_t)i, 0), 0);
	EXPECT(apq_consumer_attach(&c, r.mem, r.bytes, n, &cfg_default), 0);
	for (i = 0; i < 5; i++)
		TRY(recv_key(c, (uint64_t)i, 10 * (size_t)i, 0));
	EXPECT(apq_recv(c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	apq_producer_detach(p);
	apq_consumer_detach(c);
	region_free(&r);

	/* ...and a consumer waits for a producer that has not come yet,
	 * "only a detach produces -EPIPE". */
	TRY(region_shared(&r, 4096));
	EXPECT(apq_consumer_attach(&c, r.mem, r.bytes, n, &cfg_default), 0);
	EXPECT(apq_recv(c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	t0 = now_ns();
	EXPECT(apq_recv(c, rxbuf, sizeof(rxbuf), 20 * MS), -ETIMEDOUT);
	CHECK(now_ns() - t0 >= 20 * MS, "timed out early");
	EXPECT(apq_producer_attach(&p, r.mem, r.bytes, n, &cfg_default), 0);
	EXPECT(send_key(p, 9, 33, 0), 0);
	TRY(recv_key(c, 9, 33, 0));
	apq_producer_detach(p);
	apq_consumer_detach(c);
	region_free(&r);
	apq_notifier_free(n);
	return 0;
}

static int check_epipe_consumer_gone(void)
{
	struct pair x;
	int64_t t0;

	TRY(pair_open(&x, 4096, &cfg_default));
	EXPECT(send_key(x.p, 1, 10, 0), 0);
	apq_consumer_detach(x.c);
	x.c = NULL;
	t0 = now_ns();
	EXPECT(send_key(x.p, 2, 10, 0), -EPIPE);
	EXPECT(send_key(x.p, 2, 10, -1), -EPIPE);
	EXPECT(send_key(x.p, 2, 10, SEC), -EPIPE);
	CHECK(now_ns() - t0 < 500 * MS, "-EPIPE took %.1f ms",
	      ms(now_ns() - t0));
	pair_close(&x);

	/* Full and gone: -EPIPE, not -EAGAIN, which would invite retrying
	 * forever, and no waiting for space that nobody will free. */
	TRY(pair_open(&x, 4096, &cfg_default));
	TRY(fill_ring(x.p, 0, 4096));
	apq_consumer_detach(x.c);
	x.c = NULL;
	EXPECT(send_key(x.p, 2, 100, 0), -EPIPE);
	EXPECT(send_key(x.p, 2, 100, -1), -EPIPE);
	pair_close(&x);
	return 0;
}

static int check_epipe_producer_gone(void)
{
	struct pair x;
	int64_t t0;

	TRY(pair_open(&x, 4096, &cfg_default));
	EXPECT(send_key(x.p, 1, 10, 0), 0);
	EXPECT(send_key(x.p, 2, 0, 0), 0);
	EXPECT(send_key(x.p, 3, 500, 0), 0);
	apq_producer_detach(x.p);
	x.p = NULL;
	/* "-EPIPE (producer detached and ring drained)": first the rest. */
	TRY(recv_key(x.c, 1, 10, 0));
	TRY(recv_key(x.c, 2, 0, -1));
	TRY(recv_key(x.c, 3, 500, SEC));
	t0 = now_ns();
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EPIPE);
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), -1), -EPIPE);
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), SEC), -EPIPE);
	CHECK(now_ns() - t0 < 500 * MS, "-EPIPE took %.1f ms",
	      ms(now_ns() - t0));
	pair_close(&x);
	return 0;
}

/* A peer that leaves while this side sleeps on it, in another process. */
struct wake_shared {
	struct region r;
	atomic_int phase;
	int64_t closed_at;	/* CLOCK_MONOTONIC, just before the detach */
};

static int wake_sender_peer(void *arg)
{
	struct wake_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_consumer *c;

	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_consumer_attach(&c, sh->r.mem, sh->r.bytes, n,
				   &cfg_default), 0);
	atomic_store(&sh->phase, 1);
	TRY(wait_phase(&sh->phase, 2, 5 * SEC));
	/* Long enough for the producer to be asleep, not just polling. */
	sleep_ns(100 * MS);
	sh->closed_at = now_ns();
	apq_consumer_detach(c);
	apq_notifier_free(n);
	return 0;
}

static int wake_receiver_peer(void *arg)
{
	struct wake_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_producer *p;

	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_producer_attach(&p, sh->r.mem, sh->r.bytes, n,
				   &cfg_default), 0);
	atomic_store(&sh->phase, 1);
	TRY(wait_phase(&sh->phase, 2, 5 * SEC));
	sleep_ns(50 * MS);
	EXPECT(send_key(p, 77, 300, 0), 0);
	sleep_ns(100 * MS);
	sh->closed_at = now_ns();
	apq_producer_detach(p);
	apq_notifier_free(n);
	return 0;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The side blocked with timeout -1 must learn of the detach: it must not
 * hang (the contract's -EPIPE), and ring.h promises "a sleeping peer is
 * woken", so it should learn at once, not at some periodic re-check.  The
 * median of five trials keeps a scheduling hiccup from failing the check.
 */
static int epipe_wakes(bool sender)
{
	int64_t lat[5], t0, t1;
	struct wake_shared *sh;
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	pid_t pid;
	long r;
	int t;

	sh = shm_alloc(sizeof(*sh));
	CHECK(sh, "mmap: %s", strerror(errno));
	for (t = 0; t < 5; t++) {
		memset(sh, 0, sizeof(*sh));
		TRY(region_shared(&sh->r, 4096));
		pid = helper_start(sender ? wake_sender_peer : wake_receiver_peer,
				   sh, 10);
		EXPECT(apq_notifier_futex(&n), 0);
		if (sender)
			EXPECT(apq_producer_attach(&p, sh->r.mem, sh->r.bytes, n,
						   &cfg_default), 0);
		else
			EXPECT(apq_consumer_attach(&c, sh->r.mem, sh->r.bytes, n,
						   &cfg_default), 0);
		TRY(wait_phase(&sh->phase, 1, 5 * SEC));
		if (sender)
			TRY(fill_ring(p, 0, 4096));
		atomic_store(&sh->phase, 2);
		t0 = now_ns();
		if (sender) {
			r = send_key(p, 1000, 100, -1);
		} else {
			TRY(recv_key(c, 77, 300, -1));
			r = apq_recv(c, rxbuf, sizeof(rxbuf), -1);
		}
		t1 = now_ns();
		CHECK(r == -EPIPE, "%s(timeout -1) while the peer detached = %s,"
		      " want -EPIPE", sender ? "apq_send" : "apq_recv",
		      errname(r));
		TRY(helper_wait(pid, sender ? "consumer" : "producer"));
		CHECK(t1 - t0 >= 90 * MS, "returned after %.1f ms, before the"
		      " peer detached", ms(t1 - t0));
		lat[t] = t1 - sh->closed_at;
		if (sender)
			apq_producer_detach(p);
		else
			apq_consumer_detach(c);
		apq_notifier_free(n);
		region_free(&sh->r);
	}
	qsort(lat, 5, sizeof(lat[0]), cmp_i64);
	note("blocked %s saw -EPIPE %.3f ms after the detach (median of 5,"
	     " max %.3f)", sender ? "sender" : "receiver", ms(lat[2]),
	     ms(lat[4]));
	CHECK(lat[2] < 25 * MS, "the detach did not wake the sleeper: -EPIPE"
	      " came %.1f ms later (median; ring.h: \"a sleeping peer is"
	      " woken\")", ms(lat[2]));
	return 0;
}

static int check_epipe_wakes_sender(void)
{
	return epipe_wakes(true);
}

static int check_epipe_wakes_receiver(void)
{
	return epipe_wakes(false);
}

/* ------------------------------------------------------------------------
 * A peer process killed with SIGKILL: it never detaches, so only the
 * library's own watch on it can tell the survivor.  The contract: -EPIPE
 * "within about 100 ms", and only after every packet it committed.
 */

enum kill_mode {
	KILL_BLOCKED,		/* the survivor blocks (timeout -1) */
	KILL_MIDSTREAM,		/* killed while both run flat out */
	KILL_TIMEOUT0,		/* the survivor polls with timeout 0 */
};

struct kill_shared {
	struct region r;
	struct apq_config cfg;	/* the survivor's and the victim's */
	enum kill_mode mode;
	atomic_int phase;	/* 1: the victim attached */
	atomic_long committed;	/* packets the producer's sends returned 0 for */
	atomic_long received;	/* packets the consumer took */
	int64_t killed_at;	/* CLOCK_MONOTONIC, just before the kill */
};

#define KILL_BOUND	(100 * MS)
#define KILL_TRIALS	3
#define KILL_PKTS	20	/* sent before a blocked survivor's wait */

static size_t kill_len(uint64_t k)
{
	return 1 + (size_t)(mix64(k) % 700);
}

/* The victim producer: KILL_PKTS packets and then nothing (the survivor
 * blocks), or packets as fast as it can (midstream), until it is killed. */
static int kill_victim_producer(void *arg)
{
	struct kill_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_producer *p;
	uint64_t k;

	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_producer_attach(&p, sh->r.mem, sh->r.bytes, n, &sh->cfg), 0);
	atomic_store(&sh->phase, 1);
	for (k = 0;; k++) {
		if (sh->mode != KILL_MIDSTREAM && k == KILL_PKTS)
			for (;;)
				pause();
		EXPECT(send_key(p, k, kill_len(k), -1), 0);
		atomic_store(&sh->committed, (long)k + 1);
	}
}

/* The victim consumer: takes nothing (the survivor fills the ring and
 * blocks), or takes packets as fast as it can, until it is killed. */
static int kill_victim_consumer(void *arg)
{
	struct kill_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_consumer *c;
	uint64_t k;

	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_consumer_attach(&c, sh->r.mem, sh->r.bytes, n, &sh->cfg), 0);
	atomic_store(&sh->phase, 1);
	if (sh->mode != KILL_MIDSTREAM)
		for (;;)
			pause();
	for (k = 0;; k++) {
		TRY(recv_key(c, k, kill_len(k), -1));
		atomic_store(&sh->received, (long)k + 1);
	}
}

/* The killer: after a while (out of step with any periodic re-check),
 * SIGKILL the victim and note when. */
struct killer_arg {
	struct kill_shared *sh;
	pid_t victim;
	int64_t delay;
};

static int killer(void *arg)
{
	struct killer_arg *ka = arg;

	sleep_ns(ka->delay);
	ka->sh->killed_at = now_ns();
	kill(ka->victim, SIGKILL);
	return 0;
}

/* One trial: @return the delay from the kill to the survivor's -EPIPE, or
 * -1 on failure. */
static int64_t kill_trial(struct kill_shared *sh, bool kill_producer)
{
	struct killer_arg ka = { .sh = sh };
	struct apq_notifier *n;
	struct apq_producer *p = NULL;
	struct apq_consumer *c = NULL;
	int64_t t_epipe = 0, timeout = sh->mode == KILL_TIMEOUT0 ? 0 : -1;
	pid_t victim, kpid;
	uint64_t k = 0;
	long r;

	atomic_store(&sh->phase, 0);
	atomic_store(&sh->committed, 0);
	atomic_store(&sh->received, 0);
	TRY(region_shared(&sh->r, 16384));
	victim = helper_start(kill_producer ? kill_victim_producer
					    : kill_victim_consumer, sh, 30);
	CHECK(victim > 0, "fork: %s", strerror(errno));
	EXPECT(apq_notifier_futex(&n), 0);
	if (kill_producer)
		EXPECT(apq_consumer_attach(&c, sh->r.mem, sh->r.bytes, n,
					   &sh->cfg), 0);
	else
		EXPECT(apq_producer_attach(&p, sh->r.mem, sh->r.bytes, n,
					   &sh->cfg), 0);
	TRY(wait_phase(&sh->phase, 1, 5 * SEC));
	ka.victim = victim;
	ka.delay = (sh->mode == KILL_MIDSTREAM ? 20 : 80) * MS +
		   (int64_t)rnd_below(&check_rng, 50) * MS;
	kpid = helper_start(killer, &ka, 10);
	CHECK(kpid > 0, "fork: %s", strerror(errno));
	for (;;) {
		if (kill_producer) {
			r = apq_recv(c, rxbuf, sizeof(rxbuf), timeout);
			if (r >= 0) {
				CHECK(r == (long)kill_len(k) &&
				      pkt_ok(rxbuf, (size_t)r, k),
				      "packet %" PRIu64 " wrong (%s bytes)", k,
				      errname(r));
				k++;
				continue;
			}
		} else {
			r = send_key(p, k, kill_len(k), timeout);
			if (r == 0) {
				k++;
				continue;
			}
		}
		if (r == -EAGAIN && timeout == 0)
			continue;
		t_epipe = now_ns();
		break;
	}
	CHECK(r == -EPIPE, "the survivor got %s, want -EPIPE", errname(r));
	TRY(helper_wait(kpid, "killer"));
	CHECK(sh->killed_at && t_epipe >= sh->killed_at,
	      "-EPIPE came before the kill");
	waitpid(victim, NULL, 0);
	if (kill_producer)
		CHECK((long)k >= atomic_load(&sh->committed),
		      "received %" PRIu64 " packets, but %ld were committed",
		      k, atomic_load(&sh->committed));
	if (kill_producer)
		apq_consumer_detach(c);
	else
		apq_producer_detach(p);
	apq_notifier_free(n);
	region_free(&sh->r);
	return t_epipe - sh->killed_at;
}

static int kill_checks(bool kill_producer, enum kill_mode mode,
		       enum apq_policy policy)
{
	static const char *const mode_names[] = { "blocked", "midstream",
						  "timeout-0" };
	struct kill_shared *sh = shm_alloc(sizeof(*sh));
	int64_t worst = 0, d;
	int t;

	CHECK(sh, "mmap: %s", strerror(errno));
	for (t = 0; t < KILL_TRIALS; t++) {
		memset(sh, 0, sizeof(*sh));
		sh->mode = mode;
		sh->cfg.policy = policy;
		d = kill_trial(sh, kill_producer);
		if (d < 0)
			return -1;
		if (d > worst)
			worst = d;
	}
	note("%s killed, %s survivor: -EPIPE %.1f ms after the kill (worst of"
	     " %d)", kill_producer ? "producer" : "consumer", mode_names[mode],
	     ms(worst), KILL_TRIALS);
	CHECK(worst <= KILL_BOUND, "a killed %s was noticed only after %.1f ms"
	      " (DESIGN: within about 100 ms)",
	      kill_producer ? "producer" : "consumer", ms(worst));
	return 0;
}

static int check_kill_producer(void)
{
	TRY(kill_checks(true, KILL_BLOCKED, APQ_POLICY_ADAPTIVE));
	TRY(kill_checks(true, KILL_MIDSTREAM, APQ_POLICY_ADAPTIVE));
	TRY(kill_checks(true, KILL_TIMEOUT0, APQ_POLICY_ADAPTIVE));
	return kill_checks(true, KILL_BLOCKED, APQ_POLICY_BUSY_POLL);
}

static int check_kill_consumer(void)
{
	TRY(kill_checks(false, KILL_BLOCKED, APQ_POLICY_ADAPTIVE));
	TRY(kill_checks(false, KILL_MIDSTREAM, APQ_POLICY_ADAPTIVE));
	TRY(kill_checks(false, KILL_TIMEOUT0, APQ_POLICY_ADAPTIVE));
	return kill_checks(false, KILL_BLOCKED, APQ_POLICY_BUSY_POLL);
}

/* ring.h: "a side that detached may be replaced by a new attach, which
 * reopens it". */
static int check_reattach(void)
{
	struct pair x;

	TRY(pair_open(&x, 4096, &cfg_default));
	apq_producer_detach(x.p);
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EPIPE);
	EXPECT(apq_producer_attach(&x.p, x.r.mem, x.r.bytes, x.n, &cfg_default),
	       0);
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	EXPECT(send_key(x.p, 1, 64, 0), 0);
	TRY(recv_key(x.c, 1, 64, 0));

	apq_consumer_detach(x.c);
	EXPECT(send_key(x.p, 2, 64, 0), -EPIPE);
	EXPECT(apq_consumer_attach(&x.c, x.r.mem, x.r.bytes, x.n, &cfg_default),
	       0);
	EXPECT(send_key(x.p, 3, 64, 0), 0);
	TRY(recv_key(x.c, 3, 64, 0));
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	pair_close(&x);
	return 0;
}

/*
 * doc/stable-api.md lists every result of apq_send and apq_recv; -EINTR is not one,
 * so a signal must not end a wait (ring.h says so outright).  A helper
 * signals this process every 2 ms while it waits, with a handler installed
 * without SA_RESTART, the case where a bare futex wait returns EINTR.
 */
static volatile sig_atomic_t signals_seen;

static void on_usr1(int sig)
{
	(void)sig;
	signals_seen++;
}

static int signal_peer(void *arg)
{
	atomic_int *stop = arg;
	pid_t parent = getppid();

	while (!atomic_load(stop)) {
		kill(parent, SIGUSR1);
		sleep_ns(2 * MS);
	}
	return 0;
}

static int check_no_eintr(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	atomic_int *stop;
	struct pair x;
	int64_t t0, dt;
	pid_t pid;

	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction: %s",
	      strerror(errno));
	stop = shm_alloc(sizeof(*stop));
	CHECK(stop, "mmap: %s", strerror(errno));
	TRY(pair_open(&x, 4096, &cfg_default));
	pid = helper_start(signal_peer, stop, 10);

	t0 = now_ns();
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 200 * MS), -ETIMEDOUT);
	dt = now_ns() - t0;
	CHECK(dt >= 200 * MS, "apq_recv(200 ms) returned after %.1f ms", ms(dt));
	TRY(fill_ring(x.p, 0, 4096));
	t0 = now_ns();
	EXPECT(send_key(x.p, 1, 100, 150 * MS), -ETIMEDOUT);
	dt = now_ns() - t0;
	CHECK(dt >= 150 * MS, "apq_send(150 ms) returned after %.1f ms", ms(dt));

	atomic_store(stop, 1);
	TRY(helper_wait(pid, "signaller"));
	CHECK(signals_seen >= 20, "only %d signals arrived",
	      (int)signals_seen);
	note("%d signals during the waits", (int)signals_seen);
	pair_close(&x);
	return 0;
}

/*
 * -EPROTO, deterministically: the whole region overwritten with one pattern.
 * Before, both sides have moved their indices (the consumer took two
 * packets, the producer refilled the ring), so for every pattern each side
 * finds the other's index impossible ("prod - cons <= ring_bytes" fails: an
 * all-zero index went backwards, the others jumped ahead) as soon as it
 * reads it, which it must once its cached view runs out.  Before that it may
 * return packets that happen to parse, nothing else.
 */
static int check_eproto_patterns(void)
{
	static const int patterns[] = { 0x00, 0xff, 0xa5, 0x5a, -1 };
	const size_t ring = 4096;
	unsigned char *good, *bad;
	unsigned int i, k;
	struct pair x;
	long r;

	good = malloc(apq_region_size(ring));
	bad = malloc(apq_region_size(ring));
	CHECK(good && bad, "malloc");
	for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		int pat = patterns[i];

		TRY(pair_open(&x, ring, &cfg_default));
		TRY(fill_ring(x.p, 0, ring));
		TRY(recv_key(x.c, 0, 100, 0));
		TRY(recv_key(x.c, 1, 100, 0));
		TRY(fill_ring(x.p, 1000, ring));
		memcpy(good, x.r.mem, x.r.bytes);
		if (pat >= 0) {
			memset(bad, pat, x.r.bytes);
		} else {
			struct rng g = { rnd(&check_rng) };

			for (k = 0; k < x.r.bytes; k++)
				bad[k] = (unsigned char)rnd(&g);
		}

		memcpy(x.r.mem, bad, x.r.bytes);
		for (k = 0; k < ring + 16; k++) {
			r = apq_recv(x.c, rxbuf, sizeof(rxbuf), 0);
			if (r < 0)
				break;
		}
		CHECK(r == -EPROTO, "pattern %#x: apq_recv = %s after %u"
		      " packets, want -EPROTO", pat, errname(r), k);
		/* "The endpoint stays broken until detached": also once the
		 * damage is undone (a peer may scribble and repair), and a
		 * broken endpoint does not wait. */
		memcpy(x.r.mem, good, x.r.bytes);
		EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EPROTO);
		EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), -1), -EPROTO);
		EXPECT(apq_recv(x.c, rxbuf, 1, SEC), -EPROTO);

		memcpy(x.r.mem, bad, x.r.bytes);
		for (k = 0; k < ring + 16; k++) {
			r = send_key(x.p, k, 8, 0);
			if (r < 0)
				break;
		}
		CHECK(r == -EPROTO, "pattern %#x: apq_send = %s after %u"
		      " packets, want -EPROTO", pat, errname(r), k);
		memcpy(x.r.mem, good, x.r.bytes);
		EXPECT(send_key(x.p, 1, 8, 0), -EPROTO);
		EXPECT(send_key(x.p, 1, 8, -1), -EPROTO);
		EXPECT(send_key(x.p, 1, 100000, SEC), -EPROTO);

		apq_producer_detach(x.p);
		apq_consumer_detach(x.c);
		x.p = NULL;
		x.c = NULL;
		/* The header is garbage too: attach refuses the region. */
		memcpy(x.r.mem, bad, x.r.bytes);
		r = attach_side(0, false, x.r.mem, x.r.bytes, x.n, &cfg_default);
		CHECK(r == -EPROTO, "pattern %#x: producer attach = %s, want"
		      " -EPROTO", pat, errname(r));
		r = attach_side(1, false, x.r.mem, x.r.bytes, x.n, &cfg_default);
		CHECK(r == -EPROTO, "pattern %#x: consumer attach = %s, want"
		      " -EPROTO", pat, errname(r));

		/* apq_region_init makes it usable again. */
		EXPECT(apq_region_init(x.r.mem, x.r.bytes, ring), 0);
		EXPECT(apq_producer_attach(&x.p, x.r.mem, x.r.bytes, x.n,
					   &cfg_default), 0);
		EXPECT(apq_consumer_attach(&x.c, x.r.mem, x.r.bytes, x.n,
					   &cfg_default), 0);
		EXPECT(send_key(x.p, 5, 555, 0), 0);
		TRY(recv_key(x.c, 5, 555, 0));
		pair_close(&x);
	}
	free(good);
	free(bad);
	note("patterns 0x00 0xff 0xa5 0x5a random: -EPROTO on both sides,"
	     " sticky after repair, and on attach");
	return 0;
}

static int check_stats(void)
{
	struct apq_stats ps, cs;
	uint64_t bytes = 0;
	struct pair x;
	int i;

	TRY(pair_open(&x, 8192, &cfg_default));
	EXPECT(apq_producer_stats(x.p, &ps), 0);
	EXPECT(apq_consumer_stats(x.c, &cs), 0);
	CHECK(stats_zero(&ps) && stats_zero(&cs), "fresh endpoints have"
	      " non-zero counters");
	for (i = 0; i < 10; i++) {
		EXPECT(send_key(x.p, (uint64_t)i, (size_t)i * 37, 0), 0);
		bytes += (uint64_t)i * 37;
	}
	for (i = 0; i < 10; i++)
		TRY(recv_key(x.c, (uint64_t)i, (size_t)i * 37, 0));
	/* Failures are not packets. */
	EXPECT(apq_recv(x.c, rxbuf, sizeof(rxbuf), 0), -EAGAIN);
	EXPECT(send_key(x.p, 0, 8192, 0), -EMSGSIZE);
	EXPECT(apq_producer_stats(x.p, &ps), 0);
	EXPECT(apq_consumer_stats(x.c, &cs), 0);
	CHECK(ps.packets == 10 && ps.bytes == bytes, "producer: %" PRIu64
	      " packets, %" PRIu64 " bytes, want 10 and %" PRIu64, ps.packets,
	      ps.bytes, bytes);
	CHECK(cs.packets == 10 && cs.bytes == bytes, "consumer: %" PRIu64
	      " packets, %" PRIu64 " bytes, want 10 and %" PRIu64, cs.packets,
	      cs.bytes, bytes);
	CHECK(!ps.rescues && !cs.rescues && !ps.sleeps && !cs.sleeps,
	      "nobody waited, yet rescues %" PRIu64 "/%" PRIu64 ", sleeps %"
	      PRIu64 "/%" PRIu64, ps.rescues, cs.rescues, ps.sleeps, cs.sleeps);
	pair_close(&x);
	return 0;
}

/* ------------------------------------------------------------------------
 * Two processes: packet streams.
 */

struct stream_shared {
	struct region r;
	struct apq_config cfg;
	uint64_t packets;
	uint64_t key;
	bool fixed64;		/* saturation: 64-byte packets */
	struct apq_stats pst;	/* the producer's, just before it detached */
};

/* Sizes: mostly small, where per-packet costs dominate, some up to an
 * Ethernet MTU, a few up to 16 KiB, which wrap a 64 KiB ring often (the
 * streams use 64 KiB rings). */
static size_t stream_len(uint64_t key, uint64_t seq)
{
	uint64_t v = mix64(key ^ (seq * UINT64_C(0xd1342543de82ef95)));
	unsigned int cls = (unsigned int)(v % 100);

	v >>= 8;
	if (cls < 60)
		return v % 65;
	if (cls < 95)
		return 65 + v % 1436;
	return 1501 + v % 14884;
}

static void stream_fill(const struct stream_shared *sh, uint64_t seq,
			size_t *len)
{
	if (sh->fixed64) {
		*len = 64;
		memcpy(txbuf, &seq, 8);
		memset(txbuf + 8, (int)(seq & 0xff), 56);
	} else {
		*len = stream_len(sh->key, seq);
		pkt_fill(txbuf, *len, sh->key + seq);
	}
}

static bool stream_ok(const struct stream_shared *sh, uint64_t seq,
		      const unsigned char *b, size_t len)
{
	uint64_t got;
	size_t i;

	if (sh->fixed64) {
		if (len != 64)
			return false;
		memcpy(&got, b, 8);
		for (i = 8; i < 64; i++)
			if (b[i] != (unsigned char)(seq & 0xff))
				return false;
		return got == seq;
	}
	return len == stream_len(sh->key, seq) && pkt_ok(b, len, sh->key + seq);
}

static int stream_producer(void *arg)
{
	struct stream_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_producer *p;
	uint64_t seq;
	size_t len;
	int r;

	/* Each process builds its own notifier, after the fork. */
	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_producer_attach(&p, sh->r.mem, sh->r.bytes, n, &sh->cfg), 0);
	for (seq = 0; seq < sh->packets; seq++) {
		stream_fill(sh, seq, &len);
		r = apq_send(p, txbuf, len, 2 * SEC);
		CHECK(r == 0, "apq_send of packet %" PRIu64 " (%zu bytes) = %s"
		      "%s", seq, len, errname(r),
		      r == -ETIMEDOUT ? " (2 s timeout: a stall)" : "");
	}
	EXPECT(apq_producer_stats(p, &sh->pst), 0);
	apq_producer_detach(p);
	apq_notifier_free(n);
	return 0;
}

static int run_stream(size_t ring, uint64_t packets, bool fixed64,
		      const struct apq_config *cfg, bool saturated)
{
	struct stream_shared *sh;
	struct apq_notifier *n;
	struct apq_consumer *c;
	struct apq_stats cs;
	const struct apq_stats *ps;
	uint64_t seq, bytes = 0;
	int64_t t0, dt;
	ssize_t r;
	pid_t pid;

	sh = shm_alloc(sizeof(*sh));
	CHECK(sh, "mmap: %s", strerror(errno));
	TRY(region_shared(&sh->r, ring));
	sh->cfg = *cfg;
	sh->packets = packets;
	sh->key = rnd(&check_rng);
	sh->fixed64 = fixed64;

	t0 = now_ns();
	pid = helper_start(stream_producer, sh, 300);
	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_consumer_attach(&c, sh->r.mem, sh->r.bytes, n, cfg), 0);
	for (seq = 0;; seq++) {
		r = apq_recv(c, rxbuf, sizeof(rxbuf), 2 * SEC);
		if (r == -EPIPE)
			break;
		if (r < 0) {
			helper_wait(pid, "producer");
			return FAIL("apq_recv after %" PRIu64 " packets = %s"
				    " (2 s timeout: a stall)", seq, errname(r));
		}
		CHECK(seq < packets, "packet %" PRIu64 " received, only %" PRIu64
		      " sent", seq, packets);
		CHECK(stream_ok(sh, seq, rxbuf, (size_t)r), "packet %" PRIu64
		      " (%zd bytes): wrong length or content (lost, duplicated,"
		      " reordered or torn)", seq, r);
		bytes += (uint64_t)r;
		/* A lost wakeup that a backstop rescues costs tens of ms,
		 * not a stall: say so early rather than crawl on. */
		if (seq % 1024 == 1023) {
			EXPECT(apq_consumer_stats(c, &cs), 0);
			CHECK(!cs.rescues, "consumer: %" PRIu64 " rescues (lost"
			      " wakeups caught) after %" PRIu64 " packets",
			      cs.rescues, seq + 1);
		}
	}
	dt = now_ns() - t0;
	EXPECT(apq_consumer_stats(c, &cs), 0);
	apq_consumer_detach(c);
	apq_notifier_free(n);
	TRY(helper_wait(pid, "producer"));
	ps = &sh->pst;

	CHECK(seq == packets, "-EPIPE after %" PRIu64 " of %" PRIu64 " packets",
	      seq, packets);
	CHECK(ps->packets == packets && ps->bytes == bytes &&
	      cs.packets == packets && cs.bytes == bytes,
	      "stats: producer %" PRIu64 "/%" PRIu64 ", consumer %" PRIu64 "/%"
	      PRIu64 " packets/bytes, want %" PRIu64 "/%" PRIu64, ps->packets,
	      ps->bytes, cs.packets, cs.bytes, packets, bytes);
	note("%" PRIu64 " packets, %.1f MB in %.2f s (%.2f Mpps); producer:"
	     " wakeups_sent %" PRIu64 " skipped %" PRIu64 " sleeps %" PRIu64
	     "; consumer: wakeups_sent %" PRIu64 " sleeps %" PRIu64 " spurious %"
	     PRIu64, packets, (double)bytes / 1e6, (double)dt / 1e9,
	     (double)packets / ((double)dt / 1e3), ps->wakeups_sent,
	     ps->wakeups_skipped, ps->sleeps, cs.wakeups_sent, cs.sleeps,
	     cs.spurious_wakeups);
	CHECK(!ps->rescues && !cs.rescues, "rescues: producer %" PRIu64
	      ", consumer %" PRIu64 ": lost wakeups", ps->rescues, cs.rescues);
	if (saturated)
		CHECK(ps->wakeups_sent * 10 < ps->packets, "saturated, yet the"
		      " producer sent %" PRIu64 " wakeups for %" PRIu64
		      " packets (want fewer than 1 per 10)", ps->wakeups_sent,
		      ps->packets);
	region_free(&sh->r);
	munmap(sh, sizeof(*sh));
	return 0;
}

static int check_stream(void)
{
	return run_stream(65536, 200000, false, &cfg_default, false);
}

/* Policy SPIN with spin_ns 0 sleeps whenever the ring is empty: every
 * packet crosses the handshake. */
static int check_stream_spin0(void)
{
	const struct apq_config cfg = { .policy = APQ_POLICY_SPIN, .spin_ns = 0 };

	return run_stream(65536, 50000, false, &cfg, false);
}

static int check_saturated(void)
{
	return run_stream(65536, 2000000, true, &cfg_default, true);
}

/* ------------------------------------------------------------------------
 * Two processes: request/response.
 */

struct pp_shared {
	struct region req, resp;
	struct apq_config cfg;
	uint64_t served;
	struct apq_stats srv_c, srv_p;
};

/* The echo side: one notifier serves both of its endpoints. */
static int pp_server(void *arg)
{
	struct pp_shared *sh = arg;
	struct apq_notifier *n;
	struct apq_consumer *c;
	struct apq_producer *p;
	ssize_t r;
	int s;

	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_consumer_attach(&c, sh->req.mem, sh->req.bytes, n, &sh->cfg),
	       0);
	EXPECT(apq_producer_attach(&p, sh->resp.mem, sh->resp.bytes, n,
				   &sh->cfg), 0);
	for (;;) {
		r = apq_recv(c, rxbuf, sizeof(rxbuf), SEC);
		if (r == -EPIPE)
			break;
		CHECK(r >= 0, "server: apq_recv after %" PRIu64 " requests = %s"
		      " (1 s: a stall)", sh->served, errname(r));
		s = apq_send(p, rxbuf, (size_t)r, SEC);
		CHECK(s == 0, "server: apq_send of response %" PRIu64 " = %s",
		      sh->served, errname(s));
		sh->served++;
		/* A lost wakeup that a backstop rescues costs tens of ms,
		 * not a stall: say so early rather than crawl on. */
		if (sh->served % 256 == 0) {
			EXPECT(apq_consumer_stats(c, &sh->srv_c), 0);
			CHECK(!sh->srv_c.rescues, "server: %" PRIu64 " rescues"
			      " (lost wakeups caught) after %" PRIu64
			      " requests", sh->srv_c.rescues, sh->served);
		}
	}
	EXPECT(apq_consumer_stats(c, &sh->srv_c), 0);
	EXPECT(apq_producer_stats(p, &sh->srv_p), 0);
	apq_consumer_detach(c);
	apq_producer_detach(p);
	apq_notifier_free(n);
	return 0;
}

static int pingpong(const char *name, const struct apq_config *cfg,
		    unsigned int rounds)
{
	int64_t t0, rt, max_rt = 0, sum_rt = 0, start;
	struct apq_stats cp, cc;
	struct pp_shared *sh;
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	uint64_t key;
	unsigned int i;
	size_t len;
	ssize_t r;
	pid_t pid;

	sh = shm_alloc(sizeof(*sh));
	CHECK(sh, "mmap: %s", strerror(errno));
	TRY(region_shared(&sh->req, 4096));
	TRY(region_shared(&sh->resp, 4096));
	sh->cfg = *cfg;
	pid = helper_start(pp_server, sh, 120);
	EXPECT(apq_notifier_futex(&n), 0);
	EXPECT(apq_producer_attach(&p, sh->req.mem, sh->req.bytes, n, cfg), 0);
	EXPECT(apq_consumer_attach(&c, sh->resp.mem, sh->resp.bytes, n, cfg),
	       0);
	start = now_ns();
	for (i = 0; i < rounds; i++) {
		if (i % 32 == 31) {
			EXPECT(apq_consumer_stats(c, &cc), 0);
			CHECK(!cc.rescues, "%s: %" PRIu64 " rescues (lost wakeups"
			      " caught) after %u round trips", name, cc.rescues,
			      i);
			/* Far above any healthy run (~1 s on 2 CPUs under
			 * ASan); below the watchdogs. */
			CHECK(now_ns() - start < 50 * SEC, "%s: only %u round"
			      " trips in 50 s", name, i);
		}
		key = rnd(&check_rng);
		len = 8 + (size_t)(key % 249);
		pkt_fill(txbuf, len, key);
		t0 = now_ns();
		EXPECT(apq_send(p, txbuf, len, SEC), 0);
		r = apq_recv(c, rxbuf, sizeof(rxbuf), SEC);
		rt = now_ns() - t0;
		if (r < 0) {
			helper_wait(pid, "server");
			return FAIL("%s: round trip %u: apq_recv = %s (1 s: a"
				    " stall)", name, i, errname(r));
		}
		CHECK((size_t)r == len && pkt_ok(rxbuf, len, key),
		      "%s: round trip %u: wrong response", name, i);
		sum_rt += rt;
		if (rt > max_rt)
			max_rt = rt;
	}
	EXPECT(apq_producer_stats(p, &cp), 0);
	apq_producer_detach(p);
	/* The server sees -EPIPE, detaches, and so do we. */
	EXPECT(apq_recv(c, rxbuf, sizeof(rxbuf), 5 * SEC), -EPIPE);
	EXPECT(apq_consumer_stats(c, &cc), 0);
	apq_consumer_detach(c);
	apq_notifier_free(n);
	TRY(helper_wait(pid, "server"));

	note("%s: %u round trips, mean %.1f us, max %.2f ms, client sent %"
	     PRIu64 "+%" PRIu64 " wakeups, server %" PRIu64 "+%" PRIu64,
	     name, rounds, (double)sum_rt / rounds / 1e3, ms(max_rt),
	     cp.wakeups_sent, cc.wakeups_sent, sh->srv_p.wakeups_sent,
	     sh->srv_c.wakeups_sent);
	CHECK(sh->served == rounds, "%s: server served %" PRIu64, name,
	      sh->served);
	CHECK(max_rt < SEC, "%s: a round trip took %.1f ms", name, ms(max_rt));
	CHECK(!cp.rescues && !cc.rescues && !sh->srv_c.rescues &&
	      !sh->srv_p.rescues, "%s: rescues (lost wakeups caught): client %"
	      PRIu64 "+%" PRIu64 ", server %" PRIu64 "+%" PRIu64, name,
	      cp.rescues, cc.rescues, sh->srv_c.rescues, sh->srv_p.rescues);
	/* What the policies promise (doc/stable-api.md). */
	if (cfg->policy == APQ_POLICY_ALWAYS_NOTIFY)
		CHECK(cp.wakeups_sent >= rounds && sh->srv_p.wakeups_sent >= rounds,
		      "%s: wake on every packet, yet %" PRIu64 " and %" PRIu64
		      " wakeups for %u packets", name, cp.wakeups_sent,
		      sh->srv_p.wakeups_sent, rounds);
	if (cfg->policy == APQ_POLICY_BUSY_POLL)
		CHECK(!cp.sleeps && !cc.sleeps && !sh->srv_c.sleeps &&
		      !sh->srv_p.sleeps, "%s: never sleep, yet sleeps %" PRIu64
		      "+%" PRIu64 "+%" PRIu64 "+%" PRIu64, name, cp.sleeps,
		      cc.sleeps, sh->srv_c.sleeps, sh->srv_p.sleeps);
	region_free(&sh->req);
	region_free(&sh->resp);
	munmap(sh, sizeof(*sh));
	return 0;
}

static int check_pingpong(void)
{
	const struct apq_config spin0 = { .policy = APQ_POLICY_SPIN, .spin_ns = 0 };
	const struct apq_config always = { .policy = APQ_POLICY_ALWAYS_NOTIFY };
	const struct apq_config busy = { .policy = APQ_POLICY_BUSY_POLL };

	TRY(pingpong("ADAPTIVE", &cfg_default, 20000));
	TRY(pingpong("SPIN(0)", &spin0, 20000));
	TRY(pingpong("ALWAYS_NOTIFY", &always, 20000));
	TRY(pingpong("BUSY_POLL", &busy, 20000));
	return 0;
}

/* ------------------------------------------------------------------------
 * Randomly corrupted rings.
 */

enum { CLS_SPARSE, CLS_DENSE, CLS_GROSS, NCLS };
static const char *const cls_name[NCLS] = { "sparse", "dense", "gross" };

#define CORRUPT_RINGS	5000
#define CORRUPT_BATCH	250
#define TRAFFIC_MAX	400

struct corrupt_shared {
	uint64_t first, last;		/* this batch: rings [first, last) */
	atomic_ullong in_work;		/* for a crash report */
	uint64_t rings[NCLS], detected[NCLS];
	uint64_t calls, attach_eproto;
};

/* Small packets, so that the control data of the ring (lengths) is dense;
 * some up to 300 bytes. */
static size_t corrupt_len(struct rng *g)
{
	return rnd_below(g, 100) < 60 ? rnd_below(g, 25)
				      : 25 + rnd_below(g, 276);
}

/*
 * Receive until the ring runs dry, fails or says -EPROTO.  The buffer holds
 * exactly ring bytes between canaries, and no valid packet is larger, so
 * -EMSGSIZE would mean an out-of-bounds length was believed.  The consumer
 * cannot deliver more than ring_bytes packets with nothing sent meanwhile:
 * every packet takes at least one byte of the ring.
 */
static int probe_recv(struct apq_consumer *c, size_t ring, bool *det,
		      struct corrupt_shared *sh)
{
	unsigned char *buf = rxbuf + 64;
	size_t k, i;
	ssize_t r;

	memset(rxbuf, CANARY, ring + 128);
	for (k = 0; k < ring + 16; k++) {
		r = apq_recv(c, buf, ring, 0);
		sh->calls++;
		if (r >= 0) {
			CHECK((size_t)r <= ring, "apq_recv = %zd > cap %zu", r,
			      ring);
			continue;
		}
		if (r == -EAGAIN || r == -EPIPE)
			goto out;
		CHECK(r == -EPROTO, "apq_recv on a corrupt ring = %s: not a"
		      " documented result here", errname(r));
		*det = true;
		EXPECT(apq_recv(c, buf, ring, 0), -EPROTO);
		EXPECT(apq_recv(c, buf, ring, -1), -EPROTO);
		goto out;
	}
	return FAIL("apq_recv delivered %zu packets from a %zu-byte ring with"
		    " nothing sent meanwhile", k, ring);
out:
	for (i = 0; i < 64; i++)
		CHECK(rxbuf[i] == CANARY && buf[ring + i] == CANARY,
		      "apq_recv wrote outside its buffer");
	return 0;
}

/* Send until the ring is full, fails or says -EPROTO; more than ring_bytes
 * packets with nothing received meanwhile cannot fit. */
static int probe_send(struct apq_producer *p, size_t ring, struct rng *g,
		      bool *det, struct corrupt_shared *sh)
{
	size_t k;
	int r;

	for (k = 0; k < ring + 16; k++) {
		r = apq_send(p, txbuf, (size_t)rnd_below(g, 65), 0);
		sh->calls++;
		if (r == 0)
			continue;
		if (r == -EAGAIN || r == -EPIPE)
			return 0;
		CHECK(r == -EPROTO, "apq_send on a corrupt ring = %s: not a"
		      " documented result here", errname(r));
		*det = true;
		EXPECT(apq_send(p, txbuf, 8, 0), -EPROTO);
		EXPECT(apq_send(p, txbuf, 8, -1), -EPROTO);
		return 0;
	}
	return FAIL("apq_send accepted %zu packets into a %zu-byte ring with"
		    " nothing received meanwhile", k, ring);
}

/*
 * One ring: traffic (content-checked: the ring is still sound), damage, then
 * both endpoints probed, detached, and attached afresh (attach reads the
 * header, which the old endpoints never look at again) and probed again.
 * The region sits against a PROT_NONE page, at its start or at its end, and
 * the rest of the mapping holds canaries: an access outside it crashes or
 * shows.
 */
static int corrupt_one(uint64_t idx, struct apq_notifier *n, unsigned char *lo,
		       size_t span, struct corrupt_shared *sh)
{
	struct rng g = { mix64(seed ^ mix64(idx ^ UINT64_C(0xc0c0))) };
	const size_t ring = rnd_below(&g, 2) ? 8192 : 4096;
	const size_t bytes = apq_region_size(ring);
	const bool at_start = rnd_below(&g, 2);
	unsigned char *mem = at_start ? lo : lo + ((span - bytes) & ~(size_t)63);
	struct apq_config cfg = {
		.policy = (enum apq_policy)rnd_below(&g, 4),
		.spin_ns = rnd_below(&g, 1000),
	};
	uint16_t lens[TRAFFIC_MAX];
	unsigned int ops, k, sent = 0, got = 0, cls, scribbles, w;
	struct apq_producer *p;
	struct apq_consumer *c;
	bool det = false;
	size_t i, len, off;
	ssize_t r;

	memset(lo, CANARY, span);
	EXPECT(apq_region_init(mem, bytes, ring), 0);
	EXPECT(apq_consumer_attach(&c, mem, bytes, n, &cfg), 0);
	EXPECT(apq_producer_attach(&p, mem, bytes, n, &cfg), 0);

	/* Traffic first, so that the damage finds indices anywhere, wrapped,
	 * and packets queued. */
	ops = (unsigned int)rnd_below(&g, TRAFFIC_MAX);
	for (k = 0; k < ops; k++) {
		if (rnd_below(&g, 100) < 60) {
			len = corrupt_len(&g);
			r = send_key(p, idx << 16 | sent, len, 0);
			if (r == 0)
				lens[sent++] = (uint16_t)len;
			else
				CHECK(r == -EAGAIN, "sound ring: apq_send = %s",
				      errname(r));
		} else {
			r = apq_recv(c, rxbuf, sizeof(rxbuf), 0);
			if (r == -EAGAIN) {
				CHECK(got == sent, "sound ring: -EAGAIN with %u"
				      " packets queued", sent - got);
				continue;
			}
			CHECK(got < sent && r == lens[got] &&
			      pkt_ok(rxbuf, (size_t)r, idx << 16 | got),
			      "sound ring: packet %u: apq_recv = %s, or wrong"
			      " content", got, errname(r));
			got++;
		}
	}

	/* The damage.  Random bytes at random offsets of the whole region:
	 * the test does not know the layout, so it does not aim. */
	w = (unsigned int)rnd_below(&g, 100);
	cls = w < 50 ? CLS_SPARSE : w < 85 ? CLS_DENSE : CLS_GROSS;
	if (cls == CLS_GROSS) {
		for (i = 0; i < bytes; i++)
			mem[i] = (unsigned char)rnd(&g);
	} else {
		scribbles = cls == CLS_SPARSE ? 1 + (unsigned int)rnd_below(&g, 4)
					      : 8 + (unsigned int)rnd_below(&g, 57);
		for (k = 0; k < scribbles; k++) {
			off = rnd_below(&g, bytes);
			len = 1 + rnd_below(&g, cls == CLS_SPARSE ? 8 : 32);
			for (i = off; i < off + len && i < bytes; i++)
				mem[i] = (unsigned char)rnd(&g);
		}
	}

	TRY(probe_recv(c, ring, &det, sh));
	TRY(probe_send(p, ring, &g, &det, sh));
	TRY(probe_recv(c, ring, &det, sh));
	apq_producer_detach(p);
	apq_consumer_detach(c);

	r = apq_consumer_attach(&c, mem, bytes, n, &cfg);
	CHECK(r == 0 || r == -EPROTO, "consumer attach on a corrupt region = %s",
	      errname(r));
	if (r == 0) {
		TRY(probe_recv(c, ring, &det, sh));
	} else {
		det = true;
		sh->attach_eproto++;
		c = NULL;
	}
	r = apq_producer_attach(&p, mem, bytes, n, &cfg);
	CHECK(r == 0 || r == -EPROTO, "producer attach on a corrupt region = %s",
	      errname(r));
	if (r == 0) {
		TRY(probe_send(p, ring, &g, &det, sh));
		apq_producer_detach(p);
	} else {
		det = true;
		sh->attach_eproto++;
	}
	apq_consumer_detach(c);

	for (i = 0; i < span; i++)
		CHECK((lo + i >= mem && lo + i < mem + bytes) ||
		      lo[i] == CANARY, "byte %td outside the region changed",
		      (lo + i) - mem);
	sh->rings[cls]++;
	if (det)
		sh->detected[cls]++;
	return 0;
}

static int corrupt_batch(void *arg)
{
	struct corrupt_shared *sh = arg;
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	const size_t maxb = apq_region_size(8192);
	/* One page more than the largest region: placed at the start or at
	 * the end, it leaves room for canaries on the other side. */
	const size_t span = (maxb + page - 1) / page * page + page;
	struct apq_notifier *n;
	unsigned char *area;
	uint64_t idx;

	area = mmap(NULL, span + 2 * page, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap: %s", strerror(errno));
	CHECK(mprotect(area + page, span, PROT_READ | PROT_WRITE) == 0,
	      "mprotect: %s", strerror(errno));
	EXPECT(apq_notifier_futex(&n), 0);
	for (idx = sh->first; idx < sh->last; idx++) {
		atomic_store(&sh->in_work, idx);
		if (corrupt_one(idx, n, area + page, span, sh))
			return FAIL("ring %" PRIu64, idx);
	}
	apq_notifier_free(n);
	return 0;
}

/*
 * The lower bound.  Scribbles land where the test cannot aim, and some
 * damage is undetectable by design: packet payload ("packet bytes are the
 * peer's to choose"), free ring space, padding, fields only read on attach
 * that a scribble sets to another valid value.  What must be detected:
 *   gross (15% of rings, every byte random): both indices, both mode words
 *     and the header are random words; a random index passes
 *     "prod - cons <= ring_bytes" with probability ~ring_bytes/2^32, so at
 *     least 99% of these rings must report -EPROTO;
 *   dense (35%, 8-64 scribbles of 1-32 bytes, ~10% of the region on
 *     average): small packets make the record lengths a fifth or more of
 *     the queued bytes, so several scribbles land on lengths, indices or
 *     mode words in most rings;
 *   sparse (50%, 1-4 scribbles of 1-8 bytes): mostly misses.
 * Overall the bound is 35%: gross alone gives ~15%, and dense must add at
 * least 20 points (57% of the dense rings); measured rates sit well above
 * (see the output), so only a validation that misses whole kinds of
 * damage fails it.
 */
#define MIN_DETECTED_PERCENT	35
#define MIN_GROSS_PERCENT	99

static int check_corrupt_rings(void)
{
	struct corrupt_shared *sh;
	uint64_t total = CORRUPT_RINGS, first, rings = 0, det = 0;
	double pct[NCLS];
	pid_t pid;
	int k;

	sh = shm_alloc(sizeof(*sh));
	CHECK(sh, "mmap: %s", strerror(errno));
	for (first = 0; first < total; first += CORRUPT_BATCH) {
		sh->first = first;
		sh->last = first + CORRUPT_BATCH < total ? first + CORRUPT_BATCH
							 : total;
		/* A crash in the library kills the batch, not this check. */
		pid = helper_start(corrupt_batch, sh, 60);
		if (helper_wait(pid, "corruption batch") < 0)
			return FAIL("at ring %llu of batch %" PRIu64 "..%" PRIu64
				    " (APQ_SEED=%#" PRIx64 " replays)",
				    (unsigned long long)atomic_load(&sh->in_work),
				    sh->first, sh->last - 1, seed);
	}
	for (k = 0; k < NCLS; k++) {
		rings += sh->rings[k];
		det += sh->detected[k];
		pct[k] = sh->rings[k] ? 100.0 * (double)sh->detected[k] /
					(double)sh->rings[k] : 0;
	}
	note("%" PRIu64 " rings, %" PRIu64 " calls: -EPROTO in %" PRIu64
	     " (%.1f%%; bound %d%%): %s %" PRIu64 "/%" PRIu64 " (%.1f%%), %s %"
	     PRIu64 "/%" PRIu64 " (%.1f%%), %s %" PRIu64 "/%" PRIu64
	     " (%.1f%%); %" PRIu64 " attaches refused; no crash, no hang, no"
	     " write outside", rings, sh->calls, det,
	     100.0 * (double)det / (double)rings, MIN_DETECTED_PERCENT,
	     cls_name[0], sh->detected[0], sh->rings[0], pct[0],
	     cls_name[1], sh->detected[1], sh->rings[1], pct[1],
	     cls_name[2], sh->detected[2], sh->rings[2], pct[2],
	     sh->attach_eproto);
	CHECK(rings == total, "only %" PRIu64 " rings ran", rings);
	CHECK(pct[CLS_GROSS] >= MIN_GROSS_PERCENT, "gross damage detected in"
	      " only %.1f%% of rings", pct[CLS_GROSS]);
	CHECK(det * 100 >= (uint64_t)MIN_DETECTED_PERCENT * rings,
	      "-EPROTO in only %.1f%% of corrupted rings",
	      100.0 * (double)det / (double)rings);
	return 0;
}

/* ------------------------------------------------------------------------
 * The runner.
 */

struct check {
	const char *name;
	int (*fn)(void);
	unsigned int seconds;	/* the watchdog */
};

static const struct check checks[] = {
	{ "region_size",		check_region_size,		10 },
	{ "init_einval",		check_init_einval,		10 },
	{ "attach_errors",		check_attach_errors,		10 },
	{ "eagain_etimedout",		check_eagain_etimedout,		10 },
	{ "emsgsize_send",		check_emsgsize_send,		10 },
	{ "emsgsize_recv",		check_emsgsize_recv,		10 },
	{ "fresh_region_open",		check_fresh_region_open,	10 },
	{ "epipe_consumer_gone",	check_epipe_consumer_gone,	10 },
	{ "epipe_producer_gone",	check_epipe_producer_gone,	10 },
	{ "epipe_wakes_sender",		check_epipe_wakes_sender,	30 },
	{ "epipe_wakes_receiver",	check_epipe_wakes_receiver,	30 },
	{ "kill_producer",		check_kill_producer,		60 },
	{ "kill_consumer",		check_kill_consumer,		60 },
	{ "reattach",			check_reattach,			10 },
	{ "no_eintr",			check_no_eintr,			10 },
	{ "eproto_patterns",		check_eproto_patterns,		10 },
	{ "stats",			check_stats,			10 },
	{ "stream",			check_stream,			120 },
	{ "stream_spin0",		check_stream_spin0,		120 },
	{ "saturated",			check_saturated,		120 },
	{ "pingpong",			check_pingpong,			240 },
	{ "corrupt_rings",		check_corrupt_rings,		300 },
};

#define NCHECKS	(sizeof(checks) / sizeof(checks[0]))

static uint64_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	while (*s)
		h = (h ^ (unsigned char)*s++) * UINT64_C(0x100000001b3);
	return h;
}

/* @return true if the check passed. */
static bool run_check(const struct check *ck)
{
	int64_t t0 = now_ns(), deadline, dt;
	bool killed = false, ok;
	int st = 0;
	pid_t pid;

	memset(rep, 0, sizeof(*rep));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		printf("FAIL  %-22s fork: %s\n", ck->name, strerror(errno));
		return false;
	}
	if (pid == 0) {
		setpgid(0, 0);
		out_msg = rep->msg;
		check_rng.s = mix64(seed ^ name_hash(ck->name));
		alarm(ck->seconds);
		_exit(ck->fn() ? 1 : 0);
	}
	/* Also here: no window in which the group kill below misses it. */
	setpgid(pid, pid);
	/* alarm() in the check is the watchdog; this one catches a check
	 * that blocks SIGALRM or otherwise outlives it. */
	deadline = t0 + (int64_t)(ck->seconds + 10) * SEC;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			break;
		if (now_ns() > deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			killed = true;
			break;
		}
		sleep_ns(2 * MS);
	}
	/* Helpers that a failed check left behind. */
	kill(-pid, SIGKILL);
	dt = now_ns() - t0;
	rep->msg[MSG_BYTES - 1] = '\0';
	ok = !killed && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (ok)
		printf("PASS  %-22s %6.2fs  %s\n", ck->name, (double)dt / 1e9,
		       rep->msg);
	else if (killed || (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM))
		printf("FAIL  %-22s %6.2fs  HUNG: watchdog fired after %u s"
		       " [%s]\n", ck->name, (double)dt / 1e9, ck->seconds,
		       rep->msg);
	else if (WIFSIGNALED(st))
		printf("FAIL  %-22s %6.2fs  CRASHED: signal %d (%s) [%s]\n",
		       ck->name, (double)dt / 1e9, WTERMSIG(st),
		       strsignal(WTERMSIG(st)), rep->msg);
	else
		printf("FAIL  %-22s %6.2fs  %s\n", ck->name, (double)dt / 1e9,
		       rep->msg);
	return ok;
}

int main(int argc, char **argv)
{
	const char *env = getenv("APQ_SEED");
	unsigned int ran = 0, failed = 0;
	size_t i;
	int a;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (i = 0; i < NCHECKS; i++)
			printf("%s\n", checks[i].name);
		return 0;
	}
	for (a = 1; a < argc; a++) {
		for (i = 0; i < NCHECKS; i++)
			if (!strcmp(argv[a], checks[i].name))
				break;
		if (i == NCHECKS) {
			fprintf(stderr, "api-check: no check named %s (--list)\n",
				argv[a]);
			return 2;
		}
	}
	if (env && *env)
		seed = strtoull(env, NULL, 0);
	else
		seed = mix64((uint64_t)now_ns() ^ (uint64_t)getpid() << 32);
	rep = shm_alloc(sizeof(*rep));
	if (!rep) {
		perror("api-check: mmap");
		return 2;
	}
	/* A check killed while writing to a pipe must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	printf("api-check: seed %#" PRIx64 " (APQ_SEED=%#" PRIx64
	       " replays this run)\n", seed, seed);
	for (i = 0; i < NCHECKS; i++) {
		bool chosen = argc == 1;

		for (a = 1; a < argc; a++)
			if (!strcmp(argv[a], checks[i].name))
				chosen = true;
		if (!chosen)
			continue;
		ran++;
		if (!run_check(&checks[i]))
			failed++;
	}
	printf("api-check: %u checks, %u passed, %u failed (seed %#" PRIx64 ")\n",
	       ran, ran - failed, failed, seed);
	return failed ? 1 : 0;
}
