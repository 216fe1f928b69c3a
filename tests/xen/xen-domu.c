/* SPDX-License-Identifier: MIT */
/*
 * xen-domu - apq across a real domain boundary: the frontend in a PV guest
 * (domU), the backend in dom0, on a real Xen hypervisor.
 *
 *   xen-domu back DOMID [SCENARIO...]   in dom0, once `xl create` returned
 *                                       ("all", the default: every one, in
 *                                       order)
 *   xen-domu front                      in the guest, started by its init
 *
 * The roles follow <apq/xen.h>.  The frontend (the guest) binds unbound
 * ports for dom0 and grants the regions' pages to dom0; the backend (dom0)
 * binds interdomain to those ports and maps the grants.  They meet in
 * xenstore, as split drivers do:
 *
 *   /local/domain/0/backend/apq/DOMID/     the backend's directory, which
 *                                          the guest may read
 *       seed            the packets' seed (APQ_SEED in dom0 replays a run)
 *       scenario        "N NAME": run scenario N; "N quit": exit
 *       state           "N 4": mapped and bound; "N fail" (see error)
 *   /local/domain/DOMID/data/apq/          the guest's home, which it writes
 *                                          with relative paths (data/apq/...)
 *       ring-bytes-R, ring-ref-R, event-channel-R   region R of scenario N
 *       state           "N 3": published; "N 6": done and stats written;
 *                       "N fail" (see error)
 *       stats-K         the guest's statistics: "packets bytes sent skipped
 *                       sleeps spurious rescues"
 *       count, info     ping-pong: round trips made, their times
 *
 * The backend drives: it names each scenario; the frontend sets it up and
 * publishes, the backend maps and says so, both run it, the frontend
 * publishes its statistics, and the backend checks both sides' numbers and
 * content.  Each side polls the other's state (a static libxenstore has no
 * watches), every wait bounded.  The guest's values are read once, parsed
 * strictly and validated: dom0 trusts nothing a guest writes.
 *
 * Scenarios (g2d: the guest produces, dom0 consumes; d2g: the reverse):
 *   stream-*            content-checked packets of random sizes, an idle
 *                       phase (the producer pauses, the consumer must sleep
 *                       and be woken) and a saturated one (nearly every
 *                       wakeup skipped), under ADAPTIVE
 *   stream-*-nospin     SPIN with 0 ns: every wait sleeps
 *   stream-*-always     ALWAYS_NOTIFY: an event for every send
 *   stream-*-busypoll   BUSY_POLL: nobody sleeps, no event at all
 *   stream-*-eventloop  the consumer blocks only in its own poll() on the
 *                       notifier's descriptor (arm, poll, ack)
 *   pingpong            requests guest->dom0, responses dom0->guest,
 *                       answered zero-copy; every wait bounded
 *   destroy-midstream   (the guest's last) dom0 runs `xl destroy`
 *                       while the guest streams: an intact prefix, then
 *                       -EPIPE within 100 ms of the guest's end; the
 *                       dead domain stays, dying, until dom0 unmaps
 *                       its pages, and is gone within 5 s after
 *
 * The backend prints both sides' statistics and ends with
 * "APQ-XEN-RESULT: PASS ..." or "APQ-XEN-RESULT: FAIL <reason>"; the
 * frontend prints its own lines as "xen-domu[guest]: ..." on its console.
 * A scenario that ends the guest (destroy-midstream) is driven the same way:
 * the backend names it and runs `xl destroy` itself when it chooses, and
 * runs nothing after it.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apq/apq.h>
#include <apq/xen.h>
/* Xen 4.6's hypercall ABI, for EVTCHNOP_status (the headers default to
 * the pre-3.2 compat call). */
#define __XEN_INTERFACE_VERSION__ 0x00040600
#include <xen/event_channel.h>
#include <xencall.h>
#include <xenstore.h>

#include "../testlib.h"
#include "xen-pkt.h"

#define MS		PKT_MS
#define DOM0		0u
#define MAX_REGIONS	2
#define MAX_REFS	64

#define STREAM_RING	16384u
#define STREAM_IDLE	300u		/* packets with pauses */
#define STREAM_SAT	20000u		/* packets back to back */
#define NOSPIN_PKTS	3000u		/* every wait sleeps */
#define ALWAYS_PKTS	2000u		/* an event per send */
#define BUSY_PKTS	10000u		/* nobody sleeps */
#define PP_RING		4096u
#define PP_ROUNDS	1000u

#define STALL_NS	(10000 * MS)	/* a wait this long is a stall */
#define XS_POLL_NS	(2 * MS)	/* xenstore polling period */
#define XS_STEP_NS	(30000 * MS)	/* the peer's next step, at most */
#define XS_BOOT_NS	(120000 * MS)	/* the guest's first step, at most */
#define RUN_NS		(300000 * MS)	/* the whole run, at most */
#define DESTROY_AFTER	2000u		/* packets before `xl destroy` */
#define DESTROY_WAIT_NS	(3000 * MS)	/* watch that long after it */
#define DESTROY_BOUND_NS (100 * MS)	/* -EPIPE after the domain went */
#define FREED_WAIT_NS	(5000 * MS)	/* for Xen to free it once unmapped */

/* xenbus states, as split drivers use them. */
#define ST_INITIALISED	3
#define ST_CONNECTED	4
#define ST_CLOSED	6

enum side { GUEST = 0, DOM0SIDE = 1 };
static const char *const side_name[2] = { "guest", "dom0" };

/* The statistics each side keeps of a scenario. */
enum stat_slot { SL_EP0, SL_EP1, SL_IDLE, SL_SAT, NSLOT };
static const char *const slot_name[NSLOT] = { "region0", "region1", "idle", "saturated" };

struct result {
	struct apq_stats st[NSLOT];
	bool have[NSLOT];
	uint64_t count;		/* ping-pong: round trips made or answered */
	int64_t delay_ns;	/* destroy: from the domain's end to -EPIPE */
	bool epipe;		/* destroy: -EPIPE came */
	int listed_mapped;	/* destroy: domain_listed() while dom0 mapped */
	int listed_after;	/* ... and once dom0 unmapped and waited */
	int64_t freed_ns;	/* ... from the unmapping to its going */
	char info[160];
};

struct scenario;

/* One side's part of a scenario. */
struct side_ctx {
	unsigned domid;		/* dom0: the guest's */
	const struct scenario *sc;
	enum side side;
	struct apq_notifier *n[MAX_REGIONS];
	struct apq_xen_region *x[MAX_REGIONS];
	struct result res;
	char err[200];
};

struct scenario {
	const char *name;
	int nreg;
	size_t ring;
	enum side producer;	/* of region 0 */
	enum apq_policy policy;
	uint64_t spin_ns;
	unsigned n_idle, n_sat;
	bool event_loop;	/* the consumer blocks only in poll() */
	bool ends_guest;	/* dom0 destroys the guest: the last one */
	int (*body)(struct side_ctx *c);
	/* On the backend, with both sides' results: 0, or -1 and *why. */
	int (*check)(const struct scenario *sc, const struct result *r,
		     char *why, size_t cap);
};

static __attribute__((format(printf, 2, 3))) int set_err(struct side_ctx *c,
							 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return -1;
}

/* ------------------------------------------------------------------------
 * xenstore: small helpers, and the states each side polls for.
 * --------------------------------------------------------------------- */

