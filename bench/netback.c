/* SPDX-License-Identifier: MIT */
/*
 * netback.c - apq-bench's netback section: what skipping wakeups buys on
 * real traffic.
 *
 * examples/netback/netback-link.sh makes an Ethernet link between two
 * network namespaces, and iperf3 pushes TCP or UDP across it while ping
 * measures the round trip under that load.  The rows are the ways to carry
 * the link:
 *   apq adaptive    apq-netback over apq, the default policy
 *   apq always      the same, ALWAYS_NOTIFY: a wakeup on every publish (the
 *                   prior art)
 *   socketpair -    the same two processes relaying frames over an AF_UNIX
 *                   SOCK_SEQPACKET socketpair, one send() per frame: what
 *                   most people would write first
 *   veth -          a veth pair, no relay at all: the kernel's own path, the
 *                   ceiling
 * Every run sets the link up afresh and tears it down after.  Repeats are
 * interleaved, and the row reports medians.
 *
 * Per run: the receiver's throughput (iperf3), the frames that crossed
 * (both directions), the wakeups the relay sent per frame (apq: its own
 * counters, both directions, data and space; socketpair: the times its
 * receiving threads found the socket empty and slept, each of which the
 * sender's next send() had to wake), the relay processes' CPU per Gbit/s,
 * iperf3's own CPU, and ping's round trips.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

#define NS_A		"apq-a"
#define NS_B		"apq-b"
#define ADDR_B		"169.254.77.2"
#define PING_INTERVAL	"0.005"
#define RTT_MAX		20000	/* samples kept per run */
#define OUT_MAX		(1 << 20)	/* bytes of a command's output read */

static const struct {
	const char *impl, *policy, *backend;
} configs[] = {
	{ "apq", "adaptive", "futex" },
	{ "apq", "always", "futex" },
	{ "socketpair", "-", "socketpair" },
	{ "veth", "-", "veth" },
};

static const struct {
	const char *name;
	bool udp;
} loads[] = {
	{ "netback-tcp", false },
	{ "netback-udp", true },
};

#define N_CONFIGS	(sizeof(configs) / sizeof(configs[0]))
#define N_LOADS		(sizeof(loads) / sizeof(loads[0]))

/* ---- running commands ---- */

/* Start argv in the background, stdout to fd (< 0: /dev/null), stderr to
 * /dev/null.  @return its pid, or a negative errno. */
static pid_t run_bg(char *const argv[], int fd)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	if (fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
	else
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO,
						 "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
					 O_WRONLY, 0);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return r ? -r : pid;
}

/*
 * Run argv and wait for it, its stdout into *out (malloc'd, NUL-terminated,
 * at most OUT_MAX bytes) unless out is NULL.  @return its exit status,
 * 128 + signal, or -errno if it did not start.
 */
static int run_cmd(char *const argv[], char **out)
{
	char path[] = "/tmp/apq-bench-netback-XXXXXX";
	int fd = -1, status;
	pid_t pid;

	if (out) {
		*out = NULL;
		fd = mkstemp(path);
		if (fd < 0)
			return -errno;
		unlink(path);
	}
	pid = run_bg(argv, fd);
	if (pid < 0) {
		if (fd >= 0)
			close(fd);
		return pid;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			status = -1;
			break;
		}
	if (fd >= 0) {
		char *buf = malloc(OUT_MAX + 1);
		ssize_t n = buf ? pread(fd, buf, OUT_MAX, 0) : -1;

		if (buf) {
			buf[n > 0 ? n : 0] = '\0';
			*out = buf;
		}
		close(fd);
	}
	if (status < 0)
		return -ECHILD;
	return WIFEXITED(status) ? WEXITSTATUS(status)
				 : 128 + WTERMSIG(status);
}

