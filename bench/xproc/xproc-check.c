/* SPDX-License-Identifier: MIT */
/*
 * xproc-check - drive every two-process adapter of this build the way
 * apq-bench does, and check exact delivery.
 *
 * For each adapter and variant: setup() in this process, two forked
 * children that open their endpoints, teardown() after both exited.
 *
 *   stream   sequence-numbered packets of 8 bytes, of 64 KiB, and of mixed
 *            sizes, through the copying calls and (where the adapter has
 *            them) the zero-copy ones, then the end of the stream; the
 *            consumer checks every packet's length, sequence number and
 *            bytes, and that the end comes after the last packet and only
 *            then; and streams whose consumer starts late: one that
 *            fills the queue and blocks the producer, one that fits the
 *            queue, so that the producer ends it and exits before the
 *            consumer's first receive
 *   pingpong requests on channel 0, replies on channel 1, each reply the
 *            request's bytes; the two children open their endpoints in
 *            opposite orders (the pinger its producer first), and once
 *            both open their consumer first
 *
 * After each teardown nothing of the run may be left in /dev/shm or /tmp.
 * Stream children end with exit(), ping-pong children with _exit() (as
 * apq-bench's do), so that both ways out are covered.
 *
 * An adapter whose setup() says -ENOTSUP is reported as skipped.  With
 * --bench the streams and ping-pongs are longer and their rates printed:
 * packets per second (between the first and the last packet the consumer
 * received) and the median round trip.
 *
 * Exit status: 0 all passed (or skipped), 1 a failure.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "xproc.h"

#define PKT_BIG		(64 * 1024)
#define TAKE_BATCH	4		/* takes before one give_back */
#define MS		INT64_C(1000000)
#define CHILD_LIMIT_NS	(60 * INT64_C(1000000000))

/* The bytes of packet seq are pattern[seq % 251 ...] after its 8-byte
 * sequence number, so a packet holding another's bytes fails. */
static unsigned char pattern[256 + PKT_BIG];

static const size_t mixed_sizes[] = { 8, 13, 100, 1500, 4096, PKT_BIG, 9, 60000 };

enum mode { COPY, ZERO_COPY };

struct stream_spec {
	const char *name;
	size_t fixed;		/* 0: mixed_sizes by sequence number */
	uint64_t count;
	enum mode mode;
	int64_t consumer_delay_ns;	/* before the first receive */
};

/* What a child sends back through its pipe. */
struct report {
	int err;
	char why[200];
	uint64_t packets;
	double secs;			/* first to last packet, consumer */
	uint64_t rtt_median_ns;		/* ping-pong, first child */
	struct bench_counters counters;
};

static bool bench_mode;

static size_t pkt_len(const struct stream_spec *s, uint64_t seq)
{
	return s->fixed ? s->fixed :
		mixed_sizes[seq % (sizeof(mixed_sizes) / sizeof(mixed_sizes[0]))];
}

static void fill(unsigned char *p, uint64_t seq, size_t len)
{
	memcpy(p, &seq, sizeof(seq));
	memcpy(p + sizeof(seq), pattern + seq % 251, len - sizeof(seq));
}

/* @return NULL if packet pkt of len bytes is packet seq of stream s. */
static const char *check(const unsigned char *p, size_t len, uint64_t seq,
			 size_t want_len)
{
	static char why[128];
	uint64_t got;

	if (len != want_len) {
		snprintf(why, sizeof(why), "packet %" PRIu64 ": length %zu, want %zu",
			 seq, len, want_len);
		return why;
	}
	memcpy(&got, p, sizeof(got));
	if (got != seq) {
		snprintf(why, sizeof(why), "packet %" PRIu64 ": sequence number %" PRIu64,
			 seq, got);
		return why;
	}
	if (memcmp(p + sizeof(seq), pattern + seq % 251, len - sizeof(seq))) {
		snprintf(why, sizeof(why), "packet %" PRIu64 ": bytes differ", seq);
		return why;
	}
	return NULL;
}

static void fail(struct report *r, int err, const char *fmt, const char *what)
{
	if (r->err)
		return;
	r->err = err ? err : -EPROTO;
	snprintf(r->why, sizeof(r->why), fmt, what, strerror(err < 0 ? -err : err));
}

