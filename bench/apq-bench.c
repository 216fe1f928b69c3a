/* SPDX-License-Identifier: MIT */
/*
 * apq-bench - throughput, wakeups and consumer CPU of a producer/consumer
 * queue, per wakeup policy and packet size.
 *
 * Overview
 *   A run moves sequence-numbered packets from a producer thread to a
 *   consumer thread through one queue, unpaced, for a fixed time.  The two
 *   threads are pinned to different CPUs when there are two.  The consumer
 *   checks every packet's sequence number (and, from 16 bytes up, a tail
 *   derived from it), so that a queue that loses or reorders packets cannot
 *   post a good number.
 *
 *   Rows are impl x variant x scenario:
 *     impl      an adapter for one queue implementation (struct impl);
 *               only apq for now, others join as more entries of impls[]
 *     variant   a configuration of the impl; for apq, a wakeup policy.  One
 *               variant per impl is the baseline (waking on every publish,
 *               the prior art) that the others are compared against
 *     scenario  packet size, packets per call, processes, offered rate
 *   Every row runs --repeat times, and the repeats are interleaved (all rows
 *   once, then all rows again), so that a noisy neighbour spreads over the
 *   rows instead of spoiling every run of one.  The report gives the median
 *   and the range: on a shared machine a single number means little.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>

#define NS_PER_SEC	INT64_C(1000000000)
#define BATCH_MAX	32
#define SIZE_MAX_PKT	1500

/* No healthy send or recv blocks anywhere near this long: past it, the run
 * fails instead of hanging. */
#define IO_TIMEOUT_NS	(10 * NS_PER_SEC)

/* The producer looks at the clock every this many calls: often enough to
 * stop within a millisecond, rarely enough not to show in the numbers. */
#define CALLS_PER_CLOCK_READ	64

#define REPEAT_MAX	1000

/* ---- what an implementation provides ---- */

/* Counters an adapter reports for one side, at the end of a run. */
struct side_counters {
	uint64_t packets;
	uint64_t wakeups;	/* wakeups this side sent to its peer */
	uint64_t sleeps;	/* times this side blocked */
	uint64_t rescues;	/* lost wakeups caught (apq: must stay 0) */
};

struct variant {
	const char *name;	/* "policy" in the report */
	bool baseline;		/* the row the others are compared to */
	const void *arg;	/* the impl's own configuration */
};

/*
 * One queue implementation.  open() and close() run in the main thread, the
 * producer calls in the producer thread, the consumer calls in the consumer
 * thread; thread creation and join order them.
 */
struct impl {
	const char *name;
	const struct variant *variants;
	size_t n_variants;
	/* Set up a queue holding at least ring_bytes.  @return 0 or -errno. */
	int (*open)(void **q, const struct variant *v, size_t ring_bytes);
	/* Send pkts[0..n), n >= 1, blocking until at least one went.
	 * @return the number sent, or -errno. */
	int (*send)(void *q, const struct iovec *pkts, unsigned int n);
	/* Receive up to n packets (iov_len: capacity in, length out),
	 * blocking until at least one is there.  @return the number, 0 at
	 * the end of the stream (producer ended and queue drained), -errno. */
	int (*recv)(void *q, struct iovec *bufs, unsigned int n);
	/* End the stream (producer thread) or the reading (consumer thread),
	 * after filling *out: the endpoint and its counters go away. */
	void (*producer_end)(void *q, struct side_counters *out);
	void (*consumer_end)(void *q, struct side_counters *out);
	void (*close)(void *q);
};

/* ---- apq ---- */

struct apq_queue {
	void *mem;
	size_t mem_bytes;
	struct apq_notifier *notifier;
	struct apq_producer *p;
	struct apq_consumer *c;
};

static const struct apq_config apq_adaptive = {
	.policy = APQ_POLICY_ADAPTIVE,
};
static const struct apq_config apq_spin_2us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 2000,
};
static const struct apq_config apq_spin_50us = {
	.policy = APQ_POLICY_SPIN, .spin_ns = 50000,
};
static const struct apq_config apq_always = {
	.policy = APQ_POLICY_ALWAYS_NOTIFY,
};
static const struct apq_config apq_busy = {
	.policy = APQ_POLICY_BUSY_POLL,
};

