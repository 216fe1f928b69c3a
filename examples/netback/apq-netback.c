/* SPDX-License-Identifier: MIT */
/*
 * apq-netback - one end of a point-to-point Ethernet link carried by apq.
 *
 *   namespace A                                         namespace B
 *   TAP --> [tx thread] ==== region 1 (front<-back) ==> [rx thread] --> TAP
 *   TAP <-- [rx thread] <=== region 0 (front->back) ==== [tx thread] <-- TAP
 *           apq-netback back                     apq-netback front
 *
 * Each process creates a TAP device in its own network namespace (start it
 * with `ip netns exec` or `nsenter`).  Its tx thread reads the frames the
 * kernel sends out of that device, several at a time, and hands them to the
 * ring toward the peer in one burst; its rx thread takes the peer's frames
 * from the other ring and writes them into the device, so the kernel
 * receives them.  One apq region per direction, one producer and one
 * consumer in each process.
 *
 * The two processes meet on a UNIX socket (--ctl): the back listens, the
 * front connects and shares the rings, as a Xen netfront grants its rings
 * and a netback maps them:
 *   futex       the front creates a memfd holding both regions and passes
 *               the descriptor (SCM_RIGHTS); each side maps it and makes
 *               its own futex notifier.
 *   xen         the front binds two unbound event channels and grants two
 *               regions to --domid; it sends the ports and grant
 *               references, and the back binds and maps them.
 *   socketpair  no apq at all: the front makes an AF_UNIX SOCK_SEQPACKET
 *               socketpair and passes one end; frames go one per send().
 *               This is the relay most people would write first, kept to
 *               be measured against on the same traffic.
 * The connection then stays open: when the peer process ends, however it
 * ends, the kernel closes its end, and this side reports the peer gone and
 * exits at once.  (The library sees it too, through the rings: a consumer
 * gets -EPIPE once it has drained what the dead peer published.)
 *
 * Between Xen domains there is no UNIX socket to meet on: with --xenstore
 * the front publishes the ports and grant references under its own
 * xenstore home, in data/apq-netback/, as a netfront publishes its rings;
 * the back, in dom0 or a driver domain, reads them there (--domid: the
 * front's domain) and answers in the same directory.  The peer's end is
 * then the rings' -EPIPE alone: an unmap notification for a process that
 * died, a port Xen turned back to unbound for a domain destroyed.
 *
 * With offloads (the default) both TAP devices carry a virtio-net header
 * (IFF_VNET_HDR) and accept checksum and TCP segmentation offload
 * (TUNSETOFFLOAD), so a 64 KiB TCP segment crosses the ring as one frame
 * instead of 45; the header travels with the frame and the receiving kernel
 * finishes the job.  --no-offload carries plain Ethernet frames.
 *
 * Counters go to --stats FILE (key=value lines, replaced atomically) once
 * the link is up, whenever the process gets SIGUSR1, and at exit.  SIGTERM
 * or SIGINT stop it.  Exit status: 0 when asked to stop, 3 when the peer
 * went away, 1 on an error, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <apq/apq.h>
#ifdef APQ_NETBACK_XEN
#include <apq/xen.h>
#include <xenstore.h>
#endif

#define NS_PER_MS	INT64_C(1000000)
#define NS_PER_SEC	INT64_C(1000000000)

/* The largest frame a TAP device hands out: a 64 KiB GSO segment plus its
 * Ethernet (and VLAN) header and the virtio-net header. */
#define FRAME_MAX	(65535 + 18 + sizeof(struct virtio_net_hdr))
/* Frames read from the TAP device before one burst send. */
#define BURST		32
/* How often a thread blocked in apq looks at the stop flag.  Each such
 * wait that times out counts as a sleep in the consumer's counters. */
#define POLL_NS		(250 * NS_PER_MS)
/* Default ring per direction: room for 16 full-size GSO segments. */
#define RING_DEFAULT	(1u << 20)
#define RING_LIMIT	(1u << 28)
#define CONNECT_WAIT_S	10

#define HELLO_MAGIC	UINT32_C(0x4e515041)	/* "APQN" */
#define HELLO_VERSION	UINT32_C(1)
#define XEN_REFS_MAX	4096u			/* per region */

enum side_role { ROLE_BACK, ROLE_FRONT };
enum backend { BACKEND_FUTEX, BACKEND_XEN, BACKEND_SOCKETPAIR };

static const char *const backend_names[] = { "futex", "xen", "socketpair" };

struct options {
	enum side_role role;
	enum backend backend;
	const char *ctl;
	const char *tap;
	const char *stats;
	const char *policy_name;
	struct apq_config cfg;
	size_t ring_bytes;
	bool offload;
	bool xenstore;	/* meet in xenstore, not on --ctl */
	uint32_t domid;
};

/* What the front sends first: the rings and how to reach them. */
struct hello {
	uint32_t magic;
	uint32_t version;
	uint32_t backend;
	uint32_t offload;
	uint64_t ring_bytes;
	uint32_t ports[2];	/* xen: the front's unbound ports */
	uint32_t nrefs;		/* xen: grant references per region */
	uint32_t pad;
	uint32_t refs[];	/* xen: region 0's, then region 1's */
};

/* The back's answer: 0, or the negative errno that made it give up. */
struct hello_reply {
	uint32_t magic;
	int32_t status;
};

enum worker_state {
	W_RUNNING,
	W_STOPPED,	/* asked to stop */
	W_PEER_GONE,	/* the ring says the peer left */
	W_FAILED,
};

/* One thread of the link; counters written by it alone, read by main. */
struct worker {
	pthread_t thread;
	_Atomic pid_t tid;
	_Atomic uint64_t frames, bytes;
	_Atomic uint64_t tap_errors;	/* frames the TAP device refused */
	_Atomic uint64_t sleeps;	/* socketpair: recv() found nothing */
	_Atomic int state;		/* enum worker_state */
	int err;			/* W_FAILED: negative errno */
	const char *where;
};

struct link {
	const struct options *o;
	int tap;
	int ctl;		/* the connection to the peer */
	int sigfd;		/* signalfd: stop requests, SIGUSR1 */
	int stop_fd;		/* eventfd: main -> workers */
	int done_fd;		/* eventfd: a worker finished */
	atomic_bool stop;

	/* apq transports */
	struct apq_notifier *n[2];	/* futex: n[0] serves both */
	void *mem;			/* futex: the memfd mapping */
	size_t mem_bytes;
	void *region[2];		/* region 0: front -> back */
	size_t region_bytes;
#ifdef APQ_NETBACK_XEN
	struct apq_xen_region *x[2];
#endif
	struct apq_producer *prod;	/* NULL once detached */
	struct apq_consumer *cons;
	struct apq_stats prod_final;	/* the producer's, at detach */

