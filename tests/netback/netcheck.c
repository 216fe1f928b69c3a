/* SPDX-License-Identifier: MIT */
/*
 * netcheck - traffic for the netback tests, with exact verdicts.
 *
 *   netcheck ping-sweep ADDR FIRST LAST
 *       One ICMP echo request of every payload size from FIRST to LAST
 *       bytes, up to WINDOW in flight.  Every reply must come back within
 *       TIMEOUT_MS, with the size and the bytes sent.  Prints a summary;
 *       exit 1 on any loss or damage.
 *   netcheck bulk-recv PORT FILE
 *       Accept one TCP connection on PORT and write what arrives to FILE.
 *   netcheck bulk-send ADDR PORT FILE
 *       Connect to ADDR:PORT and send FILE, then wait for the receiver to
 *       close.
 *
 * Each mode gives up after LIMIT_S seconds, so a broken link fails a test
 * instead of hanging it.  Statically linkable: the Xen tests run it in a
 * dom0 that has busybox and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WINDOW		16
#define TIMEOUT_MS	3000
#define LIMIT_S		120
#define CONNECT_RETRY_MS	5000
#define PAYLOAD_MAX	65507
#define NS_PER_MS	INT64_C(1000000)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}

static int fail(const char *what)
{
	fprintf(stderr, "netcheck: %s: %s\n", what, strerror(errno));
	return 1;
}

static uint16_t inet_sum(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t sum = 0;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/* The payload of the request with sequence number seq. */
static void fill(unsigned char *p, size_t len, uint16_t seq)
{
	uint32_t x = seq * UINT32_C(2654435761) + 1;

	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245 + 12345;
		p[i] = (unsigned char)(x >> 16);
	}
}

static int ping_sweep(const char *addr, long first, long last)
{
	static unsigned char out[sizeof(struct icmphdr) + PAYLOAD_MAX];
	static unsigned char in[IP_MAXPACKET], want[PAYLOAD_MAX];
	struct sockaddr_in to = { .sin_family = AF_INET };
	uint16_t id = (uint16_t)getpid();
	long total = last - first + 1, next = first, done = 0;
	long lost = 0, bad = 0, inflight = 0;
	int64_t sent_at[WINDOW] = { 0 }, t0 = now_ms();
	long slot_size[WINDOW];
	bool busy[WINDOW] = { false };
	int fd, rcvbuf = 4 << 20;

	if (first < 0 || last > PAYLOAD_MAX || first > last || total > 65536) {
		fprintf(stderr, "netcheck: sizes from 0 to %d, at most 65536 "
			"of them\n", PAYLOAD_MAX);
		return 2;
	}
	if (inet_pton(AF_INET, addr, &to.sin_addr) != 1) {
		fprintf(stderr, "netcheck: bad address %s\n", addr);
		return 2;
	}
	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
	if (fd < 0)
		return fail("raw ICMP socket (needs root)");
	/* Room for a whole window of the largest replies, should this
	 * process be slow to read (under emulation, say): a full socket
	 * buffer would drop replies and fake a loss on the link. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		       sizeof(rcvbuf)) < 0 &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		return fail("SO_RCVBUF");

	while (done < total) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t t = now_ms();

		/* Fill the window: slot = seq % WINDOW. */
		while (inflight < WINDOW && next <= last) {
			uint16_t seq = (uint16_t)(next - first);
			struct icmphdr *h = (struct icmphdr *)out;
			size_t len = sizeof(*h) + (size_t)next;
			int slot = seq % WINDOW;

			if (busy[slot])
				break;
			memset(h, 0, sizeof(*h));
			h->type = ICMP_ECHO;
			h->un.echo.id = htons(id);
			h->un.echo.sequence = htons(seq);
			fill(out + sizeof(*h), (size_t)next, seq);
			h->checksum = inet_sum(out, len);
			if (sendto(fd, out, len, 0, (struct sockaddr *)&to,
				   sizeof(to)) != (ssize_t)len)
				return fail("sendto");
			busy[slot] = true;
			sent_at[slot] = t;
			slot_size[slot] = next;
			inflight++;
			next++;
		}
		/* Expire what waited too long. */
		for (int s = 0; s < WINDOW; s++) {
			if (busy[s] && t - sent_at[s] > TIMEOUT_MS) {
				fprintf(stderr, "netcheck: no reply to the "
					"%ld-byte ping\n", slot_size[s]);
				busy[s] = false;
				inflight--;
				lost++;
				done++;
			}
		}
		if (t - t0 > LIMIT_S * 1000) {
			fprintf(stderr, "netcheck: sweep took over %d s\n",
				LIMIT_S);
			return 1;
		}
		if (done >= total)
			break;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		for (;;) {
			ssize_t n = recv(fd, in, sizeof(in), MSG_DONTWAIT);
			const struct iphdr *ip = (const struct iphdr *)in;
			const struct icmphdr *h;
			size_t hl, plen;
			uint16_t seq;
			int slot;

			if (n < 0)
				break;
			hl = (size_t)ip->ihl * 4;
			if ((size_t)n < hl + sizeof(*h))
				continue;
			h = (const struct icmphdr *)(in + hl);
			if (h->type != ICMP_ECHOREPLY ||
			    ntohs(h->un.echo.id) != id)
				continue;
			seq = ntohs(h->un.echo.sequence);
			slot = seq % WINDOW;
			if (!busy[slot] || slot_size[slot] - first != seq)
				continue;	/* late: already counted lost */
			plen = (size_t)n - hl - sizeof(*h);
			fill(want, (size_t)slot_size[slot], seq);
			if (plen != (size_t)slot_size[slot] ||
			    memcmp(in + hl + sizeof(*h), want, plen)) {
				fprintf(stderr, "netcheck: the reply to the "
					"%ld-byte ping came back damaged "
					"(%zu bytes)\n", slot_size[slot], plen);
				bad++;
			}
			busy[slot] = false;
			inflight--;
			done++;
		}
	}
	printf("ping-sweep %s: sizes %ld..%ld: %ld sent, %ld replies intact, "
	       "%ld lost, %ld damaged, %.1f s\n", addr, first, last, total,
	       total - lost - bad, lost, bad, (double)(now_ms() - t0) / 1000);
	close(fd);
	return lost || bad ? 1 : 0;
}

