/* SPDX-License-Identifier: MIT */
/* Noticing a peer process that died: see liveness.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "liveness.h"

/* Linux's pid_max can be raised at most to this (PID_MAX_LIMIT). */
#define PID_LIMIT	4194304u

/*
 * The start time of process pid, in clock ticks after boot (field 22 of
 * /proc/PID/stat).  @return it; 0 if the process is not there or has
 * exited (a zombie); -1 if it cannot be told (no /proc).
 */
static int64_t proc_start(uint32_t pid)
{
	char path[40], buf[512];
	const char *p;
	unsigned long long start;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 && errno == ESRCH ? 0 : -1;
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: count
	 * fields from its closing parenthesis, the last one in the line. */
	p = strrchr(buf, ')');
	if (!p || !p[1] || !p[2])
		return -1;
	if (p[2] == 'Z' || p[2] == 'X')	/* field 3, the state */
		return 0;
	for (field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &start) != 1 || start == 0)
		return -1;
	return (int64_t)start;
}

/*
 * This kernel's boot id (/proc/sys/kernel/random/boot_id, random at every
 * boot), hashed; 0 if it cannot be read.  It never changes while we run,
 * so the first reading serves every later call (relaxed: a race computes
 * the same value twice).
 */
static uint64_t kernel_id(void)
{
	static uint64_t cached;
	uint64_t h = apq_load_once(&cached);
	char buf[64];
	ssize_t n;
	int fd;

	if (h)
		return h;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n <= 0)
		return 0;
	h = UINT64_C(14695981039346656037);	/* FNV-1a */
	for (ssize_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)buf[i]) * UINT64_C(1099511628211);
	h |= 1;
	apq_store_once(&cached, h);
	return h;
}

/*
 * Our pid namespace, as a number that tells whether a pid we read from the
 * peer means the same process to us; 0 if it cannot be told.  The
 * namespace's inode alone does not: every kernel's initial pid namespace
 * has the same one, so two Xen domains (or two machines sharing memory)
 * would take each other's pids for their own.  Hence the kernel's boot id
 * and the nsfs device mixed in.
 */
static uint64_t pidns_id(void)
{
	uint64_t kernel = kernel_id(), id;
	struct stat st;

	if (!kernel || stat("/proc/self/ns/pid", &st) != 0)
		return 0;
	id = kernel ^ (uint64_t)st.st_ino ^ ((uint64_t)st.st_dev << 40);
	return id ? id : 1;
}

static int64_t coarse_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void apq_owner_publish(struct apq_mode_layout *w)
{
	uint32_t pid = (uint32_t)getpid();
	int64_t start = proc_start(pid);
	uint64_t ns = pidns_id();

	/* Without /proc nobody can check us: publish nothing, which the
	 * peer reads as "cannot tell". */
	if (start <= 0 || ns == 0)
		pid = 0;
	/* Relaxed: the peer reads these once each and validates them; a
	 * torn read during a re-attach costs one wrong guess, which the
	 * next look corrects. */
	apq_store_once(&w->owner_start, start > 0 ? (uint64_t)start : 0);
	apq_store_once(&w->owner_pidns, ns);
	apq_store_once(&w->owner_pid, pid);
}

void apq_peer_watch_init(struct apq_peer_watch *pw,
			 const struct apq_mode_layout *peer_word)
{
	*pw = (struct apq_peer_watch){ .word = peer_word, .pidfd = -1 };
}

void apq_peer_watch_fini(struct apq_peer_watch *pw)
{
	if (pw->pidfd >= 0)
		close(pw->pidfd);
	pw->pidfd = -1;
}

/*
 * Start watching the process the peer's word names: a pidfd, made sure to
 * be that process and not one that got its pid later.  Without pidfds
 * (Linux < 5.3) pw->pidfd stays -1 and checks fall back to /proc.
 * @return 0; APQ_PEER_DIED.
 */
static int watch_open(struct apq_peer_watch *pw, uint32_t pid, uint64_t start)
{
	int64_t now_start;
	int fd;

	apq_peer_watch_fini(pw);
	pw->pid = pid;
	pw->start = start;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (fd < 0 && errno == ESRCH)
		return APQ_PEER_DIED;
	/* After the open, so that a pid reused in between shows here as a
	 * start time that differs: the pidfd would be the newcomer's. */
	now_start = proc_start(pid);
	if (now_start == 0 || (now_start > 0 && (uint64_t)now_start != start)) {
		if (fd >= 0)
			close(fd);
		return APQ_PEER_DIED;
	}
	pw->pidfd = fd;
	return 0;
}

int apq_peer_watch_check(struct apq_peer_watch *pw)
{
	int64_t now = coarse_now_ns(), now_start;
	struct pollfd pfd;
	uint64_t start, ns;
	uint32_t pid;

	if (now < pw->next_ns)
		return pw->state;
	pw->next_ns = now + APQ_LIVENESS_PERIOD_NS;
	/* Single fetch of each identity field the peer wrote. */
	pid = apq_load_once(&pw->word->owner_pid);
	start = apq_load_once(&pw->word->owner_start);
	ns = apq_load_once(&pw->word->owner_pidns);
	if (pid == 0 || pid >= PID_LIMIT || start == 0 || ns != pidns_id() ||
	    pid == (uint32_t)getpid()) {
		/* Nobody attached yet, another pid namespace, our own
		 * process, or nonsense: nothing we can look at. */
		apq_peer_watch_fini(pw);
		pw->pid = 0;
		pw->state = 0;
		return 0;
	}
	if (pid != pw->pid || start != pw->start) {
		pw->state = watch_open(pw, pid, start);
		if (pw->state)
			return pw->state;
	}
	if (pw->pidfd >= 0) {
		/* A pidfd is readable once its process has exited. */
		pfd = (struct pollfd){ .fd = pw->pidfd, .events = POLLIN };
		if (poll(&pfd, 1, 0) > 0)
			pw->state = APQ_PEER_DIED;
	} else {
		now_start = proc_start(pid);
		if (now_start == 0 ||
		    (now_start > 0 && (uint64_t)now_start != start))
			pw->state = APQ_PEER_DIED;
	}
	return pw->state;
}
