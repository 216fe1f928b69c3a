/* SPDX-License-Identifier: MIT */
/*
 * run-threads.c - one run between a producer thread and a consumer thread of
 * this process, through an in-process adapter (struct bench_impl).
 *
 * The two threads are pinned to different CPUs when there are two (the
 * first two this process may use); the main thread only waits.  A run:
 *
 *   main       open the queue, start the threads, join them, close
 *   producer   stream packets until the duration is over (unpaced: back to
 *              back; paced: each at its due time; idle: none), then end
 *   consumer   receive until the end of the stream, checking every packet
 *              (unpaced: its head, and one in LATENCY_SAMPLE whole)
 *
 * Each side measures itself (CPU, run-queue wait, futex syscalls) from the
 * common start to its end, and the producer also its CPU inside the send
 * calls; the main thread measures the machine around the run (other load,
 * steal).
 *
 * A scenario with several pairs runs that many such pairs at once, each
 * with its own queue, none pinned, and sums their results into one.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "packet.h"

/* One pair's threads; the pairs of a run share the barrier and t0. */
struct thr_ctx {
	const struct bench_impl *impl;
	const struct scenario *sc;
	void *q;
	int64_t t0;		/* packet timestamps count from here */
	int64_t duration_ns;
	pthread_barrier_t *start;
	struct run_result *res;
	int prod_err, cons_err;
	const char *prod_where, *cons_where;
};

/*
 * The producer's CPU inside its send calls.  Reading the thread's CPU
 * clock is a syscall (over a microsecond in a VM) that costs more than a
 * send, and more after user code has run than back to back, so: one window
 * per CALL_SAMPLE_NS is measured, standing for the calls since the
 * previous one; unpaced, a window holds a block of 64 calls, so that the
 * reads' cost is spread thin; each window starts with a bare pair of
 * reads, whose length is taken off the window's.  In a VM one window in a
 * few hundred also holds tens of microseconds that are neither the call's
 * nor the reads' (the host's doing): a one-call window that long, or a
 * bare pair, is left out, and the other windows stand for its calls.  (A
 * send that spins that long waiting for space is left out alike.)
 */
#define CALL_NOISE_NS	20000

struct call_meter {
	int64_t last;		/* when the last window began */
	uint64_t since;		/* calls since the last window kept or not */
	uint64_t total;		/* all calls */
	uint64_t kept;		/* the calls the windows kept stand for */
	double sum;		/* CPU ns the kept windows stand for */
	int64_t c0, c1;		/* the window's bare pair of reads */
	int64_t lead;		/* how long the pair took, the last time */
};

/* Whether the calls due at time t are to be a window. */
static bool meter_due(struct call_meter *m, int64_t t)
{
	if (m->last != INT64_MIN && t - m->last < CALL_SAMPLE_NS)
		return false;
	m->last = t;
	return true;
}

/* Open the window: the bare pair of reads. */
static void meter_open(struct call_meter *m)
{
	m->c0 = thread_cpu_ns();
	m->c1 = thread_cpu_ns();
}

/* After n calls; measured: they were a window's. */
static void meter_calls(struct call_meter *m, uint64_t n, bool measured)
{
	int64_t bare, d;

	m->since += n;
	m->total += n;
	if (!measured)
		return;
	bare = m->c1 - m->c0;
	d = thread_cpu_ns() - m->c1 - bare;
	if (bare < CALL_NOISE_NS)
		m->lead = 2 * bare;
	if (bare < CALL_NOISE_NS && d < CALL_NOISE_NS * (int64_t)n) {
		m->sum += (double)d * (double)m->since / (double)n;
		m->kept += m->since;
	}
	m->since = 0;
}

static int64_t meter_total(const struct call_meter *m)
{
	if (m->sum <= 0 || !m->kept)
		return 0;
	return (int64_t)(m->sum * (double)m->total / (double)m->kept);
}

/* Sleep until t without spinning (the idle scenario's producer, and the
 * paced ones of several pairs). */
