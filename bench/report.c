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
		pps[i] = r->t_ns > 0 ? pk * NS_PER_SEC / (double)r->t_ns : 0;
		if (row->counts_wakeups) {
			wpp[i] = per((double)r->prod.wakeups, pk);
			swpp[i] = per((double)r->cons.wakeups, pk);
		} else if (r->pm.futex_wakes >= 0 && r->cm.futex_wakes >= 0) {
			wpp[i] = per((double)r->pm.futex_wakes, pk);
			swpp[i] = per((double)r->cm.futex_wakes, pk);
		} else {
			wpp[i] = swpp[i] = NAN;
		}
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
		cc[i] = per((double)r->cm.cpu_ns, (double)r->cm.wall_ns);
		pc[i] = per((double)r->pm.cpu_ns, (double)r->pm.wall_ns);
		pl[i] = row->sc->processes == 1
			? per((double)r->call_cpu_ns, (double)r->pm.wall_ns)
			: NAN;
		/* The calls' CPU is part of the thread's: a sampled window
		 * that caught more (the CPU clock's reads cost more than a
		 * send, and disturb it) is capped there. */
		if (pl[i] > pc[i])
			pl[i] = pc[i];
		co[i] = cc[i] + pl[i];
		wall = (double)(r->pm.wall_ns > r->cm.wall_ns ? r->pm.wall_ns
							      : r->cm.wall_ns);
		rq[i] = per((double)(r->pm.runq_ns + r->cm.runq_ns), wall);
		st[i] = r->steal;
		oc[i] = r->other_cpu;
		if (r->lat.count) {
			p50[i] = (double)hist_quantile(&r->lat, 0.5);
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

enum metric { M_PPS, M_CPU, M_P50, M_WPP };

static double metric(const struct row *r, enum metric m)
{
	if (!r)
		return NAN;
	switch (m) {
	case M_PPS:
		return r->pps;
	case M_CPU:
		return r->ccpu;
	case M_P50:
		return r->p50;
	case M_WPP:
	default:
		return r->wpp + (isnan(r->swpp) ? 0 : r->swpp);
	}
}

/* One matrix of apq adaptive / each peer (a line per peer, a column per
 * scenario of `groups`). */
static void print_matrix(FILE *f, struct row *rows, size_t n,
			 const char *title, const char *groups,
			 unsigned int processes, enum metric m)
{
	struct peer_col cols[32];
	const struct row *apq[16];
	size_t nc = peer_cols(rows, n, processes, cols, 32), na = 0, c, k;
	char b[24], h[48];

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
		fprintf(f, " %15s", apq[k]->sc->name);
	fprintf(f, "\n");
	for (c = 0; c < nc; c++) {
		snprintf(h, sizeof(h), "%s %s", cols[c].impl, cols[c].variant);
		fprintf(f, "  %-30s", h);
		for (k = 0; k < na; k++) {
			const struct row *p = find(rows, n, cols[c].impl,
						   cols[c].variant,
						   apq[k]->sc->name);

			fprintf(f, " %15s", fmt_x(b, sizeof(b),
				ratio(metric(apq[k], m), metric(p, m))));
		}
		fprintf(f, "\n");
	}
}

/* apq adaptive's wakeups (both directions) / apq always's. */
static void print_wakeup_ratios(FILE *f, struct row *rows, size_t n)
{
	char a[16], b[16], x[24];
	bool any = false;
	size_t k;

	for (k = 0; k < n; k++) {
		const struct row *r = &rows[k], *al;

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
				"  %-16s %5s %9s %9s %10s\n", "scenario",
				"procs", "adaptive", "always",
				"adapt/alw");
			any = true;
		}
		fprintf(f, "  %-16s %5u %9s %9s %10s\n", r->sc->name,
			r->sc->processes,
			fmt_wk(a, sizeof(a), metric(r, M_WPP), r->wake_src),
			fmt_wk(b, sizeof(b), metric(al, M_WPP), al->wake_src),
			fmt_x(x, sizeof(x), ratio(metric(r, M_WPP),
						  metric(al, M_WPP))));
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

static void print_targets(FILE *f, struct row *rows, size_t n)
{
	const struct row *a, *b, *c;
	char how[200], x1[24], x2[24];
	double worst = NAN, x;
	size_t k;

	fprintf(f, "\ntargets (apq = apq adaptive, the default policy)\n");

	a = find(rows, n, "apq", "adaptive", "single-8");
	b = find(rows, n, "ck_ring", NULL, "single-8");
	c = find(rows, n, "apq", "busy", "single-8");
	x = ratio(metric(a, M_PPS), metric(b, M_PPS));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s pkt/s; apq busy %.3gx)",
		 x, fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)),
		 ratio(metric(c, M_PPS), metric(b, M_PPS)));
	target(f, "unpaced 8 B single: apq >= 2.0x ck_ring SPSC",
	       judge(x, 2.0, true), how);

	a = find(rows, n, "apq", "adaptive", "burst32-8");
	b = find(rows, n, "rte_ring", "busy-poll-burst", "burst32-8");
	c = find(rows, n, "apq", "busy", "burst32-8");
	x = ratio(metric(a, M_PPS), metric(b, M_PPS));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s pkt/s; apq busy %.3gx)",
		 x, fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)),
		 ratio(metric(c, M_PPS), metric(b, M_PPS)));
	target(f, "unpaced 8 B burst-32: apq >= 1.0x rte_ring burst",
	       judge(x, 1.0, true), how);

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
	x = ratio(metric(a, M_CPU), metric(b, M_CPU));
	snprintf(how, sizeof(how), "%.3gx (%.3f vs %.3f)", x, metric(a, M_CPU),
		 metric(b, M_CPU));
	target(f, "10k pkt/s: consumer CPU <= 0.5x mutex+condvar",
	       judge(x, 0.5, false), how);
	x = ratio(metric(a, M_P50), metric(b, M_P50));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s)", x,
		 fmt_ns(x1, sizeof(x1), metric(a, M_P50)),
		 fmt_ns(x2, sizeof(x2), metric(b, M_P50)));
	target(f, "10k pkt/s: p50 latency <= mutex+condvar's",
	       judge(x, 1.0, false), how);

	a = find(rows, n, "apq", "adaptive", "idle");
	snprintf(how, sizeof(how), "%.4f of a core", metric(a, M_CPU));
	target(f, "idle: consumer CPU < 1% of a core",
	       isnan(metric(a, M_CPU)) ? T_UNKNOWN :
	       metric(a, M_CPU) < 0.01 ? T_MET : T_MISSED, how);

	a = find(rows, n, "apq", "adaptive", "x-stream-8");
	b = find(rows, n, "iceoryx", NULL, "x-stream-8");
	c = find(rows, n, "boost-mq", NULL, "x-stream-8");
	x = ratio(metric(a, M_PPS), metric(b, M_PPS));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s pkt/s)", x,
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)));
	target(f, "2 processes, 8 B: apq >= 10x iceoryx", judge(x, 10, true),
	       how);
	x = ratio(metric(a, M_PPS), metric(c, M_PPS));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s pkt/s)", x,
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(c, M_PPS)));
	target(f, "2 processes, 8 B: apq >= 5x Boost message_queue",
	       judge(x, 5, true), how);

	a = find(rows, n, "apq", "adaptive", "x-pingpong-1k");
	b = find(rows, n, "apq", "always", "x-pingpong-1k");
	x = ratio(metric(a, M_P50), metric(b, M_P50));
	snprintf(how, sizeof(how), "round trip p50 %s vs %s (%.3gx)",
		 fmt_ns(x1, sizeof(x1), metric(a, M_P50)),
		 fmt_ns(x2, sizeof(x2), metric(b, M_P50)), x);
	target(f, "blocking ping-pong (1k/s) no slower than futex/msg",
	       judge(x, 1.0, false), how);
	a = find(rows, n, "apq", "adaptive", "x-pingpong");
	b = find(rows, n, "apq", "always", "x-pingpong");
	x = ratio(metric(a, M_PPS), metric(b, M_PPS));
	snprintf(how, sizeof(how), "%s vs %s round trips/s (%.3gx)",
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)), x);
	target(f, "back-to-back ping-pong no slower than futex/msg",
	       judge(x, 1.0, true), how);
	fprintf(f, "  (futex/msg baseline: apq ALWAYS_NOTIFY across the two "
		"processes: one futex wake per message,\n"
		"   a futex wait whenever the ring is empty; same ring and "
		"copy, so only the wakeup policy differs)\n");

	a = find(rows, n, "apq", "adaptive", "x-stream-64k-zc");
	b = find(rows, n, "iceoryx", NULL, "x-stream-64k-zc");
	x = ratio(metric(a, M_PPS), metric(b, M_PPS));
	snprintf(how, sizeof(how), "%.3gx (%s vs %s pkt/s)", x,
		 fmt_rate(x1, sizeof(x1), metric(a, M_PPS)),
		 fmt_rate(x2, sizeof(x2), metric(b, M_PPS)));
	target(f, "64 KiB zero copy: apq reserve/commit vs iceoryx loan",
	       isnan(x) ? T_UNKNOWN : T_MET, how);
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
	double cost, p50, vcost, vp50, cost_x, p50_x;
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
		g[m] = (struct goal){ steady_scens[k], cheap->variant->name,
			a->cost, a->p50, cheap->cost, cheap->p50,
			ratio(a->cost, cheap->cost), ratio(a->p50, cheap->p50),
			false, false };
		g[m].pass = g[m].cost_x <= GOAL_COST &&
			    g[m].p50_x <= GOAL_P50 && kept_up(rows, n, a);
		m++;
	}
	*n_steady = m;
	a = find(rows, n, "apq", "adaptive", "load-shift");
	for (i = 0; a && i < N_FIXED; i++) {
		b = find(rows, n, "apq", fixed_settings[i], "load-shift");
		if (!b)
			continue;
		g[m] = (struct goal){ "load-shift", fixed_settings[i],
			a->cost, a->p50, b->cost, b->p50,
			ratio(a->cost, b->cost), ratio(a->p50, b->p50), false,
			!kept_up(rows, n, b) };
		/* A setting that fell behind lost on its own terms. */
		g[m].pass = g[m].behind ||
			    (g[m].cost_x <= SHIFT_BETTER &&
			     g[m].p50_x <= SHIFT_WORSE) ||
			    (g[m].p50_x <= SHIFT_BETTER &&
			     g[m].cost_x <= SHIFT_WORSE);
		g[m].pass = g[m].pass && kept_up(rows, n, a);
		m++;
	}
	return m;
}

