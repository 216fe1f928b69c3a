/* SPDX-License-Identifier: MIT */
/*
 * test-stress.c - concurrency tests with exact oracles (meson suite "stress").
 *
 * Overview
 *   Every test runs two sides, as threads or as a forked child and its parent
 *   sharing a MAP_SHARED memfd, for a time budget, and checks what can be
 *   checked exactly:
 *   - streams: each packet's length and bytes are a function of (seed,
 *     sequence number), so the consumer checks every byte and the order; the
 *     totals the test counted must equal both sides' apq_stats; the producer
 *     detaches and the consumer must see -EPIPE after draining;
 *   - ping-pong over two rings: every exchange goes through the sleep path,
 *     where one lost wakeup stalls it until the library's 50 ms backstop;
 *   - the mode layer alone on a ring of our own;
 *   - the handshake's race, round by round: both sides meet before each
 *     round, the consumer arms while the producer sends, and a round where
 *     the consumer armed and no wake was sent is a lost wakeup;
 *   and on every sleeper, rescues == 0: the library counts a rescue when a
 *   backstop re-check finds work nobody woke it for, i.e. a lost wakeup.
 *   A backstop re-check happens only where traffic pauses for 50 ms: in a
 *   stream, the next send wakes an episode whose wakeup was lost, so
 *   streams can catch a lost wakeup only at their idle phases and end.
 *   The ping-pong is the torture that finds them end to end: every message
 *   is followed by silence until its reply, so a lost wakeup there stalls
 *   the exchange until the backstop, which counts it.  It needs the two
 *   threads to overlap by luck; the handshake race makes every round an
 *   overlap, and tests/mutants shows that it catches each missing barrier
 *   in a fraction of a second.
 *
 *   The program prints how many packets changed hands (handoffs) and fails
 *   if the whole suite moved fewer than APQ_STRESS_MIN_HANDOFFS (default
 *   10^7, less under sanitizers).
 *
 * Time
 *   Each test runs until its budget is spent and its minimum amount of work
 *   is done, then asserts the minimum; on a slow machine (sanitizers) it
 *   overruns its budget rather than fail, up to a hard limit.  Blocking calls
 *   use STALL_NS as timeout, so a hang fails with a message.
 *
 * Environment
 *   APQ_STRESS_SECONDS  the whole program's budget, shared among the tests by
 *                       weight (default 72: about 80 s on two cores).
 *   APQ_SEED            replays a run's random choices (every test prints the
 *                       seed); thread interleavings are not replayed.
 *   APQ_STRICT_LATENCY  if set, a round trip of 40 ms or more also fails a
 *                       ping-pong test (off by default: see pp_report()).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>

#include "testlib.h"

#define NSEC		TEST_NSEC
#define MSEC		TEST_MSEC
#define USEC		INT64_C(1000)

/* A blocking call that takes this long means the queue stalled. */
#define STALL_NS	(30 * NSEC)
/* The library's backstop: a lost wakeup costs at least this much delay. */
#define BACKSTOP_NS	(50 * MSEC)
/* Round trips at least this slow are reported (and, strictly, fail). */
#define SLOW_RTT_NS	(40 * MSEC)

#define BURST_MAX	16
/* A test's own failure, after it was recorded in the side's result. */
#define FATAL		(-100000)

#define SLOWDOWN	TEST_SLOWDOWN

/* Set in main() before any test runs; read-only afterwards. */
static uint64_t base_seed;
/* Packets handed from a producer to a consumer, and round trips, over the
 * whole run: shared memory, since Check runs each test in a child. */
static struct tally {
	uint64_t handoffs, round_trips;
} *tally;

static void tally_add(uint64_t handoffs, uint64_t round_trips)
{
	__atomic_fetch_add(&tally->handoffs, handoffs, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tally->round_trips, round_trips, __ATOMIC_RELAXED);
}
static double unit_seconds;	/* the budget of a test of weight 1 */
static bool strict_latency;
/* APQ_FORCED_ASYM: the library was built to keep asymmetric fences on
 * (tests/mutants), so that every sleep issues membarrier(2); in a virtual
 * machine that takes some 55 us, the reply wins the re-check, and the
 * sleep path's share of the round trips is no longer checked. */
static bool forced_asym;

/* ---- time ---- */

/* Tiny sleeps must be tiny: the default timer slack (50 us) would round
 * every nanosleep up past the delays the jitter tests ask for. */
static void tight_timer_slack(void)
{
	(void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

/*
 * A test's time: it runs until `end` and until it did min_work, but never
 * past hard_end.  Absolute CLOCK_MONOTONIC, so a forked child shares it.
 */
struct budget {
	int64_t start, end, hard_end;
	uint64_t min_work;
	double seconds;
};

static double weight_seconds(double weight)
{
	return weight * unit_seconds;
}

/* The hard limit: budget plus room for a sanitizer build to do its minimum. */
static double hard_seconds(double weight)
{
	return weight_seconds(weight) * 4 + 20;
}

/* min_per_s is what a normal build comfortably does per second. */
static struct budget budget_make(double weight, uint64_t min_per_s,
				 uint64_t min_floor)
{
	struct budget b;
	double s = weight_seconds(weight);
	uint64_t min = (uint64_t)(s * (double)min_per_s);

	if (min < min_floor)
		min = min_floor;
	b.seconds = s;
	b.start = now_ns();
	b.end = b.start + (int64_t)(s * NSEC);
	b.hard_end = b.start + (int64_t)(hard_seconds(weight) * NSEC);
	b.min_work = min / SLOWDOWN ? min / SLOWDOWN : 1;
	return b;
}

static bool keep_going(const struct budget *b, uint64_t done)
{
	int64_t now = now_ns();

	if (now < b->end)
		return true;
	return done < b->min_work && now < b->hard_end;
}

/* ---- random numbers and the packet oracle ---- */

struct rng {
	uint64_t s;
};

static struct rng rng_make(uint64_t seed, uint64_t stream)
{
	return (struct rng){ .s = mix64(seed ^ mix64(stream)) };
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rnd_below(&r->s, n) : 0;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);

	while (*s)
		h = (h ^ (unsigned char)*s++) * UINT64_C(1099511628211);
	return h;
}

/*
 * What a stream's packet seq looks like, known to both sides without
 * communication.  STREAM lengths mix small packets, medium ones, large ones
 * and ones within 64 bytes of max, which on a 4 KiB ring need a pad record
 * and a wrap nearly every time.
 */
enum oracle_kind { ORACLE_STREAM, ORACLE_SMALL };

struct oracle {
	uint64_t seed;
	size_t max;
	enum oracle_kind kind;
};

static size_t oracle_len(const struct oracle *o, uint64_t seq)
{
	uint64_t h = mix64(o->seed ^ mix64(seq ^ UINT64_C(0x6c656e)));
	uint64_t v = h >> 8;
	unsigned int kind = (unsigned int)(h & 0xff) % 100;

	if (o->kind == ORACLE_SMALL)
		return 8 + v % (o->max - 7);
	if (kind < 40)
		return v % (o->max < 64 ? o->max + 1 : 65);
	if (kind < 70)
		return v % (o->max < 512 ? o->max + 1 : 513);
	if (kind < 90)
		return v % (o->max / 2 + 1);
	return o->max - v % (o->max < 64 ? o->max + 1 : 65);
}

static void oracle_fill(const struct oracle *o, uint64_t seq, void *dst,
			size_t len)
{
	unsigned char *buf = dst;
	uint64_t x = mix64(o->seed ^ mix64(seq)) | 1;
	size_t i;

	for (i = 0; i < len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, len - i < 8 ? len - i : 8);
	}
	/* The sequence number in clear, so that a misordered packet says
	 * which one it is. */
	if (len >= 8)
		memcpy(buf, &seq, 8);
}

/* ---- results ---- */

/*
 * What one side reports: plain data, so that a forked child can send it
 * through a pipe.  st[] holds the stats of the side's endpoints, taken just
 * before it detached them.
 */
struct side_result {
	uint64_t packets, bytes;	/* as counted by the test */
	uint64_t calls;			/* publishing calls that succeeded */
	int64_t rtt_max_ns, rtt_sum_ns;
	uint64_t rtt_hist[5];		/* < 100 us, 1 ms, 10 ms, 40 ms, more */
	struct apq_stats st[2];
	int end;			/* what ended it: 0, or -EPIPE */
	int64_t end_ns;
	int64_t wait_ns;		/* early detach: -EPIPE latency */
	uint64_t dropped;		/* early detach: peeked, not released */
	uint64_t hs_outcome[4];		/* handshake race: rounds by HS_* */
	char err[400];			/* the first failure, "" if none */
};

__attribute__((format(printf, 4, 5)))
static void side_fail(struct side_result *res, const char *file, int line,
		      const char *fmt, ...)
{
	va_list ap;
	int n;

	if (res->err[0])
		return;
	n = snprintf(res->err, sizeof(res->err), "%s:%d: ", file, line);
	va_start(ap, fmt);
	vsnprintf(res->err + n, sizeof(res->err) - (size_t)n, fmt, ap);
	va_end(ap);
}

#define FAIL(res, ...)	side_fail((res), __FILE__, __LINE__, __VA_ARGS__)

/* Check one received packet against the oracle.  @return 0 or FATAL. */
static int verify(const struct oracle *o, uint64_t seq, const void *data,
		  size_t len, unsigned char *scratch, struct side_result *res)
{
	const unsigned char *d = data;
	size_t want = oracle_len(o, seq), i;
	uint64_t first = 0;

	if (len >= 8)
		memcpy(&first, d, 8);
	if (len != want) {
		FAIL(res, "packet %" PRIu64 ": length %zu, want %zu (its first word: %" PRIu64 ")",
		     seq, len, want, first);
		return FATAL;
	}
	oracle_fill(o, seq, scratch, len);
	if (memcmp(d, scratch, len) == 0)
		return 0;
	for (i = 0; d[i] == scratch[i]; i++)
		;
	FAIL(res, "packet %" PRIu64 " (len %zu): byte %zu is 0x%02x, want 0x%02x (its first word: %" PRIu64 ")",
	     seq, len, i, d[i], scratch[i], first);
	return FATAL;
}

static void rtt_record(struct side_result *res, int64_t rtt)
{
	static const int64_t bounds[] = { 100 * USEC, MSEC, 10 * MSEC,
					  SLOW_RTT_NS };
	unsigned int b;

	for (b = 0; b < 4 && rtt >= bounds[b]; b++)
		;
	res->rtt_hist[b]++;
	res->rtt_sum_ns += rtt;
	if (rtt > res->rtt_max_ns)
		res->rtt_max_ns = rtt;
}

/* ---- policies ---- */

struct policy {
	enum apq_policy policy;
	uint64_t spin_ns;
};

#define ADAPTIVE	{ APQ_POLICY_ADAPTIVE, 0 }
#define SPIN(ns)	{ APQ_POLICY_SPIN, (ns) }
#define ALWAYS		{ APQ_POLICY_ALWAYS_NOTIFY, 0 }
#define BUSY		{ APQ_POLICY_BUSY_POLL, 0 }

static struct apq_config config_of(struct policy pol)
{
	return (struct apq_config){ .policy = pol.policy,
				    .spin_ns = pol.spin_ns };
}

