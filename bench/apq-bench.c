/* SPDX-License-Identifier: MIT */
/*
 * apq-bench - what skipping wakeups buys, and how apq compares with the
 * queues one would otherwise pick, on this machine, in one run.
 *
 * Overview
 *   Rows are impl x variant x scenario:
 *     impl      a queue, entering through an adapter (bench.h): apq itself
 *               (impl-apq.c), the in-process peers (peers/), and the
 *               two-process queues (xproc/)
 *     variant   a configuration of the queue; for apq, a wakeup policy
 *     scenario  packet size, packets per call, threads or processes,
 *               offered load (the table below)
 *   Every row runs --repeat times, in rounds (every row once, then every
 *   row again), so that a noisy neighbour spreads over the rows instead of
 *   spoiling every run of one.  Within a round the rows of a scenario run
 *   together, each next to a run of apq adaptive, the row every ratio
 *   compares with (the schedule below says how); the report gives medians,
 *   the range, and each ratio as the median of its paired runs' ratios.
 *
 *   The harness owns everything but the queue: threads and processes,
 *   pinning, pacing, packet contents, validation of every packet, latency,
 *   CPU, futex syscall counting, output (see harness.h for the modules).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define REPEAT_MAX	1000

/* ---- scenarios ---- */

#define MS	(INT64_C(1000000))

static const struct scenario scenarios[] = {
	/* Unpaced throughput, one packet or a burst of 32 per call. */
	{ "single-8", "throughput", SCEN_STREAM, 1, 8, 1, 0, 0, 0, false, 0, 0 },
	{ "single-64", "throughput", SCEN_STREAM, 1, 64, 1, 0, 0, 0, false, 0, 0 },
	{ "single-1500", "throughput", SCEN_STREAM, 1, 1500, 1, 0, 0, 0, false, 0, 0 },
	{ "burst32-8", "throughput", SCEN_STREAM, 1, 8, 32, 0, 0, 0, false, 0, 0 },
	{ "burst32-64", "throughput", SCEN_STREAM, 1, 64, 32, 0, 0, 0, false, 0, 0 },
	{ "burst32-1500", "throughput", SCEN_STREAM, 1, 1500, 32, 0, 0, 0, false,
	  0, 0 },
	/* Offered load, 64-byte packets; single-64 is its unpaced end. */
	{ "load-1k", "load", SCEN_STREAM, 1, 64, 1, 1e3, 0, 0, false, 0, 0 },
	{ "load-10k", "load", SCEN_STREAM, 1, 64, 1, 1e4, 0, 0, false, 0, 0 },
	{ "load-100k", "load", SCEN_STREAM, 1, 64, 1, 1e5, 0, 0, false, 0, 0 },
	{ "load-1M", "load", SCEN_STREAM, 1, 64, 1, 1e6, 0, 0, false, 0, 0 },
	/* On/off: 1000 packets at 1 Mpkt/s every 10 ms (100 kpkt/s mean). */
	{ "bursty", "bursty", SCEN_STREAM, 1, 64, 1, 1e6, 1000, 10 * MS, false, 0, 0 },
	/* 100 ms at 1 Mpkt/s, 100 ms at 1 kpkt/s, and again: no fixed
	 * setting suits both. */
	{ "load-shift", "shift", SCEN_STREAM, 1, 64, 1, 1e6, 100000, 200 * MS,
	  false, 1e3, 0 },
	/* Three pairs at 20 kpkt/s each, six threads on whatever CPUs there
	 * are: the sides compete with the other pairs for them. */
	{ "oversub", "oversub", SCEN_STREAM, 1, 64, 1, 2e4, 0, 0, false, 0, 3 },
	/* Attached, nothing sent. */
	{ "idle", "idle", SCEN_IDLE, 1, 64, 1, 0, 0, 0, false, 0, 0 },
	/* Two processes. */
	{ "x-stream-8", "xproc", SCEN_STREAM, 2, 8, 1, 0, 0, 0, false, 0, 0 },
	{ "x-stream-64k", "xproc", SCEN_STREAM, 2, 65536, 1, 0, 0, 0, false, 0, 0 },
	{ "x-stream-64k-zc", "xproc", SCEN_STREAM, 2, 65536, 1, 0, 0, 0, true,
	  0, 0 },
	/* Round trips back to back, and 1000 per second: both sides sleep
	 * between them (the blocking ping-pong). */
	{ "x-pingpong", "pingpong", SCEN_PINGPONG, 2, 8, 1, 0, 0, 0, false, 0, 0 },
	{ "x-pingpong-1k", "pingpong", SCEN_PINGPONG, 2, 8, 1, 1e3, 0, 0, false, 0, 0 },
};

