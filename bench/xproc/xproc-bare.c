/* SPDX-License-Identifier: MIT */
/*
 * xproc-bare.c - bare-ring (../peers/bare-ring.h) between two processes:
 * the ceiling of the two-process rows.
 *
 * setup() creates one MAP_SHARED memfd per channel and lays out an empty
 * ring in it; the children inherit the mappings through fork() and each
 * endpoint keeps its private view (struct bare_end) in its own process.
 * The ring holds at least 8 packets of max_pkt and 256 KiB, as apq's
 * (xproc-apq.c).  Both sides busy-poll, with the in-process peers' wait
 * (peer_spin, ../peers/peers.h); the end of the stream is the ring's flag.
 * Zero copy: loan hands out the next slot, publish sends it; take hands
 * out the next packet in place, give_back frees the slots of all taken.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../peers/bare-ring.h"
#include "../peers/peers.h"
#include "xproc.h"

#define BARE_X_RING_MIN	(256 * 1024)
#define BARE_X_PKTS	8

static const struct bench_variant bare_x_variants[] = {
	{ "busy-poll", NULL, BENCH_WAIT_BUSY_POLLS },
};

struct bare_x_shared {
	size_t bytes;		/* of each channel's mapping */
	unsigned int channels;
	struct {
		int fd;
		struct bare_ring *ring;
	} ch[];
};

struct bare_x_ep {
	struct bare_end end;
	uint64_t packets;
	uint64_t taken;		/* in place, not given back yet */
};

static void bare_x_teardown(void *shared)
{
	struct bare_x_shared *sh = shared;
	unsigned int i;

	if (!sh)
		return;
	for (i = 0; i < sh->channels; i++) {
		if (sh->ch[i].ring != MAP_FAILED)
			munmap(sh->ch[i].ring, sh->bytes);
		if (sh->ch[i].fd >= 0)
			close(sh->ch[i].fd);
	}
	free(sh);
}

static int bare_x_setup(void **shared, const struct bench_variant *v,
			size_t max_pkt, unsigned int channels, const char **why)
{
	struct bare_x_shared *sh;
	uint32_t slots = BARE_X_PKTS;
	unsigned int i;
	int r;

	(void)v;
	*why = NULL;
	if (channels == 0)
		return -EINVAL;
	if (max_pkt > PEER_MAX_PKT)
		return -EMSGSIZE;
	while ((size_t)slots * bare_stride(max_pkt) < BARE_X_RING_MIN)
		slots *= 2;
	sh = calloc(1, sizeof(*sh) + channels * sizeof(sh->ch[0]));
	if (!sh)
		return -ENOMEM;
	sh->bytes = bare_ring_bytes(slots, max_pkt);
	sh->channels = channels;
	for (i = 0; i < channels; i++) {
		sh->ch[i].fd = -1;
		sh->ch[i].ring = MAP_FAILED;
	}
	for (i = 0; i < channels; i++) {
		sh->ch[i].fd = memfd_create("apq-bench-bare", MFD_CLOEXEC);
		if (sh->ch[i].fd < 0 ||
		    ftruncate(sh->ch[i].fd, (off_t)sh->bytes) < 0) {
			r = -errno;
			goto fail;
		}
		sh->ch[i].ring = mmap(NULL, sh->bytes, PROT_READ | PROT_WRITE,
				      MAP_SHARED, sh->ch[i].fd, 0);
		if (sh->ch[i].ring == MAP_FAILED) {
			r = -errno;
			goto fail;
		}
		/* A fresh memfd reads as zeros: the ring is empty. */
		bare_ring_init(sh->ch[i].ring, slots, max_pkt);
	}
	*shared = sh;
	return 0;
fail:
	bare_x_teardown(sh);
	return r;
}

static int bare_x_open(void *shared, unsigned int channel, void **out)
{
	struct bare_x_shared *sh = shared;
	struct bare_x_ep *ep;

	if (!sh || channel >= sh->channels || !out)
		return -EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	bare_end_init(&ep->end, sh->ch[channel].ring);
	*out = ep;
	return 0;
}