static struct xs_handle *xs;

/* The value at path, NUL-terminated (libxenstore adds the NUL), or NULL. */
static char *xs_get(const char *path)
{
	unsigned int len;

	return xs_read(xs, XBT_NULL, path, &len);
}

static __attribute__((format(printf, 2, 3))) bool xs_put(const char *path,
							 const char *fmt, ...)
{
	char val[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(val))
		return false;
	return xs_write(xs, XBT_NULL, path, val, (unsigned int)n);
}

/* Parse "N WORD" where N is exactly seq.  @return WORD's number (a state),
 * -2 for "fail", -1 for anything else (another N, garbage). */
static int parse_state(const char *v, unsigned seq)
{
	char *end;
	unsigned long n, st;

	if (!v)
		return -1;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end != ' ' || n != seq)
		return -1;
	if (!strcmp(end + 1, "fail"))
		return -2;
	st = strtoul(end + 1, &end, 10);
	return *end || st > 16 ? -1 : (int)st;
}

/* Wait until path says "seq want" (@return 0) or "seq fail" (-EPIPE),
 * for at most timeout_ns (-ETIMEDOUT). */
static int xs_wait_state(const char *path, unsigned seq, int want, int64_t timeout_ns)
{
	int64_t end = now_ns() + timeout_ns;

	for (;;) {
		char *v = xs_get(path);
		int st = parse_state(v, seq);

		free(v);
		if (st == want)
			return 0;
		if (st == -2)
			return -EPIPE;
		if (now_ns() > end)
			return -ETIMEDOUT;
		sleep_ns(XS_POLL_NS);
	}
}

/* Strict decimal, at most max: the guest's numbers go through here. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out, const char **end)
{
	char *e;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &e, 10);
	if (errno || v > max)
		return false;
	*out = v;
	if (end)
		*end = e;
	else if (*e)
		return false;
	return true;
}

/* A guest's text, for printing only: at most cap - 1 printable bytes. */
static void xs_get_text(const char *path, char *buf, size_t cap)
{
	char *v = xs_get(path);
	size_t i = 0;

	for (; v && v[i] && i + 1 < cap; i++)
		buf[i] = v[i] >= ' ' && v[i] <= '~' ? v[i] : '?';
	buf[i] = '\0';
	free(v);
}

static void format_stats(char *buf, size_t cap, const struct apq_stats *st)
{
	snprintf(buf, cap, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %"
		 PRIu64 " %" PRIu64 " %" PRIu64, st->packets, st->bytes,
		 st->wakeups_sent, st->wakeups_skipped, st->sleeps,
		 st->spurious_wakeups, st->rescues);
}

static bool parse_stats(const char *v, struct apq_stats *st)
{
	uint64_t *f[] = { &st->packets, &st->bytes, &st->wakeups_sent,
			  &st->wakeups_skipped, &st->sleeps, &st->spurious_wakeups,
			  &st->rescues };
	const char *p = v;
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		if (i && *p++ != ' ')
			return false;
		if (!parse_u64(p, UINT64_MAX, f[i], &p))
			return false;
	}
	return *p == '\0';
}

/* Each side prints under its own prefix: the guest's console ends up in
 * the same log as dom0's lines, and dom0 prints the guest's numbers too. */
static const char *me = "xen-domu:";

static void print_stats(const char *scn, enum side s, enum stat_slot slot,
			const struct apq_stats *st)
{
	printf("%s %s %s.%-9s packets %6" PRIu64 " bytes %9" PRIu64
	       " wakeups sent %5" PRIu64 " skipped %6" PRIu64 " sleeps %5" PRIu64
	       " spurious %4" PRIu64 " rescues %" PRIu64 "\n",
	       me, scn, side_name[s],
	       slot_name[slot], st->packets, st->bytes, st->wakeups_sent,
	       st->wakeups_skipped, st->sleeps, st->spurious_wakeups, st->rescues);
}

/* ------------------------------------------------------------------------
 * Scenario bodies, run by both sides with their own role.
 * --------------------------------------------------------------------- */

static int attach_p(struct side_ctx *c, int i, struct apq_producer **p)
{
	struct apq_config cfg = { .policy = c->sc->policy, .spin_ns = c->sc->spin_ns };
	int r = apq_producer_attach(p, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], &cfg);

	return r ? set_err(c, "apq_producer_attach(region %d): %s", i, err_name(r)) : 0;
}

static int attach_c(struct side_ctx *c, int i, struct apq_consumer **k)
{
	struct apq_config cfg = { .policy = c->sc->policy, .spin_ns = c->sc->spin_ns };
	int r = apq_consumer_attach(k, apq_xen_region_mem(c->x[i]),
				    apq_xen_region_bytes(c->x[i]), c->n[i], &cfg);

	return r ? set_err(c, "apq_consumer_attach(region %d): %s", i, err_name(r)) : 0;
}

static void keep_stats(struct side_ctx *c, enum stat_slot s, const struct apq_stats *st)
{
	c->res.st[s] = *st;
	c->res.have[s] = true;
}

static int send_one(struct side_ctx *c, struct apq_producer *p, enum stream_id s,
		    uint64_t seq, size_t len)
{
	unsigned char buf[MAX_PKT];
	int r;

	pkt_fill(buf, s, seq, len);
	r = apq_send(p, buf, len, STALL_NS);
	if (r)
		return set_err(c, "apq_send(seq %" PRIu64 ", %zu B): %s%s", seq, len,
			       err_name(r), r == -ETIMEDOUT ? " (stall)" : "");
	return 0;
}

/* The guest's consumer polls the generic descriptor, dom0's the Xen one:
 * both calls must serve an event loop. */
static int recv_one(struct side_ctx *c, struct apq_consumer *k, int i,
		    enum stream_id s, uint64_t seq, size_t want_len)
{
	unsigned char buf[MAX_PKT];
	const char *bad;
	ssize_t len;

	if (c->sc->event_loop)
		len = recv_event_loop(k, c->n[i], c->side == GUEST
				      ? apq_notifier_fd(c->n[i])
				      : apq_notifier_xen_fd(c->n[i]),
				      buf, sizeof(buf), STALL_NS);
	else
		len = apq_recv(k, buf, sizeof(buf), STALL_NS);
	if (len < 0)
		return set_err(c, "apq_recv(seq %" PRIu64 "): %s%s", seq, err_name(len),
			       len == -ETIMEDOUT ? " (stall: a wakeup lost?)" : "");
	bad = pkt_bad(buf, (size_t)len, s, seq, want_len);
	return bad ? set_err(c, "packet %" PRIu64 ": %s", seq, bad) : 0;
}

/* The end of a stream, on the consumer: -EPIPE, and again. */
static int expect_epipe(struct side_ctx *c, struct apq_consumer *k)
{
	unsigned char buf[MAX_PKT];
	ssize_t r = apq_recv(k, buf, sizeof(buf), STALL_NS);
	ssize_t r2 = apq_recv(k, buf, sizeof(buf), 0);

	if (r != -EPIPE || r2 != -EPIPE)
		return set_err(c, "after the stream apq_recv gave %s, then %s; "
			       "expected -EPIPE twice", r >= 0 ? "a packet" : err_name(r),
			       r2 >= 0 ? "a packet" : err_name(r2));
	return 0;
}

