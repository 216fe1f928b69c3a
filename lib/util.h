/* SPDX-License-Identifier: MIT */
/* Small helpers shared by apq's sources (private). */
#ifndef APQ_LIB_UTIL_H
#define APQ_LIB_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <urcu/compiler.h>

#include <apq/common.h>

#define APQ_EXPORT __attribute__((visibility("default")))

/* The hot path's helpers: one call per packet, not four. */
#define APQ_HOT	static inline __attribute__((always_inline))

#define apq_likely(x)	caa_likely(x)
#define apq_unlikely(x)	caa_unlikely(x)

/* Deadlines are absolute CLOCK_MONOTONIC nanoseconds. */
#define APQ_DEADLINE_NONE	0		/* do not block */
#define APQ_DEADLINE_NEVER	INT64_MAX	/* block forever */

static inline int64_t apq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The deadline of a timeout_ns as the public API defines it. */
static inline int64_t apq_deadline(int64_t timeout_ns)
{
	int64_t now;

	if (timeout_ns == 0)
		return APQ_DEADLINE_NONE;
	if (timeout_ns < 0)
		return APQ_DEADLINE_NEVER;
	now = apq_now_ns();
	return timeout_ns > APQ_DEADLINE_NEVER - now ? APQ_DEADLINE_NEVER
						     : now + timeout_ns;
}

/*
 * Counters have one writer (the owning thread) and may be read from any
 * thread: a relaxed store makes the read tear-free and costs a plain store.
 */
static inline void apq_count(uint64_t *counter, uint64_t n)
{
	__atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

static inline uint64_t apq_counter(const uint64_t *counter)
{
	return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/*
 * memcpy, with the packet sizes that dominate small-message traffic done
 * inline: the compiler turns fixed-size memcpy calls into moves, and two
 * overlapping 8-byte moves cover 8 to 16 bytes without a call into libc.
 */
static inline void apq_copy(void *dst, const void *src, size_t len)
{
	uint64_t head, tail;

	if (len >= 8 && len <= 16) {
		memcpy(&head, src, 8);
		memcpy(&tail, (const unsigned char *)src + len - 8, 8);
		memcpy(dst, &head, 8);
		memcpy((unsigned char *)dst + len - 8, &tail, 8);
	} else if (len) {
		memcpy(dst, src, len);
	}
}

/* 0 if cfg (NULL allowed) is a configuration this version understands. */
int apq_config_check(const struct apq_config *cfg);

#endif /* APQ_LIB_UTIL_H */
