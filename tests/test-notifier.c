/* SPDX-License-Identifier: MIT */
/*
 * test-notifier: the backends behind <apq/notifier.h> as a user meets them.
 *   - eventfd: its arguments, and seeded streams between threads, between
 *     a parent and a forked child, and between processes that pass the
 *     descriptors over a UNIX socket, every packet checked;
 *   - a backend of the user's own (apq_notifier_create()): its arguments,
 *     a stream over it, and that apq calls it as the header says;
 *   - event loops: a consumer blocked only in epoll_wait() on
 *     apq_notifier_fd() receives every packet, with futex and eventfd,
 *     between threads and processes; and an armed loop with nothing sent
 *     wakes at the backstop, not earlier and not never;
 *   - ADAPTIVE, end to end: it learns to block on long gaps, and a peer's
 *     lies in its advice stay within bounds (test-policy has the rule).
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apq/apq.h>

#include "testlib.h"

#define RING		8192
#define PACKETS		(20000 / TEST_SLOWDOWN)
#define WAIT_NS		(10 * TEST_NSEC)

static uint64_t base_seed;

/* ---- a stream, checked ---- */

/* Packet i: its length and bytes follow from i and the seed alone, so the
 * receiver checks both without being told. */
static size_t pkt_len(uint64_t seed, uint32_t i)
{
	return mix64(seed ^ i) % 700;
}

static void pkt_fill(unsigned char *buf, uint64_t seed, uint32_t i)
{
	size_t len = pkt_len(seed, i), k;

	for (k = 0; k < len; k++)
		buf[k] = (unsigned char)(mix64(seed + i) >> (k % 8 * 8)) ^ k;
}

static bool pkt_ok(const unsigned char *buf, ssize_t len, uint64_t seed,
		   uint32_t i)
{
	unsigned char want[1024];

	if (len != (ssize_t)pkt_len(seed, i))
		return false;
	pkt_fill(want, seed, i);
	return memcmp(buf, want, (size_t)len) == 0;
}

/* Pauses now and then, long enough for the consumer to give up polling
 * and sleep, so that the wakeup path is what is tested. */
static int produce(struct apq_producer *p, uint64_t seed, uint32_t n)
{
	unsigned char buf[1024];
	uint64_t rng = seed;
	uint32_t i;
	int r;

	for (i = 0; i < n; i++) {
		pkt_fill(buf, seed, i);
		r = apq_send(p, buf, pkt_len(seed, i), WAIT_NS);
		if (r)
			return r;
		if (rnd_chance(&rng, 2))
			sleep_ns((int64_t)rnd_below(&rng, 300) * 1000);
	}
	return 0;
}

/* Blocking receive; @return the number of packets that arrived right. */
static uint32_t consume(struct apq_consumer *c, uint64_t seed, uint32_t n)
{
	unsigned char buf[1024];
	uint32_t i;

	for (i = 0; i < n; i++) {
		ssize_t len = apq_recv(c, buf, sizeof(buf), WAIT_NS);

		if (!pkt_ok(buf, len, seed, i))
			break;
	}
	return i;
}

/*
 * The event-loop consumer: blocks only in epoll_wait() on the notifier's
 * descriptor, as the header prescribes.  @return packets that arrived
 * right; *loop_waits, the times epoll_wait() blocked.
 */