/*
 * stream-*: sc->n_idle packets, a pause before one in four (longer than any
 * poll budget), then sc->n_sat back to back.  Each side keeps its
 * endpoint's totals and per-phase statistics.
 */
static int body_stream(struct side_ctx *c)
{
	const uint64_t n_idle = c->sc->n_idle, n = n_idle + c->sc->n_sat;
	struct apq_stats s0 = { 0 }, s1;
	uint64_t seq;

	if (c->side == c->sc->producer) {
		struct apq_producer *p;

		if (attach_p(c, 0, &p))
			return -1;
		for (seq = 0; seq < n; seq++) {
			if (seq < n_idle && hash3(S_STREAM, seq, 3) % 4 == 0)
				sleep_ns((int64_t)(500000 + hash3(S_STREAM, seq, 4) % 2500000));
			if (seq == n_idle && seq)
				apq_producer_stats(p, &s0);
			if (send_one(c, p, S_STREAM, seq, pkt_len(S_STREAM, seq, MAX_PKT))) {
				apq_producer_detach(p);
				return -1;
			}
		}
		apq_producer_stats(p, &s1);
		apq_producer_detach(p);
	} else {
		struct apq_consumer *k;
		int r = 0;

		if (attach_c(c, 0, &k))
			return -1;
		for (seq = 0; seq < n && !r; seq++) {
			if (seq == n_idle && seq)
				apq_consumer_stats(k, &s0);
			r = recv_one(c, k, 0, S_STREAM, seq, pkt_len(S_STREAM, seq, MAX_PKT));
		}
		if (!r)
			r = expect_epipe(c, k);
		apq_consumer_stats(k, &s1);
		apq_consumer_detach(k);
		if (r)
			return -1;
	}
	keep_stats(c, SL_EP0, &s1);
	keep_stats(c, SL_IDLE, &s0);
	s1 = stats_delta(s1, &s0);
	keep_stats(c, SL_SAT, &s1);
	return 0;
}

/* pingpong: a producer on region preg, a consumer on the other one. */
static int attach_pair(struct side_ctx *c, int preg, struct apq_producer **p,
		       struct apq_consumer **q)
{
	if (attach_p(c, preg, p))
		return -1;
	if (attach_c(c, !preg, q)) {
		apq_producer_detach(*p);
		return -1;
	}
	return 0;
}

/* pingpong, the guest: request k on region 0, wait for response k on
 * region 1, time the round trip. */
static int pingpong_guest(struct side_ctx *c)
{
	static int64_t rtt[PP_ROUNDS];
	const size_t max = PP_RING / 4;
	struct apq_producer *p;
	struct apq_consumer *q;
	struct apq_stats st;
	uint64_t k;
	int r = 0;

	if (attach_pair(c, 0, &p, &q))
		return -1;
	for (k = 0; k < PP_ROUNDS && !r; k++) {
		int64_t t0;

		/* Now and then dom0 must fall asleep waiting. */
		if (hash3(S_REQ, k, 3) % 16 == 0)
			sleep_ns(2 * MS);
		t0 = now_ns();
		r = send_one(c, p, S_REQ, k, pkt_len(S_REQ, k, max));
		if (!r)
			r = recv_one(c, q, 1, S_RESP, k, pkt_len(S_RESP, k, max));
		rtt[k] = now_ns() - t0;
	}
	c->res.count = r ? k - 1 : k;
	apq_producer_stats(p, &st);
	keep_stats(c, SL_EP0, &st);
	apq_producer_detach(p);
	if (!r)
		r = expect_epipe(c, q);
	apq_consumer_stats(q, &st);
	keep_stats(c, SL_EP1, &st);
	apq_consumer_detach(q);
	if (r)
		return -1;
	qsort(rtt, PP_ROUNDS, sizeof(rtt[0]), cmp_i64);
	snprintf(c->res.info, sizeof(c->res.info), "median %" PRId64 " us, p99 %"
		 PRId64 " us, max %" PRId64 " us", rtt[PP_ROUNDS / 2] / 1000,
		 rtt[PP_ROUNDS * 99 / 100] / 1000, rtt[PP_ROUNDS - 1] / 1000);
	return 0;
}

/* pingpong, dom0: answer each request zero-copy (peek, reserve, commit,
 * release) until the guest detaches. */
static int pingpong_dom0(struct side_ctx *c)
{
	const size_t max = PP_RING / 4;
	unsigned char copy[PP_RING / 4];
	struct apq_consumer *q;
	struct apq_producer *p;
	struct apq_stats st;
	uint64_t k;
	int r = 0;

	if (attach_pair(c, 1, &p, &q))
		return -1;
	for (k = 0; !r; k++) {
		const void *req;
		void *resp;
		ssize_t len = apq_peek(q, &req, STALL_NS);
		const char *bad;
		size_t rl;

		if (len == -EPIPE && k == PP_ROUNDS)
			break;
		if (len < 0) {
			r = set_err(c, "apq_peek(request %" PRIu64 "): %s", k, err_name(len));
			break;
		}
		/* The guest may change the bytes under us: check a copy. */
		if ((size_t)len > sizeof(copy)) {
			r = set_err(c, "request %" PRIu64 ": %zd B", k, len);
			break;
		}
		memcpy(copy, req, (size_t)len);
		bad = pkt_bad(copy, (size_t)len, S_REQ, k, pkt_len(S_REQ, k, max));
		if (bad) {
			r = set_err(c, "request %" PRIu64 ": %s", k, bad);
			break;
		}
		if (hash3(S_RESP, k, 3) % 16 == 0)
			sleep_ns(2 * MS);	/* the guest must sleep */
		rl = pkt_len(S_RESP, k, max);
		r = apq_reserve(p, rl, &resp, STALL_NS);
		if (r) {
			r = set_err(c, "apq_reserve(%zu): %s", rl, err_name(r));
			break;
		}
		pkt_fill(resp, S_RESP, k, rl);
		r = apq_commit(p, rl);
		if (!r)
			r = apq_release(q);
		if (r)
			r = set_err(c, "apq_commit or apq_release: %s", err_name(r));
	}
	c->res.count = k;
	apq_consumer_stats(q, &st);
	keep_stats(c, SL_EP0, &st);
	apq_producer_stats(p, &st);
	keep_stats(c, SL_EP1, &st);
	apq_consumer_detach(q);
	apq_producer_detach(p);
	return r ? -1 : 0;
}

static int body_pingpong(struct side_ctx *c)
{
	return c->side == GUEST ? pingpong_guest(c) : pingpong_dom0(c);
}

/* ------------------------------------------------------------------------
 * Checks, on the backend, of both sides' results.
 * --------------------------------------------------------------------- */

#define WHY(...) (snprintf(why, cap, __VA_ARGS__), -1)

static const struct result *prod_of(const struct scenario *sc, const struct result *r)
{
	return &r[sc->producer];
}

static const struct result *cons_of(const struct scenario *sc, const struct result *r)
{
	return &r[!sc->producer];
}

/* Every stream: both sides counted every packet, nobody needed a rescue. */
static int check_counts(const struct scenario *sc, const struct result *r,
			char *why, size_t cap)
{
	uint64_t n = sc->n_idle + sc->n_sat;
	int s;

	for (s = 0; s < 2; s++)
		if (r[s].st[SL_EP0].packets != n)
			return WHY("the %s counted %" PRIu64 " packets of %" PRIu64,
				   side_name[s], r[s].st[SL_EP0].packets, n);
	return 0;
}