#define GOALS_MAX	(N_STEADY + N_FIXED)

static void print_goals(FILE *f, struct row *rows, size_t n)
{
	struct goal g[GOALS_MAX];
	size_t ns, m = goals_compute(rows, n, g, &ns), k;
	char a[16], b[16];

	if (!m)
		return;
	fprintf(f, "\ngoals (apq adaptive vs the fixed settings; cost = cons + "
		"call, CPU s/s; a report, not a test)\n"
		"  steady loads and bursty, vs the cheapest fixed setting: "
		"cost <= %.2gx and p50 <= %.3gx\n", GOAL_COST, GOAL_P50);
	for (k = 0; k < m; k++) {
		if (k == ns)
			fprintf(f, "  load-shift, vs each fixed setting: %.0f%% "
				"better on cost or p50, not %.0f%% worse on "
				"the other\n", 100 * (1 - SHIFT_BETTER),
				100 * (SHIFT_WORSE - 1));
		fprintf(f, "  %-11s vs %-10s cost %.4f/%.4f = %5.2fx  p50 "
			"%7s/%-7s = %5.2fx  %s\n", g[k].scen, g[k].versus,
			g[k].cost, g[k].vcost, g[k].cost_x,
			fmt_ns(a, sizeof(a), g[k].p50),
			fmt_ns(b, sizeof(b), g[k].vp50), g[k].p50_x,
			g[k].pass ? "PASS" : "MISS");
		if (g[k].behind)
			fprintf(f, "  %-11s    (%s fell behind the load)\n", "",
				g[k].versus);
	}
}