#define N_SCENARIOS	(sizeof(scenarios) / sizeof(scenarios[0]))

/* ---- presets ---- */

/* Seconds and repeats per kind of row. */
struct preset {
	const char *name;
	double unpaced_s, paced_s, idle_s, xproc_s;
	unsigned int unpaced_rep, paced_rep, idle_rep, xproc_rep;
	const char *scenarios;	/* NULL: all */
	double xproc_paced_s;	/* two processes, paced: enough round trips
				 * for a p99 */
	double warmup_s;	/* both CPUs busy before the first run */
	double netback_s;	/* per iperf3 run of the netback section */
	unsigned int netback_rep;
	double shift_s;		/* load-shift: whole cycles of its loads */
};

static const struct preset presets[] = {
	/* The default, and what the README's first command runs. */
	{ "quick", 0.15, 0.3, 0.5, 0.3, 3, 1, 1, 3, NULL, 1.0, 1.0, 3.0, 1,
	  0.4 },
	{ "full", 0.5, 1.0, 1.0, 1.0, 5, 3, 2, 3, NULL, 2.0, 2.0, 5.0, 3,
	  1.0 },
	/* For the test suite: a few seconds, every kind of row. */
	{ "smoke", 0.05, 0.1, 0.2, 0.1, 1, 1, 1, 1,
	  "single-64,burst32-8,load-10k,idle,x-stream-8,x-stream-64k-zc,"
	  "x-pingpong,netback-tcp", 0.1, 0, 1.0, 1, 0.4 },
};

/* ---- options ---- */

struct options {
	const struct preset *preset;
	double duration;	/* > 0: overrides the preset's */
	unsigned int repeat;	/* > 0: overrides */
	size_t ring_bytes;
	const char *json;
	const char *impls, *policies, *scenarios;
	bool self_check;
	bool plots;
	bool list;
};

/* The netback section's rows, at most: configurations x loads. */
#define NETBACK_ROWS	16


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

