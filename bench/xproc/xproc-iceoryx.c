/* SPDX-License-Identifier: MIT */
/*
 * xproc-iceoryx.c - Eclipse iceoryx 2.0 through its C binding.
 *
 * setup() starts a RouDi daemon of its own (iox-roudi, with a config that
 * sizes the mempools for max_pkt and the channel count) and waits until it
 * says it is ready; teardown() kills it and removes what it and the
 * children's runtimes leave behind (see iox_x_stop_roudi()).  Only one RouDi runs on a machine,
 * so setup() first takes a lock file that serialises apq-bench processes,
 * and a RouDi that is already running (not ours) makes the queue skip.
 *
 * Each child process registers one iceoryx runtime, named uniquely, the
 * first time it opens an endpoint.  A channel is one service with one
 * publisher and one subscriber:
 *
 *   publisher   no history; ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER, so a
 *               full subscriber queue holds the publisher back instead of
 *               dropping (iceoryx then busy-waits in publish, yielding: the
 *               producer does not sleep)
 *   subscriber  the largest queue iceoryx allows (256 chunks);
 *               QueueFullPolicy_BLOCK_PRODUCER; a waitset on its HAS_DATA
 *               state, which the consumer sleeps on when nothing is queued
 *
 * Every chunk carries a user header with the packet's length (the C binding
 * of 2.0 does not tell a subscriber a chunk's payload size) and a flag for
 * the end-of-stream marker, which close_producer() publishes.  Copying send
 * loans a chunk, copies into it and publishes it; copying recv takes one,
 * copies out and releases it.  Zero copy hands out the loaned or taken chunk
 * itself.
 *
 * Connecting: RouDi connects a subscriber to a publisher in its discovery
 * loop (every 100 ms), and a chunk published before is not delivered.  So
 * open_consumer() waits until its subscriber is connected, but at most 2 s:
 * waiting longer for a publisher that does not exist yet could leave two
 * children each waiting for the other's.  The producer's first publish
 * waits until a subscriber is connected (at most BENCH_IO_TIMEOUT_NS).  A
 * harness that opens its producers first has every channel connected before
 * its measurement starts.
 *
 * Losses: none by design (blocking policies on both sides).  A subscriber
 * whose queue reports lost chunks when the end marker arrives returns
 * -EPROTO instead of the end of the stream, so a loss is never silent.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iceoryx_binding_c/chunk.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/publisher.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/subscriber.h>
#include <iceoryx_binding_c/wait_set.h>

#include "xproc.h"

#ifndef BENCH_IOX_ROUDI
#define BENCH_IOX_ROUDI	"iox-roudi"	/* looked up in PATH */
#endif

#define ROUDI_READY_NS		(10 * INT64_C(1000000000))
#define ROUDI_STOP_NS		(5 * INT64_C(1000000000))
#define LOCK_WAIT_NS		(120 * INT64_C(1000000000))
#define CONNECT_WAIT_NS		(2 * INT64_C(1000000000))
#define LOCK_PATH		"/tmp/apq-bench-iceoryx.lock"
#define ROUDI_READY_TEXT	"RouDi is ready for clients"
#define IOX_TMP_DIR		"/tmp/"	/* iceoryx's sockets and locks */
#define IOX_RUNTIME_PREFIX	"apq-bench-"

#define QUEUE_MAX	256	/* MAX_SUBSCRIBER_QUEUE_CAPACITY of 2.0 */
#define HELD_MAX	32	/* chunks a consumer takes before give_back */
#define LOANS_MAX	8	/* MAX_CHUNKS_ALLOCATED_PER_PUBLISHER_... */
#define CHUNK_SLACK	128	/* chunk header, user header, alignment */
#define SMALL_CHUNK	256	/* a pool for small packets */
#define POOL_BYTES_MAX	(UINT64_C(1) << 30)

#define FLAG_END	1u	/* the end-of-stream marker */

/* Every chunk's user header (iceoryx places it before the payload). */
struct iox_x_header {
	uint32_t len;
	uint32_t flags;
};

struct iox_shared {
	pid_t roudi;
	int lock_fd;
	char dir[64];			/* config and log of our RouDi */
	char instance[40];		/* names this run's services */
	uint64_t queue_cap;
	size_t max_pkt;
	unsigned int channels;
};

