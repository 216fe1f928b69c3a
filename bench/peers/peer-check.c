/* SPDX-License-Identifier: MIT */
/*
 * peer-check - exact delivery through every peer adapter this build has.
 *
 * For each adapter, each variant and each shape below, a producer thread
 * sends sequence-numbered packets of pseudo-random lengths (every byte a
 * function of the sequence number and its offset) in batches of random size,
 * and a consumer thread receives them in batches of random size and checks
 * each length and byte, then the end of the stream (recv returns 0, twice),
 * then the counters (packets sent == received == offered).  The shapes
 * cover one-slot queues, full and empty queues, single packets and bursts,
 * and empty packets.  Seeded (--seed), bounded in time (BENCH_IO_TIMEOUT_NS
 * per call, enforced by the adapters).
 *
 * Options
 *   --packets N   packets per shape (default 100000)
 *   --seed S      (default: from the clock; printed)
 *   --only NAME   one adapter
 *   --all         under ThreadSanitizer, also the adapters it cannot see
 *   --timeouts    also check that recv on an idle queue and send on a full
 *                 one give -ETIMEDOUT (BENCH_IO_TIMEOUT_NS each: slow)
 *   --bench S     instead: S seconds of 64-byte packets per variant,
 *                 single and burst, and the rate in Mpps
 *
 * ThreadSanitizer: ck_ring, rte_ring and wfcqueue synchronise with inline
 * assembly fences and volatile accesses, moodycamel's ReaderWriterQueue with
 * std::atomic_thread_fence; TSan models neither and reports races on the
 * packet bytes that are not there.  Built with TSan (__SANITIZE_THREAD__),
 * this driver skips those variants unless --all (tsan.supp silences them).
 *
 * Exit: 0 all good, 1 a failure, 2 bad usage, 77 no adapter to check.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

#define BATCH_MAX	32

struct shape {
	const char *name;
	size_t max_pkt;
	size_t ring_bytes;
	size_t min_len;
	unsigned int send_max;	/* packets per send: 1..send_max */
	unsigned int recv_max;	/* buffers per recv: 1..recv_max */
};

static const struct shape shapes[] = {
	/* Up to 8 bytes: ck_ring and rte_ring carry them in the entry. */
	{ "8B-single", 8, 4096, 8, 1, 1 },
	{ "8B-burst", 8, 4096, 0, BATCH_MAX, BATCH_MAX },
	{ "8B-tiny-ring", 8, 64, 1, 4, 2 },
	{ "64B-single", 64, 4096, 8, 1, 1 },
	{ "64B-burst", 64, 4096, 0, BATCH_MAX, BATCH_MAX },
	{ "1500B-3slots", 1500, 4096, 8, 1, BATCH_MAX },
	{ "1500B-bursts-in", 1500, 65536, 1, BATCH_MAX, 1 },
	{ "9000B-1slot", 9000, 9000, 0, 4, 4 },
};

