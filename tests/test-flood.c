/* SPDX-License-Identifier: MIT */
/*
 * test-flood.c - a hostile peer floods the honest side with wakeups it does
 * not need (meson suite "stress").
 *
 * Each test forks a hostile peer that shares the region and does, as fast
 * as it can, one thing the protocol lets a peer do but no honest peer does
 * at that rate, while it also sends (or takes) real packets now and then:
 *
 *   seq-rewrite   bumps the honest consumer's wake sequence word;
 *   futex-flood   bumps it and calls FUTEX_WAKE on it;
 *   mode-toggle   announces SLEEPING with a fresh episode over and over,
 *                 so that every publish of the honest producer finds a
 *                 "sleeper" to wake.
 *
 * and, as baselines, a peer that behaves (quiet-producer, quiet-consumer).
 *
 * The honest side must keep serving the real packets (every one arrives,
 * in order), count the spurious wakeups, and spend a bounded share of its
 * CPU: its thread's CPU time over the run, divided by the run's length, may
 * exceed what the same side spent against the well-behaved peer by at most
 * FLOOD_CPU_EXTRA.  Without the library's throttling, the floods cost a
 * blocked consumer 40 to 75 % of a CPU.  Each test prints the share it
 * measured.
 *
 * APQ_SEED replays the packet sizes; APQ_FLOOD_SECONDS sets each run's
 * length (default 1.5).
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>

#include "testlib.h"

#define RING		16384
/* The hostile producer's real packets: one per period, whatever the
 * flood.  The honest producer's: a batch of ten per period. */
#define REAL_PERIOD_NS	(5 * TEST_MSEC)
#define HONEST_PERIOD_NS TEST_MSEC
#define HONEST_BATCH	10
/* What a flood may add to the honest side's CPU, as a share of one CPU. */
#define FLOOD_CPU_EXTRA	0.05

static uint64_t base_seed;
static double run_seconds = 1.5;

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * TEST_NSEC + ts.tv_nsec;
}

static size_t pkt_len(uint64_t seq)
{
	return 8 + (size_t)(mix64(base_seed ^ seq) % 300);
}

static void pkt_fill(unsigned char *b, uint64_t seq)
{
	memcpy(b, &seq, 8);
	memset(b + 8, (int)(seq & 0xff), pkt_len(seq) - 8);
}

static bool pkt_ok(const unsigned char *b, size_t len, uint64_t seq)
{
	uint64_t got;

	if (len != pkt_len(seq))
		return false;
	memcpy(&got, b, 8);
	for (size_t i = 8; i < len; i++)
		if (b[i] != (unsigned char)(seq & 0xff))
			return false;
	return got == seq;
}

enum flood {
	QUIET_PRODUCER,		/* baseline for the consumer's floods */
	SEQ_REWRITE,
	FUTEX_FLOOD,
	QUIET_CONSUMER,		/* baseline for the producer's */
	MODE_TOGGLE,
	N_FLOODS
};

static const char *const flood_names[] = {
	"quiet-producer", "seq-rewrite", "futex-flood", "quiet-consumer",
	"mode-toggle",
};

static bool honest_is_consumer(enum flood kind)
{
	return kind < QUIET_CONSUMER;
}

/* What the honest side spent against the well-behaved peer. */
static double baseline_cpu[N_FLOODS];

struct shared {
	int64_t t_end;		/* CLOCK_MONOTONIC: the run's end */
	uint64_t flood_ops;	/* what the hostile peer did */
};

static void *region;
static size_t region_bytes;

/* The hostile producer: real packets every REAL_PERIOD_NS, and in between
 * the flood on the consumer's wake sequence. */