static bool scen_selected(const struct options *o, const struct scenario *sc)
{
	const char *list = o->scenarios ? o->scenarios : o->preset->scenarios;

	return listed(list, sc->name) || listed(list, sc->group);
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"usage: apq-bench [--quick | --full | --smoke] [--json FILE]\n"
		"                 [--impl LIST] [--policy LIST] [--scenario LIST]\n"
		"                 [--duration S] [--repeat N] [--ring BYTES]\n"
		"                 [--netback] [--no-plots] [--self-check] [--list]\n"
		"\n"
		"Compares apq's wakeup policies with each other and with other\n"
		"queues: throughput, wakeup syscalls per packet, consumer and\n"
		"producer CPU (and the producer's inside its send calls; cost =\n"
		"consumer + that), end-to-end latency, between pinned threads\n"
		"and between two processes.\n"
		"\n"
		"  --quick          short runs, the whole table in about 2 minutes\n"
		"                   (the default)\n"
		"  --full           longer runs, more repeats (about 10 minutes)\n"
		"  --smoke          a tiny preset for the test suite (seconds)\n"
		"  --json FILE      write the rows (and the goals summary) as\n"
		"                   JSON; FILE's stem also names the CSV (.csv)\n"
		"                   and the plots (-latency.png, -cpu.png,\n"
		"                   -wakeups.png, -cost-p50.png) next to it\n"
		"  --impl LIST      comma-separated queue names (see --list)\n"
		"  --policy LIST    comma-separated variant names\n"
		"  --scenario LIST  comma-separated scenario or group names\n"
		"  --duration S     seconds per run, for every kind of row\n"
		"  --repeat N       runs per row, for every kind of row (apq\n"
		"                   adaptive, which every ratio compares with,\n"
		"                   runs next to each other row: once per pair\n"
		"                   of them per round)\n"
		"  --ring BYTES     in-process ring size (default 262144)\n"
		"  --netback        only the netback section: iperf3 across\n"
		"                   examples/netback, apq against a socketpair\n"
		"                   relay and a veth pair (needs root; the\n"
		"                   presets run it too, --scenario netback alike)\n"
		"  --no-plots       no gnuplot\n"
		"  --self-check     also fail unless apq's counters agree with the\n"
		"                   harness's and no lost wakeup was caught\n"
		"  --list           list queues, variants and scenarios, and exit\n"
		"\n"
		"Scenarios (group: names):\n");
	for (i = 0; i < N_SCENARIOS; i++) {
		if (i == 0 || strcmp(scenarios[i].group, scenarios[i - 1].group))
			fprintf(f, "%s  %-10s", i ? "\n" : "",
				scenarios[i].group);
		fprintf(f, " %s", scenarios[i].name);
	}
	fprintf(f, "\n  %-10s netback-tcp netback-udp\n", "netback");
	fprintf(f,
		"\nExit status: 0; 1 if a run failed or lost packets (or\n"
		"--self-check found a problem); 2 on a usage error.\n");
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "full", no_argument, NULL, 'F' },
		{ "smoke", no_argument, NULL, 'S' },
		{ "duration", required_argument, NULL, 'd' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "impl", required_argument, NULL, 'i' },
		{ "policy", required_argument, NULL, 'p' },
		{ "scenario", required_argument, NULL, 's' },
		{ "ring", required_argument, NULL, 'R' },
		{ "json", required_argument, NULL, 'j' },
		{ "no-plots", no_argument, NULL, 'P' },
		{ "self-check", no_argument, NULL, 'c' },
		{ "list", no_argument, NULL, 'l' },
		{ "netback", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	char *end;
	int c;

	*o = (struct options){
		.preset = &presets[0],
		.ring_bytes = 256 * 1024,
		.plots = true,
	};
	while ((c = getopt_long(argc, argv, "qFSd:r:i:p:s:R:j:PclNh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 'q':
			o->preset = &presets[0];
			break;
		case 'F':
			o->preset = &presets[1];
			break;
		case 'S':
			o->preset = &presets[2];
			break;
		case 'd':
			errno = 0;
			o->duration = strtod(optarg, &end);
			if (errno || *end || !(o->duration > 0) ||
			    o->duration > 3600)
				goto bad;
			break;
		case 'r':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v < 1 || v > REPEAT_MAX)
				goto bad;
			o->repeat = (unsigned int)v;
			break;
		case 'i':
			o->impls = optarg;
			break;
		case 'p':
			o->policies = optarg;
			break;
		case 's':
			o->scenarios = optarg;
			break;
		case 'R':
			errno = 0;
			v = strtoul(optarg, &end, 0);
			if (errno || *end || v < 4096 || (v & (v - 1)))
				goto bad;
			o->ring_bytes = v;
			break;
		case 'j':
			o->json = optarg;
			break;
		case 'P':
			o->plots = false;
			break;
		case 'c':
			o->self_check = true;
			break;
		case 'l':
			o->list = true;
			break;
		case 'N':
			o->scenarios = "netback";
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
	return 0;
bad:
	fprintf(stderr, "apq-bench: bad value for --%s: %s\n",
		c == 'd' ? "duration" : c == 'r' ? "repeat" : "ring", optarg);
	return -1;
}

/* ---- rows ---- */

static void row_plan(struct row *r, const struct options *o)
{
	const struct preset *p = o->preset;
	const struct scenario *sc = r->sc;
	double s;
	unsigned int rep;

	if (sc->processes == 2) {
		s = sc->rate > 0 ? p->xproc_paced_s : p->xproc_s;
		rep = p->xproc_rep;
	} else if (sc->kind == SCEN_IDLE) {
		s = p->idle_s;
		rep = p->idle_rep;
	} else if (sc->rate_off > 0) {
		s = p->shift_s;
		rep = p->paced_rep;
	} else if (sc->rate > 0) {
		s = p->paced_s;
		rep = p->paced_rep;
	} else {
		s = p->unpaced_s;
		rep = p->unpaced_rep;
	}
	if (o->duration > 0)
		s = o->duration;
	if (o->repeat)
		rep = o->repeat;
	r->duration_ns = (int64_t)(s * (double)NS_PER_SEC);
	r->repeat = rep;
}

struct table {
	struct row *rows;
	size_t n, cap;
};

static int table_add(struct table *t, const struct row *r)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct row *rows = realloc(t->rows, cap * sizeof(*rows));

		if (!rows)
			return -ENOMEM;
		t->rows = rows;
		t->cap = cap;
	}
	t->rows[t->n++] = *r;
	return 0;
}

