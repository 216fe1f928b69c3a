/* SPDX-License-Identifier: MIT */
/*
 * pump.h - the part the three event-loop examples share: a producer that
 * feeds a consumer's region, in another process or thread, and the checks
 * of what arrives.  What each example shows is its loop: epoll-consumer.c,
 * libevent-consumer.c, libuv-consumer.c.
 *
 * The producer sends PUMP_PACKETS packets in bursts with pauses between
 * them, so that the consumer runs dry, arms and sleeps in its loop over and
 * over; every packet carries its sequence number and a pattern made from
 * it.  Options (the same for all three):
 *   --backend futex|eventfd   the notifier (default futex)
 *   --threads                 the producer is a thread, not a process
 */
#ifndef APQ_EXAMPLE_PUMP_H
#define APQ_EXAMPLE_PUMP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>

#define PUMP_RING	(64 * 1024)
#define PUMP_PACKETS	20000
#define PUMP_MAX	1500

struct pump {
	const char *prog;
	bool eventfd, threads;
	void *mem;
	size_t bytes;
	int fds[2];			/* eventfd pair: [0] consumer's */
	pid_t child;
	pthread_t thread;
	/* The consumer's side, for the example's loop. */
	struct apq_notifier *n;
	struct apq_consumer *c;
	uint64_t received;
	uint64_t loop_wakes;		/* the example's loop counts them */
	int fd;				/* apq_notifier_fd(n), for the loop */
	void *base;			/* the example's loop, if it needs one */
};

static size_t pump_len(uint64_t seq)
{
	return 8 + (size_t)(seq * 2654435761u % (PUMP_MAX - 8));
}

static void pump_fill(unsigned char *b, uint64_t seq)
{
	size_t len = pump_len(seq);

	memcpy(b, &seq, 8);
	for (size_t i = 8; i < len; i++)
		b[i] = (unsigned char)(seq + i);
}

static void pump_die(const struct pump *p, const char *what, long r)
{
	fprintf(stderr, "%s: %s: %s\n", p->prog, what,
		r < 0 ? strerror((int)-r) : "failed");
	exit(1);
}

/* The producer: bursts of 1 to 64 packets, a pause of 0 to 2 ms between. */
static void pump_produce(struct pump *p)
{
	unsigned char buf[PUMP_MAX];
	struct apq_notifier *n;
	struct apq_producer *prod;
	struct apq_stats st;
	uint64_t seq = 0;
	int r;

	r = p->eventfd ? apq_notifier_eventfd(&n, p->fds[1], p->fds[0])
		       : apq_notifier_futex(&n);
	if (r)
		pump_die(p, "producer notifier", r);
	r = apq_producer_attach(&prod, p->mem, p->bytes, n, NULL);
	if (r)
		pump_die(p, "apq_producer_attach", r);
	while (seq < PUMP_PACKETS) {
		uint64_t burst = 1 + seq * 7919 % 64;
		struct timespec pause = { 0, (long)(seq * 104729 % 2000000) };

		for (uint64_t i = 0; i < burst && seq < PUMP_PACKETS; i++) {
			pump_fill(buf, seq);
			r = apq_send(prod, buf, pump_len(seq), -1);
			if (r)
				pump_die(p, "apq_send", r);
			seq++;
		}
		nanosleep(&pause, NULL);
	}
	apq_producer_stats(prod, &st);
	printf("producer: %llu packets, %llu wakeups sent, %llu skipped\n",
	       (unsigned long long)st.packets,
	       (unsigned long long)st.wakeups_sent,
	       (unsigned long long)st.wakeups_skipped);
	fflush(stdout);
	/* The consumer drains, then sees -EPIPE. */
	apq_producer_detach(prod);
	apq_notifier_free(n);
}

static void *pump_thread(void *arg)
{
	pump_produce(arg);
	return NULL;
}

/* Parse the options, lay out the region, start the producer, and attach
 * the consumer. */