struct iox_ep {
	const struct iox_shared *sh;
	/* producer */
	iox_pub_storage_t pub_storage;
	iox_pub_t pub;
	bool connected;			/* a subscriber was seen */
	void *loaned;			/* the pending loan's payload */
	size_t loaned_len;
	/* consumer */
	iox_sub_storage_t sub_storage;
	iox_sub_t sub;
	iox_ws_storage_t ws_storage;
	iox_ws_t ws;
	const void *held[HELD_MAX];	/* taken, not given back */
	unsigned int n_held;
	const void *pending;		/* too large for the last recv */
	bool ended;
	struct bench_counters counters;
};

/* The runtime of this process: one per process, registered on first use. */
static pid_t iox_runtime_pid;

static char iox_why[256];

/* ---- the daemon ---- */

/*
 * RouDi 2.0's orderly shutdown (SIGTERM) signals every process still
 * registered with it.  apq-bench's children end with _exit() and never
 * deregister, so it would signal pids that are gone (or reused), fail, and
 * abort.  Teardown runs after both children exited, when RouDi serves
 * nobody: it is killed outright, and iox_x_clean_leftovers() removes what
 * it leaves.
 */
static void iox_x_stop_roudi(struct iox_shared *sh)
{
	int64_t deadline;
	int status;

	if (sh->roudi <= 0)
		return;
	kill(sh->roudi, SIGKILL);
	deadline = xproc_now_ns() + ROUDI_STOP_NS;
	for (;;) {
		pid_t w = waitpid(sh->roudi, &status, WNOHANG);

		/* ECHILD: SIGCHLD is ignored, the kernel reaps it; wait
		 * until the pid is gone, or a next RouDi would not start. */
		if (w == sh->roudi || (w < 0 && errno != EINTR &&
				       kill(sh->roudi, 0) < 0))
			break;
		if (xproc_now_ns() > deadline)
			break;
		usleep(1000);
	}
	sh->roudi = 0;
}

/*
 * What a killed RouDi leaves (its shared memory and socket), and what
 * clients that ended with _exit() leave (their sockets, /tmp/<runtime name>,
 * and lock files).  RouDi's are removed only while no RouDi holds its lock,
 * so one started meanwhile by someone else is spared.
 */
static void iox_x_clean_leftovers(const struct iox_shared *sh)
{
	char prefix[96], path[sizeof(IOX_TMP_DIR) + 256];
	const struct group *g;
	struct dirent *d;
	size_t n;
	DIR *dir;
	int fd;

	fd = open(IOX_TMP_DIR "roudi.lock", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			shm_unlink("/iceoryx_mgmt");
			g = getgrgid(getegid());	/* names RouDi's segment */
			if (g) {
				snprintf(path, sizeof(path), "/%s", g->gr_name);
				shm_unlink(path);
			}
			unlink(IOX_TMP_DIR "roudi");
			flock(fd, LOCK_UN);
		}
		close(fd);
	}

	/* The runtimes of this run's children: their names start with it. */
	n = (size_t)snprintf(prefix, sizeof(prefix), "%s%s-",
			     IOX_RUNTIME_PREFIX, sh->instance);
	dir = opendir(IOX_TMP_DIR);
	if (!dir)
		return;
	while ((d = readdir(dir))) {
		if (strncmp(d->d_name, prefix, n) != 0)
			continue;
		snprintf(path, sizeof(path), "%s%s", IOX_TMP_DIR, d->d_name);
		unlink(path);
	}
	closedir(dir);
}