static uint32_t consume_in_loop(struct apq_consumer *c, struct apq_notifier *n,
				uint64_t seed, uint32_t want,
				uint64_t *loop_waits)
{
	struct epoll_event ev = { .events = EPOLLIN };
	unsigned char buf[1024];
	int ep = epoll_create1(EPOLL_CLOEXEC), fd = apq_notifier_fd(n);
	uint32_t got = 0;

	*loop_waits = 0;
	if (ep < 0 || fd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		return 0;
	while (got < want) {
		ssize_t len = apq_recv(c, buf, sizeof(buf), 0);

		if (len >= 0) {
			if (!pkt_ok(buf, len, seed, got))
				break;
			got++;
			continue;
		}
		if (len != -EAGAIN)
			break;
		len = apq_consumer_arm(c);
		if (len == 1)
			continue;
		if (len != 0 || epoll_wait(ep, &ev, 1, WAIT_NS / TEST_MSEC) != 1)
			break;
		(*loop_waits)++;
		if (apq_notifier_ack(n) < 0)
			break;
	}
	close(ep);
	return got;
}

static struct apq_config policy_cfg(enum apq_policy policy)
{
	return (struct apq_config){ .policy = policy };
}

/* A region in memory a forked child shares. */
static unsigned char *region_shared(size_t *bytes)
{
	unsigned char *mem;

	*bytes = apq_region_size(RING);
	mem = shm_alloc(*bytes);
	ck_assert_ptr_nonnull(mem);
	ck_assert_int_eq(apq_region_init(mem, *bytes, RING), 0);
	return mem;
}

/* ---- eventfd ---- */

START_TEST(test_eventfd_args)
{
	struct apq_notifier *n = NULL;
	int fds[2], pipefd[2];

	ck_assert_int_eq(apq_eventfd_pair(NULL), -EINVAL);
	ck_assert_int_eq(apq_eventfd_pair(fds), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(apq_notifier_eventfd(NULL, fds[0], fds[1]), -EINVAL);
	ck_assert_int_eq(apq_notifier_eventfd(&n, -1, fds[1]), -EINVAL);
	ck_assert_int_eq(apq_notifier_eventfd(&n, fds[0], -1), -EINVAL);
	ck_assert_int_eq(apq_notifier_eventfd(&n, pipefd[0], fds[1]), -EINVAL);
	ck_assert_int_eq(apq_notifier_eventfd(&n, fds[0], pipefd[1]), -EINVAL);
	ck_assert_ptr_null(n);
	ck_assert_int_eq(apq_notifier_eventfd(&n, fds[0], fds[1]), 0);
	ck_assert_ptr_nonnull(n);
	/* The notifier keeps duplicates: closing ours changes nothing. */
	close(fds[0]);
	close(fds[1]);
	ck_assert_int_ge(apq_notifier_fd(n), 0);
	ck_assert_int_eq(apq_notifier_fd(n), apq_notifier_fd(n));
	ck_assert_int_eq(apq_notifier_ack(n), 0);
	apq_notifier_free(n);
	close(pipefd[0]);
	close(pipefd[1]);
	ck_assert_int_eq(apq_notifier_fd(NULL), -EINVAL);
	ck_assert_int_eq(apq_notifier_ack(NULL), -EINVAL);
}
END_TEST

struct side {
	struct apq_notifier *n;
	struct apq_producer *p;
	unsigned char *mem;
	size_t bytes;
	uint64_t seed;
	struct apq_config cfg;
	int r;
};

static void *producer_thread(void *arg)
{
	struct side *s = arg;

	s->r = apq_producer_attach(&s->p, s->mem, s->bytes, s->n, &s->cfg);
	if (s->r == 0)
		s->r = produce(s->p, s->seed, PACKETS);
	return NULL;
}

/* The producer in a thread, the consumer here: every packet arrives
 * right; then both sides' counters. */
static void stream_from_thread(struct side *prod, struct apq_consumer *c,
			       struct apq_stats *ps, struct apq_stats *cs)
{
	pthread_t th;

	ck_assert_int_eq(pthread_create(&th, NULL, producer_thread, prod), 0);
	ck_assert_uint_eq(consume(c, prod->seed, PACKETS), PACKETS);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(prod->r, 0);
	ck_assert_int_eq(apq_producer_stats(prod->p, ps), 0);
	ck_assert_int_eq(apq_consumer_stats(c, cs), 0);
}

static const enum apq_policy stream_policies[] = {
	APQ_POLICY_ADAPTIVE, APQ_POLICY_ALWAYS_NOTIFY, APQ_POLICY_SPIN,
};

/* Both sides' notifiers, made from one eventfd pair. */
static void eventfd_notifiers(struct apq_notifier **a, struct apq_notifier **b)
{
	int fds[2];

	ck_assert_int_eq(apq_eventfd_pair(fds), 0);
	ck_assert_int_eq(apq_notifier_eventfd(a, fds[0], fds[1]), 0);
	ck_assert_int_eq(apq_notifier_eventfd(b, fds[1], fds[0]), 0);
	close(fds[0]);
	close(fds[1]);
}

START_TEST(test_eventfd_threads)
{
	struct apq_config cfg = policy_cfg(stream_policies[_i]);
	struct side prod = { .seed = base_seed + (uint64_t)_i, .cfg = cfg };
	struct apq_notifier *n;
	struct apq_consumer *c;
	struct apq_stats ps, cs;

	prod.mem = region_shared(&prod.bytes);
	eventfd_notifiers(&prod.n, &n);
	ck_assert_int_eq(apq_consumer_attach(&c, prod.mem, prod.bytes, n, &cfg),
			 0);
	stream_from_thread(&prod, c, &ps, &cs);
	/* The wakeup path ran: the pauses made the consumer sleep, and only
	 * eventfd writes woke it. */
	ck_assert_uint_gt(cs.sleeps, 0);
	ck_assert_uint_gt(ps.wakeups_sent, 0);
	ck_assert_uint_eq(cs.rescues, 0);
	apq_producer_detach(prod.p);
	apq_consumer_detach(c);
	apq_notifier_free(prod.n);
	apq_notifier_free(n);
	munmap(prod.mem, prod.bytes);
}
END_TEST

/* The child produces; the parent consumes, blocking or in a loop. */
static void fork_stream(struct apq_notifier *pn, struct apq_notifier *cn,
			unsigned char *mem, size_t bytes, uint64_t seed,
			bool in_loop)
{
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	struct apq_consumer *c;
	struct apq_stats cs;
	uint64_t waits = 0;
	int status;
	pid_t pid;

	ck_assert_int_eq(apq_consumer_attach(&c, mem, bytes, cn, &cfg), 0);
	pid = test_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct apq_producer *p;
		int r = apq_producer_attach(&p, mem, bytes, pn, &cfg);

		if (r == 0)
			r = produce(p, seed, PACKETS);
		if (r == 0)
			apq_producer_detach(p);
		_exit(r ? 1 : 0);
	}
	if (in_loop)
		ck_assert_uint_eq(consume_in_loop(c, cn, seed, PACKETS, &waits),
				  PACKETS);
	else
		ck_assert_uint_eq(consume(c, seed, PACKETS), PACKETS);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(apq_consumer_stats(c, &cs), 0);
	/* The pauses made the consumer block: in apq_recv(), or in the
	 * loop. */
	ck_assert_uint_gt(in_loop ? waits : cs.sleeps, 0);
	ck_assert_uint_eq(cs.rescues, 0);
	/* The producer detached: what it sent arrived, then -EPIPE. */
	ck_assert_int_eq(apq_recv(c, NULL, 0, WAIT_NS), -EPIPE);
	apq_consumer_detach(c);
}

START_TEST(test_eventfd_fork)
{
	struct apq_notifier *pn, *cn;
	size_t bytes;
	unsigned char *mem = region_shared(&bytes);

	eventfd_notifiers(&pn, &cn);
	fork_stream(pn, cn, mem, bytes, base_seed ^ 0xef, _i);
	apq_notifier_free(pn);
	apq_notifier_free(cn);
	munmap(mem, bytes);
}
END_TEST

/* One byte and two descriptors (SCM_RIGHTS), over a UNIX socket. */
struct fd_msg {
	char data;
	struct iovec iov;
	_Alignas(struct cmsghdr) char buf[CMSG_SPACE(2 * sizeof(int))];
	struct msghdr msg;
};

static void fd_msg_init(struct fd_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->iov = (struct iovec){ .iov_base = &m->data, .iov_len = 1 };
	m->msg = (struct msghdr){ .msg_iov = &m->iov, .msg_iovlen = 1,
				  .msg_control = m->buf,
				  .msg_controllen = sizeof(m->buf) };
}

static bool send_fds(int sock, const int fds[2])
{
	struct fd_msg m;
	struct cmsghdr *c;

	fd_msg_init(&m);
	c = CMSG_FIRSTHDR(&m.msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, 2 * sizeof(int));
	return sendmsg(sock, &m.msg, 0) == 1;
}

static bool recv_fds(int sock, int fds[2])
{
	struct fd_msg m;
	struct cmsghdr *c;

	fd_msg_init(&m);
	if (recvmsg(sock, &m.msg, 0) != 1)
		return false;
	c = CMSG_FIRSTHDR(&m.msg);
	if (!c || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(2 * sizeof(int)))
		return false;
	memcpy(fds, CMSG_DATA(c), 2 * sizeof(int));
	return true;
}

/* A producer forked before the eventfds existed: it gets them over a UNIX
 * socket, as an unrelated process would. */
START_TEST(test_eventfd_unix_socket)
{
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	uint64_t seed = base_seed ^ 0x50c;
	struct apq_notifier *cn;
	struct apq_consumer *c;
	size_t bytes;
	unsigned char *mem = region_shared(&bytes);
	int sv[2], fds[2], status;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	pid = test_fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct apq_notifier *pn;
		struct apq_producer *p;
		int got[2], r = 1;

		close(sv[0]);
		if (recv_fds(sv[1], got) &&
		    apq_notifier_eventfd(&pn, got[1], got[0]) == 0 &&
		    apq_producer_attach(&p, mem, bytes, pn, &cfg) == 0) {
			r = produce(p, seed, PACKETS);
			apq_producer_detach(p);
		}
		_exit(r ? 1 : 0);
	}
	close(sv[1]);
	ck_assert_int_eq(apq_eventfd_pair(fds), 0);
	ck_assert_int_eq(apq_notifier_eventfd(&cn, fds[0], fds[1]), 0);
	ck_assert_int_eq(apq_consumer_attach(&c, mem, bytes, cn, &cfg), 0);
	ck_assert(send_fds(sv[0], fds));
	close(fds[0]);
	close(fds[1]);
	ck_assert_uint_eq(consume(c, seed, PACKETS), PACKETS);
	ck_assert_int_eq(apq_recv(c, NULL, 0, WAIT_NS), -EPIPE);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	apq_consumer_detach(c);
	apq_notifier_free(cn);
	close(sv[0]);
	munmap(mem, bytes);
}
END_TEST

