/* SPDX-License-Identifier: MIT */
/*
 * run-xproc.c - one run between two processes, through a two-process
 * adapter (struct bench_xproc_impl).
 *
 *   harness   setup(); fork two children; collect their reports through a
 *             pipe each (a child that hangs is killed after the duration
 *             plus a grace period); wait for them; teardown()
 *   child 0   stream: the producer.  ping-pong: the pinger, which sends a
 *             request on channel 0 and waits for its reply on channel 1
 *   child 1   stream: the consumer.  ping-pong: the echoer, which sends
 *             every request back as its reply
 *
 * Each child opens its endpoints after the fork, then both meet at a
 * rendezvous in a shared anonymous page, so that neither measures the
 * other's start-up.  Children are pinned to different CPUs when there are
 * two, and measure themselves (CPU, run-queue wait, futex syscalls of their
 * one thread) exactly as the threads of run-threads.c do.
 *
 * A ping-pong's latency is the round trip as the pinger sees it: from just
 * before its send to just after its receive of the reply.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "packet.h"

/* Past the duration, how long the harness waits for the children. */
#define GRACE_NS	(3 * BENCH_IO_TIMEOUT_NS)

/* The page both children see. */
struct rendezvous {
	int ready;		/* children that opened their endpoints */
	int failed;		/* one of them could not */
};

/* What a child reports through its pipe. */
struct child_report {
	int err;
	char where[48];
	uint64_t sent, received, bad;
	struct bench_counters ctr;	/* summed over its endpoints */
	struct side_measure m;
	int64_t t_ns;
	struct hist lat;
};

struct child_ctx {
	const struct bench_xproc_impl *im;
	const struct scenario *sc;
	void *shared;
	struct rendezvous *rv;
	int64_t t0, duration_ns;
	struct child_report *rep;
};

static void child_fail(struct child_report *rep, int err, const char *where)
{
	if (rep->err)
		return;
	rep->err = err;
	snprintf(rep->where, sizeof(rep->where), "%s", where);
}

static void counters_add(struct bench_counters *sum,
			 const struct bench_counters *c)
{
	sum->packets += c->packets;
	sum->wakeups += c->wakeups;
	sum->sleeps += c->sleeps;
	sum->rescues += c->rescues;
}

/* Both children opened their endpoints (true), or one could not. */
static bool rendezvous(struct rendezvous *rv, bool ok)
{
	struct timespec nap = { 0, 100 * 1000 };
	int64_t give_up = now_ns() + 2 * BENCH_IO_TIMEOUT_NS;

	if (!ok)
		__atomic_store_n(&rv->failed, 1, __ATOMIC_RELEASE);
	else
		__atomic_fetch_add(&rv->ready, 1, __ATOMIC_ACQ_REL);
	while (!__atomic_load_n(&rv->failed, __ATOMIC_ACQUIRE) &&
	       __atomic_load_n(&rv->ready, __ATOMIC_ACQUIRE) < 2) {
		if (now_ns() > give_up)
			return false;
		nanosleep(&nap, NULL);
	}
	return ok && !__atomic_load_n(&rv->failed, __ATOMIC_ACQUIRE);
}

static int64_t stamp_time(const struct child_ctx *c, int64_t t)
{
	return t - c->t0 > 0 ? t - c->t0 : 1;
}

/* Send one packet, copying or in place; lean: only its head (packet.h),
 * but for ts != 0, which gets the whole stamp. */
static int xsend(const struct child_ctx *c, void *ep, unsigned char *buf,
		 uint64_t seq, int64_t ts, bool lean)
{
	const struct scenario *sc = c->sc;
	void *slot;
	int r;

	if (!sc->zero_copy) {
		if (lean && !ts)
			pkt_stamp_head(buf, seq);
		else
			pkt_stamp_full(buf, sc->size, seq, ts);
		return c->im->send(ep, buf, sc->size);
	}
	/* In place, the producer writes only what it has to say: the bytes
	 * in between are the zero-copy user's to fill, or not. */
	r = c->im->loan(ep, sc->size, &slot);
	if (r)
		return r;
	if (lean && !ts)
		pkt_stamp_head(slot, seq);
	else
		pkt_stamp_full(slot, sc->size, seq, ts);
	return c->im->publish(ep, sc->size);
}

/*
 * Receive one packet and check it.  @return 1 (*ts its send time, 0 if
 * none or bad), 0 at the end of the stream, -errno.  Lean: packets other
 * than one in LATENCY_SAMPLE carry only their head, and only that is
 * compared (run-threads.c's check_packets says what that catches).
 */
