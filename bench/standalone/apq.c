/* SPDX-License-Identifier: MIT */
/*
 * apq.c - apq alone, through its public API: 8-byte items with apq_send()
 * / apq_recv(), or 32 per call with apq_send_burst() / apq_recv_burst(), in
 * a 256 KiB ring (apq-bench's default) in heap memory, one futex notifier,
 * both sides with the same policy.  The end of the stream is the
 * producer's detach: the consumer drains, then gets -EPIPE.
 *
 * usage: standalone-apq [SECONDS [busy|adaptive [single|burst]]]
 */
#include <apq/apq.h>

#include "standalone.h"

#define APQ_RING	(256 * 1024)
#define APQ_TIMEOUT_NS	(10 * INT64_C(1000000000))

struct apq_sa {
	struct apq_producer *p;
	struct apq_consumer *c;
	unsigned int per_call;
};

static void *producer(void *arg)
{
	struct sa_run *run = arg;
	struct apq_sa *q = run->q;
	uint64_t seq = 0, items[SA_BURST];
	struct iovec iov[SA_BURST];
	unsigned int i;
	int r = 0;

	for (i = 0; i < SA_BURST; i++)
		iov[i] = (struct iovec){ &items[i], sizeof(items[i]) };
	pthread_barrier_wait(&run->start);
	while (!sa_stopped(run)) {
		if (q->per_call == 1) {
			r = apq_send(q->p, &seq, sizeof(seq), APQ_TIMEOUT_NS);
			if (r < 0)
				break;
			seq++;
			sa_spend(1);
			continue;
		}
		for (i = 0; i < q->per_call; i++)
			items[i] = seq + i;
		r = apq_send_burst(q->p, iov, q->per_call, APQ_TIMEOUT_NS);
		if (r < 0)
			break;
		seq += (unsigned int)r;
		sa_spend((unsigned int)r);
	}
	if (r < 0)
		run->err = r;
	apq_producer_detach(q->p);
	return NULL;
}

static void *consumer(void *arg)
{
	struct sa_run *run = arg;
	struct apq_sa *q = run->q;
	uint64_t want = 0, bad = 0, got = 0, items[SA_BURST];
	struct iovec iov[SA_BURST];
	unsigned int i;
	int64_t t0;
	int n;

	pthread_barrier_wait(&run->start);
	t0 = sa_now_ns();
	for (;;) {
		if (q->per_call == 1) {
			ssize_t len = apq_recv(q->c, &items[0], sizeof(items[0]),
					       APQ_TIMEOUT_NS);

			n = len == sizeof(items[0]) ? 1 : len < 0 ? (int)len
								   : -EPROTO;
		} else {
			for (i = 0; i < q->per_call; i++)
				iov[i] = (struct iovec){ &items[i],
							 sizeof(items[i]) };
			n = apq_recv_burst(q->c, iov, q->per_call,
					   APQ_TIMEOUT_NS);
		}
		if (n < 0) {
			if (n != -EPIPE)	/* -EPIPE: the end */
				run->err = n;
			break;
		}
		for (i = 0; i < (unsigned int)n; i++)
			sa_item(&want, &bad, items[i]);
		got += (unsigned int)n;
	}
	sa_consumer_end(run, t0, got, bad);
	apq_consumer_detach(q->c);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct sa_run run;
	static struct apq_sa q;
	static char name[64];
	struct apq_config cfg = { .policy = APQ_POLICY_ADAPTIVE };
	const char *policy = sa_args(argc, argv, &run);
	const char *mode = argc > 3 ? argv[3] : "single";
	struct apq_notifier *notifier;
	size_t bytes = apq_region_size(APQ_RING);
	void *mem;
	int r;

	if (policy && !strcmp(policy, "busy"))
		cfg.policy = APQ_POLICY_BUSY_POLL;
	else
		policy = "adaptive";
	q.per_call = !strcmp(mode, "burst") ? SA_BURST : 1;
	snprintf(name, sizeof(name), "apq %s %s", policy,
		 q.per_call > 1 ? "burst-32" : "single");
	run.name = name;
	bytes = (bytes + 63) & ~(size_t)63;
	mem = aligned_alloc(64, bytes);
	if (!mem)
		return 1;
	memset(mem, 0, bytes);
	r = apq_region_init(mem, bytes, APQ_RING);
	if (!r)
		r = apq_notifier_futex(&notifier);
	if (!r)
		r = apq_producer_attach(&q.p, mem, bytes, notifier, &cfg);
	if (!r)
		r = apq_consumer_attach(&q.c, mem, bytes, notifier, &cfg);
	if (r) {
		fprintf(stderr, "%s: %s\n", name, strerror(-r));
		return 1;
	}
	run.q = &q;
	r = sa_main(&run, producer, consumer);
	apq_notifier_free(notifier);
	free(mem);
	return r;
}