/* ---- a backend of one's own ---- */

/* Futexes, called straight: what a user with a backend of their own
 * writes, counting what apq asks of it. */
struct my_backend {
	atomic_uint waits, wakes, destroyed;
	atomic_uint bad_channel;
	const uint32_t *seq[2];	/* the word each channel sleeps on */
	pthread_mutex_t lock;
};

static void my_channel_word(struct my_backend *b, enum apq_channel ch,
			    const uint32_t *seq)
{
	pthread_mutex_lock(&b->lock);
	if (ch != APQ_CHANNEL_DATA && ch != APQ_CHANNEL_SPACE)
		b->bad_channel++;
	else if (!b->seq[ch])
		b->seq[ch] = seq;
	else if (b->seq[ch] != seq)
		b->bad_channel++;
	pthread_mutex_unlock(&b->lock);
}

static int my_wait(void *ctx, enum apq_channel ch, const uint32_t *seq,
		   uint32_t token, int64_t timeout_ns)
{
	struct my_backend *b = ctx;
	struct timespec ts = { .tv_sec = timeout_ns / TEST_NSEC,
			       .tv_nsec = timeout_ns % TEST_NSEC };

	my_channel_word(b, ch, seq);
	b->waits++;
	if (timeout_ns <= 0)
		b->bad_channel++;
	if (syscall(SYS_futex, seq, FUTEX_WAIT, token, &ts, NULL, 0) < 0 &&
	    errno == ETIMEDOUT)
		return -ETIMEDOUT;
	return 0;
}