static int xrecv(const struct child_ctx *c, void *ep, unsigned char *buf,
		 uint64_t *want, uint64_t *bad, int64_t *ts, bool lean)
{
	const struct scenario *sc = c->sc;
	const void *pkt;
	uint64_t w = *want;
	ssize_t len;
	int r;

	*ts = 0;
	if (sc->zero_copy) {
		len = c->im->take(ep, &pkt);
	} else {
		len = c->im->recv(ep, buf, sc->size);
		pkt = buf;
	}
	if (len <= 0)
		return (int)len;
	*want = w + 1;
	if (lean && w % LATENCY_SAMPLE != 0 ?
	    !pkt_check_head(pkt, (size_t)len, sc->size, w) :
	    !pkt_check_full(pkt, (size_t)len, sc->size, w, ts)) {
		(*bad)++;
		*ts = 0;
		*want = (lean ? pkt_seq_guess_head(pkt, (size_t)len, w)
			      : pkt_seq_guess(pkt, (size_t)len, w)) + 1;
	}
	if (sc->zero_copy) {
		r = c->im->give_back(ep);
		if (r)
			return r;
	}
	return 1;
}

static void stream_producer(struct child_ctx *c, void *ep, unsigned char *buf,
			    int64_t start)
{
	const struct scenario *sc = c->sc;
	const bool lean = sc->rate <= 0;
	struct child_report *rep = c->rep;
	int64_t end = start + c->duration_ns;
	uint64_t k;
	int r = 0;

	for (k = 0;; k++) {
		int64_t ts = 0;

		if (!lean) {
			int64_t due = start + scen_send_offset(sc, k);

			if (due >= end)
				break;
			pace_until(due);
			ts = stamp_time(c, now_ns());
		} else {
			if (k % 64 == 0 && now_ns() >= end)
				break;
			if (k % LATENCY_SAMPLE == 0)
				ts = stamp_time(c, now_ns());
		}
		r = xsend(c, ep, buf, k, ts, lean);
		if (r) {
			child_fail(rep, r, sc->zero_copy ? "loan/publish"
							 : "send");
			break;
		}
	}
	rep->sent = k;
}

static void stream_consumer(struct child_ctx *c, void *ep, unsigned char *buf,
			    int64_t start)
{
	struct child_report *rep = c->rep;
	const bool lean = c->sc->rate <= 0;
	uint64_t want = 0;
	int64_t ts;
	int r;

	for (;;) {
		r = xrecv(c, ep, buf, &want, &rep->bad, &ts, lean);
		if (r == 0)
			break;
		if (r < 0) {
			child_fail(rep, r, c->sc->zero_copy ? "take/give_back"
							    : "recv");
			break;
		}
		rep->received++;
		if (ts)
			hist_add(&rep->lat, (uint64_t)(now_ns() - (c->t0 + ts)));
	}
	rep->t_ns = now_ns() - start;
}

static void pinger(struct child_ctx *c, void *req, void *rep_ep,
		   unsigned char *buf, int64_t start)
{
	const struct scenario *sc = c->sc;
	struct child_report *rep = c->rep;
	int64_t end = start + c->duration_ns, sent_at, ts;
	uint64_t k, want = 0;
	int r;

	for (k = 0;; k++) {
		if (sc->rate > 0) {
			int64_t due = start + scen_send_offset(sc, k);

			if (due >= end)
				break;
			pace_until(due);
		} else if (now_ns() >= end) {
			break;
		}
		sent_at = now_ns();
		r = xsend(c, req, buf, k, stamp_time(c, sent_at), false);
		if (r) {
			child_fail(rep, r, "send request");
			break;
		}
		rep->sent++;
		r = xrecv(c, rep_ep, buf, &want, &rep->bad, &ts, false);
		if (r <= 0) {
			child_fail(rep, r ? r : -EPIPE, "recv reply");
			break;
		}
		hist_add(&rep->lat, (uint64_t)(now_ns() - sent_at));
		rep->received++;
	}
	rep->t_ns = now_ns() - start;
}

static void echoer(struct child_ctx *c, void *req, void *rep_ep,
		   unsigned char *buf)
{
	const struct scenario *sc = c->sc;
	struct child_report *rep = c->rep;
	uint64_t want = 0;
	int64_t ts;
	int r;

	for (;;) {
		r = xrecv(c, req, buf, &want, &rep->bad, &ts, false);
		if (r == 0)
			break;
		if (r < 0) {
			child_fail(rep, r, "recv request");
			break;
		}
		rep->received++;
		/* The reply carries the request's number and time back. */
		r = xsend(c, rep_ep, buf, want - 1, ts, false);
		if (r) {
			child_fail(rep, r, "send reply");
			break;
		}
		rep->sent++;
	}
	(void)sc;
}