/*
 * Add a row for every selected scenario of `processes` processes and every
 * selected variant of one queue; `proto` carries the queue's own fields.
 * Zero-copy scenarios only where the queue has zero copy.
 */
static int add_rows(struct table *t, const struct row *proto,
		    const struct bench_variant *variants, size_t n_variants,
		    unsigned int processes, bool zero_copy,
		    const struct options *o)
{
	size_t v, s;

	if (!listed(o->impls, proto->impl))
		return 0;
	for (s = 0; s < N_SCENARIOS; s++) {
		const struct scenario *sc = &scenarios[s];

		if (sc->processes != processes || !scen_selected(o, sc) ||
		    (sc->zero_copy && !zero_copy))
			continue;
		for (v = 0; v < n_variants; v++) {
			struct row r = *proto;

			if (!listed(o->policies, variants[v].name))
				continue;
			r.variant = &variants[v];
			r.sc = sc;
			row_plan(&r, o);
			if (table_add(t, &r))
				return -ENOMEM;
		}
	}
	return 0;
}

static int add_thread_rows(struct table *t, const struct bench_impl *im,
			   const struct options *o)
{
	struct row proto = {
		.impl = im->name,
		.tim = im,
		.counts_wakeups = im->counts_wakeups,
	};

	return add_rows(t, &proto, im->variants, im->n_variants, 1, false, o);
}

static int add_xproc_rows(struct table *t, const struct bench_xproc_impl *im,
			  const struct options *o)
{
	struct row proto = {
		.impl = im->name,
		.xim = im,
		.counts_wakeups = im->counts_wakeups,
	};
	bool zero_copy = im->loan && im->publish && im->take && im->give_back;

	return add_rows(t, &proto, im->variants, im->n_variants, 2, zero_copy,
			o);
}

/* The row every ratio of a scenario compares with: apq's default. */
static bool is_anchor(const struct row *r)
{
	return !strcmp(r->impl, "apq") && !strcmp(r->variant->name, "adaptive");
}

/*
 * Give every other row of a scenario with an anchor its anchor, and the
 * anchor one run per round for each pair of them (see run_all()).
 */
static void rows_pair(struct table *t)
{
	size_t a, k;

	for (a = 0; a < t->n; a++) {
		struct row *anchor = &t->rows[a];
		unsigned int others = 0;

		anchor->runs_per_round = 1;
		if (!is_anchor(anchor))
			continue;
		for (k = 0; k < t->n; k++) {
			if (k == a || t->rows[k].sc != anchor->sc)
				continue;
			t->rows[k].anchor = anchor;
			others++;
		}
		if (others)
			anchor->runs_per_round = (others + 1) / 2;
	}
}

static int rows_build(struct table *t, const struct options *o)
{
	size_t i;
	int r;

	r = add_thread_rows(t, &bench_apq_impl, o);
	for (i = 0; !r && i < bench_n_peer_impls; i++)
		r = add_thread_rows(t, bench_peer_impls[i], o);
	for (i = 0; !r && i < bench_n_xproc_impls; i++)
		r = add_xproc_rows(t, bench_xproc_impls[i], o);
	if (r)
		return r;
	rows_pair(t);
	for (i = 0; i < t->n; i++) {
		struct row *row = &t->rows[i];

		row->runs = calloc(row->repeat * row->runs_per_round,
				   sizeof(*row->runs));
		row->pair = calloc(row->repeat, sizeof(*row->pair));
		if (!row->runs || !row->pair)
			return -ENOMEM;
	}
	return 0;
}

/* The netback section's rows, where its tools live (meson passes the
 * build tree's paths), and how long it runs. */