static void sleep_until(int64_t t)
{
	struct timespec ts = {
		.tv_sec = t / NS_PER_SEC,
		.tv_nsec = t % NS_PER_SEC,
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

/* A send time to put in a packet: never 0, which means "none". */
static int64_t stamp_time(const struct thr_ctx *c, int64_t t)
{
	return t - c->t0 > 0 ? t - c->t0 : 1;
}

/*
 * Unpaced, the loop is lean: each packet gets only its head (pkt_stamp_head),
 * but one in LATENCY_SAMPLE gets the whole stamp and a send time; the clock
 * is read once per 64 calls, for the end of the run and the call meter.
 */
static int produce_unpaced(struct thr_ctx *c, unsigned char **bufs,
			   struct iovec *iov, int64_t end,
			   struct call_meter *m, uint64_t *seq_out)
{
	const struct scenario *sc = c->sc;
	const unsigned int batch = sc->batch;
	const size_t size = sc->size;
	uint64_t seq = 0, calls = 0;
	bool sample = false;
	unsigned int i;
	int r = 0;

	for (;; calls++) {
		if (calls % 64 == 0) {
			int64_t now;

			if (calls)
				meter_calls(m, 64, sample);
			now = now_ns();
			if (now >= end)
				break;
			sample = meter_due(m, now);
			if (sample)
				meter_open(m);
		}
		/* Numbered afresh each call from the first number not yet
		 * sent: a burst that went only in part leaves no gap. */
		for (i = 0; i < batch; i++) {
			uint64_t s = seq + i;

			if (s % LATENCY_SAMPLE == 0)
				pkt_stamp_full(bufs[i], size, s,
					       stamp_time(c, now_ns()));
			else
				pkt_stamp_head(bufs[i], s);
		}
		r = c->impl->send(c->q, iov, batch);
		if (r <= 0) {
			r = r < 0 ? r : -EIO;
			break;
		}
		seq += (unsigned int)r;
		r = 0;
	}
	*seq_out = seq;
	return r;
}

static int produce_paced(struct thr_ctx *c, unsigned char **bufs,
			 struct iovec *iov, int64_t start, int64_t end,
			 struct call_meter *m, uint64_t *seq_out)
{
	const struct scenario *sc = c->sc;
	bool sample;
	uint64_t k;
	int r = 0;

	for (k = 0;; k++) {
		int64_t due = start + scen_send_offset(sc, k);

		if (due >= end)
			break;
		/* Several pairs share the CPUs: a spinning producer would
		 * take the time they compete for. */
		/* A measured call starts its reads early, so that the call
		 * itself still comes on time: a consumer that waits for it
		 * gives up no sooner than for the others. */
		sample = meter_due(m, due);
		if (sample)
			due -= m->lead;
		if (sc->pairs > 1)
			sleep_until(due);
		else
			pace_until(due);
		if (sample)
			meter_open(m);
		/* Latency counts from the actual send time: a producer that
		 * runs late does not charge its lateness to the queue. */
		pkt_stamp_full(bufs[0], sc->size, k, stamp_time(c, now_ns()));
		r = c->impl->send(c->q, iov, 1);
		meter_calls(m, 1, sample);
		if (r != 1) {
			r = r < 0 ? r : -EIO;
			break;
		}
		r = 0;
	}
	*seq_out = k;
	return r;
}

static void *producer_main(void *arg)
{
	struct thr_ctx *c = arg;
	const struct scenario *sc = c->sc;
	unsigned char *bufs[BATCH_MAX];
	struct iovec iov[BATCH_MAX];
	unsigned char *mem = malloc((size_t)sc->batch * sc->size);
	struct side_probe probe;
	struct call_meter meter = { .last = INT64_MIN };
	int64_t start, end;
	uint64_t seq = 0;
	unsigned int i;
	int r = 0;

	pace_init();
	if (!mem) {
		c->prod_err = -ENOMEM;
		c->prod_where = "malloc";
	} else {
		memset(mem, 0x5a, (size_t)sc->batch * sc->size);
	}
	for (i = 0; mem && i < sc->batch; i++) {
		bufs[i] = mem + (size_t)i * sc->size;
		iov[i] = (struct iovec){ .iov_base = bufs[i],
					 .iov_len = sc->size };
	}
	pthread_barrier_wait(c->start);
	side_begin(&probe);
	start = now_ns();
	end = start + c->duration_ns;
	if (!mem)
		;
	else if (sc->kind == SCEN_IDLE)
		sleep_until(end);
	else if (sc->rate > 0)
		r = produce_paced(c, bufs, iov, start, end, &meter, &seq);
	else
		r = produce_unpaced(c, bufs, iov, end, &meter, &seq);
	if (r) {
		c->prod_err = r;
		c->prod_where = "send";
	}
	c->res->sent = seq;
	c->res->call_cpu_ns = meter_total(&meter);
	c->impl->producer_end(c->q, &c->res->prod);
	side_end(&probe, &c->res->pm);
	free(mem);
	return NULL;
}

/*
 * Check packets [0, n) of a call, numbered from *want on.  Paced streams
 * (lean false) carry the whole stamp and a time in every packet; unpaced
 * ones only their head, but for one in LATENCY_SAMPLE (packet.h): the
 * head's compare catches a lost, repeated, reordered, stale or damaged
 * head in every packet, the whole check a damaged tail or length in the
 * sample.  A bad packet counts once and the numbering follows it.
 */
static void check_packets(struct thr_ctx *c, unsigned char **bufs,
			  struct iovec *iov, unsigned int n, bool lean,
			  uint64_t *want, uint64_t *bad)
{
	const size_t size = c->sc->size;
	int64_t now = 0, ts;
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t w = *want;
		size_t len = iov[i].iov_len;

		iov[i].iov_len = size;
		*want = w + 1;
		if (lean && w % LATENCY_SAMPLE != 0) {
			if (!pkt_check_head(bufs[i], len, size, w)) {
				(*bad)++;
				*want = pkt_seq_guess_head(bufs[i], len, w) + 1;
			}
		} else if (!pkt_check_full(bufs[i], len, size, w, &ts)) {
			(*bad)++;
			*want = (lean ? pkt_seq_guess_head(bufs[i], len, w)
				      : pkt_seq_guess(bufs[i], len, w)) + 1;
		} else if (ts) {
			/* One clock read per call, as late as can be: right
			 * after the call returned. */
			if (!now)
				now = now_ns();
			hist_add(&c->res->lat, (uint64_t)(now - (c->t0 + ts)));
		}
	}
}

static void *consumer_main(void *arg)
{
	struct thr_ctx *c = arg;
	const struct scenario *sc = c->sc;
	const bool lean = sc->rate <= 0;
	struct run_result *res = c->res;
	unsigned char *bufs[BATCH_MAX];
	struct iovec iov[BATCH_MAX];
	unsigned char *mem = malloc((size_t)sc->batch * sc->size);
	uint64_t want = 0, got = 0, bad = 0;
	struct side_probe probe;
	int64_t start;
	unsigned int i;
	int r;

	for (i = 0; mem && i < sc->batch; i++) {
		bufs[i] = mem + (size_t)i * sc->size;
		iov[i] = (struct iovec){ .iov_base = bufs[i],
					 .iov_len = sc->size };
	}
	pthread_barrier_wait(c->start);
	side_begin(&probe);
	start = now_ns();
	while (mem) {
		r = c->impl->recv(c->q, iov, sc->batch);
		if (r == 0)
			break;		/* the end of the stream */
		if (r < 0 || (unsigned int)r > sc->batch) {
			c->cons_err = r < 0 ? r : -ERANGE;
			c->cons_where = "recv";
			break;
		}
		check_packets(c, bufs, iov, (unsigned int)r, lean, &want,
			      &bad);
		got += (unsigned int)r;
	}
	if (!mem) {
		c->cons_err = -ENOMEM;
		c->cons_where = "malloc";
	}
	res->t_ns = now_ns() - start;
	res->received = got;
	res->bad = bad;
	c->impl->consumer_end(c->q, &res->cons);
	side_end(&probe, &res->cm);
	free(mem);
	return NULL;
}

static void fail(struct run_result *res, int err, const char *where)
{
	if (res->err)
		return;
	res->err = err;
	snprintf(res->where, sizeof(res->where), "%s", where);
}

static void side_add(struct side_measure *s, const struct side_measure *p)
{
	if (p->wall_ns > s->wall_ns)
		s->wall_ns = p->wall_ns;
	s->cpu_ns += p->cpu_ns;
	s->runq_ns += p->runq_ns;
	s->futex_wakes = s->futex_wakes < 0 || p->futex_wakes < 0
			 ? -1 : s->futex_wakes + p->futex_wakes;
	s->futex_calls = s->futex_calls < 0 || p->futex_calls < 0
			 ? -1 : s->futex_calls + p->futex_calls;
}

static void counters_add(struct bench_counters *s,
			 const struct bench_counters *p)
{
	s->packets += p->packets;
	s->wakeups += p->wakeups;
	s->sleeps += p->sleeps;
	s->rescues += p->rescues;
}

/* Sum one pair's result into the run's: CPU adds up over the longest
 * pair's wall time, so that CPU per second is the pairs' sum. */
static void result_add(struct run_result *r, const struct run_result *p)
{
	size_t b;

	r->sent += p->sent;
	r->received += p->received;
	r->bad += p->bad;
	counters_add(&r->prod, &p->prod);
	counters_add(&r->cons, &p->cons);
	side_add(&r->pm, &p->pm);
	side_add(&r->cm, &p->cm);
	r->call_cpu_ns += p->call_cpu_ns;
	if (p->t_ns > r->t_ns)
		r->t_ns = p->t_ns;
	r->lat.count += p->lat.count;
	if (p->lat.max > r->lat.max)
		r->lat.max = p->lat.max;
	for (b = 0; b < HIST_BUCKETS; b++)
		r->lat.b[b] += p->lat.b[b];
	if (p->err)
		fail(r, p->err, p->where);
}

void run_threads(const struct bench_impl *impl, const struct bench_variant *v,
		 const struct scenario *sc, const struct placement *pl,
		 int64_t duration_ns, size_t ring_bytes, struct run_result *res)
{
	unsigned int n = sc->pairs ? sc->pairs : 1, i, opened = 0;
	/* One pair writes straight into res; several, each into its own. */
	struct run_result *pr = n > 1 ? calloc(n, sizeof(*pr)) : res;
	struct thr_ctx *c = calloc(n, sizeof(*c));
	pthread_t *th = calloc(2 * (size_t)n, sizeof(*th));
	int cpu_p = n > 1 ? -1 : pl->cpu[0], cpu_c = n > 1 ? -1 : pl->cpu[1];
	struct machine_cpu m0, m1;
	pthread_barrier_t start;
	int64_t t0, w0, wall;
	double own;
	int r;

	memset(res, 0, sizeof(*res));
	if (!pr || !c || !th) {
		fail(res, -ENOMEM, "calloc");
		goto out;
	}
	for (opened = 0; opened < n; opened++) {
		c[opened] = (struct thr_ctx){
			.impl = impl,
			.sc = sc,
			.duration_ns = duration_ns,
			.start = &start,
			.res = &pr[opened],
		};
		r = impl->open(&c[opened].q, v, ring_bytes, sc->size);
		if (r) {
			fail(res, r, "open");
			goto out;
		}
	}
	r = -pthread_barrier_init(&start, NULL, 2 * n + 1);
	if (r) {
		fail(res, r, "pthread_barrier_init");
		goto out;
	}
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		c[i].t0 = t0;
		r = thread_start_pinned(&th[2 * i + 1], cpu_c, consumer_main, &c[i]);
		if (r && i == 0) {
			fail(res, r, "pthread_create");
			pthread_barrier_destroy(&start);
			goto out;
		}
		if (!r)
			r = thread_start_pinned(&th[2 * i], cpu_p, producer_main,
					 &c[i]);
		if (r) {
			/* The threads started wait at the barrier for good. */
			fprintf(stderr, "apq-bench: pthread_create: %s\n",
				strerror(-r));
			exit(1);
		}
	}
	pthread_barrier_wait(&start);
	machine_cpu_read(&m0);
	w0 = now_ns();
	for (i = 0; i < 2 * n; i++)
		pthread_join(th[i], NULL);
	wall = now_ns() - w0;
	machine_cpu_read(&m1);
	pthread_barrier_destroy(&start);
	for (i = 0; i < n; i++) {
		if (c[i].prod_err)
			fail(&pr[i], c[i].prod_err, c[i].prod_where);
		if (c[i].cons_err)
			fail(&pr[i], c[i].cons_err, c[i].cons_where);
		if (pr != res)
			result_add(res, &pr[i]);
	}
	if (wall > 0) {
		own = (double)(res->pm.cpu_ns + res->cm.cpu_ns);
		res->steal = (double)(m1.steal_ns - m0.steal_ns) / (double)wall;
		res->other_cpu = ((double)(m1.busy_ns - m0.busy_ns) - own) /
				 (double)wall;
		if (res->other_cpu < 0)
			res->other_cpu = 0;
	}
out:
	for (i = 0; c && i < opened; i++)
		impl->close(c[i].q);
	if (pr != res)
		free(pr);
	free(c);
	free(th);
}