	/* socketpair transport */
	int sock;

	/* The tx thread's burst; the socketpair rx thread's frame last. */
	unsigned char (*bufs)[FRAME_MAX];
	struct worker tx, rx;
	uint64_t stats_seq;
	const char *end_reason;
};

static const char *prog = "apq-netback";

static void say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

/* ---- options ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apq-netback back|front --ctl PATH [options]\n"
		"       apq-netback back|front --backend xen --xenstore --domid N\n"
		"                   [options]\n"
		"\n"
		"One end of an Ethernet link between two network namespaces:\n"
		"a TAP device here, frames to and from the peer process through\n"
		"two apq rings.  Start the back first, each in its namespace.\n"
		"\n"
		"  --ctl PATH        UNIX socket where the two meet (the back\n"
		"                    listens, the front connects)\n"
		"  --tap NAME        TAP device to create (default apq0)\n"
		"  --backend NAME    futex (default), xen, or socketpair (frames\n"
		"                    over an AF_UNIX socketpair, no apq: the\n"
		"                    baseline); the front's choice\n"
		"  --policy NAME     adaptive (default), spin-<N>us, spin-<N>ns,\n"
		"                    always (ALWAYS_NOTIFY), busy (BUSY_POLL)\n"
		"  --ring BYTES      ring per direction, a power of two (default\n"
		"                    %u); the front's choice\n"
		"  --no-offload      plain Ethernet frames: no virtio-net header,\n"
		"                    no TCP segmentation offload; the front's\n"
		"                    choice\n"
		"  --domid N         xen: the peer's domain (default 0)\n"
		"  --xenstore        xen: meet in xenstore instead of --ctl,\n"
		"                    between domains: the front publishes its\n"
		"                    rings in its home, data/apq-netback/\n"
		"  --stats FILE      write counters there (at start, on SIGUSR1,\n"
		"                    at exit)\n"
		"\n"
		"Exit status: 0 stopped by SIGTERM/SIGINT; 3 the peer went away;\n"
		"1 an error; 2 a usage error.\n",
		RING_DEFAULT);
}

/* "adaptive", "always", "busy", "spin-<N>us", "spin-<N>ns". */
static int parse_policy(const char *s, struct apq_config *cfg)
{
	unsigned long long v;
	char *end;

	memset(cfg, 0, sizeof(*cfg));
	if (strcmp(s, "adaptive") == 0) {
		cfg->policy = APQ_POLICY_ADAPTIVE;
	} else if (strcmp(s, "always") == 0) {
		cfg->policy = APQ_POLICY_ALWAYS_NOTIFY;
	} else if (strcmp(s, "busy") == 0) {
		cfg->policy = APQ_POLICY_BUSY_POLL;
	} else if (strncmp(s, "spin-", 5) == 0 && s[5] >= '0' && s[5] <= '9') {
		errno = 0;
		v = strtoull(s + 5, &end, 10);
		if (errno || (strcmp(end, "us") && strcmp(end, "ns")) ||
		    v > UINT64_C(10000000000))
			return -1;
		cfg->policy = APQ_POLICY_SPIN;
		cfg->spin_ns = strcmp(end, "us") == 0 ? v * 1000 : v;
	} else {
		return -1;
	}
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "ctl", required_argument, NULL, 'c' },
		{ "tap", required_argument, NULL, 't' },
		{ "backend", required_argument, NULL, 'b' },
		{ "policy", required_argument, NULL, 'p' },
		{ "ring", required_argument, NULL, 'r' },
		{ "no-offload", no_argument, NULL, 'O' },
		{ "domid", required_argument, NULL, 'd' },
		{ "xenstore", no_argument, NULL, 'x' },
		{ "stats", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	char *end;
	size_t i;
	int c;

	*o = (struct options){
		.tap = "apq0",
		.policy_name = "adaptive",
		.ring_bytes = RING_DEFAULT,
		.offload = true,
	};
	if (argc < 2) {
		usage(stderr);
		return -1;
	}
	if (strcmp(argv[1], "back") == 0) {
		o->role = ROLE_BACK;
	} else if (strcmp(argv[1], "front") == 0) {
		o->role = ROLE_FRONT;
	} else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		exit(0);
	} else {
		usage(stderr);
		return -1;
	}
	prog = o->role == ROLE_BACK ? "apq-netback back" : "apq-netback front";
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->ctl = optarg;
			break;
		case 't':
			o->tap = optarg;
			break;
		case 'b':
			for (i = 0; i < 3; i++)
				if (strcmp(optarg, backend_names[i]) == 0)
					break;
			if (i == 3) {
				say("unknown backend '%s' (futex, xen, socketpair)",
				    optarg);
				return -1;
			}
			o->backend = (enum backend)i;
			break;
		case 'p':
			if (parse_policy(optarg, &o->cfg)) {
				say("unknown policy '%s'", optarg);
				return -1;
			}
			o->policy_name = optarg;
			break;
		case 'r':
			errno = 0;
			v = strtoull(optarg, &end, 0);
			if (errno || *end || v < 4096 || v > RING_LIMIT ||
			    (v & (v - 1))) {
				say("--ring: a power of two from 4096 to %u",
				    RING_LIMIT);
				return -1;
			}
			o->ring_bytes = (size_t)v;
			break;
		case 'O':
			o->offload = false;
			break;
		case 'd':
			errno = 0;
			v = strtoull(optarg, &end, 0);
			if (errno || *end || v > 0x7fef) {
				say("--domid: a domain id");
				return -1;
			}
			o->domid = (uint32_t)v;
			break;
		case 's':
			o->stats = optarg;
			break;
		case 'x':
			o->xenstore = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		say("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (o->xenstore) {
		/* The back learns the backend from the front elsewhere;
		 * here only Xen's rings can be published. */
		if (o->role == ROLE_FRONT && o->backend != BACKEND_XEN) {
			say("--xenstore needs --backend xen");
			return -1;
		}
		o->backend = BACKEND_XEN;
		if (o->ctl) {
			say("--xenstore and --ctl: one place to meet");
			return -1;
		}
	} else if (!o->ctl) {
		say("--ctl PATH is required");
		return -1;
	} else if (strlen(o->ctl) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		say("--ctl: path too long");
		return -1;
	}
	if (strlen(o->tap) >= IFNAMSIZ) {
		say("--tap: at most %d characters", IFNAMSIZ - 1);
		return -1;
	}
#ifndef APQ_NETBACK_XEN
	if (o->backend == BACKEND_XEN) {
		say("built without the Xen backend");
		return -1;
	}
#endif
	return 0;
}

/* ---- the TAP device ---- */