static struct netback_setup netback_setup(const struct options *o)
{
	struct netback_setup s = {
#ifdef APQ_NETBACK_LINK
		.link_script = APQ_NETBACK_LINK,
		.netback_bin = APQ_NETBACK_BIN,
#endif
		.seconds = o->duration > 0 ? o->duration : o->preset->netback_s,
		.repeat = o->repeat ? o->repeat : o->preset->netback_rep,
	};

	if (s.repeat > NETBACK_REPEAT_MAX)
		s.repeat = NETBACK_REPEAT_MAX;
	return s;
}

static bool netback_wanted(const char *impl, const char *policy,
			   const char *scenario, void *arg)
{
	const struct options *o = arg;
	const char *list = o->scenarios ? o->scenarios : o->preset->scenarios;

	return listed(o->impls, impl) && listed(o->policies, policy) &&
	       (listed(list, scenario) || listed(list, "netback"));
}

static void list_all(void)
{
	size_t i, v;

#define LIST_VARIANTS(im, procs) do {					\
		printf("%-16s %s:", (im)->name, procs);			\
		for (v = 0; v < (im)->n_variants; v++)			\
			printf(" %s%s", (im)->variants[v].name,		\
			       (im)->variants[v].wait ==		\
			       BENCH_WAIT_BUSY_POLLS ? "(busy-polls)" : ""); \
		printf("\n");						\
	} while (0)

	printf("queues (impl: variants):\n");
	LIST_VARIANTS(&bench_apq_impl, "threads");
	for (i = 0; i < bench_n_peer_impls; i++)
		LIST_VARIANTS(bench_peer_impls[i], "threads");
	for (i = 0; i < bench_n_xproc_impls; i++)
		LIST_VARIANTS(bench_xproc_impls[i], "processes");
	for (i = 0; i < bench_n_peer_missing; i++)
		printf("%-16s skipped: %s\n", bench_peer_missing[i].name,
		       bench_peer_missing[i].why);
	for (i = 0; i < bench_n_xproc_missing; i++)
		printf("%-16s skipped: %s\n", bench_xproc_missing[i].name,
		       bench_xproc_missing[i].why);
	printf("%-16s relays: apq adaptive, apq always, socketpair -, veth - "
	       "(the netback section)\n", "netback");
	printf("\nscenarios:\n");
	for (i = 0; i < N_SCENARIOS; i++)
		printf("  %-16s %-10s %u proc, %zu bytes, %u per call, %s%s\n",
		       scenarios[i].name, scenarios[i].group,
		       scenarios[i].processes, scenarios[i].size,
		       scenarios[i].batch,
		       scenarios[i].kind == SCEN_IDLE ? "idle"
		       : scenarios[i].rate_off > 0 ? "paced, shifting"
		       : scenarios[i].rate > 0 ? "paced" : "unpaced",
		       scenarios[i].pairs > 1 ? ", several pairs unpinned"
					      : "");
	printf("  %-16s %-10s iperf3 TCP across examples/netback\n",
	       "netback-tcp", "netback");
	printf("  %-16s %-10s iperf3 UDP at 1 Gbit/s across examples/netback\n",
	       "netback-udp", "netback");
#undef LIST_VARIANTS
}

/* ---- the schedule ---- */

/* Seconds the runs not done yet should take. */
static double planned_s(const struct table *t)
{
	double s = 0;
	size_t k;

	for (k = 0; k < t->n; k++)
		if (!t->rows[k].skipped)
			s += (double)(t->rows[k].repeat *
				      t->rows[k].runs_per_round -
				      t->rows[k].n_runs) *
			     ((double)t->rows[k].duration_ns / NS_PER_SEC +
			      (t->rows[k].sc->processes == 2 ? 0.1 : 0.01));
	return s;
}

static void progress(const struct row *r, size_t done, size_t total,
		     double elapsed, double left, bool tty)
{
	static double last;
	char line[160];

	snprintf(line, sizeof(line),
		 "[%3zu/%3zu] %3.0f s elapsed, ~%3.0f s left: %s %s %s, run %u/%u",
		 done + 1, total, elapsed, left, r->impl, r->variant->name,
		 r->sc->name, r->n_runs + 1, r->repeat * r->runs_per_round);
	if (tty) {
		fprintf(stderr, "\r%s\033[K", line);
	} else if (done == 0 || elapsed - last >= 10) {
		/* Not a terminal: a line every 10 s, not one per run. */
		fprintf(stderr, "apq-bench: %s\n", line);
		last = elapsed;
	}
}