/* Wait for fd to be ready for events until the run's deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int64_t left = deadline - now_ms();
	int r;

	if (left <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	r = poll(&pfd, 1, (int)left);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 0 : -1;
}

static int bulk_recv(const char *port_s, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int64_t deadline = now_ms() + LIMIT_S * 1000;
	static char buf[1 << 16];
	long long total = 0;
	int lfd, fd, out, one = 1;
	ssize_t n;

	sa.sin_port = htons((uint16_t)atoi(port_s));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0)
		return fail("listen");
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		return fail(path);
	/* Ready: the sender may connect from now on. */
	printf("bulk-recv: listening on port %s\n", port_s);
	fflush(stdout);
	if (wait_fd(lfd, POLLIN, deadline) < 0)
		return fail("accept");
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return fail("accept");
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return fail("recv");
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("recv");
		if (n == 0)
			break;
		if (write(out, buf, (size_t)n) != n)
			return fail(path);
		total += n;
	}
	if (close(out) < 0)
		return fail(path);
	printf("bulk-recv: %lld bytes\n", total);
	close(fd);
	close(lfd);
	return 0;
}

/*
 * A connected non-blocking socket to sa.  The receiver is started in the
 * background just before: until it listens, its side refuses, so a refused
 * connection is tried again, for up to CONNECT_RETRY_MS.  @return the
 * socket, or -1 (errno set).
 */
static int connect_retry(const struct sockaddr_in *sa, int64_t deadline)
{
	int64_t give_up = now_ms() + CONNECT_RETRY_MS;
	socklen_t len = sizeof(int);
	int fd, err;

	for (;;) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return -1;
		err = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0
			? errno : 0;
		if (err == EINPROGRESS) {
			err = wait_fd(fd, POLLOUT, deadline) < 0 ? errno : 0;
			if (!err && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
				err = errno;
		}
		if (!err)
			return fd;
		close(fd);
		if (err != ECONNREFUSED || now_ms() > give_up) {
			errno = err;
			return -1;
		}
		poll(NULL, 0, 20);
	}
}

static int bulk_send(const char *addr, const char *port_s, const char *path)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int64_t deadline = now_ms() + LIMIT_S * 1000;
	static char buf[1 << 16];
	long long total = 0;
	int fd, in;
	ssize_t n;

	sa.sin_port = htons((uint16_t)atoi(port_s));
	if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
		fprintf(stderr, "netcheck: bad address %s\n", addr);
		return 2;
	}
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return fail(path);
	fd = connect_retry(&sa, deadline);
	if (fd < 0)
		return fail("connect");
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w;

			if (wait_fd(fd, POLLOUT, deadline) < 0)
				return fail("send");
			w = send(fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (w < 0)
				return fail("send");
			off += w;
		}
		total += n;
	}
	if (n < 0)
		return fail(path);
	/* Our FIN, then the receiver's: everything arrived. */
	if (shutdown(fd, SHUT_WR) < 0)
		return fail("shutdown");
	for (;;) {
		if (wait_fd(fd, POLLIN, deadline) < 0)
			return fail("waiting for the receiver to close");
		n = read(fd, buf, sizeof(buf));
		if (n == 0)
			break;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return fail("recv");
	}
	printf("bulk-send: %lld bytes\n", total);
	close(fd);
	close(in);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "ping-sweep") == 0)
		return ping_sweep(argv[2], atol(argv[3]), atol(argv[4]));
	if (argc == 4 && strcmp(argv[1], "bulk-recv") == 0)
		return bulk_recv(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "bulk-send") == 0)
		return bulk_send(argv[2], argv[3], argv[4]);
	fprintf(stderr,
		"usage: netcheck ping-sweep ADDR FIRST LAST\n"
		"       netcheck bulk-recv PORT FILE\n"
		"       netcheck bulk-send ADDR PORT FILE\n");
	return 2;
}
