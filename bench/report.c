/* SPDX-License-Identifier: MIT */
/*
 * report.c - what apq-bench makes of its runs: per-row summaries, the table
 * with the ratios that matter and the targets, JSON, CSV and gnuplot plots.
 *
 * Summaries are medians over a row's runs (pps also min and max).  The
 * "wakeups" of a row are what its producer sent to its consumer per packet
 * (wk/pkt) and what the consumer sent back, waking a producer that waited
 * for space (sp/pkt).  apq counts its own (the library's statistics); for
 * the other queues they are the futex wake syscalls of each side's thread
 * (tracepoint), or unknown.  The tracepoint's count is kept for apq as well
 * (futex_wakes_per_pkt), as a check on the library's.
 *
 * Ratios against apq adaptive are paired: ratio i is taken between two runs
 * made right next to each other (apq-bench.c's schedule), and the report
 * gives the median of those ratios and their range.  The host's speed
 * swings by 3-4x from minute to minute; a pair of runs shares its minute,
 * a ratio of two rows' medians need not.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

double ratio(double x, double base)
{
	if (isnan(x) || isnan(base) || base == 0)
		return NAN;
	return x / base;
}

/* ---- summaries ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	/* NANs last. */
	if (isnan(x) || isnan(y))
		return isnan(x) - isnan(y);
	return (x > y) - (x < y);
}

/* The median of the known values of v[0..n) (sorts v); NAN if none. */
static double median(double *v, unsigned int n)
{
	unsigned int k = 0;

	qsort(v, n, sizeof(*v), cmp_double);
	while (k < n && !isnan(v[k]))
		k++;
	if (!k)
		return NAN;
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

static double per(double x, double n)
{
	return n > 0 ? x / n : NAN;
}

static bool run_failed(const struct row *row, const struct run_result *r)
{
	return r->err || r->bad || r->sent != r->received ||
	       r->prod.rescues || r->cons.rescues ||
	       (row->sc->kind != SCEN_IDLE && r->sent == 0);
}

/* One run's wakeups per packet: the producer's (*wpp) and the consumer's
 * (*swpp); NAN unknown. */
static void run_wakeups(const struct row *row, const struct run_result *r,
			double *wpp, double *swpp)
{
	double pk = (double)r->received;

	if (row->counts_wakeups) {
		*wpp = per((double)r->prod.wakeups, pk);
		*swpp = per((double)r->cons.wakeups, pk);
	} else if (r->pm.futex_wakes >= 0 && r->cm.futex_wakes >= 0) {
		*wpp = per((double)r->pm.futex_wakes, pk);
		*swpp = per((double)r->cm.futex_wakes, pk);
	} else {
		*wpp = *swpp = NAN;
	}
}

/* One run's producer CPU inside its send calls, s/s (in-process only). */
static double run_call_cpu(const struct row *row, const struct run_result *r)
{
	double call = per((double)r->call_cpu_ns, (double)r->pm.wall_ns);
	double prod = per((double)r->pm.cpu_ns, (double)r->pm.wall_ns);

	if (row->sc->processes != 1)
		return NAN;
	/* The calls' CPU is part of the thread's: a sampled window that
	 * caught more (the CPU clock's reads cost more than a send, and
	 * disturb it) is capped there. */
	return call > prod ? prod : call;
}

/* What the ratios compare. */
enum metric { M_PPS, M_CPU, M_COST, M_P50, M_WPP };

static double run_metric(const struct row *row, const struct run_result *r,
			 enum metric m)
{
	double wpp, swpp;

	switch (m) {
	case M_PPS:
		return r->t_ns > 0 ? (double)r->received * NS_PER_SEC /
				     (double)r->t_ns : 0;
	case M_CPU:
		return per((double)r->cm.cpu_ns, (double)r->cm.wall_ns);
	case M_COST:
		return run_metric(row, r, M_CPU) + run_call_cpu(row, r);
	case M_P50:
		return r->lat.count ? (double)hist_quantile(&r->lat, 0.5) : NAN;
	case M_WPP:
	default:
		run_wakeups(row, r, &wpp, &swpp);
		return wpp + (isnan(swpp) ? 0 : swpp);
	}
}

void row_summarise(struct row *row)
{
	unsigned int n = row->n_runs, i;
	double *v = calloc(n ? n : 1, sizeof(*v) * 17);
	double *pps = v, *wpp = v + n, *swpp = v + 2 * n, *fw = v + 3 * n,
	       *cc = v + 4 * n, *pc = v + 5 * n, *rq = v + 6 * n,
	       *p50 = v + 7 * n, *p99 = v + 8 * n, *p999 = v + 9 * n,
	       *st = v + 10 * n, *oc = v + 11 * n, *cs = v + 12 * n,
	       *ps = v + 13 * n, *fc = v + 14 * n, *pl = v + 15 * n,
	       *co = v + 16 * n;
	bool have_futex = true;

	row->failed = !row->skipped && n == 0;
	row->pmax = NAN;
	row->offered = row->arrived = row->badpk = row->rescues = 0;
	if (!v) {
		row->failed = true;
		return;
	}
	for (i = 0; i < n; i++) {
		const struct run_result *r = &row->runs[i];
		double pk = (double)r->received, wall;

		if (run_failed(row, r))
			row->failed = true;
		row->offered += r->sent;
		row->arrived += r->received;
		row->badpk += r->bad;
		row->rescues += r->prod.rescues + r->cons.rescues;
		pps[i] = run_metric(row, r, M_PPS);
		run_wakeups(row, r, &wpp[i], &swpp[i]);
		if (r->pm.futex_wakes < 0 || r->cm.futex_wakes < 0)
			have_futex = false;
		fw[i] = have_futex ? per((double)(r->pm.futex_wakes +
						  r->cm.futex_wakes), pk)
				   : NAN;
		fc[i] = have_futex ? per((double)(r->pm.futex_calls +
						  r->cm.futex_calls), pk)
				   : NAN;
		cs[i] = per((double)r->cons.sleeps, pk);
		ps[i] = per((double)r->prod.sleeps, pk);
		cc[i] = run_metric(row, r, M_CPU);
		pc[i] = per((double)r->pm.cpu_ns, (double)r->pm.wall_ns);
		pl[i] = run_call_cpu(row, r);
		co[i] = run_metric(row, r, M_COST);
		wall = (double)(r->pm.wall_ns > r->cm.wall_ns ? r->pm.wall_ns
							      : r->cm.wall_ns);
		rq[i] = per((double)(r->pm.runq_ns + r->cm.runq_ns), wall);
		st[i] = r->steal;
		oc[i] = r->other_cpu;
		if (r->lat.count) {
			p50[i] = run_metric(row, r, M_P50);
			p99[i] = (double)hist_quantile(&r->lat, 0.99);
			p999[i] = (double)hist_quantile(&r->lat, 0.999);
			if (isnan(row->pmax) || (double)r->lat.max > row->pmax)
				row->pmax = (double)r->lat.max;
		} else {
			p50[i] = p99[i] = p999[i] = NAN;
		}
	}
	row->wake_src = row->counts_wakeups ? "stats"
			: have_futex && n ? "futex" : "unknown";
	row->pps = median(pps, n);
	row->pps_min = n ? pps[0] : NAN;
	row->pps_max = n ? pps[n - 1] : NAN;
	row->wpp = median(wpp, n);
	row->swpp = median(swpp, n);
	row->futex_wpp = median(fw, n);
	row->futex_cpp = median(fc, n);
	row->csleep = median(cs, n);
	row->psleep = median(ps, n);
	row->ccpu = median(cc, n);
	row->pcpu = median(pc, n);
	row->pcall = median(pl, n);
	row->cost = median(co, n);
	row->runq = median(rq, n);
	row->p50 = median(p50, n);
	row->p99 = median(p99, n);
	row->p999 = median(p999, n);
	row->steal = median(st, n);
	row->other_cpu = median(oc, n);
	if (row->sc->kind == SCEN_IDLE)
		row->wpp = row->swpp = row->futex_wpp = row->futex_cpp =
			row->csleep = row->psleep = NAN;
	free(v);
}

/* The first error of a row's runs, or NULL. */
static const struct run_result *row_error(const struct row *row)
{
	unsigned int i;

	for (i = 0; i < row->n_runs; i++)
		if (run_failed(row, &row->runs[i]))
			return &row->runs[i];
	return NULL;
}

static const char *row_problem(const struct row *row, char *buf, size_t n)
{
	const struct run_result *r = row_error(row);

	if (!r)
		return n ? (snprintf(buf, n, "%s", row->n_runs ? "" : "no run"),
			    buf) : "";
	if (r->err)
		snprintf(buf, n, "%s: %s", r->where, strerror(-r->err));
	else if (r->bad)
		snprintf(buf, n, "%" PRIu64 " packets damaged or out of order",
			 r->bad);
	else if (r->prod.rescues || r->cons.rescues)
		snprintf(buf, n, "%" PRIu64 " lost wakeups caught",
			 r->prod.rescues + r->cons.rescues);
	else
		snprintf(buf, n, "offered %" PRIu64 ", arrived %" PRIu64,
			 r->sent, r->received);
	return buf;
}

/* ---- formatting ---- */

static const char *fmt_rate(char *b, size_t n, double x)
{
	if (isnan(x))
		snprintf(b, n, "-");
	else if (x >= 999.5e3)
		snprintf(b, n, "%.3gM", x / 1e6);
	else if (x >= 999.5)
		snprintf(b, n, "%.3gk", x / 1e3);
	else
		snprintf(b, n, "%.3g", x);
	return b;
}

static const char *fmt_ns(char *b, size_t n, double ns)
{
	if (isnan(ns))
		snprintf(b, n, "-");
	else if (ns < 1e3)
		snprintf(b, n, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(b, n, "%.3gus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(b, n, "%.3gms", ns / 1e6);
	else
		snprintf(b, n, "%.3gs", ns / 1e9);
	return b;
}

static const char *fmt_wk(char *b, size_t n, double x, const char *src)
{
	if (isnan(x))
		snprintf(b, n, "%s", strcmp(src, "unknown") ? "-" : "?");
	else if (x == 0)
		snprintf(b, n, "0");
	else
		snprintf(b, n, "%.2g", x);
	return b;
}

static const char *fmt_x(char *b, size_t n, double x)
{
	if (isnan(x))
		snprintf(b, n, "-");
	else
		snprintf(b, n, "%.3gx", x);
	return b;
}

static const char *fmt_cpu(char *b, size_t n, double x)
{
	if (isnan(x))
		snprintf(b, n, "-");
	else
		snprintf(b, n, "%.4f", x);
	return b;
}

static const char *wait_name(const struct row *r)
{
	return r->variant->wait == BENCH_WAIT_BUSY_POLLS ? "busy" : "sleep";
}

/* ---- the table ---- */

/* Rows in scenario order (the scenario table's), then as built. */
static int cmp_row(const void *a, const void *b)
{
	const struct row *const *x = a, *const *y = b;

	if ((*x)->sc != (*y)->sc)
		return (*x)->sc < (*y)->sc ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

static const struct row **rows_sorted(struct row *rows, size_t n)
{
	const struct row **s = calloc(n ? n : 1, sizeof(*s));
	size_t k;

	if (!s)
		return NULL;
	for (k = 0; k < n; k++)
		s[k] = &rows[k];
	qsort(s, n, sizeof(*s), cmp_row);
	return s;
}

static void print_header(FILE *f, const struct report_info *ri)
{
	struct utsname u;
	double load[3] = { 0, 0, 0 };

	uname(&u);
	if (getloadavg(load, 3) < 0)
		load[0] = NAN;
	fprintf(f, "apq-bench %s, %s, %s %s, %ld CPUs online, load %.2f; ",
		ri->preset, ri->date, u.sysname, u.release,
		sysconf(_SC_NPROCESSORS_ONLN), load[0]);
	if (ri->pl->cpu[0] >= 0)
		fprintf(f, "producer on CPU %d, consumer on CPU %d\n",
			ri->pl->cpu[0], ri->pl->cpu[1]);
	else
		fprintf(f, "fewer than 2 CPUs usable: nothing pinned\n");
	fprintf(f,
		"  pkt/s: median [min..max] over the runs (ping-pong: round "
		"trips/s).  wk/pkt: wakeups the producer\n"
		"  sent per packet, sp/pkt: the consumer's (for space; "
		"ping-pong: each side's per message it sent);\n"
		"  apq counts its own, the others' are futex wake syscalls "
		"of each side's thread (marked *),\n"
		"  ? = unknown%s.  cpu: CPU seconds per second (cons, prod; "
		"ping-pong: echoer, pinger);\n"
		"  call: the producer's inside the send calls (pacing left "
		"out; a sample of the calls, one per %d us);\n"
		"  cost = cons + call: what moving the packets costs "
		"(in-process rows).  oversub: sums over its pairs.\n"
		"  latency: packet timestamp to receipt (one packet in %d "
		"unpaced, all paced; ping-pong: round trip).\n"
		"  runq: time both threads were runnable but not running, "
		"per second: the machine's noise.\n\n",
		ri->futex_counting ? "" : " (futex counting unavailable)",
		CALL_SAMPLE_NS / 1000, LATENCY_SAMPLE);
}

static void print_row(FILE *f, const struct row *r)
{
	char rate[16], pps[16], lo[16], hi[16], range[40], wk[16], sp[16];
	char l50[16], l99[16], l999[16], lmax[16], prob[96], call[16];
	char cost[16];
	const char *mark = strcmp(r->wake_src, "futex") ? " " : "*";

	if (r->skipped) {
		fprintf(f, "%-13s %-18s %-5s %-15s skipped: %s\n", r->impl,
			r->variant->name, wait_name(r), r->sc->name,
			r->skipped);
		return;
	}
	snprintf(range, sizeof(range), "[%s..%s]",
		 fmt_rate(lo, sizeof(lo), r->pps_min),
		 fmt_rate(hi, sizeof(hi), r->pps_max));
	if (r->sc->rate_off > 0)
		snprintf(rate, sizeof(rate), "%s/%s",
			 fmt_rate(lo, sizeof(lo), r->sc->rate),
			 fmt_rate(hi, sizeof(hi), r->sc->rate_off));
	else if (r->sc->rate > 0)
		fmt_rate(rate, sizeof(rate), r->sc->rate);
	else
		snprintf(rate, sizeof(rate), "%s",
			 r->sc->kind == SCEN_IDLE ? "idle" : "max");
	fprintf(f, "%-13s %-18s %-5s %-15s %5s %6s %-17s %7s%s %7s%s "
		"%4.2f %4.2f %6s %6s %7s %7s %7s %7s %5.1f%%",
		r->impl, r->variant->name, wait_name(r), r->sc->name, rate,
		fmt_rate(pps, sizeof(pps), r->pps), range,
		fmt_wk(wk, sizeof(wk), r->wpp, r->wake_src), mark,
		fmt_wk(sp, sizeof(sp), r->swpp, r->wake_src), mark,
		isnan(r->ccpu) ? 0.0 : r->ccpu, isnan(r->pcpu) ? 0.0 : r->pcpu,
		fmt_cpu(call, sizeof(call), r->pcall),
		fmt_cpu(cost, sizeof(cost), r->cost),
		fmt_ns(l50, sizeof(l50), r->p50),
		fmt_ns(l99, sizeof(l99), r->p99),
		fmt_ns(l999, sizeof(l999), r->p999),
		fmt_ns(lmax, sizeof(lmax), r->pmax),
		isnan(r->runq) ? 0.0 : 100 * r->runq);
	if (r->failed)
		fprintf(f, "  FAILED: %s", row_problem(r, prob, sizeof(prob)));
	fprintf(f, "\n");
}

/* The row of impl (its name starts with impl_prefix), variant (NULL: its
 * first) and scenario name, run and not failed; NULL if none. */
static const struct row *find(struct row *rows, size_t n, const char *impl,
			      const char *variant, const char *scen)
{
	size_t k;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];

		if (strncmp(r->impl, impl, strlen(impl)) != 0 ||
		    strcmp(r->sc->name, scen) != 0 || r->skipped ||
		    r->n_runs == 0)
			continue;
		if (variant && strcmp(r->variant->name, variant) != 0)
			continue;
		return r;
	}
	return NULL;
}

/* The distinct (impl, variant) pairs other than apq's, of one kind. */
struct peer_col {
	const char *impl;
	const char *variant;
};

static size_t peer_cols(struct row *rows, size_t n, unsigned int processes,
			struct peer_col *cols, size_t max)
{
	size_t k, c, nc = 0;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];

		if (!strcmp(r->impl, "apq") || r->sc->processes != processes)
			continue;
		for (c = 0; c < nc; c++)
			if (!strcmp(cols[c].impl, r->impl) &&
			    !strcmp(cols[c].variant, r->variant->name))
				break;
		if (c == nc && nc < max)
			cols[nc++] = (struct peer_col){ r->impl,
							r->variant->name };
	}
	return nc;
}