static int my_wake(void *ctx, enum apq_channel ch, uint32_t *seq)
{
	struct my_backend *b = ctx;

	my_channel_word(b, ch, seq);
	b->wakes++;
	return syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0) < 0 ?
	       -errno : 1;
}

static void my_destroy(void *ctx)
{
	struct my_backend *b = ctx;

	b->destroyed++;
}

static const struct apq_notifier_ops my_ops = {
	.size = sizeof(struct apq_notifier_ops),
	.wait = my_wait,
	.wake = my_wake,
	.destroy = my_destroy,
};

START_TEST(test_create_args)
{
	struct apq_notifier_ops ops = my_ops;
	struct apq_notifier *n = NULL;
	struct my_backend b = { .lock = PTHREAD_MUTEX_INITIALIZER };

	ck_assert_int_eq(apq_notifier_create(NULL, &my_ops, &b), -EINVAL);
	ck_assert_int_eq(apq_notifier_create(&n, NULL, &b), -EINVAL);
	ops.wait = NULL;
	ck_assert_int_eq(apq_notifier_create(&n, &ops, &b), -EINVAL);
	ops = my_ops;
	ops.wake = NULL;
	ck_assert_int_eq(apq_notifier_create(&n, &ops, &b), -EINVAL);
	/* A table compiled before wake existed has no wake. */
	ops = my_ops;
	ops.size = offsetof(struct apq_notifier_ops, wake);
	ck_assert_int_eq(apq_notifier_create(&n, &ops, &b), -EINVAL);
	ck_assert_ptr_null(n);
	/* Without fd(), no descriptor; ack() has nothing to take. */
	ck_assert_int_eq(apq_notifier_create(&n, &my_ops, &b), 0);
	ck_assert_int_eq(apq_notifier_fd(n), -ENOTSUP);
	ck_assert_int_eq(apq_notifier_ack(n), 0);
	ck_assert_uint_eq(b.destroyed, 0);
	apq_notifier_free(n);
	ck_assert_uint_eq(b.destroyed, 1);
}
END_TEST

