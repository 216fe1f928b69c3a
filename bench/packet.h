/* SPDX-License-Identifier: MIT */
/*
 * packet.h - the packet stamp, inline: what the harness's hot loops write
 * into and read from every packet (measure.c has the out-of-line pkt_stamp,
 * pkt_check and pkt_seq_guess that harness.h declares, built on these).
 *
 * The first 8 bytes: a 24-bit sequence number and a 40-bit send time (ns
 * after the run's t0, 0 = not timestamped).  From 16 bytes up the last 8
 * bytes hold the whole sequence number (scrambled), so that a torn, stale
 * or lost packet shows at either end.
 *
 * Unpaced streams write and check the whole stamp on one packet in
 * LATENCY_SAMPLE only; every other packet gets just its head (the number,
 * time 0) and the consumer compares that head with the one it expects: one
 * store and one load and compare per packet, where a call into measure.c
 * would cost as much as some queues' whole send.
 */
#ifndef APQ_BENCH_PACKET_H
#define APQ_BENCH_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PKT_SEQ_BITS	24
#define PKT_TS_BITS	40
#define PKT_TS_MASK	((UINT64_C(1) << PKT_TS_BITS) - 1)
#define PKT_SEQ_MASK	((UINT64_C(1) << PKT_SEQ_BITS) - 1)
#define PKT_TAIL_KEY	UINT64_C(0x5eed0fa9c0ffee11)

/* The head of packet seq sent at ts (0: not timestamped). */
static inline uint64_t pkt_head(uint64_t seq, int64_t ts)
{
	return (seq & PKT_SEQ_MASK) << PKT_TS_BITS | ((uint64_t)ts & PKT_TS_MASK);
}

static inline uint64_t pkt_head_read(const unsigned char *buf)
{
	uint64_t head;

	memcpy(&head, buf, sizeof(head));
	return head;
}

/* The lean stamp: the head only, no time.  The tail keeps whatever an
 * earlier packet left there, which only a full check would read. */
static inline void pkt_stamp_head(unsigned char *buf, uint64_t seq)
{
	uint64_t head = pkt_head(seq, 0);

	memcpy(buf, &head, sizeof(head));
}

static inline void pkt_stamp_full(unsigned char *buf, size_t size,
				  uint64_t seq, int64_t ts)
{
	uint64_t head = pkt_head(seq, ts);
	uint64_t tail = seq ^ PKT_TAIL_KEY;

	memcpy(buf, &head, sizeof(head));
	if (size >= 2 * sizeof(head))
		memcpy(buf + size - sizeof(tail), &tail, sizeof(tail));
}

/* Whether buf is packet seq of size bytes, head and tail; *ts gets its send
 * time. */
static inline bool pkt_check_full(const unsigned char *buf, size_t len,
				  size_t size, uint64_t seq, int64_t *ts)
{
	uint64_t head, tail;

	if (len != size)
		return false;
	head = pkt_head_read(buf);
	if (head >> PKT_TS_BITS != (seq & PKT_SEQ_MASK))
		return false;
	if (size >= 2 * sizeof(head)) {
		memcpy(&tail, buf + size - sizeof(tail), sizeof(tail));
		if (tail != (seq ^ PKT_TAIL_KEY))
			return false;
	}
	*ts = (int64_t)(head & PKT_TS_MASK);
	return true;
}

/* The lean check of a packet stamped with pkt_stamp_head(): its length and
 * its whole head, so any damage to the head, a lost, repeated or reordered
 * packet, or a stale one left in a slot shows. */
static inline bool pkt_check_head(const unsigned char *buf, size_t len,
				  size_t size, uint64_t seq)
{
	return len == size && pkt_head_read(buf) == pkt_head(seq, 0);
}

/* The number a bad packet's head carries, the first one >= want with those
 * low bits: where a lean stream resynchronises (its tails are stale). */
static inline uint64_t pkt_seq_guess_head(const unsigned char *buf,
					  size_t len, uint64_t want)
{
	uint64_t guess;

	if (len < sizeof(uint64_t))
		return want;
	guess = (want & ~PKT_SEQ_MASK) | pkt_head_read(buf) >> PKT_TS_BITS;
	if (guess < want)
		guess += PKT_SEQ_MASK + 1;
	return guess;
}

#endif /* APQ_BENCH_PACKET_H */