static double metric(const struct row *r, enum metric m)
{
	if (!r)
		return NAN;
	switch (m) {
	case M_PPS:
		return r->pps;
	case M_CPU:
		return r->ccpu;
	case M_COST:
		return r->cost;
	case M_P50:
		return r->p50;
	case M_WPP:
	default:
		return r->wpp + (isnan(r->swpp) ? 0 : r->swpp);
	}
}

/* ---- paired ratios ---- */

/* A ratio over pairs of runs: their median and range. */
struct spread {
	double med, min, max;	/* NAN without a pair */
	unsigned int n;		/* pairs with both values known */
	bool crosses_one;	/* min < 1 < max: the pairs disagree on which
				 * is ahead, so the comparison is not decided */
};

/*
 * a's metric over b's, pair by pair: a row's run i with its anchor's run
 * pair[i], next to which it ran; two rows of a scenario that are not each
 * other's anchor, their runs of the same round.
 */
static struct spread paired(const struct row *a, const struct row *b,
			    enum metric m)
{
	struct spread s = { NAN, NAN, NAN, 0, false };
	unsigned int n, i, ia, ib;
	double *x, v;

	if (!a || !b)
		return s;
	if (b->anchor == a)
		n = b->n_runs;
	else if (a->anchor == b)
		n = a->n_runs;
	else
		n = a->n_runs < b->n_runs ? a->n_runs : b->n_runs;
	x = calloc(n ? n : 1, sizeof(*x));
	if (!x)
		return s;
	for (i = 0; i < n; i++) {
		ia = b->anchor == a ? b->pair[i] : i;
		ib = a->anchor == b ? a->pair[i] : i;
		if (ia >= a->n_runs || ib >= b->n_runs)
			continue;
		v = ratio(run_metric(a, &a->runs[ia], m),
			  run_metric(b, &b->runs[ib], m));
		if (!isnan(v))
			x[s.n++] = v;
	}
	if (s.n) {
		s.med = median(x, s.n);		/* sorts x */
		s.min = x[0];
		s.max = x[s.n - 1];
		s.crosses_one = s.min < 1 && s.max > 1;
	}
	free(x);
	return s;
}