static int tap_open(const struct options *o)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
	/* What the kernel may hand us, and what we then hand the peer's
	 * kernel: partial checksums and TCP segments of up to 64 KiB. */
	unsigned int offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 |
				TUN_F_TSO_ECN;
	int fd, flags;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		say("/dev/net/tun: %s", strerror(errno));
		return -1;
	}
	if (o->offload)
		ifr.ifr_flags |= IFF_VNET_HDR;
	memcpy(ifr.ifr_name, o->tap, strlen(o->tap) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		say("TUNSETIFF %s: %s", o->tap, strerror(errno));
		goto fail;
	}
	if (o->offload && ioctl(fd, TUNSETOFFLOAD, offloads) < 0) {
		say("TUNSETOFFLOAD: %s", strerror(errno));
		goto fail;
	}
	/* The tx thread reads until the queue is empty, then polls. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		say("O_NONBLOCK: %s", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Write one frame into the TAP device.  A frame the kernel refuses (a bad
 * virtio-net header from a misbehaving peer, the device down) is dropped
 * and counted, as a NIC drops a bad frame; it never stops the link.
 */
static void tap_put(struct link *l, struct worker *w, const void *frame,
		    size_t len)
{
	ssize_t r;

	do
		r = write(l->tap, frame, len);
	while (r < 0 && errno == EINTR);
	if (r == (ssize_t)len) {
		atomic_fetch_add_explicit(&w->frames, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->bytes, len, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&w->tap_errors, 1,
					  memory_order_relaxed);
	}
}

/*
 * Wait until the TAP device has frames, then read up to BURST of them.
 * @return how many (lengths in iov[i].iov_len), 0 if asked to stop, or a
 * negative errno.
 */
static int tap_get_burst(struct link *l, struct iovec *iov)
{
	struct pollfd pfd[2] = {
		{ .fd = l->tap, .events = POLLIN },
		{ .fd = l->stop_fd, .events = POLLIN },
	};
	int n = 0;

	while (n == 0) {
		if (atomic_load_explicit(&l->stop, memory_order_relaxed))
			return 0;
		/* Non-blocking: never EINTR. */
		while (n < BURST) {
			ssize_t r = read(l->tap, l->bufs[n], FRAME_MAX);

			if (r < 0 && errno == EAGAIN)
				break;
			if (r < 0)
				return -errno;
			iov[n].iov_base = l->bufs[n];
			iov[n++].iov_len = (size_t)r;
		}
		if (n == 0 && poll(pfd, 2, -1) < 0 && errno != EINTR)
			return -errno;
	}
	return n;
}

/* ---- workers ---- */

static void worker_end(struct link *l, struct worker *w, enum worker_state s,
		       int err, const char *where)
{
	uint64_t one = 1;

	w->err = err;
	w->where = where;
	atomic_store(&w->state, s);
	if (write(l->done_fd, &one, sizeof(one)) < 0)
		say("done eventfd: %s", strerror(errno));
}

static void worker_begin(struct worker *w)
{
	atomic_store(&w->tid, (pid_t)syscall(SYS_gettid));
}

/* TAP -> ring: read a burst, send it with one wakeup check. */
static void *apq_tx_main(void *arg)
{
	struct link *l = arg;
	struct worker *w = &l->tx;
	struct iovec iov[BURST];

	worker_begin(w);
	for (;;) {
		int n = tap_get_burst(l, iov), i = 0;

		if (n <= 0) {
			if (n == 0)
				worker_end(l, w, W_STOPPED, 0, NULL);
			else
				worker_end(l, w, W_FAILED, n, "TAP read");
			return NULL;
		}
		while (i < n) {
			int r = apq_send_burst(l->prod, iov + i,
					       (unsigned int)(n - i), POLL_NS);

			if (r > 0) {
				for (int k = i; k < i + r; k++)
					atomic_fetch_add_explicit(&w->bytes,
						iov[k].iov_len,
						memory_order_relaxed);
				atomic_fetch_add_explicit(&w->frames,
					(uint64_t)r, memory_order_relaxed);
				i += r;
			} else if (r == -ETIMEDOUT) {
				if (atomic_load_explicit(&l->stop,
							 memory_order_relaxed)) {
					worker_end(l, w, W_STOPPED, 0, NULL);
					return NULL;
				}
			} else if (r == -EPIPE) {
				worker_end(l, w, W_PEER_GONE, r, "apq_send_burst");
				return NULL;
			} else {
				worker_end(l, w, W_FAILED, r, "apq_send_burst");
				return NULL;
			}
		}
	}
}

/*
 * Ring -> TAP, zero copy: write each frame from the ring itself, and give
 * the space back every BURST frames or when the ring runs dry.  Blocking
 * only with nothing peeked, so the producer never waits on space we hold.
 */
static void *apq_rx_main(void *arg)
{
	struct link *l = arg;
	struct worker *w = &l->rx;
	unsigned int held = 0;
	enum worker_state end = W_RUNNING;
	const char *where = "apq_peek";
	ssize_t r = 0;

	worker_begin(w);
	while (end == W_RUNNING) {
		const void *frame;

		if (atomic_load_explicit(&l->stop, memory_order_relaxed)) {
			end = W_STOPPED;
			r = 0;
		} else {
			r = apq_peek(l->cons, &frame, held ? 0 : POLL_NS);
			if (r >= 0) {
				tap_put(l, w, frame, (size_t)r);
				if (++held < BURST)
					continue;
			} else if (r == -EPIPE) {
				end = W_PEER_GONE;	/* drained */
			} else if (r != -EAGAIN && r != -ETIMEDOUT &&
				   r != -EDEADLK) {
				/* -EDEADLK: the producer waits for the space
				 * we hold: release it, below. */
				end = W_FAILED;
			}
		}
		if (held) {
			int e = apq_release(l->cons);

			held = 0;
			if (e && end != W_FAILED) {
				end = W_FAILED;
				r = e;
				where = "apq_release";
			}
		}
	}
	worker_end(l, w, end, (int)r, end == W_STOPPED ? NULL : where);
	return NULL;
}