static void iox_x_remove_dir(struct iox_shared *sh)
{
	char path[128];

	if (!sh->dir[0])
		return;
	snprintf(path, sizeof(path), "%s/roudi.toml", sh->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/roudi.log", sh->dir);
	unlink(path);
	rmdir(sh->dir);
	sh->dir[0] = '\0';
}

static void iox_x_teardown(void *shared)
{
	struct iox_shared *sh = shared;

	if (!sh)
		return;
	if (sh->roudi > 0) {
		iox_x_stop_roudi(sh);
		iox_x_clean_leftovers(sh);
	}
	iox_x_remove_dir(sh);
	if (sh->lock_fd >= 0)
		close(sh->lock_fd);	/* releases the lock */
	free(sh);
}

/* Serialise apq-bench processes: one RouDi per machine. */
static int iox_x_lock(struct iox_shared *sh)
{
	int64_t deadline = xproc_now_ns() + LOCK_WAIT_NS;

	sh->lock_fd = open(LOCK_PATH, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sh->lock_fd < 0) {
		snprintf(iox_why, sizeof(iox_why), "cannot open %s: %s",
			 LOCK_PATH, strerror(errno));
		return -ENOTSUP;
	}
	while (flock(sh->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(iox_why, sizeof(iox_why), "flock %s: %s",
				 LOCK_PATH, strerror(errno));
			return -ENOTSUP;
		}
		if (xproc_now_ns() > deadline) {
			snprintf(iox_why, sizeof(iox_why),
				 "another apq-bench process kept RouDi (%s) for %" PRId64 " s",
				 LOCK_PATH, LOCK_WAIT_NS / INT64_C(1000000000));
			return -ENOTSUP;
		}
		usleep(20000);
	}
	return 0;
}

/* The mempools: one for small packets, one for max_pkt. */
static int iox_x_write_config(struct iox_shared *sh, const char *path)
{
	uint64_t big = ((uint64_t)sh->max_pkt + CHUNK_SLACK + 63) & ~UINT64_C(63);
	uint64_t per_ch, count;
	FILE *f;

	if (big < SMALL_CHUNK)
		big = SMALL_CHUNK;
	/* Chunks a channel can have out at once: a full queue, the
	 * consumer's held chunks, the producer's loans, and a few. */
	per_ch = POOL_BYTES_MAX / big / sh->channels;
	if (per_ch < 16 + HELD_MAX + LOANS_MAX + 16)
		return -EMSGSIZE;
	sh->queue_cap = per_ch - HELD_MAX - LOANS_MAX - 16;
	if (sh->queue_cap > QUEUE_MAX)
		sh->queue_cap = QUEUE_MAX;
	count = sh->channels * (sh->queue_cap + HELD_MAX + LOANS_MAX + 16);

	f = fopen(path, "w");
	if (!f)
		return -errno;
	fprintf(f, "[general]\nversion = 1\n\n[[segment]]\n\n");
	fprintf(f, "[[segment.mempool]]\nsize = %d\ncount = %" PRIu64 "\n\n",
		SMALL_CHUNK, count);
	if (big > SMALL_CHUNK)
		fprintf(f, "[[segment.mempool]]\nsize = %" PRIu64
			"\ncount = %" PRIu64 "\n", big, count);
	if (fclose(f) != 0)
		return -errno;
	return 0;
}

/* Copy a log line without its colour escapes (ESC [ ... letter). */
static void iox_x_plain(char *to, size_t cap, const char *from)
{
	size_t n = 0;

	while (*from && n + 1 < cap) {
		if (from[0] == '\033' && from[1] == '[') {
			from += 2;
			while (*from && !((*from >= 'A' && *from <= 'Z') ||
					  (*from >= 'a' && *from <= 'z')))
				from++;
			if (*from)
				from++;
			continue;
		}
		to[n++] = *from++;
	}
	to[n] = '\0';
}

/* The log's first line that names a failure, for the skip reason. */
static void iox_x_log_reason(const char *log, const char *what)
{
	char line[160] = "";
	char buf[160];
	FILE *f = fopen(log, "r");

	if (f) {
		while (fgets(buf, sizeof(buf), f)) {
			if (strstr(buf, "rror") || strstr(buf, "already") ||
			    strstr(buf, "ailed") || !line[0]) {
				buf[strcspn(buf, "\n")] = '\0';
				iox_x_plain(line, sizeof(line), buf);
				if (strstr(buf, "rror") || strstr(buf, "already"))
					break;
			}
		}
		fclose(f);
	}
	snprintf(iox_why, sizeof(iox_why), "%s %s%s%s", BENCH_IOX_ROUDI, what,
		 line[0] ? ": " : "", line);
}

static bool iox_x_log_says_ready(const char *log)
{
	char buf[256];
	bool ready = false;
	FILE *f = fopen(log, "r");

	if (!f)
		return false;
	while (!ready && fgets(buf, sizeof(buf), f))
		ready = strstr(buf, ROUDI_READY_TEXT) != NULL;
	fclose(f);
	return ready;
}

static int iox_x_start_roudi(struct iox_shared *sh)
{
	char cfg[128], log[128];
	int64_t deadline;
	int status, r;
	pid_t pid, w;

	snprintf(sh->dir, sizeof(sh->dir), "/tmp/apq-bench-iox.XXXXXX");
	if (!mkdtemp(sh->dir)) {
		r = -errno;
		sh->dir[0] = '\0';
		return r;
	}
	snprintf(cfg, sizeof(cfg), "%s/roudi.toml", sh->dir);
	snprintf(log, sizeof(log), "%s/roudi.log", sh->dir);
	r = iox_x_write_config(sh, cfg);
	if (r < 0)
		return r;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* RouDi asserts (aborts) on some errors: no core file in
		 * the harness's directory. */
		setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
		if (chdir(sh->dir) < 0)
			_exit(126);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* No pipe of the harness stays open in the daemon. */
		syscall(SYS_close_range, 3u, ~0u, 0u);
		execlp(BENCH_IOX_ROUDI, "iox-roudi", "-c", cfg, "-l", "info",
		       (char *)NULL);
		_exit(127);
	}
	sh->roudi = pid;

	deadline = xproc_now_ns() + ROUDI_READY_NS;
	for (;;) {
		if (iox_x_log_says_ready(log))
			return 0;
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD && kill(pid, 0) < 0)) {
			sh->roudi = 0;
			if (w == pid && WIFEXITED(status) &&
			    WEXITSTATUS(status) == 127)
				snprintf(iox_why, sizeof(iox_why),
					 "cannot run %s", BENCH_IOX_ROUDI);
			else
				iox_x_log_reason(log, "exited");
			return -ENOTSUP;
		}
		if (xproc_now_ns() > deadline) {
			iox_x_log_reason(log, "not ready after 10 s");
			return -ENOTSUP;
		}
		usleep(2000);
	}
}