static const struct variant apq_variants[] = {
	{ "adaptive", false, &apq_adaptive },
	{ "spin-2us", false, &apq_spin_2us },
	{ "spin-50us", false, &apq_spin_50us },
	{ "always", true, &apq_always },
	{ "busy", false, &apq_busy },
};

static void apq_q_close(void *arg)
{
	struct apq_queue *q = arg;

	if (!q)
		return;
	apq_producer_detach(q->p);
	apq_consumer_detach(q->c);
	apq_notifier_free(q->notifier);
	free(q->mem);
	free(q);
}

static int apq_q_open(void **out, const struct variant *v, size_t ring_bytes)
{
	const struct apq_config *cfg = v->arg;
	struct apq_queue *q = calloc(1, sizeof(*q));
	size_t bytes = apq_region_size(ring_bytes);
	int r;

	if (!q)
		return -ENOMEM;
	if (!bytes) {
		free(q);
		return -EINVAL;
	}
	/* aligned_alloc wants a multiple of the alignment. */
	q->mem_bytes = (bytes + 63) & ~(size_t)63;
	q->mem = aligned_alloc(64, q->mem_bytes);
	if (!q->mem) {
		free(q);
		return -ENOMEM;
	}
	/* Touch every page now, not in the first timed packets. */
	memset(q->mem, 0, q->mem_bytes);
	r = apq_region_init(q->mem, q->mem_bytes, ring_bytes);
	/* In one process one notifier serves both sides. */
	if (!r)
		r = apq_notifier_futex(&q->notifier);
	if (!r)
		r = apq_producer_attach(&q->p, q->mem, q->mem_bytes,
					q->notifier, cfg);
	if (!r)
		r = apq_consumer_attach(&q->c, q->mem, q->mem_bytes,
					q->notifier, cfg);
	if (r) {
		apq_q_close(q);
		return r;
	}
	*out = q;
	return 0;
}

static int apq_q_send(void *arg, const struct iovec *pkts, unsigned int n)
{
	struct apq_queue *q = arg;
	int r;

	/* Single sends go through apq_send() itself: that is what a
	 * one-packet-per-call user runs. */
	if (n == 1) {
		r = apq_send(q->p, pkts[0].iov_base, pkts[0].iov_len,
			     IO_TIMEOUT_NS);
		return r < 0 ? r : 1;
	}
	return apq_send_burst(q->p, pkts, n, IO_TIMEOUT_NS);
}

static int apq_q_recv(void *arg, struct iovec *bufs, unsigned int n)
{
	struct apq_queue *q = arg;
	ssize_t len;
	int r;

	if (n == 1) {
		len = apq_recv(q->c, bufs[0].iov_base, bufs[0].iov_len,
			       IO_TIMEOUT_NS);
		if (len == -EPIPE)
			return 0;
		if (len < 0)
			return (int)len;
		bufs[0].iov_len = (size_t)len;
		return 1;
	}
	r = apq_recv_burst(q->c, bufs, n, IO_TIMEOUT_NS);
	return r == -EPIPE ? 0 : r;
}

static void apq_counters(const struct apq_stats *s, struct side_counters *out)
{
	*out = (struct side_counters){
		.packets = s->packets,
		.wakeups = s->wakeups_sent,
		.sleeps = s->sleeps,
		.rescues = s->rescues,
	};
}

static void apq_q_producer_end(void *arg, struct side_counters *out)
{
	struct apq_queue *q = arg;
	struct apq_stats s;

	apq_producer_stats(q->p, &s);
	apq_counters(&s, out);
	/* The consumer sees -EPIPE once it has drained the ring. */
	apq_producer_detach(q->p);
	q->p = NULL;
}

static void apq_q_consumer_end(void *arg, struct side_counters *out)
{
	struct apq_queue *q = arg;
	struct apq_stats s;

	apq_consumer_stats(q->c, &s);
	apq_counters(&s, out);
	apq_consumer_detach(q->c);
	q->c = NULL;
}