/* Three significant digits, and no exponent from 1000 up. */
static const char *fmt_g3(char *b, size_t n, double x)
{
	snprintf(b, n, x >= 1000 ? "%.0f" : "%.3g", x);
	return b;
}

/* "1.18x [0.953..1.31]?": the median of the paired ratios, their range
 * (from two pairs on), and "?" when the range crosses 1. */
static const char *fmt_spread(char *b, size_t n, const struct spread *s)
{
	char med[16], lo[16], hi[16];

	if (!s->n)
		snprintf(b, n, "-");
	else if (s->n == 1)
		snprintf(b, n, "%sx", fmt_g3(med, sizeof(med), s->med));
	else
		snprintf(b, n, "%sx [%s..%s]%s",
			 fmt_g3(med, sizeof(med), s->med),
			 fmt_g3(lo, sizeof(lo), s->min),
			 fmt_g3(hi, sizeof(hi), s->max),
			 s->crosses_one ? "?" : "");
	return b;
}

/* `, "key": {"median": .., "min": .., "max": .., "n": .., "crosses_one":
 * ..}`, or null without a pair. */
static void json_spread(FILE *f, const char *key, const struct spread *s)
{
	if (!s->n) {
		fprintf(f, ", \"%s\": null", key);
		return;
	}
	fprintf(f, ", \"%s\": {\"n\": %u", key, s->n);
	report_json_num(f, "median", s->med);
	report_json_num(f, "min", s->min);
	report_json_num(f, "max", s->max);
	fprintf(f, ", \"crosses_one\": %s}", s->crosses_one ? "true" : "false");
}

/* The width of a ratio with its range in the tables. */
#define SPREAD_W	24

/* One matrix of apq adaptive / each peer (a line per peer, a column per
 * scenario of `groups`). */
static void print_matrix(FILE *f, struct row *rows, size_t n,
			 const char *title, const char *groups,
			 unsigned int processes, enum metric m)
{
	struct peer_col cols[32];
	const struct row *apq[16];
	size_t nc = peer_cols(rows, n, processes, cols, 32), na = 0, c, k;
	char b[64], h[48];

	/* The scenarios: where apq adaptive ran, in table order. */
	for (k = 0; k < n && na < 16; k++) {
		const struct row *r = &rows[k];

		if (strstr(groups, r->sc->group) &&
		    r->sc->processes == processes && !strcmp(r->impl, "apq") &&
		    !strcmp(r->variant->name, "adaptive") && !r->skipped &&
		    r->n_runs)
			apq[na++] = r;
	}
	if (!na || !nc)
		return;
	fprintf(f, "\n%s\n  %-30s", title, "peer");
	for (k = 0; k < na; k++)
		fprintf(f, " %*s", SPREAD_W, apq[k]->sc->name);
	fprintf(f, "\n");
	for (c = 0; c < nc; c++) {
		snprintf(h, sizeof(h), "%s %s", cols[c].impl, cols[c].variant);
		fprintf(f, "  %-30s", h);
		for (k = 0; k < na; k++) {
			struct spread x = paired(apq[k],
				find(rows, n, cols[c].impl, cols[c].variant,
				     apq[k]->sc->name), m);

			fprintf(f, " %*s", SPREAD_W,
				fmt_spread(b, sizeof(b), &x));
		}
		fprintf(f, "\n");
	}
}

/* apq adaptive's wakeups (both directions) / apq always's. */
static void print_wakeup_ratios(FILE *f, struct row *rows, size_t n)
{
	char a[16], b[16], x[64];
	bool any = false;
	size_t k;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k], *al;
		struct spread s;

		if (strcmp(r->impl, "apq") || strcmp(r->variant->name,
						     "adaptive") ||
		    r->sc->kind == SCEN_IDLE || r->skipped)
			continue;
		al = find(rows, n, "apq", "always", r->sc->name);
		if (!al)
			continue;
		if (!any) {
			fprintf(f, "\nwakeups per packet, both directions: apq "
				"adaptive vs apq always (ALWAYS_NOTIFY)\n"
				"  %-16s %5s %9s %9s %*s\n", "scenario",
				"procs", "adaptive", "always", SPREAD_W,
				"adapt/alw");
			any = true;
		}
		s = paired(r, al, M_WPP);
		fprintf(f, "  %-16s %5u %9s %9s %*s\n", r->sc->name,
			r->sc->processes,
			fmt_wk(a, sizeof(a), metric(r, M_WPP), r->wake_src),
			fmt_wk(b, sizeof(b), metric(al, M_WPP), al->wake_src),
			SPREAD_W, fmt_spread(x, sizeof(x), &s));
	}
}

/* ---- targets ---- */

enum verdict { T_MET, T_MISSED, T_UNKNOWN };

static const char *verdict_name[] = { "met", "MISSED", "n/a" };

static enum verdict judge(double x, double bound, bool at_least)
{
	if (isnan(x))
		return T_UNKNOWN;
	return (at_least ? x >= bound : x <= bound) ? T_MET : T_MISSED;
}

static void target(FILE *f, const char *what, enum verdict v, const char *how)
{
	fprintf(f, "  %-7s %-58s %s\n", verdict_name[v], what, how);
}

/* "x (a vs b pkt/s)": a paired pkt/s ratio and the two medians. */
static const char *how_pps(char *how, size_t n, const struct row *a,
			   const struct row *b, const struct spread *x)
{
	char sx[64], x1[24], x2[24];

	snprintf(how, n, "%s (%s vs %s pkt/s)", fmt_spread(sx, sizeof(sx), x),
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)));
	return how;
}

static void print_targets(FILE *f, struct row *rows, size_t n)
{
	const struct row *a, *b, *c;
	char how[200], x1[24], x2[24], sx[64], bx[24];
	double worst = NAN;
	struct spread x;
	size_t k;

	fprintf(f, "\ntargets (apq = apq adaptive, the default policy; "
		"ratios as above)\n");

	a = find(rows, n, "apq", "adaptive", "single-8");
	b = find(rows, n, "ck_ring", NULL, "single-8");
	c = find(rows, n, "apq", "busy", "single-8");
	x = paired(a, b, M_PPS);
	snprintf(how, sizeof(how), "%s (%s vs %s pkt/s; apq busy %s)",
		 fmt_spread(sx, sizeof(sx), &x),
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)),
		 fmt_x(bx, sizeof(bx), paired(c, b, M_PPS).med));
	target(f, "unpaced 8 B single: apq >= 2.0x ck_ring SPSC",
	       judge(x.med, 2.0, true), how);

	a = find(rows, n, "apq", "adaptive", "burst32-8");
	b = find(rows, n, "rte_ring", "busy-poll-burst", "burst32-8");
	c = find(rows, n, "apq", "busy", "burst32-8");
	x = paired(a, b, M_PPS);
	snprintf(how, sizeof(how), "%s (%s vs %s pkt/s; apq busy %s)",
		 fmt_spread(sx, sizeof(sx), &x),
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)),
		 fmt_x(bx, sizeof(bx), paired(c, b, M_PPS).med));
	target(f, "unpaced 8 B burst-32: apq >= 1.0x rte_ring burst",
	       judge(x.med, 1.0, true), how);

	c = NULL;
	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];

		if (!strcmp(r->impl, "apq") &&
		    !strcmp(r->variant->name, "adaptive") &&
		    !strcmp(r->sc->group, "throughput") && !r->skipped &&
		    r->n_runs && (isnan(worst) || metric(r, M_WPP) > worst)) {
			worst = metric(r, M_WPP);
			c = r;
		}
	}
	a = find(rows, n, "apq", "adaptive", "single-8");
	snprintf(how, sizeof(how), "single-8 %.2g; worst %.2g (%s), both "
		 "directions", metric(a, M_WPP), worst, c ? c->sc->name : "-");
	target(f, "wake syscalls/packet <= 0.001 unpaced",
	       judge(worst, 0.001, false), how);

	a = find(rows, n, "apq", "adaptive", "load-1M");
	b = find(rows, n, "apq", "always", "load-1M");
	snprintf(how, sizeof(how), "%.2g (always: %.2g)", metric(a, M_WPP),
		 metric(b, M_WPP));
	target(f, "wake syscalls/packet <= 0.01 at 1M pkt/s",
	       judge(metric(a, M_WPP), 0.01, false), how);

	a = find(rows, n, "apq", "adaptive", "load-10k");
	b = find(rows, n, "mutex-condvar", NULL, "load-10k");
	x = paired(a, b, M_CPU);
	snprintf(how, sizeof(how), "%s (%.3f vs %.3f)",
		 fmt_spread(sx, sizeof(sx), &x), metric(a, M_CPU),
		 metric(b, M_CPU));
	target(f, "10k pkt/s: consumer CPU <= 0.5x mutex+condvar",
	       judge(x.med, 0.5, false), how);
	x = paired(a, b, M_P50);
	snprintf(how, sizeof(how), "%s (%s vs %s)",
		 fmt_spread(sx, sizeof(sx), &x),
		 fmt_ns(x1, sizeof(x1), metric(a, M_P50)),
		 fmt_ns(x2, sizeof(x2), metric(b, M_P50)));
	target(f, "10k pkt/s: p50 latency <= mutex+condvar's",
	       judge(x.med, 1.0, false), how);

	a = find(rows, n, "apq", "adaptive", "idle");
	snprintf(how, sizeof(how), "%.4f of a core", metric(a, M_CPU));
	target(f, "idle: consumer CPU < 1% of a core",
	       isnan(metric(a, M_CPU)) ? T_UNKNOWN :
	       metric(a, M_CPU) < 0.01 ? T_MET : T_MISSED, how);

	a = find(rows, n, "apq", "adaptive", "x-stream-8");
	b = find(rows, n, "iceoryx", NULL, "x-stream-8");
	c = find(rows, n, "boost-mq", NULL, "x-stream-8");
	x = paired(a, b, M_PPS);
	target(f, "2 processes, 8 B: apq >= 10x iceoryx",
	       judge(x.med, 10, true), how_pps(how, sizeof(how), a, b, &x));
	x = paired(a, c, M_PPS);
	target(f, "2 processes, 8 B: apq >= 5x Boost message_queue",
	       judge(x.med, 5, true), how_pps(how, sizeof(how), a, c, &x));

	a = find(rows, n, "apq", "adaptive", "x-pingpong-1k");
	b = find(rows, n, "apq", "always", "x-pingpong-1k");
	x = paired(a, b, M_P50);
	snprintf(how, sizeof(how), "round trip p50 %s vs %s (%s)",
		 fmt_ns(x1, sizeof(x1), metric(a, M_P50)),
		 fmt_ns(x2, sizeof(x2), metric(b, M_P50)),
		 fmt_spread(sx, sizeof(sx), &x));
	target(f, "blocking ping-pong (1k/s) no slower than futex/msg",
	       judge(x.med, 1.0, false), how);
	a = find(rows, n, "apq", "adaptive", "x-pingpong");
	b = find(rows, n, "apq", "always", "x-pingpong");
	x = paired(a, b, M_PPS);
	snprintf(how, sizeof(how), "%s vs %s round trips/s (%s)",
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)),
		 fmt_spread(sx, sizeof(sx), &x));
	target(f, "back-to-back ping-pong no slower than futex/msg",
	       judge(x.med, 1.0, true), how);
	fprintf(f, "  (futex/msg baseline: apq ALWAYS_NOTIFY across the two "
		"processes: one futex wake per message,\n"
		"   a futex wait whenever the ring is empty; same ring and "
		"copy, so only the wakeup policy differs)\n");

	a = find(rows, n, "apq", "adaptive", "x-stream-64k-zc");
	b = find(rows, n, "iceoryx", NULL, "x-stream-64k-zc");
	x = paired(a, b, M_PPS);
	target(f, "64 KiB zero copy: apq reserve/commit vs iceoryx loan",
	       x.n ? T_MET : T_UNKNOWN, how_pps(how, sizeof(how), a, b, &x));
}