/* Policies that announce SLEEPING as soon as there is nothing to do. */
static bool never_polls(struct policy pol)
{
	return pol.policy == APQ_POLICY_ALWAYS_NOTIFY ||
	       (pol.policy == APQ_POLICY_SPIN && pol.spin_ns == 0);
}

static const char *policy_name(struct policy pol, char *buf, size_t len)
{
	switch (pol.policy) {
	case APQ_POLICY_ADAPTIVE:
		return "adaptive";
	case APQ_POLICY_SPIN:
		snprintf(buf, len, "spin%" PRIu64 "ns", pol.spin_ns);
		return buf;
	case APQ_POLICY_ALWAYS_NOTIFY:
		return "always";
	case APQ_POLICY_BUSY_POLL:
		return "busy";
	}
	return "?";
}

/* ---- shared memory and the two sides ---- */

/* After the region, on its own cache line: what the test itself shares. */
struct extra {
	int64_t consumer_left_ns;	/* early detach: written before detach */
	int rescued;			/* ping-pong: a side caught a lost
					 * wakeup; the rest would only wait
					 * out more backstops */
	/* The handshake race: how far each side got, both on one line on
	 * purpose: the last arrival's store moves that line to the waiting
	 * side, so both leave the barrier within one transfer of each
	 * other.  On a line each, no-B1 lost 1 wakeup in 1.1 million rounds
	 * in one run, not hundreds.  Then the sleeper's verdict on the round. */
	uint64_t hs_step[2] __attribute__((aligned(64)));
	int hs_armed __attribute__((aligned(64)));
} __attribute__((aligned(64)));

struct run;
typedef void (*side_fn)(const struct run *run, void *mem,
			struct side_result *res);

/* One pair of sides.  Everything but `mem` is the same in both processes. */
struct run {
	const void *tc;			/* the test case */
	const char *name;
	uint64_t seed;
	struct budget budget;
	int memfd;			/* -1: private memory */
	bool private_mem;		/* threads only: no memfd, and the
					 * library's asymmetric fences */
	size_t mem_bytes;		/* the region's */
	size_t map_bytes;		/* the region's and struct extra's */
	size_t ring_bytes;
	void *mem;			/* the parent's mapping */
};

static struct extra *extra_of(const struct run *run, void *mem)
{
	return (struct extra *)((unsigned char *)mem + run->mem_bytes);
}

/*
 * A MAP_SHARED memfd of map_bytes, zeroed.  Threads use it too: the region
 * does not care, and one allocator serves both kinds of test.  Private
 * memory instead where asked: there the library skips the waker's barrier
 * and the sleeper issues membarrier(2) (lib/asym.h).
 */