static const struct impl impls[] = {
	{
		.name = "apq",
		.variants = apq_variants,
		.n_variants = sizeof(apq_variants) / sizeof(apq_variants[0]),
		.open = apq_q_open,
		.send = apq_q_send,
		.recv = apq_q_recv,
		.producer_end = apq_q_producer_end,
		.consumer_end = apq_q_consumer_end,
		.close = apq_q_close,
	},
};

#define N_IMPLS	(sizeof(impls) / sizeof(impls[0]))

/* ---- scenarios ---- */

struct scenario {
	const char *name;
	size_t size;		/* bytes per packet, >= 8 */
	unsigned int batch;	/* packets per send and recv call */
	unsigned int processes;	/* 1: both threads in this process */
	uint64_t rate;		/* packets/s offered; 0: unpaced */
};

/* Unpaced, in one process; paced and two-process scenarios come with the
 * comparison against other queues. */
static const struct scenario scenarios[] = {
	{ "single-8", 8, 1, 1, 0 },
	{ "single-64", 64, 1, 1, 0 },
	{ "single-1500", 1500, 1, 1, 0 },
	{ "burst32-8", 8, 32, 1, 0 },
	{ "burst32-64", 64, 32, 1, 0 },
	{ "burst32-1500", 1500, 32, 1, 0 },
};

#define N_SCENARIOS	(sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- results ---- */

struct run_result {
	double pps;
	double wakeups_per_pkt;
	double consumer_cpu;	/* consumer CPU seconds per wall second */
	uint64_t sent;		/* packets the producer got into the queue */
	uint64_t received;	/* packets the consumer got out */
	uint64_t bad;		/* packets out of sequence or damaged */
	struct side_counters prod, cons;
	int err;		/* the first error, negative errno */
	const char *err_where;
};

struct row {
	const struct impl *impl;
	const struct variant *variant;
	const struct scenario *scen;
	const struct row *baseline;	/* same impl and scenario; or NULL */
	struct run_result *runs;
	unsigned int n_runs;		/* done so far */
	/* Over the runs: */
	double pps_med, pps_min, pps_max;
	double wpp_med, cpu_med;
	bool failed;
};

/* ---- one run ---- */

struct run_ctx {
	const struct impl *impl;
	const struct scenario *scen;
	void *q;
	int64_t duration_ns;
	pthread_barrier_t start;
	struct run_result *res;
	int64_t cons_wall_ns;
	int64_t cons_cpu_ns;
	int prod_err, cons_err;
	const char *prod_where, *cons_where;
};

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* Number packet seq: its first 8 bytes, and from 16 bytes up its last 8
 * bytes as ~seq, so that a torn or stale packet shows at either end. */
static void pkt_stamp(unsigned char *buf, size_t size, uint64_t seq)
{
	uint64_t tail = ~seq;

	memcpy(buf, &seq, sizeof(seq));
	if (size >= 2 * sizeof(seq))
		memcpy(buf + size - sizeof(tail), &tail, sizeof(tail));
}

static bool pkt_valid(const unsigned char *buf, size_t len, size_t size,
		      uint64_t seq)
{
	uint64_t head, tail;

	if (len != size)
		return false;
	memcpy(&head, buf, sizeof(head));
	if (head != seq)
		return false;
	if (size < 2 * sizeof(seq))
		return true;
	memcpy(&tail, buf + size - sizeof(tail), sizeof(tail));
	return tail == ~seq;
}