/* ADAPTIVE: the consumer slept and was woken while the producer idled;
 * under saturation nearly every wakeup was skipped. */
static int check_adaptive(const struct scenario *sc, const struct result *r,
			  char *why, size_t cap)
{
	const struct result *p = prod_of(sc, r), *k = cons_of(sc, r);
	uint64_t n = p->st[SL_SAT].packets;
	uint64_t sent = p->st[SL_SAT].wakeups_sent + k->st[SL_SAT].wakeups_sent;

	if (check_counts(sc, r, why, cap))
		return -1;
	printf("xen-domu: %s saturated phase: %" PRIu64 " packets, wakeups sent %"
	       PRIu64 " (producer %" PRIu64 ", consumer %" PRIu64 "), skipped %"
	       PRIu64 "\n", sc->name, n, sent, p->st[SL_SAT].wakeups_sent,
	       k->st[SL_SAT].wakeups_sent,
	       p->st[SL_SAT].wakeups_skipped + k->st[SL_SAT].wakeups_skipped);
	/* An event-loop consumer blocks in its own poll(), which apq does
	 * not count as a sleep; the producer's wakeups show it was armed. */
	if ((!sc->event_loop && k->st[SL_IDLE].sleeps == 0) ||
	    p->st[SL_IDLE].wakeups_sent == 0)
		return WHY("idle phase: the consumer never slept, or was never woken");
	if (p->st[SL_SAT].wakeups_skipped == 0)
		return WHY("saturated phase: the producer skipped no wakeup");
	if (sent * 10 > n)
		return WHY("saturated phase: %" PRIu64 " wakeups for %" PRIu64
			   " packets (more than 1 in 10)", sent, n);
	return 0;
}

/* SPIN 0: every wait sleeps, so the consumer slept. */
static int check_nospin(const struct scenario *sc, const struct result *r,
			char *why, size_t cap)
{
	if (check_counts(sc, r, why, cap))
		return -1;
	if (cons_of(sc, r)->st[SL_EP0].sleeps == 0)
		return WHY("the consumer never slept");
	return 0;
}

/* ALWAYS_NOTIFY: an event after every publishing call, none skipped. */
static int check_always(const struct scenario *sc, const struct result *r,
			char *why, size_t cap)
{
	const struct apq_stats *p = &prod_of(sc, r)->st[SL_EP0];

	if (check_counts(sc, r, why, cap))
		return -1;
	if (p->wakeups_sent < p->packets || p->wakeups_skipped)
		return WHY("ALWAYS_NOTIFY: %" PRIu64 " wakeups sent, %" PRIu64
			   " skipped for %" PRIu64 " sends", p->wakeups_sent,
			   p->wakeups_skipped, p->packets);
	return 0;
}

/* BUSY_POLL: nobody sleeps, so no event is ever needed. */
static int check_busypoll(const struct scenario *sc, const struct result *r,
			  char *why, size_t cap)
{
	int s;

	if (check_counts(sc, r, why, cap))
		return -1;
	for (s = 0; s < 2; s++)
		if (r[s].st[SL_EP0].sleeps || r[s].st[SL_EP0].wakeups_sent)
			return WHY("BUSY_POLL: the %s slept %" PRIu64 " times and sent %"
				   PRIu64 " wakeups", side_name[s],
				   r[s].st[SL_EP0].sleeps, r[s].st[SL_EP0].wakeups_sent);
	return 0;
}

static int check_pingpong(const struct scenario *sc, const struct result *r,
			  char *why, size_t cap)
{
	int s;

	(void)sc;
	for (s = 0; s < 2; s++)
		if (r[s].count != PP_ROUNDS || r[s].st[SL_EP0].packets != PP_ROUNDS ||
		    r[s].st[SL_EP1].packets != PP_ROUNDS)
			return WHY("the %s made %" PRIu64 " round trips, %" PRIu64 " and %"
				   PRIu64 " packets, of %u", side_name[s], r[s].count,
				   r[s].st[SL_EP0].packets, r[s].st[SL_EP1].packets,
				   PP_ROUNDS);
	printf("xen-domu: pingpong: %" PRIu64 " round trips between the domains, "
	       "content checked both ways; as the guest timed them: %s\n",
	       r[GUEST].count, r[GUEST].info);
	return 0;
}

/*
 * destroy-midstream: the guest streams as fast as it can; after
 * DESTROY_AFTER packets dom0 runs `xl destroy` and keeps receiving.  It must
 * get an intact prefix of the stream, then -EPIPE within DESTROY_BOUND_NS
 * of the domain's end.  xl pauses the guest, removes its xenstore home and
 * only then has Xen destroy it, and returns later still.  The end is when
 * Xen turns dom0's end of the channel back to unbound, which this side
 * polls for as it receives (or else the home's removal, or xl's return).
 */
static int destroy_guest(struct side_ctx *c)
{
	struct apq_producer *p;
	uint64_t seq;

	if (attach_p(c, 0, &p))
		return -1;
	for (seq = 0;; seq++)
		if (send_one(c, p, S_STREAM, seq, pkt_len(S_STREAM, seq, MAX_PKT)))
			break;
	apq_producer_detach(p);
	return set_err(c, "still alive after %" PRIu64 " packets: %s", seq, c->err);
}

/* `xl destroy DOMID`, not waited for.  @return its pid, or -1. */
static pid_t spawn_xl_destroy(unsigned domid)
{
	extern char **environ;
	char id[16], xl[] = "xl", verb[] = "destroy";
	char *argv[] = { xl, verb, id, NULL };
	pid_t pid;

	snprintf(id, sizeof(id), "%u", domid);
	return posix_spawnp(&pid, "xl", NULL, NULL, argv, environ) ? -1 : pid;
}

/*
 * Whether Xen still has dom0's end of the channel connected.  Xen turns it
 * back to unbound when it destroys the guest: that moment, as Xen sees it,
 * is what the library's -EPIPE is timed against.  @return 1 connected, 0
 * not, -1 cannot tell (no privcmd, a failed call).
 */
static int port_connected(xencall_handle *xc, struct evtchn_status *st,
			  int port)
{
	if (!xc || !st || port < 0)
		return -1;
	st->dom = DOMID_SELF;
	st->port = (evtchn_port_t)port;
	if (xencall2(xc, __HYPERVISOR_event_channel_op, EVTCHNOP_status,
		     (uint64_t)(uintptr_t)st) < 0)
		return -1;
	return st->status == EVTCHNSTAT_interdomain;
}

static double ms_after(int64_t t, int64_t t0)
{
	return t ? (double)(t - t0) / 1e6 : -1;
}

