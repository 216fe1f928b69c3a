/* SPDX-License-Identifier: MIT */
/*
 * xen-test - the Xen backend on a real hypervisor, inside dom0.
 *
 * boot-xen.sh boots Xen under QEMU and runs this program as dom0's init's
 * child, as root, with /dev/xen/{evtchn,gntalloc,gntdev} present.  Each
 * scenario forks two processes, F (frontend) and B (backend), that open
 * their Xen handles after the fork and follow the flow of <apq/xen.h> with
 * dom0 granting to itself (domid 0): F binds unbound ports and shares the
 * regions, hands the ports and grant references to B through a pipe, and B
 * binds interdomain and maps them.  The parent only orchestrates: it tells
 * the children when to go on, kills one of them where a scenario says so,
 * and collects their statistics and verdicts through a second pipe.
 *
 *   stream       F produces, B consumes: content-checked packets of random
 *                sizes (the ring wraps hundreds of times); first an idle
 *                phase in which the producer pauses, so the consumer must
 *                sleep and be woken by an event, then a saturated phase in
 *                which nearly every wakeup must be skipped.
 *   pingpong     request/response over two regions; B answers zero-copy
 *                (peek/reserve/commit/release); every wait is bounded, so
 *                a lost wakeup shows as a stall.
 *   kill-*       SIGKILL one side while the other blocks with an infinite
 *                timeout (a consumer on an empty ring, a producer on a full
 *                one); the survivor must get -EPIPE within KILL_BOUND_NS.
 *                Each of F and B is killed once as producer and once as
 *                consumer.
 *   detach-*     a producer detaches with packets still queued (staying
 *                alive, or exiting before the consumer drains); the
 *                consumer must get every packet, then -EPIPE.  A consumer
 *                detaches while the producer blocks on a full ring.
 *
 * Every endpoint's statistics end in the parent, which asserts rescues == 0
 * everywhere.  The last line is "APQ-XEN-RESULT: PASS ..." or
 * "APQ-XEN-RESULT: FAIL <reason>"; the exit status is 0 or 1.
 *
 * APQ_SEED=<n> replays a run (the seed is printed).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>
#include <apq/xen.h>

#define DOM0		0u
#define MAX_REGIONS	2
#define MAX_REFS	64

#define STREAM_RING	16384u
#define STREAM_IDLE	300u		/* packets with pauses */
#define STREAM_SAT	50000u		/* packets back to back */
#define PP_RING		4096u
#define PP_ROUNDS	2000u
#define SMALL_RING	4096u
#define DETACH_RING	16384u
#define DETACH_PKTS	40u		/* of at most DETACH_MAX: they all fit */
#define DETACH_MAX	256u

#define MS		INT64_C(1000000)
#define STALL_NS	(10000 * MS)	/* a wait this long is a stall */
#define KILL_SETTLE_NS	(100 * MS)	/* let the survivor fall asleep */
#define KILL_BOUND_NS	(1000 * MS)	/* -EPIPE after a kill, at most */
#define SCENARIO_NS	(30000 * MS)	/* a whole scenario, at most */
#define KILL_REPS	3		/* runs of each kill scenario */

/* A packet starts with this header; the rest is pattern[] from an offset
 * that the stream and sequence number give. */
struct pkt_hdr {
	uint64_t seq;
	uint32_t len;
	uint32_t check;
};
#define HDR		sizeof(struct pkt_hdr)
#define PATTERN_PERIOD	4096u
#define MAX_PKT		(STREAM_RING / 4)

enum stream_id { S_STREAM = 1, S_REQ, S_RESP, S_KILL, S_DETACH };

static uint64_t seed;
static unsigned char pattern[PATTERN_PERIOD + MAX_PKT];

static uint64_t mix(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t stream, uint64_t seq, uint64_t salt)
{
	return mix(seed ^ mix(stream << 48 ^ seq) ^ salt);
}

/* Length of packet seq of a stream: header only, near max (so records
 * straddle the ring's end and pads appear), or anything in between. */
static size_t pkt_len(enum stream_id s, uint64_t seq, size_t max)
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