struct run {
	const struct bench_impl *impl;
	const struct bench_variant *variant;
	const struct shape *shape;
	void *q;
	uint64_t count;
	uint64_t seed;
	/* --bench */
	bool bench;
	bool bench_burst;
	int64_t bench_ns;
	/* results */
	char perr[200];
	char cerr[200];
	struct bench_counters pc, cc;
	uint64_t received;
	int64_t t0, t1;
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t pkt_len(const struct run *rn, uint64_t seq)
{
	uint64_t h = seq ^ rn->seed;
	size_t span = rn->shape->max_pkt - rn->shape->min_len + 1;

	/* Every fourth packet is as long as it can be. */
	if (seq % 4 == 3)
		return rn->shape->max_pkt;
	return rn->shape->min_len + (size_t)(splitmix(&h) % span);
}

static unsigned char pkt_byte(uint64_t seq, size_t i)
{
	return (unsigned char)((seq >> (8 * (i % 8))) ^ (i * 13) ^ (i >> 8));
}

static void fill(unsigned char *b, uint64_t seq, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = pkt_byte(seq, i);
}

static unsigned int pick(uint64_t *rs, unsigned int max)
{
	return 1 + (unsigned int)(splitmix(rs) % max);
}

/* BATCH_MAX buffers of len bytes, in one allocation at bufs[0]. */
static void buffers(unsigned char *bufs[BATCH_MAX], size_t len)
{
	unsigned char *mem = malloc(BATCH_MAX * len);
	int j;

	if (mem == NULL) {
		printf("FAIL: out of memory\n");
		exit(1);
	}
	for (j = 0; j < BATCH_MAX; j++)
		bufs[j] = mem + (size_t)j * len;
}

static void *producer(void *arg)
{
	struct run *rn = arg;
	unsigned char *bufs[BATCH_MAX];
	struct iovec iov[BATCH_MAX];
	uint64_t rs = rn->seed * 3 + 1;
	uint64_t seq = 0;
	unsigned int calls = 0;

	buffers(bufs, rn->shape->max_pkt);
	while (rn->bench || seq < rn->count) {
		unsigned int k, j;
		int r;

		if (rn->bench) {
			k = rn->bench_burst ? BATCH_MAX : 1;
			if (++calls % 64 == 0 && peer_now_ns() >= rn->t0 + rn->bench_ns)
				break;
			for (j = 0; j < k; j++) {
				memcpy(bufs[j], &(uint64_t){ seq + j }, 8);
				iov[j].iov_base = bufs[j];
				iov[j].iov_len = rn->shape->max_pkt;
			}
		} else {
			k = pick(&rs, rn->shape->send_max);
			if (k > rn->count - seq)
				k = (unsigned int)(rn->count - seq);
			for (j = 0; j < k; j++) {
				iov[j].iov_base = bufs[j];
				iov[j].iov_len = pkt_len(rn, seq + j);
				fill(bufs[j], seq + j, iov[j].iov_len);
			}
		}
		r = rn->impl->send(rn->q, iov, k);
		if (r < 1 || (unsigned int)r > k) {
			snprintf(rn->perr, sizeof(rn->perr),
				 "send(%u) at seq %" PRIu64 ": %d (%s)", k, seq,
				 r, r < 0 ? strerror(-r) : "bad count");
			break;
		}
		seq += (unsigned int)r;
	}
	rn->impl->producer_end(rn->q, &rn->pc);
	free(bufs[0]);
	if (rn->perr[0] == '\0' && rn->pc.packets != seq)
		snprintf(rn->perr, sizeof(rn->perr),
			 "producer counted %" PRIu64 " packets, sent %" PRIu64,
			 rn->pc.packets, seq);
	return NULL;
}

static bool check_pkt(struct run *rn, uint64_t seq, const struct iovec *b)
{
	const unsigned char *p = b->iov_base;
	size_t len, i;

	if (rn->bench) {
		uint64_t got;

		memcpy(&got, p, 8);
		if (b->iov_len == rn->shape->max_pkt && got == seq)
			return true;
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "packet %" PRIu64 ": seq %" PRIu64 ", len %zu", seq,
			 got, b->iov_len);
		return false;
	}
	if (seq >= rn->count) {
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "packet %" PRIu64 " beyond the %" PRIu64 " sent", seq,
			 rn->count);
		return false;
	}
	len = pkt_len(rn, seq);
	if (b->iov_len != len) {
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "packet %" PRIu64 ": length %zu, expected %zu", seq,
			 b->iov_len, len);
		return false;
	}
	for (i = 0; i < len; i++)
		if (p[i] != pkt_byte(seq, i)) {
			snprintf(rn->cerr, sizeof(rn->cerr),
				 "packet %" PRIu64 " (len %zu): byte %zu is "
				 "%#x, expected %#x", seq, len, i, p[i],
				 pkt_byte(seq, i));
			return false;
		}
	return true;
}

