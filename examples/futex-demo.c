/* SPDX-License-Identifier: MIT */
/*
 * futex-demo - two processes, one apq ring in a memfd, bursty traffic.
 *
 * The parent maps a memfd, lays out a region in it and forks.  The child
 * attaches as the consumer, the parent as the producer, each with a futex
 * notifier of its own process: the words they sleep on live in the shared
 * region, so the two notifiers still meet.
 *
 * The producer runs three phases: a trickle (single packets with idle gaps
 * longer than any polling budget, so nearly every packet finds the consumer
 * asleep), bursts separated by idle gaps (the consumer sleeps between bursts,
 * so a burst should cost about one wakeup), and a saturated phase (the
 * consumer never runs dry, so wakeups all but vanish).  Every packet carries
 * its sequence number and a pattern derived from it; the consumer checks
 * both, and the phase's last packet marks where each side snapshots its
 * counters.
 *
 * At the end the child sends its counters to the parent through a pipe and
 * the parent prints one report: per phase, how many wakeups the producer sent
 * and skipped, how often the consumer slept, and what ALWAYS_NOTIFY (a wake
 * per publishing call) would have cost.  The exit status is nonzero if a
 * packet was lost, reordered or corrupted, or a lost wakeup was caught.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>

#define RING_BYTES	(64 * 1024)
#define PKT_MAX		1500
#define BURST_MAX	64
#define NS_PER_SEC	INT64_C(1000000000)
#define NS_PER_MS	INT64_C(1000000)
#define NS_PER_US	INT64_C(1000)

/* A peer that died leaves the other side waiting; no healthy send or recv
 * waits anywhere near this long. */
#define IO_TIMEOUT_NS	(10 * NS_PER_SEC)

/* Between phases, so that the consumer drains the ring and falls asleep:
 * every phase then starts the same way, with one wakeup. */
#define PHASE_PAUSE_NS	(20 * NS_PER_MS)

#define PKT_LAST	1u	/* the phase's last packet */

/* What each packet starts with; the payload pattern and a tail follow. */
struct pkt_head {
	uint64_t seq;
	uint32_t phase;
	uint32_t flags;
};

#define PKT_TAIL	sizeof(uint64_t)	/* ~seq, at the very end */
#define PKT_MIN		(sizeof(struct pkt_head) + PKT_TAIL)

struct phase {
	const char *name;
	const char *what;
	unsigned int burst_min;		/* packets per burst */
	unsigned int burst_max;
	bool burst_call;		/* one apq_send_burst() per burst,
					 * else one apq_send() per packet */
	int64_t gap_min_ns;		/* idle time after each burst */
	int64_t gap_max_ns;
};

enum { NPHASES = 3 };

static const struct phase phases[NPHASES] = {
	{ "trickle", "1 packet, then 2-5 ms idle",
	  1, 1, false, 2 * NS_PER_MS, 5 * NS_PER_MS },
	{ "bursty", "8-64 packets (one apq_send each), then 0.5-3 ms idle",
	  8, 64, false, 500 * NS_PER_US, 3 * NS_PER_MS },
	{ "saturated", "bursts of 32 (one apq_send_burst each), no idle",
	  32, 32, true, 0, 0 },
};

/* Packet sizes: minimum Ethernet frame to full MTU. */
static const uint16_t pkt_sizes[] = { 64, 256, 576, 1500 };

/* The payload of packet seq is pattern[seq % 256 ...]: a packet that holds
 * another packet's bytes, or bytes of none, fails the comparison. */
static unsigned char pattern[256 + PKT_MAX];

struct options {
	double seconds;
	const char *policy_name;
	struct apq_config cfg;
};

/* What the producer counted, per phase and in total. */
struct producer_report {
	struct apq_stats phase[NPHASES];
	struct apq_stats total;
	uint64_t calls[NPHASES];	/* publishing calls it made */
	uint64_t bursts[NPHASES];
	double secs[NPHASES];
	int err;			/* first failure, negative errno */
	const char *err_where;
};