static void pkt_fill(void *buf, enum stream_id s, uint64_t seq, size_t len)
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
static const char *pkt_bad(const void *buf, size_t len, enum stream_id s,
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

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000,
			       .tv_nsec = ns % 1000000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static const char *err_name(long r)
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

/* ------------------------------------------------------------------------
 * Child <-> parent messages: fixed size, below PIPE_BUF, so each write is
 * atomic.
 * --------------------------------------------------------------------- */

enum msg_type { MSG_READY = 1, MSG_EVENT, MSG_STATS, MSG_FAIL, MSG_DONE, MSG_EOF };

struct msg {
	int32_t type;
	int32_t value;		/* MSG_EVENT: a return value; MSG_STATS: 1 = phase */
	int64_t t_ns;		/* CLOCK_MONOTONIC, shared by all processes */
	struct apq_stats st;
	char text[96];
};

enum role { F = 0, B = 1 };
struct scenario_run;
static const char *const role_name[2] = { "F", "B" };

struct ctx {
	const struct scenario *sc;
	enum role role;
	int setup_fd;		/* F: write end; B: read end */
	int res_fd;		/* to the parent */
	int ctl_fd;		/* from the parent */
	struct apq_notifier *n[MAX_REGIONS];
	struct apq_xen_region *x[MAX_REGIONS];
};

struct scenario {
	const char *name;
	int nreg;
	size_t ring[MAX_REGIONS];
	void (*body)(struct ctx *c);
	int (*orchestrate)(struct scenario_run *r);
	enum role producer;	/* of region 0 */
	enum role victim;	/* killed, or the side that detaches */
	bool exits;		/* detach: the producer exits before the drain */
	int reps;		/* runs (0: one) */
	int kind;		/* kill-*: index into the delay statistics */
};

static void send_msg(struct ctx *c, enum msg_type type, int32_t value,
		     const struct apq_stats *st, const char *fmt, ...)
{
	struct msg m = { .type = type, .value = value, .t_ns = now_ns() };
	va_list ap;

	if (st)
		m.st = *st;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(m.text, sizeof(m.text), fmt, ap);
		va_end(ap);
	}
	if (write(c->res_fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
		_exit(3);
}

#define cfail(c, ...) do {						\
		send_msg(c, MSG_FAIL, 0, NULL, __VA_ARGS__);		\
		_exit(1);						\
	} while (0)

static void wait_go(struct ctx *c)
{
	char b;

	if (read(c->ctl_fd, &b, 1) != 1)
		cfail(c, "%s: lost the parent", role_name[c->role]);
}

static void send_pstats(struct ctx *c, const struct apq_producer *p,
			const char *tag, int phase)
{
	struct apq_stats st;

	if (apq_producer_stats(p, &st))
		cfail(c, "apq_producer_stats failed");
	send_msg(c, MSG_STATS, phase, &st, "%s.prod%s", role_name[c->role], tag);
}

static void send_cstats(struct ctx *c, const struct apq_consumer *k,
			const char *tag, int phase)
{
	struct apq_stats st;

	if (apq_consumer_stats(k, &st))
		cfail(c, "apq_consumer_stats failed");
	send_msg(c, MSG_STATS, phase, &st, "%s.cons%s", role_name[c->role], tag);
}

static struct apq_stats stats_delta(struct apq_stats a, const struct apq_stats *b)
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

/* ------------------------------------------------------------------------
 * Setup and teardown in each child: the flow of <apq/xen.h>.
 * --------------------------------------------------------------------- */

struct setup_msg {
	uint32_t port;
	uint32_t nrefs;
	uint32_t refs[MAX_REFS];
};

static void xen_setup(struct ctx *c)
{
	const struct scenario *sc = c->sc;
	struct setup_msg sm;
	int i, r;

	for (i = 0; i < sc->nreg; i++) {
		size_t nrefs = apq_xen_region_refs(sc->ring[i]);

		if (nrefs == 0 || nrefs > MAX_REFS)
			cfail(c, "apq_xen_region_refs(%zu) = %zu", sc->ring[i], nrefs);
		if (c->role == F) {
			r = apq_notifier_xen_unbound(&c->n[i], DOM0);
			if (r)
				cfail(c, "apq_notifier_xen_unbound: %s", err_name(r));
			r = apq_xen_region_share(&c->x[i], DOM0, sc->ring[i],
						 c->n[i], sm.refs);
			if (r)
				cfail(c, "apq_xen_region_share: %s", err_name(r));
			r = apq_notifier_xen_port(c->n[i]);
			if (r < 0)
				cfail(c, "apq_notifier_xen_port: %s", err_name(r));
			sm.port = (uint32_t)r;
			sm.nrefs = (uint32_t)nrefs;
			if (write(c->setup_fd, &sm, sizeof(sm)) != (ssize_t)sizeof(sm))
				cfail(c, "F: cannot pass the refs");
		} else {
			if (read(c->setup_fd, &sm, sizeof(sm)) != (ssize_t)sizeof(sm))
				cfail(c, "B: no refs from F");
			if (sm.nrefs != nrefs)
				cfail(c, "B: %u refs, expected %zu", sm.nrefs, nrefs);
			r = apq_notifier_xen_interdomain(&c->n[i], DOM0, sm.port);
			if (r)
				cfail(c, "apq_notifier_xen_interdomain(port %u): %s",
				      sm.port, err_name(r));
			r = apq_xen_region_map(&c->x[i], DOM0, sc->ring[i],
					       sm.refs, c->n[i]);
			if (r)
				cfail(c, "apq_xen_region_map: %s", err_name(r));
		}
		if (!apq_xen_region_mem(c->x[i]) ||
		    apq_xen_region_bytes(c->x[i]) < apq_region_size(sc->ring[i]))
			cfail(c, "region %d: no memory or too small", i);
	}
}

static void xen_teardown(struct ctx *c)
{
	int i;

	for (i = 0; i < c->sc->nreg; i++) {
		apq_xen_region_free(c->x[i]);
		apq_notifier_free(c->n[i]);
		c->x[i] = NULL;
		c->n[i] = NULL;
	}
}

static struct apq_producer *attach_p(struct ctx *c, int i)
{
	struct apq_producer *p;
	int r = apq_producer_attach(&p, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], NULL);

	if (r)
		cfail(c, "%s: apq_producer_attach(region %d): %s",
		      role_name[c->role], i, err_name(r));
	return p;
}

static struct apq_consumer *attach_c(struct ctx *c, int i)
{
	struct apq_consumer *k;
	int r = apq_consumer_attach(&k, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], NULL);

	if (r)
		cfail(c, "%s: apq_consumer_attach(region %d): %s",
		      role_name[c->role], i, err_name(r));
	return k;
}

static void send_checked(struct ctx *c, struct apq_producer *p,
			 enum stream_id s, uint64_t seq, size_t len)
{
	unsigned char buf[MAX_PKT];
	int r;

