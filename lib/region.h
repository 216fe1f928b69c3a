/* SPDX-License-Identifier: MIT */
/*
 * The layout of a region (private).  Each group of fields that one side
 * writes gets 128 bytes of its own: a cache line, and its neighbour that
 * adjacent-line prefetchers pull in with it.  Only offsets are stored.
 *
 *   0    header       written by apq_region_init(), read once per attach
 *   128  prod         the producer's index: bytes ever published
 *   256  cons         the consumer's index: bytes ever released
 *   384  data word    the consumer's mode word; the producer bumps its seq
 *   512  space word   the producer's mode word; the consumer bumps its seq
 *   640  ring         ring_bytes of records
 *
 * Indices are free-running 32-bit byte counts (ring_bytes <= 1 GiB), so
 * prod - cons is the fill level in any wrap-around state.  A record is an
 * 8-byte header (length, tag) and the payload padded to 8 bytes.  A packet
 * never wraps: when it does not fit before the end, a pad record fills the
 * end and the packet starts at offset 0, so zero-copy calls see one piece.
 */
#ifndef APQ_LIB_REGION_H
#define APQ_LIB_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <apq/mode.h>

#define REGION_MAGIC	UINT32_C(0x52515041)	/* "APQR" */
#define REGION_VERSION	UINT32_C(1)
#define RING_MIN	UINT32_C(4096)
#define RING_MAX	(UINT32_C(1) << 30)

struct apq_region {
	uint32_t magic;
	uint32_t version;
	uint32_t ring_bytes;
	unsigned char pad0[116];

	uint32_t prod;
	unsigned char pad1[124];

	uint32_t cons;
	unsigned char pad2[124];

	struct apq_mode_word data_word;
	unsigned char pad3[64];

	struct apq_mode_word space_word;
	unsigned char pad4[64];

	unsigned char ring[];
};

#define REC_HEADER	UINT32_C(8)
#define REC_TAG_PACKET	UINT32_C(0x544b5041)	/* "APKT" */
#define REC_TAG_PAD	UINT32_C(0x44415041)	/* "APAD" */

/* A record header is one 64-bit word, written and read in a single access. */
static inline uint64_t rec_header(uint32_t len, uint32_t tag)
{
	return (uint64_t)tag << 32 | len;
}

static inline uint32_t rec_size(uint32_t len)
{
	return REC_HEADER + ((len + 7) & ~UINT32_C(7));
}

static inline bool ring_bytes_valid(size_t ring_bytes)
{
	return ring_bytes >= RING_MIN && ring_bytes <= RING_MAX &&
	       (ring_bytes & (ring_bytes - 1)) == 0;
}

/* What an attaching side learns from the region, validated. */
struct apq_region_state {
	uint32_t ring_bytes;
	uint32_t prod;
	uint32_t cons;
};

/*
 * Check the arguments common to both attach calls, then read the header and
 * both indices once and validate them.  @return 0 with *state set; -EINVAL
 * (arguments); -EPROTO (the region).
 */
int apq_region_open(void *mem, size_t mem_bytes, const void *out,
		    const struct apq_notifier *n, const struct apq_config *cfg,
		    struct apq_region_state *state);

#endif /* APQ_LIB_REGION_H */