/* One run of the schedule. */
struct step {
	struct row *row;
	unsigned int pair;	/* the anchor's run it runs next to */
};

/*
 * The schedule: round after round; in each round the scenarios in table
 * order, and in each scenario its other rows two by two, each pair around
 * a run of the anchor: B A C.  The next round swaps them, C A B, so that
 * each of B and C runs once before and once after the anchor's run it is
 * compared with (ABBA: a drift within the triple moves the ratios both
 * ways, and their median cancels it).  A scenario without an anchor runs
 * its rows one after the other.  @return how many steps, or -ENOMEM.
 */
static ssize_t schedule_build(const struct table *t, struct step **out)
{
	size_t total = 0, n = 0, k, s, m, j;
	unsigned int round, rounds = 0;
	struct row **others = calloc(t->n ? t->n : 1, sizeof(*others));
	struct step *st;

	for (k = 0; k < t->n; k++) {
		total += t->rows[k].repeat * t->rows[k].runs_per_round;
		if (t->rows[k].repeat > rounds)
			rounds = t->rows[k].repeat;
	}
	st = calloc(total ? total : 1, sizeof(*st));
	if (!st || !others) {
		free(st);
		free(others);
		return -ENOMEM;
	}
	for (round = 0; round < rounds; round++) {
		for (s = 0; s < N_SCENARIOS; s++) {
			struct row *anchor = NULL;

			for (k = m = 0; k < t->n; k++) {
				struct row *r = &t->rows[k];

				if (r->sc != &scenarios[s] || r->repeat <= round)
					continue;
				if (is_anchor(r))
					anchor = r;
				else
					others[m++] = r;
			}
			if (!anchor) {
				for (j = 0; j < m; j++)
					st[n++] = (struct step){ others[j], 0 };
				continue;
			}
			if (!m)
				st[n++] = (struct step){ anchor, 0 };
			for (j = 0; j < m; j += 2) {
				struct row *b = others[j];
				struct row *c = j + 1 < m ? others[j + 1] : NULL;
				unsigned int a_run =
					round * anchor->runs_per_round +
					(unsigned int)(j / 2);

				if (round % 2) {	/* C A B */
					if (c)
						st[n++] = (struct step){ c, a_run };
					st[n++] = (struct step){ anchor, 0 };
					st[n++] = (struct step){ b, a_run };
				} else {		/* B A C */
					st[n++] = (struct step){ b, a_run };
					st[n++] = (struct step){ anchor, 0 };
					if (c)
						st[n++] = (struct step){ c, a_run };
				}
			}
		}
	}
	free(others);
	*out = st;
	return (ssize_t)n;
}

static int run_all(struct table *t, const struct placement *pl,
		   const struct options *o)
{
	struct step *steps;
	ssize_t n_steps = schedule_build(t, &steps), i;
	size_t done = 0, total = (size_t)n_steps;
	bool tty = isatty(STDERR_FILENO);
	int64_t t0 = now_ns();

	if (n_steps < 0)
		return (int)n_steps;
	for (i = 0; i < n_steps; i++) {
		struct row *r = steps[i].row;
		struct run_result *res;
		double elapsed = (double)(now_ns() - t0) / NS_PER_SEC;
		const char *why = NULL;

		if (r->skipped)
			continue;
		progress(r, done, total, elapsed, planned_s(t), tty);
		res = &r->runs[r->n_runs];
		if (r->tim) {
			run_threads(r->tim, r->variant, r->sc, pl,
				    r->duration_ns, o->ring_bytes, res);
		} else if (run_xproc(r->xim, r->variant, r->sc, pl,
				     r->duration_ns, res, &why) == -ENOTSUP) {
			/* Cannot run here: skip the row, say why. */
			r->skipped = why ? why : "cannot run here";
			total -= r->repeat * r->runs_per_round - r->n_runs;
			continue;
		}
		if (r->anchor)
			r->pair[r->n_runs] = steps[i].pair;
		r->n_runs++;
		done++;
	}
	if (tty)
		fprintf(stderr, "\r\033[K");
	free(steps);
	return 0;
}