	pkt_fill(buf, s, seq, len);
	r = apq_send(p, buf, len, STALL_NS);
	if (r)
		cfail(c, "%s: apq_send(seq %" PRIu64 ", %zu B): %s%s",
		      role_name[c->role], seq, len, err_name(r),
		      r == -ETIMEDOUT ? " (stall: the ring stayed full)" : "");
}

static void recv_checked(struct ctx *c, struct apq_consumer *k,
			 enum stream_id s, uint64_t seq, size_t want_len)
{
	unsigned char buf[MAX_PKT];
	ssize_t len = apq_recv(k, buf, sizeof(buf), STALL_NS);
	const char *bad;

	if (len < 0)
		cfail(c, "%s: apq_recv(seq %" PRIu64 "): %s%s",
		      role_name[c->role], seq, err_name(len),
		      len == -ETIMEDOUT ? " (stall: a wakeup was lost?)" : "");
	bad = pkt_bad(buf, (size_t)len, s, seq, want_len);
	if (bad)
		cfail(c, "%s: packet %" PRIu64 ": %s", role_name[c->role], seq, bad);
}

/* The consumer's end of a stream: -EPIPE now and on the next call. */
static void expect_epipe(struct ctx *c, struct apq_consumer *k, const char *what)
{
	unsigned char buf[MAX_PKT];
	ssize_t r = apq_recv(k, buf, sizeof(buf), STALL_NS);

	if (r != -EPIPE)
		cfail(c, "%s: %s: apq_recv gave %s, expected -EPIPE",
		      role_name[c->role], what, r >= 0 ? "a packet" : err_name(r));
	r = apq_recv(k, buf, sizeof(buf), 0);
	if (r != -EPIPE)
		cfail(c, "%s: %s: second apq_recv gave %s, expected -EPIPE again",
		      role_name[c->role], what, r >= 0 ? "a packet" : err_name(r));
}

/* ------------------------------------------------------------------------
 * Scenario bodies, run in each child after xen_setup().
 * --------------------------------------------------------------------- */