static void child_run(struct child_ctx *c, unsigned int role)
{
	const struct bench_xproc_impl *im = c->im;
	const struct scenario *sc = c->sc;
	struct child_report *rep = c->rep;
	bool pp = sc->kind == SCEN_PINGPONG;
	/* Endpoints: [0] this child's producer, [1] its consumer. */
	void *ep[2] = { NULL, NULL };
	struct bench_counters ctr;
	struct side_probe probe;
	unsigned char *buf = malloc(sc->size);
	int64_t start;
	bool ok = buf != NULL;
	int r;

	if (!buf)
		child_fail(rep, -ENOMEM, "malloc");
	else
		memset(buf, 0x5a, sc->size);
	/* Stream: child 0 produces on channel 0, child 1 consumes it.
	 * Ping-pong: child 0 also consumes channel 1, child 1 produces it. */
	if (ok && (role == 0 || pp)) {
		r = im->open_producer(c->shared, role, &ep[0]);
		if (r) {
			child_fail(rep, r, "open_producer");
			ep[0] = NULL;
			ok = false;
		}
	}
	if (ok && (role == 1 || pp)) {
		r = im->open_consumer(c->shared, role ? 0 : 1, &ep[1]);
		if (r) {
			child_fail(rep, r, "open_consumer");
			ep[1] = NULL;
			ok = false;
		}
	}
	if (!rendezvous(c->rv, ok)) {
		child_fail(rep, -ECANCELED, "rendezvous");
		ok = false;
	}
	side_begin(&probe);
	start = now_ns();
	if (!ok)
		;
	else if (!pp && role == 0)
		stream_producer(c, ep[0], buf, start);
	else if (!pp)
		stream_consumer(c, ep[1], buf, start);
	else if (role == 0)
		pinger(c, ep[0], ep[1], buf, start);
	else
		echoer(c, ep[1], ep[0], buf);
	/* The producer first: the stream's end is what the peer waits for. */
	if (ep[0]) {
		ctr = (struct bench_counters){ 0 };
		im->close_producer(ep[0], &ctr);
		counters_add(&rep->ctr, &ctr);
	}
	if (ep[1]) {
		/* The pinger drains the echoer's end of stream first. */
		if (ok && pp && role == 0 && !rep->err) {
			int64_t ts;
			uint64_t want = rep->received;

			r = xrecv(c, ep[1], buf, &want, &rep->bad, &ts, false);
			if (r != 0)
				child_fail(rep, r < 0 ? r : -EPROTO,
					   "end of replies");
		}
		ctr = (struct bench_counters){ 0 };
		im->close_consumer(ep[1], &ctr);
		counters_add(&rep->ctr, &ctr);
	}
	side_end(&probe, &rep->m);
	if (!rep->t_ns)
		rep->t_ns = rep->m.wall_ns;
	free(buf);
}

static int write_all(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static pid_t child_start(struct child_ctx *c, unsigned int role, int cpu,
			 int *rfd)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -errno;
	}
	if (pid == 0) {
		static struct child_report rep;

		close(fds[0]);
		pin_self(cpu);
		if (role == 0)
			pace_init();
		c->rep = &rep;
		child_run(c, role);
		_exit(write_all(fds[1], &rep, sizeof(rep)) ? 1 : 0);
	}
	close(fds[1]);
	*rfd = fds[0];
	return pid;
}

/* Read both reports, killing the children at the deadline. */
static int collect(const int *fd, const pid_t *pid, struct child_report *rep,
		   int64_t deadline)
{
	size_t got[2] = { 0, 0 };
	bool open[2] = { true, true };
	int err = 0;
	unsigned int i;

	while (open[0] || open[1]) {
		struct pollfd pfd[2];
		nfds_t n = 0;
		unsigned int which[2];
		int64_t left = deadline - now_ns();
		int r;

		if (left <= 0) {
			for (i = 0; i < 2; i++)
				if (open[i])
					kill(pid[i], SIGKILL);
			err = -ETIMEDOUT;
			break;
		}
		for (i = 0; i < 2; i++) {
			if (!open[i])
				continue;
			pfd[n] = (struct pollfd){ .fd = fd[i], .events = POLLIN };
			which[n++] = i;
		}
		r = poll(pfd, n, (int)(left / 1000000) + 1);
		if (r < 0 && errno != EINTR)
			return -errno;
		for (i = 0; r > 0 && i < n; i++) {
			unsigned int k = which[i];
			ssize_t rd;

			if (!pfd[i].revents)
				continue;
			rd = read(fd[k], (unsigned char *)&rep[k] + got[k],
				  sizeof(rep[k]) - got[k]);
			if (rd > 0)
				got[k] += (size_t)rd;
			else if (rd == 0 || errno != EINTR)
				open[k] = false;
		}
	}
	for (i = 0; i < 2 && !err; i++)
		if (got[i] != sizeof(rep[i]))
			err = -EPIPE;	/* the child died without a report */
	return err;
}