/*
 * Keep both CPUs busy for a while, unmeasured, before the first run: on
 * this kind of machine (a VM) the first second of work runs at a fraction
 * of the speed of the next ones, which would put every row's first repeat
 * at the bottom of its range.
 */
static void warm_up(const struct placement *pl, const struct options *o)
{
	static const struct scenario warm = {
		"warm-up", "warm-up", SCEN_STREAM, 1, 64, 1, 0, 0, 0, false, 0, 0
	};
	const struct bench_variant *busy = NULL;
	struct run_result *res;
	size_t i;

	if (o->preset->warmup_s <= 0)
		return;
	for (i = 0; i < bench_apq_impl.n_variants; i++)
		if (bench_apq_impl.variants[i].wait == BENCH_WAIT_BUSY_POLLS)
			busy = &bench_apq_impl.variants[i];
	res = malloc(sizeof(*res));
	if (!busy || !res) {
		free(res);
		return;
	}
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "apq-bench: warming up (%.1f s)\r",
			o->preset->warmup_s);
	run_threads(&bench_apq_impl, busy, &warm, pl,
		    (int64_t)(o->preset->warmup_s * NS_PER_SEC), o->ring_bytes,
		    res);
	free(res);
}

/* ---- self-check ---- */

/*
 * Stricter than the table's FAILED, for apq's rows: the queue's own packet
 * counters agree with the harness's, and no lost wakeup was caught.
 * @return the number of problems.
 */
static unsigned int self_check(const struct table *t)
{
	unsigned int problems = 0, i;
	size_t k;

	for (k = 0; k < t->n; k++) {
		const struct row *row = &t->rows[k];

		if (row->skipped)
			continue;
		for (i = 0; i < row->n_runs; i++) {
			const struct run_result *r = &row->runs[i];
			bool counts_ok = row->sc->kind == SCEN_PINGPONG ||
				strcmp(row->impl, "apq") != 0 ||
				(r->prod.packets == r->sent &&
				 r->cons.packets == r->received);

			if (!r->err && !r->bad && r->sent == r->received &&
			    counts_ok && !r->prod.rescues && !r->cons.rescues &&
			    (row->sc->kind == SCEN_IDLE || r->sent > 0))
				continue;
			fprintf(stderr,
				"self-check: %s %s %s run %u: offered %" PRIu64
				", arrived %" PRIu64 ", bad %" PRIu64
				", counted %" PRIu64 "/%" PRIu64
				", rescues %" PRIu64 "/%" PRIu64 "%s%s%s\n",
				row->impl, row->variant->name, row->sc->name,
				i + 1, r->sent, r->received, r->bad,
				r->prod.packets, r->cons.packets,
				r->prod.rescues, r->cons.rescues,
				r->err ? " (" : "", r->err ? r->where : "",
				r->err ? ")" : "");
			problems++;
		}
	}
	return problems;
}

/* ---- main ---- */

/* FILE.json -> FILE (the stem the CSV and the plots are named after). */
static char *stem_of(const char *json)
{
	size_t n = strlen(json);
	char *s = strdup(json);

	if (s && n > 5 && strcmp(json + n - 5, ".json") == 0)
		s[n - 5] = '\0';
	return s;
}