static void body_stream(struct ctx *c)
{
	struct apq_stats s0, s1;
	uint64_t seq;

	if (c->role == F) {
		struct apq_producer *p = attach_p(c, 0);

		for (seq = 0; seq < STREAM_IDLE + STREAM_SAT; seq++) {
			/* Idle phase: a pause before one packet in four,
			 * longer than any poll budget. */
			if (seq < STREAM_IDLE && hash3(S_STREAM, seq, 3) % 4 == 0)
				sleep_ns((int64_t)(500000 + hash3(S_STREAM, seq, 4) % 2500000));
			if (seq == STREAM_IDLE)
				apq_producer_stats(p, &s0);
			send_checked(c, p, S_STREAM, seq,
				     pkt_len(S_STREAM, seq, MAX_PKT));
		}
		apq_producer_stats(p, &s1);
		s1 = stats_delta(s1, &s0);
		send_msg(c, MSG_STATS, 1, &s0, "F.prod.idle");
		send_msg(c, MSG_STATS, 1, &s1, "F.prod.saturated");
		send_pstats(c, p, "", 0);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		for (seq = 0; seq < STREAM_IDLE + STREAM_SAT; seq++) {
			if (seq == STREAM_IDLE)
				apq_consumer_stats(k, &s0);
			recv_checked(c, k, S_STREAM, seq,
				     pkt_len(S_STREAM, seq, MAX_PKT));
		}
		apq_consumer_stats(k, &s1);
		s1 = stats_delta(s1, &s0);
		expect_epipe(c, k, "after the stream");
		send_msg(c, MSG_STATS, 1, &s0, "B.cons.idle");
		send_msg(c, MSG_STATS, 1, &s1, "B.cons.saturated");
		send_cstats(c, k, "", 0);
		apq_consumer_detach(k);
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Region 0 carries requests F -> B, region 1 responses B -> F. */
static void body_pingpong(struct ctx *c)
{
	static int64_t rtt[PP_ROUNDS];
	const size_t max = PP_RING / 4;
	uint64_t k;

	if (c->role == F) {
		struct apq_producer *p = attach_p(c, 0);
		struct apq_consumer *q = attach_c(c, 1);

		for (k = 0; k < PP_ROUNDS; k++) {
			int64_t t0;

			/* Now and then B must fall asleep waiting. */
			if (hash3(S_REQ, k, 3) % 16 == 0)
				sleep_ns(2 * MS);
			t0 = now_ns();
			send_checked(c, p, S_REQ, k, pkt_len(S_REQ, k, max));
			recv_checked(c, q, S_RESP, k, pkt_len(S_RESP, k, max));
			rtt[k] = now_ns() - t0;
		}
		send_pstats(c, p, "", 0);
		apq_producer_detach(p);
		expect_epipe(c, q, "after the last response");
		send_cstats(c, q, "", 0);
		apq_consumer_detach(q);
		qsort(rtt, PP_ROUNDS, sizeof(rtt[0]), cmp_i64);
		send_msg(c, MSG_EVENT, (int32_t)PP_ROUNDS, NULL,
			 "round trips %u: median %" PRId64 " us, p99 %" PRId64
			 " us, max %" PRId64 " us", PP_ROUNDS, rtt[PP_ROUNDS / 2] / 1000,
			 rtt[PP_ROUNDS * 99 / 100] / 1000, rtt[PP_ROUNDS - 1] / 1000);
	} else {
		struct apq_consumer *q = attach_c(c, 0);
		struct apq_producer *p = attach_p(c, 1);

		for (k = 0;; k++) {
			const void *req;
			void *resp;
			ssize_t len = apq_peek(q, &req, STALL_NS);
			size_t rl;
			const char *bad;
			int r;

			if (len == -EPIPE && k == PP_ROUNDS)
				break;
			if (len < 0)
				cfail(c, "B: apq_peek(request %" PRIu64 "): %s%s", k,
				      err_name(len),
				      len == -ETIMEDOUT ? " (stall)" : "");
			/* The peer could change the bytes under us: check a
			 * copy (there is no hostile peer here, but do as the
			 * header says). */
			{
				unsigned char copy[PP_RING / 4];

				if ((size_t)len > sizeof(copy))
					cfail(c, "B: request %" PRIu64 " too long", k);
				memcpy(copy, req, (size_t)len);
				bad = pkt_bad(copy, (size_t)len, S_REQ, k,
					      pkt_len(S_REQ, k, max));
			}
			if (bad)
				cfail(c, "B: request %" PRIu64 ": %s", k, bad);
			if (hash3(S_RESP, k, 3) % 16 == 0)
				sleep_ns(2 * MS);	/* F must sleep */
			rl = pkt_len(S_RESP, k, max);
			r = apq_reserve(p, rl, &resp, STALL_NS);
			if (r)
				cfail(c, "B: apq_reserve(%zu): %s", rl, err_name(r));
			pkt_fill(resp, S_RESP, k, rl);
			r = apq_commit(p, rl);
			if (r)
				cfail(c, "B: apq_commit: %s", err_name(r));
			r = apq_release(q);
			if (r)
				cfail(c, "B: apq_release: %s", err_name(r));
		}
		send_cstats(c, q, "", 0);
		send_pstats(c, p, "", 0);
		apq_consumer_detach(q);
		apq_producer_detach(p);
	}
}

/*
 * kill-*: the producer of region 0 is sc->producer, the victim sc->victim.
 * Both exchange three packets; then the survivor blocks without a timeout
 * (a consumer on the empty ring, a producer that fills the ring and then
 * blocks on it), and the parent kills the victim.
 */
static void body_kill(struct ctx *c)
{
	bool victim = c->role == c->sc->victim;
	unsigned char buf[MAX_PKT];
	struct apq_stats st;
	uint64_t seq;

	if (c->role == c->sc->producer) {
		struct apq_producer *p = attach_p(c, 0);
		size_t len = 200;
		int r;

		for (seq = 0; seq < 3; seq++)
			send_checked(c, p, S_KILL, seq, len);
		if (victim) {
			send_msg(c, MSG_READY, 0, NULL, NULL);
			for (;;)
				pause();
		}
		/* The consumer takes three packets and no more: the ring
		 * fills, and the send blocks. */
		pkt_fill(buf, S_KILL, seq, len);
		send_msg(c, MSG_READY, 0, NULL, NULL);
		while ((r = apq_send(p, buf, len, -1)) == 0)
			seq++;
		send_msg(c, MSG_EVENT, r, NULL, "%s: blocked apq_send (after %" PRIu64
			 " packets) returned %s", role_name[c->role], seq, err_name(r));
		r = apq_send(p, buf, len, 1000 * MS);
		if (r != -EPIPE)
			cfail(c, "%s: apq_send after the peer's death: %s, expected -EPIPE",
			      role_name[c->role], err_name(r));
		apq_producer_stats(p, &st);
		if (st.sleeps == 0)
			cfail(c, "%s: the producer never slept: the kill hit no sleeper",
			      role_name[c->role]);
		send_pstats(c, p, "", 0);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);
		ssize_t r;

		for (seq = 0; seq < 3; seq++)
			recv_checked(c, k, S_KILL, seq, 200);
		send_msg(c, MSG_READY, 0, NULL, NULL);
		if (victim)
			for (;;)
				pause();
		r = apq_recv(k, buf, sizeof(buf), -1);
		send_msg(c, MSG_EVENT, (int32_t)r, NULL,
			 "%s: blocked apq_recv returned %s", role_name[c->role],
			 r >= 0 ? "a packet" : err_name(r));
		r = apq_recv(k, buf, sizeof(buf), 1000 * MS);
		if (r != -EPIPE)
			cfail(c, "%s: apq_recv after the peer's death: %s, expected -EPIPE",
			      role_name[c->role], r >= 0 ? "a packet" : err_name(r));
		apq_consumer_stats(k, &st);
		if (st.sleeps == 0)
			cfail(c, "%s: the consumer never slept: the kill hit no sleeper",
			      role_name[c->role]);
		send_cstats(c, k, "", 0);
		apq_consumer_detach(k);
	}
}

/*
 * detach-producer-*: the producer sends DETACH_PKTS packets (they all fit in
 * the ring) and detaches; with sc->exits it also frees everything and exits.
 * Only then is the consumer told to drain: every packet, then -EPIPE.
 */
static void body_detach_producer(struct ctx *c)
{
	const size_t max = DETACH_MAX;
	uint64_t seq;

	if (c->role == c->sc->producer) {
		struct apq_producer *p = attach_p(c, 0);

		for (seq = 0; seq < DETACH_PKTS; seq++)
			send_checked(c, p, S_DETACH, seq, pkt_len(S_DETACH, seq, max));
		send_pstats(c, p, "", 0);
		apq_producer_detach(p);
		send_msg(c, MSG_EVENT, 0, NULL, "detached");
		if (!c->sc->exits)
			wait_go(c);	/* keep the region until the drain */
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		wait_go(c);
		for (seq = 0; seq < DETACH_PKTS; seq++)
			recv_checked(c, k, S_DETACH, seq, pkt_len(S_DETACH, seq, max));
		expect_epipe(c, k, "after the drain");
		send_cstats(c, k, "", 0);
		apq_consumer_detach(k);
	}
}

/* detach-consumer: the consumer detaches while the producer blocks on a
 * full ring. */
static void body_detach_consumer(struct ctx *c)
{
	unsigned char buf[MAX_PKT];

	if (c->role == c->sc->producer) {
		struct apq_producer *p = attach_p(c, 0);
		uint64_t seq = 0;
		int r;

		pkt_fill(buf, S_DETACH, 0, 300);
		while ((r = apq_send(p, buf, 300, 0)) == 0)
			seq++;
		if (r != -EAGAIN)
			cfail(c, "%s: filling the ring: %s", role_name[c->role], err_name(r));
		send_msg(c, MSG_READY, 0, NULL, NULL);
		r = apq_send(p, buf, 300, STALL_NS);
		send_msg(c, MSG_EVENT, r, NULL, "%s: blocked apq_send (ring full after %"
			 PRIu64 " packets) returned %s", role_name[c->role], seq,
			 err_name(r));
		send_pstats(c, p, "", 0);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		wait_go(c);
		send_cstats(c, k, "", 0);
		send_msg(c, MSG_EVENT, 0, NULL, "detaching");
		apq_consumer_detach(k);
		wait_go(c);	/* keep the region: only the detach tells */
	}
}

/* ------------------------------------------------------------------------
 * The parent: run a scenario, orchestrate, collect.
 * --------------------------------------------------------------------- */

struct totals {
	uint64_t packets, bytes, sent, skipped, sleeps, spurious, rescues;
	uint64_t round_trips;
	int64_t kill_min_ns[4], kill_max_ns[4];
	int nkill[4];
	int64_t detach_delay_ns;
	unsigned failures;
	char first_failure[256];
};
static struct totals tot;

struct scenario_run {
	const struct scenario *sc;
	pid_t pid[2];
	int res[2];		/* read ends; -1 once closed */
	int ctl[2];		/* write ends */
	bool done[2];
	bool may_die[2];
	/* The last message of each type from each child, so that a wait
	 * finds one that arrived while another was awaited. */
	struct msg last[2][MSG_EOF + 1];
	bool failed;
	int64_t deadline;
};

static void failure(struct scenario_run *r, const char *fmt, ...)
{
	char text[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	printf("xen-test: %s: FAIL: %s\n", r->sc->name, text);
	if (tot.failures++ == 0)
		snprintf(tot.first_failure, sizeof(tot.first_failure), "%s: %s",
			 r->sc->name, text);
	r->failed = true;
}

static void print_stats(const char *scn, const char *tag, const struct apq_stats *st)
{
	printf("xen-test: %s %-18s packets %6" PRIu64 " bytes %9" PRIu64
	       " wakeups sent %5" PRIu64 " skipped %6" PRIu64 " sleeps %5" PRIu64
	       " spurious %4" PRIu64 " rescues %" PRIu64 "\n", scn, tag,
	       st->packets, st->bytes, st->wakeups_sent, st->wakeups_skipped,
	       st->sleeps, st->spurious_wakeups, st->rescues);
}

/* Phase statistics of the stream: what the saturated phase must show. */
static struct apq_stats phase_prod_sat, phase_cons_sat, phase_prod_idle,
	phase_cons_idle;

static void absorb(struct scenario_run *r, int who, const struct msg *m)
{
	if (m->type > 0 && m->type <= MSG_EOF)
		r->last[who][m->type] = *m;
	switch (m->type) {
	case MSG_STATS:
		print_stats(r->sc->name, m->text, &m->st);
		if (m->st.rescues)
			failure(r, "%s: %" PRIu64 " rescues (lost wakeups caught)",
				m->text, m->st.rescues);
		if (m->value == 0) {
			tot.packets += m->st.packets;
			tot.bytes += m->st.bytes;
			tot.sent += m->st.wakeups_sent;
			tot.skipped += m->st.wakeups_skipped;
			tot.sleeps += m->st.sleeps;
			tot.spurious += m->st.spurious_wakeups;
			tot.rescues += m->st.rescues;
		} else if (!strcmp(m->text, "F.prod.saturated")) {
			phase_prod_sat = m->st;
		} else if (!strcmp(m->text, "B.cons.saturated")) {
			phase_cons_sat = m->st;
		} else if (!strcmp(m->text, "F.prod.idle")) {
			phase_prod_idle = m->st;
		} else if (!strcmp(m->text, "B.cons.idle")) {
			phase_cons_idle = m->st;
		}
		break;
	case MSG_FAIL:
		failure(r, "%s", m->text);
		break;
	case MSG_DONE:
		r->done[who] = true;
		break;
	case MSG_EOF:
		if (!r->done[who] && !r->may_die[who])
			failure(r, "%s died without a verdict", role_name[who]);
		break;
	default:
		break;
	}
}

/* Next message from either child.  @return 1 (a message, perhaps MSG_EOF),
 * 0 (both pipes closed), -ETIMEDOUT. */
static int next_msg(struct scenario_run *r, struct msg *m, int *who)
{
	for (;;) {
		struct pollfd pfd[2];
		int64_t left = r->deadline - now_ns();
		int i, n;

		if (r->res[F] < 0 && r->res[B] < 0)
			return 0;
		if (left <= 0)
			return -ETIMEDOUT;
		for (i = 0; i < 2; i++)
			pfd[i] = (struct pollfd){ .fd = r->res[i], .events = POLLIN };
		n = poll(pfd, 2, (int)(left / MS) + 1);
		if (n < 0 && errno != EINTR)
			return -errno;
		for (i = 0; n > 0 && i < 2; i++) {
			size_t got = 0;
			ssize_t k;

			if (r->res[i] < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			while (got < sizeof(*m)) {
				k = read(r->res[i], (char *)m + got, sizeof(*m) - got);
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					break;
				got += (size_t)k;
			}
			*who = i;
			if (got < sizeof(*m)) {
				close(r->res[i]);
				r->res[i] = -1;
				memset(m, 0, sizeof(*m));
				m->type = MSG_EOF;
				m->t_ns = now_ns();
			}
			return 1;
		}
	}
}

/* Absorb messages until `who` sends `type` (copied to *out).  @return 0, or
 * -1 after reporting why not. */
static int wait_for(struct scenario_run *r, int who, enum msg_type type,
		    struct msg *out, int64_t deadline)
{
	int64_t saved = r->deadline;
	struct msg m;
	int w, k;

	if (r->last[who][type].type == (int32_t)type) {
		*out = r->last[who][type];
		return 0;
	}
	if (deadline < r->deadline)
		r->deadline = deadline;
	for (;;) {
		k = next_msg(r, &m, &w);
		if (k <= 0)
			break;
		absorb(r, w, &m);
		if (m.type == MSG_FAIL)
			break;
		if (w == who && m.type == (int32_t)type) {
			*out = m;
			r->deadline = saved;
			return 0;
		}
		if (w == who && m.type == MSG_EOF) {
			k = 0;
			break;
		}
	}
	r->deadline = saved;
	if (k == -ETIMEDOUT)
		failure(r, "timed out waiting for %s", role_name[who]);
	else if (k == 0)
		failure(r, "%s ended before it reached the expected point",
			role_name[who]);
	return -1;
}

static void go(struct scenario_run *r, int who)
{
	if (write(r->ctl[who], "g", 1) != 1)
		failure(r, "cannot tell %s to go on", role_name[who]);
}

/* Absorb everything until both children closed their pipes. */
static int finish(struct scenario_run *r)
{
	struct msg m;
	int w, k;

	while ((k = next_msg(r, &m, &w)) > 0)
		absorb(r, w, &m);
	if (k < 0)
		failure(r, "timed out (%s%s still running)",
			r->res[F] >= 0 ? "F " : "", r->res[B] >= 0 ? "B" : "");
	return 0;
}

static int orch_plain(struct scenario_run *r)
{
	struct msg m;
	int w, k;

	while ((k = next_msg(r, &m, &w)) > 0) {
		absorb(r, w, &m);
		if (m.type == MSG_EVENT && m.text[0])
			printf("xen-test: %s %s\n", r->sc->name, m.text);
		if (m.type == MSG_EVENT && !strcmp(r->sc->name, "pingpong"))
			tot.round_trips += (uint64_t)m.value;
	}
	if (k < 0)
		failure(r, "timed out");
	return 0;
}

static int orch_kill(struct scenario_run *r)
{
	const struct scenario *sc = r->sc;
	enum role v = sc->victim, s = (enum role)!v;
	const char *what = s == sc->producer ? "producer blocked on a full ring"
					     : "consumer blocked on an empty ring";
	struct msg m;
	int64_t t_kill, delay;

	r->may_die[v] = true;
	if (wait_for(r, s, MSG_READY, &m, r->deadline) ||
	    wait_for(r, v, MSG_READY, &m, r->deadline))
		return finish(r);
	sleep_ns(KILL_SETTLE_NS);
	t_kill = now_ns();
	kill(r->pid[v], SIGKILL);
	if (wait_for(r, s, MSG_EVENT, &m, t_kill + 10 * KILL_BOUND_NS)) {
		failure(r, "%s: no return within %" PRId64 " ms of the kill", what,
			10 * KILL_BOUND_NS / MS);
		return finish(r);
	}
	delay = m.t_ns - t_kill;
	printf("xen-test: %s %s; SIGKILL of %s seen after %.2f ms\n", sc->name,
	       m.text, role_name[v], (double)delay / 1e6);
	if (m.value != -EPIPE)
		failure(r, "%s: returned %s, expected -EPIPE", what, err_name(m.value));
	else if (delay > KILL_BOUND_NS)
		failure(r, "%s: -EPIPE only after %.1f ms", what, (double)delay / 1e6);
	if (tot.nkill[sc->kind]++ == 0 || delay < tot.kill_min_ns[sc->kind])
		tot.kill_min_ns[sc->kind] = delay;
	if (delay > tot.kill_max_ns[sc->kind])
		tot.kill_max_ns[sc->kind] = delay;
	return finish(r);
}

static int orch_detach_producer(struct scenario_run *r)
{
	const struct scenario *sc = r->sc;
	enum role p = sc->producer, k = (enum role)!p;
	struct msg m;
	int status;

	if (wait_for(r, p, MSG_EVENT, &m, r->deadline))
		return finish(r);
	if (sc->exits) {
		/* Let the producer be gone, mappings and all. */
		if (wait_for(r, p, MSG_EOF, &m, r->deadline))
			return finish(r);
		waitpid(r->pid[p], &status, 0);
		r->pid[p] = 0;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			failure(r, "the producer %s did not exit cleanly", role_name[p]);
		printf("xen-test: %s producer %s detached, freed and exited; draining\n",
		       sc->name, role_name[p]);
	} else {
		printf("xen-test: %s producer %s detached; draining\n", sc->name,
		       role_name[p]);
	}
	go(r, k);
	if (!sc->exits) {
		if (wait_for(r, k, MSG_EOF, &m, r->deadline))
			return finish(r);
		go(r, p);
	}
	return finish(r);
}

static int orch_detach_consumer(struct scenario_run *r)
{
	const struct scenario *sc = r->sc;
	enum role p = sc->producer, k = (enum role)!p;
	struct msg m;
	int64_t t_detach, delay;

	if (wait_for(r, p, MSG_READY, &m, r->deadline))
		return finish(r);
	sleep_ns(KILL_SETTLE_NS);
	go(r, k);
	if (wait_for(r, k, MSG_EVENT, &m, r->deadline))
		return finish(r);
	t_detach = m.t_ns;
	if (wait_for(r, p, MSG_EVENT, &m, r->deadline))
		return finish(r);
	delay = m.t_ns - t_detach;
	tot.detach_delay_ns = delay;
	printf("xen-test: %s %s; consumer's detach seen after %.2f ms\n", sc->name,
	       m.text, (double)delay / 1e6);
	if (m.value != -EPIPE)
		failure(r, "blocked producer: %s, expected -EPIPE", err_name(m.value));
	go(r, k);
	return finish(r);
}

#define KILL(nm, prod, vict, k) {						\
		.name = nm, .nreg = 1, .ring = { SMALL_RING },		\
		.body = body_kill, .orchestrate = orch_kill,		\
		.producer = prod, .victim = vict, .reps = KILL_REPS,	\
		.kind = k }
#define DETACH_PRODUCER(nm, prod, ex) {					\
		.name = nm, .nreg = 1, .ring = { DETACH_RING },		\
		.body = body_detach_producer,				\
		.orchestrate = orch_detach_producer,			\
		.producer = prod, .victim = prod, .exits = ex }

static const struct scenario scenarios[] = {
	{ .name = "stream", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_stream, .orchestrate = orch_plain, .producer = F },
	{ .name = "pingpong", .nreg = 2, .ring = { PP_RING, PP_RING },
	  .body = body_pingpong, .orchestrate = orch_plain, .producer = F },
	/* The kinds index the delay statistics: keep them in this order,
	 * right after the two above. */
	KILL("kill-F-producer", F, F, 0),
	KILL("kill-B-consumer", F, B, 1),
	KILL("kill-B-producer", B, B, 2),
	KILL("kill-F-consumer", B, F, 3),
	DETACH_PRODUCER("detach-producer-F", F, false),
	DETACH_PRODUCER("detach-producer-F-exits", F, true),
	DETACH_PRODUCER("detach-producer-B-exits", B, true),
	{ .name = "detach-consumer-F", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_detach_consumer, .orchestrate = orch_detach_consumer,
	  .producer = B, .victim = F },
};

static void run_child(const struct scenario *sc, enum role role, int setup_fd,
		      int res_fd, int ctl_fd)
{
	struct ctx c = {
		.sc = sc, .role = role, .setup_fd = setup_fd,
		.res_fd = res_fd, .ctl_fd = ctl_fd,
	};

	signal(SIGPIPE, SIG_IGN);
	/* Every Xen handle is opened here, after the fork. */
	xen_setup(&c);
	sc->body(&c);
	xen_teardown(&c);
	send_msg(&c, MSG_DONE, 0, NULL, NULL);
	_exit(0);
}

static void run_scenario(const struct scenario *sc)
{
	struct scenario_run r = { .sc = sc, .res = { -1, -1 }, .ctl = { -1, -1 } };
	int setup[2], res[2][2], ctl[2][2];
	int64_t t0 = now_ns();
	int i, status;

	if (pipe(setup) || pipe(res[F]) || pipe(res[B]) || pipe(ctl[F]) || pipe(ctl[B])) {
		failure(&r, "pipe: %s", strerror(errno));
		return;
	}
	fflush(stdout);
	for (i = 0; i < 2; i++) {
		r.pid[i] = fork();
		if (r.pid[i] < 0) {
			failure(&r, "fork: %s", strerror(errno));
			r.pid[i] = 0;
			break;
		}
		if (r.pid[i] == 0) {
			close(res[i][0]);
			close(ctl[i][1]);
			close(res[!i][0]);
			close(res[!i][1]);
			close(ctl[!i][0]);
			close(ctl[!i][1]);
			if (i == F) {
				close(setup[0]);
				run_child(sc, F, setup[1], res[F][1], ctl[F][0]);
			}
			close(setup[1]);
			run_child(sc, B, setup[0], res[B][1], ctl[B][0]);
		}
	}
	close(setup[0]);
	close(setup[1]);
	for (i = 0; i < 2; i++) {
		close(res[i][1]);
		close(ctl[i][0]);
		r.res[i] = res[i][0];
		r.ctl[i] = ctl[i][1];
	}
	r.deadline = now_ns() + SCENARIO_NS;
	if (r.pid[F] && r.pid[B])
		sc->orchestrate(&r);
	for (i = 0; i < 2; i++) {
		if (r.res[i] >= 0)
			close(r.res[i]);
		close(r.ctl[i]);
		if (!r.pid[i])
			continue;
		/* Children end once their pipes closed; a stuck one is
		 * killed after a grace period. */
		while (waitpid(r.pid[i], &status, WNOHANG) == 0) {
			if (now_ns() > r.deadline + 2000 * MS) {
				kill(r.pid[i], SIGKILL);
				waitpid(r.pid[i], &status, 0);
				failure(&r, "%s did not exit", role_name[i]);
				break;
			}
			sleep_ns(5 * MS);
		}
		if (r.may_die[i])
			continue;
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			if (!r.failed)
				failure(&r, "%s exited with status %#x", role_name[i], status);
		}
	}
	printf("xen-test: %s %s in %.1f ms\n", sc->name, r.failed ? "FAILED" : "ok",
	       (double)(now_ns() - t0) / 1e6);
}