static void pump_start(struct pump *p, int argc, char **argv)
{
	int r;

	memset(p, 0, sizeof(*p));
	p->prog = argv[0];
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--threads")) {
			p->threads = true;
		} else if (!strcmp(argv[a], "--backend") && a + 1 < argc) {
			p->eventfd = !strcmp(argv[++a], "eventfd");
		} else {
			fprintf(stderr, "usage: %s [--backend futex|eventfd] "
				"[--threads]\n", p->prog);
			exit(2);
		}
	}
	p->bytes = apq_region_size(PUMP_RING);
	p->mem = mmap(NULL, p->bytes, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p->mem == MAP_FAILED)
		pump_die(p, "mmap", -errno);
	r = apq_region_init(p->mem, p->bytes, PUMP_RING);
	if (r == 0 && p->eventfd)
		r = apq_eventfd_pair(p->fds);
	if (r)
		pump_die(p, "set-up", r);
	r = p->eventfd ? apq_notifier_eventfd(&p->n, p->fds[0], p->fds[1])
		       : apq_notifier_futex(&p->n);
	if (r == 0)
		r = apq_consumer_attach(&p->c, p->mem, p->bytes, p->n, NULL);
	if (r)
		pump_die(p, "consumer", r);
	/* Before the first arm: an arm before it has no loop to wake. */
	p->fd = apq_notifier_fd(p->n);
	if (p->fd < 0)
		pump_die(p, "apq_notifier_fd", p->fd);
	if (p->threads) {
		r = -pthread_create(&p->thread, NULL, pump_thread, p);
		if (r)
			pump_die(p, "pthread_create", r);
		return;
	}
	p->child = fork();
	if (p->child < 0)
		pump_die(p, "fork", -errno);
	if (p->child == 0) {
		pump_produce(p);
		_exit(0);
	}
}

/*
 * Take every packet there is, without blocking, then arm.  @return 1 to
 * wait in the loop (armed), 0 when the stream has ended (-EPIPE after the
 * last packet).  Exits on anything else, or on a packet out of order.
 */
static int pump_drain(struct pump *p)
{
	unsigned char buf[PUMP_MAX];
	ssize_t len;
	int armed;

	for (;;) {
		while ((len = apq_recv(p->c, buf, sizeof(buf), 0)) >= 0) {
			uint64_t seq;

			memcpy(&seq, buf, 8);
			if (seq != p->received || (size_t)len != pump_len(seq))
				pump_die(p, "a packet out of order", 0);
			for (size_t i = 8; i < (size_t)len; i++)
				if (buf[i] != (unsigned char)(seq + i))
					pump_die(p, "a damaged packet", 0);
			p->received++;
		}
		if (len == -EPIPE)
			return 0;
		if (len != -EAGAIN)
			pump_die(p, "apq_recv", len);
		/* Empty: announce that we sleep.  1: a packet came in the
		 * meantime, take it first. */
		armed = apq_consumer_arm(p->c);
		if (armed == 0)
			return 1;
		if (armed == -EPIPE)
			return 0;
		if (armed < 0)
			pump_die(p, "apq_consumer_arm", armed);
	}
}

/*
 * The loop woke for the notifier's descriptor: take what made it readable,
 * then drain and arm.  @return 1 to wait in the loop again, 0 when the
 * stream has ended.
 */
static int pump_woke(struct pump *p)
{
	int r = apq_notifier_ack(p->n);

	if (r < 0)
		pump_die(p, "apq_notifier_ack", r);
	p->loop_wakes++;
	return pump_drain(p);
}

/* After the loop: the producer's end, the counts.  @return the exit
 * status. */
static int pump_finish(struct pump *p, const char *loop)
{
	int status = 0;

	if (p->threads)
		pthread_join(p->thread, NULL);
	else if (waitpid(p->child, &status, 0) != p->child || status)
		pump_die(p, "the producer failed", 0);
	printf("%s (%s, %s, producer in a %s): %llu of %d packets, in order "
	       "and intact; the loop woke for apq %llu times\n", p->prog, loop,
	       p->eventfd ? "eventfd" : "futex",
	       p->threads ? "thread" : "process",
	       (unsigned long long)p->received, PUMP_PACKETS,
	       (unsigned long long)p->loop_wakes);
	apq_consumer_detach(p->c);
	apq_notifier_free(p->n);
	return p->received == PUMP_PACKETS ? 0 : 1;
}

#endif /* APQ_EXAMPLE_PUMP_H */
