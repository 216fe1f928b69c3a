// SPDX-License-Identifier: MIT
/*
 * xproc-boost.cpp - Boost.Interprocess message_queue between two processes,
 * exposed to the harness as a C adapter.
 *
 * setup() creates one named queue per channel (a POSIX shared memory object
 * holding a mutex, two process-shared condition variables and a fixed array
 * of slots): max_pkt bytes per message, QUEUE_MSGS messages.  The children
 * open the queues by name; teardown() removes them.
 *
 * Semantics: send copies the packet into a slot, receive copies it out; both
 * block on the queue's condition variables (they sleep in the kernel), timed
 * so that a dead peer turns into -ETIMEDOUT after BENCH_IO_TIMEOUT_NS (the
 * deadline is a UTC posix_time::ptime: a wall-clock step moves it).  A
 * sender notifies only when a receiver waits.  No zero copy.  End of stream
 * is an empty message of priority 0 behind packets of priority 1: the queue
 * hands out higher priorities first and is FIFO within one, so the marker
 * arrives after every packet sent before it.  Nothing is dropped: a full
 * queue blocks the sender.
 */
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include <unistd.h>

#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>

#include "xproc.h"

namespace bip = boost::interprocess;

namespace {

constexpr unsigned int QUEUE_MSGS = 256;
constexpr unsigned int PRIO_DATA = 1;
constexpr unsigned int PRIO_END = 0;

struct bq_shared {
	std::vector<std::string> names;
	size_t max_pkt;
};

struct bq_ep {
	bip::message_queue mq;
	std::vector<char> bounce;	// for buffers smaller than max_pkt
	size_t pending = SIZE_MAX;	// length of a packet kept in bounce
	bool ended = false;
	bench_counters counters{};