static void run_map(struct run *run, size_t region_bytes)
{
	run->mem_bytes = (region_bytes + 63) & ~(size_t)63;
	run->map_bytes = run->mem_bytes + sizeof(struct extra);
	if (run->private_mem) {
		run->memfd = -1;
		run->mem = mmap(NULL, run->map_bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ck_assert_ptr_ne(run->mem, MAP_FAILED);
		return;
	}
	run->memfd = memfd_create("apq-stress", MFD_CLOEXEC);
	ck_assert_msg(run->memfd >= 0, "memfd_create: %s", strerror(errno));
	ck_assert_int_eq(ftruncate(run->memfd, (off_t)run->map_bytes), 0);
	run->mem = map_shared_fd(run->memfd, run->map_bytes);
	ck_assert_ptr_nonnull(run->mem);
}

static void run_unmap(struct run *run)
{
	munmap(run->mem, run->map_bytes);
	if (run->memfd >= 0)
		close(run->memfd);
}

/* A region of ring_bytes in a fresh memfd. */
static void run_region(struct run *run, size_t ring_bytes)
{
	run->ring_bytes = ring_bytes;
	run_map(run, apq_region_size(ring_bytes));
	ck_assert_int_eq(apq_region_init(run->mem, run->mem_bytes, ring_bytes),
			 0);
}

struct thread_arg {
	const struct run *run;
	side_fn fn;
	struct side_result *res;
};

static void *side_thread(void *p)
{
	struct thread_arg *a = p;

	a->fn(a->run, a->run->mem, a->res);
	return NULL;
}

/*
 * The forked side: its own mapping of the memfd (at another address, as a
 * second process or domain would have it), its own notifier (the side
 * function makes it), its result through the pipe and its exit status.
 * Never returns.
 */
static void child_main(const struct run *run, side_fn fn, int pipe_w)
{
	static struct side_result res;
	void *mem;

	mem = map_shared_fd(run->memfd, run->map_bytes);
	if (!mem) {
		FAIL(&res, "child: mmap: %s", strerror(errno));
	} else {
		fn(run, mem, &res);
		munmap(mem, run->map_bytes);
	}
	(void)write_all(pipe_w, &res, sizeof(res));
	close(pipe_w);
	_exit(res.err[0] ? 1 : 0);
}

/*
 * Run `first` and `second` on the run's region: two threads, or `first` in
 * this process and `second` in a forked child.  Results in out[0], out[1].
 */
static void run_pair(const struct run *run, side_fn first, side_fn second,
		     bool processes, struct side_result out[2])
{
	memset(out, 0, 2 * sizeof(*out));
	if (!processes) {
		struct thread_arg a[2] = {
			{ run, first, &out[0] },
			{ run, second, &out[1] },
		};
		pthread_t t[2];
		int i;

		for (i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_create(&t[i], NULL,
							side_thread, &a[i]), 0);
		for (i = 0; i < 2; i++)
			ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	} else {
		int fds[2], status;
		bool got;
		pid_t pid;

		ck_assert_int_eq(pipe(fds), 0);
		pid = test_fork();
		ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			close(fds[0]);
			child_main(run, second, fds[1]);
		}
		close(fds[1]);
		first(run, run->mem, &out[0]);
		got = read_all(fds[0], &out[1], sizeof(out[1]));
		close(fds[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		if (!got && !out[1].err[0])
			snprintf(out[1].err, sizeof(out[1].err),
				 "child sent no result (wait status %#x)",
				 status);
		else if (!out[1].err[0] &&
			 (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
			snprintf(out[1].err, sizeof(out[1].err),
				 "child failed (wait status %#x)", status);
	}
}

static void check_no_error(const char *what, const struct side_result *a,
			   const char *a_name, const struct side_result *b,
			   const char *b_name)
{
	ck_assert_msg(!a->err[0] && !b->err[0], "%s: %s: %s%s%s: %s", what,
		      a_name, a->err[0] ? a->err : "ok", " | ", b_name,
		      b->err[0] ? b->err : "ok");
}

static void test_banner(const struct run *run, const char *what)
{
	printf("[%s] %s: APQ_SEED=%#" PRIx64 ", budget %.1f s, min work %" PRIu64 "\n",
	       run->name, what, base_seed, run->budget.seconds,
	       run->budget.min_work);
	fflush(stdout);
}

/* ======== 1-3. streams ======== */

enum {
	STREAM_PROCESS = 1 << 0,	/* the second side is a forked child */
	STREAM_CHILD_PRODUCER = 1 << 1,	/* ... and it is the producer */
	STREAM_SATURATED = 1 << 2,	/* no delays, single calls only */
};

struct stream_case {
	const char *name;
	size_t ring_bytes;
	size_t max_len;			/* 0: apq_packet_max() */
	struct policy prod, cons;
	unsigned int flags;
	double weight;
};

static const struct stream_case stream_cases[] = {
	{ "adaptive-4k", 4096, 0, ADAPTIVE, ADAPTIVE, 0, 2 },
	{ "adaptive-64k", 65536, 0, ADAPTIVE, ADAPTIVE, 0, 2 },
	{ "spin0", 4096, 0, SPIN(0), SPIN(0), 0, 2 },
	{ "spin2us", 4096, 0, SPIN(2000), SPIN(2000), 0, 1.5 },
	{ "spin50us-8k", 8192, 0, SPIN(50000), SPIN(50000), 0, 1.5 },
	{ "always", 4096, 0, ALWAYS, ALWAYS, 0, 2 },
	{ "busy", 4096, 0, BUSY, BUSY, 0, 1.5 },
	{ "adaptive>spin0", 4096, 0, ADAPTIVE, SPIN(0), 0, 1.5 },
	{ "spin0>adaptive", 4096, 0, SPIN(0), ADAPTIVE, 0, 1.5 },
	{ "always>busy", 4096, 0, ALWAYS, BUSY, 0, 1.5 },
	{ "busy>always", 4096, 0, BUSY, ALWAYS, 0, 1.5 },
	{ "spin5us>always", 16384, 0, SPIN(5000), ALWAYS, 0, 1.5 },
	{ "busy>spin0", 4096, 0, BUSY, SPIN(0), 0, 1.5 },
};

static const struct stream_case stream_process_cases[] = {
	{ "proc-adaptive", 4096, 0, ADAPTIVE, ADAPTIVE, STREAM_PROCESS, 2.5 },
	{ "proc-child-producer-spin0>always", 4096, 0, SPIN(0), ALWAYS,
	  STREAM_PROCESS | STREAM_CHILD_PRODUCER, 2.5 },
	{ "proc-busy>spin0-64k", 65536, 0, BUSY, SPIN(0), STREAM_PROCESS,
	  1.5 },
};

static const struct stream_case saturated_case = {
	"saturated", 65536, 256, ADAPTIVE, ADAPTIVE, STREAM_SATURATED, 3
};

/* The early-detach test's rounds: the consumer process leaves mid-stream. */
static const struct stream_case early_detach_case = {
	"proc-early-detach", 4096, 0, ADAPTIVE, SPIN(0), STREAM_PROCESS, 3
};

/* One side of a stream, in the thread or process that runs it. */
struct stream_side {
	const struct stream_case *tc;
	const struct run *run;
	struct side_result *res;
	struct oracle o;
	struct rng rng;
	uint64_t seq;		/* the next packet to send or receive */
	size_t max;		/* apq_packet_max() of the ring */
	unsigned char *buf;	/* BURST_MAX * (max + 1) */
	unsigned char *scratch;
	bool early_detach;	/* the consumer leaves; -EPIPE is the goal */
};

static bool stream_side_init(struct stream_side *s, const struct run *run,
			     struct side_result *res, uint64_t stream)
{
	const struct stream_case *tc = run->tc;

	*s = (struct stream_side){
		.tc = tc,
		.run = run,
		.res = res,
		.o = { .seed = mix64(run->seed ^ 0x5eed), .kind = ORACLE_STREAM,
		       .max = tc->max_len ? tc->max_len
					  : apq_packet_max(tc->ring_bytes) },
		.rng = rng_make(run->seed, stream),
		.max = apq_packet_max(tc->ring_bytes),
		.early_detach = tc == &early_detach_case,
	};
	s->buf = malloc(BURST_MAX * (s->max + 1));
	s->scratch = malloc(s->max + 1);
	if (!s->buf || !s->scratch) {
		FAIL(res, "out of memory");
		return false;
	}
	tight_timer_slack();
	return true;
}

static void stream_side_fini(struct stream_side *s)
{
	free(s->buf);
	free(s->scratch);
}

/*
 * The delays that send the peer to sleep: rare pauses of up to 1 ms (far
 * beyond every poll budget, so the peer sleeps: the consumer on an empty
 * ring, the producer on a full one) and frequent spins of up to 20 us, around
 * the poll budgets, where a sleeper decides while its peer publishes.
 */
static void stream_jitter(struct stream_side *s)
{
	uint64_t x;

	if (s->tc->flags & STREAM_SATURATED)
		return;
	x = rng_below(&s->rng, 1000);
	if (x < 4)
		sleep_ns((int64_t)rng_below(&s->rng, MSEC));
	else if (x < 64)
		spin_ns((int64_t)rng_below(&s->rng, 20 * USEC));
}

/* A timeout for one call: mostly blocking, sometimes none or a short one. */
static int64_t pick_timeout(struct stream_side *s, bool *blocking)
{
	uint64_t x = rng_below(&s->rng, 100);

	*blocking = true;
	if (s->tc->flags & STREAM_SATURATED)
		return STALL_NS;
	if (x < 20)
		return -1;		/* forever: the backstop path */
	if (x < 85)
		return STALL_NS;
	*blocking = false;
	if (x < 95)
		return 0;
	return 1 + (int64_t)rng_below(&s->rng, 200 * USEC);
}

/*
 * Handle a sending call's error.  @return 0 (retry later: no room within a
 * short timeout), -EPIPE (the consumer left, as expected), FATAL.
 */
static int send_error(struct stream_side *s, int r, bool blocking,
		      const char *call)
{
	if (!blocking && (r == -EAGAIN || r == -ETIMEDOUT))
		return 0;
	if (r == -EPIPE && s->early_detach)
		return -EPIPE;
	if (r == -ETIMEDOUT)
		FAIL(s->res, "%s: stalled for %" PRId64 " s at packet %" PRIu64,
		     call, STALL_NS / NSEC, s->seq);
	else
		FAIL(s->res, "%s: %s (%d) at packet %" PRIu64, call,
		     strerror(-r), r, s->seq);
	return FATAL;
}

static void sent_one(struct stream_side *s, size_t len)
{
	s->res->packets++;
	s->res->bytes += len;
	s->seq++;
}

/* @return as send_error(), or 0 after sending. */
static int stream_send_one(struct stream_side *s, struct apq_producer *p)
{
	size_t len = oracle_len(&s->o, s->seq);
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	int r;

	oracle_fill(&s->o, s->seq, s->buf, len);
	/* A zero-length packet needs no buffer. */
	r = apq_send(p, len || rng_below(&s->rng, 2) ? s->buf : NULL, len, to);
	if (r)
		return send_error(s, r, blocking, "apq_send");
	s->res->calls++;
	sent_one(s, len);
	return 0;
}

static int stream_send_burst(struct stream_side *s, struct apq_producer *p)
{
	struct iovec iov[BURST_MAX];
	unsigned int n = 1 + (unsigned int)rng_below(&s->rng, BURST_MAX), i;
	unsigned int big = BURST_MAX;	/* an oversized packet's index */
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	int r;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = s->buf + i * (s->max + 1);
		iov[i].iov_len = oracle_len(&s->o, s->seq + i);
		oracle_fill(&s->o, s->seq + i, iov[i].iov_base, iov[i].iov_len);
	}
	/* Sometimes a packet too large for the ring: the burst must stop
	 * before it (it is not part of the stream). */
	if (n > 1 && rng_below(&s->rng, 32) == 0) {
		big = 1 + (unsigned int)rng_below(&s->rng, n - 1);
		iov[big].iov_len = s->max + 1;
	}
	r = apq_send_burst(p, iov, n, to);
	if (r < 0)
		return send_error(s, r, blocking, "apq_send_burst");
	if (r == 0 || (unsigned int)r > n || (unsigned int)r > big) {
		FAIL(s->res, "apq_send_burst of %u (oversized at %u) sent %d",
		     n, big, r);
		return FATAL;
	}
	s->res->calls++;
	for (i = 0; i < (unsigned int)r; i++)
		sent_one(s, iov[i].iov_len);
	return 0;
}

static int stream_reserve_commit(struct stream_side *s, struct apq_producer *p)
{
	size_t len = oracle_len(&s->o, s->seq);
	size_t room = len + rng_below(&s->rng, 65);
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	void *buf = NULL;
	int r;

	if (room > s->max)
		room = s->max;
	r = apq_reserve(p, room, &buf, to);
	if (r)
		return send_error(s, r, blocking, "apq_reserve");
	if (!buf || (uintptr_t)buf % 8) {
		FAIL(s->res, "apq_reserve gave %p", buf);
		return FATAL;
	}
	oracle_fill(&s->o, s->seq, buf, len);
	if (rng_below(&s->rng, 16) == 0) {
		/* While reserved, nothing else may be sent, nor more than
		 * the reservation committed; both leave it pending. */
		r = apq_send(p, s->buf, 1, 0);
		if (r != -EBUSY) {
			FAIL(s->res, "apq_send while reserved: %d", r);
			return FATAL;
		}
		r = apq_commit(p, room + 1);
		if (r != -EINVAL) {
			FAIL(s->res, "apq_commit beyond the reservation: %d",
			     r);
			return FATAL;
		}
	}
	r = apq_commit(p, len);
	if (r) {
		FAIL(s->res, "apq_commit: %s", strerror(-r));
		return FATAL;
	}
	s->res->calls++;
	sent_one(s, len);
	return 0;
}

static void stream_producer(const struct run *run, void *mem,
			    struct side_result *res)
{
	const struct stream_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->prod);
	struct apq_notifier *n = NULL;
	struct apq_producer *p = NULL;
	struct stream_side s;
	int r = 0;

	if (!stream_side_init(&s, run, res, 1))
		goto out;
	r = apq_notifier_futex(&n);
	if (r == 0)
		r = apq_producer_attach(&p, mem, run->mem_bytes, n, &cfg);
	if (r) {
		FAIL(res, "producer setup: %s", strerror(-r));
		goto out;
	}
	while (s.early_detach ? now_ns() < run->budget.hard_end
			      : keep_going(&run->budget, res->packets)) {
		uint64_t op = rng_below(&s.rng, 100);

		stream_jitter(&s);
		if (tc->flags & STREAM_SATURATED || op < 40) {
			r = stream_send_one(&s, p);
		} else if (op < 70) {
			r = stream_send_burst(&s, p);
		} else if (op < 99) {
			r = stream_reserve_commit(&s, p);
		} else {
			r = apq_send(p, s.buf, s.max + 1, -1);
			if (r != -EMSGSIZE && !(r == -EPIPE && s.early_detach)) {
				FAIL(res, "apq_send of max + 1 bytes: %d", r);
				r = FATAL;
			} else {
				r = r == -EMSGSIZE ? 0 : r;
			}
		}
		if (r)
			break;
	}
	if (r == -EPIPE) {
		res->end = -EPIPE;
		res->end_ns = now_ns();
		res->wait_ns = res->end_ns - __atomic_load_n(
			&extra_of(run, mem)->consumer_left_ns, __ATOMIC_ACQUIRE);
		/* It stays so, also for a call that would block forever. */
		r = apq_send(p, s.buf, 0, -1);
		if (r != -EPIPE)
			FAIL(res, "apq_send after -EPIPE: %d", r);
	} else if (r == 0 && s.early_detach) {
		FAIL(res, "no -EPIPE %.1f s after the consumer should have left",
		     (double)(now_ns() - run->budget.end) / NSEC);
	}
	apq_producer_stats(p, &res->st[0]);
out:
	/* Detaching ends the consumer's stream, also after a failure. */
	apq_producer_detach(p);
	apq_notifier_free(n);
	stream_side_fini(&s);
}

/* Handle a receiving call's error, as send_error(). */
static int recv_error(struct stream_side *s, int r, bool blocking,
		      const char *call)
{
	if (!blocking && (r == -EAGAIN || r == -ETIMEDOUT))
		return 0;
	if (r == -EPIPE)
		return -EPIPE;
	if (r == -ETIMEDOUT)
		FAIL(s->res, "%s: stalled for %" PRId64 " s at packet %" PRIu64,
		     call, STALL_NS / NSEC, s->seq);
	else
		FAIL(s->res, "%s: %s (%d) at packet %" PRIu64, call,
		     strerror(-r), r, s->seq);
	return FATAL;
}

static int got_one(struct stream_side *s, const void *data, size_t len)
{
	if (verify(&s->o, s->seq, data, len, s->scratch, s->res))
		return FATAL;
	s->res->packets++;
	s->res->bytes += len;
	s->seq++;
	return 0;
}

static int stream_recv_one(struct stream_side *s, struct apq_consumer *c)
{
	size_t want = oracle_len(&s->o, s->seq), cap = s->max;
	uint64_t x = rng_below(&s->rng, 64);
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	ssize_t r;

	if (x == 0 && want > 0 && blocking) {
		/* Too small a buffer: the packet must stay queued. */
		r = apq_recv(c, s->buf, want - 1, to);
		if (r == -EPIPE)
			return recv_error(s, (int)r, blocking, "apq_recv");
		if (r != -EMSGSIZE) {
			FAIL(s->res, "apq_recv into %zu bytes of packet %" PRIu64 " (%zu): %zd",
			     want - 1, s->seq, want, r);
			return FATAL;
		}
	} else if (x < 8) {
		cap = want;	/* an exact fit */
	}
	r = apq_recv(c, s->buf, cap, to);
	if (r < 0)
		return recv_error(s, (int)r, blocking, "apq_recv");
	s->res->calls++;
	return got_one(s, s->buf, (size_t)r);
}

static int stream_recv_burst(struct stream_side *s, struct apq_consumer *c)
{
	struct iovec iov[BURST_MAX];
	unsigned int n = 1 + (unsigned int)rng_below(&s->rng, BURST_MAX), i;
	unsigned int small = BURST_MAX;	/* a too small buffer's index */
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	int r;

	for (i = 0; i < n; i++) {
		size_t want = oracle_len(&s->o, s->seq + i);

		iov[i].iov_base = s->buf + i * (s->max + 1);
		iov[i].iov_len = rng_below(&s->rng, 4) ? s->max : want;
		if (small == BURST_MAX && want > 0 &&
		    rng_below(&s->rng, 64) == 0) {
			small = i;
			iov[i].iov_len = want - 1;
		}
	}
	r = apq_recv_burst(c, iov, n, to);
	if (r == -EMSGSIZE && small == 0)
		return 0;
	if (r < 0)
		return recv_error(s, r, blocking, "apq_recv_burst");
	if (r == 0 || (unsigned int)r > n || (unsigned int)r > small) {
		FAIL(s->res, "apq_recv_burst of %u (too small at %u) got %d", n,
		     small, r);
		return FATAL;
	}
	s->res->calls++;
	for (i = 0; i < (unsigned int)r; i++)
		if (got_one(s, iov[i].iov_base, iov[i].iov_len))
			return FATAL;
	return 0;
}

/*
 * Peek a few packets, check them in the ring, release them together.  Only
 * the first peek may block: blocking while holding peeked packets could wait
 * for a producer that waits for their space.
 */
static int stream_peek_release(struct stream_side *s, struct apq_consumer *c)
{
	unsigned int n = 1 + (unsigned int)rng_below(&s->rng, 8), i;
	bool blocking;
	int64_t to = pick_timeout(s, &blocking);
	const void *pkt;
	ssize_t r;
	int end = 0;

	r = apq_peek(c, &pkt, to);
	if (r < 0)
		return recv_error(s, (int)r, blocking, "apq_peek");
	if (got_one(s, pkt, (size_t)r))
		return FATAL;
	for (i = 1; i < n; i++) {
		r = apq_peek(c, &pkt, 0);
		if (r == -EAGAIN)
			break;
		if (r == -EPIPE) {
			end = -EPIPE;
			break;
		}
		if (r < 0)
			return recv_error(s, (int)r, false, "apq_peek");
		if (got_one(s, pkt, (size_t)r))
			return FATAL;
	}
	if (rng_below(&s->rng, 8) == 0) {
		r = apq_recv(c, s->buf, s->max, 0);
		if (r != -EBUSY) {
			FAIL(s->res, "apq_recv with packets peeked: %zd", r);
			return FATAL;
		}
	}
	r = apq_release(c);
	if (r) {
		FAIL(s->res, "apq_release: %zd", r);
		return FATAL;
	}
	s->res->calls++;
	return end;
}

static void stream_consumer(const struct run *run, void *mem,
			    struct side_result *res)
{
	const struct stream_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->cons);
	struct apq_notifier *n = NULL;
	struct apq_consumer *c = NULL;
	struct stream_side s;
	int r = 0;

	if (!stream_side_init(&s, run, res, 2))
		goto out;
	r = apq_notifier_futex(&n);
	if (r == 0)
		r = apq_consumer_attach(&c, mem, run->mem_bytes, n, &cfg);
	if (r) {
		FAIL(res, "consumer setup: %s", strerror(-r));
		goto out;
	}
	for (;;) {
		uint64_t op = rng_below(&s.rng, 100);

		if (s.early_detach && !keep_going(&run->budget, res->packets))
			break;
		stream_jitter(&s);
		if (tc->flags & STREAM_SATURATED || op < 40)
			r = stream_recv_one(&s, c);
		else if (op < 70)
			r = stream_recv_burst(&s, c);
		else
			r = stream_peek_release(&s, c);
		if (r)
			break;
	}
	if (r == -EPIPE) {
		res->end = -EPIPE;
		/* Drained and closed it stays, also for a blocking call. */
		r = (int)apq_recv(c, s.buf, s.max, -1);
		if (r != -EPIPE)
			FAIL(res, "apq_recv after -EPIPE: %d", r);
	} else if (r == 0 && s.early_detach) {
		const void *pkt;

		/* Leave while the producer is asleep on a full ring, and
		 * sometimes holding a peeked packet, which detach drops. */
		sleep_ns(20 * MSEC);
		if (rng_below(&s.rng, 2) &&
		    apq_peek(c, &pkt, STALL_NS) >= 0)
			res->dropped++;
		__atomic_store_n(&extra_of(run, mem)->consumer_left_ns,
				 now_ns(), __ATOMIC_RELEASE);
	}
	apq_consumer_stats(c, &res->st[0]);
out:
	apq_consumer_detach(c);
	apq_notifier_free(n);
	stream_side_fini(&s);
}

static void report_side(const char *run_name, const char *side,
			struct policy pol, const struct apq_stats *st)
{
	char buf[32];

	printf("[%s]   %s (%s): packets %" PRIu64 " bytes %" PRIu64 " wakeups sent %" PRIu64 " (%.5f/packet) skipped %" PRIu64 " sleeps %" PRIu64 " spurious %" PRIu64 " rescues %" PRIu64 "\n",
	       run_name, side, policy_name(pol, buf, sizeof(buf)), st->packets,
	       st->bytes, st->wakeups_sent,
	       st->packets ? (double)st->wakeups_sent / (double)st->packets : 0,
	       st->wakeups_skipped, st->sleeps, st->spurious_wakeups,
	       st->rescues);
}

/* What a policy promises about the side's own counters. */
static void check_policy_stats(const char *name, const char *side,
			       struct policy pol, const struct side_result *r,
			       bool delays)
{
	const struct apq_stats *st = &r->st[0];

	if (pol.policy == APQ_POLICY_BUSY_POLL)
		ck_assert_msg(st->sleeps == 0, "%s: %s busy-polls but slept %" PRIu64 " times",
			      name, side, st->sleeps);
	else if (delays)
		/* The peer's 1 ms pauses outlast every poll budget. */
		ck_assert_msg(st->sleeps > 0, "%s: %s never slept", name, side);
	if (pol.policy == APQ_POLICY_ALWAYS_NOTIFY)
		/* A wake after every publishing call, none skipped. */
		ck_assert_msg(st->wakeups_skipped == 0 &&
			      st->wakeups_sent >= r->calls,
			      "%s: %s always notifies, but sent %" PRIu64 " wakeups for %" PRIu64 " calls and skipped %" PRIu64,
			      name, side, st->wakeups_sent, r->calls,
			      st->wakeups_skipped);
}

static void run_stream(const struct stream_case *tc)
{
	struct run run = {
		.tc = tc,
		.name = tc->name,
		.seed = mix64(base_seed ^ name_hash(tc->name)),
	};
	struct side_result out[2];
	const struct side_result *prod, *cons;
	bool processes = tc->flags & STREAM_PROCESS;
	bool child_prod = tc->flags & STREAM_CHILD_PRODUCER;
	bool saturated = tc->flags & STREAM_SATURATED;
	int64_t took;

	/* A normal build moves well over 200k packets a second. */
	run.budget = budget_make(tc->weight, 20000, 20000);
	run_region(&run, tc->ring_bytes);
	test_banner(&run, processes ? (child_prod ? "stream, child produces"
						  : "stream, child consumes")
				    : "stream, threads");
	if (child_prod)
		run_pair(&run, stream_consumer, stream_producer, processes,
			 out);
	else
		run_pair(&run, stream_producer, stream_consumer, processes,
			 out);
	took = now_ns() - run.budget.start;
	prod = child_prod ? &out[1] : &out[0];
	cons = child_prod ? &out[0] : &out[1];
	run_unmap(&run);

	printf("[%s] %" PRIu64 " packets, %" PRIu64 " bytes in %.2f s\n",
	       tc->name, prod->packets, prod->bytes, (double)took / NSEC);
	report_side(tc->name, "producer", tc->prod, &prod->st[0]);
	report_side(tc->name, "consumer", tc->cons, &cons->st[0]);
	fflush(stdout);

	check_no_error(tc->name, prod, "producer", cons, "consumer");
	ck_assert_msg(prod->packets >= run.budget.min_work,
		      "%s: only %" PRIu64 " packets in %.1f s (minimum %" PRIu64 ")",
		      tc->name, prod->packets, (double)took / NSEC,
		      run.budget.min_work);
	/* Exact totals: what the test sent, what it received, and what both
	 * endpoints counted. */
	ck_assert_msg(cons->end == -EPIPE, "%s: the consumer did not end with -EPIPE",
		      tc->name);
	ck_assert_msg(prod->packets == cons->packets &&
		      prod->packets == prod->st[0].packets &&
		      prod->packets == cons->st[0].packets,
		      "%s: packets sent %" PRIu64 ", received %" PRIu64 ", producer stats %" PRIu64 ", consumer stats %" PRIu64,
		      tc->name, prod->packets, cons->packets,
		      prod->st[0].packets, cons->st[0].packets);
	ck_assert_msg(prod->bytes == cons->bytes &&
		      prod->bytes == prod->st[0].bytes &&
		      prod->bytes == cons->st[0].bytes,
		      "%s: bytes sent %" PRIu64 ", received %" PRIu64 ", producer stats %" PRIu64 ", consumer stats %" PRIu64,
		      tc->name, prod->bytes, cons->bytes, prod->st[0].bytes,
		      cons->st[0].bytes);
	ck_assert_msg(prod->st[0].rescues == 0 && cons->st[0].rescues == 0,
		      "%s: lost wakeups: producer rescues %" PRIu64 ", consumer rescues %" PRIu64,
		      tc->name, prod->st[0].rescues, cons->st[0].rescues);
	check_policy_stats(tc->name, "producer", tc->prod, prod, !saturated);
	check_policy_stats(tc->name, "consumer", tc->cons, cons, !saturated);
	tally_add(cons->packets, 0);
	if (saturated) {
		/* The point of the library: a consumer kept busy is polling
		 * whenever a packet lands, so almost no wakeup is sent. */
		ck_assert_msg(prod->st[0].wakeups_sent * 10 < prod->packets,
			      "%s: %" PRIu64 " wakeups for %" PRIu64 " packets",
			      tc->name, prod->st[0].wakeups_sent,
			      prod->packets);
	}
}

START_TEST(test_stream_threads)
{
	run_stream(&stream_cases[_i]);
}
END_TEST

START_TEST(test_stream_processes)
{
	run_stream(&stream_process_cases[_i]);
}
END_TEST

START_TEST(test_stream_saturated)
{
	run_stream(&saturated_case);
}
END_TEST

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/*
 * The consumer process leaves mid-stream, while the producer sleeps on a
 * full ring: the producer must get -EPIPE, promptly, from the detach's own
 * wakeup.  Repeated for the budget.  The backstop would deliver -EPIPE after
 * 50 ms without counting a rescue, so the median latency is what shows a
 * lost detach wakeup; single rounds may be slow on a loaded machine.
 */
START_TEST(test_stream_early_detach)
{
	const struct stream_case *tc = &early_detach_case;
	struct budget all = budget_make(tc->weight, 4, 8);
	int64_t lat[4096], worst = 0;
	uint64_t rounds = 0, lost_packets = 0, i;
	struct side_result out[2];

	printf("[%s] consumer process detaches early: APQ_SEED=%#" PRIx64 ", budget %.1f s, min rounds %" PRIu64 "\n",
	       tc->name, base_seed, all.seconds, all.min_work);
	while (keep_going(&all, rounds) && rounds < 4096) {
		char name[64];
		struct run run = {
			.tc = tc,
			.name = name,
			.seed = mix64(base_seed ^ name_hash(tc->name) ^ rounds),
		};

		snprintf(name, sizeof(name), "%s#%" PRIu64, tc->name, rounds);
		/* The consumer reads for 20-120 ms, then leaves. */
		run.budget = budget_make(0, 0, 0);
		run.budget.end = run.budget.start + 20 * MSEC +
				 (int64_t)(mix64(run.seed) % (100 * MSEC));
		run.budget.hard_end = run.budget.end + 20 * NSEC;
		run.budget.min_work = 0;
		run_region(&run, tc->ring_bytes);
		run_pair(&run, stream_producer, stream_consumer, true, out);
		run_unmap(&run);
		check_no_error(name, &out[0], "producer", &out[1], "consumer");
		ck_assert_msg(out[0].end == -EPIPE, "%s: producer did not see -EPIPE",
			      name);
		ck_assert_msg(out[1].packets <= out[0].packets &&
			      out[0].packets == out[0].st[0].packets &&
			      out[1].packets + out[1].dropped == out[1].st[0].packets,
			      "%s: producer sent %" PRIu64 " (stats %" PRIu64 "), consumer checked %" PRIu64 " (stats %" PRIu64 ")",
			      name, out[0].packets, out[0].st[0].packets,
			      out[1].packets, out[1].st[0].packets);
		ck_assert_msg(out[0].st[0].rescues == 0 &&
			      out[1].st[0].rescues == 0,
			      "%s: rescues: producer %" PRIu64 ", consumer %" PRIu64,
			      name, out[0].st[0].rescues, out[1].st[0].rescues);
		ck_assert_msg(out[0].wait_ns >= 0 && out[0].wait_ns < 5 * NSEC,
			      "%s: -EPIPE came %.3f s after the consumer left",
			      name, (double)out[0].wait_ns / NSEC);
		lat[rounds++] = out[0].wait_ns;
		lost_packets += out[0].packets - out[1].packets;
		tally_add(out[1].packets, 0);
	}
	qsort(lat, rounds, sizeof(lat[0]), cmp_i64);
	for (i = 0; i < rounds; i++)
		worst = lat[i] > worst ? lat[i] : worst;
	printf("[%s] %" PRIu64 " rounds; -EPIPE after the detach: median %.3f ms, worst %.3f ms; %" PRIu64 " packets sent after the consumer stopped reading\n",
	       tc->name, rounds, (double)lat[rounds / 2] / MSEC,
	       (double)worst / MSEC, lost_packets);
	fflush(stdout);
	ck_assert_msg(rounds >= all.min_work, "only %" PRIu64 " rounds",
		      rounds);
	ck_assert_msg(lat[rounds / 2] < BACKSTOP_NS,
		      "median -EPIPE latency %.3f ms: the detach wakeup is lost",
		      (double)lat[rounds / 2] / MSEC);
}
END_TEST

/* ======== 4. the lost-wakeup torture: ping-pong over two rings ======== */

enum {
	PP_PROCESS = 1 << 0,	/* the responder is a forked child */
	PP_JITTER = 1 << 1,	/* 0-50 us delays before each message */
	PP_PRIVATE = 1 << 2,	/* threads on private memory: asymmetric
				 * fences */
};

struct pp_case {
	const char *name;
	struct policy a, b;	/* the requester's endpoints, the responder's */
	unsigned int flags;
	double weight;
};

/*
 * SPIN(0) and ALWAYS make every exchange sleep; ADAPTIVE sleeps whenever the
 * peer's scheduling outlasts its budget; a busy-polling responder answers
 * while the requester is still announcing its sleep, the tightest race.
 */
static const struct pp_case pp_cases[] = {
	{ "pp-spin0", SPIN(0), SPIN(0), 0, 2.5 },
	{ "pp-always", ALWAYS, ALWAYS, 0, 2.5 },
	{ "pp-adaptive", ADAPTIVE, ADAPTIVE, 0, 2.5 },
	{ "pp-spin0-vs-busy", SPIN(0), BUSY, 0, 2.5 },
	{ "pp-busy-vs-spin0", BUSY, SPIN(0), 0, 2 },
	{ "pp-spin0-vs-adaptive", SPIN(0), ADAPTIVE, 0, 2 },
	{ "pp-jitter-spin0", SPIN(0), SPIN(0), PP_JITTER, 2 },
	{ "pp-jitter-adaptive", ADAPTIVE, ADAPTIVE, PP_JITTER, 2 },
	{ "pp-private-spin0", SPIN(0), SPIN(0), PP_PRIVATE, 2.5 },
	{ "pp-private-adaptive", ADAPTIVE, ADAPTIVE, PP_PRIVATE, 2 },
	{ "pp-private-spin0-vs-busy", SPIN(0), BUSY, PP_PRIVATE, 2.5 },
	{ "pp-private-busy-vs-spin0", BUSY, SPIN(0), PP_PRIVATE, 2 },
	{ "pp-proc-spin0", SPIN(0), SPIN(0), PP_PROCESS, 2.5 },
	{ "pp-proc-always", ALWAYS, ALWAYS, PP_PROCESS, 2.5 },
	{ "pp-proc-adaptive", ADAPTIVE, ADAPTIVE, PP_PROCESS, 2 },
	{ "pp-proc-spin0-vs-busy", SPIN(0), BUSY, PP_PROCESS, 2 },
	{ "pp-proc-jitter-spin0", SPIN(0), SPIN(0), PP_PROCESS | PP_JITTER,
	  2 },
};

/* Requests go A -> B through ring 1, replies B -> A through ring 2. */
struct pp_mem {
	void *ring1, *ring2;
};

static struct pp_mem pp_rings(const struct run *run, void *mem)
{
	size_t region = apq_region_size(run->ring_bytes);

	return (struct pp_mem){ mem, (unsigned char *)mem + region };
}

struct pp_side {
	const struct pp_case *tc;
	struct side_result *res;
	struct rng rng;
	struct oracle req, rep;
	unsigned char buf[256], scratch[256];
};

static void pp_jitter(struct pp_side *s)
{
	uint64_t x;

	if (!(s->tc->flags & PP_JITTER) || rng_below(&s->rng, 2))
		return;
	x = rng_below(&s->rng, 50 * USEC);
	if (rng_below(&s->rng, 2))
		spin_ns((int64_t)x);
	else
		sleep_ns((int64_t)x);
}

/* Tell both sides to stop once either caught a lost wakeup: the test fails
 * on it, and running on would cost a backstop per loss. */
static bool pp_rescued(const struct run *run, void *mem,
		       const struct apq_consumer *c,
		       const struct apq_producer *p)
{
	struct extra *x = extra_of(run, mem);
	struct apq_stats a, b;

	if (apq_consumer_stats(c, &a) == 0 &&
	    apq_producer_stats(p, &b) == 0 && a.rescues + b.rescues)
		__atomic_store_n(&x->rescued, 1, __ATOMIC_RELAXED);
	return __atomic_load_n(&x->rescued, __ATOMIC_RELAXED);
}

/* One message by one of the sending calls, at random.  @return 0 or < 0. */
static int pp_send(struct pp_side *s, struct apq_producer *p,
		   const struct oracle *o, uint64_t seq)
{
	size_t len = oracle_len(o, seq);
	struct iovec iov = { s->buf, len };
	void *room;
	int r;

	switch (rng_below(&s->rng, 4)) {
	case 0:
		oracle_fill(o, seq, s->buf, len);
		r = apq_send_burst(p, &iov, 1, STALL_NS);
		return r == 1 ? 0 : r < 0 ? r : -EIO;
	case 1:
		r = apq_reserve(p, len, &room, STALL_NS);
		if (r)
			return r;
		oracle_fill(o, seq, room, len);
		return apq_commit(p, len);
	default:
		oracle_fill(o, seq, s->buf, len);
		return apq_send(p, s->buf, len, STALL_NS);
	}
}

/* One message by one of the receiving calls, checked.  @return its length,
 * or < 0 (FATAL after a recorded failure). */
static int pp_recv(struct pp_side *s, struct apq_consumer *c,
		   const struct oracle *o, uint64_t seq)
{
	struct iovec iov = { s->buf, sizeof(s->buf) };
	const void *pkt;
	ssize_t r;

	switch (rng_below(&s->rng, 4)) {
	case 0:
		r = apq_recv_burst(c, &iov, 1, STALL_NS);
		if (r != 1)
			return r < 0 ? (int)r : -EIO;
		r = (ssize_t)iov.iov_len;
		pkt = s->buf;
		break;
	case 1:
		r = apq_peek(c, &pkt, STALL_NS);
		if (r < 0)
			return (int)r;
		if (verify(o, seq, pkt, (size_t)r, s->scratch, s->res))
			return FATAL;
		return apq_release(c) ? -EIO : (int)r;
	default:
		r = apq_recv(c, s->buf, sizeof(s->buf), STALL_NS);
		if (r < 0)
			return (int)r;
		pkt = s->buf;
		break;
	}
	if (verify(o, seq, pkt, (size_t)r, s->scratch, s->res))
		return FATAL;
	return (int)r;
}

static void pp_side_init(struct pp_side *s, const struct run *run,
			 struct side_result *res, uint64_t stream)
{
	s->tc = run->tc;
	s->res = res;
	s->rng = rng_make(run->seed, stream);
	s->req = (struct oracle){ mix64(run->seed ^ 1), 64, ORACLE_SMALL };
	s->rep = (struct oracle){ mix64(run->seed ^ 2), 128, ORACLE_SMALL };
	tight_timer_slack();
}

/* A: request, then block for the reply; measure each round trip. */
static void pp_requester(const struct run *run, void *mem,
			 struct side_result *res)
{
	const struct pp_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->a);
	struct pp_mem m = pp_rings(run, mem);
	struct apq_notifier *n = NULL;
	struct apq_producer *p = NULL;
	struct apq_consumer *c = NULL;
	struct pp_side s;
	uint64_t seq = 0;
	int r;

	pp_side_init(&s, run, res, 1);
	/* One notifier serves both endpoints of this side. */
	r = apq_notifier_futex(&n);
	if (r == 0)
		r = apq_producer_attach(&p, m.ring1, apq_region_size(run->ring_bytes),
					n, &cfg);
	if (r == 0)
		r = apq_consumer_attach(&c, m.ring2, apq_region_size(run->ring_bytes),
					n, &cfg);
	if (r) {
		FAIL(res, "requester setup: %s", strerror(-r));
		goto out;
	}
	while (keep_going(&run->budget, seq) &&
	       !pp_rescued(run, mem, c, p)) {
		int64_t t0;

		pp_jitter(&s);
		t0 = now_ns();
		r = pp_send(&s, p, &s.req, seq);
		if (r) {
			FAIL(res, "request %" PRIu64 ": %s", seq, strerror(-r));
			break;
		}
		r = pp_recv(&s, c, &s.rep, seq);
		if (r < 0) {
			if (r != FATAL)
				FAIL(res, "reply %" PRIu64 ": %s", seq,
				     r == -ETIMEDOUT ? "stalled" : strerror(-r));
			break;
		}
		rtt_record(res, now_ns() - t0);
		seq++;
	}
	res->packets = seq;
	apq_producer_stats(p, &res->st[0]);
	apq_consumer_stats(c, &res->st[1]);
	/* A last reply must not be pending: the responder replies only to
	 * what it received. */
	if (!res->err[0] && apq_recv(c, s.buf, sizeof(s.buf), 0) != -EAGAIN)
		FAIL(res, "a reply nobody asked for");
out:
	apq_producer_detach(p);		/* ends the responder */
	apq_consumer_detach(c);
	apq_notifier_free(n);
}