static void *producer_main(void *arg)
{
	struct run_ctx *rc = arg;
	const struct scenario *sc = rc->scen;
	unsigned char bufs[BATCH_MAX][SIZE_MAX_PKT];
	struct iovec iov[BATCH_MAX];
	uint64_t seq = 0, calls = 0;
	unsigned int i;
	int64_t end;
	int r;

	for (i = 0; i < sc->batch; i++) {
		memset(bufs[i], 0x5a, sc->size);
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sc->size };
	}
	pthread_barrier_wait(&rc->start);
	end = clock_ns(CLOCK_MONOTONIC) + rc->duration_ns;
	for (;;) {
		if (++calls % CALLS_PER_CLOCK_READ == 0 &&
		    clock_ns(CLOCK_MONOTONIC) >= end)
			break;
		/* Numbered afresh each call, from the first number not yet
		 * sent: a burst that took only some leaves no gap. */
		for (i = 0; i < sc->batch; i++)
			pkt_stamp(bufs[i], sc->size, seq + i);
		r = rc->impl->send(rc->q, iov, sc->batch);
		if (r <= 0) {
			rc->prod_err = r < 0 ? r : -EIO;
			rc->prod_where = "send";
			break;
		}
		seq += (unsigned int)r;
	}
	rc->res->sent = seq;
	rc->impl->producer_end(rc->q, &rc->res->prod);
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct run_ctx *rc = arg;
	const struct scenario *sc = rc->scen;
	unsigned char bufs[BATCH_MAX][SIZE_MAX_PKT];
	struct iovec iov[BATCH_MAX];
	uint64_t want = 0, got = 0, bad = 0, head;
	int64_t wall0, cpu0;
	unsigned int i;
	int r;

	for (i = 0; i < sc->batch; i++)
		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = sc->size };
	pthread_barrier_wait(&rc->start);
	wall0 = clock_ns(CLOCK_MONOTONIC);
	cpu0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
	for (;;) {
		r = rc->impl->recv(rc->q, iov, sc->batch);
		if (r == 0)
			break;		/* end of stream */
		if (r < 0) {
			rc->cons_err = r;
			rc->cons_where = "recv";
			break;
		}
		for (i = 0; i < (unsigned int)r; i++) {
			if (!pkt_valid(bufs[i], iov[i].iov_len, sc->size,
				       want)) {
				bad++;
				/* Resynchronise, so that one loss counts
				 * once, not for every packet after it. */
				memcpy(&head, bufs[i], sizeof(head));
				want = head;
			}
			want++;
			iov[i].iov_len = sc->size;
		}
		got += (unsigned int)r;
	}
	rc->cons_wall_ns = clock_ns(CLOCK_MONOTONIC) - wall0;
	rc->cons_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
	rc->res->received = got;
	rc->res->bad = bad;
	rc->impl->consumer_end(rc->q, &rc->res->cons);
	return NULL;
}

/* The two CPUs to pin to, or -1 when there are fewer than two. */
struct placement {
	int producer_cpu;
	int consumer_cpu;
};

static struct placement placement_pick(void)
{
	struct placement pl = { -1, -1 };
	cpu_set_t set;
	int cpu, found = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return pl;
	for (cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (found++ == 0)
			pl.producer_cpu = cpu;
		else
			pl.consumer_cpu = cpu;
	}
	if (found < 2)
		pl = (struct placement){ -1, -1 };
	return pl;
}

/* Start fn pinned to cpu (if cpu >= 0), so that it never runs elsewhere. */
static int thread_start(pthread_t *t, int cpu, void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int r;

	r = pthread_attr_init(&attr);
	if (r)
		return -r;
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		r = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	if (!r)
		r = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return -r;
}

static void run_once(const struct row *row, const struct placement *pl,
		     int64_t duration_ns, size_t ring_bytes,
		     struct run_result *res)
{
	struct run_ctx rc = {
		.impl = row->impl,
		.scen = row->scen,
		.duration_ns = duration_ns,
		.res = res,
	};
	pthread_t prod, cons;
	int r;

	*res = (struct run_result){ 0 };
	/* Paced and two-process runs are not written yet: a scenario that
	 * asks for one must fail, not report an unpaced in-process run. */
	if (row->scen->processes != 1 || row->scen->rate != 0) {
		res->err = -ENOTSUP;
		res->err_where = "scenario";
		return;
	}
	r = row->impl->open(&rc.q, row->variant, ring_bytes);
	if (r) {
		res->err = r;
		res->err_where = "open";
		return;
	}
	r = -pthread_barrier_init(&rc.start, NULL, 2);
	if (r) {
		res->err = r;
		res->err_where = "pthread_barrier_init";
		row->impl->close(rc.q);
		return;
	}
	r = thread_start(&cons, pl->consumer_cpu, consumer_main, &rc);
	if (r) {
		res->err = r;
		res->err_where = "pthread_create";
		goto out;
	}
	r = thread_start(&prod, pl->producer_cpu, producer_main, &rc);
	if (r) {
		/* The consumer waits at the barrier for good: a run that
		 * cannot start its threads ends the program. */
		fprintf(stderr, "apq-bench: pthread_create: %s\n", strerror(-r));
		exit(1);
	}
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
	if (rc.prod_err) {
		res->err = rc.prod_err;
		res->err_where = rc.prod_where;
	} else if (rc.cons_err) {
		res->err = rc.cons_err;
		res->err_where = rc.cons_where;
	}
	if (rc.cons_wall_ns > 0) {
		res->pps = (double)res->received * NS_PER_SEC /
			   (double)rc.cons_wall_ns;
		res->consumer_cpu = (double)rc.cons_cpu_ns /
				    (double)rc.cons_wall_ns;
	}
	if (res->prod.packets)
		res->wakeups_per_pkt = (double)res->prod.wakeups /
				       (double)res->prod.packets;
out:
	pthread_barrier_destroy(&rc.start);
	row->impl->close(rc.q);
}