/* TAP -> socket: one send() per frame. */
static void *sock_tx_main(void *arg)
{
	struct link *l = arg;
	struct worker *w = &l->tx;
	struct iovec iov[BURST];

	worker_begin(w);
	for (;;) {
		int n = tap_get_burst(l, iov);

		if (n <= 0) {
			if (n == 0)
				worker_end(l, w, W_STOPPED, 0, NULL);
			else
				worker_end(l, w, W_FAILED, n, "TAP read");
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			ssize_t r;

			/* SO_SNDTIMEO bounds a send blocked on a full
			 * socket, so that a stop request is seen. */
			while ((r = send(l->sock, iov[i].iov_base,
					 iov[i].iov_len, MSG_NOSIGNAL)) < 0 &&
			       (errno == EINTR || errno == EAGAIN)) {
				if (atomic_load_explicit(&l->stop,
							 memory_order_relaxed)) {
					worker_end(l, w, W_STOPPED, 0, NULL);
					return NULL;
				}
			}
			if (r < 0) {
				worker_end(l, w, errno == EPIPE ||
					   errno == ECONNRESET ? W_PEER_GONE
					   : W_FAILED, -errno, "send");
				return NULL;
			}
			atomic_fetch_add_explicit(&w->frames, 1,
						  memory_order_relaxed);
			atomic_fetch_add_explicit(&w->bytes, iov[i].iov_len,
						  memory_order_relaxed);
		}
	}
}

/* Socket -> TAP.  A recv() that finds nothing counts a sleep: the sender's
 * next send() then has to wake this thread. */
static void *sock_rx_main(void *arg)
{
	struct link *l = arg;
	struct worker *w = &l->rx;
	unsigned char *buf = l->bufs[BURST];
	struct pollfd pfd[2] = {
		{ .fd = l->sock, .events = POLLIN },
		{ .fd = l->stop_fd, .events = POLLIN },
	};

	worker_begin(w);
	for (;;) {
		ssize_t r = recv(l->sock, buf, FRAME_MAX, MSG_DONTWAIT);

		if (r > 0) {
			tap_put(l, w, buf, (size_t)r);
			if (!atomic_load_explicit(&l->stop,
						  memory_order_relaxed))
				continue;
			worker_end(l, w, W_STOPPED, 0, NULL);
			return NULL;
		}
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			worker_end(l, w, W_PEER_GONE, -EPIPE, "recv");
			return NULL;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			worker_end(l, w, W_FAILED, -errno, "recv");
			return NULL;
		}
		if (atomic_load_explicit(&l->stop, memory_order_relaxed)) {
			worker_end(l, w, W_STOPPED, 0, NULL);
			return NULL;
		}
		atomic_fetch_add_explicit(&w->sleeps, 1, memory_order_relaxed);
		if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
			worker_end(l, w, W_FAILED, -errno, "poll");
			return NULL;
		}
	}
}

/* ---- the rendezvous ---- */

/* Send msg with up to one descriptor attached (fd < 0: none). */
static int ctl_send(int sock, const void *msg, size_t len, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == (ssize_t)len ? 0 : -EMSGSIZE;
}

static void stats_write(struct link *l, const char *state);

/*
 * Wait until fd is readable (fd < 0: just wait), at most timeout_ms (< 0:
 * no limit), answering SIGUSR1 meanwhile.  @return 1 readable; 0 timed
 * out; -EINTR asked to stop (SIGTERM, SIGINT, SIGHUP); another negative
 * errno.
 */
static int wait_readable(struct link *l, int fd, int timeout_ms)
{
	int64_t deadline = now_ns() + (int64_t)timeout_ms * NS_PER_MS;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = l->sigfd, .events = POLLIN },
			{ .fd = fd, .events = POLLIN },
		};
		int left = -1, r;

		if (timeout_ms >= 0) {
			int64_t ns = deadline - now_ns();

			if (ns <= 0)
				return 0;
			left = (int)((ns + NS_PER_MS - 1) / NS_PER_MS);
		}
		r = poll(pfd, fd >= 0 ? 2 : 1, left);
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r > 0 && pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(l->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo != SIGUSR1)
					return -EINTR;
				stats_write(l, "connecting");
			}
		}
		if (r > 0 && fd >= 0 && pfd[1].revents)
			return 1;
	}
}

/*
 * Receive one message of at most cap bytes, and the descriptor sent with it
 * (*fd = -1 if none).  Waits at most timeout_s.  @return its length; -EPIPE
 * if the peer closed; -ETIMEDOUT; -EMSGSIZE if it did not fit; -EINTR (see
 * wait_readable()); another negative errno.
 */
static ssize_t ctl_recv(struct link *l, void *msg, size_t cap, int *fd,
			int timeout_s)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = msg, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cm;
	ssize_t r;

	*fd = -1;
	r = wait_readable(l, l->ctl, timeout_s * 1000);
	if (r <= 0)
		return r ? r : -ETIMEDOUT;
	do
		r = recvmsg(l->ctl, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	if (r == 0)
		return -EPIPE;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		return -EMSGSIZE;
	}
	return r;
}

/* The back: wait for the front, however long it takes.  @return 0 with
 * l->ctl set; -EINTR (asked to stop); another negative errno. */
static int ctl_listen_accept(struct link *l)
{
	const char *path = l->o->ctl;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, r;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -errno;
	/* A socket file left by an earlier run that died would make bind()
	 * fail; nobody listens on it any more. */
	unlink(path);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0) {
		r = -errno;
		close(lfd);
		return r;
	}
	r = wait_readable(l, lfd, -1);
	if (r > 0) {
		l->ctl = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		r = l->ctl < 0 ? -errno : 0;
	}
	/* One peer per link: nobody else may connect. */
	unlink(path);
	close(lfd);
	return r;
}

/* The front: connect, waiting up to CONNECT_WAIT_S for the back to
 * listen.  @return as ctl_listen_accept(). */
static int ctl_connect(struct link *l)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ns() + CONNECT_WAIT_S * NS_PER_SEC;
	int r;

	memcpy(sa.sun_path, l->o->ctl, strlen(l->o->ctl) + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			l->ctl = fd;
			return 0;
		}
		r = -errno;
		close(fd);
		/* The back may not listen yet. */
		if ((r != -ENOENT && r != -ECONNREFUSED) || now_ns() > deadline)
			return r;
		r = wait_readable(l, -1, 50);
		if (r < 0)
			return r;
	}
}

/* The region of direction dir in the futex memfd: page-aligned slots. */
static size_t slot_bytes(size_t region_bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (region_bytes + page - 1) / page * page;
}

static int futex_map(struct link *l, int memfd, bool init)
{
	size_t slot = slot_bytes(l->region_bytes);
	struct stat st;
	int r, seals;

	l->mem_bytes = 2 * slot;
	/* A memfd the peer could shrink later would turn our accesses into
	 * SIGBUS: the front seals its size, the back insists on the seal
	 * before it maps, and then on the size. */
	if (init && (ftruncate(memfd, (off_t)l->mem_bytes) < 0 ||
		     fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
			   F_SEAL_SEAL) < 0))
		return -errno;
	seals = init ? 0 : fcntl(memfd, F_GET_SEALS);
	if (!init && (seals < 0 || !(seals & F_SEAL_SHRINK)))
		return -EPROTO;
	if (fstat(memfd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size < l->mem_bytes)
		return -EPROTO;
	l->mem = mmap(NULL, l->mem_bytes, PROT_READ | PROT_WRITE, MAP_SHARED,
		      memfd, 0);
	if (l->mem == MAP_FAILED) {
		l->mem = NULL;
		return -errno;
	}
	l->region[0] = l->mem;
	l->region[1] = (unsigned char *)l->mem + slot;
	if (init) {
		for (int d = 0; d < 2; d++) {
			r = apq_region_init(l->region[d], l->region_bytes,
					    l->o->ring_bytes);
			if (r)
				return r;
		}
	}
	return apq_notifier_futex(&l->n[0]);
}

