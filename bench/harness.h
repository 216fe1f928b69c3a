/* SPDX-License-Identifier: MIT */
/*
 * harness.h - what the modules of apq-bench's harness share (the adapters
 * see only bench.h).
 *
 *   apq-bench.c    options, presets, the scenario table, the schedule of runs
 *   measure.c      clocks, packet stamps, latency histograms, CPU, run-queue
 *                  wait, futex syscall counting, pinning, pacing
 *   run-threads.c  one run with producer and consumer threads
 *   run-xproc.c    one run with producer and consumer processes
 *   report.c       summaries, the table, ratios and targets, JSON, CSV, plots
 *   netback.c      the netback section: iperf3 across examples/netback
 */
#ifndef APQ_BENCH_HARNESS_H
#define APQ_BENCH_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bench.h"

#define NS_PER_SEC	INT64_C(1000000000)
#define BATCH_MAX	32		/* packets per call, at most */
#define PKT_MIN		8		/* the stamp's size */
#define PKT_MAX		(64 * 1024)	/* the largest scenario's packets */

/* ---- scenarios ---- */

enum scen_kind {
	SCEN_STREAM,	/* producer -> consumer, paced or not */
	SCEN_IDLE,	/* attached, nothing sent */
	SCEN_PINGPONG,	/* request on channel 0, reply on channel 1 */
};

struct scenario {
	const char *name;
	const char *group;	/* throughput, load, bursty, idle, xproc,
				 * pingpong: --scenario accepts these too */
	enum scen_kind kind;
	unsigned int processes;	/* 1: threads; 2: processes */
	size_t size;		/* bytes per packet */
	unsigned int batch;	/* packets per send and recv call */
	double rate;		/* offered packets (ping-pong: round trips)
				 * per second; 0: as fast as it goes */
	/* Bursty traffic: on_pkts packets at `rate`, starting every
	 * period_ns, and for the rest of each period rate_off packets per
	 * second (0: silence).  on_pkts 0: steady. */
	unsigned int on_pkts;
	int64_t period_ns;
	bool zero_copy;		/* xproc: loan/publish, take/give_back */
	double rate_off;
	/* Producer/consumer pairs at once, each with its own queue and
	 * `rate`, unpinned: more threads than CPUs.  0: one, pinned. */
	unsigned int pairs;
};

/* When packet k of a paced stream is due, relative to the stream's start. */
int64_t scen_send_offset(const struct scenario *sc, uint64_t k);

/* ---- measurements ---- */

/*
 * Latency histogram: log-linear, exact below 32 ns, then 32 linear
 * sub-buckets per power of two (at most 3% too high), up to 2^63 ns.
 */
#define HIST_SUB	32
#define HIST_BUCKETS	(60 * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t max;
	uint64_t b[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t ns);
/* The upper bound of the bucket holding the q-quantile (0 < q <= 1), never
 * above the largest value seen; 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

int64_t now_ns(void);
int64_t thread_cpu_ns(void);

/*
 * Packets.  The first 8 bytes: a 24-bit sequence number and a 40-bit send
 * time (ns after the run's t0, 0 = not timestamped).  From 16 bytes up the
 * last 8 bytes hold the whole sequence number (scrambled), so that a torn,
 * stale or lost packet shows at either end.  The bytes in between are
 * copied by every queue but checked by none.
 */
void pkt_stamp(unsigned char *buf, size_t size, uint64_t seq, int64_t ts);
/* Whether buf is packet `seq` of `size` bytes; *ts gets its send time. */
bool pkt_check(const unsigned char *buf, size_t len, size_t size,
	       uint64_t seq, int64_t *ts);
/* The sequence number a bad packet carries (to resynchronise on it). */
uint64_t pkt_seq_guess(const unsigned char *buf, size_t len, uint64_t want);

/* Unpaced streams timestamp one packet in this many (paced ones all):
 * a clock read per packet would cost more than some queues' send. */
#define LATENCY_SAMPLE	64

/* The producer's CPU inside its send calls is read around one call in
 * this many ns (run-threads.c says why). */
#define CALL_SAMPLE_NS	100000

/*
 * One thread's (or process's) costs over a stretch of time: start with
 * side_begin() in the thread itself, end with side_end() in the same one.
 */
