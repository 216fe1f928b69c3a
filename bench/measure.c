/* SPDX-License-Identifier: MIT */
/*
 * measure.c - how apq-bench measures: clocks, packet stamps, latency
 * histograms, CPU and run-queue wait per thread, futex syscalls per thread,
 * machine-wide noise, pinning and pacing.
 *
 * Futex syscalls are counted with a per-thread perf counter on the
 * syscalls:sys_enter_futex tracepoint, one unfiltered (every futex call) and
 * one filtered to the operations that wake (FUTEX_WAKE, _WAKE_OP,
 * _WAKE_BITSET, _REQUEUE, _CMP_REQUEUE, private or not).  That needs tracefs
 * (for the tracepoint's id) and the right to open the counter (root, or
 * kernel.perf_event_paranoid low enough); without them the counts are
 * unknown, never guessed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "packet.h"

/* ---- clocks ---- */

int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---- scenarios ---- */

int64_t scen_send_offset(const struct scenario *sc, uint64_t k)
{
	double gap = (double)NS_PER_SEC / sc->rate;

	int64_t on_ns, base;
	uint64_t off_pkts = 0, cycle, j;

	if (sc->on_pkts == 0)
		return (int64_t)((double)k * gap);
	on_ns = (int64_t)((double)sc->on_pkts * gap);
	if (sc->rate_off > 0)
		off_pkts = (uint64_t)((double)(sc->period_ns - on_ns) *
				      sc->rate_off / NS_PER_SEC);
	cycle = sc->on_pkts + off_pkts;
	base = (int64_t)(k / cycle) * sc->period_ns;
	j = k % cycle;
	if (j < sc->on_pkts)
		return base + (int64_t)((double)j * gap);
	return base + on_ns + (int64_t)((double)(j - sc->on_pkts) *
					NS_PER_SEC / sc->rate_off);
}

/* ---- packets (the format: packet.h) ---- */

void pkt_stamp(unsigned char *buf, size_t size, uint64_t seq, int64_t ts)
{
	pkt_stamp_full(buf, size, seq, ts);
}

bool pkt_check(const unsigned char *buf, size_t len, size_t size,
	       uint64_t seq, int64_t *ts)
{
	return pkt_check_full(buf, len, size, seq, ts);
}

uint64_t pkt_seq_guess(const unsigned char *buf, size_t len, uint64_t want)
{
	uint64_t tail;

	if (len >= 2 * sizeof(tail)) {
		memcpy(&tail, buf + len - sizeof(tail), sizeof(tail));
		return tail ^ PKT_TAIL_KEY;
	}
	return pkt_seq_guess_head(buf, len, want);
}

/* ---- latency histogram ---- */

static unsigned int hist_index(uint64_t v)
{
	unsigned int e;

	if (v < HIST_SUB)
		return (unsigned int)v;
	e = 63 - (unsigned int)__builtin_clzll(v);	/* >= 5 */
	return (e - 4) * HIST_SUB + (unsigned int)((v >> (e - 5)) & (HIST_SUB - 1));
}

static uint64_t hist_upper(unsigned int i)
{
	unsigned int e, sub;

	if (i < HIST_SUB)
		return i;
	e = i / HIST_SUB + 4;
	sub = i % HIST_SUB;
	return (((uint64_t)HIST_SUB + sub) << (e - 5)) + (UINT64_C(1) << (e - 5)) - 1;
}

void hist_add(struct hist *h, uint64_t ns)
{
	unsigned int i = hist_index(ns);

	if (i >= HIST_BUCKETS)
		i = HIST_BUCKETS - 1;
	h->b[i]++;
	h->count++;
	if (ns > h->max)
		h->max = ns;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0, up;
	unsigned int i;

	if (!h->count)
		return 0;
	want = (uint64_t)(q * (double)h->count + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= want) {
			up = hist_upper(i);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}

/* ---- per-thread CPU, run-queue wait, futex syscalls ---- */

/* Nanoseconds this thread waited on a run queue: runnable, not running. */
static int64_t runq_ns(void)
{
	unsigned long long run, wait;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu", &run, &wait);
	fclose(f);
	return n == 2 ? (int64_t)wait : 0;
}

static int futex_tp_id = -1;		/* the tracepoint's id, once probed */

static int tracepoint_id(const char *event)
{
	static const char *const roots[] = {
		"/sys/kernel/tracing/events",
		"/sys/kernel/debug/tracing/events",
	};
	char path[256];
	unsigned int i;
	int id = -1;

	for (i = 0; i < sizeof(roots) / sizeof(roots[0]) && id < 0; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s/id", roots[i], event);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%d", &id) != 1)
			id = -1;
		fclose(f);
	}
	return id;
}