/* What the consumer sends to the parent through the pipe. */
struct consumer_report {
	struct apq_stats phase[NPHASES];
	struct apq_stats total;
	uint64_t received;
	uint64_t bytes;
	uint64_t bad;			/* packets that failed a check */
	uint32_t phases_seen;		/* PKT_LAST packets received */
	int err;			/* an error other than -EPIPE,
					 * negative errno */
	char err_where[32];		/* the call that returned it */
	char why[160];			/* the first failed check */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / NS_PER_SEC),
		.tv_nsec = (long)(ns % NS_PER_SEC),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/* xorshift64: burst sizes and gaps only, so quality hardly matters. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

static uint64_t rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
	return lo + rng_next(state) % (hi - lo + 1);
}

/* The size of packet seq; both sides compute it, so a wrong length shows. */
static size_t pkt_size(uint64_t seq)
{
	/* splitmix64's finaliser: neighbouring packets get unrelated sizes. */
	uint64_t z = seq + UINT64_C(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	z ^= z >> 31;
	return pkt_sizes[z % (sizeof(pkt_sizes) / sizeof(pkt_sizes[0]))];
}

static void pattern_init(void)
{
	size_t i;

	/* 167 is odd, so any 256 consecutive bytes are all different. */
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 167 + 13);
}

static size_t pkt_build(unsigned char *buf, uint64_t seq, uint32_t phase,
			uint32_t flags)
{
	struct pkt_head head = { .seq = seq, .phase = phase, .flags = flags };
	size_t len = pkt_size(seq);
	size_t body = len - PKT_MIN;
	uint64_t tail = ~seq;

	memcpy(buf, &head, sizeof(head));
	memcpy(buf + sizeof(head), pattern + seq % 256, body);
	memcpy(buf + len - PKT_TAIL, &tail, sizeof(tail));
	return len;
}

/*
 * Check packet buf of len bytes against what packet want_seq of phase
 * want_phase must hold.  @return 0, or -1 with the reason in why.
 */
static int pkt_check(const unsigned char *buf, size_t len, uint64_t want_seq,
		     uint32_t want_phase, uint32_t *flags, char *why,
		     size_t why_len)
{
	struct pkt_head head;
	uint64_t tail;

	if (len < PKT_MIN) {
		snprintf(why, why_len, "packet %" PRIu64 ": %zu bytes, too short",
			 want_seq, len);
		return -1;
	}
	memcpy(&head, buf, sizeof(head));
	memcpy(&tail, buf + len - PKT_TAIL, sizeof(tail));
	*flags = head.flags;
	if (head.seq != want_seq) {
		snprintf(why, why_len, "expected packet %" PRIu64 ", got %" PRIu64,
			 want_seq, head.seq);
		return -1;
	}
	if (len != pkt_size(want_seq)) {
		snprintf(why, why_len, "packet %" PRIu64 ": %zu bytes, sent %zu",
			 want_seq, len, pkt_size(want_seq));
		return -1;
	}
	if (head.phase != want_phase || (head.flags & ~PKT_LAST)) {
		snprintf(why, why_len,
			 "packet %" PRIu64 ": phase %" PRIu32 " flags %#" PRIx32
			 ", expected phase %" PRIu32, want_seq, head.phase,
			 head.flags, want_phase);
		return -1;
	}
	if (tail != ~want_seq ||
	    memcmp(buf + sizeof(head), pattern + want_seq % 256,
		   len - PKT_MIN) != 0) {
		snprintf(why, why_len, "packet %" PRIu64 ": contents differ",
			 want_seq);
		return -1;
	}
	return 0;
}

/* d = a - b, counter by counter. */
static void stats_sub(struct apq_stats *d, const struct apq_stats *a,
		      const struct apq_stats *b)
{
	*d = (struct apq_stats){
		.packets = a->packets - b->packets,
		.bytes = a->bytes - b->bytes,
		.wakeups_sent = a->wakeups_sent - b->wakeups_sent,
		.wakeups_skipped = a->wakeups_skipped - b->wakeups_skipped,
		.sleeps = a->sleeps - b->sleeps,
		.spurious_wakeups = a->spurious_wakeups - b->spurious_wakeups,
		.rescues = a->rescues - b->rescues,
	};
}

/*
 * The shared memory: a memfd, so that it has no name in the file system and
 * goes away with the last process that maps it.
 * @return the mapping, or NULL (errno set).
 */
static void *region_map(size_t *mem_bytes)
{
	size_t bytes = apq_region_size(RING_BYTES);
	void *mem;
	int fd, r;

	fd = memfd_create("apq-futex-demo", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)bytes) < 0) {
		close(fd);
		return NULL;
	}
	/* mmap returns page-aligned memory: more than the 64 bytes apq needs. */
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (mem == MAP_FAILED)
		return NULL;
	r = apq_region_init(mem, bytes, RING_BYTES);
	if (r) {
		munmap(mem, bytes);
		errno = -r;
		return NULL;
	}
	*mem_bytes = bytes;
	return mem;
}