struct side_measure {
	int64_t wall_ns;
	int64_t cpu_ns;		/* CLOCK_THREAD_CPUTIME_ID */
	int64_t runq_ns;	/* runnable but not running (schedstat) */
	int64_t futex_wakes;	/* futex syscalls that wake; -1 unknown */
	int64_t futex_calls;	/* all futex syscalls; -1 unknown */
};

struct side_probe {
	int64_t wall0, cpu0, runq0;
	int fd_wakes, fd_calls;
};

void side_begin(struct side_probe *p);
void side_end(struct side_probe *p, struct side_measure *out);

/* Whether futex syscalls can be counted here, and if not, why.  Call once
 * from the main thread before any run. */
bool futex_counting_probe(const char **why);

/* Machine-wide CPU (all CPUs, in ns) from /proc/stat: busy and stolen. */
struct machine_cpu {
	int64_t busy_ns;
	int64_t steal_ns;
};
void machine_cpu_read(struct machine_cpu *m);

/* The two CPUs to pin the two sides to; -1, -1 when fewer than two. */
struct placement {
	int cpu[2];		/* [0] producer (pinger), [1] consumer */
};
struct placement placement_pick(void);
int pin_self(int cpu);
/* Start fn pinned to cpu (if >= 0), so that it never runs elsewhere.
 * @return 0 or a negative errno. */
int thread_start_pinned(pthread_t *t, int cpu, void *(*fn)(void *),
			void *arg);

/* Paced producers: sleep to shortly before t (absolute CLOCK_MONOTONIC),
 * then spin to it.  pace_init() in the pacing thread first. */
#define PACE_SPIN_NS	20000
void pace_init(void);
void pace_until(int64_t t);

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax()	__builtin_ia32_pause()
#else
#define cpu_relax()	__asm__ __volatile__("" ::: "memory")
#endif

/* ---- one run ---- */

struct run_result {
	uint64_t sent;		/* packets (ping-pong: requests) offered */
	uint64_t received;	/* arrived and checked (replies) */
	uint64_t bad;		/* out of sequence or damaged */
	struct bench_counters prod, cons;	/* adapters' counters; in a
						 * ping-pong the first and
						 * second process's sums */
	struct side_measure pm, cm;	/* producer (pinger), consumer */
	/* The producer's CPU inside the queue's send calls, estimated from
	 * a sample of them (run_threads only; summed over pairs). */
	int64_t call_cpu_ns;
	int64_t t_ns;		/* the stream's length, start to last packet */
	double steal;		/* cores stolen by the hypervisor, average */
	double other_cpu;	/* cores busy with other work, average */
	struct hist lat;	/* one-way latency; ping-pong: round trips */
	int err;		/* first error, negative errno */
	char where[64];		/* and where it happened */
};

void run_threads(const struct bench_impl *impl, const struct bench_variant *v,
		 const struct scenario *sc, const struct placement *pl,
		 int64_t duration_ns, size_t ring_bytes, struct run_result *res);
/* @return 0, or -ENOTSUP with *why set when setup says the queue cannot
 * run here (the row is then skipped, not failed). */
int run_xproc(const struct bench_xproc_impl *impl,
	      const struct bench_variant *v, const struct scenario *sc,
	      const struct placement *pl, int64_t duration_ns,
	      struct run_result *res, const char **why);

/* ---- rows and their summary ---- */

struct row {
	const char *impl;
	const struct bench_variant *variant;
	const struct scenario *sc;
	const struct bench_impl *tim;		/* one of these two */
	const struct bench_xproc_impl *xim;
	bool counts_wakeups;
	struct run_result *runs;
	unsigned int n_runs;
	unsigned int repeat;		/* rounds */
	unsigned int runs_per_round;	/* the anchor's: one per pair of
					 * other rows; 1 for the others */
	/*
	 * Paired ratios: every ratio against apq adaptive (the scenario's
	 * anchor) is taken between runs made next to each other, so that a
	 * minute of a slow host moves both.  Run i of this row ran right
	 * next to run pair[i] of its anchor; anchor is NULL for the anchor
	 * itself and for a scenario without one.
	 */
	const struct row *anchor;
	unsigned int *pair;
	int64_t duration_ns;
	const char *skipped;	/* why, or NULL */

