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
 *                sizes (the ring wraps over a thousand times); first an
 *                idle phase in which the producer pauses, so the consumer
 *                must sleep and be woken by an event, then a saturated
 *                phase in which nearly every wakeup must be skipped.
 *   stream-nospin  the same without polling (SPIN, 0 ns): every wait
 *                sleeps, the handshake runs as often as it can.
 *   stream-eventloop  the same stream, but the consumer blocks only in
 *                its own poll() on apq_notifier_xen_fd(): timeout-0
 *                receives, apq_consumer_arm(), poll, apq_notifier_ack().
 *   stream-always  ALWAYS_NOTIFY: a wakeup (an event) for every send.
 *   pingpong     request/response over two regions, one per direction;
 *                B answers zero-copy (peek/reserve/commit/release); every
 *                wait is bounded, so a lost wakeup shows as a stall.
 *   kill-*       SIGKILL one side while the other blocks with an infinite
 *                timeout (a consumer on an empty ring, a producer on a
 *                full one); the survivor must get -EPIPE within
 *                KILL_BOUND_NS.  Each of F and B is killed as producer and
 *                as consumer; kill-midstream-* kill F at full speed (the
 *                surviving consumer must get an intact prefix first);
 *                kill-F-producer-evtchn checks that the death raises the
 *                event channel itself (poll() on apq_notifier_xen_fd() of
 *                an armed consumer), and that the event loop's next
 *                timeout-0 calls then return -EPIPE.
 *   kill-F-unnotified  F publishes three packets without notifying and
 *                dies at once, while B sleeps: B must get them, then -EPIPE
 *                (the death's event must not cut the drain short).
 *   eventloop-backstop  B waits as an event loop, armed; F publishes a
 *                packet without notifying: the descriptor must still wake,
 *                at the backstop, and the loop find the packet.
 *   detach-*     a producer detaches with packets still queued (staying
 *                alive, or exiting before the consumer drains); the
 *                consumer must get every packet, then -EPIPE.  A consumer
 *                detaches while the producer blocks on a full ring.
 *
 * Every endpoint's statistics end in the parent, which asserts rescues == 0
 * everywhere except where a producer skips its wakeup on purpose: there the
 * backstop may legitimately find the packets before the death's event.  The last line is "APQ-XEN-RESULT: PASS ..." or
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
#include <xenevtchn.h>

#include "../testlib.h"
#include "xen-pkt.h"

#define DOM0		0u
#define MAX_REGIONS	2
#define MAX_REFS	64

#define STREAM_RING	16384u
#define STREAM_IDLE	300u		/* packets with pauses */
#define STREAM_SAT	30000u		/* packets back to back */
#define NOSPIN_PKTS	5000u		/* both sides sleep at once */
#define ALWAYS_PKTS	2000u		/* a wakeup per send */
#define PP_RING		4096u
#define PP_ROUNDS	1000u
#define SMALL_RING	4096u
#define DETACH_RING	16384u
#define DETACH_PKTS	40u		/* of at most DETACH_MAX: they all fit */
#define DETACH_MAX	256u

#define MS		PKT_MS
#define STALL_NS	(10000 * MS)	/* a wait this long is a stall */
/* Let the survivor fall asleep, for 80 to 130 ms: not in step with the
 * library's 50 ms backstop re-checks, so that a kill seen only by them
 * would show as delays spread over 0 to 50 ms. */
#define KILL_SETTLE_NS(seq) ((80 + (int64_t)(hash3(0, seq, 5) % 50)) * MS)
#define KILL_BOUND_NS	(1000 * MS)	/* -EPIPE after a kill, at most */
#define SCENARIO_NS	(120000 * MS)	/* a whole scenario, at most */
#define KILL_REPS	3		/* runs of each kill scenario */
#define NKILL		7		/* kill scenarios */

_Static_assert(MAX_PKT == STREAM_RING / 4,
	       "the stream's longest packets are a quarter of its ring");

/* ------------------------------------------------------------------------
 * Child <-> parent messages: fixed size, below PIPE_BUF, so each write is
 * atomic.
 * --------------------------------------------------------------------- */

enum msg_type {
	MSG_READY = 1,	/* at the point the parent waits for */
	MSG_EVENT,	/* value: a return value; t_ns: when it came */
	MSG_STATS,	/* value: 1 for a phase's, 0 for the endpoint's total */
	MSG_FAIL,	/* text: why; the child exits */
	MSG_DONE,	/* all passed; the child exits */
	MSG_INFO,	/* text to print */
	MSG_EOF,	/* made up by the parent: the child's pipe closed */
};

struct msg {
	int32_t type;
	int32_t value;		/* MSG_EVENT: a return value; MSG_STATS: 1 = phase */
	int64_t t_ns;		/* CLOCK_MONOTONIC, shared by all processes */
	struct apq_stats st;
	char text[160];
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
	/* storm*: F's own handle on region 0's port, to notify at will */
	xenevtchn_handle *xce;
	evtchn_port_t port;
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
	enum apq_policy policy;	/* of every endpoint */
	uint64_t spin_ns;
	unsigned n_idle, n_sat;	/* stream*: packets per phase */
	void (*check)(struct scenario_run *r);	/* after the run */
	bool event_fd;		/* kill: the survivor polls the notifier's fd */
	bool event_loop;	/* stream: the consumer blocks only in poll() */
	bool storm;		/* storm*: F notifies as fast as it can */
	bool unnotified;	/* a producer skips its wakeup on purpose */
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

/* An endpoint's totals to the parent; take them before the detach, which
 * frees the endpoint. */
static void send_pstats(struct ctx *c, const struct apq_producer *p)
{
	struct apq_stats st;

	if (apq_producer_stats(p, &st))
		cfail(c, "apq_producer_stats failed");
	send_msg(c, MSG_STATS, 0, &st, "%s.prod", role_name[c->role]);
}

static void send_cstats(struct ctx *c, const struct apq_consumer *k)
{
	struct apq_stats st;

	if (apq_consumer_stats(k, &st))
		cfail(c, "apq_consumer_stats failed");
	send_msg(c, MSG_STATS, 0, &st, "%s.cons", role_name[c->role]);
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
	struct setup_msg sm = { 0 };
	int i, r;

	for (i = 0; i < sc->nreg; i++) {
		size_t nrefs = apq_xen_region_refs(sc->ring[i]);

		if (nrefs == 0 || nrefs > MAX_REFS)
			cfail(c, "apq_xen_region_refs(%zu) = %zu", sc->ring[i], nrefs);
		if (c->role == F && sc->storm) {
			/* Our own handle, so that we can notify the port
			 * outside the protocol. */
			c->xce = xenevtchn_open(NULL, 0);
			r = c->xce ? xenevtchn_bind_unbound_port(c->xce, DOM0) : -1;
			if (r < 0)
				cfail(c, "F: binding a port of our own: %s",
				      strerror(errno));
			c->port = (evtchn_port_t)r;
			r = apq_notifier_xen_adopt(&c->n[i], c->xce, c->port);
			if (r)
				cfail(c, "apq_notifier_xen_adopt: %s", err_name(r));
		}
		if (c->role == F) {
			r = c->n[i] ? 0 : apq_notifier_xen_unbound(&c->n[i], DOM0);
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
	if (c->xce) {
		xenevtchn_unbind(c->xce, c->port);
		xenevtchn_close(c->xce);
		c->xce = NULL;
	}
}

static struct apq_producer *attach_p(struct ctx *c, int i)
{
	struct apq_config cfg = { .policy = c->sc->policy, .spin_ns = c->sc->spin_ns };
	struct apq_producer *p;
	int r = apq_producer_attach(&p, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], &cfg);

	if (r)
		cfail(c, "%s: apq_producer_attach(region %d): %s",
		      role_name[c->role], i, err_name(r));
	return p;
}

static struct apq_consumer *attach_c(struct ctx *c, int i)
{
	struct apq_config cfg = { .policy = c->sc->policy, .spin_ns = c->sc->spin_ns };
	struct apq_consumer *k;
	int r = apq_consumer_attach(&k, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], &cfg);

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
	ssize_t len = c->sc->event_loop
		? recv_event_loop(k, c->n[0], apq_notifier_xen_fd(c->n[0]), buf,
				  sizeof(buf), STALL_NS)
		: apq_recv(k, buf, sizeof(buf), STALL_NS);
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

/*
 * stream*: sc->n_idle packets, a pause before one in four, then sc->n_sat
 * back to back.  Statistics per phase go to the parent as well.
 */
static void body_stream(struct ctx *c)
{
	const uint64_t n_idle = c->sc->n_idle, n = n_idle + c->sc->n_sat;
	struct apq_stats s0 = { 0 }, s1;
	uint64_t seq;

	if (c->role == F) {
		struct apq_producer *p = attach_p(c, 0);

		for (seq = 0; seq < n; seq++) {
			/* Idle phase: a pause before one packet in four,
			 * longer than any poll budget. */
			if (seq < n_idle && hash3(S_STREAM, seq, 3) % 4 == 0)
				sleep_ns((int64_t)(500000 + hash3(S_STREAM, seq, 4) % 2500000));
			if (seq == n_idle && seq)
				apq_producer_stats(p, &s0);
			send_checked(c, p, S_STREAM, seq,
				     pkt_len(S_STREAM, seq, MAX_PKT));
		}
		apq_producer_stats(p, &s1);
		s1 = stats_delta(s1, &s0);
		send_msg(c, MSG_STATS, 1, &s0, "F.prod.idle");
		send_msg(c, MSG_STATS, 1, &s1, "F.prod.saturated");
		send_pstats(c, p);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		for (seq = 0; seq < n; seq++) {
			if (seq == n_idle && seq)
				apq_consumer_stats(k, &s0);
			recv_checked(c, k, S_STREAM, seq,
				     pkt_len(S_STREAM, seq, MAX_PKT));
		}
		apq_consumer_stats(k, &s1);
		s1 = stats_delta(s1, &s0);
		expect_epipe(c, k, "after the stream");
		send_msg(c, MSG_STATS, 1, &s0, "B.cons.idle");
		send_msg(c, MSG_STATS, 1, &s1, "B.cons.saturated");
		send_cstats(c, k);
		apq_consumer_detach(k);
	}
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
		send_pstats(c, p);
		apq_producer_detach(p);
		expect_epipe(c, q, "after the last response");
		send_cstats(c, q);
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
		send_cstats(c, q);
		send_pstats(c, p);
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
		send_pstats(c, p);
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
		send_cstats(c, k);
		apq_consumer_detach(k);
	}
}

/*
 * kill-midstream-*: a stream runs at full speed when the parent kills one
 * side.  A surviving consumer must get an intact prefix of the stream, then
 * -EPIPE; a surviving producer -EPIPE once the ring is full.
 */
static void body_midstream(struct ctx *c)
{
	bool victim = c->role == c->sc->victim;
	unsigned char buf[MAX_PKT];
	uint64_t seq;
	int r;

	if (c->role == c->sc->producer) {
		struct apq_producer *p = attach_p(c, 0);

		send_msg(c, MSG_READY, 0, NULL, NULL);
		for (seq = 0;; seq++) {
			size_t len = pkt_len(S_STREAM, seq, MAX_PKT);

			pkt_fill(buf, S_STREAM, seq, len);
			r = apq_send(p, buf, len, victim ? -1 : STALL_NS);
			if (r)
				break;
		}
		if (victim)
			cfail(c, "%s: the victim's apq_send failed: %s",
			      role_name[c->role], err_name(r));
		send_msg(c, MSG_EVENT, r, NULL, "%s: streaming apq_send returned %s after %"
			 PRIu64 " packets", role_name[c->role], err_name(r), seq);
		send_pstats(c, p);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);
		ssize_t len;

		send_msg(c, MSG_READY, 0, NULL, NULL);
		for (seq = 0;; seq++) {
			const char *bad;

			len = apq_recv(k, buf, sizeof(buf), victim ? -1 : STALL_NS);
			if (len < 0)
				break;
			bad = pkt_bad(buf, (size_t)len, S_STREAM, seq,
				      pkt_len(S_STREAM, seq, MAX_PKT));
			if (bad)
				cfail(c, "%s: packet %" PRIu64 ": %s",
				      role_name[c->role], seq, bad);
		}
		if (victim)
			cfail(c, "%s: the victim's apq_recv failed: %s",
			      role_name[c->role], err_name(len));
		send_msg(c, MSG_EVENT, (int32_t)len, NULL, "%s: streaming apq_recv returned "
			 "%s after %" PRIu64 " intact packets", role_name[c->role],
			 err_name(len), seq);
		send_cstats(c, k);
		apq_consumer_detach(k);
	}
}

/*
 * kill-F-producer-evtchn: as kill-F-producer, but the surviving consumer
 * waits in poll() on apq_notifier_xen_fd() instead of in apq_recv(): the
 * victim's death must raise the event channel (Xen's unmap notification),
 * not only clear the liveness byte that a backstop re-check would find.
 */
static void body_kill_fd(struct ctx *c)
{
	unsigned char buf[MAX_PKT];
	struct pollfd pfd;
	uint64_t seq;
	ssize_t r0, r1;
	int n, again = 0;
	int64_t deadline;

	if (c->role == F) {
		struct apq_producer *p = attach_p(c, 0);

		for (seq = 0; seq < 3; seq++)
			send_checked(c, p, S_KILL, seq, 200);
		send_msg(c, MSG_READY, 0, NULL, NULL);
		for (;;)
			pause();
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		for (seq = 0; seq < 3; seq++)
			recv_checked(c, k, S_KILL, seq, 200);
		pfd.fd = apq_notifier_xen_fd(c->n[0]);
		if (pfd.fd < 0)
			cfail(c, "apq_notifier_xen_fd: %s", err_name(pfd.fd));
		pfd.events = POLLIN;
		/* As an event loop: take what the packets left pending (a
		 * notification may land late: wait until the descriptor
		 * stays quiet for 20 ms), arm, and find it quiet until the
		 * kill. */
		while (poll(&pfd, 1, 20) == 1)
			if (apq_notifier_ack(c->n[0]) < 0)
				cfail(c, "B: apq_notifier_ack failed");
		r0 = apq_consumer_arm(k);
		if (r0 != 0)
			cfail(c, "B: apq_consumer_arm on the empty ring: %s",
			      r0 > 0 ? "work" : err_name(r0));
		n = poll(&pfd, 1, 0);
		send_msg(c, MSG_READY, 0, NULL, NULL);
		if (n != 0)
			cfail(c, "B: the fd is readable before the kill");
		/* The descriptor also wakes at the backstop while armed:
		 * re-arm then, until the death's event arrives. */
		deadline = now_ns() + 10 * KILL_BOUND_NS;
		for (;;) {
			n = poll(&pfd, 1, (int)((deadline - now_ns()) / MS));
			if (n != 1 || (again = apq_notifier_ack(c->n[0])) != 0)
				break;
			if (apq_consumer_arm(k) < 0)
				continue;	/* the death shows; its event must come */
		}
		send_msg(c, MSG_EVENT, n == 1 && again == 1, NULL,
			 "B: poll() on the event channel's fd returned %d", n);
		/* What the event loop does next: receive without blocking,
		 * which must report the death. */
		r0 = apq_recv(k, buf, sizeof(buf), 0);
		r1 = apq_consumer_arm(k);
		send_msg(c, MSG_INFO, 0, NULL, "B: apq_notifier_ack %d, then "
			 "apq_recv(timeout 0) returned %s, apq_consumer_arm %s",
			 again, r0 >= 0 ? "a packet" : err_name(r0),
			 r1 >= 0 ? "armed or work" : err_name(r1));
		if (again != 1)
			cfail(c, "B: apq_notifier_ack took no notification");
		if (r0 != -EPIPE || r1 != -EPIPE)
			cfail(c, "B: after the kill, timeout-0 calls must return "
			      "-EPIPE");
		send_cstats(c, k);
		apq_consumer_detach(k);
	}
}

/*
 * Publish n packets of stream s into region i as a producer would, records
 * and index, but without the wakeup check: a producer caught between its
 * publish and its wakeup, or one whose notification got lost.
 */
static void publish_unnotified(struct ctx *c, int i, enum stream_id s,
			       uint64_t seq0, unsigned n, size_t len)
{
	unsigned char *mem = apq_xen_region_mem(c->x[i]);
	size_t ring = c->sc->ring[i];
	uint32_t prod = get32(mem, OFF_PROD);
	unsigned k;

	for (k = 0; k < n; k++) {
		size_t pos = prod % ring;

		if (pos + REC_SIZE(len) > ring)
			cfail(c, "publish_unnotified: the record would wrap");
		pkt_fill(mem + CTRL + pos + 8, s, seq0 + k, len);
		set64(mem, CTRL + pos, REC(len, TAG_PACKET));
		prod += (uint32_t)REC_SIZE(len);
	}
	set32(mem, OFF_PROD, prod);	/* release: the records first */
}

/*
 * kill-F-unnotified: F publishes three packets without notifying and dies at
 * once, while B sleeps in apq_recv(): the death's event wakes B, which must
 * hand over the three packets before -EPIPE.
 */
static void body_kill_unnotified(struct ctx *c)
{
	unsigned char buf[MAX_PKT];
	struct apq_stats st;
	uint64_t seq;
	ssize_t r;

	if (c->role == F) {
		(void)attach_p(c, 0);
		wait_go(c);	/* B sleeps */
		publish_unnotified(c, 0, S_KILL, 0, 3, 200);
		raise(SIGKILL);
	}
	struct apq_consumer *k = attach_c(c, 0);

	send_msg(c, MSG_READY, 0, NULL, NULL);
	for (seq = 0; seq < 3; seq++) {
		r = apq_recv(k, buf, sizeof(buf), -1);
		if (r < 0)
			cfail(c, "B: apq_recv gave %s before packet %" PRIu64
			      " of 3 the dead producer had published",
			      err_name(r), seq);
		if (pkt_bad(buf, (size_t)r, S_KILL, seq, 200))
			cfail(c, "B: packet %" PRIu64 " damaged", seq);
	}
	r = apq_recv(k, buf, sizeof(buf), -1);
	send_msg(c, MSG_EVENT, (int32_t)r, NULL, "B: the 3 unnotified packets, "
		 "then apq_recv returned %s", r >= 0 ? "a packet" : err_name(r));
	apq_consumer_stats(k, &st);
	if (st.sleeps == 0)
		cfail(c, "B: the consumer never slept");
	send_cstats(c, k);
	apq_consumer_detach(k);
}

/*
 * eventloop-backstop: B is an event loop, armed and blocked in poll() on
 * the notifier's descriptor; F publishes a packet without notifying (a lost
 * event).  The descriptor must still become readable, at the backstop, and
 * the loop find the packet.
 */
static void body_eventloop_backstop(struct ctx *c)
{
	unsigned char buf[MAX_PKT];
	struct pollfd pfd;
	int64_t t0, dt;
	ssize_t r;
	int n;

	if (c->role == F) {
		(void)attach_p(c, 0);
		wait_go(c);	/* B is armed and polls */
		publish_unnotified(c, 0, S_KILL, 0, 1, 100);
		send_msg(c, MSG_DONE, 0, NULL, NULL);
		wait_go(c);	/* keep the region until B is done */
		return;
	}
	struct apq_consumer *k = attach_c(c, 0);

	pfd = (struct pollfd){ .fd = apq_notifier_xen_fd(c->n[0]),
			       .events = POLLIN };
	/* Quiet first: take what the attach left pending. */
	while (poll(&pfd, 1, 20) == 1)
		if (apq_notifier_ack(c->n[0]) < 0)
			cfail(c, "B: apq_notifier_ack failed");
	if (apq_consumer_arm(k) != 0)
		cfail(c, "B: apq_consumer_arm on the empty ring did not arm");
	send_msg(c, MSG_READY, 0, NULL, NULL);
	t0 = now_ns();
	n = poll(&pfd, 1, 2000);
	dt = now_ns() - t0;
	if (n != 1)
		cfail(c, "B: the armed descriptor stayed quiet for 2 s: no "
		      "backstop");
	if (apq_notifier_ack(c->n[0]) < 0)
		cfail(c, "B: apq_notifier_ack failed");
	r = apq_recv(k, buf, sizeof(buf), 0);
	send_msg(c, MSG_EVENT, (int32_t)r, NULL, "B: the armed descriptor woke "
		 "after %.1f ms without an event; apq_recv(timeout 0) gave %s",
		 (double)dt / 1e6, r >= 0 ? "the packet" : err_name(r));
	if (r != 100 || pkt_bad(buf, (size_t)r, S_KILL, 0, 100))
		cfail(c, "B: expected the unnotified packet");
	send_cstats(c, k);
	apq_consumer_detach(k);
}

/*
 * storm*: F sends a real packet every STORM_PERIOD_NS for STORM_NS and,
 * with sc->storm, notifies the port as fast as it can in between: an event
 * storm from a hostile peer.  B receives every packet (blocked in
 * apq_recv(), or as an event loop) and measures its thread's CPU, which the
 * storm may raise only a little over the quiet run's.
 */
#define STORM_NS	(1500 * MS)
#define STORM_PERIOD_NS	(5 * MS)

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void body_storm(struct ctx *c)
{
	unsigned char buf[MAX_PKT];
	uint64_t seq = 0, notifies = 0;
	int64_t t_end, next, t0, cpu0;
	ssize_t r;

	if (c->role == F) {
		struct apq_producer *p = attach_p(c, 0);

		wait_go(c);	/* B is ready */
		next = now_ns();
		t_end = next + STORM_NS;
		while (now_ns() < t_end) {
			if (now_ns() >= next) {
				send_checked(c, p, S_STREAM, seq++, 100);
				next += STORM_PERIOD_NS;
			} else if (c->sc->storm) {
				(void)xenevtchn_notify(c->xce, c->port);
				notifies++;
			} else {
				sleep_ns(next - now_ns());
			}
		}
		send_msg(c, MSG_INFO, 0, NULL, "F: %" PRIu64 " packets, %"
			 PRIu64 " notifications outside the protocol", seq,
			 notifies);
		send_pstats(c, p);
		apq_producer_detach(p);
		return;
	}
	struct apq_consumer *k = attach_c(c, 0);

	send_msg(c, MSG_READY, 0, NULL, NULL);
	t0 = now_ns();
	cpu0 = thread_cpu_ns();
	for (;; seq++) {
		r = c->sc->event_loop
			? recv_event_loop(k, c->n[0], apq_notifier_xen_fd(c->n[0]),
					  buf, sizeof(buf), STALL_NS)
			: apq_recv(k, buf, sizeof(buf), STALL_NS);
		if (r == -EPIPE)
			break;
		if (r < 0)
			cfail(c, "B: apq_recv gave %s after %" PRIu64 " packets",
			      err_name(r), seq);
		if (pkt_bad(buf, (size_t)r, S_STREAM, seq, 100))
			cfail(c, "B: packet %" PRIu64 " damaged or out of order",
			      seq);
	}
	send_msg(c, MSG_EVENT, (int32_t)((thread_cpu_ns() - cpu0) * 10000 /
					(now_ns() - t0)), NULL,
		 "B: %" PRIu64 " packets", seq);
	send_cstats(c, k);
	apq_consumer_detach(k);
}

/*
 * detach-producer-*: once the consumer has attached (with sc->exits and F
 * the producer, F would otherwise revoke its grants before B mapped them),
 * the producer sends DETACH_PKTS packets (they all fit in the ring) and
 * detaches; with sc->exits it also frees everything and exits.  Only then
 * is the consumer told to drain: every packet, then -EPIPE.
 */
static void body_detach_producer(struct ctx *c)
{
	const size_t max = DETACH_MAX;
	uint64_t seq;

	if (c->role == c->sc->producer) {
		struct apq_producer *p = attach_p(c, 0);

		wait_go(c);	/* the consumer has attached */
		for (seq = 0; seq < DETACH_PKTS; seq++)
			send_checked(c, p, S_DETACH, seq, pkt_len(S_DETACH, seq, max));
		send_pstats(c, p);
		apq_producer_detach(p);
		send_msg(c, MSG_EVENT, 0, NULL, "detached");
		if (!c->sc->exits)
			wait_go(c);	/* keep the region until the drain */
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		send_msg(c, MSG_READY, 0, NULL, NULL);
		wait_go(c);
		for (seq = 0; seq < DETACH_PKTS; seq++)
			recv_checked(c, k, S_DETACH, seq, pkt_len(S_DETACH, seq, max));
		expect_epipe(c, k, "after the drain");
		send_cstats(c, k);
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
		send_pstats(c, p);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k = attach_c(c, 0);

		wait_go(c);
		send_cstats(c, k);
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
	uint64_t sat_packets, sat_sent;	/* stream's saturated phase */
	int64_t kill_min_ns[NKILL], kill_max_ns[NKILL], kill_sum_ns[NKILL];
	const char *kill_name[NKILL];
	int nkill[NKILL];
	uint64_t settles;
	int64_t detach_delay_ns;
	double storm_quiet[2], storm_share[2];	/* [event loop] */
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
	/* stream*: statistics per phase */
	struct apq_stats prod_idle, prod_sat, cons_idle, cons_sat;
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
	/* What ADAPTIVE learned a block costs on Xen (doc/adaptive.md). */
	if (st->wake_call_ns || st->wake_late_ns)
		printf("xen-test: %s %-18s learned: notify call %" PRIu64
		       " ns, block CPU %" PRIu64 " ns, wake-up %" PRIu64
		       " ns, polling %" PRIu64 "\n", scn, tag,
		       st->wake_call_ns, st->block_cpu_ns, st->wake_late_ns,
		       st->polling);
}

static void absorb(struct scenario_run *r, int who, const struct msg *m)
{
	if (m->type > 0 && m->type <= MSG_EOF)
		r->last[who][m->type] = *m;
	switch (m->type) {
	case MSG_STATS:
		print_stats(r->sc->name, m->text, &m->st);
		if (m->st.rescues && !r->sc->unnotified)
			failure(r, "%s: %" PRIu64 " rescues (lost wakeups caught)",
				m->text, m->st.rescues);
		if (m->value == 0) {
			tot.packets += m->st.packets;
			tot.bytes += m->st.bytes;
			tot.sent += m->st.wakeups_sent;
			tot.skipped += m->st.wakeups_skipped;
			tot.sleeps += m->st.sleeps;
			tot.spurious += m->st.spurious_wakeups;
			if (!r->sc->unnotified)
				tot.rescues += m->st.rescues;
		} else if (!strcmp(m->text, "F.prod.saturated")) {
			r->prod_sat = m->st;
		} else if (!strcmp(m->text, "B.cons.saturated")) {
			r->cons_sat = m->st;
		} else if (!strcmp(m->text, "F.prod.idle")) {
			r->prod_idle = m->st;
		} else if (!strcmp(m->text, "B.cons.idle")) {
			r->cons_idle = m->st;
		}
		break;
	case MSG_FAIL:
		failure(r, "%s", m->text);
		break;
	case MSG_INFO:
		printf("xen-test: %s %s\n", r->sc->name, m->text);
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

/* Absorb everything until both children closed their pipes.  After a
 * failure, a child may wait for something that never comes: kill both. */
static int finish(struct scenario_run *r)
{
	struct msg m;
	int i, w, k;

	for (i = 0; r->failed && i < 2; i++) {
		if (r->pid[i] > 0 && r->res[i] >= 0) {
			kill(r->pid[i], SIGKILL);
			r->may_die[i] = true;
		}
	}

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
		if (r->failed)
			return finish(r);
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
	const char *what = s == sc->producer ? "the surviving producer"
					     : "the surviving consumer";
	struct msg m;
	int64_t t_kill, delay;

	r->may_die[v] = true;
	if (wait_for(r, s, MSG_READY, &m, r->deadline) ||
	    wait_for(r, v, MSG_READY, &m, r->deadline))
		return finish(r);
	sleep_ns(KILL_SETTLE_NS(++tot.settles));
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
	if (sc->event_fd && m.value != 1)
		failure(r, "the notifier's fd did not become readable");
	else if (!sc->event_fd && m.value != -EPIPE)
		failure(r, "%s: returned %s, expected -EPIPE", what, err_name(m.value));
	else if (delay > KILL_BOUND_NS)
		failure(r, "%s: noticed only after %.1f ms", what, (double)delay / 1e6);
	tot.kill_name[sc->kind] = sc->name;
	tot.kill_sum_ns[sc->kind] += delay;
	if (tot.nkill[sc->kind]++ == 0 || delay < tot.kill_min_ns[sc->kind])
		tot.kill_min_ns[sc->kind] = delay;
	if (delay > tot.kill_max_ns[sc->kind])
		tot.kill_max_ns[sc->kind] = delay;
	return finish(r);
}

static int orch_kill_unnotified(struct scenario_run *r)
{
	struct msg m;

	r->may_die[F] = true;
	if (wait_for(r, B, MSG_READY, &m, r->deadline))
		return finish(r);
	sleep_ns(KILL_SETTLE_NS(++tot.settles));
	go(r, F);
	if (wait_for(r, B, MSG_EVENT, &m, now_ns() + 10 * KILL_BOUND_NS))
		return finish(r);
	printf("xen-test: %s %s\n", r->sc->name, m.text);
	if (m.value != -EPIPE)
		failure(r, "B: %s, expected -EPIPE", err_name(m.value));
	return finish(r);
}

static int orch_eventloop_backstop(struct scenario_run *r)
{
	struct msg m;

	if (wait_for(r, B, MSG_READY, &m, r->deadline))
		return finish(r);
	go(r, F);
	if (wait_for(r, B, MSG_EVENT, &m, r->deadline))
		return finish(r);
	printf("xen-test: %s %s\n", r->sc->name, m.text);
	go(r, F);
	return finish(r);
}

/* A storm may cost the receiver this much more of a CPU than quiet does
 * (emulated CPUs are noisy: generous). */
#define STORM_EXTRA	0.10

static int orch_storm(struct scenario_run *r)
{
	const struct scenario *sc = r->sc;
	double share, quiet;
	struct msg m;

	if (wait_for(r, B, MSG_READY, &m, r->deadline))
		return finish(r);
	go(r, F);
	if (wait_for(r, B, MSG_EVENT, &m, r->deadline))
		return finish(r);
	share = m.value / 1e4;
	quiet = tot.storm_quiet[sc->event_loop];
	printf("xen-test: %s %s, %.2f%% of a CPU%s\n", sc->name, m.text,
	       100 * share, sc->storm ? "" : " (the quiet baseline)");
	if (!sc->storm)
		tot.storm_quiet[sc->event_loop] = share;
	else if (share > quiet + STORM_EXTRA)
		failure(r, "the storm cost B %.1f%% of a CPU, against %.1f%% "
			"quiet", 100 * share, 100 * quiet);
	else
		tot.storm_share[sc->event_loop] = share;
	return finish(r);
}

static int orch_detach_producer(struct scenario_run *r)
{
	const struct scenario *sc = r->sc;
	enum role p = sc->producer, k = (enum role)!p;
	struct msg m;
	int status;

	if (wait_for(r, k, MSG_READY, &m, r->deadline))
		return finish(r);
	go(r, p);
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
	sleep_ns(KILL_SETTLE_NS(++tot.settles));
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

/* stream: the consumer slept and was woken while the producer idled;
 * under saturation nearly every wakeup was skipped. */
static void check_stream(struct scenario_run *r)
{
	uint64_t n = r->prod_sat.packets, bytes = r->prod_idle.bytes + r->prod_sat.bytes;
	uint64_t sent = r->prod_sat.wakeups_sent + r->cons_sat.wakeups_sent;

	printf("xen-test: %s idle phase: consumer slept %" PRIu64 " times, producer "
	       "sent %" PRIu64 " wakeups for %" PRIu64 " packets\n", r->sc->name,
	       r->cons_idle.sleeps, r->prod_idle.wakeups_sent, r->prod_idle.packets);
	printf("xen-test: %s: %" PRIu64 " bytes through a %zu-byte ring: it wrapped %"
	       PRIu64 " times\n", r->sc->name, bytes, r->sc->ring[0], bytes / r->sc->ring[0]);
	printf("xen-test: %s saturated phase: %" PRIu64 " packets, wakeups sent %"
	       PRIu64 " (producer %" PRIu64 ", consumer %" PRIu64 "), skipped %"
	       PRIu64 " (producer %" PRIu64 ", consumer %" PRIu64 ")\n", r->sc->name,
	       n, sent, r->prod_sat.wakeups_sent, r->cons_sat.wakeups_sent,
	       r->prod_sat.wakeups_skipped + r->cons_sat.wakeups_skipped,
	       r->prod_sat.wakeups_skipped, r->cons_sat.wakeups_skipped);
	tot.sat_packets = n;
	tot.sat_sent = sent;
	if (n != r->sc->n_sat)
		return;	/* the stream failed already */
	/* An event-loop consumer blocks in its own poll(), which apq does
	 * not count as a sleep; the producer's wakeups show it was armed. */
	if ((!r->sc->event_loop && r->cons_idle.sleeps == 0) ||
	    r->prod_idle.wakeups_sent == 0)
		failure(r, "idle phase: the consumer never slept, or was never woken");
	if (r->prod_sat.wakeups_skipped == 0)
		failure(r, "saturated phase: the producer skipped no wakeup");
	if (sent * 10 > n)
		failure(r, "saturated phase: %" PRIu64 " wakeups for %" PRIu64
			" packets (more than 1 in 10)", sent, n);
}

/* stream-nospin: both sides sleep whenever they must wait, so the consumer
 * must have slept often; every sleep ended by a wake (rescues == 0 is
 * checked for every endpoint). */
static void check_nospin(struct scenario_run *r)
{
	const struct apq_stats *p = &r->last[F][MSG_STATS].st;
	const struct apq_stats *k = &r->last[B][MSG_STATS].st;

	printf("xen-test: %s: consumer slept %" PRIu64 " times, producer %" PRIu64
	       "; wakeups sent %" PRIu64 " + %" PRIu64 "\n", r->sc->name, k->sleeps,
	       p->sleeps, p->wakeups_sent, k->wakeups_sent);
	if (k->packets == r->sc->n_sat && k->sleeps == 0)
		failure(r, "the consumer never slept");
}

/* stream-always: ALWAYS_NOTIFY wakes after every publishing call. */
static void check_always(struct scenario_run *r)
{
	const struct apq_stats *p = &r->last[F][MSG_STATS].st;

	printf("xen-test: %s: producer sent %" PRIu64 " wakeups for %" PRIu64
	       " packets, skipped %" PRIu64 "\n", r->sc->name, p->wakeups_sent,
	       p->packets, p->wakeups_skipped);
	if (p->packets == r->sc->n_sat &&
	    (p->wakeups_sent < p->packets || p->wakeups_skipped))
		failure(r, "ALWAYS_NOTIFY: %" PRIu64 " wakeups sent, %" PRIu64
			" skipped for %" PRIu64 " sends", p->wakeups_sent,
			p->wakeups_skipped, p->packets);
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
	  .body = body_stream, .orchestrate = orch_plain, .producer = F,
	  .n_idle = STREAM_IDLE, .n_sat = STREAM_SAT, .check = check_stream },
	{ .name = "stream-nospin", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_stream, .orchestrate = orch_plain, .producer = F,
	  .policy = APQ_POLICY_SPIN, .spin_ns = 0, .n_sat = NOSPIN_PKTS,
	  .check = check_nospin },
	{ .name = "stream-eventloop", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_stream, .orchestrate = orch_plain, .producer = F,
	  .n_idle = STREAM_IDLE, .n_sat = STREAM_SAT, .check = check_stream,
	  .event_loop = true },
	{ .name = "stream-always", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_stream, .orchestrate = orch_plain, .producer = F,
	  .policy = APQ_POLICY_ALWAYS_NOTIFY, .n_sat = ALWAYS_PKTS,
	  .check = check_always },
	{ .name = "pingpong", .nreg = 2, .ring = { PP_RING, PP_RING },
	  .body = body_pingpong, .orchestrate = orch_plain, .producer = F },
	KILL("kill-F-producer", F, F, 0),
	KILL("kill-B-consumer", F, B, 1),
	KILL("kill-B-producer", B, B, 2),
	KILL("kill-F-consumer", B, F, 3),
	{ .name = "kill-midstream-F-producer", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_midstream, .orchestrate = orch_kill, .producer = F,
	  .victim = F, .reps = KILL_REPS, .kind = 4 },
	{ .name = "kill-midstream-F-consumer", .nreg = 1, .ring = { STREAM_RING },
	  .body = body_midstream, .orchestrate = orch_kill, .producer = B,
	  .victim = F, .reps = KILL_REPS, .kind = 5 },
	{ .name = "kill-F-producer-evtchn", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_kill_fd, .orchestrate = orch_kill, .producer = F,
	  .victim = F, .reps = KILL_REPS, .kind = 6, .event_fd = true },
	{ .name = "kill-F-unnotified", .nreg = 1, .ring = { SMALL_RING },
	  .unnotified = true,
	  .body = body_kill_unnotified, .orchestrate = orch_kill_unnotified,
	  .producer = F, .victim = F, .reps = KILL_REPS },
	{ .name = "eventloop-backstop", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_eventloop_backstop,
	  .orchestrate = orch_eventloop_backstop, .producer = F },
	{ .name = "storm-quiet", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_storm, .orchestrate = orch_storm, .producer = F },
	{ .name = "storm", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_storm, .orchestrate = orch_storm, .producer = F,
	  .storm = true },
	{ .name = "storm-quiet-eventloop", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_storm, .orchestrate = orch_storm, .producer = F,
	  .event_loop = true },
	{ .name = "storm-eventloop", .nreg = 1, .ring = { SMALL_RING },
	  .body = body_storm, .orchestrate = orch_storm, .producer = F,
	  .storm = true, .event_loop = true },
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
	if (sc->check)
		sc->check(&r);
	printf("xen-test: %s %s in %.1f ms\n", sc->name, r.failed ? "FAILED" : "ok",
	       (double)(now_ns() - t0) / 1e6);
}

int main(void)
{
	uint64_t seed = test_seed();
	size_t i;
	int64_t t0 = now_ns();

	setvbuf(stdout, NULL, _IOLBF, 0);
	pkt_init(seed);
	printf("xen-test: seed %" PRIu64 " (APQ_SEED=%" PRIu64 " replays it)\n", seed, seed);

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		int rep;

		for (rep = 0; rep < (scenarios[i].reps ? scenarios[i].reps : 1); rep++)
			run_scenario(&scenarios[i]);
	}
	for (i = 0; i < NKILL; i++)
		if (tot.nkill[i])
			printf("xen-test: %s: %s %.2f to %.2f ms (mean %.2f) after "
			       "SIGKILL, %d runs\n", tot.kill_name[i],
			       i == 6 ? "event" : "-EPIPE",
			       (double)tot.kill_min_ns[i] / 1e6,
			       (double)tot.kill_max_ns[i] / 1e6,
			       (double)tot.kill_sum_ns[i] / 1e6 / tot.nkill[i], tot.nkill[i]);

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
	       " kill_epipe_max_ms=%.2f/%.2f/%.2f/%.2f/%.2f/%.2f kill_event_max_ms=%.2f"
	       " detach_epipe_ms=%.2f storm_cpu=%.1f%%/%.1f%%"
	       " storm_cpu_eventloop=%.1f%%/%.1f%%\n",
	       tot.packets, tot.sent, tot.skipped, tot.sleeps, tot.rescues,
	       tot.round_trips,
	       tot.sat_sent, tot.sat_packets,
	       (double)tot.kill_max_ns[0] / 1e6, (double)tot.kill_max_ns[1] / 1e6,
	       (double)tot.kill_max_ns[2] / 1e6, (double)tot.kill_max_ns[3] / 1e6,
	       (double)tot.kill_max_ns[4] / 1e6, (double)tot.kill_max_ns[5] / 1e6,
	       (double)tot.kill_max_ns[6] / 1e6,
	       (double)tot.detach_delay_ns / 1e6,
	       100 * tot.storm_share[0], 100 * tot.storm_quiet[0],
	       100 * tot.storm_share[1], 100 * tot.storm_quiet[1]);
	return 0;
}