static int destroy_dom0(struct side_ctx *c)
{
	unsigned char buf[MAX_PKT];
	struct apq_consumer *k;
	struct apq_stats st;
	int64_t t_xl = 0, t_xl_done = 0, t_last = 0, t_epipe = 0, t_gone = 0;
	int64_t t_unbound = 0;
	uint64_t seq = 0, after = 0;
	char home[48], *v;
	xencall_handle *xc = xencall_open(NULL, 0);
	struct evtchn_status *st_port = xc ? xencall_alloc_buffer(xc, sizeof(*st_port)) : NULL;
	int port = apq_notifier_xen_port(c->n[0]);
	pid_t xl = 0;
	ssize_t len;
	int status, r = 0;

	if (attach_c(c, 0, &k)) {
		if (xc)
			xencall_close(xc);
		return -1;
	}
	snprintf(home, sizeof(home), "/local/domain/%u/domid", c->domid);
	for (;;) {
		if (seq == DESTROY_AFTER && !t_xl) {
			t_xl = now_ns();
			xl = spawn_xl_destroy(c->domid);
			if (xl < 0) {
				r = set_err(c, "cannot run xl destroy: %s", strerror(errno));
				break;
			}
		}
		len = apq_recv(k, buf, sizeof(buf), t_xl ? 5 * MS : STALL_NS);
		if (len >= 0) {
			const char *bad = pkt_bad(buf, (size_t)len, S_STREAM, seq,
						  pkt_len(S_STREAM, seq, MAX_PKT));

			if (bad) {
				r = set_err(c, "packet %" PRIu64 ": %s", seq, bad);
				break;
			}
			seq++;
			if (t_xl) {
				after++;
				t_last = now_ns();
			}
		} else if (len == -EPIPE) {
			t_epipe = now_ns();
			break;
		} else if (len != -ETIMEDOUT || !t_xl) {
			r = set_err(c, "apq_recv(seq %" PRIu64 "): %s", seq, err_name(len));
			break;
		}
		if (xl > 0 && waitpid(xl, &status, WNOHANG) == xl) {
			t_xl_done = now_ns();
			xl = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				r = set_err(c, "xl destroy failed: status %#x", status);
		}
		if (t_xl && !t_gone) {
			v = xs_get(home);
			if (!v)
				t_gone = now_ns();
			free(v);
		}
		if (t_xl && !t_unbound && port_connected(xc, st_port, port) == 0)
			t_unbound = now_ns();
		if (r || (t_xl && now_ns() - t_xl > DESTROY_WAIT_NS))
			break;
	}
	if (xl > 0 && waitpid(xl, &status, 0) == xl && !t_xl_done)
		t_xl_done = now_ns();
	/* -EPIPE may come first: the library looks at the port too. */
	if (t_epipe && !t_unbound && port_connected(xc, st_port, port) == 0)
		t_unbound = t_epipe;
	if (xc) {
		xencall_free_buffer(xc, st_port);
		xencall_close(xc);
	}
	apq_consumer_stats(k, &st);
	keep_stats(c, SL_EP0, &st);
	apq_consumer_detach(k);
	c->res.count = after;
	c->res.epipe = t_epipe != 0;
	/* The guest's end: the port's, as Xen saw it; else the home's. */
	c->res.delay_ns = t_epipe - (t_unbound ? t_unbound : t_gone ? t_gone : t_xl_done);
	printf("xen-domu: destroy-midstream: %" PRIu64 " intact packets, %" PRIu64
	       " of them after xl destroy began; in ms after it began: xl returned %.1f, "
	       "last packet %.1f, the guest's xenstore home gone %.1f, dom0's port "
	       "unbound %.1f, -EPIPE %.1f (-1: not seen within %" PRId64 " ms)\n",
	       seq, after, ms_after(t_xl_done, t_xl), ms_after(t_last, t_xl),
	       ms_after(t_gone, t_xl), ms_after(t_unbound, t_xl),
	       ms_after(t_epipe, t_xl), DESTROY_WAIT_NS / MS);
	return r;
}

static int body_destroy(struct side_ctx *c)
{
	return c->side == GUEST ? destroy_guest(c) : destroy_dom0(c);
}

static int check_destroy(const struct scenario *sc, const struct result *r,
			 char *why, size_t cap)
{
	const struct result *d = &r[DOM0SIDE];

	(void)sc;
	if (!d->epipe || d->delay_ns > DESTROY_BOUND_NS)
		return WHY("no -EPIPE within %" PRId64 " ms of the guest's end",
			   DESTROY_BOUND_NS / MS);
	printf("xen-domu: destroy-midstream: -EPIPE %.1f ms after the guest's end\n",
	       (double)d->delay_ns / 1e6);
	printf("xen-domu: destroy-midstream: the dead domain %s while dom0 "
	       "mapped its pages, and %s %.1f ms after dom0 unmapped them\n",
	       d->listed_mapped == 1 ? "stayed (dying)" :
	       d->listed_mapped == 0 ? "was already gone" : "was not seen (xl list failed)",
	       d->listed_after == 0 ? "was gone" : "was still there",
	       (double)d->freed_ns / 1e6);
	if (d->listed_after != 0)
		return WHY("the domain was not freed within %" PRId64 " ms of "
			   "dom0 unmapping its pages", FREED_WAIT_NS / MS);
	return 0;
}

#define STREAM(nm, prod, pol, spin, idle, sat, el, chk) {			\
		.name = nm, .nreg = 1, .ring = STREAM_RING, .producer = prod,	\
		.policy = pol, .spin_ns = spin, .n_idle = idle, .n_sat = sat,	\
		.event_loop = el, .body = body_stream, .check = chk }

static const struct scenario scenarios[] = {
	STREAM("stream-g2d", GUEST, APQ_POLICY_ADAPTIVE, 0, STREAM_IDLE,
	       STREAM_SAT, false, check_adaptive),
	STREAM("stream-d2g", DOM0SIDE, APQ_POLICY_ADAPTIVE, 0, STREAM_IDLE,
	       STREAM_SAT, false, check_adaptive),
	STREAM("stream-g2d-nospin", GUEST, APQ_POLICY_SPIN, 0, 0, NOSPIN_PKTS,
	       false, check_nospin),
	STREAM("stream-d2g-nospin", DOM0SIDE, APQ_POLICY_SPIN, 0, 0, NOSPIN_PKTS,
	       false, check_nospin),
	STREAM("stream-g2d-always", GUEST, APQ_POLICY_ALWAYS_NOTIFY, 0, 0,
	       ALWAYS_PKTS, false, check_always),
	STREAM("stream-d2g-always", DOM0SIDE, APQ_POLICY_ALWAYS_NOTIFY, 0, 0,
	       ALWAYS_PKTS, false, check_always),
	STREAM("stream-g2d-busypoll", GUEST, APQ_POLICY_BUSY_POLL, 0, 0,
	       BUSY_PKTS, false, check_busypoll),
	STREAM("stream-d2g-busypoll", DOM0SIDE, APQ_POLICY_BUSY_POLL, 0, 0,
	       BUSY_PKTS, false, check_busypoll),
	STREAM("stream-g2d-eventloop", GUEST, APQ_POLICY_ADAPTIVE, 0, STREAM_IDLE,
	       STREAM_SAT, true, check_adaptive),
	STREAM("stream-d2g-eventloop", DOM0SIDE, APQ_POLICY_ADAPTIVE, 0, STREAM_IDLE,
	       STREAM_SAT, true, check_adaptive),
	{ .name = "pingpong", .nreg = 2, .ring = PP_RING, .producer = GUEST,
	  .body = body_pingpong, .check = check_pingpong },
	/* Last: it ends the guest.  A destroyed guest sends no event and
	 * leaves its liveness byte set; only the port's state tells. */
	{ .name = "destroy-midstream", .nreg = 1, .ring = STREAM_RING,
	  .producer = GUEST, .body = body_destroy, .check = check_destroy,
	  .ends_guest = true },
};
#define NSCEN	(sizeof(scenarios) / sizeof(scenarios[0]))
#define MAX_LIST	64	/* scenarios in one run */