	/* Over the runs (medians unless said otherwise): */
	bool failed;
	double pps, pps_min, pps_max;
	double wpp;		/* wakeups the producer sent, per packet;
				 * NAN unknown */
	double swpp;		/* and the consumer (space), per packet */
	const char *wake_src;	/* "stats", "futex" or "unknown" */
	double futex_wpp;	/* futex wake syscalls per packet, both
				 * sides, from the tracepoint; NAN unknown */
	double futex_cpp;	/* all futex syscalls per packet, both sides */
	double csleep, psleep;	/* times each side blocked, per packet (if
				 * the queue counts them) */
	double ccpu, pcpu;	/* CPU seconds per second */
	double pcall;		/* the producer's inside send calls */
	double cost;		/* ccpu + pcall: what the queue costs */
	double runq;		/* run-queue wait of both sides, s per s */
	double steal, other_cpu;
	double p50, p99, p999, pmax;	/* ns; NAN without samples */
	uint64_t offered, arrived, badpk, rescues;
};

void row_summarise(struct row *r);

struct report_info {
	const struct placement *pl;
	const char *preset;
	bool futex_counting;
	const char *futex_why;
	const struct bench_missing *const *missing;	/* skipped impls */
	size_t n_missing;
	double elapsed_s;
	const char *date;
	const struct netback_row *nb;	/* the netback section's rows */
	size_t n_nb;
};

void report_table(FILE *f, struct row *rows, size_t n,
		  const struct report_info *ri);
int report_json(const char *path, struct row *rows, size_t n,
		const struct report_info *ri);
int report_csv(const char *path, struct row *rows, size_t n,
	       const struct report_info *ri);
/* Renders the plots with gnuplot; @return how many PNGs were written, or
 * a negative errno (-ENOENT: no gnuplot; the data and script stay). */
int report_plots(const char *stem, struct row *rows, size_t n);

/* this / base, NAN when either is unknown or base is 0 */
double ratio(double x, double base);

/* JSON members for the writers: `"key": "s"` (escaped), `, "key": x`
 * (null when x is not finite). */
void report_json_str(FILE *f, const char *key, const char *s);
void report_json_num(FILE *f, const char *key, double x);

/* ---- the netback section (netback.c) ---- */

#define NETBACK_REPEAT_MAX	16

struct netback_setup {
	const char *link_script;	/* examples/netback/netback-link.sh;
					 * NULL: built without the examples */
	const char *netback_bin;	/* the apq-netback it drives */
	double seconds;			/* per iperf3 run */
	unsigned int repeat;
};

struct netback_run {
	int err;		/* negative errno or a command's exit status */
	char where[64];
	double secs;		/* the iperf3 client's wall time */
	double gbps;		/* at the receiver */
	double frames;		/* that entered the relay, both directions */
	double wakeups;		/* the relay's, both directions */
	double back_cpu, front_cpu;	/* CPU s/s of each relay process */
	double iperf_cpu;	/* iperf3 client + server, cores */
	double rtt_p50, rtt_p99;	/* ns */
	double udp_loss_pct, ping_loss_pct;
	unsigned int rtt_samples;
};

struct netback_row {
	const char *impl, *policy, *backend, *scenario;
	bool udp, veth;
	const char *skipped;	/* why, or NULL */
	unsigned int repeat, n_runs;
	struct netback_run runs[NETBACK_REPEAT_MAX];

	/* Over the runs (medians): */
	bool failed;
	const char *error;
	double gbps, gbps_min, gbps_max;
	double fps;		/* frames per second, both directions */
	double wpf;		/* wakeups per frame */
	double cpu_per_gbit, back_cpu_per_gbit, front_cpu_per_gbit;
	double iperf_cpu;
	double rtt_p50, rtt_p99;
	double udp_loss_pct, ping_loss_pct;
};

/* Rows for every (impl, policy, scenario) wanted() accepts; each says
 * why it is skipped if the section cannot run here.  @return how many. */
size_t netback_rows_build(struct netback_row *rows, size_t cap,
			  const struct netback_setup *s,
			  bool (*wanted)(const char *impl, const char *policy,
					 const char *scenario, void *arg),
			  void *arg);
void netback_run_all(struct netback_row *rows, size_t n,
		     const struct netback_setup *s);
void netback_summarise(struct netback_row *row);
void netback_report_table(FILE *f, const struct netback_row *rows, size_t n,
			  const struct netback_setup *s);
void netback_report_json(FILE *f, const struct netback_row *r,
			 const struct report_info *ri);
int netback_report_csv(const char *path, const struct netback_row *rows,
		       size_t n, const struct report_info *ri);

#endif /* APQ_BENCH_HARNESS_H */