/* Assertions on the stream's phases, once it ran. */
static void check_stream_phases(void)
{
	struct scenario_run r = { .sc = &scenarios[0] };
	uint64_t n = phase_prod_sat.packets;
	uint64_t sent = phase_prod_sat.wakeups_sent + phase_cons_sat.wakeups_sent;

	printf("xen-test: stream idle phase: consumer slept %" PRIu64
	       " times, producer sent %" PRIu64 " wakeups for %" PRIu64 " packets\n",
	       phase_cons_idle.sleeps, phase_prod_idle.wakeups_sent,
	       phase_prod_idle.packets);
	printf("xen-test: stream: %" PRIu64 " bytes through a %u-byte ring: it wrapped %"
	       PRIu64 " times\n", phase_prod_idle.bytes + phase_prod_sat.bytes,
	       STREAM_RING, (phase_prod_idle.bytes + phase_prod_sat.bytes) / STREAM_RING);
	printf("xen-test: stream saturated phase: %" PRIu64 " packets, wakeups sent %"
	       PRIu64 " (producer %" PRIu64 ", consumer %" PRIu64 "), skipped %"
	       PRIu64 " (producer %" PRIu64 ", consumer %" PRIu64 ")\n", n, sent,
	       phase_prod_sat.wakeups_sent, phase_cons_sat.wakeups_sent,
	       phase_prod_sat.wakeups_skipped + phase_cons_sat.wakeups_skipped,
	       phase_prod_sat.wakeups_skipped, phase_cons_sat.wakeups_skipped);
	if (n != STREAM_SAT)
		return;	/* the stream failed already */
	if (phase_cons_idle.sleeps == 0 || phase_prod_idle.wakeups_sent == 0)
		failure(&r, "idle phase: the consumer never slept, or was never woken");
	if (phase_prod_sat.wakeups_skipped == 0)
		failure(&r, "saturated phase: the producer skipped no wakeup");
	if (sent * 10 > n)
		failure(&r, "saturated phase: %" PRIu64 " wakeups for %" PRIu64
			" packets (more than 1 in 10)", sent, n);
}