/* B: receive a request, reply; until the requester detaches. */
static void pp_responder(const struct run *run, void *mem,
			 struct side_result *res)
{
	const struct pp_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->b);
	struct pp_mem m = pp_rings(run, mem);
	struct apq_notifier *n = NULL;
	struct apq_producer *p = NULL;
	struct apq_consumer *c = NULL;
	struct pp_side s;
	uint64_t seq = 0;
	int r;

	pp_side_init(&s, run, res, 2);
	r = apq_notifier_futex(&n);
	if (r == 0)
		r = apq_consumer_attach(&c, m.ring1, apq_region_size(run->ring_bytes),
					n, &cfg);
	if (r == 0)
		r = apq_producer_attach(&p, m.ring2, apq_region_size(run->ring_bytes),
					n, &cfg);
	if (r) {
		FAIL(res, "responder setup: %s", strerror(-r));
		goto out;
	}
	for (;;) {
		r = pp_recv(&s, c, &s.req, seq);
		if (r == -EPIPE) {
			res->end = -EPIPE;
			break;
		}
		if (r < 0) {
			if (r != FATAL)
				FAIL(res, "request %" PRIu64 ": %s", seq,
				     r == -ETIMEDOUT ? "stalled" : strerror(-r));
			break;
		}
		pp_jitter(&s);
		r = pp_send(&s, p, &s.rep, seq);
		if (r) {
			FAIL(res, "reply %" PRIu64 ": %s", seq, strerror(-r));
			break;
		}
		(void)pp_rescued(run, mem, c, p);
		seq++;
	}
	res->packets = seq;
	apq_consumer_stats(c, &res->st[0]);
	apq_producer_stats(p, &res->st[1]);