static int iox_x_setup(void **shared, const struct bench_variant *v,
		       size_t max_pkt, unsigned int channels, const char **why)
{
	struct iox_shared *sh;
	int r;

	*why = NULL;
	iox_why[0] = '\0';
	if (channels == 0 || max_pkt > UINT32_MAX - CHUNK_SLACK)
		return -EINVAL;
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->lock_fd = -1;
	sh->max_pkt = max_pkt;
	sh->channels = channels;
	snprintf(sh->instance, sizeof(sh->instance), "i%" PRIx64 "p%d",
		 (uint64_t)xproc_now_ns(), (int)getpid());

	r = iox_x_lock(sh);
	if (r == 0)
		r = iox_x_start_roudi(sh);
	if (r < 0) {
		if (r == -ENOTSUP)
			*why = iox_why;
		iox_x_teardown(sh);
		return r;
	}
	*shared = sh;
	return 0;
}

/* ---- endpoints ---- */

static void iox_x_runtime(const struct iox_shared *sh)
{
	char name[96];

	if (iox_runtime_pid == getpid())
		return;
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	snprintf(name, sizeof(name), "%s%s-%d", IOX_RUNTIME_PREFIX,
		 sh->instance, (int)getpid());
	iox_runtime_init(name);
	iox_runtime_pid = getpid();
}

static int iox_x_open_producer(void *shared, unsigned int channel, void **out)
{
	struct iox_shared *sh = shared;
	iox_pub_options_t o;
	struct iox_ep *ep;
	char event[16];

	if (!sh || channel >= sh->channels || !out)
		return -EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->sh = sh;
	iox_x_runtime(sh);
	iox_pub_options_init(&o);
	o.historyCapacity = 0;
	o.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	snprintf(event, sizeof(event), "ch%u", channel);
	ep->pub = iox_pub_init(&ep->pub_storage, "apq-bench", sh->instance,
			       event, &o);
	if (!ep->pub) {
		free(ep);
		return -EIO;
	}
	*out = ep;
	return 0;
}

static int iox_x_open_consumer(void *shared, unsigned int channel, void **out)
{
	struct iox_shared *sh = shared;
	iox_sub_options_t o;
	struct iox_ep *ep;
	int64_t deadline;
	char event[16];

	if (!sh || channel >= sh->channels || !out)
		return -EINVAL;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->sh = sh;
	iox_x_runtime(sh);
	iox_sub_options_init(&o);
	o.queueCapacity = sh->queue_cap;
	o.historyRequest = 0;
	o.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	snprintf(event, sizeof(event), "ch%u", channel);
	ep->sub = iox_sub_init(&ep->sub_storage, "apq-bench", sh->instance,
			       event, &o);
	if (!ep->sub)
		goto fail;
	ep->ws = iox_ws_init(&ep->ws_storage);
	if (!ep->ws)
		goto fail;
	if (iox_ws_attach_subscriber_state(ep->ws, ep->sub,
					   SubscriberState_HAS_DATA, 0,
					   NULL) != WaitSetResult_SUCCESS)
		goto fail;
	/* Connected before the measurement starts, if the publisher is
	 * there; if it is not (yet), its first publish waits instead. */
	deadline = xproc_now_ns() + CONNECT_WAIT_NS;
	while (iox_sub_get_subscription_state(ep->sub) !=
	       SubscribeState_SUBSCRIBED && xproc_now_ns() < deadline)
		usleep(1000);
	*out = ep;
	return 0;
fail:
	if (ep->ws)
		iox_ws_deinit(ep->ws);
	if (ep->sub)
		iox_sub_deinit(ep->sub);
	free(ep);
	return -EIO;
}