int run_xproc(const struct bench_xproc_impl *impl,
	      const struct bench_variant *v, const struct scenario *sc,
	      const struct placement *pl, int64_t duration_ns,
	      struct run_result *res, const char **why)
{
	static struct child_report rep[2];
	unsigned int channels = sc->kind == SCEN_PINGPONG ? 2 : 1;
	struct child_ctx c = {
		.im = impl,
		.sc = sc,
		.duration_ns = duration_ns,
	};
	struct machine_cpu m0, m1;
	pid_t pid[2] = { -1, -1 };
	int fd[2] = { -1, -1 };
	int64_t w0, wall;
	unsigned int i;
	int r, status;

	memset(res, 0, sizeof(*res));
	memset(rep, 0, sizeof(rep));
	*why = NULL;
	r = impl->setup(&c.shared, v, sc->size, channels, why);
	if (r == -ENOTSUP)
		return -ENOTSUP;
	if (r) {
		res->err = r;
		snprintf(res->where, sizeof(res->where), "setup");
		return 0;
	}
	c.rv = mmap(NULL, sizeof(*c.rv), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c.rv == MAP_FAILED) {
		res->err = -errno;
		snprintf(res->where, sizeof(res->where), "mmap");
		impl->teardown(c.shared);
		return 0;
	}
	memset(c.rv, 0, sizeof(*c.rv));
	c.t0 = now_ns();
	machine_cpu_read(&m0);
	w0 = now_ns();
	for (i = 0; i < 2; i++) {
		pid[i] = child_start(&c, i, pl->cpu[i], &fd[i]);
		if (pid[i] < 0) {
			res->err = (int)pid[i];
			snprintf(res->where, sizeof(res->where), "fork");
			/* The other child gives up at the rendezvous. */
			__atomic_store_n(&c.rv->failed, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	if (i == 2) {
		r = collect(fd, pid, rep, now_ns() + duration_ns + GRACE_NS);
		if (r) {
			res->err = r;
			snprintf(res->where, sizeof(res->where), "%s",
				 r == -ETIMEDOUT ? "children hung: killed"
						 : "child report");
		}
	}
	for (i = 0; i < 2; i++) {
		if (fd[i] >= 0)
			close(fd[i]);
		if (pid[i] <= 0)
			continue;
		if (waitpid(pid[i], &status, 0) == pid[i] && !res->err &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			res->err = -ECHILD;
			snprintf(res->where, sizeof(res->where),
				 "child %u exited abnormally", i);
		}
	}
	wall = now_ns() - w0;
	machine_cpu_read(&m1);
	munmap(c.rv, sizeof(*c.rv));
	impl->teardown(c.shared);

	for (i = 0; i < 2 && !res->err; i++) {
		if (rep[i].err) {
			res->err = rep[i].err;
			snprintf(res->where, sizeof(res->where), "%s %s",
				 i ? "consumer:" : "producer:", rep[i].where);
		}
	}
	/* Child 0 offered the stream (or the requests), child 1 received it
	 * (a ping-pong's round trips are child 0's to count). */
	res->sent = rep[0].sent;
	res->prod = rep[0].ctr;
	res->cons = rep[1].ctr;
	res->pm = rep[0].m;
	res->cm = rep[1].m;
	if (sc->kind == SCEN_PINGPONG) {
		res->received = rep[0].received;
		res->bad = rep[0].bad + rep[1].bad;
		res->lat = rep[0].lat;
		res->t_ns = rep[0].t_ns;
	} else {
		res->received = rep[1].received;
		res->bad = rep[1].bad;
		res->lat = rep[1].lat;
		res->t_ns = rep[1].t_ns;
	}
	if (wall > 0) {
		res->steal = (double)(m1.steal_ns - m0.steal_ns) / (double)wall;
		res->other_cpu = ((double)(m1.busy_ns - m0.busy_ns) -
				  (double)(res->pm.cpu_ns + res->cm.cpu_ns)) /
				 (double)wall;
		if (res->other_cpu < 0)
			res->other_cpu = 0;
	}
	return 0;
}