/* ---- goals ---- */

/*
 * ADAPTIVE against the fixed settings, from this run's rows: on each steady
 * load and bursty, its cost and p50 against the cheapest fixed setting's;
 * on load-shift, against each fixed setting.  A report, not a test.
 */
static const char *const fixed_settings[] = {
	"spin-0us", "spin-1us", "spin-10us", "spin-100us", "busy", "always",
};
#define N_FIXED		(sizeof(fixed_settings) / sizeof(fixed_settings[0]))
#define GOAL_COST	1.1	/* steady: cost <= 1.1x the cheapest's */
#define GOAL_P50	1.25	/* and p50 <= 1.25x its */
#define SHIFT_BETTER	0.8	/* load-shift: 20% better on one */
#define SHIFT_WORSE	1.1	/* and not 10% worse on the other */

static const char *const steady_scens[] = {
	"load-1k", "load-10k", "load-100k", "load-1M", "bursty",
};
#define N_STEADY	(sizeof(steady_scens) / sizeof(steady_scens[0]))

struct goal {
	const char *scen, *versus;
	double cost, p50, vcost, vp50;
	struct spread cost_x, p50_x;	/* paired: adaptive / versus */
	bool pass;
	bool behind;		/* the versus setting fell behind the load */
};

/*
 * Whether a row carried its scenario's load: within 5 % of the most any
 * apq setting delivered in it (which is the offered rate, unless every
 * setting fell behind).  A setting that fell behind looks cheap because it
 * did less; it is no setting to compare with.
 */
#define KEPT_UP		0.95

static bool kept_up(struct row *rows, size_t n, const struct row *r)
{
	double best = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(rows[i].impl, "apq") && rows[i].sc == r->sc &&
		    rows[i].pps > best)
			best = rows[i].pps;
	return r->pps >= KEPT_UP * best;
}

static struct goal goal_versus(const struct row *a, const struct row *b,
			       const char *scen)
{
	return (struct goal){
		.scen = scen, .versus = b->variant->name,
		.cost = a->cost, .p50 = a->p50,
		.vcost = b->cost, .vp50 = b->p50,
		.cost_x = paired(a, b, M_COST), .p50_x = paired(a, b, M_P50),
	};
}

static size_t goals_compute(struct row *rows, size_t n, struct goal *g,
			    size_t *n_steady)
{
	const struct row *a, *b, *cheap;
	size_t k, i, m = 0;

	for (k = 0; k < N_STEADY; k++) {
		a = find(rows, n, "apq", "adaptive", steady_scens[k]);
		cheap = NULL;
		for (i = 0; i < N_FIXED; i++) {
			b = find(rows, n, "apq", fixed_settings[i],
				 steady_scens[k]);
			if (b && !isnan(b->cost) && kept_up(rows, n, b) &&
			    (!cheap || b->cost < cheap->cost))
				cheap = b;
		}
		if (!a || !cheap)
			continue;
		g[m] = goal_versus(a, cheap, steady_scens[k]);
		g[m].pass = g[m].cost_x.med <= GOAL_COST &&
			    g[m].p50_x.med <= GOAL_P50 && kept_up(rows, n, a);
		m++;
	}
	*n_steady = m;
	a = find(rows, n, "apq", "adaptive", "load-shift");
	for (i = 0; a && i < N_FIXED; i++) {
		b = find(rows, n, "apq", fixed_settings[i], "load-shift");
		if (!b)
			continue;
		g[m] = goal_versus(a, b, "load-shift");
		g[m].behind = !kept_up(rows, n, b);
		/* A setting that fell behind lost on its own terms. */
		g[m].pass = g[m].behind ||
			    (g[m].cost_x.med <= SHIFT_BETTER &&
			     g[m].p50_x.med <= SHIFT_WORSE) ||
			    (g[m].p50_x.med <= SHIFT_BETTER &&
			     g[m].cost_x.med <= SHIFT_WORSE);
		g[m].pass = g[m].pass && kept_up(rows, n, a);
		m++;
	}
	return m;
}

#define GOALS_MAX	(N_STEADY + N_FIXED)

/*
 * Throughput goals: one row's pkt/s over another's in one scenario, at
 * least `bound`.  null (send and receive only hand the packet over) is the
 * harness's own ceiling; bare-ring (a busy-polling ring without wakeups or
 * validation) the ceiling for any ring.
 */
struct pps_goal_spec {
	const char *key;		/* in the JSON */
	const char *scen;
	const char *impl, *variant;	/* variant NULL: the impl's first */
	const char *vs_impl, *vs_variant;	/* vs_impl NULL: the fastest
						 * of other_queues */
	double bound;
};

static const struct pps_goal_spec pps_goal_specs[] = {
	/* The harness moves 5x what apq does: it takes under 20 % of
	 * apq's time, so that apq's rows measure apq. */
	{ "single-8 null / apq", "single-8", "null", NULL, "apq", "adaptive",
	  5.0 },
	{ "single-8 apq / fastest other queue", "single-8", "apq",
	  "adaptive", NULL, NULL, 1.0 },
	{ "burst32-8 apq / fastest other queue", "burst32-8", "apq",
	  "adaptive", NULL, NULL, 1.0 },
	/* Wakeups and validation cost apq under 20 % of the bare ring. */
	{ "single-8 apq / bare-ring", "single-8", "apq", "adaptive",
	  "bare-ring", NULL, 0.8 },
	{ "x-stream-8 apq / bare-ring", "x-stream-8", "apq", "adaptive",
	  "bare-ring", NULL, 0.8 },
};
#define N_PPS_GOALS	(sizeof(pps_goal_specs) / sizeof(pps_goal_specs[0]))

/* The queues one would otherwise pick: apq's competition.  null and
 * bare-ring are measures, not queues to pick. */
static const char *const other_queues[] = {
	"ck_ring", "rte_ring", "wfcqueue", "moodycamel", "mutex-condvar",
};
#define N_OTHER_QUEUES	(sizeof(other_queues) / sizeof(other_queues[0]))

struct pps_goal {
	const struct pps_goal_spec *spec;
	const struct row *row, *vs;
	struct spread x;	/* paired: row / vs */
	bool pass;
	char why[64];		/* why it was skipped; "" if it was not */
};

/* The other queue with the most pkt/s in scenario scen, or NULL. */
static const struct row *fastest_other(struct row *rows, size_t n,
				       const char *scen)
{
	const struct row *best = NULL;
	size_t k, q;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];

		if (strcmp(r->sc->name, scen) || r->skipped || !r->n_runs)
			continue;
		for (q = 0; q < N_OTHER_QUEUES; q++)
			if (!strcmp(r->impl, other_queues[q]))
				break;
		if (q < N_OTHER_QUEUES && (!best || r->pps > best->pps))
			best = r;
	}
	return best;
}