/* ---- children ---- */

static void stream_producer(const struct bench_xproc_impl *im, void *sh,
			    const struct stream_spec *s, struct report *r)
{
	static unsigned char buf[PKT_BIG];
	void *ep;
	int e = im->open_producer(sh, 0, &ep);
	uint64_t seq;

	if (e < 0) {
		fail(r, e, "%s: %s", "open_producer");
		return;
	}
	for (seq = 0; seq < s->count; seq++) {
		size_t len = pkt_len(s, seq);

		if (s->mode == COPY) {
			fill(buf, seq, len);
			e = im->send(ep, buf, len);
			if (e < 0) {
				fail(r, e, "%s: %s", "send");
				break;
			}
		} else {
			void *slot;

			e = im->loan(ep, len, &slot);
			if (e < 0) {
				fail(r, e, "%s: %s", "loan");
				break;
			}
			fill(slot, seq, len);
			e = im->publish(ep, len);
			if (e < 0) {
				fail(r, e, "%s: %s", "publish");
				break;
			}
		}
		r->packets++;
	}
	im->close_producer(ep, &r->counters);
}

static void stream_consumer(const struct bench_xproc_impl *im, void *sh,
			    const struct stream_spec *s, struct report *r)
{
	static unsigned char buf[PKT_BIG];
	int64_t first = 0, last = 0;
	unsigned int held = 0;
	const char *bad;
	uint64_t seq = 0;
	void *ep;
	int e = im->open_consumer(sh, 0, &ep);

	if (e < 0) {
		fail(r, e, "%s: %s", "open_consumer");
		return;
	}
	if (s->consumer_delay_ns)
		usleep((useconds_t)(s->consumer_delay_ns / 1000));
	for (;;) {
		ssize_t n;
		const void *pkt;

		if (s->mode == COPY) {
			n = im->recv(ep, buf, sizeof(buf));
			pkt = buf;
		} else {
			n = im->take(ep, &pkt);
		}
		if (n < 0) {
			fail(r, (int)n, "%s: %s", s->mode == COPY ? "recv" : "take");
			break;
		}
		if (n == 0) {
			if (seq != s->count) {
				snprintf(r->why, sizeof(r->why),
					 "end of stream after %" PRIu64 " of %" PRIu64 " packets",
					 seq, s->count);
				r->err = -EPROTO;
			}
			break;
		}
		last = xproc_now_ns();
		if (!first)
			first = last;
		if (seq >= s->count) {
			snprintf(r->why, sizeof(r->why),
				 "packet %" PRIu64 " after the last", seq);
			r->err = -EPROTO;
			break;
		}
		bad = check(pkt, (size_t)n, seq, pkt_len(s, seq));
		if (bad) {
			snprintf(r->why, sizeof(r->why), "%s", bad);
			r->err = -EPROTO;
			break;
		}
		seq++;
		if (s->mode == ZERO_COPY && ++held == TAKE_BATCH) {
			e = im->give_back(ep);
			held = 0;
			if (e < 0) {
				fail(r, e, "%s: %s", "give_back");
				break;
			}
		}
	}
	if (s->mode == ZERO_COPY && held && !r->err) {
		e = im->give_back(ep);
		if (e < 0)
			fail(r, e, "%s: %s", "give_back");
	}
	/* A second receive after the end must say the end again. */
	if (!r->err) {
		const void *pkt;
		ssize_t n = s->mode == COPY ? im->recv(ep, buf, sizeof(buf)) :
			im->take(ep, &pkt);

		if (n != 0) {
			snprintf(r->why, sizeof(r->why),
				 "receive after the end returned %zd", n);
			r->err = -EPROTO;
		}
	}
	r->packets = seq;
	r->secs = (double)(last - first) / 1e9;
	im->close_consumer(ep, &r->counters);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A producer on channel ptx and a consumer on channel crx, in that order
 * or the other. */
static int open_pair(const struct bench_xproc_impl *im, void *sh,
		     unsigned int ptx, void **tx, unsigned int crx, void **rx,
		     bool consumer_first, struct report *r)
{
	int i, e;

	for (i = 0; i < 2; i++) {
		if ((i == 0) != consumer_first) {
			e = im->open_producer(sh, ptx, tx);
			if (e < 0) {
				*tx = NULL;
				fail(r, e, "%s: %s", "open_producer");
				return e;
			}
		} else {
			e = im->open_consumer(sh, crx, rx);
			if (e < 0) {
				*rx = NULL;
				fail(r, e, "%s: %s", "open_consumer");
				return e;
			}
		}
	}
	return 0;
}

/* Child 0 asks on channel 0 and waits for the answer on channel 1. */
static void ping(const struct bench_xproc_impl *im, void *sh, uint64_t count,
		 size_t len, bool consumer_first, struct report *r)
{
	static unsigned char buf[PKT_BIG], in[PKT_BIG];
	uint64_t *rtt = calloc(count, sizeof(*rtt));
	void *tx = NULL, *rx = NULL;
	const char *bad;
	uint64_t seq;
	int e;

	if (!rtt) {
		fail(r, -ENOMEM, "%s: %s", "calloc");
		return;
	}
	e = open_pair(im, sh, 0, &tx, 1, &rx, consumer_first, r);
	if (e < 0)
		goto out;
	for (seq = 0; seq < count; seq++) {
		int64_t t0 = xproc_now_ns();
		ssize_t n;

		fill(buf, seq, len);
		e = im->send(tx, buf, len);
		if (e < 0) {
			fail(r, e, "%s: %s", "send");
			break;
		}
		n = im->recv(rx, in, sizeof(in));
		if (n <= 0) {
			fail(r, n ? (int)n : -EPIPE, "%s: %s", "recv");
			break;
		}
		rtt[seq] = (uint64_t)(xproc_now_ns() - t0);
		bad = check(in, (size_t)n, seq, len);
		if (bad) {
			snprintf(r->why, sizeof(r->why), "reply: %s", bad);
			r->err = -EPROTO;
			break;
		}
		r->packets++;
	}
out:
	if (tx)
		im->close_producer(tx, &r->counters);
	/* The echo ends its stream when ours ends. */
	if (rx && !r->err) {
		ssize_t n = im->recv(rx, in, sizeof(in));

		if (n != 0) {
			snprintf(r->why, sizeof(r->why),
				 "reply stream: %zd instead of its end", n);
			r->err = -EPROTO;
		}
	}
	if (rx)
		im->close_consumer(rx, NULL);
	if (r->packets) {
		qsort(rtt, r->packets, sizeof(*rtt), cmp_u64);
		r->rtt_median_ns = rtt[r->packets / 2];
	}
	free(rtt);
}

/* Child 1 echoes. */
static void pong(const struct bench_xproc_impl *im, void *sh,
		 bool consumer_first, struct report *r)
{
	static unsigned char buf[PKT_BIG];
	void *tx = NULL, *rx = NULL;
	int e;

	e = open_pair(im, sh, 1, &tx, 0, &rx, consumer_first, r);
	if (e < 0)
		goto out;
	for (;;) {
		ssize_t n = im->recv(rx, buf, sizeof(buf));

		if (n == 0)
			break;
		if (n < 0) {
			fail(r, (int)n, "%s: %s", "recv");
			break;
		}
		e = im->send(tx, buf, (size_t)n);
		if (e < 0) {
			fail(r, e, "%s: %s", "send");
			break;
		}
		r->packets++;
	}
out:
	if (tx)
		im->close_producer(tx, &r->counters);
	if (rx)
		im->close_consumer(rx, NULL);
}

/* ---- the parent ---- */

struct child {
	pid_t pid;
	int fd;		/* the report's read end */
};

/* Children of streams end with exit(), which runs the libraries' exit
 * handlers; those of ping-pongs with _exit(), as apq-bench's do. */
static pid_t spawn(struct child *c, void (*body)(void *), void *arg,
		   struct report *rep, bool quick_exit)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		ssize_t w;

		close(p[0]);
		memset(rep, 0, sizeof(*rep));
		body(arg);
		w = write(p[1], rep, sizeof(*rep));
		if (quick_exit)
			_exit(w == (ssize_t)sizeof(*rep) ? 0 : 2);
		exit(w == (ssize_t)sizeof(*rep) ? 0 : 2);
	}
	close(p[1]);
	c->pid = pid;
	c->fd = p[0];
	return pid;
}