static int bare_x_send(void *ep, const void *pkt, size_t len)
{
	struct bare_x_ep *e = ep;
	struct iovec iov = { .iov_base = (void *)pkt, .iov_len = len };
	struct peer_spin spin = PEER_SPIN_INIT;
	int r;

	if (len > e->end.ring->max_pkt)
		return -EMSGSIZE;
	while (bare_send(&e->end, &iov, 1) == 0) {
		r = peer_spin(&spin);
		if (r < 0)
			return r;
	}
	e->packets++;
	return 0;
}

/* Wait until the packet after those taken is there.  @return 1, 0 at the
 * end of the stream, or -ETIMEDOUT. */
static int bare_x_wait_packet(struct bare_x_ep *e)
{
	struct peer_spin spin = PEER_SPIN_INIT;
	int r;

	while (!bare_peek(&e->end, e->taken)) {
		if (bare_stream_ended(&e->end))
			/* Everything sent before the end is visible now. */
			return bare_peek(&e->end, e->taken);
		r = peer_spin(&spin);
		if (r < 0)
			return r;
	}
	return 1;
}

static ssize_t bare_x_recv(void *ep, void *buf, size_t cap)
{
	struct bare_x_ep *e = ep;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	int r = bare_x_wait_packet(e);

	if (r <= 0)
		return r;
	r = bare_recv(&e->end, &iov, 1);
	if (r < 0)
		return r;
	e->packets++;
	return (ssize_t)iov.iov_len;
}

static int bare_x_loan(void *ep, size_t len, void **buf)
{
	struct bare_x_ep *e = ep;
	struct peer_spin spin = PEER_SPIN_INIT;
	int r;

	if (len > e->end.ring->max_pkt)
		return -EMSGSIZE;
	while (!bare_room(&e->end)) {
		r = peer_spin(&spin);
		if (r < 0)
			return r;
	}
	*buf = bare_slot_at(&e->end, e->end.mine)->data;
	return 0;
}

static int bare_x_publish(void *ep, size_t len)
{
	struct bare_x_ep *e = ep;

	bare_commit(&e->end, len);
	e->packets++;
	return 0;
}

static ssize_t bare_x_take(void *ep, const void **pkt)
{
	struct bare_x_ep *e = ep;
	const struct bare_slot *s;
	int r = bare_x_wait_packet(e);

	if (r <= 0)
		return r;
	s = bare_slot_at(&e->end, e->end.mine + e->taken++);
	*pkt = s->data;
	return s->len;
}

static int bare_x_give_back(void *ep)
{
	struct bare_x_ep *e = ep;

	bare_release(&e->end, e->taken);
	e->packets += e->taken;
	e->taken = 0;
	return 0;
}

static void bare_x_close_producer(void *ep, struct bench_counters *out)
{
	struct bare_x_ep *e = ep;

	if (!e)
		return;
	bare_end_stream(&e->end);
	if (out)
		*out = (struct bench_counters){ .packets = e->packets };
	free(e);
}

static void bare_x_close_consumer(void *ep, struct bench_counters *out)
{
	struct bare_x_ep *e = ep;

	if (!e)
		return;
	if (out)
		*out = (struct bench_counters){ .packets = e->packets };
	free(e);
}

const struct bench_xproc_impl bench_xproc_bare = {
	.name = "bare-ring",
	.variants = bare_x_variants,
	.n_variants = sizeof(bare_x_variants) / sizeof(bare_x_variants[0]),
	.counts_wakeups = false,
	.setup = bare_x_setup,
	.open_producer = bare_x_open,
	.open_consumer = bare_x_open,
	.send = bare_x_send,
	.recv = bare_x_recv,
	.loan = bare_x_loan,
	.publish = bare_x_publish,
	.take = bare_x_take,
	.give_back = bare_x_give_back,
	.close_producer = bare_x_close_producer,
	.close_consumer = bare_x_close_consumer,
	.teardown = bare_x_teardown,
};