int main(void)
{
	const char *s = getenv("APQ_SEED");
	size_t i;
	int64_t t0 = now_ns();

	setvbuf(stdout, NULL, _IOLBF, 0);
	seed = s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)mix(seed ^ i);
	printf("xen-test: seed %" PRIu64 " (APQ_SEED=%" PRIu64 " replays it)\n", seed, seed);

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		int rep;

		for (rep = 0; rep < (scenarios[i].reps ? scenarios[i].reps : 1); rep++)
			run_scenario(&scenarios[i]);
		if (i == 0)
			check_stream_phases();
	}
	for (i = 0; i < 4; i++)
		printf("xen-test: %s: -EPIPE %.2f to %.2f ms after SIGKILL (%d runs)\n",
		       scenarios[2 + i].name, (double)tot.kill_min_ns[i] / 1e6,
		       (double)tot.kill_max_ns[i] / 1e6, tot.nkill[i]);

	printf("xen-test: total over all endpoints: packets %" PRIu64 " bytes %" PRIu64
	       " wakeups sent %" PRIu64 " skipped %" PRIu64 " sleeps %" PRIu64
	       " spurious %" PRIu64 " rescues %" PRIu64 "\n", tot.packets, tot.bytes,
	       tot.sent, tot.skipped, tot.sleeps, tot.spurious, tot.rescues);
	printf("xen-test: %u scenarios in %.1f ms\n",
	       (unsigned)(sizeof(scenarios) / sizeof(scenarios[0])),
	       (double)(now_ns() - t0) / 1e6);
	if (tot.failures) {
		printf("APQ-XEN-RESULT: FAIL %s (%u failures)\n", tot.first_failure,
		       tot.failures);
		return 1;
	}
	printf("APQ-XEN-RESULT: PASS packets=%" PRIu64 " wakeups_sent=%" PRIu64
	       " wakeups_skipped=%" PRIu64 " sleeps=%" PRIu64 " rescues=%" PRIu64
	       " round_trips=%" PRIu64 " saturated_sent=%" PRIu64 "/%" PRIu64
	       " kill_epipe_max_ms=%.2f/%.2f/%.2f/%.2f detach_epipe_ms=%.2f\n",
	       tot.packets, tot.sent, tot.skipped, tot.sleeps, tot.rescues,
	       tot.round_trips,
	       phase_prod_sat.wakeups_sent + phase_cons_sat.wakeups_sent,
	       phase_prod_sat.packets,
	       (double)tot.kill_max_ns[0] / 1e6, (double)tot.kill_max_ns[1] / 1e6,
	       (double)tot.kill_max_ns[2] / 1e6, (double)tot.kill_max_ns[3] / 1e6,
	       (double)tot.detach_delay_ns / 1e6);
	return 0;
}