/* The wake operations, with and without FUTEX_PRIVATE_FLAG (128). */
static const char futex_wake_filter[] =
	"op == 1 || op == 129 || op == 3 || op == 131 || op == 4 || "
	"op == 132 || op == 5 || op == 133 || op == 10 || op == 138";

/* A counter of the futex tracepoint for the calling thread; -errno. */
static int futex_counter_open(bool wakes_only)
{
	struct perf_event_attr attr;
	int fd;

	if (futex_tp_id < 0)
		return -ENOENT;
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.size = sizeof(attr);
	attr.config = (uint64_t)futex_tp_id;
	attr.disabled = 1;
	attr.exclude_kernel = 0;
	fd = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1,
			  PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (wakes_only &&
	    ioctl(fd, PERF_EVENT_IOC_SET_FILTER, futex_wake_filter) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int64_t counter_read(int fd)
{
	uint64_t v;

	if (fd < 0)
		return -1;
	ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
	if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return -1;
	return (int64_t)v;
}

bool futex_counting_probe(const char **why)
{
	int fd;

	futex_tp_id = tracepoint_id("syscalls/sys_enter_futex");
	if (futex_tp_id < 0) {
		*why = "no tracefs with syscalls/sys_enter_futex (mount "
		       "tracefs at /sys/kernel/tracing, as root)";
		return false;
	}
	fd = futex_counter_open(true);
	if (fd < 0) {
		futex_tp_id = -1;
		*why = fd == -EACCES || fd == -EPERM
			? "perf_event_open on the futex tracepoint refused "
			  "(needs root or a low kernel.perf_event_paranoid)"
			: "perf_event_open on the futex tracepoint failed";
		return false;
	}
	close(fd);
	*why = NULL;
	return true;
}

void side_begin(struct side_probe *p)
{
	p->fd_wakes = futex_counter_open(true);
	p->fd_calls = futex_counter_open(false);
	if (p->fd_wakes >= 0)
		ioctl(p->fd_wakes, PERF_EVENT_IOC_ENABLE, 0);
	if (p->fd_calls >= 0)
		ioctl(p->fd_calls, PERF_EVENT_IOC_ENABLE, 0);
	p->runq0 = runq_ns();
	p->cpu0 = thread_cpu_ns();
	p->wall0 = now_ns();
}

void side_end(struct side_probe *p, struct side_measure *out)
{
	out->wall_ns = now_ns() - p->wall0;
	out->cpu_ns = thread_cpu_ns() - p->cpu0;
	out->runq_ns = runq_ns() - p->runq0;
	out->futex_wakes = counter_read(p->fd_wakes);
	out->futex_calls = counter_read(p->fd_calls);
	if (p->fd_wakes >= 0)
		close(p->fd_wakes);
	if (p->fd_calls >= 0)
		close(p->fd_calls);
	p->fd_wakes = p->fd_calls = -1;
}

/* ---- the machine ---- */

void machine_cpu_read(struct machine_cpu *m)
{
	unsigned long long v[10] = { 0 };
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n;

	*m = (struct machine_cpu){ 0 };
	if (!f)
		return;
	/* cpu user nice system idle iowait irq softirq steal guest gnice */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7],
		   &v[8], &v[9]);
	fclose(f);
	if (n < 8 || hz <= 0)
		return;
	m->busy_ns = (int64_t)(v[0] + v[1] + v[2] + v[5] + v[6]) *
		     (NS_PER_SEC / hz);
	m->steal_ns = (int64_t)v[7] * (NS_PER_SEC / hz);
}

struct placement placement_pick(void)
{
	struct placement pl = { { -1, -1 } };
	cpu_set_t set;
	int cpu, found = 0;

	if (sched_getaffinity(0, sizeof(set), &set) != 0)
		return pl;
	for (cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
		if (CPU_ISSET(cpu, &set))
			pl.cpu[found++] = cpu;
	if (found < 2)
		pl = (struct placement){ { -1, -1 } };
	return pl;
}

/* Start fn pinned to cpu (if >= 0), so that it never runs elsewhere. */
int thread_start_pinned(pthread_t *t, int cpu, void *(*fn)(void *),
			void *arg)
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

int pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- pacing ---- */

void pace_init(void)
{
	/* Sleeps end on time, not up to 50 us late (the default slack). */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
}

void pace_until(int64_t t)
{
	int64_t now = now_ns();
	struct timespec ts;

	if (t - now > PACE_SPIN_NS) {
		int64_t wake = t - PACE_SPIN_NS;

		ts.tv_sec = wake / NS_PER_SEC;
		ts.tv_nsec = wake % NS_PER_SEC;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR)
			;
	}
	while (now_ns() < t)
		cpu_relax();
}