static void hostile_producer(struct shared *sh, enum flood kind)
{
	unsigned char *mem = region, buf[512];
	uint32_t *seq = (uint32_t *)(mem + OFF_DATA_WORD + OFF_SEQ);
	struct apq_notifier *n;
	struct apq_producer *p;
	int64_t next = now_ns();
	uint64_t k = 0, ops = 0;

	if (apq_notifier_futex(&n) ||
	    apq_producer_attach(&p, region, region_bytes, n, NULL))
		_exit(2);
	while (now_ns() < sh->t_end) {
		if (now_ns() >= next) {
			pkt_fill(buf, k);
			if (apq_send(p, buf, pkt_len(k), TEST_NSEC))
				_exit(3);
			k++;
			next += REAL_PERIOD_NS;
		}
		if (kind == QUIET_PRODUCER) {
			sleep_ns(next - now_ns());
			continue;
		}
		__atomic_fetch_add(seq, 1, __ATOMIC_RELEASE);
		if (kind == FUTEX_FLOOD)
			syscall(SYS_futex, seq, FUTEX_WAKE, INT32_MAX, NULL,
				NULL, 0);
		ops++;
	}
	sh->flood_ops = ops;
	apq_producer_detach(p);
	_exit(0);
}

/* The hostile consumer: takes every packet, and between takes announces
 * SLEEPING with a new episode, as fast as it can (or, quiet, takes them
 * as an honest consumer does). */
static void hostile_consumer(struct shared *sh, enum flood kind)
{
	unsigned char *mem = region, buf[512];
	struct apq_notifier *n;
	struct apq_consumer *c;
	uint64_t ep = mix64(base_seed) & 0xffffff, ops = 0, k = 0;
	ssize_t r;

	if (apq_notifier_futex(&n) ||
	    apq_consumer_attach(&c, region, region_bytes, n, NULL))
		_exit(2);
	for (;;) {
		r = apq_recv(c, buf, sizeof(buf), kind == QUIET_CONSUMER ? -1 : 0);
		if (r == -EPIPE)
			break;
		if (r >= 0 && !pkt_ok(buf, (size_t)r, k++))
			_exit(4);
		if (kind == QUIET_CONSUMER)
			continue;
		set64(mem, OFF_DATA_WORD, MODE(++ep, M_SLEEPING));
		ops++;
	}
	sh->flood_ops = ops;
	_exit(0);
}

struct outcome {
	double cpu_share;
	uint64_t packets;
	struct apq_stats st;
};

/* The honest consumer, blocked in apq_recv() between real packets. */
static void honest_consumer(struct shared *sh, struct outcome *o)
{
	unsigned char buf[512];
	struct apq_notifier *n;
	struct apq_consumer *c;
	int64_t t0, cpu0;
	ssize_t r;

	ck_assert_int_eq(apq_notifier_futex(&n), 0);
	ck_assert_int_eq(apq_consumer_attach(&c, region, region_bytes, n,
					     NULL), 0);
	t0 = now_ns();
	cpu0 = thread_cpu_ns();
	for (;;) {
		r = apq_recv(c, buf, sizeof(buf), 2 * TEST_NSEC);
		if (r == -EPIPE)
			break;
		ck_assert_msg(r >= 0, "honest consumer: apq_recv gave %zd "
			      "after %" PRIu64 " packets", r, o->packets);
		ck_assert_msg(pkt_ok(buf, (size_t)r, o->packets),
			      "packet %" PRIu64 " wrong or out of order",
			      o->packets);
		o->packets++;
	}
	o->cpu_share = (double)(thread_cpu_ns() - cpu0) /
		       (double)(now_ns() - t0);
	apq_consumer_stats(c, &o->st);
	apq_consumer_detach(c);
	apq_notifier_free(n);
	(void)sh;
}

/* The honest producer: HONEST_BATCH packets every HONEST_PERIOD_NS, one
 * apq_send() each, to a consumer that (mode-toggle) claims to sleep at
 * every look. */