#ifdef APQ_NETBACK_XEN
static int xen_front_share(struct link *l, struct hello *h)
{
	size_t nrefs = apq_xen_region_refs(l->o->ring_bytes);
	int r;

	if (nrefs == 0 || nrefs > XEN_REFS_MAX)
		return -EINVAL;
	h->nrefs = (uint32_t)nrefs;
	for (int d = 0; d < 2; d++) {
		r = apq_notifier_xen_unbound(&l->n[d], l->o->domid);
		if (r)
			return r;
		r = apq_xen_region_share(&l->x[d], l->o->domid,
					 l->o->ring_bytes, l->n[d],
					 h->refs + d * nrefs);
		if (r)
			return r;
		h->ports[d] = (uint32_t)apq_notifier_xen_port(l->n[d]);
		l->region[d] = apq_xen_region_mem(l->x[d]);
	}
	l->region_bytes = apq_xen_region_bytes(l->x[0]);
	return 0;
}

static int xen_back_map(struct link *l, const struct hello *h)
{
	int r;

	for (int d = 0; d < 2; d++) {
		r = apq_notifier_xen_interdomain(&l->n[d], l->o->domid,
						 h->ports[d]);
		if (r)
			return r;
		r = apq_xen_region_map(&l->x[d], l->o->domid, h->ring_bytes,
				       h->refs + d * h->nrefs, l->n[d]);
		if (r)
			return r;
		l->region[d] = apq_xen_region_mem(l->x[d]);
	}
	l->region_bytes = apq_xen_region_bytes(l->x[0]);
	return 0;
}
static size_t hello_size(uint32_t nrefs)
{
	return sizeof(struct hello) + 2 * (size_t)nrefs * sizeof(uint32_t);
}

/* ---- meeting in xenstore (--xenstore) ---- */

/* The front's directory, relative to its home (which a guest may write). */
#define XS_DIR		"data/apq-netback"
/* Xenstore's largest value (XENSTORE_PAYLOAD_MAX). */
#define XS_VALUE_MAX	4096
/* How often a side looks for the other's keys.  Xenstore has watches, but
 * a statically linked libxenstore cannot deliver them (it has no thread),
 * and a guest's copy is static. */
#define XS_POLL_MS	20

/* Where key lives: the front's own (relative) path, or the back's view
 * of it. */
static void xs_path(const struct link *l, const char *key, char *buf,
		    size_t cap)
{
	if (l->o->role == ROLE_FRONT)
		snprintf(buf, cap, XS_DIR "/%s", key);
	else
		snprintf(buf, cap, "/local/domain/%" PRIu32 "/" XS_DIR "/%s",
			 l->o->domid, key);
}

static bool xs_put(struct xs_handle *xs, xs_transaction_t t,
		   const struct link *l, const char *key, const char *val)
{
	char path[128];

	xs_path(l, key, path, sizeof(path));
	return xs_write(xs, t, path, val, (unsigned int)strlen(val));
}

/* The value of key, NUL-terminated (free() it), or NULL. */
static char *xs_get(struct xs_handle *xs, const struct link *l,
		    const char *key)
{
	char path[128];
	unsigned int len;

	xs_path(l, key, path, sizeof(path));
	return xs_read(xs, XBT_NULL, path, &len);
}

/* refs as decimal numbers separated by blanks.  @return 0, or -E2BIG
 * when they do not fit in one xenstore value. */
static int xs_refs_text(char *buf, const uint32_t *refs, uint32_t n)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < n; i++) {
		int w = snprintf(buf + used, XS_VALUE_MAX - used, "%s%" PRIu32,
				 i ? " " : "", refs[i]);

		if (w < 0 || (size_t)w >= XS_VALUE_MAX - used)
			return -E2BIG;
		used += (size_t)w;
	}
	return 0;
}

/* One decimal number of at most max, the whole string.  The back reads
 * what a guest wrote: nothing else is taken. */
static int xs_number(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EPROTO;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EPROTO;
	*out = v;
	return 0;
}

/* The front: publish h, all keys in one transaction, "state" last. */
static int xs_publish(struct xs_handle *xs, const struct link *l,
		      const struct hello *h)
{
	char refs[2][XS_VALUE_MAX], num[32];
	xs_transaction_t t;
	bool ok;
	int r;

	for (int d = 0; d < 2; d++) {
		r = xs_refs_text(refs[d], h->refs + d * h->nrefs, h->nrefs);
		if (r)
			return r;
	}
	for (;;) {
		t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			return -errno;
		/* What an earlier run left, the back's old answer with it. */
		ok = xs_rm(xs, t, XS_DIR) || errno == ENOENT;
		snprintf(num, sizeof(num), "%" PRIu64, h->ring_bytes);
		ok = ok && xs_put(xs, t, l, "ring-bytes", num);
		ok = ok && xs_put(xs, t, l, "offload", h->offload ? "1" : "0");
		for (int d = 0; d < 2 && ok; d++) {
			char key[24];

			snprintf(key, sizeof(key), "event-channel-%d", d);
			snprintf(num, sizeof(num), "%" PRIu32, h->ports[d]);
			ok = xs_put(xs, t, l, key, num);
			snprintf(key, sizeof(key), "ring-ref-%d", d);
			ok = ok && xs_put(xs, t, l, key, refs[d]);
		}
		ok = ok && xs_put(xs, t, l, "state", "ready");
		if (!ok) {
			r = -errno;
			xs_transaction_end(xs, t, true);
			return r;
		}
		if (xs_transaction_end(xs, t, false))
			return 0;
		if (errno != EAGAIN)	/* EAGAIN: a conflict, try again */
			return -errno;
	}
}

/* The back: h from the front's keys, once its state says ready.  @return
 * the hello's length as the socket would give it (hello_check() then
 * checks it like any other), or a negative errno. */