/* Before the first publish: until RouDi has connected the subscriber. */
static int iox_x_wait_connected(struct iox_ep *ep)
{
	int64_t deadline;

	if (ep->connected)
		return 0;
	deadline = xproc_now_ns() + BENCH_IO_TIMEOUT_NS;
	while (!iox_pub_has_subscribers(ep->pub)) {
		if (xproc_now_ns() > deadline)
			return -ETIMEDOUT;
		usleep(1000);
	}
	ep->connected = true;
	return 0;
}

static struct iox_x_header *iox_x_header_of(const void *payload)
{
	return iox_chunk_header_to_user_header(
		iox_chunk_header_from_user_payload((void *)(uintptr_t)payload));
}

static int iox_x_loan(void *p, size_t len, void **buf)
{
	struct iox_ep *ep = p;
	enum iox_AllocationResult a;
	int64_t deadline = 0;
	void *payload;
	int r;

	if (!ep || !ep->pub || !buf)
		return -EINVAL;
	if (ep->loaned)
		return -EBUSY;
	if (len > ep->sh->max_pkt)
		return -EMSGSIZE;
	r = iox_x_wait_connected(ep);
	if (r < 0)
		return r;
	for (;;) {
		a = iox_pub_loan_aligned_chunk_with_user_header(ep->pub,
			&payload, len ? (uint32_t)len : 1u, 8,
			sizeof(struct iox_x_header),
			_Alignof(struct iox_x_header));
		if (a == AllocationResult_SUCCESS)
			break;
		if (a != AllocationResult_RUNNING_OUT_OF_CHUNKS)
			return a == AllocationResult_TOO_MANY_CHUNKS_ALLOCATED_IN_PARALLEL
				? -EBUSY : -EIO;
		/* The pools are sized for every chunk that can be out, so
		 * this is a consumer holding chunks: wait for them. */
		if (!deadline)
			deadline = xproc_now_ns() + BENCH_IO_TIMEOUT_NS;
		else if (xproc_now_ns() > deadline)
			return -ENOBUFS;
		sched_yield();
	}
	ep->loaned = payload;
	ep->loaned_len = len;
	*buf = payload;
	return 0;
}

/* Blocks while the subscriber's queue is full (iceoryx busy-waits). */
static int iox_x_publish_flags(struct iox_ep *ep, size_t len, uint32_t flags)
{
	struct iox_x_header *h;

	if (!ep || !ep->loaned || len > ep->loaned_len)
		return -EINVAL;
	h = iox_x_header_of(ep->loaned);
	h->len = (uint32_t)len;
	h->flags = flags;
	iox_pub_publish_chunk(ep->pub, ep->loaned);
	ep->loaned = NULL;
	if (!flags)
		ep->counters.packets++;
	return 0;
}

static int iox_x_publish(void *p, size_t len)
{
	return iox_x_publish_flags(p, len, 0);
}

static int iox_x_send(void *p, const void *pkt, size_t len)
{
	struct iox_ep *ep = p;
	void *buf;
	int r = iox_x_loan(ep, len, &buf);

	if (r < 0)
		return r;
	memcpy(buf, pkt, len);
	return iox_x_publish_flags(ep, len, 0);
}

/*
 * The next chunk, sleeping on the waitset while none is queued.
 * @return 1 and *payload; 0 at the end marker; -errno.
 */