/* Full-length pipe I/O: the report is larger than nothing, if smaller than
 * PIPE_BUF, and a signal could split it anyway. */
static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- the consumer (child) ---- */

static void consume(struct apq_consumer *c, struct consumer_report *rep)
{
	static unsigned char buf[PKT_MAX];
	struct apq_stats mark = { 0 }, now;
	uint64_t want = 0;
	uint32_t phase = 0, flags;
	ssize_t len;

	for (;;) {
		len = apq_recv(c, buf, sizeof(buf), IO_TIMEOUT_NS);
		if (len == -EPIPE)
			break;		/* producer gone and ring drained */
		if (len < 0) {
			rep->err = (int)len;
			snprintf(rep->err_where, sizeof(rep->err_where),
				 "apq_recv");
			break;
		}
		rep->received++;
		rep->bytes += (uint64_t)len;
		if (pkt_check(buf, (size_t)len, want, phase, &flags,
			      rep->why, rep->bad ? 0 : sizeof(rep->why))) {
			rep->bad++;
			/* Resynchronise on what arrived, so that one loss
			 * counts once rather than for every later packet. */
			if ((size_t)len >= sizeof(struct pkt_head))
				memcpy(&want, buf, sizeof(want));
			flags = 0;
		}
		want++;
		if ((flags & PKT_LAST) && phase < NPHASES) {
			apq_consumer_stats(c, &now);
			stats_sub(&rep->phase[phase], &now, &mark);
			mark = now;
			phase++;
		}
	}
	rep->phases_seen = phase;
	apq_consumer_stats(c, &rep->total);
}

static int run_consumer(void *mem, size_t mem_bytes,
			const struct apq_config *cfg, int report_fd)
{
	struct consumer_report rep = { 0 };
	struct apq_notifier *n = NULL;
	struct apq_consumer *c = NULL;
	int r;

	/* Our own notifier: it is process-local, the words are shared. */
	r = apq_notifier_futex(&n);
	if (!r)
		r = apq_consumer_attach(&c, mem, mem_bytes, n, cfg);
	if (r) {
		rep.err = r;
		snprintf(rep.err_where, sizeof(rep.err_where),
			 "consumer attach");
	} else {
		consume(c, &rep);
	}
	apq_consumer_detach(c);
	apq_notifier_free(n);
	return write_full(report_fd, &rep, sizeof(rep)) ? 1 : 0;
}

/* ---- the producer (parent) ---- */

struct producer {
	struct apq_producer *p;
	struct producer_report *rep;
	uint64_t seq;
	uint64_t rng;
	unsigned char bufs[BURST_MAX][PKT_MAX];
	struct iovec iov[BURST_MAX];
};

static int fail(struct producer *pr, int err, const char *where)
{
	if (!pr->rep->err) {
		pr->rep->err = err;
		pr->rep->err_where = where;
	}
	return err;
}

/* Send n packets of phase k, the last flagged if last. */
static int send_burst(struct producer *pr, unsigned int k, unsigned int n,
		      bool last)
{
	unsigned int i, done;
	int r;

	for (i = 0; i < n; i++) {
		uint32_t flags = last && i + 1 == n ? PKT_LAST : 0;

		pr->iov[i].iov_base = pr->bufs[i];
		pr->iov[i].iov_len = pkt_build(pr->bufs[i], pr->seq + i, k,
					       flags);
	}
	for (done = 0; done < n; done += (unsigned int)r) {
		if (phases[k].burst_call) {
			/* Sends as many as fit, at least one. */
			r = apq_send_burst(pr->p, pr->iov + done, n - done,
					   IO_TIMEOUT_NS);
			if (r < 0)
				return fail(pr, r, "apq_send_burst");
		} else {
			r = apq_send(pr->p, pr->iov[done].iov_base,
				     pr->iov[done].iov_len, IO_TIMEOUT_NS);
			if (r < 0)
				return fail(pr, r, "apq_send");
			r = 1;
		}
		pr->rep->calls[k]++;
	}
	pr->seq += n;
	return 0;
}