static ssize_t xs_take(struct xs_handle *xs, struct link *l, struct hello *h)
{
	char *state, *val;
	uint64_t v;
	uint32_t n[2] = { 0, 0 };
	int r;

	for (;;) {
		state = xs_get(xs, l, "state");
		if (state && strcmp(state, "ready") == 0)
			break;
		free(state);
		r = wait_readable(l, -1, XS_POLL_MS);
		if (r < 0)
			return r;
	}
	free(state);
	*h = (struct hello){ .magic = HELLO_MAGIC, .version = HELLO_VERSION,
			     .backend = BACKEND_XEN };
	val = xs_get(xs, l, "ring-bytes");
	r = xs_number(val, RING_LIMIT, &v);
	free(val);
	h->ring_bytes = v;
	val = xs_get(xs, l, "offload");
	if (!r)
		r = xs_number(val, 1, &v);
	free(val);
	h->offload = (uint32_t)v;
	for (int d = 0; d < 2 && !r; d++) {
		char key[24], *p, *end;

		snprintf(key, sizeof(key), "event-channel-%d", d);
		val = xs_get(xs, l, key);
		r = xs_number(val, UINT32_MAX, &v);
		free(val);
		h->ports[d] = (uint32_t)v;
		snprintf(key, sizeof(key), "ring-ref-%d", d);
		val = xs_get(xs, l, key);
		if (!val)
			r = -EPROTO;
		/* Region 1's refs follow region 0's: as many, or the
		 * hello is refused below. */
		for (p = val; !r && p && *p; p = end) {
			unsigned long long ref;

			errno = 0;
			ref = strtoull(p, &end, 10);
			if (errno || end == p || ref > UINT32_MAX ||
			    (*end && *end != ' ') ||
			    n[0] + n[1] >= 2 * XEN_REFS_MAX)
				r = -EPROTO;
			else
				h->refs[n[0] + n[1]] = (uint32_t)ref;
			n[d] += !r;
			end += *end == ' ';
		}
		free(val);
	}
	if (r)
		return r;
	if (n[0] != n[1])
		return -EPROTO;
	h->nrefs = n[0];
	return (ssize_t)hello_size(h->nrefs);
}

/* The back's answer, and the front's wait for it.  Its value is checked
 * like any other that the peer wrote. */
static int xs_answer(struct xs_handle *xs, const struct link *l, int status)
{
	char num[16];

	snprintf(num, sizeof(num), "%d", status);
	return xs_put(xs, XBT_NULL, l, "back-status", num) ? 0 : -errno;
}

static int xs_await_answer(struct xs_handle *xs, struct link *l)
{
	int64_t deadline = now_ns() + CONNECT_WAIT_S * NS_PER_SEC;
	char *val;
	int r;

	for (;;) {
		val = xs_get(xs, l, "back-status");
		if (val) {
			char *end;
			long status = strtol(val, &end, 10);

			/* An empty value is no answer: refused, not taken
			 * for 0. */
			r = end == val || *end || status > 0 || status < -4095
				? -EPROTO : (int)status;
			free(val);
			return r;
		}
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		r = wait_readable(l, -1, XS_POLL_MS);
		if (r < 0)
			return r;
	}
}

/* The front's side of the meeting: publish, then wait for the answer. */
static int xs_front(struct link *l, const struct hello *h)
{
	struct xs_handle *xs = xs_open(0);
	int r;

	if (!xs) {
		r = -errno;
		say("opening xenstore: %s", strerror(-r));
		return r;
	}
	r = xs_publish(xs, l, h);
	if (r) {
		say("publishing the rings in xenstore: %s", strerror(-r));
	} else {
		r = xs_await_answer(xs, l);
		if (r && r != -EINTR)
			say("the back's answer in xenstore: %s", strerror(-r));
	}
	xs_close(xs);
	return r;
}

#endif

/* Attach our producer and consumer: the front produces into region 0. */
static int apq_attach(struct link *l)
{
	int out = l->o->role == ROLE_FRONT ? 0 : 1;
	struct apq_notifier *nout = l->n[1] ? l->n[out] : l->n[0];
	struct apq_notifier *nin = l->n[1] ? l->n[1 - out] : l->n[0];
	int r;

	r = apq_producer_attach(&l->prod, l->region[out], l->region_bytes,
				nout, &l->o->cfg);
	if (r)
		return r;
	return apq_consumer_attach(&l->cons, l->region[1 - out],
				   l->region_bytes, nin, &l->o->cfg);
}

/* The front: make the rings, hand them over, wait for the back's yes. */
static int front_connect(struct link *l)
{
	const struct options *o = l->o;
	struct hello_reply reply;
	struct hello *h;
	int fd = -1, pair[2] = { -1, -1 }, got_fd, r;
	ssize_t n;

	h = calloc(1, hello_size(XEN_REFS_MAX));
	if (!h)
		return -ENOMEM;
	*h = (struct hello){
		.magic = HELLO_MAGIC,
		.version = HELLO_VERSION,
		.backend = o->backend,
		.offload = o->offload,
		.ring_bytes = o->ring_bytes,
	};
	l->region_bytes = apq_region_size(o->ring_bytes);
	switch (o->backend) {
	case BACKEND_FUTEX:
		fd = memfd_create("apq-netback",
				  MFD_CLOEXEC | MFD_ALLOW_SEALING);
		r = fd < 0 ? -errno : futex_map(l, fd, true);
		break;
	case BACKEND_XEN:
#ifdef APQ_NETBACK_XEN
		r = xen_front_share(l, h);
#else
		r = -ENOTSUP;
#endif
		break;
	default:
		r = socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair)
			? -errno : 0;
		l->sock = pair[0];
		fd = pair[1];
		break;
	}
	if (r) {
		say("setting up the %s rings: %s", backend_names[o->backend],
		    strerror(-r));
		goto out;
	}
	if (o->backend != BACKEND_SOCKETPAIR) {
		r = apq_attach(l);
		if (r) {
			say("attach: %s", strerror(-r));
			goto out;
		}
	}
#ifdef APQ_NETBACK_XEN
	if (o->xenstore) {
		r = xs_front(l, h);
		goto out;
	}
#endif
	r = ctl_connect(l);
	if (r) {
		if (r != -EINTR)
			say("connecting to %s: %s", o->ctl, strerror(-r));
		goto out;
	}
	r = ctl_send(l->ctl, h, hello_size(h->nrefs), fd);
	if (r) {
		say("sending the rings: %s", strerror(-r));
		goto out;
	}
	n = ctl_recv(l, &reply, sizeof(reply), &got_fd, CONNECT_WAIT_S);
	if (got_fd >= 0)
		close(got_fd);
	if (n == -EINTR) {
		r = -EINTR;
	} else if (n != (ssize_t)sizeof(reply) || reply.magic != HELLO_MAGIC) {
		say("the back did not answer (%s)",
		    n < 0 ? strerror((int)-n) : "bad reply");
		r = -EPROTO;
	} else if (reply.status) {
		say("the back refused the rings: %s", strerror(-reply.status));
		r = reply.status;
	}
