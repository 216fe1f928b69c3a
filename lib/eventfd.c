/* SPDX-License-Identifier: MIT */
/*
 * The eventfd notifier.  Each side sleeps on an eventfd of its own and
 * wakes the other side by writing to the other's.  An eventfd latches: a
 * wake written before the sleeper polls is not lost, and the wake sequence
 * word in the region still decides whether a wake was meant for a sleeper,
 * so coalesced writes and stale counts only cost spurious wakeups.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fdwait.h"
#include "notifier.h"
#include "util.h"

struct efd_ctx {
	int wait_fd;		/* we sleep on it; the peer writes it */
	int wake_fd;		/* the peer's; we write it */
	struct apq_fdwait fw;
};

static int efd_take(void *ctx)
{
	struct efd_ctx *e = ctx;
	uint64_t count;

	/* Non-blocking: another reader may have emptied it meanwhile. */
	if (read(e->wait_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static const struct apq_fdwait_ops efd_fdwait = { .take = efd_take };

static int efd_wait(void *ctx, enum apq_channel ch, const uint32_t *seq,
		    uint32_t token, int64_t timeout_ns)
{
	struct efd_ctx *e = ctx;

	(void)ch;
	return apq_fdwait(&e->fw, e->wait_fd, &efd_fdwait, e, seq, token,
			  apq_now_ns() + timeout_ns);
}

static int efd_wake(void *ctx, enum apq_channel ch, uint32_t *seq)
{
	struct efd_ctx *e = ctx;
	uint64_t one = 1;

	(void)ch;
	(void)seq;
	/* EAGAIN: the counter is full of wakes the peer has not taken yet,
	 * which is as good as one more. */
	if (write(e->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 1;
}

static int efd_fd(void *ctx)
{
	return ((struct efd_ctx *)ctx)->wait_fd;
}

static int efd_ack(void *ctx)
{
	struct efd_ctx *e = ctx;
	uint64_t count;
	int r = 0;

	pthread_mutex_lock(&e->fw.lock);
	/* A waiter that polls takes the notifications itself. */
	if (!e->fw.polling) {
		if (read(e->wait_fd, &count, sizeof(count)) == sizeof(count))
			r = 1;
		else if (errno != EAGAIN)
			r = -errno;
	}
	pthread_mutex_unlock(&e->fw.lock);
	return r;
}

static void efd_destroy(void *ctx)
{
	struct efd_ctx *e = ctx;

	close(e->wait_fd);
	close(e->wake_fd);
	apq_fdwait_fini(&e->fw);
	free(e);
}

static const struct apq_notifier_ops efd_ops = {
	.size = sizeof(struct apq_notifier_ops),
	.wait = efd_wait,
	.wake = efd_wake,
	.fd = efd_fd,
	.ack = efd_ack,
	.destroy = efd_destroy,
};

/* Whether fd is an eventfd: its /proc entry says so. */
static bool is_eventfd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return fcntl(fd, F_GETFD) >= 0;	/* no /proc: trust it */
	link[n] = '\0';
	return strcmp(link, "anon_inode:[eventfd]") == 0;
}

/* A non-blocking, close-on-exec duplicate of fd.  @return it or -errno. */
static int dup_nonblock(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0), flags;

	if (d < 0)
		return -errno;
	flags = fcntl(d, F_GETFL);
	if (flags < 0 || fcntl(d, F_SETFL, flags | O_NONBLOCK) < 0) {
		flags = -errno;
		close(d);
		return flags;
	}
	return d;
}

APQ_EXPORT int apq_eventfd_pair(int fds[2])
{
	if (!fds)
		return -EINVAL;
	fds[0] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fds[0] < 0)
		return -errno;
	fds[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fds[1] < 0) {
		int r = -errno;

		close(fds[0]);
		return r;
	}
	return 0;
}

APQ_EXPORT int apq_notifier_eventfd(struct apq_notifier **out, int wait_fd,
				    int wake_fd)
{
	struct efd_ctx *e;
	int r;

	if (!out || wait_fd < 0 || wake_fd < 0 || !is_eventfd(wait_fd) ||
	    !is_eventfd(wake_fd))
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->wait_fd = e->wake_fd = -1;
	r = apq_fdwait_init(&e->fw);
	if (r) {
		free(e);
		return r;
	}
	e->wait_fd = dup_nonblock(wait_fd);
	e->wake_fd = dup_nonblock(wake_fd);
	r = e->wait_fd < 0 ? e->wait_fd : e->wake_fd < 0 ? e->wake_fd : 0;
	if (r == 0)
		r = apq_notifier_new(out, &efd_ops, e);
	if (r) {
		if (e->wait_fd >= 0)
			close(e->wait_fd);
		if (e->wake_fd >= 0)
			close(e->wake_fd);
		apq_fdwait_fini(&e->fw);
		free(e);
	}
	return r;
}