/* Wait for both children, killing them past CHILD_LIMIT_NS. */
static int reap(struct child *c, struct report *rep, int n)
{
	int64_t deadline = xproc_now_ns() + CHILD_LIMIT_NS;
	int i, status, bad = 0;
	bool killed = false;

	for (i = 0; i < n; i++) {
		while (waitpid(c[i].pid, &status, WNOHANG) == 0) {
			if (!killed && xproc_now_ns() > deadline) {
				kill(c[0].pid, SIGKILL);
				kill(c[1].pid, SIGKILL);
				killed = true;
			}
			usleep(1000);
		}
		if (read(c[i].fd, &rep[i], sizeof(rep[i])) != (ssize_t)sizeof(rep[i])) {
			memset(&rep[i], 0, sizeof(rep[i]));
			rep[i].err = -ECHILD;
			snprintf(rep[i].why, sizeof(rep[i].why),
				 "child %d %s %d%s", i,
				 WIFSIGNALED(status) ? "killed by signal" : "exited with",
				 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
				 killed ? " (time limit)" : "");
		}
		close(c[i].fd);
		if (rep[i].err)
			bad = 1;
	}
	return bad;
}

struct ctx {
	const struct bench_xproc_impl *im;
	void *sh;
	const struct stream_spec *s;
	uint64_t count;
	size_t len;
	bool consumer_first;
	struct report rep;
};

