/* SPDX-License-Identifier: MIT */
/*
 * testlib.h - what apq's test programs share: time, seeds and random
 * numbers, the region's layout as a peer sees it, atomic access to shared
 * words, whole reads and writes on pipes, shared memory, forked helpers,
 * and which sanitizer the build runs under.
 *
 * Header-only and libc-only, so that the static programs that run in a Xen
 * dom0 and the fuzz target use it too.  Programs that stand for an outside
 * user (tests/external, the examples) keep their own copies on purpose.
 */
#ifndef APQ_TESTLIB_H
#define APQ_TESTLIB_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* ---- sanitizers ---- */

#if defined(__SANITIZE_THREAD__)
#define TEST_UNDER_TSAN	1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_UNDER_TSAN	1
#endif
#endif
#ifndef TEST_UNDER_TSAN
#define TEST_UNDER_TSAN	0
#endif

#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN	1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN	0
#endif

/* Sanitized builds run 3-15 times slower: amounts of work shrink by this
 * factor, time budgets do not. */
#define TEST_SLOWDOWN	(TEST_UNDER_TSAN ? 10 : TEST_UNDER_ASAN ? 3 : 1)

/* ---- time ---- */

#define TEST_NSEC	INT64_C(1000000000)
#define TEST_MSEC	INT64_C(1000000)

static inline int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TEST_NSEC + ts.tv_nsec;
}

/* Sleep the whole ns, whatever signals arrive meanwhile. */
static inline void sleep_ns(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / TEST_NSEC,
			       .tv_nsec = ns % TEST_NSEC };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A delay that keeps the CPU: a peer sees a slow side, not a sleeping one. */
static inline void spin_ns(int64_t ns)
{
	int64_t end = now_ns() + ns;

	while (now_ns() < end)
		;
}

/* ---- seeds and random numbers ---- */

/* splitmix64's finaliser. */
static inline uint64_t mix64(uint64_t x)
{
	x += UINT64_C(0x9e3779b97f4a7c15);
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* splitmix64: one step of the generator whose state is *s. */
static inline uint64_t rnd(uint64_t *s)
{
	*s += UINT64_C(0x9e3779b97f4a7c15);
	return mix64(*s - UINT64_C(0x9e3779b97f4a7c15));
}

static inline uint64_t rnd_below(uint64_t *s, uint64_t n)
{
	return rnd(s) % n;
}

static inline bool rnd_chance(uint64_t *s, unsigned int percent)
{
	return rnd_below(s, 100) < percent;
}

/* The run's seed: APQ_SEED if set (a replay), else a fresh one.  Print it:
 * a failure is only worth as much as its replay. */
static inline uint64_t test_seed(void)
{
	const char *s = getenv("APQ_SEED");
	struct timespec ts;

	if (s && *s)
		return strtoull(s, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return mix64((uint64_t)ts.tv_sec * TEST_NSEC + (uint64_t)ts.tv_nsec) ^
	       (uint64_t)getpid() << 32;
}

/* ---- the region, as a peer sees it (doc/wire-format.md) ---- */

#define CTRL		640		/* control area before the ring */
#define OFF_MAGIC	0
#define OFF_VERSION	4
#define OFF_RING_BYTES	8
#define OFF_PROD	128		/* the producer's index */
#define OFF_CONS	256		/* the consumer's index */
#define OFF_DATA_WORD	384		/* the consumer's mode word */
#define OFF_SPACE_WORD	512		/* the producer's mode word */
#define OFF_SEQ		8		/* wake sequence, inside a mode word */

#define TAG_PACKET	UINT64_C(0x544b5041)
#define TAG_PAD		UINT64_C(0x44415041)
#define REC(len, tag)	((uint64_t)(tag) << 32 | (uint32_t)(len))
#define REC_SIZE(len)	(8 + (((size_t)(len) + 7) & ~(size_t)7))

#define M_SLEEPING	UINT64_C(1)
#define M_CLOSED	UINT64_C(2)
#define MODE(ep, fl)	(UINT64_C(0xa5) << 56 | (uint64_t)(ep) << 2 | (fl))
#define MODE_EPISODE(m)	((m) >> 2 & ((UINT64_C(1) << 54) - 1))

/* Shared words, accessed as a peer would: atomically, so that a test with a
 * second thread stays free of data races. */
static inline uint32_t get32(const unsigned char *mem, size_t off)
{
	return __atomic_load_n((const uint32_t *)(mem + off), __ATOMIC_ACQUIRE);
}

static inline void set32(unsigned char *mem, size_t off, uint32_t v)
{
	__atomic_store_n((uint32_t *)(mem + off), v, __ATOMIC_RELEASE);
}

static inline uint64_t get64(const unsigned char *mem, size_t off)
{
	return __atomic_load_n((const uint64_t *)(mem + off), __ATOMIC_ACQUIRE);
}

static inline void set64(unsigned char *mem, size_t off, uint64_t v)
{
	__atomic_store_n((uint64_t *)(mem + off), v, __ATOMIC_RELEASE);
}

/* ---- pipes ---- */

/* @return true if all len bytes were read. */
static inline bool read_all(int fd, void *buf, size_t len)
{
	unsigned char *b = buf;

	while (len) {
		ssize_t r = read(fd, b, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		len -= (size_t)r;
	}
	return true;
}

/* @return true if all len bytes were written. */
static inline bool write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *b = buf;

	while (len) {
		ssize_t r = write(fd, b, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		b += r;
		len -= (size_t)r;
	}
	return true;
}

/* ---- shared memory and helper processes ---- */

/* Anonymous MAP_SHARED memory: a child forked later shares it. */
static inline void *shm_alloc(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Map bytes of fd shared; NULL on failure. */
static inline void *map_shared_fd(int fd, size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * fork(), with stdio flushed first (or buffered output would be printed
 * twice), and a child that dies with its parent: a test that fails in the
 * parent must not leave a helper behind.  @return as fork().
 */
static inline pid_t test_fork(void)
{
	pid_t parent = getpid(), pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(3);
	}
	return pid;
}

#endif /* APQ_TESTLIB_H */