static const struct scenario *scenario_named(const char *name)
{
	size_t i;

	for (i = 0; i < NSCEN; i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}

/*
 * Whether Xen still lists domain domid.  A destroyed domain stays, dying,
 * for as long as another domain maps its pages.  @return 1, 0, or -1 if
 * xl could not say.
 */
static int domain_listed(unsigned domid)
{
	FILE *f = popen("xl list 2>/dev/null", "r");
	char line[256], name[128];
	unsigned id;
	int found = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %u", name, &id) == 2 && id == domid)
			found = 1;
	return pclose(f) == 0 ? found : -1;
}

static void teardown(struct side_ctx *c)
{
	int i;

	for (i = 0; i < MAX_REGIONS; i++) {
		apq_xen_region_free(c->x[i]);
		apq_notifier_free(c->n[i]);
		c->x[i] = NULL;
		c->n[i] = NULL;
	}
}

/* ------------------------------------------------------------------------
 * The frontend, in the guest.
 * --------------------------------------------------------------------- */

#define FRONT	"data/apq"	/* relative: the guest's own home */

static int front_setup(struct side_ctx *c)
{
	const struct scenario *sc = c->sc;
	size_t nrefs = apq_xen_region_refs(sc->ring);
	uint32_t refs[MAX_REFS];
	char path[64], list[MAX_REFS * 11 + 1];
	int i, r;
	size_t k, off;

	if (nrefs == 0 || nrefs > MAX_REFS)
		return set_err(c, "apq_xen_region_refs(%zu) = %zu", sc->ring, nrefs);
	for (i = 0; i < sc->nreg; i++) {
		r = apq_notifier_xen_unbound(&c->n[i], DOM0);
		if (r)
			return set_err(c, "apq_notifier_xen_unbound: %s", err_name(r));
		r = apq_xen_region_share(&c->x[i], DOM0, sc->ring, c->n[i], refs);
		if (r)
			return set_err(c, "apq_xen_region_share: %s", err_name(r));
		for (k = 0, off = 0; k < nrefs; k++)
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%" PRIu32,
						k ? " " : "", refs[k]);
		/* The pages are laid out before their refs go out: xenstore
		 * requests are hypercalls, which order our stores before the
		 * backend can read the refs. */
		snprintf(path, sizeof(path), FRONT "/ring-bytes-%d", i);
		if (!xs_put(path, "%zu", sc->ring))
			return set_err(c, "xenstore write %s: %s", path, strerror(errno));
		snprintf(path, sizeof(path), FRONT "/ring-ref-%d", i);
		if (!xs_put(path, "%s", list))
			return set_err(c, "xenstore write %s: %s", path, strerror(errno));
		snprintf(path, sizeof(path), FRONT "/event-channel-%d", i);
		if (!xs_put(path, "%d", apq_notifier_xen_port(c->n[i])))
			return set_err(c, "xenstore write %s: %s", path, strerror(errno));
	}
	return 0;
}

/* What the backend reads once the state says "N 6". */
static bool front_publish(const struct side_ctx *c)
{
	char path[64], val[200];
	int s;

	for (s = 0; s < NSLOT; s++) {
		if (!c->res.have[s])
			continue;
		format_stats(val, sizeof(val), &c->res.st[s]);
		snprintf(path, sizeof(path), FRONT "/stats-%d", s);
		if (!xs_put(path, "%s", val))
			return false;
		if (s == SL_EP0 || s == SL_EP1 || c->sc->n_idle)
			print_stats(c->sc->name, GUEST, (enum stat_slot)s, &c->res.st[s]);
	}
	return xs_put(FRONT "/count", "%" PRIu64, c->res.count) &&
	       xs_put(FRONT "/info", "%s", c->res.info);
}

static int front_main(void)
{
	char back[64], path[96], *v;
	const char *word;
	uint64_t domid, seed;
	unsigned seq = 0;
	int64_t end;
	int r;

	v = xs_get("domid");
	if (!v || !parse_u64(v, 0x7fef, &domid, NULL)) {
		printf("xen-domu[guest]: cannot read my domid from xenstore\n");
		return 1;
	}
	free(v);
	snprintf(back, sizeof(back), "/local/domain/0/backend/apq/%" PRIu64, domid);
	snprintf(path, sizeof(path), "%s/seed", back);
	for (end = now_ns() + XS_BOOT_NS; !(v = xs_get(path)); sleep_ns(XS_POLL_NS))
		if (now_ns() > end) {
			printf("xen-domu[guest]: no %s after %" PRId64 " s\n", path,
			       XS_BOOT_NS / (1000 * MS));
			return 1;
		}
	if (!parse_u64(v, UINT64_MAX, &seed, NULL)) {
		printf("xen-domu[guest]: bad seed '%s'\n", v);
		return 1;
	}
	free(v);
	pkt_init(seed);
	printf("xen-domu[guest]: domid %" PRIu64 ", seed %" PRIu64 ", backend %s\n",
	       domid, seed, back);

	for (;;) {
		struct side_ctx c = { .side = GUEST };
		uint64_t n;

		/* The backend's next word: "seq+1 NAME" or "seq+1 quit". */
		snprintf(path, sizeof(path), "%s/scenario", back);
		for (end = now_ns() + XS_STEP_NS;; sleep_ns(XS_POLL_NS)) {
			v = xs_get(path);
			if (v && parse_u64(v, UINT32_MAX, &n, &word) && n == seq + 1 &&
			    *word == ' ')
				break;
			free(v);
			if (now_ns() > end) {
				printf("xen-domu[guest]: the backend named no scenario %u\n",
				       seq + 1);
				return 1;
			}
		}
		seq++;
		if (!strcmp(word + 1, "quit")) {
			free(v);
			printf("xen-domu[guest]: %u scenarios done, quitting\n", seq - 1);
			return xs_put(FRONT "/state", "%u %d", seq, ST_CLOSED) ? 0 : 1;
		}
		c.sc = scenario_named(word + 1);
		if (!c.sc) {
			printf("xen-domu[guest]: unknown scenario '%s'\n", word + 1);
			xs_put(FRONT "/error", "unknown scenario");
			xs_put(FRONT "/state", "%u fail", seq);
			free(v);
			return 1;
		}
		free(v);
		r = front_setup(&c);
		if (!r && !xs_put(FRONT "/state", "%u %d", seq, ST_INITIALISED))
			r = set_err(&c, "xenstore write state: %s", strerror(errno));
		snprintf(path, sizeof(path), "%s/state", back);
		if (!r && (r = xs_wait_state(path, seq, ST_CONNECTED, XS_STEP_NS)))
			r = set_err(&c, "the backend did not connect: %s", err_name(r));
		if (!r)
			r = c.sc->body(&c);
		if (!r && !front_publish(&c))
			r = set_err(&c, "xenstore write stats: %s", strerror(errno));
		teardown(&c);
		if (r) {
			printf("xen-domu[guest]: %s: FAIL: %s\n", c.sc->name, c.err);
			xs_put(FRONT "/error", "%s", c.err);
			xs_put(FRONT "/state", "%u fail", seq);
			return 1;
		}
		printf("xen-domu[guest]: %s ok\n", c.sc->name);
		if (!xs_put(FRONT "/state", "%u %d", seq, ST_CLOSED))
			return 1;
	}
}

/* ------------------------------------------------------------------------
 * The backend, in dom0.
 * --------------------------------------------------------------------- */