static void json_goals(FILE *f, struct row *rows, size_t n,
		       const struct report_info *ri)
{
	struct goal g[GOALS_MAX];
	size_t ns, m = goals_compute(rows, n, g, &ns), k;

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
		report_json_num(f, "cost_ratio", g[k].cost_x);
		report_json_num(f, "p50_ns", g[k].p50);
		report_json_num(f, "versus_p50_ns", g[k].vp50);
		report_json_num(f, "p50_ratio", g[k].p50_x);
		fprintf(f, ", \"versus_fell_behind\": %s",
			g[k].behind ? "true" : "false");
		fprintf(f, ", \"pass\": %s}", g[k].pass ? "true" : "false");
	}
	fprintf(f, "}, ");
	report_json_str(f, "date", ri->date);
	fprintf(f, "}");
}

static bool goals_any(struct row *rows, size_t n)
{
	struct goal g[GOALS_MAX];
	size_t ns;

	return goals_compute(rows, n, g, &ns) > 0;
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
		"consumer burns a core whatever the load.\n");
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
	bool goals;
	size_t k;

	if (!f)
		return -errno;
	fprintf(f, "[\n");
	goals = goals_any(rows, n);
	for (k = 0; k < n; k++) {
		json_row(f, &rows[k], ri);
		fprintf(f, "%s\n", k + 1 < n || goals || ri->n_nb ||
			ri->n_missing ? "," : "");
	}
	if (goals) {
		json_goals(f, rows, n, ri);
		fprintf(f, "%s\n", ri->n_nb || ri->n_missing ? "," : "");
	}
	for (k = 0; k < ri->n_nb; k++) {
		netback_report_json(f, &ri->nb[k], ri);
		fprintf(f, "%s\n", k + 1 < ri->n_nb || ri->n_missing ? "," : "");
	}
	/* A queue this build left out: a row that says why. */
	for (k = 0; k < ri->n_missing; k++) {
		fprintf(f, "  {");
		report_json_str(f, "impl", ri->missing[k]->name);
		fprintf(f, ", \"policy\": \"-\", \"wait\": null, \"scenario\": "
			"\"-\", \"group\": null, \"processes\": null, \"rate\": "
			"null, \"size\": null, \"skipped\": true, ");
		report_json_str(f, "why", ri->missing[k]->why);
		fprintf(f, ", \"pps\": null, \"wakeups_per_pkt\": null, "
			"\"consumer_cpu\": null, \"p50_ns\": null, \"p99_ns\": "
			"null, \"ok\": true, ");
		report_json_str(f, "date", ri->date);
		fprintf(f, "}%s\n", k + 1 < ri->n_missing ? "," : "");
	}
	fprintf(f, "]\n");
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