START_TEST(test_create_stream)
{
	struct my_backend b = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct apq_config cfg = policy_cfg(stream_policies[_i]);
	struct side prod = { .seed = base_seed ^ 0xc0de, .cfg = cfg };
	struct apq_consumer *c;
	struct apq_stats ps, cs;

	prod.mem = region_shared(&prod.bytes);
	ck_assert_int_eq(apq_notifier_create(&prod.n, &my_ops, &b), 0);
	ck_assert_int_eq(apq_consumer_attach(&c, prod.mem, prod.bytes, prod.n,
					     &cfg), 0);
	/* Our backend might reach another kernel: no asymmetric fences. */
	ck_assert_uint_eq(get64(prod.mem, OFF_DATA_WORD) >> 56, 0xa5);
	stream_from_thread(&prod, c, &ps, &cs);
	ck_assert_uint_eq(get64(prod.mem, OFF_DATA_WORD) >> 56, 0xa5);
	ck_assert_uint_eq(get64(prod.mem, OFF_SPACE_WORD) >> 56, 0xa5);
	/* Every wake apq counts went through our table, and every sleep
	 * blocked in it at least once. */
	ck_assert_uint_eq(b.wakes, ps.wakeups_sent + cs.wakeups_sent);
	ck_assert_uint_ge(b.waits, cs.sleeps + ps.sleeps);
	ck_assert_uint_gt(cs.sleeps, 0);
	ck_assert_uint_eq(b.bad_channel, 0);
	ck_assert_ptr_ne(b.seq[APQ_CHANNEL_DATA], NULL);
	apq_producer_detach(prod.p);
	apq_consumer_detach(c);
	apq_notifier_free(prod.n);
	ck_assert_uint_eq(b.destroyed, 1);
	munmap(prod.mem, prod.bytes);
}
END_TEST

/* ---- event loops ---- */

struct loop_consumer {
	struct apq_notifier *n;
	struct apq_consumer *c;
	uint64_t seed;
	uint32_t got;
	uint64_t waits;
};

static void *loop_thread(void *arg)
{
	struct loop_consumer *l = arg;

	l->got = consume_in_loop(l->c, l->n, l->seed, PACKETS, &l->waits);
	return NULL;
}