/* The throughput goals of the scenarios this run has rows in (the others
 * are left out, not skipped).  @return how many. */
static size_t pps_goals_compute(struct row *rows, size_t n, struct pps_goal *g)
{
	size_t i, k, m = 0;

	for (i = 0; i < N_PPS_GOALS; i++) {
		const struct pps_goal_spec *sp = &pps_goal_specs[i];
		struct pps_goal *o = &g[m];

		for (k = 0; k < n && strcmp(rows[k].sc->name, sp->scen); k++)
			;
		if (k == n)
			continue;
		*o = (struct pps_goal){ .spec = sp };
		o->row = find(rows, n, sp->impl, sp->variant, sp->scen);
		o->vs = sp->vs_impl ? find(rows, n, sp->vs_impl, sp->vs_variant,
					   sp->scen)
				    : fastest_other(rows, n, sp->scen);
		if (!o->row || !o->vs)
			snprintf(o->why, sizeof(o->why), "no %s row ran in %s",
				 !o->row ? sp->impl : sp->vs_impl ? sp->vs_impl
				 : "other queue's", sp->scen);
		o->x = paired(o->row, o->vs, M_PPS);
		o->pass = o->x.med >= sp->bound;
		m++;
	}
	return m;
}

/* "impl variant" of a goal's row, or the name the spec gives it. */
static const char *pps_goal_name(char *b, size_t n, const struct row *r,
				 const char *impl)
{
	if (r)
		snprintf(b, n, "%s %s", r->impl, r->variant->name);
	else
		snprintf(b, n, "%s", impl ? impl : "fastest other queue");
	return b;
}

static void print_goals(FILE *f, struct row *rows, size_t n)
{
	struct goal g[GOALS_MAX];
	struct pps_goal pg[N_PPS_GOALS];
	size_t ns, m = goals_compute(rows, n, g, &ns), k;
	size_t np = pps_goals_compute(rows, n, pg);
	char a[48], b[48], cx[64], px[64], what[112], bound[16];

	if (!m && !np)
		return;
	fprintf(f, "\ngoals (apq adaptive; cost = cons + call, CPU s/s; "
		"ratios as above; a report, not a test)\n");
	if (ns)
		fprintf(f, "  steady loads and bursty, vs the cheapest fixed "
			"setting: cost <= %.2gx and p50 <= %.3gx\n", GOAL_COST,
			GOAL_P50);
	for (k = 0; k < m; k++) {
		if (k == ns)
			fprintf(f, "  load-shift, vs each fixed setting: %.0f%% "
				"better on cost or p50, not %.0f%% worse on "
				"the other\n", 100 * (1 - SHIFT_BETTER),
				100 * (SHIFT_WORSE - 1));
		fprintf(f, "  %-11s vs %-10s cost %.4f/%.4f = %-*s p50 "
			"%7s/%-7s = %-*s %s\n", g[k].scen, g[k].versus,
			g[k].cost, g[k].vcost,
			SPREAD_W, fmt_spread(cx, sizeof(cx), &g[k].cost_x),
			fmt_ns(a, sizeof(a), g[k].p50),
			fmt_ns(b, sizeof(b), g[k].vp50),
			SPREAD_W, fmt_spread(px, sizeof(px), &g[k].p50_x),
			g[k].pass ? "PASS" : "MISS");
		if (g[k].behind)
			fprintf(f, "  %-11s    (%s fell behind the load)\n", "",
				g[k].versus);
	}
	if (np)
		fprintf(f, "  pkt/s, against the harness alone (null), the "
			"fastest other queue and a bare busy-polling ring\n");
	for (k = 0; k < np; k++) {
		snprintf(what, sizeof(what), "%s / %s",
			 pps_goal_name(a, sizeof(a), pg[k].row,
				       pg[k].spec->impl),
			 pps_goal_name(b, sizeof(b), pg[k].vs,
				       pg[k].spec->vs_impl));
		snprintf(bound, sizeof(bound), "%.2gx", pg[k].spec->bound);
		if (pg[k].why[0])
			fprintf(f, "  %-11s %-44s >= %-4s skipped: %s\n",
				pg[k].spec->scen, what, bound, pg[k].why);
		else
			fprintf(f, "  %-11s %-44s >= %-4s %-*s %s\n",
				pg[k].spec->scen, what, bound, SPREAD_W,
				fmt_spread(cx, sizeof(cx), &pg[k].x),
				pg[k].pass ? "PASS" : "MISS");
	}
}

static void json_goals(FILE *f, struct row *rows, size_t n,
		       const struct report_info *ri)
{
	struct goal g[GOALS_MAX];
	struct pps_goal pg[N_PPS_GOALS];
	size_t ns, m = goals_compute(rows, n, g, &ns), k;
	size_t np = pps_goals_compute(rows, n, pg);
	char name[48];

	fprintf(f, "  {\"impl\": \"apq\", \"policy\": \"adaptive\", "
		"\"scenario\": \"-\", \"group\": \"goals\"");
	report_json_num(f, "steady_cost_max", GOAL_COST);
	report_json_num(f, "steady_p50_max", GOAL_P50);
	report_json_num(f, "shift_better", SHIFT_BETTER);
	report_json_num(f, "shift_worse_max", SHIFT_WORSE);
	fprintf(f, ", \"goals\": {");
	for (k = 0; k < m; k++) {
		fprintf(f, "%s\"%s%s%s\": {", k ? ", " : "", g[k].scen,
			k < ns ? "" : " vs ", k < ns ? "" : g[k].versus);
		report_json_str(f, "versus", g[k].versus);
		report_json_num(f, "cost", g[k].cost);
		report_json_num(f, "versus_cost", g[k].vcost);
		report_json_num(f, "cost_ratio", g[k].cost_x.med);
		json_spread(f, "cost_ratio_paired", &g[k].cost_x);
		report_json_num(f, "p50_ns", g[k].p50);
		report_json_num(f, "versus_p50_ns", g[k].vp50);
		report_json_num(f, "p50_ratio", g[k].p50_x.med);
		json_spread(f, "p50_ratio_paired", &g[k].p50_x);
		fprintf(f, ", \"versus_fell_behind\": %s",
			g[k].behind ? "true" : "false");
		fprintf(f, ", \"skipped\": false, \"pass\": %s}",
			g[k].pass ? "true" : "false");
	}
	for (k = 0; k < np; k++) {
		fprintf(f, "%s\"%s\": {", m + k ? ", " : "", pg[k].spec->key);
		report_json_str(f, "of", pps_goal_name(name, sizeof(name),
				pg[k].row, pg[k].spec->impl));
		fprintf(f, ", ");
		report_json_str(f, "versus", pps_goal_name(name, sizeof(name),
				pg[k].vs, pg[k].spec->vs_impl));
		report_json_num(f, "bound", pg[k].spec->bound);
		report_json_num(f, "pps_ratio", pg[k].x.med);
		json_spread(f, "pps_ratio_paired", &pg[k].x);
		fprintf(f, ", \"skipped\": %s", pg[k].why[0] ? "true" : "false");
		if (pg[k].why[0]) {
			fprintf(f, ", ");
			report_json_str(f, "why", pg[k].why);
		}
		fprintf(f, ", \"pass\": %s}", pg[k].pass ? "true" : "false");
	}
	fprintf(f, "}, ");
	report_json_str(f, "date", ri->date);
	fprintf(f, "}");
}

static bool goals_any(struct row *rows, size_t n)
{
	struct goal g[GOALS_MAX];
	struct pps_goal pg[N_PPS_GOALS];
	size_t ns;

	return goals_compute(rows, n, g, &ns) > 0 ||
	       pps_goals_compute(rows, n, pg) > 0;
}

/* Whether a row has paired runs with its anchor, to give ratios of. */
static bool has_pairs(const struct row *r)
{
	return r->anchor && !r->skipped && r->n_runs && !r->anchor->skipped &&
	       r->anchor->n_runs;
}

/*
 * Every ratio of apq adaptive to another row of its scenario, paired: the
 * matrices', the targets' and the wakeup ratios' (the goals have theirs).
 */
static void json_ratios(FILE *f, struct row *rows, size_t n,
			const struct report_info *ri)
{
	const char *sep = "";
	size_t k;

	fprintf(f, "  {\"impl\": \"apq\", \"policy\": \"adaptive\", "
		"\"scenario\": \"-\", \"group\": \"ratios\", ");
	report_json_str(f, "of", "apq adaptive / versus: the median and "
			"range of the ratios of runs made next to each other");
	fprintf(f, ", \"ratios\": [");
	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];
		struct spread s;

		if (!has_pairs(r))
			continue;
		fprintf(f, "%s\n    {", sep);
		report_json_str(f, "scenario", r->sc->name);
		fprintf(f, ", \"processes\": %u, ", r->sc->processes);
		report_json_str(f, "versus_impl", r->impl);
		fprintf(f, ", ");
		report_json_str(f, "versus_policy", r->variant->name);
		s = paired(r->anchor, r, M_PPS);
		json_spread(f, "pps", &s);
		s = paired(r->anchor, r, M_CPU);
		json_spread(f, "consumer_cpu", &s);
		s = paired(r->anchor, r, M_COST);
		json_spread(f, "cost", &s);
		s = paired(r->anchor, r, M_P50);
		json_spread(f, "p50", &s);
		s = paired(r->anchor, r, M_WPP);
		json_spread(f, "wakeups", &s);
		fprintf(f, "}");
		sep = ",";
	}
	fprintf(f, "\n  ], ");
	report_json_str(f, "date", ri->date);
	fprintf(f, "}");
}