int main(int argc, char **argv)
{
	static const struct bench_missing *missing[64];
	static struct netback_row nb[NETBACK_ROWS];
	struct netback_setup nbs;
	struct table t = { 0 };
	struct report_info ri = { 0 };
	struct placement pl;
	struct options o;
	char date[64], *stem, *csv;
	time_t now = time(NULL);
	unsigned int problems = 0;
	bool failed = false;
	int64_t t0;
	size_t k, nm = 0, n_nb;
	int r;

	if (parse_options(argc, argv, &o))
		return 2;
	if (o.list) {
		list_all();
		return 0;
	}
	if (rows_build(&t, &o)) {
		fprintf(stderr, "apq-bench: out of memory\n");
		return 1;
	}
	nbs = netback_setup(&o);
	n_nb = netback_rows_build(nb, NETBACK_ROWS, &nbs, netback_wanted, &o);
	if (t.n == 0 && n_nb == 0) {
		fprintf(stderr, "apq-bench: no rows: check --impl, --policy "
			"and --scenario (--list shows them)\n");
		return 2;
	}
	if (n_nb && nb[0].skipped)
		fprintf(stderr, "apq-bench: netback section skipped: %s\n",
			nb[0].skipped);
	for (k = 0; k < bench_n_peer_missing && nm < 64; k++)
		missing[nm++] = &bench_peer_missing[k];
	for (k = 0; k < bench_n_xproc_missing && nm < 64; k++)
		missing[nm++] = &bench_xproc_missing[k];
	for (k = 0; k < nm; k++)
		fprintf(stderr, "apq-bench: %s skipped: %s\n", missing[k]->name,
			missing[k]->why);

	pl = placement_pick();
	ri.pl = &pl;
	ri.preset = o.preset->name;
	ri.futex_counting = futex_counting_probe(&ri.futex_why);
	if (!ri.futex_counting)
		fprintf(stderr, "apq-bench: futex syscalls not counted: %s\n",
			ri.futex_why);
	ri.missing = missing;
	ri.n_missing = nm;
	strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S %Z", localtime(&now));
	ri.date = date;

	t0 = now_ns();
	if (t.n) {
		warm_up(&pl, &o);
		if (run_all(&t, &pl, &o)) {
			fprintf(stderr, "apq-bench: out of memory\n");
			return 1;
		}
	}
	netback_run_all(nb, n_nb, &nbs);
	ri.elapsed_s = (double)(now_ns() - t0) / NS_PER_SEC;

	for (k = 0; k < t.n; k++) {
		row_summarise(&t.rows[k]);
		failed |= t.rows[k].failed;
	}
	for (k = 0; k < n_nb; k++) {
		netback_summarise(&nb[k]);
		failed |= nb[k].failed;
	}
	ri.nb = nb;
	ri.n_nb = n_nb;
	report_table(stdout, t.rows, t.n, &ri);
	netback_report_table(stdout, nb, n_nb, &nbs);
	fflush(stdout);
	if (o.json) {
		stem = stem_of(o.json);
		csv = stem ? malloc(strlen(stem) + 5) : NULL;
		if (!csv) {
			fprintf(stderr, "apq-bench: out of memory\n");
			return 1;
		}
		sprintf(csv, "%s.csv", stem);
		r = report_json(o.json, t.rows, t.n, &ri);
		if (r) {
			fprintf(stderr, "apq-bench: %s: %s\n", o.json,
				strerror(-r));
			failed = true;
		}
		r = report_csv(csv, t.rows, t.n, &ri);
		if (r) {
			fprintf(stderr, "apq-bench: %s: %s\n", csv,
				strerror(-r));
			failed = true;
		}
		free(csv);
		csv = NULL;
		if (n_nb && asprintf(&csv, "%s-netback.csv", stem) >= 0) {
			r = netback_report_csv(csv, nb, n_nb, &ri);
			if (r) {
				fprintf(stderr, "apq-bench: %s: %s\n", csv,
					strerror(-r));
				failed = true;
			}
		}
		if (o.plots) {
			r = report_plots(stem, t.rows, t.n);
			if (r == -ENOENT)
				fprintf(stderr, "apq-bench: gnuplot not found: "
					"no PNGs (%s-plots.gp renders them)\n",
					stem);
			else if (r < 0)
				fprintf(stderr, "apq-bench: plots: %s\n",
					strerror(-r));
		}
		printf("\nwrote %s, %s.csv%s%s%s\n", o.json, stem,
		       n_nb ? ", the netback section's -netback.csv" : "",
		       o.plots ? " and plots " : "", o.plots ? stem : "");
		free(csv);
		free(stem);
	}
	if (o.self_check) {
		problems = self_check(&t);
		printf("\nself-check: %s (%zu rows)\n",
		       problems ? "FAILED" : "ok", t.n);
	}
	for (k = 0; k < t.n; k++) {
		free(t.rows[k].runs);
		free(t.rows[k].pair);
	}
	free(t.rows);
	return failed || problems ? 1 : 0;
}