static void body_producer(void *a)
{
	struct ctx *x = a;

	stream_producer(x->im, x->sh, x->s, &x->rep);
}

static void body_consumer(void *a)
{
	struct ctx *x = a;

	stream_consumer(x->im, x->sh, x->s, &x->rep);
}

static void body_ping(void *a)
{
	struct ctx *x = a;

	ping(x->im, x->sh, x->count, x->len, x->consumer_first, &x->rep);
}

static void body_pong(void *a)
{
	struct ctx *x = a;

	pong(x->im, x->sh, x->consumer_first, &x->rep);
}

static int failures, passes, skips;

/*
 * What a teardown must not leave behind: names in /dev/shm or /tmp that
 * carry this process's id (the adapters name their queues, runtimes and
 * sockets after the process that ran setup()), and iceoryx's management
 * segment if it was not there before.  @return the first such name, or NULL.
 */
static const char *leftover(bool mgmt_before)
{
	static const char *const dirs[] = { "/dev/shm", "/tmp" };
	static char found[300];
	char a[32], b[32];
	struct dirent *d;
	size_t i;
	DIR *dir;

	if (!mgmt_before && access("/dev/shm/iceoryx_mgmt", F_OK) == 0)
		return "/dev/shm/iceoryx_mgmt";
	snprintf(a, sizeof(a), "-%d-", (int)getpid());
	snprintf(b, sizeof(b), "p%d-", (int)getpid());
	for (i = 0; i < 2; i++) {
		dir = opendir(dirs[i]);
		if (!dir)
			continue;
		while ((d = readdir(dir))) {
			if (strncmp(d->d_name, "apq-bench", 9) == 0 &&
			    (strstr(d->d_name, a) || strstr(d->d_name, b))) {
				snprintf(found, sizeof(found), "%s/%s", dirs[i],
					 d->d_name);
				closedir(dir);
				return found;
			}
		}
		closedir(dir);
	}
	return NULL;
}

/* setup(); the reason printed and true when the queue cannot run here. */
static int do_setup(const struct bench_xproc_impl *im,
		    const struct bench_variant *v, unsigned int channels,
		    void **sh, const char *what)
{
	const char *why = NULL;
	int e = im->setup(sh, v, PKT_BIG, channels, &why);

	if (e == -ENOTSUP) {
		printf("SKIP %s/%s %s: %s\n", im->name, v->name, what,
		       why ? why : "(no reason given)");
		skips++;
		return 1;
	}
	if (e < 0) {
		printf("FAIL %s/%s %s: setup: %s\n", im->name, v->name, what,
		       strerror(-e));
		failures++;
		return -1;
	}
	return 0;
}