out:
	/* The peer holds its own reference now; ours is the mapping. */
	if (fd >= 0)
		close(fd);
	free(h);
	return r;
}

/* Check what the front sent before using any of it. */
static int hello_check(const struct hello *h, ssize_t len, int fd)
{
	if (len < (ssize_t)sizeof(*h) || h->magic != HELLO_MAGIC ||
	    h->version != HELLO_VERSION)
		return -EPROTO;
	if (h->backend > BACKEND_SOCKETPAIR || h->offload > 1 ||
	    h->ring_bytes > RING_LIMIT || !apq_region_size(h->ring_bytes))
		return -EPROTO;
	if (h->backend == BACKEND_XEN) {
#ifdef APQ_NETBACK_XEN
		if (h->nrefs != apq_xen_region_refs(h->ring_bytes) ||
		    len != (ssize_t)hello_size(h->nrefs))
			return -EPROTO;
#else
		return -ENOTSUP;
#endif
	} else if (len != (ssize_t)sizeof(*h) || fd < 0) {
		return -EPROTO;
	}
	return 0;
}

/* The back: take the front's rings, map them, attach, answer. */
static int back_accept(struct link *l)
{
	struct options *o = (struct options *)l->o;
	struct hello_reply reply = { .magic = HELLO_MAGIC };
	struct hello *h;
	ssize_t n;
	int fd, r;
#ifdef APQ_NETBACK_XEN
	struct xs_handle *xs = NULL;
#endif

	h = calloc(1, hello_size(XEN_REFS_MAX));
	if (!h)
		return -ENOMEM;
#ifdef APQ_NETBACK_XEN
	if (o->xenstore) {
		fd = -1;
		xs = xs_open(0);
		n = xs ? xs_take(xs, l, h) : -errno;
		if (!xs)
			say("opening xenstore: %s", strerror(errno));
	} else
#endif
	{
		r = ctl_listen_accept(l);
		if (r) {
			if (r != -EINTR)
				say("waiting on %s: %s", o->ctl, strerror(-r));
			free(h);
			return r;
		}
		n = ctl_recv(l, h, hello_size(XEN_REFS_MAX), &fd,
			     CONNECT_WAIT_S);
	}
	r = n < 0 ? (int)n : hello_check(h, n, fd);
	if (r == 0) {
		/* The front decides what it shares, and how frames look. */
		o->backend = (enum backend)h->backend;
		o->ring_bytes = h->ring_bytes;
		o->offload = h->offload;
		l->region_bytes = apq_region_size(h->ring_bytes);
		l->tap = tap_open(o);
		if (l->tap < 0)
			r = -ENODEV;
	}
	if (r == 0) {
		switch (o->backend) {
		case BACKEND_FUTEX:
			r = futex_map(l, fd, false);
			break;
		case BACKEND_XEN:
#ifdef APQ_NETBACK_XEN
			r = xen_back_map(l, h);
#endif
			break;
		default:
			l->sock = fd;
			fd = -1;
			break;
		}
		if (r == 0 && o->backend != BACKEND_SOCKETPAIR)
			r = apq_attach(l);
	}
	if (fd >= 0)
		close(fd);
	if (r && r != -EINTR)
		say("the front's rings: %s", strerror(-r));
	reply.status = r;
#ifdef APQ_NETBACK_XEN
	if (o->xenstore) {
		if (xs && n >= 0 && xs_answer(xs, l, r))
			say("answering the front in xenstore: %s",
			    strerror(errno));
		xs_close(xs);
	} else
#endif
	if (n >= 0 && ctl_send(l->ctl, &reply, sizeof(reply), -1))
		say("answering the front: %s", strerror(errno));
	free(h);
	return r;
}

/* ---- counters ---- */

static uint64_t load(_Atomic uint64_t *x)
{
	return atomic_load_explicit(x, memory_order_relaxed);
}

/* Voluntary context switches of one of our threads: its sleeps. */
static uint64_t thread_sleeps(pid_t tid)
{
	char path[64], line[128];
	unsigned long long v = 0;
	FILE *f;

	if (tid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1)
			break;
	fclose(f);
	return v;
}

static void put_stats(FILE *f, const char *prefix, const struct apq_stats *s)
{
	fprintf(f, "%swakeups_sent=%" PRIu64 "\n%swakeups_skipped=%" PRIu64
		"\n%ssleeps=%" PRIu64 "\n%sspurious_wakeups=%" PRIu64
		"\n%srescues=%" PRIu64 "\n",
		prefix, s->wakeups_sent, prefix, s->wakeups_skipped, prefix,
		s->sleeps, prefix, s->spurious_wakeups, prefix, s->rescues);
}

/*
 * Write the counters to o->stats, replacing the file in one rename: a
 * reader sees the old file or the new one.  tx_* are the frames this side
 * sent toward the peer, rx_* the ones it received; tx_ and rx_wakeups_*
 * are the apq endpoints' own counters (the producer's wakeups of the
 * peer's consumer, the consumer's of the peer's producer waiting for
 * space).  *_thread_sleeps count each thread's voluntary context switches.
 */