out:
	apq_consumer_detach(c);
	apq_producer_detach(p);
	apq_notifier_free(n);
}

/*
 * The slowest round trip is reported, and asserted only on request: a lost
 * wakeup costs at least the 50 ms backstop, but on a shared two-core machine
 * a runnable thread can wait tens of milliseconds for a CPU (more under
 * sanitizers, whose runtimes also stop the world now and then), so a 40 ms
 * bound would fail on noise.  Lost wakeups are caught exactly by rescues.
 */
static void pp_report(const char *name, const struct side_result *a,
		      const struct side_result *b, int64_t took)
{
	const uint64_t *h = a->rtt_hist;

	printf("[%s] %" PRIu64 " round trips in %.2f s (%.0f/s): mean %.1f us, slowest %.3f ms; <100us %" PRIu64 " <1ms %" PRIu64 " <10ms %" PRIu64 " <40ms %" PRIu64 " >=40ms %" PRIu64 "\n",
	       name, a->packets, (double)took / NSEC,
	       (double)a->packets * NSEC / (double)took,
	       a->packets ? (double)a->rtt_sum_ns / (double)a->packets / USEC : 0,
	       (double)a->rtt_max_ns / MSEC, h[0], h[1], h[2], h[3], h[4]);
	printf("[%s]   sleeps A:req %" PRIu64 " A:rep %" PRIu64 " B:req %" PRIu64 " B:rep %" PRIu64 "; wakeups sent A %" PRIu64 " B %" PRIu64 "; rescues %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
	       name, a->st[0].sleeps, a->st[1].sleeps, b->st[0].sleeps,
	       b->st[1].sleeps, a->st[0].wakeups_sent + a->st[1].wakeups_sent,
	       b->st[0].wakeups_sent + b->st[1].wakeups_sent, a->st[0].rescues,
	       a->st[1].rescues, b->st[0].rescues, b->st[1].rescues);
	fflush(stdout);
}