static bool ratios_any(struct row *rows, size_t n)
{
	size_t k;

	for (k = 0; k < n && !has_pairs(&rows[k]); k++)
		;
	return k < n;
}

static void print_noise(FILE *f, struct row *rows, size_t n,
			const struct report_info *ri)
{
	double *rq = calloc(n ? n : 1, sizeof(double) * 3);
	double *st = rq + n, *oc = rq + 2 * n, worst = 0;
	size_t k, m = 0;

	if (!rq)
		return;
	for (k = 0; k < n; k++) {
		if (rows[k].skipped || !rows[k].n_runs)
			continue;
		rq[m] = rows[k].runq;
		st[m] = rows[k].steal;
		oc[m] = rows[k].other_cpu;
		if (rows[k].runq > worst)
			worst = rows[k].runq;
		m++;
	}
	fprintf(f, "\nnoise: run-queue wait of the two sides, median %.2f%% "
		"(worst row %.1f%%); other load %.2f CPUs; steal %.2f CPUs\n",
		100 * median(rq, (unsigned int)m), 100 * worst,
		median(oc, (unsigned int)m), median(st, (unsigned int)m));
	if (median(rq, (unsigned int)m) > 0.05 || median(oc, (unsigned int)m) >
	    0.25)
		fprintf(f, "  the machine was busy with other work: busy-polling "
			"rows lose most, sleeping rows least;\n"
			"  compare rows of this run with each other, and "
			"repeat (--full) before trusting a ratio\n");
	fprintf(f, "elapsed: %.0f s\n", ri->elapsed_s);
	free(rq);
}

void report_table(FILE *f, struct row *rows, size_t n,
		  const struct report_info *ri)
{
	const struct row **s = rows_sorted(rows, n);
	const char *group = NULL;
	size_t k;

	if (!s)
		return;
	print_header(f, ri);
	if (n == 0) {	/* only the netback section */
		free(s);
		return;
	}
	fprintf(f, "%-13s %-18s %-5s %-15s %5s %6s %-17s %8s %8s %4s %4s "
		"%6s %6s %7s %7s %7s %7s %6s\n", "impl", "policy", "wait",
		"scenario", "rate", "pkt/s", "[min..max]", "wk/pkt", "sp/pkt",
		"cons", "prod", "call", "cost", "p50", "p99", "p99.9", "max",
		"runq");
	for (k = 0; k < n; k++) {
		if (!group || strcmp(group, s[k]->sc->group)) {
			group = s[k]->sc->group;
			fprintf(f, "-- %s%s\n", group,
				s[k]->sc->processes == 2 ? " (two processes)"
							 : "");
		}
		print_row(f, s[k]);
	}
	free(s);
	if (ri->n_missing) {
		fprintf(f, "\nskipped queues:\n");
		for (k = 0; k < ri->n_missing; k++)
			fprintf(f, "  %-16s %s\n", ri->missing[k]->name,
				ri->missing[k]->why);
	}
	fprintf(f, "\nbusy-polling queues (wait = busy) never sleep: their "
		"consumer burns a core whatever the load.\n"
		"\nratios: each run of a row ran right next to a run of apq "
		"adaptive; a ratio is the median of\n"
		"  the pairs' ratios, [min..max] of them (from two pairs on); "
		"? : the range crosses 1, the pairs\n"
		"  disagree on which is ahead: not decided.\n");
	print_matrix(f, rows, n, "throughput, apq adaptive / peer (> 1: apq "
		     "moves more packets per second)", "throughput", 1, M_PPS);
	print_matrix(f, rows, n, "consumer CPU, apq adaptive / peer (< 1: apq "
		     "uses less)", "load bursty idle", 1, M_CPU);
	print_matrix(f, rows, n, "p50 latency, apq adaptive / peer (< 1: apq "
		     "is faster)", "load bursty", 1, M_P50);
	print_matrix(f, rows, n, "two processes, apq adaptive / peer: "
		     "throughput", "xproc pingpong", 2, M_PPS);
	print_matrix(f, rows, n, "two processes, apq adaptive / peer: p50 "
		     "latency (ping-pong: round trip)", "xproc pingpong", 2,
		     M_P50);
	print_wakeup_ratios(f, rows, n);
	print_targets(f, rows, n);
	print_goals(f, rows, n);
	print_noise(f, rows, n, ri);
}

/* ---- JSON ---- */

void report_json_str(FILE *f, const char *key, const char *s)
{
	fprintf(f, "\"%s\": \"", key);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* JSON has no NaN: unknown is null. */
void report_json_num(FILE *f, const char *key, double x)
{
	if (isfinite(x))
		fprintf(f, ", \"%s\": %.6g", key, x);
	else
		fprintf(f, ", \"%s\": null", key);
}

static void json_row(FILE *f, const struct row *r, const struct report_info *ri)
{
	char prob[96];
	unsigned int i;

	fprintf(f, "  {");
	report_json_str(f, "impl", r->impl);
	fprintf(f, ", ");
	report_json_str(f, "policy", r->variant->name);
	fprintf(f, ", ");
	report_json_str(f, "wait", r->variant->wait == BENCH_WAIT_BUSY_POLLS
			     ? "busy-polls" : "sleeps");
	fprintf(f, ", ");
	report_json_str(f, "scenario", r->sc->name);
	fprintf(f, ", ");
	report_json_str(f, "group", r->sc->group);
	fprintf(f, ", \"processes\": %u, \"rate\": %.0f, \"rate_off\": %.0f, "
		"\"pairs\": %u, \"size\": %zu, \"batch\": %u, "
		"\"zero_copy\": %s", r->sc->processes, r->sc->rate,
		r->sc->rate_off, r->sc->pairs ? r->sc->pairs : 1, r->sc->size,
		r->sc->batch, r->sc->zero_copy ? "true" : "false");
	fprintf(f, ", \"skipped\": %s", r->skipped ? "true" : "false");
	if (r->skipped) {
		fprintf(f, ", ");
		report_json_str(f, "why", r->skipped);
	}
	report_json_num(f, "pps", r->skipped ? NAN : r->pps);
	report_json_num(f, "pps_min", r->skipped ? NAN : r->pps_min);
	report_json_num(f, "pps_max", r->skipped ? NAN : r->pps_max);
	report_json_num(f, "wakeups_per_pkt", r->skipped ? NAN : r->wpp);
	report_json_num(f, "space_wakeups_per_pkt", r->skipped ? NAN : r->swpp);
	fprintf(f, ", ");
	report_json_str(f, "wakeups_source", r->skipped ? "unknown" : r->wake_src);
	report_json_num(f, "futex_wakes_per_pkt", r->skipped ? NAN : r->futex_wpp);
	report_json_num(f, "consumer_cpu", r->skipped ? NAN : r->ccpu);
	report_json_num(f, "producer_cpu", r->skipped ? NAN : r->pcpu);
	report_json_num(f, "producer_call_cpu", r->skipped ? NAN : r->pcall);
	report_json_num(f, "cost", r->skipped ? NAN : r->cost);
	report_json_num(f, "p50_ns", r->skipped ? NAN : r->p50);
	report_json_num(f, "p99_ns", r->skipped ? NAN : r->p99);
	report_json_num(f, "p999_ns", r->skipped ? NAN : r->p999);
	report_json_num(f, "max_ns", r->skipped ? NAN : r->pmax);
	report_json_num(f, "runq_wait", r->skipped ? NAN : r->runq);
	report_json_num(f, "steal", r->skipped ? NAN : r->steal);
	report_json_num(f, "other_cpu", r->skipped ? NAN : r->other_cpu);
	fprintf(f, ", \"runs\": %u, \"pps_runs\": [", r->n_runs);
	for (i = 0; i < r->n_runs; i++) {
		const struct run_result *u = &r->runs[i];

		fprintf(f, "%s%.6g", i ? ", " : "", u->t_ns > 0
			? (double)u->received * NS_PER_SEC / (double)u->t_ns
			: 0.0);
	}
	fprintf(f, "]");
	report_json_num(f, "consumer_sleeps_per_pkt", r->skipped ? NAN : r->csleep);
	report_json_num(f, "producer_sleeps_per_pkt", r->skipped ? NAN : r->psleep);
	report_json_num(f, "futex_calls_per_pkt", r->skipped ? NAN : r->futex_cpp);
	report_json_num(f, "duration", (double)r->duration_ns / NS_PER_SEC);
	fprintf(f, ", \"packets_offered\": %" PRIu64 ", \"packets_arrived\": %"
		PRIu64 ", \"packets_bad\": %" PRIu64 ", \"rescues\": %" PRIu64
		", \"ok\": %s", r->offered, r->arrived, r->badpk, r->rescues,
		r->failed ? "false" : "true");
	if (r->failed) {
		fprintf(f, ", ");
		report_json_str(f, "error", row_problem(r, prob, sizeof(prob)));
	}
	fprintf(f, ", ");
	report_json_str(f, "date", ri->date);
	fprintf(f, ", ");
	report_json_str(f, "preset", ri->preset);
	fprintf(f, "}");
}

int report_json(const char *path, struct row *rows, size_t n,
		const struct report_info *ri)
{
	FILE *f = fopen(path, "w");
	const char *sep = "";
	size_t k;

	if (!f)
		return -errno;
	fprintf(f, "[");
	for (k = 0; k < n; k++) {
		fprintf(f, "%s\n", sep);
		json_row(f, &rows[k], ri);
		sep = ",";
	}
	if (goals_any(rows, n)) {
		fprintf(f, "%s\n", sep);
		json_goals(f, rows, n, ri);
		sep = ",";
	}
	if (ratios_any(rows, n)) {
		fprintf(f, "%s\n", sep);
		json_ratios(f, rows, n, ri);
		sep = ",";
	}
	for (k = 0; k < ri->n_nb; k++) {
		fprintf(f, "%s\n", sep);
		netback_report_json(f, &ri->nb[k], ri);
		sep = ",";
	}
	/* A queue this build left out: a row that says why. */
	for (k = 0; k < ri->n_missing; k++) {
		fprintf(f, "%s\n  {", sep);
		sep = ",";
		report_json_str(f, "impl", ri->missing[k]->name);
		fprintf(f, ", \"policy\": \"-\", \"wait\": null, \"scenario\": "
			"\"-\", \"group\": null, \"processes\": null, \"rate\": "
			"null, \"size\": null, \"skipped\": true, ");
		report_json_str(f, "why", ri->missing[k]->why);
		fprintf(f, ", \"pps\": null, \"wakeups_per_pkt\": null, "
			"\"consumer_cpu\": null, \"p50_ns\": null, \"p99_ns\": "
			"null, \"ok\": true, ");
		report_json_str(f, "date", ri->date);
		fprintf(f, "}");
	}
	fprintf(f, "\n]\n");
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

/* ---- CSV ---- */

static void csv_num(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, ",%.6g", x);
	else
		fprintf(f, ",");
}

int report_csv(const char *path, struct row *rows, size_t n,
	       const struct report_info *ri)
{
	FILE *f = fopen(path, "w");
	char prob[96];
	size_t k;

	if (!f)
		return -errno;
	fprintf(f, "impl,policy,wait,scenario,group,processes,rate,size,batch,"
		"zero_copy,skipped,pps,pps_min,pps_max,wakeups_per_pkt,"
		"space_wakeups_per_pkt,wakeups_source,futex_wakes_per_pkt,"
		"consumer_cpu,producer_cpu,producer_call_cpu,cost,p50_ns,"
		"p99_ns,p999_ns,max_ns,"
		"runq_wait,steal,other_cpu,runs,duration,packets_offered,"
		"packets_arrived,packets_bad,rescues,ok,note\n");
	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];
		bool s = r->skipped != NULL;

		fprintf(f, "%s,%s,%s,%s,%s,%u,%.0f,%zu,%u,%d,%d", r->impl,
			r->variant->name, r->variant->wait ==
			BENCH_WAIT_BUSY_POLLS ? "busy-polls" : "sleeps",
			r->sc->name, r->sc->group, r->sc->processes,
			r->sc->rate, r->sc->size, r->sc->batch,
			r->sc->zero_copy, s);
		csv_num(f, s ? NAN : r->pps);
		csv_num(f, s ? NAN : r->pps_min);
		csv_num(f, s ? NAN : r->pps_max);
		csv_num(f, s ? NAN : r->wpp);
		csv_num(f, s ? NAN : r->swpp);
		fprintf(f, ",%s", s ? "unknown" : r->wake_src);
		csv_num(f, s ? NAN : r->futex_wpp);
		csv_num(f, s ? NAN : r->ccpu);
		csv_num(f, s ? NAN : r->pcpu);
		csv_num(f, s ? NAN : r->pcall);
		csv_num(f, s ? NAN : r->cost);
		csv_num(f, s ? NAN : r->p50);
		csv_num(f, s ? NAN : r->p99);
		csv_num(f, s ? NAN : r->p999);
		csv_num(f, s ? NAN : r->pmax);
		csv_num(f, s ? NAN : r->runq);
		csv_num(f, s ? NAN : r->steal);
		csv_num(f, s ? NAN : r->other_cpu);
		fprintf(f, ",%u,%.3g,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%"
			PRIu64 ",%d,\"%s\"\n", r->n_runs,
			(double)r->duration_ns / NS_PER_SEC, r->offered,
			r->arrived, r->badpk, r->rescues, !r->failed,
			s ? r->skipped : r->failed
			? row_problem(r, prob, sizeof(prob)) : "");
	}
	for (k = 0; k < ri->n_missing; k++)
		fprintf(f, "%s,-,,-,,,,,,,1,,,,,,unknown,,,,,,,,,,,,,0,,0,0,0,0,"
			"1,\"%s\"\n", ri->missing[k]->name,
			ri->missing[k]->why);
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}