static void stats_write(struct link *l, const char *state)
{
	const struct options *o = l->o;
	struct apq_stats ps = { 0 }, cs = { 0 };
	struct rusage ru;
	char tmp[PATH_MAX];
	FILE *f;

	if (!o->stats)
		return;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", o->stats) >= (int)sizeof(tmp))
		return;
	f = fopen(tmp, "w");
	if (!f) {
		say("%s: %s", tmp, strerror(errno));
		return;
	}
	if (l->prod)
		apq_producer_stats(l->prod, &ps);
	else
		ps = l->prod_final;
	if (l->cons)
		apq_consumer_stats(l->cons, &cs);
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "seq=%" PRIu64 "\nside=%s\npid=%d\nstate=%s\nreason=%s\n"
		"backend=%s\npolicy=%s\noffload=%d\nring_bytes=%zu\ntap=%s\n",
		++l->stats_seq, o->role == ROLE_BACK ? "back" : "front",
		(int)getpid(), state, l->end_reason ? l->end_reason : "-",
		backend_names[o->backend],
		o->backend == BACKEND_SOCKETPAIR ? "-" : o->policy_name,
		o->offload, o->ring_bytes, o->tap);
	fprintf(f, "cpu_ns=%" PRId64 "\n",
		((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_SEC +
		((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000);
	fprintf(f, "tx_frames=%" PRIu64 "\ntx_bytes=%" PRIu64 "\n",
		load(&l->tx.frames), load(&l->tx.bytes));
	put_stats(f, "tx_", &ps);
	fprintf(f, "tx_thread_sleeps=%" PRIu64 "\n",
		thread_sleeps(atomic_load(&l->tx.tid)));
	fprintf(f, "rx_frames=%" PRIu64 "\nrx_bytes=%" PRIu64
		"\nrx_tap_errors=%" PRIu64 "\n",
		load(&l->rx.frames), load(&l->rx.bytes),
		load(&l->rx.tap_errors));
	put_stats(f, "rx_", &cs);
	if (o->backend == BACKEND_SOCKETPAIR)
		fprintf(f, "rx_recv_sleeps=%" PRIu64 "\n", load(&l->rx.sleeps));
	fprintf(f, "rx_thread_sleeps=%" PRIu64 "\n",
		thread_sleeps(atomic_load(&l->rx.tid)));
	if (fclose(f) || rename(tmp, o->stats))
		say("%s: %s", o->stats, strerror(errno));
}

/* ---- main ---- */

static void link_free(struct link *l)
{
	apq_producer_detach(l->prod);
	apq_consumer_detach(l->cons);
#ifdef APQ_NETBACK_XEN
	for (int d = 0; d < 2; d++)
		apq_xen_region_free(l->x[d]);
#endif
	if (l->mem)
		munmap(l->mem, l->mem_bytes);
	for (int d = 0; d < 2; d++)
		apq_notifier_free(l->n[d]);
	if (l->sock >= 0)
		close(l->sock);
	if (l->ctl >= 0)
		close(l->ctl);
	if (l->tap >= 0)
		close(l->tap);
	free(l->bufs);
}

static const char *worker_reason(const struct worker *w, const char *name,
				 char *buf, size_t cap)
{
	switch (atomic_load(&w->state)) {
	case W_PEER_GONE:
		snprintf(buf, cap, "peer-gone (%s: %s)", w->where,
			 strerror(-w->err));
		return buf;
	case W_FAILED:
		snprintf(buf, cap, "error (%s %s: %s)", name, w->where,
			 strerror(-w->err));
		return buf;
	default:
		return NULL;
	}
}

/*
 * Wait for a stop request, the peer's end, or a worker's; write the
 * counters on SIGUSR1 meanwhile.  @return the exit status.
 */
static int link_run(struct link *l)
{
	static char reason[160];
	struct pollfd pfd[3] = {
		{ .fd = l->sigfd, .events = POLLIN },
		{ .fd = l->ctl, .events = POLLIN },
		{ .fd = l->done_fd, .events = POLLIN },
	};
	int status = -1;

	stats_write(l, "running");
	say("link up (%s, %s%s)", backend_names[l->o->backend],
	    l->o->backend == BACKEND_SOCKETPAIR ? "no apq" : l->o->policy_name,
	    l->o->offload ? ", offloads" : "");
	while (status < 0) {
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			say("poll: %s", strerror(errno));
			l->end_reason = "error (poll)";
			status = 1;
			break;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			if (read(l->sigfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGUSR1) {
					stats_write(l, "running");
				} else {
					l->end_reason = "stopped";
					status = 0;
				}
			}
		}
		if (status < 0 && pfd[1].revents) {
			char c;
			ssize_t r = recv(l->ctl, &c, 1, MSG_DONTWAIT);

			/* The peer sends nothing after the hello: anything
			 * readable is its end. */
			if (r >= 0 || (errno != EAGAIN && errno != EINTR)) {
				l->end_reason = "peer-gone (control socket "
						"closed)";
				status = 3;
			}
		}
		if (status < 0 && pfd[2].revents) {
			const char *why = worker_reason(&l->rx, "rx", reason,
							sizeof(reason));

			if (!why)
				why = worker_reason(&l->tx, "tx", reason,
						    sizeof(reason));
			if (why) {
				l->end_reason = why;
				status = strncmp(why, "peer-gone", 9) ? 1 : 3;
			} else {
				uint64_t v;

				if (read(l->done_fd, &v, sizeof(v)) < 0)
					say("done eventfd: %s", strerror(errno));
			}
		}
	}
	return status;
}

int main(int argc, char **argv)
{
	struct options o;
	struct link l = { .o = &o, .tap = -1, .ctl = -1, .sock = -1 };
	void *(*tx_main)(void *), *(*rx_main)(void *);
	uint64_t one = 1;
	sigset_t sigs;
	int status, r;

	if (parse_options(argc, argv, &o))
		return 2;
	/* Signals go to the main thread's signalfd only; the workers never
	 * see one, so their syscalls are not cut short. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) ||
	    (l.sigfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		say("signalfd: %s", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	l.stop_fd = eventfd(0, EFD_CLOEXEC);
	l.done_fd = eventfd(0, EFD_CLOEXEC);
	if (l.stop_fd < 0 || l.done_fd < 0) {
		say("eventfd: %s", strerror(errno));
		return 1;
	}
	l.bufs = malloc((BURST + 1) * sizeof(*l.bufs));
	if (!l.bufs) {
		say("out of memory");
		return 1;
	}
	if (o.role == ROLE_FRONT) {
		l.tap = tap_open(&o);
		r = l.tap < 0 ? -ENODEV : front_connect(&l);
	} else {
		r = back_accept(&l);
	}
	if (r) {
		l.end_reason = r == -EINTR ? "stopped" : "error (setup)";
		stats_write(&l, "exited");
		link_free(&l);
		return r == -EINTR ? 0 : 1;
	}
	if (o.backend == BACKEND_SOCKETPAIR) {
		/* Bound a send() blocked on a full socket, so that a stop
		 * request is seen (the tx thread re-checks). */
		struct timeval tv = { 0, POLL_NS / 1000 };

		setsockopt(l.sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		tx_main = sock_tx_main;
		rx_main = sock_rx_main;
	} else {
		tx_main = apq_tx_main;
		rx_main = apq_rx_main;
	}
	if (pthread_create(&l.tx.thread, NULL, tx_main, &l) ||
	    pthread_create(&l.rx.thread, NULL, rx_main, &l)) {
		say("pthread_create failed");
		return 1;
	}
	status = link_run(&l);

	atomic_store(&l.stop, true);
	if (write(l.stop_fd, &one, sizeof(one)) < 0)
		say("stop eventfd: %s", strerror(errno));
	/* Detach the producer as soon as its thread is done: the peer's
	 * consumer then drains and sees -EPIPE at once, instead of when our
	 * rx thread's next wait times out. */
	pthread_join(l.tx.thread, NULL);
	if (l.prod) {
		apq_producer_stats(l.prod, &l.prod_final);
		apq_producer_detach(l.prod);
		l.prod = NULL;
	}
	pthread_join(l.rx.thread, NULL);
	stats_write(&l, "exited");
	say("%s", l.end_reason);
	link_free(&l);
	return status;
}