START_TEST(test_pingpong)
{
	const struct pp_case *tc = &pp_cases[_i];
	struct run run = {
		.tc = tc,
		.name = tc->name,
		.seed = mix64(base_seed ^ name_hash(tc->name)),
		.ring_bytes = 4096,
		.private_mem = tc->flags & PP_PRIVATE,
	};
	struct side_result out[2];
	const struct side_result *a = &out[0], *b = &out[1];
	int64_t took;
	int i;

	/* A normal build does 20-60k round trips a second here. */
	run.budget = budget_make(tc->weight, 8000, 20000);
	run_map(&run, 2 * apq_region_size(run.ring_bytes));
	ck_assert_int_eq(apq_region_init(run.mem, apq_region_size(4096), 4096),
			 0);
	ck_assert_int_eq(apq_region_init(pp_rings(&run, run.mem).ring2,
					 apq_region_size(4096), 4096), 0);
	test_banner(&run, tc->flags & PP_PROCESS ? "ping-pong, two processes"
						 : "ping-pong, threads");
	run_pair(&run, pp_requester, pp_responder, tc->flags & PP_PROCESS,
		 out);
	took = now_ns() - run.budget.start;
	run_unmap(&run);
	pp_report(tc->name, a, b, took);

	check_no_error(tc->name, a, "requester", b, "responder");
	for (i = 0; i < 2; i++)
		ck_assert_msg(a->st[i].rescues == 0 && b->st[i].rescues == 0,
			      "%s: lost wakeups caught: A %" PRIu64 "/%" PRIu64 ", B %" PRIu64 "/%" PRIu64,
			      tc->name, a->st[0].rescues, a->st[1].rescues,
			      b->st[0].rescues, b->st[1].rescues);
	ck_assert_msg(a->packets >= run.budget.min_work,
		      "%s: only %" PRIu64 " round trips (minimum %" PRIu64 ")",
		      tc->name, a->packets, run.budget.min_work);
	tally_add(2 * a->packets, a->packets);
	/* Exact: every request answered once, on all four endpoints. */
	ck_assert_msg(b->end == -EPIPE && b->packets == a->packets &&
		      a->st[0].packets == a->packets &&
		      a->st[1].packets == a->packets &&
		      b->st[0].packets == a->packets &&
		      b->st[1].packets == a->packets,
		      "%s: %" PRIu64 " round trips, responder answered %" PRIu64 ", stats %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64,
		      tc->name, a->packets, b->packets, a->st[0].packets,
		      a->st[1].packets, b->st[0].packets, b->st[1].packets);
	/* SPIN(0) and ALWAYS never poll: the requester goes to sleep for
	 * every reply, unless the reply beats the re-check after its SLEEPING
	 * announcement.  That happens often under sanitizers, whose slower
	 * re-check gives a quick responder time (40% of the round trips seen
	 * with TSan), so one in five is the bound, well below what any build
	 * does, and still tens of thousands through the sleep path. */
	if (never_polls(tc->a) && !forced_asym)
		ck_assert_msg(a->st[1].sleeps * 5 >= a->packets,
			      "%s: the requester slept only %" PRIu64 " times",
			      tc->name, a->st[1].sleeps);
	if (strict_latency)
		ck_assert_msg(a->rtt_max_ns < SLOW_RTT_NS,
			      "%s: a round trip took %.3f ms", tc->name,
			      (double)a->rtt_max_ns / MSEC);
}
END_TEST

/* ======== 5. the mode layer on a ring of our own ======== */

/*
 * "A ring the caller already has": 8 slots of 64-bit values and two
 * free-running counters, published with release stores, and the two mode
 * words <apq/mode.h> needs.  Nothing of apq's ring is involved.
 */
#define HM_SLOTS	8
#define HM_END		UINT64_MAX

struct hm_ring {
	uint64_t head __attribute__((aligned(64)));	/* the producer's */
	uint64_t tail __attribute__((aligned(64)));	/* the consumer's */
	struct apq_mode_word data;	/* the consumer sleeps here */
	struct apq_mode_word space;	/* the producer sleeps here */
	uint64_t slot[HM_SLOTS];
};

struct hm_prod {
	struct hm_ring *r;
	uint64_t head;
	struct apq_waker *wake_data;
	struct apq_sleeper *wait_space;
};

struct hm_cons {
	struct hm_ring *r;
	uint64_t tail;
	struct apq_waker *wake_space;
	struct apq_sleeper *wait_data;
};

static int hm_has_data(void *arg)
{
	const struct hm_cons *c = arg;

	/* Pairs with the release in hm_push(): the slot is visible. */
	return __atomic_load_n(&c->r->head, __ATOMIC_ACQUIRE) != c->tail;
}

static int hm_has_space(void *arg)
{
	const struct hm_prod *p = arg;

	/* Pairs with the release in hm_pop(): its read of the slot is done. */
	return p->head - __atomic_load_n(&p->r->tail, __ATOMIC_ACQUIRE) <
	       HM_SLOTS;
}

/* @return 0, or a negative errno from the mode layer. */
static int hm_push(struct hm_prod *p, uint64_t v)
{
	int r;

	if (!hm_has_space(p)) {
		r = apq_sleeper_wait(p->wait_space, hm_has_space, p, STALL_NS);
		if (r < 0)
			return r;
	}
	p->r->slot[p->head % HM_SLOTS] = v;
	p->head++;
	__atomic_store_n(&p->r->head, p->head, __ATOMIC_RELEASE);
	/* After every publish: the consumer may have announced SLEEPING. */
	r = apq_waker_notify(p->wake_data);
	return r < 0 ? r : 0;
}

static int hm_pop(struct hm_cons *c, uint64_t *v)
{
	int r;

	if (!hm_has_data(c)) {
		r = apq_sleeper_wait(c->wait_data, hm_has_data, c, STALL_NS);
		if (r < 0)
			return r;
	}
	*v = c->r->slot[c->tail % HM_SLOTS];
	c->tail++;
	__atomic_store_n(&c->r->tail, c->tail, __ATOMIC_RELEASE);
	r = apq_waker_notify(c->wake_space);
	/* -EPIPE: the producer closed its space sleeper, which it does only
	 * after publishing HM_END, so it needs no more space; a producer that
	 * left without HM_END shows as a stall of the next pop. */
	return r < 0 && r != -EPIPE ? r : 0;
}

static int hm_prod_open(struct hm_prod *p, struct hm_ring *r,
			struct apq_notifier *n, const struct apq_config *cfg)
{
	int e;

	*p = (struct hm_prod){ .r = r };
	e = apq_waker_create(&p->wake_data, &r->data, APQ_CHANNEL_DATA, n, cfg);
	if (e == 0)
		e = apq_sleeper_create(&p->wait_space, &r->space,
				       APQ_CHANNEL_SPACE, n, cfg);
	return e;
}

static int hm_cons_open(struct hm_cons *c, struct hm_ring *r,
			struct apq_notifier *n, const struct apq_config *cfg)
{
	int e;

	*c = (struct hm_cons){ .r = r };
	e = apq_waker_create(&c->wake_space, &r->space, APQ_CHANNEL_SPACE, n,
			     cfg);
	if (e == 0)
		e = apq_sleeper_create(&c->wait_data, &r->data,
				       APQ_CHANNEL_DATA, n, cfg);
	return e;
}

/* Stats: st[0] the side's data-direction endpoint, st[1] the other. */
static void hm_prod_close(struct hm_prod *p, struct apq_stats *st)
{
	struct apq_stats w = { 0 };

	if (p->wake_data)
		apq_waker_stats(p->wake_data, &w);
	if (p->wait_space)
		apq_sleeper_stats(p->wait_space, st);
	st->wakeups_sent = w.wakeups_sent;
	st->wakeups_skipped = w.wakeups_skipped;
	st->packets = p->head;
	apq_waker_free(p->wake_data);
	apq_sleeper_close(p->wait_space);
}

static void hm_cons_close(struct hm_cons *c, struct apq_stats *st)
{
	struct apq_stats w = { 0 };

	if (c->wake_space)
		apq_waker_stats(c->wake_space, &w);
	if (c->wait_data)
		apq_sleeper_stats(c->wait_data, st);
	st->wakeups_sent = w.wakeups_sent;
	st->wakeups_skipped = w.wakeups_skipped;
	st->packets = c->tail;
	apq_waker_free(c->wake_space);
	apq_sleeper_close(c->wait_data);
}

enum {
	HM_PROCESS = 1 << 0,
	HM_STREAM = 1 << 1,	/* one-way and unpaced: the ring fills */
};

struct hm_case {
	const char *name;
	struct policy pol;
	unsigned int flags;
	double weight;
};