/* ---- plots ---- */

/* Where the unpaced point of the load sweep goes on the x axis. */
#define UNPACED_X	1e7
/* Where a wakeup rate of 0 goes on a logarithmic axis. */
#define ZERO_WPP	1e-6

/* The rows of the load sweep: the in-process paced steady rows, and
 * single-64 as the unpaced end. */
static bool in_sweep(const struct row *r)
{
	return r->sc->processes == 1 && !r->skipped && r->n_runs &&
	       (!strcmp(r->sc->group, "load") ||
		!strcmp(r->sc->name, "single-64"));
}

/* gnuplot's missing value for unknowns (set datafile missing). */
static void dat_num(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, "%g ", x);
	else
		fprintf(f, "nan ");
}

static int run_gnuplot(const char *script)
{
	char *argv[] = { "gnuplot", (char *)script, NULL };
	pid_t pid;
	int status, r;

	r = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ);
	if (r)
		return -r;
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOENT;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* The cost-p50 plot's rows: apq's on the load, bursty and shift groups. */
static bool in_cost_plot(const struct row *r)
{
	return !strcmp(r->impl, "apq") && !r->skipped && r->n_runs &&
	       (!strcmp(r->sc->group, "load") ||
		!strcmp(r->sc->group, "bursty") ||
		!strcmp(r->sc->group, "shift"));
}

/* Where a cost of 0 goes on its logarithmic axis. */
#define ZERO_COST	1e-4

/*
 * Cost against p50, a point per (setting, scenario): a colour per apq
 * setting, a point type per scenario.  @return 0 or -errno.
 */
static int cost_plot(FILE *gp, const char *stem, struct row *rows, size_t n)
{
	const struct bench_variant *vs = bench_apq_impl.variants;
	size_t nv = bench_apq_impl.n_variants, v, k, sc;
	const struct scenario *scen[16];
	size_t nsc = 0;
	char *dat = NULL;
	FILE *f;

	if (asprintf(&dat, "%s-cost.dat", stem) < 0)
		return -ENOMEM;
	for (k = 0; k < n && nsc < 16; k++) {
		if (!in_cost_plot(&rows[k]))
			continue;
		for (sc = 0; sc < nsc && scen[sc] != rows[k].sc; sc++)
			;
		if (sc == nsc)
			scen[nsc++] = rows[k].sc;
	}
	f = fopen(dat, "w");
	if (!f) {
		free(dat);
		return -errno;
	}
	fprintf(f, "# p50_us cost point_type scenario (cost 0 drawn at %g)\n",
		ZERO_COST);
	for (v = 0; v < nv; v++) {
		fprintf(f, "# apq %s\n", vs[v].name);
		for (k = 0; k < n; k++) {
			const struct row *w = &rows[k];

			if (!in_cost_plot(w) || w->variant != &vs[v])
				continue;
			for (sc = 0; scen[sc] != w->sc; sc++)
				;
			dat_num(f, w->p50 / 1e3);
			dat_num(f, w->cost < ZERO_COST ? ZERO_COST : w->cost);
			fprintf(f, "%zu %s\n", sc + 4, w->sc->name);
		}
		fprintf(f, "\n\n");
	}
	if (fclose(f)) {
		free(dat);
		return -errno;
	}
	fprintf(gp, "reset\n"
		"set datafile missing 'nan'\n"
		"set output '%s-cost-p50.png'\n"
		"set title 'apq settings: CPU cost vs p50 latency (colour: "
		"setting; point: scenario)'\n"
		"set logscale xy\nset grid\nset key outside right top\n"
		"set format x '%%g'\nset format y '%%g'\n"
		"set xlabel 'p50 latency (us)'\n"
		"set ylabel 'cost: consumer CPU + producer CPU in send calls "
		"(cores)'\n", stem);
	/* The key: a filled square per setting's colour, then a black
	 * point per scenario's type (point types vary, which the key cannot
	 * show of one series). */
	for (v = 0; v < nv; v++)
		fprintf(gp, "%s'%s' index %zu using 1:2:3 with points pt "
			"variable ps 2 lw 2 lc %zu notitle, \\\n"
			"     NaN with points pt 5 ps 2 lc %zu title 'apq %s', "
			"\\\n", v ? "     " : "plot ", dat, v, v + 1, v + 1,
			vs[v].name);
	for (sc = 0; sc < nsc; sc++)
		fprintf(gp, "     NaN with points pt %zu ps 2 lc rgb 'black' "
			"title '%s'%s", sc + 4, scen[sc]->name,
			sc + 1 < nsc ? ", \\\n" : "\n");
	free(dat);
	return 0;
}

/*
 * The load sweep's series: an (impl, variant) with at least one paced
 * point, its points in order of offered load.  Sleeping and busy-polling
 * queues get panels of their own (a busy-polling consumer costs a core at
 * any load, which would squash the others' lines), apq adaptive is drawn
 * in both as the reference, and within a panel each series has a colour
 * and a point type of its own: apq's settings solid, other queues dashed.
 */
#define SWEEP_POINTS	8
#define SWEEP_XLABEL	"offered load (packets/s), 64-byte packets, two threads"
#define SERIES_MAX	64