static int produce_phase(struct producer *pr, unsigned int k, int64_t len_ns)
{
	const struct phase *ph = &phases[k];
	int64_t start = now_ns(), end = start + len_ns;
	int r;

	while (now_ns() < end) {
		unsigned int n = (unsigned int)rng_range(&pr->rng, ph->burst_min,
							 ph->burst_max);

		r = send_burst(pr, k, n, false);
		if (r)
			return r;
		pr->rep->bursts[k]++;
		if (ph->gap_max_ns)
			sleep_ns((int64_t)rng_range(&pr->rng,
						    (uint64_t)ph->gap_min_ns,
						    (uint64_t)ph->gap_max_ns));
	}
	/* A packet of its own marks the end, so that both sides snapshot
	 * their counters at the same point of the stream. */
	r = send_burst(pr, k, 1, true);
	pr->rep->secs[k] = (double)(now_ns() - start) / NS_PER_SEC;
	return r;
}

static void run_producer(void *mem, size_t mem_bytes,
			 const struct options *opt,
			 struct producer_report *rep)
{
	static struct producer pr;
	struct apq_stats mark = { 0 }, now;
	struct apq_notifier *n = NULL;
	int64_t phase_ns = (int64_t)(opt->seconds * NS_PER_SEC / NPHASES);
	unsigned int k;
	int r;

	pr.rep = rep;
	pr.rng = UINT64_C(0x2545f4914f6cdd1d);
	r = apq_notifier_futex(&n);
	if (!r)
		r = apq_producer_attach(&pr.p, mem, mem_bytes, n, &opt->cfg);
	if (r) {
		fail(&pr, r, "producer attach");
		apq_notifier_free(n);
		return;
	}
	for (k = 0; k < NPHASES; k++) {
		if (k)
			sleep_ns(PHASE_PAUSE_NS);
		if (produce_phase(&pr, k, phase_ns))
			break;
		apq_producer_stats(pr.p, &now);
		stats_sub(&rep->phase[k], &now, &mark);
		mark = now;
	}
	apq_producer_stats(pr.p, &rep->total);
	/* The consumer sees -EPIPE once it has drained the ring. */
	apq_producer_detach(pr.p);
	apq_notifier_free(n);
}

