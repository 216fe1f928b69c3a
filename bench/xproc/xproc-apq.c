/* SPDX-License-Identifier: MIT */
/*
 * xproc-apq.c - apq between two processes: one region per channel in a
 * MAP_SHARED memfd, a futex notifier per endpoint.
 *
 * setup() creates the memfds, maps them and lays out empty regions; the
 * children inherit the mappings through fork() and attach there, each
 * endpoint with a futex notifier of its own (the words both sides sleep on
 * live in the region, so the two notifiers meet).  teardown() unmaps and
 * closes in the harness's process once both children have exited.
 *
 * Semantics: send/recv copy (apq_send/apq_recv); loan/publish and take/
 * give_back work in the ring (apq_reserve/apq_commit, apq_peek/apq_release).
 * Blocking is the variant's policy: adaptive polls about one sleep/wake
 * round, then sleeps; always wakes the peer after every publishing call (the
 * prior art); busy never sleeps.  End of stream is apq_producer_detach(): the
 * consumer drains what was sent before, then sees -EPIPE, returned here as 0.
 * Nothing is dropped: a full ring blocks the producer.
 *
 * Ring size: setup() is not told one, so each ring holds at least 8 packets
 * of max_pkt and at least 256 KiB (for 64 KiB packets: 1 MiB).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apq/apq.h>

#include "xproc.h"

#define RING_MIN	(256 * 1024)
#define RING_MAX	(UINT64_C(1) << 30)
#define RING_PKTS	8	/* packets of max_pkt a ring holds, at least */

static const struct apq_config cfg_adaptive = { .policy = APQ_POLICY_ADAPTIVE };
static const struct apq_config cfg_always = { .policy = APQ_POLICY_ALWAYS_NOTIFY };
static const struct apq_config cfg_busy = { .policy = APQ_POLICY_BUSY_POLL };

static const struct bench_variant apq_variants[] = {
	{ "adaptive", &cfg_adaptive, BENCH_WAIT_SLEEPS },
	{ "always", &cfg_always, BENCH_WAIT_SLEEPS },
	{ "busy", &cfg_busy, BENCH_WAIT_BUSY_POLLS },
};

struct apq_channel_mem {
	int fd;
	void *mem;
};

struct apq_shared {
	const struct apq_config *cfg;
	size_t ring_bytes;
	size_t region_bytes;
	unsigned int channels;
	struct apq_channel_mem ch[];
};

/* One endpoint, in the child that opened it. */
struct apq_ep {
	struct apq_notifier *n;
	struct apq_producer *p;		/* one of p and c */
	struct apq_consumer *c;
};

static void apq_x_teardown(void *shared)
{
	struct apq_shared *sh = shared;
	unsigned int i;

	if (!sh)
		return;
	for (i = 0; i < sh->channels; i++) {
		if (sh->ch[i].mem != MAP_FAILED)
			munmap(sh->ch[i].mem, sh->region_bytes);
		if (sh->ch[i].fd >= 0)
			close(sh->ch[i].fd);
	}
	free(sh);
}

static int apq_x_setup(void **shared, const struct bench_variant *v,
		       size_t max_pkt, unsigned int channels, const char **why)
{
	struct apq_shared *sh;
	size_t ring = RING_MIN;
	unsigned int i;
	int r;

	*why = NULL;
	if (channels == 0 || !v || !v->arg)
		return -EINVAL;
	if (max_pkt > (RING_MAX - 8) / RING_PKTS)
		return -EMSGSIZE;
	while (ring < RING_PKTS * (max_pkt + 8))
		ring *= 2;

	sh = calloc(1, sizeof(*sh) + channels * sizeof(sh->ch[0]));
	if (!sh)
		return -ENOMEM;
	sh->cfg = v->arg;
	sh->ring_bytes = ring;
	sh->region_bytes = apq_region_size(ring);
	sh->channels = channels;
	for (i = 0; i < channels; i++) {
		sh->ch[i].fd = -1;
		sh->ch[i].mem = MAP_FAILED;
	}
	for (i = 0; i < channels; i++) {
		struct apq_channel_mem *m = &sh->ch[i];

		m->fd = memfd_create("apq-bench-xproc", MFD_CLOEXEC);
		if (m->fd < 0 ||
		    ftruncate(m->fd, (off_t)sh->region_bytes) < 0) {
			r = -errno;
			goto fail;
		}
		m->mem = mmap(NULL, sh->region_bytes, PROT_READ | PROT_WRITE,
			      MAP_SHARED, m->fd, 0);
		if (m->mem == MAP_FAILED) {
			r = -errno;
			goto fail;
		}
		r = apq_region_init(m->mem, sh->region_bytes, ring);
		if (r < 0)
			goto fail;
	}
	*shared = sh;
	return 0;
fail:
	apq_x_teardown(sh);
	return r;
}