struct series {
	const char *impl, *variant;
	bool busy;
	bool reference;		/* apq adaptive */
	unsigned int rank;	/* its place among its kind */
	const struct row *pt[SWEEP_POINTS];
	size_t n;
};

static double sweep_x(const struct row *r)
{
	return r->sc->rate > 0 ? r->sc->rate : UNPACED_X;
}

static int cmp_sweep(const void *a, const void *b)
{
	double x = sweep_x(*(const struct row *const *)a);
	double y = sweep_x(*(const struct row *const *)b);

	return (x > y) - (x < y);
}

static size_t sweep_series(struct row *rows, size_t n, struct series *ser)
{
	unsigned int ranks[2] = { 0, 0 };
	size_t ns = 0, k, s, kept = 0;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k];

		if (!in_sweep(r))
			continue;
		for (s = 0; s < ns; s++)
			if (!strcmp(ser[s].impl, r->impl) &&
			    !strcmp(ser[s].variant, r->variant->name))
				break;
		if (s == ns) {
			if (ns == SERIES_MAX)
				continue;
			ser[ns++] = (struct series){
				.impl = r->impl, .variant = r->variant->name,
				.busy = r->variant->wait ==
					BENCH_WAIT_BUSY_POLLS,
				.reference = !strcmp(r->impl, "apq") &&
					!strcmp(r->variant->name, "adaptive"),
			};
		}
		if (ser[s].n < SWEEP_POINTS)
			ser[s].pt[ser[s].n++] = r;
	}
	/* A lone unpaced point is no line (null, bare-ring: no load rows). */
	for (s = 0; s < ns; s++) {
		qsort(ser[s].pt, ser[s].n, sizeof(ser[s].pt[0]), cmp_sweep);
		if (ser[s].pt[0]->sc->rate <= 0)
			continue;
		ser[kept] = ser[s];
		if (!ser[kept].reference)
			ser[kept].rank = ranks[ser[kept].busy]++;
		kept++;
	}
	return kept;
}

static const char *const series_colours[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
	"#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
};
/* Open and filled squares, circles, triangles, ...; the reference's
 * filled circle (7) is left out. */
static const int series_points[] = { 4, 5, 6, 8, 9, 10, 11, 12, 13, 1, 2, 3 };
#define N_COLOURS	(sizeof(series_colours) / sizeof(series_colours[0]))
#define N_POINTS	(sizeof(series_points) / sizeof(series_points[0]))

/* One panel: the series of one kind (and the reference), column col of
 * the data file. */
static void plot_panel(FILE *f, const char *dat, const struct series *ser,
		       size_t ns, bool busy, int col)
{
	const char *sep = "plot ";
	size_t s;

	for (s = 0; s < ns; s++) {
		const struct series *x = &ser[s];

		if (x->busy != busy && !x->reference)
			continue;
		if (x->reference)
			fprintf(f, "%s'%s' index %zu using 1:%d with linespoints "
				"lw 3 dt 1 pt 7 ps 1.5 lc rgb 'black' "
				"title '%s %s'", sep, dat, s, col, x->impl,
				x->variant);
		else
			fprintf(f, "%s'%s' index %zu using 1:%d with linespoints "
				"lw 1.5 dt %d pt %d ps 1.3 lc rgb '%s' "
				"title '%s %s'", sep, dat, s, col,
				strcmp(x->impl, "apq") ? 2 : 1,
				series_points[x->rank % N_POINTS],
				series_colours[x->rank % N_COLOURS], x->impl,
				x->variant);
		sep = ", \\\n     ";
	}
	fprintf(f, "\n");
}

/* The panels' places on the page: rows of sleeping and busy-polling
 * queues, one or two columns, the keys in the right margin. */
static void panel_at(FILE *f, unsigned int row, unsigned int col,
		     unsigned int cols)
{
	double w = cols == 1 ? 0.68 : 0.33, left = 0.07 + col * (w + 0.06);
	double top = row ? 0.465 : 0.915;

	fprintf(f, "set lmargin at screen %.3f\nset rmargin at screen %.3f\n"
		"set tmargin at screen %.3f\nset bmargin at screen %.3f\n",
		left, left + w, top, top - 0.37);
}

/* A figure of two rows of panels (sleeping above, busy-polling below):
 * for each, the data file's columns in cols[0..n_cols), titled. */
static void plot_figure(FILE *f, const char *dat, const struct series *ser,
			size_t ns, const int *cols,
			const char *const *col_titles, unsigned int n_cols)
{
	static const char *const kinds[] = {
		"sleeping queues",
		"busy-polling queues (apq adaptive for reference)",
	};
	unsigned int row, c;

	for (row = 0; row < 2; row++)
		for (c = 0; c < n_cols; c++) {
			panel_at(f, row, c, n_cols);
			fprintf(f, "set title '%s: %s'\n", kinds[row],
				col_titles[c]);
			/* The lower panels' axis says it for both. */
			fprintf(f, row ? "set xlabel '%s'\n" : "unset xlabel\n",
				SWEEP_XLABEL);
			fprintf(f, c + 1 == n_cols ? "set key outside right "
				"top Left reverse\n" : "unset key\n");
			plot_panel(f, dat, ser, ns, row == 1, cols[c]);
		}
}

int report_plots(const char *stem, struct row *rows, size_t n)
{
	static const int lat_cols[] = { 2, 3 }, cpu_col[] = { 4 },
			 wk_col[] = { 5 };
	static const char *const lat_titles[] = { "p50", "p99" };
	static const char *const cpu_titles[] = { "consumer CPU" };
	static const char *const wk_titles[] = { "wakeups per packet" };
	struct series *ser = calloc(SERIES_MAX, sizeof(*ser));
	size_t ns, k, s;
	char *dat = NULL, *gp = NULL;
	bool cost;
	FILE *f = NULL;
	int r = -ENOMEM;

	if (!ser || asprintf(&dat, "%s-load.dat", stem) < 0 ||
	    asprintf(&gp, "%s-plots.gp", stem) < 0)
		goto out;
	ns = sweep_series(rows, n, ser);
	f = fopen(dat, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fprintf(f, "# offered_pps p50_us p99_us consumer_cpu wakeups_per_pkt"
		" (both directions; 0 drawn at %g; unpaced at %g)\n", ZERO_WPP,
		UNPACED_X);
	for (s = 0; s < ns; s++) {
		fprintf(f, "# %s %s\n", ser[s].impl, ser[s].variant);
		for (k = 0; k < ser[s].n; k++) {
			const struct row *w = ser[s].pt[k];
			double wpp = metric(w, M_WPP);

			if (!isnan(wpp) && wpp < ZERO_WPP)
				wpp = ZERO_WPP;
			dat_num(f, sweep_x(w));
			dat_num(f, w->p50 / 1e3);
			dat_num(f, w->p99 / 1e3);
			dat_num(f, w->ccpu);
			dat_num(f, wpp);
			fprintf(f, "\n");
		}
		fprintf(f, "\n\n");
	}
	if (fclose(f)) {
		f = NULL;
		r = -errno;
		goto out;
	}
	f = fopen(gp, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fprintf(f,
		"# apq-bench's plots: gnuplot %s\n"
		"if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		"  set terminal pngcairo size 1400,1000 noenhanced font ',10'\n"
		"} else {\n"
		"  set terminal png size 1400,1000 noenhanced\n"
		"}\n"
		"set datafile missing 'nan'\n"
		"set logscale x\n"
		"set xrange [500:2e7]\n"
		"set xtics ('1k' 1e3, '10k' 1e4, '100k' 1e5, '1M' 1e6, "
		"'unpaced' %g)\n"
		"set grid\n"
		"set format y '%%g'\n", gp, UNPACED_X);
	fprintf(f, "set output '%s-latency.png'\n"
		"set multiplot title 'end-to-end latency vs offered load "
		"(apq: solid, other queues: dashed)'\n"
		"set logscale y\nset ylabel 'latency (us)'\n", stem);
	plot_figure(f, dat, ser, ns, lat_cols, lat_titles, 2);
	fprintf(f, "unset multiplot\n"
		"set output '%s-cpu.png'\n"
		"set multiplot title 'consumer CPU vs offered load (apq: "
		"solid, other queues: dashed)'\n"
		"unset logscale y\nset yrange [0:1.05]\n"
		"set ylabel 'consumer CPU (cores)'\n", stem);
	plot_figure(f, dat, ser, ns, cpu_col, cpu_titles, 1);
	fprintf(f, "unset multiplot\n"
		"set output '%s-wakeups.png'\n"
		"set multiplot title 'wakeups per packet vs offered load (both "
		"directions; 0 drawn at %g)'\n"
		"set logscale y\nset yrange [%g:10]\nset format y '%%.0e'\n"
		"set ylabel 'wakeups per packet'\n", stem, ZERO_WPP,
		ZERO_WPP / 2);
	plot_figure(f, dat, ser, ns, wk_col, wk_titles, 1);
	fprintf(f, "unset multiplot\n");
	for (k = 0; k < n && !in_cost_plot(&rows[k]); k++)
		;
	cost = k < n;
	if (cost) {
		r = cost_plot(f, stem, rows, n);
		if (r)
			goto out;
	}
	if (fclose(f)) {
		f = NULL;
		r = -errno;
		goto out;
	}
	f = NULL;
	r = ns ? run_gnuplot(gp) : 0;
	if (r == 0)
		r = ns ? 3 + cost : 0;
out:
	if (f)
		fclose(f);
	free(ser);
	free(dat);
	free(gp);
	return r;
}