/* The child's exit status, or -1 if it did not exit normally. */
static int child_status(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the report ---- */

static double per(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static void print_row(const char *name, double secs, uint64_t bursts,
		      uint64_t calls, const struct apq_stats *p,
		      const struct apq_stats *c)
{
	printf("%-9s %6.2fs %7" PRIu64 " %9" PRIu64 " %9" PRIu64 " %8" PRIu64
	       " %8" PRIu64 " %7.4f %9" PRIu64 " %7" PRIu64 " %8" PRIu64
	       " %7" PRIu64 "\n",
	       name, secs, bursts, p->packets, calls, p->wakeups_sent,
	       p->wakeups_skipped, per(p->wakeups_sent, p->packets), calls,
	       c->sleeps, c->spurious_wakeups, c->rescues);
}

static void print_table(const struct producer_report *pr,
			const struct consumer_report *cr)
{
	uint64_t calls = 0, bursts = 0;
	double secs = 0;
	unsigned int k;

	printf("%-9s %7s %7s %9s %9s %8s %8s %7s %9s %7s %8s %7s\n", "phase",
	       "time", "bursts", "packets", "publishes", "wakeups", "skipped",
	       "wk/pkt", "always-nt", "sleeps", "spurious", "rescues");
	for (k = 0; k < NPHASES; k++) {
		print_row(phases[k].name, pr->secs[k], pr->bursts[k],
			  pr->calls[k], &pr->phase[k], &cr->phase[k]);
		calls += pr->calls[k];
		bursts += pr->bursts[k];
		secs += pr->secs[k];
	}
	print_row("total", secs, bursts, calls, &pr->total, &cr->total);
	printf("\n");
	for (k = 0; k < NPHASES; k++)
		printf("  %-10s %s\n", phases[k].name, phases[k].what);
	printf("  %-10s (each phase ends with one more packet, which marks the end)\n"
	       "  %-10s publishing calls the producer made: apq_send() or apq_send_burst()\n"
	       "  %-10s futex wakes the producer sent, each to a consumer that had announced SLEEPING\n"
	       "  %-10s publishing calls that sent none: consumer polling, or already woken\n"
	       "  %-10s wakeups per packet\n"
	       "  %-10s what ALWAYS_NOTIFY would send: one wake per publishing call\n"
	       "  %-10s times the consumer blocked for data\n"
	       "  %-10s times it woke and found nothing\n"
	       "  %-10s lost wakeups its backstop caught: must be 0\n"
	       "  %-10s (wakeups + skipped can exceed publishes: apq publishes on its own\n"
	       "  %-10s when it pads the ring's end while waiting for room)\n",
	       "", "publishes", "wakeups", "skipped", "wk/pkt", "always-nt",
	       "sleeps", "spurious", "rescues", "", "");
}

/*
 * Print the report and judge the run.  @return true if every packet arrived
 * intact and in order, and no lost wakeup was caught.
 */
static bool report(const struct options *opt, const struct producer_report *pr,
		   const struct consumer_report *cr, bool have_cr)
{
	const struct apq_stats *t = &pr->total;
	uint64_t calls = 0;
	bool ok = true;
	unsigned int k;

	for (k = 0; k < NPHASES; k++)
		calls += pr->calls[k];
	printf("apq futex-demo: producer (parent) and consumer (child) over a "
	       "memfd ring of %d bytes, policy %s, %.2f s\n\n", RING_BYTES,
	       opt->policy_name, opt->seconds);
	if (have_cr)
		print_table(pr, cr);
	printf("\n");
	if (have_cr) {
		printf("producer: sent %" PRIu64 " wakeups for %" PRIu64
		       " packets (%.4f per packet) and skipped %" PRIu64
		       "; ALWAYS_NOTIFY would have sent %" PRIu64, t->wakeups_sent,
		       t->packets, per(t->wakeups_sent, t->packets),
		       t->wakeups_skipped, calls);
		if (t->wakeups_sent)
			printf(" (%.1fx as many).\n", per(calls, t->wakeups_sent));
		else
			printf(".\n");
		printf("ring full: the producer slept %" PRIu64
		       " times; the consumer sent %" PRIu64
		       " space wakeups and skipped %" PRIu64 ".\n", t->sleeps,
		       cr->total.wakeups_sent, cr->total.wakeups_skipped);
		if (cr->total.wake_call_ns)
			printf("learned (ADAPTIVE, consumer): a futex wake "
			       "costs the producer %" PRIu64 " ns and a block "
			       "the consumer %" PRIu64 " ns of CPU; it runs %"
			       PRIu64 " ns after the wake; %s.\n",
			       cr->total.wake_call_ns, cr->total.block_cpu_ns,
			       cr->total.wake_late_ns,
			       cr->total.polling ? "polls for their sum"
						 : "blocks at once");
	}
	if (pr->err) {
		printf("FAILED: producer: %s: %s\n", pr->err_where,
		       strerror(-pr->err));
		ok = false;
	}
	if (!have_cr) {
		printf("FAILED: the consumer did not report (it died?)\n");
		return false;
	}
	if (cr->err) {
		printf("FAILED: consumer: %s: %s\n", cr->err_where,
		       strerror(-cr->err));
		ok = false;
	}
	if (cr->bad) {
		printf("FAILED: %" PRIu64 " packets failed their check; the "
		       "first: %s\n", cr->bad, cr->why);
		ok = false;
	}
	if (cr->received != t->packets || cr->bytes != t->bytes ||
	    cr->phases_seen != NPHASES) {
		printf("FAILED: sent %" PRIu64 " packets (%" PRIu64
		       " bytes), received %" PRIu64 " (%" PRIu64
		       " bytes), %" PRIu32 " of %d phases\n", t->packets,
		       t->bytes, cr->received, cr->bytes, cr->phases_seen,
		       NPHASES);
		ok = false;
	}
	if (cr->total.rescues || t->rescues) {
		printf("FAILED: %" PRIu64 " lost wakeups caught by the "
		       "backstop (rescues)\n", cr->total.rescues + t->rescues);
		ok = false;
	}
	if (ok)
		printf("check: all %" PRIu64 " packets (%.1f MB) arrived in "
		       "order with intact contents; no lost wakeups.\n",
		       cr->received, (double)cr->bytes / 1e6);
	return ok;
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: futex-demo [--seconds N] [--policy adaptive|spin|always|busy]\n"
		"                  [--spin-ns NS]\n"
		"\n"
		"Two processes share an apq ring in a memfd: the parent sends bursty,\n"
		"sequence-numbered traffic in three phases (trickle, bursty, saturated),\n"
		"the child checks every packet.  Prints wakeups sent versus skipped, and\n"
		"what waking on every publish (ALWAYS_NOTIFY) would have cost.\n"
		"\n"
		"  --seconds N   total run time, split between the phases (default 3)\n"
		"  --policy P    adaptive (default): poll about one sleep/wake's cost\n"
		"                spin: poll --spin-ns, then sleep\n"
		"                always: ALWAYS_NOTIFY, wake on every publish\n"
		"                busy: BUSY_POLL, never sleep\n"
		"  --spin-ns NS  the spin policy's budget (default 20000)\n"
		"  --help        this text\n"
		"\n"
		"Exit status: 0 if every packet arrived intact and in order, 1 if not,\n"
		"2 on a usage error.\n");
}

static int parse_policy(const char *s, struct apq_config *cfg)
{
	static const struct {
		const char *name;
		enum apq_policy policy;
	} names[] = {
		{ "adaptive", APQ_POLICY_ADAPTIVE },
		{ "spin", APQ_POLICY_SPIN },
		{ "always", APQ_POLICY_ALWAYS_NOTIFY },
		{ "busy", APQ_POLICY_BUSY_POLL },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			cfg->policy = names[i].policy;
			return 0;
		}
	}
	return -1;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "policy", required_argument, NULL, 'p' },
		{ "spin-ns", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	*opt = (struct options){
		.seconds = 3.0,
		.policy_name = "adaptive",
		.cfg = { .policy = APQ_POLICY_ADAPTIVE, .spin_ns = 20000 },
	};
	while ((c = getopt_long(argc, argv, "s:p:n:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			errno = 0;
			opt->seconds = strtod(optarg, &end);
			if (errno || *end || !(opt->seconds > 0) ||
			    opt->seconds > 3600) {
				fprintf(stderr, "futex-demo: bad --seconds: %s\n",
					optarg);
				return -1;
			}
			break;
		case 'p':
			if (parse_policy(optarg, &opt->cfg)) {
				fprintf(stderr, "futex-demo: unknown policy: %s\n",
					optarg);
				return -1;
			}
			opt->policy_name = optarg;
			break;
		case 'n':
			errno = 0;
			opt->cfg.spin_ns = strtoull(optarg, &end, 0);
			if (errno || *end || optarg[0] == '-') {
				fprintf(stderr, "futex-demo: bad --spin-ns: %s\n",
					optarg);
				return -1;
			}
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
		fprintf(stderr, "futex-demo: unexpected argument: %s\n",
			argv[optind]);
		return -1;
	}
	/* spin_ns means something to the spin policy only. */
	if (opt->cfg.policy != APQ_POLICY_SPIN)
		opt->cfg.spin_ns = 0;
	return 0;
}

int main(int argc, char **argv)
{
	static struct producer_report prep;
	static struct consumer_report crep;
	struct options opt;
	size_t mem_bytes = 0;
	bool have_crep;
	int fds[2];
	void *mem;
	pid_t pid;

	if (parse_options(argc, argv, &opt))
		return 2;
	pattern_init();
	mem = region_map(&mem_bytes);
	if (!mem) {
		perror("futex-demo: shared memory");
		return 1;
	}
	if (pipe(fds) < 0) {
		perror("futex-demo: pipe");
		return 1;
	}
	fflush(NULL);	/* or the child would flush our buffers again */
	pid = fork();
	if (pid < 0) {
		perror("futex-demo: fork");
		return 1;
	}
	if (pid == 0) {
		close(fds[0]);
		_exit(run_consumer(mem, mem_bytes, &opt.cfg, fds[1]));
	}
	close(fds[1]);

	run_producer(mem, mem_bytes, &opt, &prep);
	/* A producer that never attached cannot make the consumer see -EPIPE;
	 * do not let it wait for its timeout. */
	if (prep.err && prep.total.packets == 0)
		kill(pid, SIGTERM);
	have_crep = read_full(fds[0], &crep, sizeof(crep)) == 0;
	close(fds[0]);
	if (child_status(pid) != 0)
		have_crep = false;
	crep.why[sizeof(crep.why) - 1] = '\0';
	crep.err_where[sizeof(crep.err_where) - 1] = '\0';
	return report(&opt, &prep, &crep, have_crep) ? 0 : 1;
}
