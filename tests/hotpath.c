/* SPDX-License-Identifier: MIT */
/*
 * apq-hotpath - the library's own instructions per packet, send plus
 * receive, counted by callgrind: repeatable on a noisy machine, and free of
 * any harness (no adapter, no stamping, no checks, no indirect calls).
 *
 * usage: apq-hotpath SIZE BATCH N
 *        valgrind --tool=callgrind --toggle-collect=apq_send \
 *            --toggle-collect=apq_recv apq-hotpath 8 1 20000
 * (tests/hotpath-cost.sh runs the usual set, divides, and checks budgets.)
 *
 * One thread sends BATCH packets of SIZE bytes (apq_send, or apq_send_burst
 * when BATCH > 1) and receives them (apq_recv, or apq_recv_burst), N times,
 * after a warm-up: the ring is never empty when received from nor full when
 * sent to, so every call takes the path a loaded queue runs.  The policy is
 * ADAPTIVE, the default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apq/apq.h>

#define RING_BYTES	(256 * 1024)
#define BATCH_MAX	32
#define SIZE_MAX_PKT	2048

struct pair {
	struct apq_producer *p;
	struct apq_consumer *c;
	struct iovec out[BATCH_MAX], in[BATCH_MAX];
	unsigned int batch;
	size_t size;
};

static void die(const char *what, long r)
{
	fprintf(stderr, "apq-hotpath: %s: %ld\n", what, r);
	exit(1);
}

static void one_round(struct pair *q)
{
	unsigned int k, got = 0;
	long r;

	if (q->batch == 1) {
		r = apq_send(q->p, q->out[0].iov_base, q->size, 0);
		if (r)
			die("apq_send", r);
		r = apq_recv(q->c, q->in[0].iov_base, q->size, 0);
		if (r != (long)q->size)
			die("apq_recv", r);
		return;
	}
	r = apq_send_burst(q->p, q->out, q->batch, 0);
	if (r != (long)q->batch)
		die("apq_send_burst", r);
	while (got < q->batch) {
		for (k = 0; k < q->batch - got; k++)
			q->in[k].iov_len = q->size;
		r = apq_recv_burst(q->c, q->in, q->batch - got, 0);
		if (r <= 0)
			die("apq_recv_burst", r);
		got += (unsigned int)r;
	}
}

int main(int argc, char **argv)
{
	static unsigned char obuf[BATCH_MAX][SIZE_MAX_PKT];
	static unsigned char ibuf[BATCH_MAX][SIZE_MAX_PKT];
	const struct apq_config cfg = { .policy = APQ_POLICY_ADAPTIVE };
	struct apq_notifier *n;
	struct pair q = { 0 };
	size_t bytes = apq_region_size(RING_BYTES);
	unsigned int k;
	void *mem;
	long iters, i;
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: apq-hotpath SIZE BATCH N\n");
		return 2;
	}
	q.size = strtoul(argv[1], NULL, 0);
	q.batch = (unsigned int)strtoul(argv[2], NULL, 0);
	iters = strtol(argv[3], NULL, 0);
	if (q.size < 1 || q.size > SIZE_MAX_PKT || q.batch < 1 ||
	    q.batch > BATCH_MAX || iters < 1) {
		fprintf(stderr, "apq-hotpath: SIZE 1..%d, BATCH 1..%d, N >= 1\n",
			SIZE_MAX_PKT, BATCH_MAX);
		return 2;
	}
	for (k = 0; k < BATCH_MAX; k++) {
		memset(obuf[k], 0x5a, q.size);
		q.out[k] = (struct iovec){ .iov_base = obuf[k],
					   .iov_len = q.size };
		q.in[k] = (struct iovec){ .iov_base = ibuf[k],
					  .iov_len = q.size };
	}
	mem = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
	if (!mem)
		die("aligned_alloc", 0);
	r = apq_region_init(mem, bytes, RING_BYTES);
	if (!r)
		r = apq_notifier_futex(&n);
	if (!r)
		r = apq_producer_attach(&q.p, mem, bytes, n, &cfg);
	if (!r)
		r = apq_consumer_attach(&q.c, mem, bytes, n, &cfg);
	if (r)
		die("setup", r);
	/* Warm up: every ring page touched, every branch seen. */
	for (i = 0; i < RING_BYTES / 8; i++)
		one_round(&q);
	for (i = 0; i < iters; i++)
		one_round(&q);
	apq_producer_detach(q.p);
	apq_consumer_detach(q.c);
	apq_notifier_free(n);
	free(mem);
	return 0;
}
