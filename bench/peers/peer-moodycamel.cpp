// SPDX-License-Identifier: MIT
/*
 * peer-moodycamel.cpp - moodycamel's blocking SPSC queues (header-only C++,
 * Debian's libreaderwriterqueue-dev), behind the C struct bench_impl.
 *
 * Elements
 *   Pkt<N>: a 16-byte header (length, and a source pointer used only while
 *   a packet is handed to the queue) and N bytes, N chosen at open() from
 *   PEER_MC_BUCKETS as the smallest element of at least 16 + max_pkt bytes.
 *   Elements are constructed in the queue from the harness's buffer (len
 *   bytes copied) and moved out of it straight into the consumer's buffer
 *   through Sink, whose assignment from Pkt<N>&& copies len bytes: no
 *   element is ever copied whole, no staging buffer.
 *
 * Variants
 *   semaphore           BlockingReaderWriterQueue<Pkt<N>>, constructed to
 *                       hold at least `cap` elements (the packets asked
 *                       for).  The producer uses try_emplace(), which never
 *                       allocates: the queue stays bounded, and the producer
 *                       busy-polls while it is full (the queue has no way to
 *                       wait for room).  The consumer uses
 *                       wait_dequeue_timed(): a LightweightSemaphore that
 *                       spins briefly, then sleeps in sem_timedwait().
 *   semaphore-circular  BlockingReaderWriterCircularBuffer<Pkt<N>> of exactly
 *                       `cap` elements: both sides sleep on a semaphore, the
 *                       producer in wait_enqueue_timed() while it is full.
 *
 * Both wake the other side only if it sleeps (the semaphore's count says
 * so).  End of stream: a marker element (len PEER_MC_MARKER) enqueued by
 * producer_end(); it wakes a sleeping consumer.  `sleeps` stays 0: the
 * semaphore does not tell whether a wait slept; the harness counts futex
 * calls itself.
 */
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <new>

#include <readerwriterqueue/readerwriterqueue.h>
#include <readerwriterqueue/readerwritercircularbuffer.h>

#include "peers.h"

namespace {

const uint32_t PEER_MC_MARKER = UINT32_MAX;
const size_t PEER_MC_HDR = 16;
const int64_t PEER_MC_TIMEOUT_US = BENCH_IO_TIMEOUT_NS / 1000;

// The bytes of one packet, not yet in the queue.
struct Source {
	const void *p;
	uint32_t len;
};

template <size_t N>
struct Pkt {
	uint32_t len;
	uint32_t spare;
	const unsigned char *src;	// only in a staged Pkt, never in the queue
	unsigned char data[N];

	// In place in the queue (try_emplace): copy the bytes in.
	Pkt(const void *p, uint32_t n) : len(n), spare(0), src(nullptr)
	{
		if (n != PEER_MC_MARKER)
			std::memcpy(data, p, n);
	}
	// Staged for a queue that takes T&& (the circular buffer): refer to
	// the bytes; the move into the queue copies them.
	explicit Pkt(Source s)
		: len(s.len), spare(0),
		  src(static_cast<const unsigned char *>(s.p)) {}
	Pkt(Pkt &&o) noexcept : len(o.len), spare(0), src(nullptr)
	{
		if (len != PEER_MC_MARKER)
			std::memcpy(data, o.src != nullptr ? o.src : o.data, len);
	}
	Pkt(const Pkt &) = delete;
	Pkt &operator=(const Pkt &) = delete;
	Pkt &operator=(Pkt &&) = delete;
};

// Where a dequeued packet goes: the harness's buffer.
struct Sink {
	struct iovec *buf;
	bool marker;
	bool too_big;

	explicit Sink(struct iovec *b) : buf(b), marker(false), too_big(false) {}

	template <size_t N>
	Sink &operator=(Pkt<N> &&p)
	{
		if (p.len == PEER_MC_MARKER) {
			marker = true;
		} else if (p.len > buf->iov_len) {
			too_big = true;
		} else {
			std::memcpy(buf->iov_base, p.data, p.len);
			buf->iov_len = p.len;
		}
		return *this;
	}
};

class Queue {
public:
	virtual ~Queue() {}
	int send(const struct iovec *pkts, unsigned int n);
	int recv(struct iovec *bufs, unsigned int n);
	void end();

	size_t max_pkt = 0;
	alignas(PEER_CACHELINE) uint64_t sent = 0;
	alignas(PEER_CACHELINE) uint64_t received = 0;
	bool eos = false;		// consumer: the marker came

protected:
	// One packet, or the marker (len PEER_MC_MARKER).  wait: block until
	// there is room.  @return 1 if it went, 0 if full (!wait), -errno.
	virtual int put(const void *p, uint32_t len, bool wait) = 0;
	// One packet into sink.  @return 1, 0 if empty (!wait), -errno.
	virtual int get(Sink &sink, bool wait) = 0;
};

int Queue::send(const struct iovec *pkts, unsigned int n)
{
	unsigned int i;

	if (n == 0)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (pkts[i].iov_len > max_pkt)
			return -EMSGSIZE;
	for (i = 0; i < n; i++) {
		int r = put(pkts[i].iov_base, uint32_t(pkts[i].iov_len),
			    i == 0);
		if (r < 0)
			return r;
		if (r == 0)
			break;
	}
	sent += i;
	return int(i);
}

int Queue::recv(struct iovec *bufs, unsigned int n)
{
	unsigned int got = 0;

	if (n == 0)
		return -EINVAL;
	while (got < n && !eos) {
		Sink sink(&bufs[got]);
		int r = get(sink, got == 0);

		if (r < 0)
			return r;
		if (r == 0)
			break;
		if (sink.too_big)
			return -EMSGSIZE;
		if (sink.marker)
			eos = true;
		else
			got++;
	}
	received += got;
	return int(got);
}

void Queue::end()
{
	// The marker; if the consumer stopped reading and the queue stays
	// full, it times out instead.
	(void)put(nullptr, PEER_MC_MARKER, true);
}

template <size_t N>
class Brwq final : public Queue {
public:
	explicit Brwq(size_t cap) : q(cap) {}

private:
	moodycamel::BlockingReaderWriterQueue<Pkt<N>> q;