static void honest_producer(struct shared *sh, struct outcome *o)
{
	unsigned char buf[512];
	struct apq_notifier *n;
	struct apq_producer *p;
	int64_t t0, cpu0, next;

	ck_assert_int_eq(apq_notifier_futex(&n), 0);
	ck_assert_int_eq(apq_producer_attach(&p, region, region_bytes, n,
					     NULL), 0);
	t0 = next = now_ns();
	cpu0 = thread_cpu_ns();
	while (now_ns() < sh->t_end) {
		for (int i = 0; i < HONEST_BATCH; i++) {
			pkt_fill(buf, o->packets);
			ck_assert_int_eq(apq_send(p, buf, pkt_len(o->packets),
						  2 * TEST_NSEC), 0);
			o->packets++;
		}
		next += HONEST_PERIOD_NS;
		if (next > now_ns())
			sleep_ns(next - now_ns());
	}
	o->cpu_share = (double)(thread_cpu_ns() - cpu0) /
		       (double)(now_ns() - t0);
	apq_producer_stats(p, &o->st);
	apq_producer_detach(p);
	apq_notifier_free(n);
}

START_TEST(test_flood)
{
	enum flood kind = (enum flood)_i;
	struct shared *sh = shm_alloc(sizeof(*sh));
	struct outcome o = { 0 };
	int status;
	pid_t pid;

	ck_assert_ptr_nonnull(sh);
	region_bytes = apq_region_size(RING);
	region = shm_alloc(region_bytes);
	ck_assert_ptr_nonnull(region);
	ck_assert_int_eq(apq_region_init(region, region_bytes, RING), 0);
	sh->t_end = now_ns() + (int64_t)(run_seconds * (double)TEST_NSEC);
	pid = test_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (honest_is_consumer(kind))
			hostile_producer(sh, kind);
		hostile_consumer(sh, kind);
	}
	if (honest_is_consumer(kind))
		honest_consumer(sh, &o);
	else
		honest_producer(sh, &o);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "the hostile peer failed (status %#x)", status);
	printf("flood %-12s: honest side %.1f%% of a CPU over %.1f s; %" PRIu64
	       " real packets; peer did %" PRIu64 " flood ops; wakeups sent "
	       "%" PRIu64 ", skipped %" PRIu64 ", sleeps %" PRIu64 ", spurious "
	       "%" PRIu64 ", rescues %" PRIu64 "\n", flood_names[kind],
	       100 * o.cpu_share, run_seconds, o.packets, sh->flood_ops,
	       o.st.wakeups_sent, o.st.wakeups_skipped, o.st.sleeps,
	       o.st.spurious_wakeups, o.st.rescues);
	fflush(stdout);
	ck_assert_uint_gt(o.packets, (uint64_t)(run_seconds * 0.5 * TEST_NSEC /
						REAL_PERIOD_NS));
	ck_assert_uint_eq(o.st.rescues, 0);
	if (kind == QUIET_PRODUCER || kind == QUIET_CONSUMER) {
		baseline_cpu[kind] = o.cpu_share;
	} else {
		double base = baseline_cpu[honest_is_consumer(kind)
					   ? QUIET_PRODUCER : QUIET_CONSUMER];

		ck_assert_uint_gt(sh->flood_ops, 1000);
		if (kind != MODE_TOGGLE)
			ck_assert_uint_gt(o.st.spurious_wakeups, 0);
		ck_assert_msg(o.cpu_share <= base +
			      FLOOD_CPU_EXTRA * TEST_SLOWDOWN,
			      "%s: the honest side spent %.1f%% of a CPU, "
			      "%.1f%% against a quiet peer (at most %.0f%% "
			      "more)", flood_names[kind], 100 * o.cpu_share,
			      100 * base, 100 * FLOOD_CPU_EXTRA * TEST_SLOWDOWN);
	}
	munmap(region, region_bytes);
	munmap(sh, sizeof(*sh));
}
END_TEST

int main(void)
{
	const char *env = getenv("APQ_FLOOD_SECONDS");
	Suite *s = suite_create("flood");
	TCase *tc = tcase_create("flood");
	SRunner *sr;
	int failed;

	if (env && *env)
		run_seconds = strtod(env, NULL);
	base_seed = test_seed();
	printf("test-flood: APQ_SEED=%#" PRIx64 "\n", base_seed);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_flood, 0, N_FLOODS);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	/* In order, in this process: each flood compares with its baseline. */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