static const struct hm_case hm_cases[] = {
	{ "mode-pp-spin0", SPIN(0), 0, 1.5 },
	{ "mode-pp-adaptive", ADAPTIVE, 0, 1 },
	{ "mode-pp-proc-spin0", SPIN(0), HM_PROCESS, 1.5 },
	{ "mode-stream-spin0", SPIN(0), HM_STREAM, 1 },
	{ "mode-stream-proc-adaptive", ADAPTIVE, HM_STREAM | HM_PROCESS, 1 },
};

static struct hm_ring *hm_rings(void *mem)
{
	return mem;	/* [0] A -> B, [1] B -> A */
}

/*
 * A: ping-pong: push seq on ring 0, wait for seq on ring 1.  Stream: push
 * 0, 1, 2, ... as fast as ring 0 takes them.  Then HM_END.
 */
static void hm_side_a(const struct run *run, void *mem,
		      struct side_result *res)
{
	const struct hm_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->pol);
	struct hm_ring *rings = hm_rings(mem);
	struct apq_notifier *n = NULL;
	struct hm_prod p = { 0 };
	struct hm_cons c = { 0 };
	bool stream = tc->flags & HM_STREAM;
	uint64_t seq = 0, v;
	int r;

	r = apq_notifier_futex(&n);
	if (r == 0)
		r = hm_prod_open(&p, &rings[0], n, &cfg);
	if (r == 0)
		r = hm_cons_open(&c, &rings[1], n, &cfg);
	if (r) {
		FAIL(res, "mode layer setup: %s", strerror(-r));
		goto out;
	}
	while (keep_going(&run->budget, seq)) {
		int64_t t0 = now_ns();

		r = hm_push(&p, seq);
		if (r) {
			FAIL(res, "push %" PRIu64 ": %s", seq, strerror(-r));
			goto out;
		}
		if (!stream) {
			r = hm_pop(&c, &v);
			if (r || v != seq) {
				FAIL(res, "pop %" PRIu64 ": %s, value %" PRIu64,
				     seq, r == -ETIMEDOUT ? "stalled"
							  : strerror(-r), v);
				goto out;
			}
			rtt_record(res, now_ns() - t0);
		}
		seq++;
	}
	r = hm_push(&p, HM_END);
	if (r)
		FAIL(res, "push of the end: %s", strerror(-r));
	res->packets = seq;
out:
	hm_prod_close(&p, &res->st[0]);
	hm_cons_close(&c, &res->st[1]);
	apq_notifier_free(n);
}

/* B: pop from ring 0 and check the order; in ping-pong echo on ring 1. */
static void hm_side_b(const struct run *run, void *mem,
		      struct side_result *res)
{
	const struct hm_case *tc = run->tc;
	struct apq_config cfg = config_of(tc->pol);
	struct hm_ring *rings = hm_rings(mem);
	struct apq_notifier *n = NULL;
	struct hm_prod p = { 0 };
	struct hm_cons c = { 0 };
	bool stream = tc->flags & HM_STREAM;
	struct rng rng = rng_make(run->seed, 2);
	uint64_t seq = 0, v = 0;
	int r;

	tight_timer_slack();
	r = apq_notifier_futex(&n);
	if (r == 0)
		r = hm_cons_open(&c, &rings[0], n, &cfg);
	if (r == 0)
		r = hm_prod_open(&p, &rings[1], n, &cfg);
	if (r) {
		FAIL(res, "mode layer setup: %s", strerror(-r));
		goto out;
	}
	for (;; seq++) {
		r = hm_pop(&c, &v);
		if (r) {
			FAIL(res, "pop %" PRIu64 ": %s", seq,
			     r == -ETIMEDOUT ? "stalled" : strerror(-r));
			goto out;
		}
		if (v == HM_END)
			break;
		if (v != seq) {
			FAIL(res, "popped %" PRIu64 ", want %" PRIu64, v, seq);
			goto out;
		}
		if (stream) {
			/* Now and then slow, so that the producer finds
			 * the 8 slots full and sleeps. */
			if (rng_below(&rng, 512) == 0)
				sleep_ns((int64_t)rng_below(&rng, 200 * USEC));
			continue;
		}
		r = hm_push(&p, v);
		if (r) {
			FAIL(res, "push %" PRIu64 ": %s", seq, strerror(-r));
			goto out;
		}
	}
	res->packets = seq;
	res->end = -EPIPE;
out:
	hm_cons_close(&c, &res->st[0]);
	hm_prod_close(&p, &res->st[1]);
	apq_notifier_free(n);
}

START_TEST(test_mode_layer)
{
	const struct hm_case *tc = &hm_cases[_i];
	struct run run = {
		.tc = tc,
		.name = tc->name,
		.seed = mix64(base_seed ^ name_hash(tc->name)),
	};
	struct side_result out[2];
	const struct side_result *a = &out[0], *b = &out[1];
	bool stream = tc->flags & HM_STREAM;
	struct hm_ring *rings;
	int64_t took;

	run.budget = budget_make(tc->weight, stream ? 100000 : 8000, 10000);
	run_map(&run, 2 * sizeof(struct hm_ring));
	rings = hm_rings(run.mem);
	for (int i = 0; i < 2; i++) {
		apq_mode_word_init(&rings[i].data);
		apq_mode_word_init(&rings[i].space);
	}
	test_banner(&run, tc->flags & HM_PROCESS ? "mode layer, two processes"
						 : "mode layer, threads");
	run_pair(&run, hm_side_a, hm_side_b, tc->flags & HM_PROCESS, out);
	took = now_ns() - run.budget.start;
	run_unmap(&run);
	if (stream)
		printf("[%s] %" PRIu64 " values in %.2f s; producer slept %" PRIu64 ", consumer slept %" PRIu64 "; wakeups sent %" PRIu64 " / %" PRIu64 "; rescues %" PRIu64 "/%" PRIu64 "\n",
		       tc->name, a->packets, (double)took / NSEC,
		       a->st[0].sleeps, b->st[0].sleeps, a->st[0].wakeups_sent,
		       b->st[0].wakeups_sent, a->st[0].rescues,
		       b->st[0].rescues);
	else
		pp_report(tc->name, a, b, took);
	fflush(stdout);

	check_no_error(tc->name, a, "A", b, "B");
	ck_assert_msg(a->st[0].rescues == 0 && a->st[1].rescues == 0 &&
		      b->st[0].rescues == 0 && b->st[1].rescues == 0,
		      "%s: lost wakeups caught: A %" PRIu64 "/%" PRIu64 ", B %" PRIu64 "/%" PRIu64,
		      tc->name, a->st[0].rescues, a->st[1].rescues,
		      b->st[0].rescues, b->st[1].rescues);
	ck_assert_msg(a->packets >= run.budget.min_work,
		      "%s: only %" PRIu64 " values (minimum %" PRIu64 ")",
		      tc->name, a->packets, run.budget.min_work);
	ck_assert_msg(b->end == -EPIPE && b->packets == a->packets,
		      "%s: A sent %" PRIu64 ", B got %" PRIu64, tc->name,
		      a->packets, b->packets);
	tally_add(stream ? b->packets : 2 * b->packets,
		  stream ? 0 : b->packets);
	if (never_polls(tc->pol) && !stream)	/* as in test_pingpong */
		ck_assert_msg(a->st[1].sleeps * 5 >= a->packets,
			      "%s: A slept only %" PRIu64 " times", tc->name,
			      a->st[1].sleeps);
	if (stream)
		/* The 8 slots fill whenever the consumer lags. */
		ck_assert_msg(a->st[0].sleeps > 0, "%s: the producer never slept",
			      tc->name);
	if (strict_latency && !stream)
		ck_assert_msg(a->rtt_max_ns < SLOW_RTT_NS,
			      "%s: a round trip took %.3f ms", tc->name,
			      (double)a->rtt_max_ns / MSEC);
}
END_TEST

/* ======== 6. the handshake's race, round by round ======== */

/*
 * The ping-pong catches a lost wakeup only when the two sides' handshakes
 * happen to overlap within a store buffer's drain, some tens of
 * nanoseconds, and only while both threads run on CPUs at once; on a
 * loaded machine that can take longer than a test lasts.  Here they meet
 * at a spin barrier before every round, so every round is such an
 * overlap: the producer publishes one packet and runs its wakeup check
 * (apq_send()) while the consumer announces SLEEPING and looks once more
 * (apq_consumer_arm()), each after a random spin of its own so that their
 * accesses land across each other's.  It is the store-buffering litmus test
 * of the memory-model texts, on apq's own calls: without B1 or B2, the
 * consumer arms and the producer skips the wake in some rounds.  The
 * notifiers are our own and count wakes, so a round costs no syscall
 * unless the consumer's barrier is one (private memory, ASYM on).
 */
enum {
	HS_EARLY_WORK,	/* the consumer found the packet, no wake sent */
	HS_BOTH,	/* it found the packet and was woken too: each side
			 * saw the other's store, the closest of races */
	HS_WOKEN,	/* it armed, and the producer woke it */
	HS_LOST,	/* it armed, and nobody woke it: a lost wakeup */
};

#define HS_SPREAD	256	/* the random spin: 0..HS_SPREAD-1 turns */
#define HS_STOP		UINT64_MAX

struct hs_case {
	const char *name;
	unsigned int flags;	/* PP_PROCESS, PP_PRIVATE */
	double weight;
};

static const struct hs_case hs_cases[] = {
	{ "hs-threads", 0, 1 },
	{ "hs-private", PP_PRIVATE, 1 },
	{ "hs-processes", PP_PROCESS, 1 },
};

/* A notifier that counts wakes: nobody blocks here, the consumer only arms. */
static int hs_wait(void *ctx, enum apq_channel ch, const uint32_t *seq,
		   uint32_t token, int64_t timeout_ns)
{
	(void)ctx, (void)ch, (void)seq, (void)token, (void)timeout_ns;
	return -ETIMEDOUT;
}

static int hs_wake(void *ctx, enum apq_channel ch, uint32_t *seq)
{
	(void)ch, (void)seq;
	++*(uint64_t *)ctx;
	return 1;
}

static int hs_arm(void *ctx, enum apq_channel ch, const uint32_t *seq,
		  uint32_t token)
{
	(void)ctx, (void)ch, (void)seq, (void)token;
	return 0;
}

static const struct apq_notifier_ops hs_ops = {
	.size = sizeof(hs_ops),
	.wait = hs_wait,
	.wake = hs_wake,
	.arm = hs_arm,
};

static void hs_spin(struct rng *rng)
{
	uint64_t n = rng_below(rng, HS_SPREAD);

	while (n--)
		__asm__ __volatile__("" ::: "memory");
}

/*
 * Say we reached step `step` and wait until the peer has too.  @return 0;
 * 1 if the peer stopped; -ETIMEDOUT past the hard limit (a peer that died).
 */
static int hs_meet(const struct run *run, struct extra *x, int me,
		   uint64_t step)
{
	uint64_t n = 0, peer;

	/* Release, paired with the acquire below on the peer's side: what
	 * we did before the step is visible to it after its wait. */
	__atomic_store_n(&x->hs_step[me], step, __ATOMIC_RELEASE);
	while ((peer = __atomic_load_n(&x->hs_step[!me], __ATOMIC_ACQUIRE)) <
	       step)
		if (++n % 4096 == 0 && now_ns() > run->budget.hard_end)
			return -ETIMEDOUT;
	return peer == HS_STOP;
}

