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
 *
 * Each side measures itself (CPU, run-queue wait, futex syscalls) from the
 * common start to its end; the main thread measures the machine around the
 * run (other load, steal).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

struct thr_ctx {
	const struct bench_impl *impl;
	const struct scenario *sc;
	void *q;
	int64_t t0;		/* packet timestamps count from here */
	int64_t duration_ns;
	pthread_barrier_t start;
	struct run_result *res;
	const struct placement *pl;
	int prod_err, cons_err;
	const char *prod_where, *cons_where;
};

/* Sleep until t without spinning (the idle scenario's producer). */
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

static int produce_unpaced(struct thr_ctx *c, unsigned char **bufs,
			   struct iovec *iov, int64_t end, uint64_t *seq_out)
{
	const struct scenario *sc = c->sc;
	uint64_t seq = 0, calls = 0;
	unsigned int i;
	int r = 0;

	for (;; calls++) {
		int64_t ts = 0;

		if (calls % 64 == 0 && now_ns() >= end)
			break;
		/* Numbered afresh each call from the first number not yet
		 * sent: a burst that went only in part leaves no gap. */
		for (i = 0; i < sc->batch; i++) {
			uint64_t s = seq + i;

			if (s % LATENCY_SAMPLE == 0) {
				if (!ts)
					ts = stamp_time(c, now_ns());
				pkt_stamp(bufs[i], sc->size, s, ts);
			} else {
				pkt_stamp(bufs[i], sc->size, s, 0);
			}
		}
		r = c->impl->send(c->q, iov, sc->batch);
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
			 uint64_t *seq_out)
{
	const struct scenario *sc = c->sc;
	uint64_t k;
	int r = 0;

	for (k = 0;; k++) {
		int64_t due = start + scen_send_offset(sc, k);

		if (due >= end)
			break;
		pace_until(due);
		/* Latency counts from the actual send time: a producer that
		 * runs late does not charge its lateness to the queue. */
		pkt_stamp(bufs[0], sc->size, k, stamp_time(c, now_ns()));
		r = c->impl->send(c->q, iov, 1);
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
	pthread_barrier_wait(&c->start);
	side_begin(&probe);
	start = now_ns();
	end = start + c->duration_ns;
	if (!mem)
		;
	else if (sc->kind == SCEN_IDLE)
		sleep_until(end);
	else if (sc->rate > 0)
		r = produce_paced(c, bufs, iov, start, end, &seq);
	else
		r = produce_unpaced(c, bufs, iov, end, &seq);
	if (r) {
		c->prod_err = r;
		c->prod_where = "send";
	}
	c->res->sent = seq;
	c->impl->producer_end(c->q, &c->res->prod);
	side_end(&probe, &c->res->pm);
	free(mem);
	return NULL;
}

static void *consumer_main(void *arg)
{
	struct thr_ctx *c = arg;
	const struct scenario *sc = c->sc;
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
	pthread_barrier_wait(&c->start);
	side_begin(&probe);
	start = now_ns();
	for (;;) {
		int64_t now = 0, ts;

		if (!mem) {
			c->cons_err = -ENOMEM;
			c->cons_where = "malloc";
			break;
		}
		r = c->impl->recv(c->q, iov, sc->batch);
		if (r == 0)
			break;		/* the end of the stream */
		if (r < 0 || (unsigned int)r > sc->batch) {
			c->cons_err = r < 0 ? r : -ERANGE;
			c->cons_where = "recv";
			break;
		}
		for (i = 0; i < (unsigned int)r; i++) {
			if (!pkt_check(bufs[i], iov[i].iov_len, sc->size, want,
				       &ts)) {
				bad++;
				/* Resynchronise: one loss counts once. */
				want = pkt_seq_guess(bufs[i], iov[i].iov_len,
						     want);
			} else if (ts) {
				/* One clock read per call, as late as can
				 * be: right after the call returned. */
				if (!now)
					now = now_ns();
				hist_add(&res->lat,
					 (uint64_t)(now - (c->t0 + ts)));
			}
			want++;
			iov[i].iov_len = sc->size;
		}
		got += (unsigned int)r;
	}
	res->t_ns = now_ns() - start;
	res->received = got;
	res->bad = bad;
	c->impl->consumer_end(c->q, &res->cons);
	side_end(&probe, &res->cm);
	free(mem);
	return NULL;
}

/* Start fn pinned to cpu (if >= 0), so that it never runs elsewhere. */
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

static void fail(struct run_result *res, int err, const char *where)
{
	if (res->err)
		return;
	res->err = err;
	snprintf(res->where, sizeof(res->where), "%s", where);
}

void run_threads(const struct bench_impl *impl, const struct bench_variant *v,
		 const struct scenario *sc, const struct placement *pl,
		 int64_t duration_ns, size_t ring_bytes, struct run_result *res)
{
	struct thr_ctx c = {
		.impl = impl,
		.sc = sc,
		.duration_ns = duration_ns,
		.res = res,
		.pl = pl,
	};
	struct machine_cpu m0, m1;
	pthread_t prod, cons;
	int64_t w0, wall;
	double own;
	int r;

	memset(res, 0, sizeof(*res));
	r = impl->open(&c.q, v, ring_bytes, sc->size);
	if (r) {
		fail(res, r, "open");
		return;
	}
	r = -pthread_barrier_init(&c.start, NULL, 3);
	if (r) {
		fail(res, r, "pthread_barrier_init");
		impl->close(c.q);
		return;
	}
	c.t0 = now_ns();
	r = thread_start(&cons, pl->cpu[1], consumer_main, &c);
	if (r) {
		fail(res, r, "pthread_create");
		goto out;
	}
	r = thread_start(&prod, pl->cpu[0], producer_main, &c);
	if (r) {
		/* The consumer waits at the barrier for good. */
		fprintf(stderr, "apq-bench: pthread_create: %s\n", strerror(-r));
		exit(1);
	}
	pthread_barrier_wait(&c.start);
	machine_cpu_read(&m0);
	w0 = now_ns();
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);
	wall = now_ns() - w0;
	machine_cpu_read(&m1);
	if (c.prod_err)
		fail(res, c.prod_err, c.prod_where);
	if (c.cons_err)
		fail(res, c.cons_err, c.cons_where);
	if (wall > 0) {
		own = (double)(res->pm.cpu_ns + res->cm.cpu_ns);
		res->steal = (double)(m1.steal_ns - m0.steal_ns) / (double)wall;
		res->other_cpu = ((double)(m1.busy_ns - m0.busy_ns) - own) /
				 (double)wall;
		if (res->other_cpu < 0)
			res->other_cpu = 0;
	}
out:
	pthread_barrier_destroy(&c.start);
	impl->close(c.q);
}