/* _i: 0 futex, 1 eventfd; the producer is a thread. */
START_TEST(test_loop_threads)
{
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	struct side prod = { .seed = base_seed ^ 0x100, .cfg = cfg };
	struct loop_consumer l = { .seed = prod.seed };
	struct apq_stats cs;
	pthread_t pt, ct;

	prod.mem = region_shared(&prod.bytes);
	if (_i == 0) {
		ck_assert_int_eq(apq_notifier_futex(&prod.n), 0);
		ck_assert_int_eq(apq_notifier_futex(&l.n), 0);
	} else {
		eventfd_notifiers(&prod.n, &l.n);
	}
	ck_assert_int_eq(apq_consumer_attach(&l.c, prod.mem, prod.bytes, l.n,
					     &cfg), 0);
	ck_assert_int_eq(pthread_create(&ct, NULL, loop_thread, &l), 0);
	ck_assert_int_eq(pthread_create(&pt, NULL, producer_thread, &prod), 0);
	ck_assert_int_eq(pthread_join(pt, NULL), 0);
	ck_assert_int_eq(pthread_join(ct, NULL), 0);
	ck_assert_int_eq(prod.r, 0);
	ck_assert_uint_eq(l.got, PACKETS);
	ck_assert_uint_gt(l.waits, 0);
	ck_assert_int_eq(apq_consumer_stats(l.c, &cs), 0);
	ck_assert_uint_eq(cs.rescues, 0);
	apq_producer_detach(prod.p);
	apq_consumer_detach(l.c);
	apq_notifier_free(prod.n);
	apq_notifier_free(l.n);
	munmap(prod.mem, prod.bytes);
}
END_TEST

/* The futex notifier's descriptor across processes: the child produces
 * with a notifier of its own, the parent waits in epoll. */
START_TEST(test_loop_futex_fork)
{
	struct apq_notifier *pn, *cn;
	size_t bytes;
	unsigned char *mem = region_shared(&bytes);

	ck_assert_int_eq(apq_notifier_futex(&pn), 0);
	ck_assert_int_eq(apq_notifier_futex(&cn), 0);
	fork_stream(pn, cn, mem, bytes, base_seed ^ 0xf0, true);
	apq_notifier_free(pn);
	apq_notifier_free(cn);
	munmap(mem, bytes);
}
END_TEST

/*
 * One futex notifier's loop can watch 16 words armed at once (a bridge
 * thread each).  The 17th arm fails and says so, announcing nothing; once
 * a bridge fired, its thread serves the next word.
 */
#define WORDS	17

START_TEST(test_loop_futex_words)
{
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	struct epoll_event ev = { .events = EPOLLIN };
	struct apq_consumer *c[WORDS];
	unsigned char *mem[WORDS];
	struct apq_notifier *n;
	struct apq_producer *p;
	size_t bytes;
	int ep = epoll_create1(EPOLL_CLOEXEC), i;
	char buf[8];

	ck_assert_int_eq(apq_notifier_futex(&n), 0);
	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, apq_notifier_fd(n), &ev),
			 0);
	for (i = 0; i < WORDS; i++) {
		mem[i] = region_shared(&bytes);
		ck_assert_int_eq(apq_consumer_attach(&c[i], mem[i], bytes, n,
						     &cfg), 0);
	}
	for (i = 0; i < WORDS - 1; i++)
		ck_assert_int_eq(apq_consumer_arm(c[i]), 0);
	ck_assert_int_eq(apq_consumer_arm(c[WORDS - 1]), -ENOSPC);
	/* Not announced: a producer sees a poller, and sends no wake. */
	ck_assert_uint_eq(get64(mem[WORDS - 1], OFF_DATA_WORD) & M_SLEEPING, 0);
	/* Word 0's bridge fires, and the loop wakes at once. */
	ck_assert_int_eq(apq_producer_attach(&p, mem[0], bytes, n, &cfg), 0);
	ck_assert_int_eq(apq_send(p, "x", 1, 0), 0);
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 10000), 1);
	ck_assert_int_ge(apq_notifier_ack(n), 0);
	ck_assert_int_eq(apq_recv(c[0], buf, sizeof(buf), 0), 1);
	/* Its thread is free for the 17th word. */
	ck_assert_int_eq(apq_consumer_arm(c[WORDS - 1]), 0);
	ck_assert_uint_ne(get64(mem[WORDS - 1], OFF_DATA_WORD) & M_SLEEPING, 0);
	apq_producer_detach(p);
	for (i = 0; i < WORDS; i++) {
		apq_consumer_detach(c[i]);
		munmap(mem[i], bytes);
	}
	apq_notifier_free(n);
	close(ep);
}
END_TEST