/* The producer: one packet a round; it ends the rounds and judges them. */
static void hs_producer(const struct run *run, void *mem,
			struct side_result *res)
{
	struct extra *x = extra_of(run, mem);
	struct apq_config cfg = { .policy = APQ_POLICY_BUSY_POLL };
	struct apq_notifier *n = NULL;
	struct apq_producer *p = NULL;
	struct rng rng = rng_make(run->seed, 1);
	uint64_t round, wakes = 0, before;
	int r = apq_notifier_create(&n, &hs_ops, &wakes);

	if (r == 0)
		r = apq_producer_attach(&p, mem, run->mem_bytes, n, &cfg);
	if (r) {
		FAIL(res, "producer setup: %s", strerror(-r));
		goto out;
	}
	for (round = 1; keep_going(&run->budget, round - 1); round++) {
		r = hs_meet(run, x, 0, 2 * round - 1);
		if (r) {
			FAIL(res, "round %" PRIu64 ": %s", round,
			     r < 0 ? "the consumer never came" : "the consumer stopped");
			break;
		}
		hs_spin(&rng);
		before = wakes;
		r = apq_send(p, &round, sizeof(round), 0);
		if (r) {
			FAIL(res, "round %" PRIu64 ": apq_send: %s", round,
			     strerror(-r));
			break;
		}
		r = hs_meet(run, x, 0, 2 * round);
		if (r) {
			FAIL(res, "round %" PRIu64 ": the consumer never judged it",
			     round);
			break;
		}
		/* Relaxed: hs_meet()'s acquire orders it after the store. */
		if (__atomic_load_n(&x->hs_armed, __ATOMIC_RELAXED))
			res->hs_outcome[wakes > before ? HS_WOKEN : HS_LOST]++;
		else
			res->hs_outcome[wakes > before ? HS_BOTH
						       : HS_EARLY_WORK]++;
		res->packets = round;
	}
	apq_producer_stats(p, &res->st[0]);
out:
	__atomic_store_n(&x->hs_step[0], HS_STOP, __ATOMIC_RELEASE);
	apq_producer_detach(p);
	apq_notifier_free(n);
}

/* The consumer: arms once a round, says whether it armed, takes the packet. */
static void hs_consumer(const struct run *run, void *mem,
			struct side_result *res)
{
	struct extra *x = extra_of(run, mem);
	struct apq_config cfg = { .policy = APQ_POLICY_SPIN, .spin_ns = 0 };
	struct apq_notifier *n = NULL;
	struct apq_consumer *c = NULL;
	struct rng rng = rng_make(run->seed, 2);
	uint64_t round, got, wakes = 0;
	ssize_t len;
	int r = apq_notifier_create(&n, &hs_ops, &wakes);

	if (r == 0)
		r = apq_consumer_attach(&c, mem, run->mem_bytes, n, &cfg);
	if (r) {
		FAIL(res, "consumer setup: %s", strerror(-r));
		goto out;
	}
	for (round = 1;; round++) {
		r = hs_meet(run, x, 1, 2 * round - 1);
		if (r) {
			if (r < 0)
				FAIL(res, "round %" PRIu64 ": the producer never came",
				     round);
			break;
		}
		hs_spin(&rng);
		r = apq_consumer_arm(c);
		if (r < 0) {
			FAIL(res, "round %" PRIu64 ": apq_consumer_arm: %s",
			     round, strerror(-r));
			break;
		}
		__atomic_store_n(&x->hs_armed, r == 0, __ATOMIC_RELAXED);
		if (hs_meet(run, x, 1, 2 * round)) {
			FAIL(res, "round %" PRIu64 ": the producer stopped mid-round",
			     round);
			break;
		}
		len = apq_recv(c, &got, sizeof(got), 0);
		if (len != (ssize_t)sizeof(got) || got != round) {
			FAIL(res, "round %" PRIu64 ": received %zd bytes, %" PRIu64,
			     round, len, len == (ssize_t)sizeof(got) ? got : 0);
			break;
		}
		res->packets = round;
	}
	apq_consumer_stats(c, &res->st[0]);
out:
	__atomic_store_n(&x->hs_step[1], HS_STOP, __ATOMIC_RELEASE);
	apq_consumer_detach(c);
	apq_notifier_free(n);
}

START_TEST(test_handshake)
{
	const struct hs_case *tc = &hs_cases[_i];
	struct run run = {
		.tc = tc,
		.name = tc->name,
		.seed = mix64(base_seed ^ name_hash(tc->name)),
		.private_mem = tc->flags & PP_PRIVATE,
	};
	struct side_result out[2];
	const uint64_t *o = out[0].hs_outcome;

	/* A normal build does a million rounds a second, ASYM 20 thousand. */
	run.budget = budget_make(tc->weight, 10000, 20000);
	run_region(&run, 4096);
	test_banner(&run, tc->flags & PP_PROCESS ? "handshake race, two processes"
						 : "handshake race, threads");
	run_pair(&run, hs_producer, hs_consumer, tc->flags & PP_PROCESS, out);
	run_unmap(&run);
	printf("[%s] %" PRIu64 " rounds: consumer found the packet %" PRIu64 ", found it and was woken %" PRIu64 ", armed and woken %" PRIu64 ", armed and not woken %" PRIu64 "\n",
	       tc->name, out[0].packets, o[HS_EARLY_WORK], o[HS_BOTH],
	       o[HS_WOKEN], o[HS_LOST]);
	fflush(stdout);

	check_no_error(tc->name, &out[0], "producer", &out[1], "consumer");
	ck_assert_msg(o[HS_LOST] == 0,
		      "%s: lost wakeups caught: %" PRIu64 " of %" PRIu64 " rounds armed and not woken",
		      tc->name, o[HS_LOST], out[0].packets);
	ck_assert_msg(out[0].packets >= run.budget.min_work,
		      "%s: only %" PRIu64 " rounds (minimum %" PRIu64 ")",
		      tc->name, out[0].packets, run.budget.min_work);
	ck_assert_msg(out[1].packets == out[0].packets &&
		      out[0].st[0].packets == out[0].packets &&
		      out[1].st[0].packets == out[0].packets,
		      "%s: %" PRIu64 " rounds, the consumer took %" PRIu64,
		      tc->name, out[0].packets, out[1].packets);
	tally_add(out[0].packets, 0);
}
END_TEST

/* ======== the runner ======== */

#define N_OF(a)		(sizeof(a) / sizeof((a)[0]))

static double total_weight(void)
{
	double w = saturated_case.weight + early_detach_case.weight;
	size_t i;

	for (i = 0; i < N_OF(stream_cases); i++)
		w += stream_cases[i].weight;
	for (i = 0; i < N_OF(stream_process_cases); i++)
		w += stream_process_cases[i].weight;
	for (i = 0; i < N_OF(pp_cases); i++)
		w += pp_cases[i].weight;
	for (i = 0; i < N_OF(hm_cases); i++)
		w += hm_cases[i].weight;
	for (i = 0; i < N_OF(hs_cases); i++)
		w += hs_cases[i].weight;
	return w;
}

/* A case's hard limit, its stall timeouts and the child's teardown. */
static double tcase_timeout(double max_weight)
{
	return hard_seconds(max_weight) + (double)STALL_NS / NSEC + 30;
}

static TCase *tcase_loop(Suite *s, const char *name, const TTest *fn,
			 int n, double max_weight)
{
	TCase *tc = tcase_create(name);

	tcase_set_timeout(tc, tcase_timeout(max_weight));
	tcase_add_loop_test(tc, fn, 0, n);
	suite_add_tcase(s, tc);
	return tc;
}

static double max_weight_of(const double *w, size_t n)
{
	double m = 0;

	while (n--)
		m = w[n] > m ? w[n] : m;
	return m;
}

static Suite *stress_suite(void)
{
	Suite *s = suite_create("stress");
	double w[32];
	size_t i;

	for (i = 0; i < N_OF(stream_cases); i++)
		w[i] = stream_cases[i].weight;
	tcase_loop(s, "stream-threads", test_stream_threads,
		   (int)N_OF(stream_cases), max_weight_of(w, i));
	for (i = 0; i < N_OF(stream_process_cases); i++)
		w[i] = stream_process_cases[i].weight;
	tcase_loop(s, "stream-processes", test_stream_processes,
		   (int)N_OF(stream_process_cases), max_weight_of(w, i));
	tcase_loop(s, "stream-early-detach", test_stream_early_detach, 1,
		   early_detach_case.weight);
	tcase_loop(s, "stream-saturated", test_stream_saturated, 1,
		   saturated_case.weight);
	for (i = 0; i < N_OF(pp_cases); i++)
		w[i] = pp_cases[i].weight;
	tcase_loop(s, "pingpong", test_pingpong, (int)N_OF(pp_cases),
		   max_weight_of(w, i));
	for (i = 0; i < N_OF(hm_cases); i++)
		w[i] = hm_cases[i].weight;
	tcase_loop(s, "mode-layer", test_mode_layer, (int)N_OF(hm_cases),
		   max_weight_of(w, i));
	for (i = 0; i < N_OF(hs_cases); i++)
		w[i] = hs_cases[i].weight;
	tcase_loop(s, "handshake", test_handshake, (int)N_OF(hs_cases),
		   max_weight_of(w, i));
	return s;
}

int main(void)
{
	const char *env;
	double seconds = 72, min_handoffs;
	SRunner *sr;
	int failed;

	env = getenv("APQ_STRESS_SECONDS");
	if (env && *env) {
		seconds = strtod(env, NULL);
		if (!(seconds > 0)) {
			fprintf(stderr, "APQ_STRESS_SECONDS=%s: not a positive number\n",
				env);
			return 2;
		}
	}
	base_seed = test_seed();
	env = getenv("APQ_STRICT_LATENCY");
	strict_latency = env && *env && strcmp(env, "0") != 0;
	env = getenv("APQ_FORCED_ASYM");
	forced_asym = env && *env && strcmp(env, "0") != 0;
	unit_seconds = seconds / total_weight();
	printf("test-stress: APQ_SEED=%#" PRIx64 " APQ_STRESS_SECONDS=%g (%.2f s per unit of weight), sanitizer slowdown %d\n",
	       base_seed, seconds, unit_seconds, SLOWDOWN);
	fflush(stdout);

	tally = shm_alloc(sizeof(*tally));
	if (!tally) {
		perror("test-stress: mmap");
		return 2;
	}
	env = getenv("APQ_STRESS_MIN_HANDOFFS");
	min_handoffs = env && *env ? strtod(env, NULL) : 1e7 / SLOWDOWN;

	sr = srunner_create(stress_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	printf("test-stress: %" PRIu64 " handoffs (packets that changed hands), "
	       "%" PRIu64 " of them in %" PRIu64 " ping-pong round trips\n",
	       tally->handoffs, 2 * tally->round_trips, tally->round_trips);
	/* A partial run (CK_RUN_CASE, as the mutants suite does) proves
	 * nothing about the total. */
	if (!failed && !getenv("CK_RUN_CASE") && !getenv("CK_RUN_SUITE") &&
	    (double)tally->handoffs < min_handoffs) {
		printf("test-stress: FAIL: fewer than %.3g handoffs\n",
		       min_handoffs);
		failed = 1;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