static int iox_x_next(struct iox_ep *ep, const void **payload)
{
	iox_notification_info_t info[1];
	int64_t deadline = 0, left;
	enum iox_ChunkReceiveResult t;
	const struct iox_x_header *h;
	uint64_t missed;

	if (ep->ended)
		return 0;
	for (;;) {
		t = iox_sub_take_chunk(ep->sub, payload);
		if (t == ChunkReceiveResult_SUCCESS)
			break;
		if (t == ChunkReceiveResult_TOO_MANY_CHUNKS_HELD_IN_PARALLEL)
			return -EBUSY;
		if (t != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return -EIO;
		if (!deadline)
			deadline = xproc_now_ns() + BENCH_IO_TIMEOUT_NS;
		left = deadline - xproc_now_ns();
		if (left <= 0)
			return -ETIMEDOUT;
		ep->counters.sleeps++;
		iox_ws_timed_wait(ep->ws, (struct timespec){
				.tv_sec = (time_t)(left / INT64_C(1000000000)),
				.tv_nsec = (long)(left % INT64_C(1000000000)) },
			info, 1, &missed);
	}
	h = iox_x_header_of(*payload);
	if (h->flags & FLAG_END) {
		iox_sub_release_chunk(ep->sub, *payload);
		ep->ended = true;
		/* A queue that overflowed lost packets: never silently.
		 * Asked once, at the end, to keep it off the hot path. */
		return iox_sub_has_lost_chunks(ep->sub) ? -EPROTO : 0;
	}
	return 1;
}

static ssize_t iox_x_recv(void *p, void *buf, size_t cap)
{
	struct iox_ep *ep = p;
	const void *payload;
	size_t len;
	int r;

	if (!ep || !ep->sub || (!buf && cap))
		return -EINVAL;
	if (ep->pending) {
		payload = ep->pending;
	} else {
		r = iox_x_next(ep, &payload);
		if (r <= 0)
			return r;
	}
	len = iox_x_header_of(payload)->len;
	if (len > cap) {
		ep->pending = payload;	/* kept for a larger buffer */
		return -EMSGSIZE;
	}
	ep->pending = NULL;
	memcpy(buf, payload, len);
	iox_sub_release_chunk(ep->sub, payload);
	ep->counters.packets++;
	return (ssize_t)len;
}

static ssize_t iox_x_take(void *p, const void **pkt)
{
	struct iox_ep *ep = p;
	const void *payload;
	int r;

	if (!ep || !ep->sub || !pkt)
		return -EINVAL;
	if (ep->n_held == HELD_MAX)
		return -EBUSY;
	if (ep->pending) {
		payload = ep->pending;
		ep->pending = NULL;
	} else {
		r = iox_x_next(ep, &payload);
		if (r <= 0)
			return r;
	}
	ep->held[ep->n_held++] = payload;
	ep->counters.packets++;
	*pkt = payload;
	return (ssize_t)iox_x_header_of(payload)->len;
}

static int iox_x_give_back(void *p)
{
	struct iox_ep *ep = p;

	if (!ep || !ep->sub)
		return -EINVAL;
	while (ep->n_held)
		iox_sub_release_chunk(ep->sub, ep->held[--ep->n_held]);
	return 0;
}

/* The end marker goes after every packet; the subscriber's queue keeps the
 * chunks when the publisher goes away. */
static void iox_x_close_producer(void *p, struct bench_counters *out)
{
	struct iox_ep *ep = p;
	void *buf;

	if (!ep)
		return;
	if (ep->loaned) {
		iox_pub_release_chunk(ep->pub, ep->loaned);
		ep->loaned = NULL;
	}
	if (iox_x_loan(ep, 0, &buf) == 0)
		iox_x_publish_flags(ep, 0, FLAG_END);
	if (out)
		*out = ep->counters;
	iox_pub_deinit(ep->pub);
	free(ep);
}

static void iox_x_close_consumer(void *p, struct bench_counters *out)
{
	struct iox_ep *ep = p;

	if (!ep)
		return;
	iox_x_give_back(ep);
	if (ep->pending)
		iox_sub_release_chunk(ep->sub, ep->pending);
	if (out)
		*out = ep->counters;
	iox_ws_detach_subscriber_state(ep->ws, ep->sub,
				       SubscriberState_HAS_DATA);
	iox_ws_deinit(ep->ws);
	iox_sub_deinit(ep->sub);
	free(ep);
}

static const struct bench_variant iox_variants[] = {
	{ "waitset", NULL, BENCH_WAIT_SLEEPS },
};

const struct bench_xproc_impl bench_xproc_iceoryx = {
	.name = "iceoryx",
	.variants = iox_variants,
	.n_variants = sizeof(iox_variants) / sizeof(iox_variants[0]),
	.counts_wakeups = false,
	.setup = iox_x_setup,
	.open_producer = iox_x_open_producer,
	.open_consumer = iox_x_open_consumer,
	.send = iox_x_send,
	.recv = iox_x_recv,
	.loan = iox_x_loan,
	.publish = iox_x_publish,
	.take = iox_x_take,
	.give_back = iox_x_give_back,
	.close_producer = iox_x_close_producer,
	.close_consumer = iox_x_close_consumer,
	.teardown = iox_x_teardown,
};