int report_plots(const char *stem, struct row *rows, size_t n)
{
	struct peer_col series[64];
	size_t ns = 0, k, s;
	char *dat = NULL, *gp = NULL;
	bool cost;
	FILE *f = NULL;
	int r = -ENOMEM;

	if (asprintf(&dat, "%s-load.dat", stem) < 0 ||
	    asprintf(&gp, "%s-plots.gp", stem) < 0)
		goto out;
	/* The series: every (impl, variant) with rows in the sweep. */
	for (k = 0; k < n; k++) {
		if (!in_sweep(&rows[k]))
			continue;
		for (s = 0; s < ns; s++)
			if (!strcmp(series[s].impl, rows[k].impl) &&
			    !strcmp(series[s].variant, rows[k].variant->name))
				break;
		if (s == ns && ns < 64)
			series[ns++] = (struct peer_col){
				rows[k].impl, rows[k].variant->name };
	}
	f = fopen(dat, "w");
	if (!f) {
		r = -errno;
		goto out;
	}
	fprintf(f, "# offered_pps p50_us p99_us consumer_cpu wakeups_per_pkt"
		" (both directions; 0 drawn at %g)\n", ZERO_WPP);
	for (s = 0; s < ns; s++) {
		fprintf(f, "# %s %s\n", series[s].impl, series[s].variant);
		for (k = 0; k < n; k++) {
			const struct row *w = &rows[k];
			double wpp = metric(w, M_WPP);

			if (!in_sweep(w) || strcmp(w->impl, series[s].impl) ||
			    strcmp(w->variant->name, series[s].variant))
				continue;
			if (!isnan(wpp) && wpp < ZERO_WPP)
				wpp = ZERO_WPP;
			dat_num(f, w->sc->rate > 0 ? w->sc->rate : UNPACED_X);
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
		"  set terminal pngcairo size 1400,800 noenhanced font ',10'\n"
		"} else {\n"
		"  set terminal png size 1400,800 noenhanced\n"
		"}\n"
		"set datafile missing 'nan'\n"
		"set logscale x\n"
		"set xrange [500:2e7]\n"
		"set xtics ('1k' 1e3, '10k' 1e4, '100k' 1e5, '1M' 1e6, "
		"'unpaced' %g)\n"
		"set xlabel 'offered load (packets/s), 64-byte packets, two "
		"threads'\n"
		"set key outside right top\n"
		"set grid\n"
		"set format y '%%g'\n"
		"# apq's policies solid, the other queues dashed\n", gp,
		UNPACED_X);
#define PLOT_SERIES(col) do {						\
		for (s = 0; s < ns; s++)				\
			fprintf(f, "%s'%s' index %zu using 1:%d with "	\
				"linespoints %s title '%s %s'%s",	\
				s ? "     " : "plot ", dat, s, (col),	\
				strcmp(series[s].impl, "apq")		\
				? "lw 1 dt 2" : "lw 2 dt 1",		\
				series[s].impl, series[s].variant,	\
				s + 1 < ns ? ", \\\n" : "\n");		\
	} while (0)
	fprintf(f, "set output '%s-latency.png'\n"
		"set multiplot layout 1,2 title 'end-to-end latency vs "
		"offered load'\n"
		"set logscale y\nset ylabel 'p50 latency (us)'\n"
		"unset key\n", stem);
	PLOT_SERIES(2);
	fprintf(f, "set key outside right top\n"
		"set ylabel 'p99 latency (us)'\n");
	PLOT_SERIES(3);
	fprintf(f, "unset multiplot\n"
		"set output '%s-cpu.png'\n"
		"set title 'consumer CPU vs offered load'\n"
		"unset logscale y\nset yrange [0:1.05]\n"
		"set ylabel 'consumer CPU (cores)'\n", stem);
	PLOT_SERIES(4);
	fprintf(f, "set output '%s-wakeups.png'\n"
		"set title 'wakeups per packet vs offered load (both "
		"directions; 0 drawn at %g)'\n"
		"set logscale y\nset yrange [%g:10]\nset format y '%%.0e'\n"
		"set ylabel 'wakeups per packet'\n", stem, ZERO_WPP,
		ZERO_WPP / 2);
	PLOT_SERIES(5);
#undef PLOT_SERIES
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
	free(dat);
	free(gp);
	return r;
}