/* Both sides: a notifier of this process, then the attach. */
static int apq_x_open(void *shared, unsigned int channel, void **out,
		      bool producer)
{
	struct apq_shared *sh = shared;
	struct apq_ep *ep;
	void *mem;
	int r;

	if (!sh || channel >= sh->channels || !out)
		return -EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	r = apq_notifier_futex(&ep->n);
	if (r < 0)
		goto fail;
	/* The mapping made in setup(), inherited through fork(). */
	mem = sh->ch[channel].mem;
	if (producer)
		r = apq_producer_attach(&ep->p, mem, sh->region_bytes, ep->n,
					sh->cfg);
	else
		r = apq_consumer_attach(&ep->c, mem, sh->region_bytes, ep->n,
					sh->cfg);
	if (r < 0)
		goto fail;
	*out = ep;
	return 0;
fail:
	apq_notifier_free(ep->n);
	free(ep);
	return r;
}

static int apq_x_open_producer(void *shared, unsigned int channel, void **ep)
{
	return apq_x_open(shared, channel, ep, true);
}

static int apq_x_open_consumer(void *shared, unsigned int channel, void **ep)
{
	return apq_x_open(shared, channel, ep, false);
}

static int apq_x_send(void *ep, const void *pkt, size_t len)
{
	struct apq_ep *e = ep;

	return apq_send(e->p, pkt, len, BENCH_IO_TIMEOUT_NS);
}

/* -EPIPE after the drain is the end of the stream. */
static ssize_t apq_x_recv(void *ep, void *buf, size_t cap)
{
	struct apq_ep *e = ep;
	ssize_t r = apq_recv(e->c, buf, cap, BENCH_IO_TIMEOUT_NS);

	return r == -EPIPE ? 0 : r;
}

static int apq_x_loan(void *ep, size_t len, void **buf)
{
	struct apq_ep *e = ep;

	return apq_reserve(e->p, len, buf, BENCH_IO_TIMEOUT_NS);
}

static int apq_x_publish(void *ep, size_t len)
{
	struct apq_ep *e = ep;

	return apq_commit(e->p, len);
}

static ssize_t apq_x_take(void *ep, const void **pkt)
{
	struct apq_ep *e = ep;
	ssize_t r = apq_peek(e->c, pkt, BENCH_IO_TIMEOUT_NS);

	return r == -EPIPE ? 0 : r;
}

static int apq_x_give_back(void *ep)
{
	struct apq_ep *e = ep;

	return apq_release(e->c);
}

static void apq_x_counters(const struct apq_stats *st,
			   struct bench_counters *out)
{
	out->packets = st->packets;
	out->wakeups = st->wakeups_sent;
	out->sleeps = st->sleeps;
	out->rescues = st->rescues;
}

/*
 * The counters are read before the detach, which frees the endpoint: the
 * producer's detach runs one more wakeup check (the end of the stream), and
 * a wake it sends is not counted.
 */
static void apq_x_close_producer(void *ep, struct bench_counters *out)
{
	struct apq_ep *e = ep;
	struct apq_stats st;

	if (!e)
		return;
	if (out && apq_producer_stats(e->p, &st) == 0)
		apq_x_counters(&st, out);
	apq_producer_detach(e->p);
	apq_notifier_free(e->n);
	free(e);
}

static void apq_x_close_consumer(void *ep, struct bench_counters *out)
{
	struct apq_ep *e = ep;
	struct apq_stats st;

	if (!e)
		return;
	if (out && apq_consumer_stats(e->c, &st) == 0)
		apq_x_counters(&st, out);
	apq_consumer_detach(e->c);
	apq_notifier_free(e->n);
	free(e);
}

const struct bench_xproc_impl bench_xproc_apq = {
	.name = "apq",
	.variants = apq_variants,
	.n_variants = sizeof(apq_variants) / sizeof(apq_variants[0]),
	.counts_wakeups = true,
	.setup = apq_x_setup,
	.open_producer = apq_x_open_producer,
	.open_consumer = apq_x_open_consumer,
	.send = apq_x_send,
	.recv = apq_x_recv,
	.loan = apq_x_loan,
	.publish = apq_x_publish,
	.take = apq_x_take,
	.give_back = apq_x_give_back,
	.close_producer = apq_x_close_producer,
	.close_consumer = apq_x_close_consumer,
	.teardown = apq_x_teardown,
};