	int put(const void *p, uint32_t len, bool wait) override
	{
		struct peer_spin spin = PEER_SPIN_INIT;

		while (!q.try_emplace(p, len)) {
			if (!wait)
				return 0;
			int r = peer_spin(&spin);	// full: no way to sleep
			if (r < 0)
				return r;
		}
		return 1;
	}

	int get(Sink &sink, bool wait) override
	{
		if (q.try_dequeue(sink))
			return 1;
		if (!wait)
			return 0;
		if (!q.wait_dequeue_timed(sink, PEER_MC_TIMEOUT_US))
			return -ETIMEDOUT;
		return 1;
	}
};

template <size_t N>
class Circular final : public Queue {
public:
	explicit Circular(size_t cap) : q(cap) {}

private:
	moodycamel::BlockingReaderWriterCircularBuffer<Pkt<N>> q;

	int put(const void *p, uint32_t len, bool wait) override
	{
		Pkt<N> staged(Source{p, len});	// header only: N bytes untouched

		if (!wait)
			return q.try_enqueue(std::move(staged)) ? 1 : 0;
		if (!q.wait_enqueue_timed(std::move(staged),
					  PEER_MC_TIMEOUT_US))
			return -ETIMEDOUT;
		return 1;
	}

	int get(Sink &sink, bool wait) override
	{
		if (q.try_dequeue(sink))
			return 1;
		if (!wait)
			return 0;
		if (!q.wait_dequeue_timed(sink, PEER_MC_TIMEOUT_US))
			return -ETIMEDOUT;
		return 1;
	}
};

// Element sizes, header included: powers of two and the halves between.
#define PEER_MC_BUCKETS(X)						\
	X(128) X(192) X(256) X(384) X(512) X(768) X(1024) X(1536)	\
	X(2048) X(3072) X(4096) X(6144) X(8192) X(12288) X(16384)	\
	X(24576) X(32768) X(49152) X(65536) X(98304)

template <template <size_t> class Q>
Queue *make_queue(size_t max_pkt, size_t cap)
{
	size_t need = PEER_MC_HDR + max_pkt;

#define PEER_MC_TRY(S)							\
	if (need <= (S)) {						\
		static_assert(sizeof(Pkt<(S) - PEER_MC_HDR>) == (S),	\
			      "Pkt<N> has a 16-byte header");		\
		return new Q<(S) - PEER_MC_HDR>(cap);			\
	}
	PEER_MC_BUCKETS(PEER_MC_TRY)
#undef PEER_MC_TRY
	return nullptr;
}

enum mc_kind { MC_BRWQ, MC_CIRCULAR };

const mc_kind mc_brwq = MC_BRWQ, mc_circular = MC_CIRCULAR;

const struct bench_variant mc_variants[] = {
	{ "semaphore", &mc_brwq, BENCH_WAIT_SLEEPS },
	{ "semaphore-circular", &mc_circular, BENCH_WAIT_SLEEPS },
};

int mc_open(void **out, const struct bench_variant *v, size_t ring_bytes,
	    size_t max_pkt)
{
	mc_kind kind = MC_BRWQ;
	Queue *q;
	size_t n;
	int r;

	r = peer_packets(ring_bytes, max_pkt, &n);
	if (r < 0)
		return r;
	if (v != nullptr && v->arg != nullptr)
		kind = *static_cast<const mc_kind *>(v->arg);
	try {
		if (kind == MC_CIRCULAR)
			q = make_queue<Circular>(max_pkt, n);
		else
			q = make_queue<Brwq>(max_pkt, n);
	} catch (const std::bad_alloc &) {
		return -ENOMEM;
	}
	if (q == nullptr)
		return -EMSGSIZE;
	q->max_pkt = max_pkt;
	*out = q;
	return 0;
}

int mc_send(void *q, const struct iovec *pkts, unsigned int n)
{
	return static_cast<Queue *>(q)->send(pkts, n);
}

int mc_recv(void *q, struct iovec *bufs, unsigned int n)
{
	return static_cast<Queue *>(q)->recv(bufs, n);
}

void mc_producer_end(void *qv, struct bench_counters *out)
{
	Queue *q = static_cast<Queue *>(qv);

	q->end();
	std::memset(out, 0, sizeof(*out));
	out->packets = q->sent;
}

void mc_consumer_end(void *qv, struct bench_counters *out)
{
	Queue *q = static_cast<Queue *>(qv);

	std::memset(out, 0, sizeof(*out));
	out->packets = q->received;
}

void mc_close(void *q)
{
	delete static_cast<Queue *>(q);
}

} // namespace

extern "C" const struct bench_impl bench_peer_moodycamel_impl = {
	"moodycamel",
	mc_variants,
	sizeof(mc_variants) / sizeof(mc_variants[0]),
	false,			// counts_wakeups
	mc_open,
	mc_send,
	mc_recv,
	mc_producer_end,
	mc_consumer_end,
	mc_close,
};