	explicit bq_ep(const char *name) : mq(bip::open_only, name) {}
};

boost::posix_time::ptime bq_deadline()
{
	return boost::posix_time::microsec_clock::universal_time() +
	       boost::posix_time::microseconds(BENCH_IO_TIMEOUT_NS / 1000);
}

int bq_errno(const bip::interprocess_exception &e)
{
	switch (e.get_error_code()) {
	case bip::size_error:
		return -EMSGSIZE;
	case bip::not_found_error:
		return -ENOENT;
	case bip::out_of_memory_error:
		return -ENOMEM;
	default:
		return e.get_native_error() > 0 ? -e.get_native_error() : -EIO;
	}
}

void bq_teardown(void *shared)
{
	auto *sh = static_cast<bq_shared *>(shared);

	if (!sh)
		return;
	for (const auto &n : sh->names)
		bip::message_queue::remove(n.c_str());
	delete sh;
}

int bq_setup(void **shared, const bench_variant *, size_t max_pkt,
	     unsigned int channels, const char **why)
{
	static unsigned int serial;
	bq_shared *sh;

	*why = nullptr;
	if (channels == 0)
		return -EINVAL;
	sh = new (std::nothrow) bq_shared;
	if (!sh)
		return -ENOMEM;
	sh->max_pkt = max_pkt;
	try {
		for (unsigned int i = 0; i < channels; i++) {
			char name[64];

			snprintf(name, sizeof(name), "apq-bench-%d-%u-ch%u",
				 (int)getpid(), serial, i);
			bip::message_queue::remove(name);
			sh->names.emplace_back(name);
			bip::message_queue mq(bip::create_only, name,
					      QUEUE_MSGS, max_pkt);
		}
	} catch (const bip::interprocess_exception &e) {
		int r = bq_errno(e);

		bq_teardown(sh);
		return r;
	} catch (...) {
		bq_teardown(sh);
		return -ENOMEM;
	}
	serial++;
	*shared = sh;
	return 0;
}

int bq_open(void *shared, unsigned int channel, void **out)
{
	auto *sh = static_cast<bq_shared *>(shared);

	if (!sh || channel >= sh->names.size() || !out)
		return -EINVAL;
	try {
		*out = new bq_ep(sh->names[channel].c_str());
	} catch (const bip::interprocess_exception &e) {
		return bq_errno(e);
	} catch (...) {
		return -ENOMEM;
	}
	return 0;
}

int bq_send_prio(bq_ep *ep, const void *pkt, size_t len, unsigned int prio)
{
	try {
		if (!ep->mq.timed_send(pkt, len, prio, bq_deadline()))
			return -ETIMEDOUT;
	} catch (const bip::interprocess_exception &e) {
		return bq_errno(e);
	}
	return 0;
}

int bq_send(void *p, const void *pkt, size_t len)
{
	auto *ep = static_cast<bq_ep *>(p);
	int r;

	if (!ep || (!pkt && len))
		return -EINVAL;
	r = bq_send_prio(ep, pkt, len, PRIO_DATA);
	if (r == 0)
		ep->counters.packets++;
	return r;
}

// Boost refuses buffers smaller than the queue's message size: those
// receive into a bounce buffer, which keeps a packet too large for the
// caller's buffer until a larger one comes.
ssize_t bq_recv(void *p, void *buf, size_t cap)
{
	auto *ep = static_cast<bq_ep *>(p);
	bip::message_queue::size_type len;
	unsigned int prio;
	char *to;

	if (!ep || (!buf && cap))
		return -EINVAL;
	if (ep->ended)
		return 0;
	if (ep->pending != SIZE_MAX) {
		len = ep->pending;
		if (len > cap)
			return -EMSGSIZE;
		memcpy(buf, ep->bounce.data(), len);
		ep->pending = SIZE_MAX;
		ep->counters.packets++;
		return (ssize_t)len;
	}
	try {
		size_t msg_max = ep->mq.get_max_msg_size();

		if (cap >= msg_max) {
			to = static_cast<char *>(buf);
		} else {
			ep->bounce.resize(msg_max);
			to = ep->bounce.data();
		}
		if (!ep->mq.timed_receive(to, cap >= msg_max ? cap : msg_max,
					  len, prio, bq_deadline()))
			return -ETIMEDOUT;
	} catch (const bip::interprocess_exception &e) {
		return bq_errno(e);
	} catch (...) {
		return -ENOMEM;
	}
	if (prio == PRIO_END) {
		ep->ended = true;
		return 0;
	}
	if (to != buf) {
		if (len > cap) {
			ep->pending = len;
			return -EMSGSIZE;
		}
		memcpy(buf, to, len);
	}
	ep->counters.packets++;
	return (ssize_t)len;
}

void bq_close_producer(void *p, bench_counters *out)
{
	auto *ep = static_cast<bq_ep *>(p);

	if (!ep)
		return;
	bq_send_prio(ep, "", 0, PRIO_END);
	if (out)
		*out = ep->counters;
	delete ep;
}

void bq_close_consumer(void *p, bench_counters *out)
{
	auto *ep = static_cast<bq_ep *>(p);

	if (!ep)
		return;
	if (out)
		*out = ep->counters;
	delete ep;
}

const bench_variant bq_variants[] = {
	{ "condvar", nullptr, BENCH_WAIT_SLEEPS },
};

} // namespace

// Positional: C++17 has no designated initialisers.  The order is
// struct bench_xproc_impl's.
extern "C" const struct bench_xproc_impl bench_xproc_boost = {
	"boost-mq",			// name
	bq_variants,			// variants
	sizeof(bq_variants) / sizeof(bq_variants[0]),
	false,				// counts_wakeups
	bq_setup,			// setup
	bq_open,			// open_producer
	bq_open,			// open_consumer
	bq_send,			// send
	bq_recv,			// recv
	nullptr,			// loan
	nullptr,			// publish
	nullptr,			// take
	nullptr,			// give_back
	bq_close_producer,		// close_producer
	bq_close_consumer,		// close_consumer
	bq_teardown,			// teardown
};