struct totals {
	struct apq_stats side[2];
	uint64_t round_trips;
	uint64_t sat_sent[2], sat_packets[2];	/* [producer side] */
	unsigned failures;
	char first_failure[256];
};
static struct totals tot;

static void failure(const char *scn, const char *fmt, ...)
{
	char text[220];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	printf("xen-domu: %s: FAIL: %s\n", scn, text);
	if (tot.failures++ == 0)
		snprintf(tot.first_failure, sizeof(tot.first_failure), "%s: %s", scn, text);
}

/* Read region i of the guest's publication, validate, bind and map. */
static int back_connect(struct side_ctx *c, unsigned domid, const char *front, int i)
{
	size_t nrefs = apq_xen_region_refs(c->sc->ring);
	uint32_t refs[MAX_REFS];
	uint64_t v64, ring, port;
	char path[128], *v;
	const char *p;
	size_t k;
	int r;

	snprintf(path, sizeof(path), "%s/ring-bytes-%d", front, i);
	v = xs_get(path);
	r = parse_u64(v, SIZE_MAX, &ring, NULL);
	free(v);
	if (!r || ring != c->sc->ring)
		return set_err(c, "region %d: bad ring-bytes", i);
	snprintf(path, sizeof(path), "%s/event-channel-%d", front, i);
	v = xs_get(path);
	r = parse_u64(v, UINT32_MAX, &port, NULL);
	free(v);
	if (!r)
		return set_err(c, "region %d: bad event-channel", i);
	snprintf(path, sizeof(path), "%s/ring-ref-%d", front, i);
	v = xs_get(path);
	for (k = 0, p = v; v && k < nrefs; k++) {
		if ((k && *p++ != ' ') || !parse_u64(p, UINT32_MAX, &v64, &p))
			break;
		refs[k] = (uint32_t)v64;
	}
	r = v && k == nrefs && *p == '\0';
	free(v);
	if (!r)
		return set_err(c, "region %d: bad ring-ref (want %zu refs)", i, nrefs);
	r = apq_notifier_xen_interdomain(&c->n[i], domid, (uint32_t)port);
	if (r)
		return set_err(c, "apq_notifier_xen_interdomain(dom %u, port %" PRIu64
			       "): %s", domid, port, err_name(r));
	r = apq_xen_region_map(&c->x[i], domid, c->sc->ring, refs, c->n[i]);
	if (r)
		return set_err(c, "apq_xen_region_map(dom %u): %s", domid, err_name(r));
	if (apq_xen_region_bytes(c->x[i]) < apq_region_size(c->sc->ring))
		return set_err(c, "region %d: too small", i);
	return 0;
}

/* The guest's results of a scenario, from its home. */
static int back_collect(struct side_ctx *c, const char *front, struct result *g)
{
	char path[128], *v;
	uint64_t n;
	int s;

	memset(g, 0, sizeof(*g));
	for (s = 0; s < NSLOT; s++) {
		snprintf(path, sizeof(path), "%s/stats-%d", front, s);
		/* Only what this scenario's guest side keeps: the same body
		 * ran there. */
		if (!c->res.have[s])
			continue;
		v = xs_get(path);
		g->have[s] = v && parse_stats(v, &g->st[s]);
		free(v);
		if (!g->have[s])
			return set_err(c, "the guest's %s: missing or malformed", path);
	}
	snprintf(path, sizeof(path), "%s/count", front);
	v = xs_get(path);
	s = parse_u64(v, UINT64_MAX, &n, NULL);
	free(v);
	if (!s)
		return set_err(c, "the guest's count: missing or malformed");
	g->count = n;
	snprintf(path, sizeof(path), "%s/info", front);
	xs_get_text(path, g->info, sizeof(g->info));
	return 0;
}

static void account(const struct scenario *sc, const struct result r[2])
{
	int s, slot;

	for (s = 0; s < 2; s++) {
		for (slot = 0; slot < NSLOT; slot++) {
			const struct apq_stats *st = &r[s].st[slot];

			if (!r[s].have[slot])
				continue;
			/* Phases only where there are two. */
			if (slot == SL_EP0 || slot == SL_EP1 || sc->n_idle)
				print_stats(sc->name, (enum side)s, (enum stat_slot)slot, st);
			if (st->rescues)
				failure(sc->name, "the %s's %s: %" PRIu64 " rescues (lost "
					"wakeups caught)", side_name[s], slot_name[slot],
					st->rescues);
			if (slot != SL_EP0 && slot != SL_EP1)
				continue;
			tot.side[s].packets += st->packets;
			tot.side[s].bytes += st->bytes;
			tot.side[s].wakeups_sent += st->wakeups_sent;
			tot.side[s].wakeups_skipped += st->wakeups_skipped;
			tot.side[s].sleeps += st->sleeps;
			tot.side[s].spurious_wakeups += st->spurious_wakeups;
			tot.side[s].rescues += st->rescues;
		}
	}
	if (sc->body == body_pingpong)
		tot.round_trips += r[GUEST].count;
	if (sc->check == check_adaptive && !sc->event_loop) {
		tot.sat_packets[sc->producer] = r[sc->producer].st[SL_SAT].packets;
		tot.sat_sent[sc->producer] = r[GUEST].st[SL_SAT].wakeups_sent +
					     r[DOM0SIDE].st[SL_SAT].wakeups_sent;
	}
}

static int back_run(unsigned domid, const char *back, const char *front, unsigned seq,
		    const struct scenario *sc)
{
	struct side_ctx c = { .sc = sc, .side = DOM0SIDE, .domid = domid };
	struct result r[2];
	char path[128], fstate[128], why[220], gerr[100];
	int64_t t0 = now_ns();
	int i, e;

	snprintf(path, sizeof(path), "%s/scenario", back);
	snprintf(fstate, sizeof(fstate), "%s/state", front);
	if (!xs_put(path, "%u %s", seq, sc->name)) {
		failure(sc->name, "xenstore write %s: %s", path, strerror(errno));
		return -1;
	}
	e = xs_wait_state(fstate, seq, ST_INITIALISED, seq == 1 ? XS_BOOT_NS : XS_STEP_NS);
	for (i = 0; !e && i < sc->nreg; i++)
		e = back_connect(&c, domid, front, i);
	snprintf(path, sizeof(path), "%s/state", back);
	if (!e && !xs_put(path, "%u %d", seq, ST_CONNECTED))
		e = set_err(&c, "xenstore write %s: %s", path, strerror(errno));
	if (!e)
		e = sc->body(&c);
	if (e == -ETIMEDOUT || e == -EPIPE)
		set_err(&c, "the guest did not publish (%s)", err_name(e));
	memset(&r[GUEST], 0, sizeof(r[GUEST]));
	if (!e && !sc->ends_guest) {
		e = xs_wait_state(fstate, seq, ST_CLOSED, XS_STEP_NS);
		if (e)
			set_err(&c, "the guest did not finish (%s)", err_name(e));
	}
	if (!e && !sc->ends_guest)
		e = back_collect(&c, front, &r[GUEST]);
	/* After a destroy, our mappings are what keeps the dead domain's
	 * pages: unmapping lets it go, which Xen's list of domains shows. */
	if (!e && sc->ends_guest)
		c.res.listed_mapped = domain_listed(domid);
	teardown(&c);
	if (!e && sc->ends_guest) {
		int64_t t_unmapped = now_ns();

		while ((c.res.listed_after = domain_listed(domid)) == 1 &&
		       now_ns() - t_unmapped < FREED_WAIT_NS)
			sleep_ns(50 * MS);
		c.res.freed_ns = now_ns() - t_unmapped;
	}
	if (e) {
		snprintf(path, sizeof(path), "%s/error", front);
		xs_get_text(path, gerr, sizeof(gerr));
		failure(sc->name, "dom0: %s; the guest says: %s", c.err,
			gerr[0] ? gerr : "nothing");
		snprintf(path, sizeof(path), "%s/state", back);
		xs_put(path, "%u fail", seq);
		return -1;
	}
	r[DOM0SIDE] = c.res;
	account(sc, r);
	e = sc->check(sc, r, why, sizeof(why));
	if (e)
		failure(sc->name, "%s", why);
	printf("xen-domu: %s %s in %.1f ms\n", sc->name, e ? "FAILED" : "ok",
	       (double)(now_ns() - t0) / 1e6);
	return 0;
}