static void print_counters(const char *side, const struct bench_counters *c,
			   bool wakeups)
{
	printf("    %s: %" PRIu64 " packets", side, c->packets);
	if (wakeups)
		printf(", %" PRIu64 " wakeups", c->wakeups);
	printf(", %" PRIu64 " sleeps, %" PRIu64 " rescues\n", c->sleeps,
	       c->rescues);
}

static int run_stream(const struct bench_xproc_impl *im,
		      const struct bench_variant *v, const struct stream_spec *s)
{
	struct ctx px = { .im = im, .s = s }, cx = { .im = im, .s = s };
	struct child c[2];
	struct report rep[2];
	const char *left;
	char what[64];
	int r, bad;
	bool mgmt;

	snprintf(what, sizeof(what), "stream %s %s%s", s->name,
		 s->mode == COPY ? "copy" : "zero-copy",
		 s->consumer_delay_ns ? " late consumer" : "");
	mgmt = access("/dev/shm/iceoryx_mgmt", F_OK) == 0;
	r = do_setup(im, v, 1, &px.sh, what);
	if (r)
		return r;
	cx.sh = px.sh;
	/* The consumer first, so the producer also meets one that waits. */
	if (spawn(&c[1], body_consumer, &cx, &cx.rep, false) < 0 ||
	    spawn(&c[0], body_producer, &px, &px.rep, false) < 0) {
		perror("fork");
		exit(1);
	}
	bad = reap(c, rep, 2);
	im->teardown(px.sh);
	if (!bad && (left = leftover(mgmt))) {
		snprintf(rep[1].why, sizeof(rep[1].why), "teardown left %s",
			 left);
		bad = 1;
	}
	if (!bad && rep[1].packets != s->count) {
		snprintf(rep[1].why, sizeof(rep[1].why), "%" PRIu64 " packets received",
			 rep[1].packets);
		bad = 1;
	}
	if (!bad && im->counts_wakeups &&
	    (rep[0].counters.rescues || rep[1].counters.rescues)) {
		snprintf(rep[1].why, sizeof(rep[1].why), "lost wakeups caught");
		bad = 1;
	}
	if (!bad && (rep[0].counters.packets != s->count ||
		     rep[1].counters.packets != s->count)) {
		snprintf(rep[1].why, sizeof(rep[1].why),
			 "counters: %" PRIu64 " sent, %" PRIu64 " received",
			 rep[0].counters.packets, rep[1].counters.packets);
		bad = 1;
	}
	if (bad) {
		printf("FAIL %s/%s %s: producer: %s; consumer: %s\n", im->name,
		       v->name, what, rep[0].err ? rep[0].why : "ok",
		       rep[1].why[0] ? rep[1].why : "ok");
		failures++;
		return -1;
	}
	printf("ok   %s/%s %s: %" PRIu64 " packets", im->name, v->name, what,
	       s->count);
	if (rep[1].secs > 0)
		printf(", %.0f packets/s", (double)(s->count - 1) / rep[1].secs);
	printf("\n");
	if (bench_mode) {
		print_counters("producer", &rep[0].counters, im->counts_wakeups);
		print_counters("consumer", &rep[1].counters, im->counts_wakeups);
	}
	passes++;
	return 0;
}