/* ---- summaries ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n), n >= 1; sorts v. */
static double median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static bool run_ok(const struct run_result *r)
{
	return !r->err && !r->bad && r->sent == r->received;
}

static void row_summarise(struct row *row)
{
	static double pps[REPEAT_MAX], wpp[REPEAT_MAX], cpu[REPEAT_MAX];
	unsigned int i;

	row->failed = false;
	for (i = 0; i < row->n_runs; i++) {
		pps[i] = row->runs[i].pps;
		wpp[i] = row->runs[i].wakeups_per_pkt;
		cpu[i] = row->runs[i].consumer_cpu;
		if (!run_ok(&row->runs[i]))
			row->failed = true;
	}
	row->pps_med = median(pps, row->n_runs);
	row->pps_min = pps[0];
	row->pps_max = pps[row->n_runs - 1];
	row->wpp_med = median(wpp, row->n_runs);
	row->cpu_med = median(cpu, row->n_runs);
}

/* this / baseline; NAN when there is nothing to compare against. */
static double ratio(double x, double base)
{
	return base > 0 ? x / base : NAN;
}

static double row_wakeup_ratio(const struct row *row)
{
	return row->baseline ? ratio(row->wpp_med, row->baseline->wpp_med)
			     : NAN;
}

static double row_pps_ratio(const struct row *row)
{
	return row->baseline ? ratio(row->pps_med, row->baseline->pps_med)
			     : NAN;
}

/* ---- options ---- */

struct options {
	double duration;	/* seconds per run */
	unsigned int repeat;
	size_t ring_bytes;
	const char *json;
	const char *policies;	/* comma-separated, or NULL for all */
	const char *scenarios;
	bool self_check;
};

/* Whether name is an item of the comma-separated list (NULL: everything). */
static bool listed(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p = list;

	if (!list)
		return true;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == len && strncmp(p, name, len) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

/* ---- the table and the JSON ---- */

/* Ratios span from 1e-6 (wakeups almost gone) to 10: %g keeps 3 digits. */
static void print_ratio(double x, int width, const char *suffix)
{
	char buf[32];

	if (isnan(x))
		snprintf(buf, sizeof(buf), "-");
	else
		snprintf(buf, sizeof(buf), "%.3g%s", x, suffix);
	printf(" %*s", width, buf);
}

static void print_header(const struct placement *pl, const struct options *o)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);

	printf("apq-bench: ");
	if (pl->producer_cpu >= 0)
		printf("producer on CPU %d, consumer on CPU %d", pl->producer_cpu,
		       pl->consumer_cpu);
	else
		printf("fewer than 2 CPUs usable: threads not pinned");
	printf(" (%ld online); ring %zu bytes; %u run%s x %.2f s per row, "
	       "interleaved\n", online, o->ring_bytes, o->repeat,
	       o->repeat == 1 ? "" : "s", o->duration);
	printf("  Mpkt/s: median [min..max] over the runs; wk/pkt: wakeups the "
	       "producer sent per packet;\n"
	       "  cons-cpu: consumer CPU seconds per second; vs-always: this "
	       "row's median / the ALWAYS_NOTIFY row's,\n"
	       "  same scenario, this invocation.  A noisy machine: compare "
	       "rows, not absolute numbers.\n\n");
	printf("%-5s %-10s %-13s %7s %17s %9s %8s %12s %13s\n", "impl",
	       "policy", "scenario", "Mpkt/s", "[min..max]", "wk/pkt",
	       "cons-cpu", "wk-vs-always", "pps-vs-always");
}