static int back_main(unsigned domid, int nnames, char **names)
{
	const uint64_t seed = test_seed();
	char back[64], front[64], path[96];
	struct xs_permissions perms[2] = {
		{ .id = DOM0, .perms = XS_PERM_NONE },
		{ .id = domid, .perms = XS_PERM_READ },
	};
	const struct scenario *list[MAX_LIST];
	int64_t t0 = now_ns();
	bool guest_gone = false;
	unsigned seq = 0;
	size_t i, nlist = 0;
	int s;

	pkt_init(seed);
	printf("xen-domu: seed %" PRIu64 " (APQ_SEED=%" PRIu64 " replays it), guest "
	       "domain %u\n", seed, seed, domid);
	snprintf(back, sizeof(back), "/local/domain/0/backend/apq/%u", domid);
	snprintf(front, sizeof(front), "/local/domain/%u/" FRONT, domid);
	snprintf(path, sizeof(path), "%s/seed", back);
	xs_rm(xs, XBT_NULL, back);
	if (!xs_mkdir(xs, XBT_NULL, back) ||
	    !xs_set_permissions(xs, XBT_NULL, back, perms, 2) ||
	    !xs_put(path, "%" PRIu64, seed)) {
		printf("APQ-XEN-RESULT: FAIL domu: cannot make %s: %s\n", back,
		       strerror(errno));
		return 1;
	}
	/* The list to run: the names given, where "all" stands for every
	 * scenario; without names, "all". */
	for (i = 0; i < (size_t)(nnames ? nnames : 1); i++) {
		const char *name = nnames ? names[i] : "all";
		size_t k;

		for (k = 0; !strcmp(name, "all") && k < NSCEN && nlist < MAX_LIST; k++)
			list[nlist++] = &scenarios[k];
		if (!strcmp(name, "all"))
			continue;
		if (nlist == MAX_LIST || !(list[nlist++] = scenario_named(name))) {
			failure(name, "no such scenario, or too many");
			nlist = 0;
			break;
		}
	}
	for (i = 0; i + 1 < nlist; i++)
		if (list[i]->ends_guest) {
			failure(list[i]->name, "ends the guest: it must come last");
			nlist = 0;
		}
	for (i = 0; i < nlist && !guest_gone; i++) {
		const struct scenario *sc = list[i];

		if (now_ns() - t0 > RUN_NS) {
			failure(sc->name, "the run took over %" PRId64 " s", RUN_NS / (1000 * MS));
			break;
		}
		guest_gone = sc->ends_guest;
		if (back_run(domid, back, front, ++seq, sc))
			break;
	}
	if (guest_gone) {
		printf("xen-domu: destroyed the guest on purpose\n");
	} else {
		/* Also after a failure, so that the guest need not time out;
		 * its acknowledgement counts only when all went well. */
		char fstate[96];
		int e;

		snprintf(path, sizeof(path), "%s/scenario", back);
		snprintf(fstate, sizeof(fstate), "%s/state", front);
		++seq;
		e = xs_put(path, "%u quit", seq)
			? xs_wait_state(fstate, seq, ST_CLOSED,
					tot.failures ? 2000 * MS : XS_STEP_NS)
			: -EIO;
		if (e && !tot.failures)
			failure("quit", "the guest did not acknowledge: %s", err_name(e));
	}
	xs_rm(xs, XBT_NULL, back);

	for (s = 0; s < 2; s++)
		printf("xen-domu: %s total: packets %" PRIu64 " bytes %" PRIu64
		       " wakeups sent %" PRIu64 " skipped %" PRIu64 " sleeps %" PRIu64
		       " spurious %" PRIu64 " rescues %" PRIu64 "\n", side_name[s],
		       tot.side[s].packets, tot.side[s].bytes, tot.side[s].wakeups_sent,
		       tot.side[s].wakeups_skipped, tot.side[s].sleeps,
		       tot.side[s].spurious_wakeups, tot.side[s].rescues);
	printf("xen-domu: %u scenarios in %.1f ms\n", guest_gone || !seq ? seq : seq - 1,
	       (double)(now_ns() - t0) / 1e6);
	if (tot.failures) {
		printf("APQ-XEN-RESULT: FAIL domu: %s (%u failures)\n", tot.first_failure,
		       tot.failures);
		return 1;
	}
	printf("APQ-XEN-RESULT: PASS domu guest_packets=%" PRIu64 " guest_sent=%" PRIu64
	       " guest_skipped=%" PRIu64 " dom0_packets=%" PRIu64 " dom0_sent=%" PRIu64
	       " dom0_skipped=%" PRIu64 " round_trips=%" PRIu64 " g2d_saturated_sent=%"
	       PRIu64 "/%" PRIu64 " d2g_saturated_sent=%" PRIu64 "/%" PRIu64 "\n",
	       tot.side[GUEST].packets, tot.side[GUEST].wakeups_sent,
	       tot.side[GUEST].wakeups_skipped, tot.side[DOM0SIDE].packets,
	       tot.side[DOM0SIDE].wakeups_sent, tot.side[DOM0SIDE].wakeups_skipped,
	       tot.round_trips, tot.sat_sent[GUEST], tot.sat_packets[GUEST],
	       tot.sat_sent[DOM0SIDE], tot.sat_packets[DOM0SIDE]);
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t domid;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "front") && argc == 2) {
		/* In the guest there is no xenstored socket: xs_open() falls
		 * back to the kernel's /dev/xen/xenbus. */
		me = "xen-domu[guest]:";
		xs = xs_open(0);
		if (!xs) {
			printf("xen-domu[guest]: xs_open: %s\n", strerror(errno));
			return 1;
		}
		r = front_main();
		xs_close(xs);
		printf("xen-domu[guest]: exit %d\n", r);
		return r;
	}
	if (argc >= 3 && !strcmp(argv[1], "back") &&
	    parse_u64(argv[2], 0x7fef, &domid, NULL) && domid != DOM0) {
		xs = xs_open(0);
		if (!xs) {
			printf("APQ-XEN-RESULT: FAIL domu: xs_open: %s\n", strerror(errno));
			return 1;
		}
		r = back_main((unsigned)domid, argc - 3, argv + 3);
		xs_close(xs);
		return r;
	}
	fprintf(stderr, "usage: xen-domu front\n       xen-domu back DOMID [SCENARIO...]\n");
	return 2;
}