static void *consumer(void *arg)
{
	struct run *rn = arg;
	unsigned char *bufs[BATCH_MAX];
	struct iovec iov[BATCH_MAX];
	uint64_t rs = rn->seed * 5 + 2;
	uint64_t seq = 0;
	int r, j;

	buffers(bufs, rn->shape->max_pkt);
	for (;;) {
		unsigned int k;

		if (rn->bench)
			k = rn->bench_burst ? BATCH_MAX : 1;
		else
			k = pick(&rs, rn->shape->recv_max);
		for (j = 0; j < (int)k; j++) {
			iov[j].iov_base = bufs[j];
			iov[j].iov_len = rn->shape->max_pkt;
		}
		r = rn->impl->recv(rn->q, iov, k);
		if (r == 0)
			break;
		if (r < 0 || (unsigned int)r > k) {
			snprintf(rn->cerr, sizeof(rn->cerr),
				 "recv(%u) at seq %" PRIu64 ": %d (%s)", k, seq,
				 r, r < 0 ? strerror(-r) : "bad count");
			goto out;
		}
		for (j = 0; j < r; j++, seq++)
			if (!check_pkt(rn, seq, &iov[j]))
				goto out;
	}
	rn->t1 = peer_now_ns();
	if (!rn->bench && seq != rn->count) {
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "end of stream after %" PRIu64 " of %" PRIu64
			 " packets", seq, rn->count);
		goto out;
	}
	/* The end stays the end. */
	iov[0].iov_base = bufs[0];
	iov[0].iov_len = rn->shape->max_pkt;
	r = rn->impl->recv(rn->q, iov, 1);
	if (r != 0)
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "recv after the end: %d, expected 0", r);
out:
	rn->received = seq;
	rn->impl->consumer_end(rn->q, &rn->cc);
	free(bufs[0]);
	if (rn->cerr[0] == '\0' && rn->cc.packets != seq)
		snprintf(rn->cerr, sizeof(rn->cerr),
			 "consumer counted %" PRIu64 " packets, received %"
			 PRIu64, rn->cc.packets, seq);
	return NULL;
}

static void pin(pthread_t t, int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)pthread_setaffinity_np(t, sizeof(set), &set);
}

/* One run.  @return true if it passed (printed otherwise). */
static bool run_one(struct run *rn)
{
	pthread_t pt, ct;
	int r;

	r = rn->impl->open(&rn->q, rn->variant, rn->shape->ring_bytes,
			   rn->shape->max_pkt);
	if (r < 0) {
		printf("FAIL %s/%s %s: open: %s\n", rn->impl->name,
		       rn->variant->name, rn->shape->name, strerror(-r));
		return false;
	}
	rn->t0 = peer_now_ns();
	if (pthread_create(&ct, NULL, consumer, rn) != 0 ||
	    pthread_create(&pt, NULL, producer, rn) != 0) {
		printf("FAIL: pthread_create\n");
		exit(1);
	}
	if (rn->bench && sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
		pin(pt, 0);
		pin(ct, 1);
	}
	pthread_join(pt, NULL);
	pthread_join(ct, NULL);
	rn->impl->close(rn->q);

	if (rn->perr[0] != '\0' || rn->cerr[0] != '\0') {
		printf("FAIL %s/%s %s (seed %" PRIu64 "):%s%s%s%s\n",
		       rn->impl->name, rn->variant->name, rn->shape->name,
		       rn->seed, rn->perr[0] ? " producer: " : "", rn->perr,
		       rn->cerr[0] ? " consumer: " : "", rn->cerr);
		return false;
	}
	if (!rn->bench && (rn->pc.packets != rn->count ||
			   rn->cc.packets != rn->count)) {
		printf("FAIL %s/%s %s: counters %" PRIu64 "/%" PRIu64
		       ", offered %" PRIu64 "\n", rn->impl->name,
		       rn->variant->name, rn->shape->name, rn->pc.packets,
		       rn->cc.packets, rn->count);
		return false;
	}
	return true;
}

/* recv on an idle queue and send on a full one must give -ETIMEDOUT. */
static bool check_timeouts(const struct bench_impl *im,
			   const struct bench_variant *v)
{
	unsigned char buf[64] = { 0 };
	struct iovec iov = { buf, sizeof(buf) };
	struct bench_counters c;
	bool ok = true;
	void *q;
	int64_t t;
	int r, i;

	if (im->open(&q, v, 64, 64) < 0)
		return false;
	t = peer_now_ns();
	r = im->recv(q, &iov, 1);
	printf("  %s/%s: recv on an idle queue: %d after %.1f s\n", im->name,
	       v->name, r, (double)(peer_now_ns() - t) / 1e9);
	ok = ok && r == -ETIMEDOUT;
	/* Fill it (a queue holds at least one packet, maybe a few more). */
	for (i = 0; i < 1 << 16; i++) {
		iov.iov_len = sizeof(buf);
		t = peer_now_ns();
		r = im->send(q, &iov, 1);
		if (r != 1)
			break;
	}
	printf("  %s/%s: send on a full queue (after %d): %d after %.1f s\n",
	       im->name, v->name, i, r, (double)(peer_now_ns() - t) / 1e9);
	ok = ok && r == -ETIMEDOUT;
	im->producer_end(q, &c);
	im->consumer_end(q, &c);
	im->close(q);
	return ok;
}