/* Armed, nothing sent: the loop wakes at the backstop (50 ms), which is
 * what bounds a lost wake; and the wake is not a packet. */
START_TEST(test_loop_backstop)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	struct apq_notifier *n;
	struct apq_producer *p;
	struct apq_consumer *c;
	size_t bytes;
	unsigned char *mem = region_shared(&bytes);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	char buf[8];
	int64_t start;

	if (_i == 0) {
		ck_assert_int_eq(apq_notifier_futex(&n), 0);
	} else {
		/* Both sides in one notifier: one eventfd, waited on and
		 * written. */
		int efd = eventfd(0, EFD_CLOEXEC);

		ck_assert_int_ge(efd, 0);
		ck_assert_int_eq(apq_notifier_eventfd(&n, efd, efd), 0);
		close(efd);
	}
	ck_assert_int_eq(apq_producer_attach(&p, mem, bytes, n, &cfg), 0);
	ck_assert_int_eq(apq_consumer_attach(&c, mem, bytes, n, &cfg), 0);
	ck_assert_int_ge(ep, 0);
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, apq_notifier_fd(n), &ev),
			 0);
	ck_assert_int_eq(apq_recv(c, NULL, 0, 0), -EAGAIN);
	ck_assert_int_eq(apq_consumer_arm(c), 0);
	start = now_ns();
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 10000), 1);
	/* 50 ms, less the timer's slack; a loaded machine may be late. */
	ck_assert_int_ge(now_ns() - start, 45 * TEST_MSEC);
	ck_assert_int_ge(apq_notifier_ack(n), 0);
	ck_assert_int_eq(apq_recv(c, NULL, 0, 0), -EAGAIN);
	/* Acked and not re-armed: nothing more to wake for. */
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 100), 0);
	/* A packet sent to an armed consumer makes the descriptor readable
	 * at once. */
	ck_assert_int_eq(apq_consumer_arm(c), 0);
	ck_assert_int_eq(apq_send(p, "x", 1, 0), 0);
	ck_assert_int_eq(epoll_wait(ep, &ev, 1, 10000), 1);
	ck_assert_int_ge(apq_notifier_ack(n), 0);
	ck_assert_int_eq(apq_recv(c, buf, sizeof(buf), 0), 1);
	ck_assert_int_eq(buf[0], 'x');
	close(ep);
	apq_producer_detach(p);
	apq_consumer_detach(c);
	apq_notifier_free(n);
	munmap(mem, bytes);
}
END_TEST

/* ---- ADAPTIVE's learning ---- */

struct paced {
	struct apq_producer *p;
	int64_t gap_ns;
	uint32_t n;
	bool lie;		/* scribble the policy's advice as it goes */
	unsigned char *mem;
	int r;
};

static void *paced_producer(void *arg)
{
	struct paced *t = arg;
	uint32_t i;

	for (i = 0; i < t->n && t->r == 0; i++) {
		if (t->gap_ns >= 100 * 1000)
			sleep_ns(t->gap_ns);
		else
			spin_ns(t->gap_ns);
		if (t->lie) {
			/* The advice beside the wake sequence: a call of
			 * 4 s, a wake stamped in the future. */
			set32(t->mem, OFF_DATA_WORD + 32, UINT32_MAX);
			set64(t->mem, OFF_DATA_WORD + 40, UINT64_MAX / 2);
		}
		t->r = apq_send(t->p, &i, sizeof(i), WAIT_NS);
	}
	return NULL;
}