static void print_row(const struct row *row)
{
	char range[32];

	snprintf(range, sizeof(range), "[%.3f..%.3f]", row->pps_min / 1e6,
		 row->pps_max / 1e6);
	printf("%-5s %-10s %-13s %7.3f %17s %9.3g %8.2f", row->impl->name,
	       row->variant->name, row->scen->name, row->pps_med / 1e6, range,
	       row->wpp_med, row->cpu_med);
	print_ratio(row_wakeup_ratio(row), 12, "");
	print_ratio(row_pps_ratio(row), 13, "x");
	if (row->failed)
		printf("  FAILED");
	printf("\n");
}

/* A JSON number; JSON has no NaN or infinity, so those become null. */
static void json_number(FILE *f, const char *key, double x)
{
	if (isfinite(x))
		fprintf(f, "\"%s\": %.10g", key, x);
	else
		fprintf(f, "\"%s\": null", key);
}

/* Our names are identifiers, but a string is escaped all the same. */
static void json_string(FILE *f, const char *key, const char *s)
{
	fprintf(f, "\"%s\": \"", key);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_row(FILE *f, const struct row *row, const struct options *o)
{
	uint64_t sent = 0, received = 0, bad = 0;
	unsigned int i;

	for (i = 0; i < row->n_runs; i++) {
		sent += row->runs[i].sent;
		received += row->runs[i].received;
		bad += row->runs[i].bad;
	}
	fprintf(f, "  {");
	json_string(f, "impl", row->impl->name);
	fprintf(f, ", ");
	json_string(f, "policy", row->variant->name);
	fprintf(f, ", ");
	json_string(f, "scenario", row->scen->name);
	fprintf(f, ", \"processes\": %u, \"rate\": %" PRIu64
		", \"size\": %zu, \"batch\": %u, ", row->scen->processes,
		row->scen->rate, row->scen->size, row->scen->batch);
	json_number(f, "pps", row->pps_med);
	fprintf(f, ", ");
	json_number(f, "pps_min", row->pps_min);
	fprintf(f, ", ");
	json_number(f, "pps_max", row->pps_max);
	fprintf(f, ", ");
	json_number(f, "wakeups_per_pkt", row->wpp_med);
	fprintf(f, ", ");
	json_number(f, "consumer_cpu", row->cpu_med);
	fprintf(f, ", ");
	json_number(f, "wakeups_vs_baseline", row_wakeup_ratio(row));
	fprintf(f, ", ");
	json_number(f, "pps_vs_baseline", row_pps_ratio(row));
	fprintf(f, ", \"runs\": %u, ", row->n_runs);
	json_number(f, "duration", o->duration);
	fprintf(f, ", \"packets_offered\": %" PRIu64
		", \"packets_arrived\": %" PRIu64 ", \"packets_bad\": %" PRIu64
		", \"ok\": %s}", sent, received, bad,
		row->failed ? "false" : "true");
}

static int json_write(const char *path, const struct row *rows, size_t n,
		      const struct options *o)
{
	FILE *f = fopen(path, "w");
	size_t i;

	if (!f)
		return -errno;
	fprintf(f, "[\n");
	for (i = 0; i < n; i++) {
		json_row(f, &rows[i], o);
		fprintf(f, "%s\n", i + 1 < n ? "," : "");
	}
	fprintf(f, "]\n");
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

/* ---- self-check ---- */

/*
 * Stricter than the table's FAILED: every offered packet arrived, in order,
 * and the queue's own counters agree with the harness's, no lost wakeup was
 * caught, and every row has its baseline.  @return the number of problems.
 */
static unsigned int self_check(const struct row *rows, size_t n)
{
	unsigned int problems = 0, i;
	size_t k;

	for (k = 0; k < n; k++) {
		const struct row *row = &rows[k];

		if (!row->baseline) {
			fprintf(stderr, "self-check: %s %s %s: no baseline row\n",
				row->impl->name, row->variant->name,
				row->scen->name);
			problems++;
		}
		for (i = 0; i < row->n_runs; i++) {
			const struct run_result *r = &row->runs[i];

			if (run_ok(r) && r->prod.packets == r->sent &&
			    r->cons.packets == r->received && r->sent > 0 &&
			    r->pps > 0 && !r->prod.rescues && !r->cons.rescues)
				continue;
			fprintf(stderr,
				"self-check: %s %s %s run %u: offered %" PRIu64
				", arrived %" PRIu64 ", bad %" PRIu64
				", counted %" PRIu64 "/%" PRIu64
				", rescues %" PRIu64 "/%" PRIu64 "%s%s%s\n",
				row->impl->name, row->variant->name,
				row->scen->name, i + 1, r->sent, r->received,
				r->bad, r->prod.packets, r->cons.packets,
				r->prod.rescues, r->cons.rescues,
				r->err ? ", " : "", r->err ? r->err_where : "",
				r->err ? ": failed" : "");
			problems++;
		}
	}
	return problems;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apq-bench [--duration S] [--repeat N] [--quick | --smoke]\n"
		"                 [--policy LIST] [--scenario LIST] [--ring BYTES]\n"
		"                 [--json FILE] [--self-check]\n"
		"\n"
		"Unpaced producer->consumer throughput through apq between two pinned\n"
		"threads, per wakeup policy and packet size, with wakeups per packet and\n"
		"consumer CPU, each compared against ALWAYS_NOTIFY.\n"
		"\n"
		"  --duration S     seconds per run (default 1)\n"
		"  --repeat N       runs per row, interleaved (default 3)\n"
		"  --quick          0.2 s x 3 runs: the whole table in under 30 s\n"
		"  --smoke          a tiny preset for tests: 2 scenarios, 0.1 s x 2\n"
		"  --policy LIST    comma-separated: adaptive,spin-2us,spin-50us,always,busy\n"
		"  --scenario LIST  comma-separated: single-8,single-64,single-1500,\n"
		"                   burst32-8,burst32-64,burst32-1500\n"
		"  --ring BYTES     ring size, a power of two >= 4096 (default 262144)\n"
		"  --json FILE      also write the rows as a JSON array of objects\n"
		"  --self-check     exit nonzero unless every packet offered arrived in\n"
		"                   order and the queue's counters agree\n"
		"\n"
		"Exit status: 0; 1 if a run failed or lost packets (or --self-check\n"
		"found a problem); 2 on a usage error.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "duration", required_argument, NULL, 'd' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "quick", no_argument, NULL, 'q' },
		{ "smoke", no_argument, NULL, 'S' },
		{ "policy", required_argument, NULL, 'p' },
		{ "scenario", required_argument, NULL, 's' },
		{ "ring", required_argument, NULL, 'R' },
		{ "json", required_argument, NULL, 'j' },
		{ "self-check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	double duration = 0;
	unsigned long repeat = 0, ring;
	char *end;
	int c;

	*o = (struct options){
		.duration = 1.0,
		.repeat = 3,
		.ring_bytes = 256 * 1024,
	};
	while ((c = getopt_long(argc, argv, "d:r:qSp:s:R:j:ch", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'd':
			errno = 0;
			duration = strtod(optarg, &end);
			if (errno || *end || !(duration > 0) || duration > 3600)
				goto bad;
			break;
		case 'r':
			errno = 0;
			repeat = strtoul(optarg, &end, 10);
			if (errno || *end || repeat < 1 || repeat > REPEAT_MAX)
				goto bad;
			break;
		case 'q':
			o->duration = 0.2;
			o->repeat = 3;
			break;
		case 'S':
			o->duration = 0.1;
			o->repeat = 2;
			o->scenarios = "single-64,burst32-1500";
			break;
		case 'p':
			o->policies = optarg;
			break;
		case 's':
			o->scenarios = optarg;
			break;
		case 'R':
			errno = 0;
			ring = strtoul(optarg, &end, 0);
			if (errno || *end || apq_region_size(ring) == 0)
				goto bad;
			o->ring_bytes = ring;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'c':
			o->self_check = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "apq-bench: unexpected argument: %s\n",
			argv[optind]);
		return -1;
	}
	/* Explicit values win over the presets, whatever the order. */
	if (duration > 0)
		o->duration = duration;
	if (repeat)
		o->repeat = (unsigned int)repeat;
	return 0;
bad:
	fprintf(stderr, "apq-bench: bad value for --%s: %s\n",
		c == 'd' ? "duration" : c == 'r' ? "repeat" : "ring", optarg);
	return -1;
}

/* The rows the options select, baselines linked.  @return the count. */
static size_t rows_build(struct row **out, const struct options *o)
{
	size_t n = 0, max = 0, i, v, s, k;
	struct row *rows;

	for (i = 0; i < N_IMPLS; i++)
		max += impls[i].n_variants * N_SCENARIOS;
	rows = calloc(max, sizeof(*rows));
	if (!rows)
		return 0;
	for (i = 0; i < N_IMPLS; i++) {
		const struct impl *im = &impls[i];

		for (v = 0; v < im->n_variants; v++) {
			if (!listed(o->policies, im->variants[v].name))
				continue;
			for (s = 0; s < N_SCENARIOS; s++) {
				if (!listed(o->scenarios, scenarios[s].name))
					continue;
				rows[n++] = (struct row){
					.impl = im,
					.variant = &im->variants[v],
					.scen = &scenarios[s],
				};
			}
		}
	}
	for (k = 0; k < n; k++)
		for (i = 0; i < n; i++)
			if (rows[i].impl == rows[k].impl &&
			    rows[i].scen == rows[k].scen &&
			    rows[i].variant->baseline)
				rows[k].baseline = &rows[i];
	*out = rows;
	return n;
}

static void progress(size_t done, size_t total, const struct row *row,
		     unsigned int rep, unsigned int repeat, bool tty)
{
	if (tty) {
		fprintf(stderr, "\r[%3zu/%3zu] %s %s %s, run %u/%u\033[K", done + 1,
			total, row->impl->name, row->variant->name,
			row->scen->name, rep + 1, repeat);
	} else if (done % (total / repeat) == 0) {
		/* Not a terminal: a line per round, not per run. */
		fprintf(stderr, "apq-bench: round %u/%u (%zu runs)\n", rep + 1,
			repeat, total / repeat);
	}
}

int main(int argc, char **argv)
{
	struct placement pl;
	struct options o;
	struct row *rows;
	size_t n, k, done = 0;
	unsigned int rep, problems = 0;
	bool tty = isatty(STDERR_FILENO), failed = false;
	int r;

	if (parse_options(argc, argv, &o))
		return 2;
	n = rows_build(&rows, &o);
	if (n == 0) {
		fprintf(stderr, "apq-bench: no rows: check --policy and "
			"--scenario\n");
		return 2;
	}
	for (k = 0; k < n; k++) {
		rows[k].runs = calloc(o.repeat, sizeof(*rows[k].runs));
		if (!rows[k].runs) {
			fprintf(stderr, "apq-bench: out of memory\n");
			return 1;
		}
	}
	pl = placement_pick();

	for (rep = 0; rep < o.repeat; rep++) {
		for (k = 0; k < n; k++, done++) {
			progress(done, n * o.repeat, &rows[k], rep, o.repeat,
				 tty);
			run_once(&rows[k], &pl, (int64_t)(o.duration * NS_PER_SEC),
				 o.ring_bytes, &rows[k].runs[rep]);
			rows[k].n_runs++;
		}
	}
	if (tty)
		fprintf(stderr, "\r\033[K");

	for (k = 0; k < n; k++)
		row_summarise(&rows[k]);
	print_header(&pl, &o);
	for (k = 0; k < n; k++) {
		print_row(&rows[k]);
		failed |= rows[k].failed;
	}
	if (o.json) {
		r = json_write(o.json, rows, n, &o);
		if (r) {
			fprintf(stderr, "apq-bench: %s: %s\n", o.json,
				strerror(-r));
			failed = true;
		}
	}
	if (o.self_check) {
		problems = self_check(rows, n);
		printf("\nself-check: %s (%zu rows x %u runs)\n",
		       problems ? "FAILED" : "ok", n, o.repeat);
	}
	for (k = 0; k < n; k++)
		free(rows[k].runs);
	free(rows);
	return failed || problems ? 1 : 0;
}