/* The variants whose synchronisation ThreadSanitizer cannot see: inline
 * assembly and volatile (ck_ring, rte_ring, wfcqueue in liburcu 0.13),
 * std::atomic_thread_fence (moodycamel's ReaderWriterQueue, under the
 * "semaphore" variant; the circular buffer's semaphores are atomics TSan
 * models).  It reports races on the packet bytes that are not there. */
static bool tsan_blind(const struct bench_impl *im,
		       const struct bench_variant *v)
{
	return strcmp(im->name, "ck_ring") == 0 ||
	       strcmp(im->name, "rte_ring") == 0 ||
	       strcmp(im->name, "wfcqueue") == 0 ||
	       (strcmp(im->name, "moodycamel") == 0 &&
		strcmp(v->name, "semaphore") == 0);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "packets", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "all", no_argument, NULL, 'a' },
		{ "timeouts", no_argument, NULL, 't' },
		{ "bench", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct shape bench_shape = {
		"64B", 64, 256 * 1024, 64, 1, 1
	};
	uint64_t count = 100000, seed = (uint64_t)peer_now_ns();
	const char *only = NULL;
	bool all = false, timeouts = false;
	double bench_s = 0;
	unsigned int failed = 0, passed = 0, checked = 0;
	size_t i, v, s;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'o': only = optarg; break;
		case 'a': all = true; break;
		case 't': timeouts = true; break;
		case 'b': bench_s = strtod(optarg, NULL); break;
		default:
			fprintf(stderr, "usage: %s [--packets N] [--seed S] "
				"[--only NAME] [--all] [--timeouts] "
				"[--bench SECONDS]\n", argv[0]);
			return 2;
		}
	}
	printf("peer-check: seed %" PRIu64 ", %zu adapters built", seed,
	       bench_n_peer_impls);
	for (i = 0; i < bench_n_peer_missing; i++)
		printf("; %s missing: %s", bench_peer_missing[i].name,
		       bench_peer_missing[i].why);
	printf("\n");

	for (i = 0; i < bench_n_peer_impls; i++) {
		const struct bench_impl *im = bench_peer_impls[i];

		if (only != NULL && strcmp(only, im->name) != 0)
			continue;
		for (v = 0; v < im->n_variants; v++) {
			const struct bench_variant *var = &im->variants[v];

			if (UNDER_TSAN && !all && tsan_blind(im, var)) {
				printf("SKIP %s/%s: ThreadSanitizer cannot "
				       "see its synchronisation (--all to run "
				       "it anyway)\n", im->name, var->name);
				continue;
			}
			checked++;

			if (bench_s > 0) {
				for (s = 0; s < 2; s++) {
					struct run rn = {
						.impl = im, .variant = var,
						.shape = &bench_shape,
						.seed = seed, .bench = true,
						.bench_burst = s == 1,
						.bench_ns = (int64_t)(bench_s * 1e9),
					};
					if (!run_one(&rn)) {
						failed++;
						continue;
					}
					passed++;
					printf("%-14s %-19s %-6s %7.2f Mpps\n",
					       im->name, var->name,
					       s ? "burst" : "single",
					       (double)rn.received * 1e3 /
					       (double)(rn.t1 - rn.t0));
				}
				continue;
			}
			for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
				struct run rn = {
					.impl = im, .variant = var,
					.shape = &shapes[s], .count = count,
					.seed = seed + s,
				};
				int64_t t0 = peer_now_ns();

				if (!run_one(&rn)) {
					failed++;
					continue;
				}
				passed++;
				printf("ok   %-14s %-19s %-16s %" PRIu64
				       " packets in %.2f s\n", im->name,
				       var->name, shapes[s].name, count,
				       (double)(peer_now_ns() - t0) / 1e9);
			}
			if (timeouts) {
				if (check_timeouts(im, var))
					passed++;
				else
					failed++;
			}
		}
	}
	if (checked == 0) {
		printf("peer-check: no adapter to check\n");
		return 77;
	}
	printf("peer-check: %u passed, %u failed\n", passed, failed);
	return failed != 0;
}