/* The learned state after a stream paced gap_ns apart. */
static struct apq_stats adaptive_after(int64_t gap_ns, uint32_t n, bool lie)
{
	struct apq_config cfg = policy_cfg(APQ_POLICY_ADAPTIVE);
	struct paced t = { .gap_ns = gap_ns, .n = n, .lie = lie };
	struct apq_notifier *pn, *cn;
	struct apq_consumer *c;
	struct apq_stats st;
	size_t bytes;
	uint32_t i, v;
	pthread_t th;

	t.mem = region_shared(&bytes);
	ck_assert_int_eq(apq_notifier_futex(&pn), 0);
	ck_assert_int_eq(apq_notifier_futex(&cn), 0);
	ck_assert_int_eq(apq_producer_attach(&t.p, t.mem, bytes, pn, &cfg), 0);
	ck_assert_int_eq(apq_consumer_attach(&c, t.mem, bytes, cn, &cfg), 0);
	ck_assert_int_eq(pthread_create(&th, NULL, paced_producer, &t), 0);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(apq_recv(c, &v, sizeof(v), WAIT_NS), sizeof(v));
		ck_assert_uint_eq(v, i);
	}
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(t.r, 0);
	ck_assert_int_eq(apq_consumer_stats(c, &st), 0);
	apq_producer_detach(t.p);
	apq_consumer_detach(c);
	apq_notifier_free(pn);
	apq_notifier_free(cn);
	munmap(t.mem, bytes);
	return st;
}

/* Gaps of 2 ms, far beyond any block's cost: ADAPTIVE stops polling, and
 * has measured the wake (its cost and how late it ran). */
START_TEST(test_adaptive_blocks_on_long_gaps)
{
	struct apq_stats st = adaptive_after(2 * TEST_MSEC, 200, false);

	ck_assert_uint_eq(st.polling, 0);
	ck_assert_uint_gt(st.sleeps, 150);
	ck_assert_uint_gt(st.wake_call_ns, 0);
	ck_assert_uint_gt(st.wake_late_ns, 0);
	ck_assert_uint_le(st.wake_call_ns + st.wake_late_ns, 200 * 1000);
}
END_TEST

/* A peer that lies in the advice moves nothing out of bounds: the costs
 * stay clamped, and the stream is whole (checked in adaptive_after()). */
START_TEST(test_adaptive_advice_clamped)
{
	struct apq_stats st = adaptive_after(2 * TEST_MSEC, 100, true);

	ck_assert_uint_le(st.wake_call_ns, 200 * 1000);
	ck_assert_uint_le(st.wake_late_ns, 200 * 1000);
}
END_TEST

static Suite *notifier_suite(void)
{
	Suite *s = suite_create("notifier");
	TCase *tc = tcase_create("eventfd");
	int npol = (int)(sizeof(stream_policies) / sizeof(stream_policies[0]));

	tcase_add_test(tc, test_eventfd_args);
	tcase_add_loop_test(tc, test_eventfd_threads, 0, npol);
	tcase_add_loop_test(tc, test_eventfd_fork, 0, 2);
	tcase_add_test(tc, test_eventfd_unix_socket);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("ops");
	tcase_add_test(tc, test_create_args);
	tcase_add_loop_test(tc, test_create_stream, 0, npol);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("loop");
	tcase_add_loop_test(tc, test_loop_threads, 0, 2);
	tcase_add_test(tc, test_loop_futex_fork);
	tcase_add_test(tc, test_loop_futex_words);
	tcase_add_loop_test(tc, test_loop_backstop, 0, 2);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("adaptive");
	tcase_add_test(tc, test_adaptive_blocks_on_long_gaps);
	tcase_add_test(tc, test_adaptive_advice_clamped);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(notifier_suite());
	int failed;

	base_seed = test_seed();
	printf("test-notifier: APQ_SEED=%llu\n",
	       (unsigned long long)base_seed);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