static void reap(pid_t pid, bool kill_it)
{
	if (pid <= 0)
		return;
	if (kill_it)
		kill(pid, SIGTERM);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* sh netback-link.sh VERB [ARG...] (NULL-terminated); @return as
 * run_cmd(). */
static int link_cmd(const struct netback_setup *s, char **out,
		    const char *verb, ...)
{
	char *argv[12];
	size_t n = 0;
	va_list ap;

	argv[n++] = "sh";
	argv[n++] = (char *)s->link_script;
	argv[n++] = (char *)verb;
	va_start(ap, verb);
	while (n < 11 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	/* The relay of this build: on its own the script looks in ./build,
	 * which is another build or none when apq-bench runs from elsewhere. */
	if (setenv("APQ_NETBACK_BIN", s->netback_bin, 1))
		return -errno;
	return run_cmd(argv, out);
}

/* ---- parsing what the tools print ---- */

/* The number after "key": in s, searching from the first `within` (if
 * any); NAN if absent. */
static double json_find(const char *s, const char *within, const char *key)
{
	char pat[64];
	const char *p = s;
	char *end;
	double v;

	if (within) {
		snprintf(pat, sizeof(pat), "\"%s\"", within);
		p = strstr(s, pat);
		if (!p)
			return NAN;
	}
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(p, pat);
	if (!p)
		return NAN;
	v = strtod(p + strlen(pat), &end);
	return end == p + strlen(pat) ? NAN : v;
}

/* The value of key= in netback-link.sh's stats --raw, as a number (0 if
 * absent: a side without that counter). */
static double kv_num(const char *s, const char *key)
{
	size_t n = strlen(key);
	const char *p = s;

	while (p && *p) {
		if (strncmp(p, key, n) == 0 && p[n] == '=')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return 0;
}

/* The counters of the relay summed over both processes. */
struct relay_counts {
	double frames, wakeups, back_cpu_ns, front_cpu_ns;
};

static void relay_counts(const char *s, struct relay_counts *c)
{
	static const char *const wake_keys[] = {
		"tx_wakeups_sent", "rx_wakeups_sent", "rx_recv_sleeps",
	};
	static const char *const sides[] = { "back.", "front." };
	char key[64];

	*c = (struct relay_counts){ 0 };
	for (size_t i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "%stx_frames", sides[i]);
		c->frames += kv_num(s, key);
		for (size_t k = 0; k < 3; k++) {
			snprintf(key, sizeof(key), "%s%s", sides[i],
				 wake_keys[k]);
			c->wakeups += kv_num(s, key);
		}
	}
	c->back_cpu_ns = kv_num(s, "back.cpu_ns");
	c->front_cpu_ns = kv_num(s, "front.cpu_ns");
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* ping's "time=0.123 ms" lines: p50 and p99 in ns; the loss from its
 * summary. */
static void ping_parse(const char *s, struct netback_run *r)
{
	static double rtt[RTT_MAX];
	const char *p = s, *loss;
	size_t n = 0;

	while ((p = strstr(p, "time=")) && n < RTT_MAX) {
		rtt[n++] = strtod(p + 5, NULL) * 1e6;
		p += 5;
	}
	r->rtt_p50 = r->rtt_p99 = NAN;
	if (n) {
		qsort(rtt, n, sizeof(rtt[0]), cmp_dbl);
		r->rtt_p50 = rtt[(n - 1) / 2];
		r->rtt_p99 = rtt[(size_t)((double)(n - 1) * 0.99)];
	}
	loss = strstr(s, "% packet loss");
	if (loss) {
		while (loss > s && (loss[-1] == '.' ||
				    (loss[-1] >= '0' && loss[-1] <= '9')))
			loss--;
		r->ping_loss_pct = strtod(loss, NULL);
	} else {
		r->ping_loss_pct = NAN;
	}
	r->rtt_samples = (unsigned int)n;
}

/* ---- one run ---- */

static void run_fail(struct netback_run *r, const char *where, int status)
{
	if (r->err)
		return;
	r->err = status ? status : -EIO;
	snprintf(r->where, sizeof(r->where), "%s", where);
}

static void run_one(const struct netback_setup *s, const struct netback_row *row,
		    struct netback_run *r)
{
	char secs[16], wsecs[16], limit[16];
	char *srv_argv[] = { "nsenter", "-n/run/netns/" NS_B, "iperf3", "-s",
			     "-1", "-B", ADDR_B, NULL };
	/* timeout: iperf3 can wait forever for a peer that went away. */
	char *cli_argv[] = { "timeout", limit, "nsenter", "-n/run/netns/" NS_A,
			     "iperf3", "-c", ADDR_B, "-t", secs, "-J",
			     "--connect-timeout", "2000",
			     row->udp ? "-u" : NULL, "-b", "1G", "-w", "4M",
			     NULL };
	char *ping_argv[] = { "nsenter", "-n/run/netns/" NS_A, "ping", "-i",
			      PING_INTERVAL, "-w", wsecs, "-W", "1", ADDR_B,
			      NULL };
	char *json = NULL, *before = NULL, *after = NULL, *ping = NULL;
	char ping_path[] = "/tmp/apq-bench-ping-XXXXXX";
	struct relay_counts c0, c1;
	pid_t srv = -1, pinger = -1;
	int64_t t0, t1;
	int st, ping_fd = -1, tries;

	memset(r, 0, sizeof(*r));
	snprintf(secs, sizeof(secs), "%g", s->seconds);
	snprintf(limit, sizeof(limit), "%d", (int)ceil(s->seconds) + 20);
	snprintf(wsecs, sizeof(wsecs), "%d", (int)ceil(s->seconds) + 1);
	link_cmd(s, NULL, "down", NULL);
	st = strcmp(row->policy, "-")
		? link_cmd(s, NULL, "up", "--backend", row->backend,
			   "--policy", row->policy, NULL)
		: link_cmd(s, NULL, "up", "--backend", row->backend, NULL);
	if (st) {
		run_fail(r, "netback-link.sh up", st);
		goto out;
	}
	srv = run_bg(srv_argv, -1);
	if (srv < 0) {
		run_fail(r, "iperf3 -s", srv);
		goto out;
	}
	ping_fd = mkstemp(ping_path);
	if (ping_fd < 0) {
		run_fail(r, "mkstemp", -errno);
		goto out;
	}
	unlink(ping_path);
	if (!row->veth && link_cmd(s, &before, "stats", "--raw", NULL) == 0)
		relay_counts(before, &c0);
	pinger = run_bg(ping_argv, ping_fd);
	/* The server may not listen yet: iperf3 -c fails at once then, and
	 * says so in its JSON (with -J, iperf3 3.12 exits 0 even so). */
	for (tries = 0; tries < 40; tries++) {
		free(json);
		t0 = now_ns();
		st = run_cmd(cli_argv, &json);
		if (st == 0 && json && strstr(json, "\"error\":"))
			st = -ECONNREFUSED;
		if (st == 0)
			break;
		usleep(50000);
	}
	t1 = now_ns();
	if (st) {
		run_fail(r, "iperf3 -c", st);
		goto out;
	}
	if (!row->veth && link_cmd(s, &after, "stats", "--raw", NULL) == 0)
		relay_counts(after, &c1);
	reap(pinger, false);
	pinger = -1;
	ping = malloc(OUT_MAX + 1);
	if (ping) {
		ssize_t n = pread(ping_fd, ping, OUT_MAX, 0);

		ping[n > 0 ? n : 0] = '\0';
		ping_parse(ping, r);
	}
	r->secs = (double)(t1 - t0) / NS_PER_SEC;
	r->gbps = json_find(json, "sum_received", "bits_per_second") / 1e9;
	r->udp_loss_pct = row->udp ? json_find(json, "sum_received",
					       "lost_percent") : NAN;
	r->iperf_cpu = (json_find(json, "cpu_utilization_percent",
				  "host_total") +
			json_find(json, "cpu_utilization_percent",
				  "remote_total")) / 100;
	if (!(r->gbps > 0)) {
		run_fail(r, isnan(r->gbps) ? "iperf3: no receiver summary"
					   : "iperf3: nothing received", -EIO);
		if (getenv("APQ_BENCH_NETBACK_DEBUG"))
			fprintf(stderr, "iperf3 said:\n%s\n", json);
	}
	if (row->veth) {
		r->frames = r->wakeups = r->back_cpu = r->front_cpu = NAN;
	} else if (!before || !after) {
		run_fail(r, "netback-link.sh stats", -EIO);
	} else {
		r->frames = c1.frames - c0.frames;
		r->wakeups = c1.wakeups - c0.wakeups;
		r->back_cpu = (c1.back_cpu_ns - c0.back_cpu_ns) / 1e9 / r->secs;
		r->front_cpu = (c1.front_cpu_ns - c0.front_cpu_ns) / 1e9 /
			       r->secs;
		if (!(r->frames > 0))
			run_fail(r, "no frames counted", -EIO);
	}
out:
	reap(pinger, true);
	reap(srv, true);
	if (ping_fd >= 0)
		close(ping_fd);
	link_cmd(s, NULL, "down", NULL);
	free(json);
	free(before);
	free(after);
	free(ping);
}

/* ---- rows ---- */

/* Why netback rows cannot run here, or NULL. */
static const char *unavailable(const struct netback_setup *s)
{
	static const char *const tools[] = { "iperf3", "ping", "nsenter",
					     "ip" };
	static char why[96];
	char *argv[] = { "sh", "-c", NULL, NULL };
	char cmd[64];

	if (!s->link_script || !s->netback_bin)
		return "built without the examples (-Dexamples=false)";
	if (geteuid() != 0)
		return "needs root (network namespaces, TAP devices)";
	if (access(s->link_script, R_OK) || access(s->netback_bin, X_OK))
		return "examples/netback not found in the build tree";
	for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		snprintf(cmd, sizeof(cmd), "command -v %s", tools[i]);
		argv[2] = cmd;
		if (run_cmd(argv, NULL) != 0) {
			snprintf(why, sizeof(why), "%s not found (scripts/"
				 "deps.sh installs it)", tools[i]);
			return why;
		}
	}
	return NULL;
}

size_t netback_rows_build(struct netback_row *rows, size_t cap,
			  const struct netback_setup *s,
			  bool (*wanted)(const char *impl, const char *policy,
					 const char *scenario, void *arg),
			  void *arg)
{
	const char *why = unavailable(s);
	size_t n = 0;

	for (size_t l = 0; l < N_LOADS; l++)
		for (size_t c = 0; c < N_CONFIGS && n < cap; c++) {
			if (!wanted(configs[c].impl, configs[c].policy,
				    loads[l].name, arg))
				continue;
			rows[n++] = (struct netback_row){
				.impl = configs[c].impl,
				.policy = configs[c].policy,
				.backend = configs[c].backend,
				.scenario = loads[l].name,
				.udp = loads[l].udp,
				.veth = !strcmp(configs[c].backend, "veth"),
				.repeat = s->repeat,
				.skipped = why,
			};
		}
	return n;
}

void netback_run_all(struct netback_row *rows, size_t n,
		     const struct netback_setup *s)
{
	bool tty = isatty(STDERR_FILENO);
	size_t done = 0, total = 0;

	for (size_t k = 0; k < n; k++)
		total += rows[k].skipped ? 0 : rows[k].repeat;
	for (unsigned int round = 0; round < s->repeat; round++) {
		for (size_t k = 0; k < n; k++) {
			struct netback_row *row = &rows[k];

			if (row->skipped || round >= row->repeat ||
			    row->n_runs >= NETBACK_REPEAT_MAX)
				continue;
			fprintf(stderr, "%sapq-bench: [%zu/%zu] netback %s %s "
				"%s, %g s%s", tty ? "\r" : "", ++done, total,
				row->impl, row->policy, row->scenario,
				s->seconds, tty ? "\033[K" : "\n");
			run_one(s, row, &row->runs[row->n_runs++]);
		}
	}
	if (tty && total)
		fprintf(stderr, "\r\033[K");
}

static double median_of(const struct netback_row *row, size_t off)
{
	double v[NETBACK_REPEAT_MAX];
	unsigned int k = 0;

	for (unsigned int i = 0; i < row->n_runs; i++) {
		double x = *(const double *)((const char *)&row->runs[i] + off);

		if (!row->runs[i].err && isfinite(x))
			v[k++] = x;
	}
	if (!k)
		return NAN;
	qsort(v, k, sizeof(v[0]), cmp_dbl);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

#define MEDIAN(row, field) median_of(row, offsetof(struct netback_run, field))

void netback_summarise(struct netback_row *row)
{
	row->failed = !row->skipped && row->n_runs == 0;
	row->gbps_min = row->gbps_max = NAN;
	for (unsigned int i = 0; i < row->n_runs; i++) {
		const struct netback_run *r = &row->runs[i];

		if (r->err) {
			row->failed = true;
			if (!row->error)
				row->error = r->where;
			continue;
		}
		if (isnan(row->gbps_min) || r->gbps < row->gbps_min)
			row->gbps_min = r->gbps;
		if (isnan(row->gbps_max) || r->gbps > row->gbps_max)
			row->gbps_max = r->gbps;
	}
	row->gbps = MEDIAN(row, gbps);
	row->fps = NAN;
	row->wpf = NAN;
	row->cpu_per_gbit = row->back_cpu_per_gbit = NAN;
	row->front_cpu_per_gbit = NAN;
	if (!row->veth) {
		double fr = MEDIAN(row, frames), secs = MEDIAN(row, secs);

		row->fps = fr / secs;
		row->wpf = MEDIAN(row, wakeups) / fr;
		row->back_cpu_per_gbit = MEDIAN(row, back_cpu) / row->gbps;
		row->front_cpu_per_gbit = MEDIAN(row, front_cpu) / row->gbps;
		row->cpu_per_gbit = row->back_cpu_per_gbit +
				    row->front_cpu_per_gbit;
	}
	row->iperf_cpu = MEDIAN(row, iperf_cpu);
	row->rtt_p50 = MEDIAN(row, rtt_p50);
	row->rtt_p99 = MEDIAN(row, rtt_p99);
	row->udp_loss_pct = MEDIAN(row, udp_loss_pct);
	row->ping_loss_pct = MEDIAN(row, ping_loss_pct);
}

/* ---- report ---- */

static const struct netback_row *nb_find(const struct netback_row *rows,
					 size_t n, const char *impl,
					 const char *policy,
					 const char *scenario)
{
	for (size_t k = 0; k < n; k++)
		if (!strcmp(rows[k].impl, impl) &&
		    !strcmp(rows[k].policy, policy) &&
		    !strcmp(rows[k].scenario, scenario) && !rows[k].skipped)
			return &rows[k];
	return NULL;
}

static double nb_metric(const struct netback_row *r, size_t off)
{
	return r ? *(const double *)((const char *)r + off) : NAN;
}

#define NB(r, field) nb_metric(r, offsetof(struct netback_row, field))

static void fmt(char *b, size_t n, const char *f, double x)
{
	if (isfinite(x))
		snprintf(b, n, f, x);
	else
		snprintf(b, n, "-");
}

static void goal(FILE *f, const char *what, double x, double bound,
		 bool at_least, const char *how)
{
	const char *v = isnan(x) ? "n/a"
			: (at_least ? x >= bound : x <= bound) ? "met"
			: "MISSED";

	fprintf(f, "  %-7s %-62s %s\n", v, what, how);
}

void netback_report_table(FILE *f, const struct netback_row *rows, size_t n,
			  const struct netback_setup *s)
{
	const struct netback_row *ad, *al, *sp, *ve;
	char b[8][32], how[160];
	double x;

	if (!n)
		return;
	fprintf(f, "\n-- netback: iperf3 across examples/netback (namespace "
		"-> TAP -> relay -> TAP -> namespace), %g s per run, %u run%s "
		"per row\n", s->seconds, s->repeat, s->repeat == 1 ? "" : "s");
	fprintf(f, "   wk/frame: wakeups the relay sent per frame, both "
		"directions (apq: its counters; socketpair: its receivers'\n"
		"   sleeps in recv()).  cpu/Gbit: CPU seconds per second of "
		"the two relay processes per Gbit/s (back+front);\n"
		"   iperf3: the client's and server's CPU.  rtt: ping every "
		"%s s under the load.  UDP: iperf3 -b 1G -w 4M, loss at the receiver.\n"
		"\n", PING_INTERVAL);
	fprintf(f, "%-11s %-9s %-12s %20s %9s %9s %13s %6s %8s %8s %6s\n",
		"impl", "policy", "scenario", "Gbit/s [min..max]", "frames/s",
		"wk/frame", "cpu/Gbit b+f", "iperf3", "rtt p50", "rtt p99",
		"loss");
	for (size_t k = 0; k < n; k++) {
		const struct netback_row *r = &rows[k];
		char rate[100];

		if (r->skipped) {
			fprintf(f, "%-11s %-9s %-12s skipped: %s\n", r->impl,
				r->policy, r->scenario, r->skipped);
			continue;
		}
		fmt(b[0], 32, "%.2f", r->gbps);
		fmt(b[1], 32, "%.2f", r->gbps_min);
		fmt(b[2], 32, "%.2f", r->gbps_max);
		snprintf(rate, sizeof(rate), "%s [%s..%s]", b[0], b[1], b[2]);
		fmt(b[3], 32, "%.3gk", r->fps / 1e3);
		fmt(b[4], 32, "%.3g", r->wpf);
		if (isfinite(r->cpu_per_gbit))
			snprintf(b[5], 32, "%.3f=%.2f+%.2f", r->cpu_per_gbit,
				 r->back_cpu_per_gbit, r->front_cpu_per_gbit);
		else
			snprintf(b[5], 32, "-");
		fmt(b[6], 32, "%.2f", r->iperf_cpu);
		fmt(b[7], 32, "%.0fus", r->rtt_p50 / 1e3);
		fmt(b[0], 32, "%.0fus", r->rtt_p99 / 1e3);
		fmt(b[1], 32, "%.1f%%", r->udp ? r->udp_loss_pct
					       : r->ping_loss_pct);
		fprintf(f, "%-11s %-9s %-12s %20s %9s %9s %13s %6s %8s %8s "
			"%6s%s%s\n", r->impl, r->policy, r->scenario, rate,
			b[3], b[4], b[5], b[6], b[7], b[0], b[1],
			r->failed ? "  FAILED: " : "",
			r->failed ? (r->error ? r->error : "no run") : "");
	}

	ad = nb_find(rows, n, "apq", "adaptive", "netback-tcp");
	al = nb_find(rows, n, "apq", "always", "netback-tcp");
	sp = nb_find(rows, n, "socketpair", "-", "netback-tcp");
	ve = nb_find(rows, n, "veth", "-", "netback-tcp");
	if (!ad)
		return;
	fprintf(f, "\nnetback goals (iperf3 TCP; apq = apq adaptive)\n");
	x = ratio(NB(al, wpf), NB(ad, wpf));
	snprintf(how, sizeof(how), "%.3gx fewer (%.3g vs %.3g per frame); "
		 "throughput %.3gx always's", x, NB(ad, wpf), NB(al, wpf),
		 ratio(NB(ad, gbps), NB(al, gbps)));
	goal(f, "apq sends >= 10x fewer wakeups/frame than always",
	     x, 10, true, how);
	x = ratio(NB(ad, gbps), NB(al, gbps));
	snprintf(how, sizeof(how), "%.3gx (%.2f vs %.2f Gbit/s)", x,
		 NB(ad, gbps), NB(al, gbps));
	goal(f, "... with throughput no lower than always's", x, 1.0, true,
	     how);
	x = ratio(NB(ad, gbps), NB(sp, gbps));
	snprintf(how, sizeof(how), "%.3gx (%.2f vs %.2f Gbit/s)", x,
		 NB(ad, gbps), NB(sp, gbps));
	goal(f, "apq moves >= 1.5x the socketpair relay's throughput", x,
	     1.5, true, how);
	x = ratio(NB(ad, cpu_per_gbit), NB(sp, cpu_per_gbit));
	snprintf(how, sizeof(how), "%.3gx (%.3f vs %.3f CPU s/s per Gbit/s)",
		 x, NB(ad, cpu_per_gbit), NB(sp, cpu_per_gbit));
	goal(f, "... at lower CPU per Gbit/s than the relay", x, 1.0, false,
	     how);
	x = ratio(NB(ad, gbps), NB(ve, gbps));
	snprintf(how, sizeof(how), "%.3gx (%.2f vs %.2f Gbit/s)", x,
		 NB(ad, gbps), NB(ve, gbps));
	goal(f, "apq moves >= 0.5x veth's throughput (the kernel's path)", x,
	     0.5, true, how);
}

void netback_report_json(FILE *f, const struct netback_row *r,
			 const struct report_info *ri)
{
	fprintf(f, "  {");
	report_json_str(f, "impl", r->impl);
	fprintf(f, ", ");
	report_json_str(f, "policy", r->policy);
	fprintf(f, ", ");
	report_json_str(f, "scenario", r->scenario);
	fprintf(f, ", \"group\": \"netback\", ");
	report_json_str(f, "backend", r->backend);
	fprintf(f, ", \"skipped\": %s", r->skipped ? "true" : "false");
	if (r->skipped) {
		fprintf(f, ", ");
		report_json_str(f, "why", r->skipped);
	}
	report_json_num(f, "gbps", r->gbps);
	report_json_num(f, "gbps_min", r->gbps_min);
	report_json_num(f, "gbps_max", r->gbps_max);
	report_json_num(f, "frames_per_s", r->fps);
	report_json_num(f, "wakeups_per_frame", r->wpf);
	report_json_num(f, "cpu_per_gbit", r->cpu_per_gbit);
	report_json_num(f, "back_cpu_per_gbit", r->back_cpu_per_gbit);
	report_json_num(f, "front_cpu_per_gbit", r->front_cpu_per_gbit);
	report_json_num(f, "iperf3_cpu", r->iperf_cpu);
	report_json_num(f, "rtt_p50_ns", r->rtt_p50);
	report_json_num(f, "rtt_p99_ns", r->rtt_p99);
	report_json_num(f, "udp_loss_pct", r->udp ? r->udp_loss_pct : NAN);
	report_json_num(f, "ping_loss_pct", r->ping_loss_pct);
	fprintf(f, ", \"runs\": %u, \"gbps_runs\": [", r->n_runs);
	for (unsigned int i = 0; i < r->n_runs; i++)
		fprintf(f, "%s%.4g", i ? ", " : "",
			isfinite(r->runs[i].gbps) ? r->runs[i].gbps : 0.0);
	fprintf(f, "], \"ok\": %s", r->failed ? "false" : "true");
	if (r->failed) {
		fprintf(f, ", ");
		report_json_str(f, "error", r->error ? r->error : "no run");
	}
	fprintf(f, ", ");
	report_json_str(f, "date", ri->date);
	fprintf(f, ", ");
	report_json_str(f, "preset", ri->preset);
	fprintf(f, "}");
}

static void csv_num(FILE *f, double x)
{
	if (isfinite(x))
		fprintf(f, ",%.6g", x);
	else
		fprintf(f, ",");
}

int netback_report_csv(const char *path, const struct netback_row *rows,
		       size_t n, const struct report_info *ri)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f, "impl,policy,scenario,backend,skipped,gbps,gbps_min,"
		"gbps_max,frames_per_s,wakeups_per_frame,cpu_per_gbit,"
		"back_cpu_per_gbit,front_cpu_per_gbit,iperf3_cpu,rtt_p50_ns,"
		"rtt_p99_ns,udp_loss_pct,ping_loss_pct,runs,ok,date\n");
	for (size_t k = 0; k < n; k++) {
		const struct netback_row *r = &rows[k];

		fprintf(f, "%s,%s,%s,%s,%d", r->impl, r->policy, r->scenario,
			r->backend, r->skipped != NULL);
		csv_num(f, r->gbps);
		csv_num(f, r->gbps_min);
		csv_num(f, r->gbps_max);
		csv_num(f, r->fps);
		csv_num(f, r->wpf);
		csv_num(f, r->cpu_per_gbit);
		csv_num(f, r->back_cpu_per_gbit);
		csv_num(f, r->front_cpu_per_gbit);
		csv_num(f, r->iperf_cpu);
		csv_num(f, r->rtt_p50);
		csv_num(f, r->rtt_p99);
		csv_num(f, r->udp ? r->udp_loss_pct : NAN);
		csv_num(f, r->ping_loss_pct);
		fprintf(f, ",%u,%d,%s\n", r->n_runs, !r->failed, ri->date);
	}
	if (ferror(f)) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) ? -errno : 0;
}
