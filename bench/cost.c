/* SPDX-License-Identifier: MIT */
/*
 * apq-bench-cost - the instructions one packet costs through each in-process
 * queue, counted by callgrind: repeatable where the clock is not (a shared,
 * noisy machine), and blind to what the clock sees (cache-line transfers
 * between the two CPUs, sleeps, wakeups).
 *
 * usage: apq-bench-cost IMPL VARIANT SIZE BATCH N
 *        valgrind --tool=callgrind --toggle-collect=cost_loop \
 *            apq-bench-cost apq adaptive 8 1 20000
 * (bench/callgrind-cost.sh runs the usual set and divides.)
 *
 * One thread sends BATCH packets of SIZE bytes through the adapter and
 * receives them, N times, after a warm-up outside cost_loop(): the queue is
 * never empty when received from nor full when sent to, so every call takes
 * its fast path, the path a loaded queue runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static void loop(const struct bench_impl *im, void *q, struct iovec *out,
		 struct iovec *in, unsigned int batch, size_t size, long n)
{
	long i;

	for (i = 0; i < n; i++) {
		int sent = im->send(q, out, batch), got = 0, r;
		unsigned int k;

		if (sent <= 0) {
			fprintf(stderr, "apq-bench-cost: send: %d\n", sent);
			exit(1);
		}
		while (got < sent) {
			for (k = 0; k < batch; k++)
				in[k].iov_len = size;
			r = im->recv(q, in, batch);
			if (r <= 0) {
				fprintf(stderr, "apq-bench-cost: recv: %d\n", r);
				exit(1);
			}
			got += r;
		}
	}
}

/* What callgrind counts (--toggle-collect=cost_loop). */
__attribute__((noinline)) void cost_loop(const struct bench_impl *im, void *q,
					 struct iovec *out, struct iovec *in,
					 unsigned int batch, size_t size,
					 long n);
__attribute__((noinline)) void cost_loop(const struct bench_impl *im, void *q,
					 struct iovec *out, struct iovec *in,
					 unsigned int batch, size_t size,
					 long n)
{
	loop(im, q, out, in, batch, size, n);
}

static const struct bench_impl *impl_named(const char *name)
{
	size_t i;

	if (!strcmp(name, bench_apq_impl.name))
		return &bench_apq_impl;
	for (i = 0; i < bench_n_peer_impls; i++)
		if (!strcmp(bench_peer_impls[i]->name, name))
			return bench_peer_impls[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static unsigned char obuf[32][2048], ibuf[32][2048];
	const struct bench_variant *v = NULL;
	const struct bench_impl *im;
	struct iovec out[32], in[32];
	struct bench_counters ctr;
	unsigned int batch, k;
	size_t size, i;
	long n;
	void *q;
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: apq-bench-cost IMPL VARIANT SIZE BATCH "
			"N\n");
		return 2;
	}
	im = impl_named(argv[1]);
	size = strtoul(argv[3], NULL, 0);
	batch = (unsigned int)strtoul(argv[4], NULL, 0);
	n = strtol(argv[5], NULL, 0);
	for (i = 0; im && i < im->n_variants; i++)
		if (!strcmp(im->variants[i].name, argv[2]))
			v = &im->variants[i];
	if (!v || size < 1 || size > sizeof(obuf[0]) || batch < 1 ||
	    batch > 32 || n < 1) {
		fprintf(stderr, "apq-bench-cost: no such queue, variant, or "
			"bad size (1..2048), batch (1..32) or count\n");
		return 2;
	}
	for (k = 0; k < 32; k++) {
		memset(obuf[k], 0x5a, size);
		out[k] = (struct iovec){ .iov_base = obuf[k], .iov_len = size };
		in[k] = (struct iovec){ .iov_base = ibuf[k], .iov_len = size };
	}
	r = im->open(&q, v, 256 * 1024, size);
	if (r) {
		fprintf(stderr, "apq-bench-cost: open: %s\n", strerror(-r));
		return 1;
	}
	loop(im, q, out, in, batch, size, 1000);	/* warm up */
	cost_loop(im, q, out, in, batch, size, n);
	im->producer_end(q, &ctr);
	im->consumer_end(q, &ctr);
	im->close(q);
	return 0;
}