static int run_pingpong(const struct bench_xproc_impl *im,
			const struct bench_variant *v, uint64_t count, size_t len,
			bool both_consumer_first)
{
	struct ctx ax = { .im = im, .count = count, .len = len,
			  .consumer_first = both_consumer_first };
	struct ctx bx = { .im = im, .consumer_first = true };
	struct child c[2];
	struct report rep[2];
	const char *left;
	char what[64];
	int r, bad;
	bool mgmt;

	snprintf(what, sizeof(what), "pingpong %zu B%s", len,
		 both_consumer_first ? " consumers opened first" : "");
	mgmt = access("/dev/shm/iceoryx_mgmt", F_OK) == 0;
	r = do_setup(im, v, 2, &ax.sh, what);
	if (r)
		return r;
	bx.sh = ax.sh;
	if (spawn(&c[0], body_ping, &ax, &ax.rep, true) < 0 ||
	    spawn(&c[1], body_pong, &bx, &bx.rep, true) < 0) {
		perror("fork");
		exit(1);
	}
	bad = reap(c, rep, 2);
	im->teardown(ax.sh);
	if (!bad && (left = leftover(mgmt))) {
		snprintf(rep[0].why, sizeof(rep[0].why), "teardown left %s",
			 left);
		bad = 1;
	}
	if (!bad && (rep[0].packets != count || rep[1].packets != count)) {
		snprintf(rep[0].why, sizeof(rep[0].why),
			 "%" PRIu64 " round trips, %" PRIu64 " echoed",
			 rep[0].packets, rep[1].packets);
		bad = 1;
	}
	if (bad) {
		printf("FAIL %s/%s %s: %s; %s\n", im->name, v->name, what,
		       rep[0].why[0] ? rep[0].why : "ok",
		       rep[1].err ? rep[1].why : "ok");
		failures++;
		return -1;
	}
	printf("ok   %s/%s %s: %" PRIu64 " round trips, median %.1f us\n",
	       im->name, v->name, what, count, rep[0].rtt_median_ns / 1e3);
	passes++;
	return 0;
}

static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	if (!list)
		return true;
	while ((p = strstr(p, name))) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xproc-check [--impl LIST] [--variant LIST] [--bench]\n"
		"  --impl LIST     comma-separated adapters (default: all built)\n"
		"  --variant LIST  comma-separated variants (default: all)\n"
		"  --bench         longer runs; print rates and counters\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "impl", required_argument, NULL, 'i' },
		{ "variant", required_argument, NULL, 'v' },
		{ "bench", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *impls = NULL, *variants = NULL;
	size_t i, k;
	int o;

	while ((o = getopt_long(argc, argv, "i:v:bh", opts, NULL)) != -1) {
		switch (o) {
		case 'i': impls = optarg; break;
		case 'v': variants = optarg; break;
		case 'b': bench_mode = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 7 + 3);
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (i = 0; i < bench_n_xproc_missing; i++)
		printf("SKIP %s: %s\n", bench_xproc_missing[i].name,
		       bench_xproc_missing[i].why);

	for (i = 0; i < bench_n_xproc_impls; i++) {
		const struct bench_xproc_impl *im = bench_xproc_impls[i];

		if (!listed(impls, im->name))
			continue;
		for (k = 0; k < im->n_variants; k++) {
			const struct bench_variant *v = &im->variants[k];
			uint64_t scale = bench_mode ? 10 : 1;
			const struct stream_spec streams[] = {
				{ "8 B", 8, 20000 * scale, COPY, 0 },
				{ "64 KiB", PKT_BIG, 1000 * scale, COPY, 0 },
				{ "mixed", 0, 4000 * scale, COPY, 0 },
				{ "8 B", 8, 20000 * scale, ZERO_COPY, 0 },
				{ "64 KiB", PKT_BIG, 1000 * scale, ZERO_COPY, 0 },
				{ "mixed", 0, 4000 * scale, ZERO_COPY, 0 },
				/* Fills the queue; the producer blocks. */
				{ "mixed", 0, 1000, COPY, 200 * MS },
				{ "mixed", 0, 1000, ZERO_COPY, 200 * MS },
				/* Fits every queue: the producer has exited
				 * before the consumer's first receive. */
				{ "8 B", 8, 200, COPY, 200 * MS },
				{ "8 B", 8, 200, ZERO_COPY, 200 * MS },
			};
			size_t j;

			if (!listed(variants, v->name))
				continue;
			for (j = 0; j < sizeof(streams) / sizeof(streams[0]); j++) {
				if (streams[j].mode == ZERO_COPY && !im->loan)
					continue;
				/* A skip is the same for every run. */
				if (run_stream(im, v, &streams[j]) > 0)
					goto next_impl;
			}
			run_pingpong(im, v, 2000 * scale, 8, false);
			if (bench_mode)
				run_pingpong(im, v, 2000, PKT_BIG, false);
			else if (k == 0)
				run_pingpong(im, v, 100, 1500, true);
		}
next_impl:;
	}
	printf("%d passed, %d failed, %d skipped\n", passes, failures, skips);
	return failures ? 1 : 0;
}
