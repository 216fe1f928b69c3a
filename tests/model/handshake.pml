/*
 * handshake.pml - apq's wakeup handshake, for the spin model checker.
 *
 * A producer and a consumer share a ring of RING packets and send PKTS
 * packets through it.  Each side sleeps when it cannot go on: the consumer
 * on an empty ring (it announces SLEEPING in the data word), the producer on
 * a full one (in the space word).  Each side wakes the other only when it
 * finds the other's word SLEEPING with an episode it has not woken yet.
 * After the last packet the producer detaches: it marks its word closed and
 * wakes a sleeping consumer, which then drains the ring and ends.
 * doc/model.md maps every step to the code.
 *
 * Memory is x86-TSO where it matters: each side's stores to the indices
 * and to its mode word go through a store buffer (one slot, drained in the
 * background by a flusher), so a later load can run ahead of an earlier
 * store, unless a full barrier drains the buffer first.  Loads see the
 * side's own buffered store.  The wake sequences are bumped with locked
 * read-modify-writes, which drain the buffer, as on x86.  A futex wait
 * blocks while the sequence still equals the snapshot, and returns once it
 * moved (the waker bumps it before FUTEX_WAKE, so this is the same).  Then
 * the side announces POLLING and looks again.
 *
 * The property (checked with weak fairness, so that the flushers run):
 *   ltl done: both sides eventually finish.
 * A lost wakeup leaves a side asleep with work waiting, forever; a livelock
 * never finishes either; both violate it.
 *
 * -DASYM models the asymmetric fences (lib/asym.h), where the waker is
 * within reach of the sleeper's membarrier(2): no waker runs B2; instead
 * each sleeper, after its own B1, makes the other side run a full barrier,
 * modelled as waiting until the other side's buffer has drained.  Every
 * word says ASYM here, so the waker's second look never happens.
 *
 * Mutants, each of which must be rejected (tests/model/check.sh):
 *   -DNO_B1          the sleeper's barrier after its SLEEPING store
 *   -DNO_B2          the waker's barrier after its publish
 *   -DNO_RECHECK     the sleeper's re-check after the announcement
 *   -DSAME_EPISODE   announcements reuse the first episode
 *   -DASYM -DNO_MEMBARRIER  the sleeper's barrier for the other thread
 */

#ifndef RING
#define RING	2
#endif
#ifndef PKTS
#define PKTS	3
#endif

/* Shared memory.  A mode word is episode * 2 + sleeping; closed apart. */
byte prod, cons;		/* packets published, released */
byte dmode, smode;		/* the consumer's word, the producer's */
bool sclosed;			/* the producer's word says closed */
byte dseq, sseq;		/* wake sequences */

/* Variables a store buffer can hold. */
mtype = { V_PROD, V_CONS, V_DMODE, V_SMODE, V_SCLOSED };

chan pbuf = [1] of { mtype, byte };	/* the producer's store buffer */
chan cbuf = [1] of { mtype, byte };	/* the consumer's */

bool pdone, cdone;

/* A store: into the side's buffer, after the previous one reached memory. */
inline store(buf, var, val) {
	buf ! var, val
}

/* A load of var: the side's own buffered store if there is one, else
 * memory. */
inline load(buf, var, mem, out) {
	if
	:: buf ?? [eval(var), _] -> buf ?? <eval(var), out>
	:: else -> out = mem
	fi
}

/* A full barrier: wait until the buffer drained to memory. */
inline fence(buf) {
	empty(buf)
}

inline commit(var, val) {
	if
	:: var == V_PROD -> prod = val
	:: var == V_CONS -> cons = val
	:: var == V_DMODE -> dmode = val
	:: var == V_SMODE -> smode = val
	:: var == V_SCLOSED -> sclosed = val
	fi
}

/* The hardware drains a buffer in the background. */
proctype Flusher(chan buf)
{
	mtype var;
	byte val;

end:	do
	:: atomic { buf ? var, val -> commit(var, val) }
	od
}

#ifdef SAME_EPISODE
#define NEXT_EPISODE(ep)	skip
#else
#define NEXT_EPISODE(ep)	ep++
#endif

#ifdef ASYM
#ifdef NO_MEMBARRIER
#define MEMBARRIER(other)	skip
#else
#define MEMBARRIER(other)	empty(other)
#endif
#else
#define MEMBARRIER(other)	skip
#endif

#ifdef NO_B1
#define B1(buf, other)	skip
#else
#define B1(buf, other)	fence(buf); MEMBARRIER(other)
#endif

#if defined(NO_B2) || defined(ASYM)
#define B2(buf)	skip
#else
#define B2(buf)	fence(buf)
#endif

/*
 * The waker's check after a publish (apq_waker_check()): B2, one read of
 * the peer's word, and a wake (bump the sequence: a locked instruction,
 * which drains the buffer) only for a SLEEPING episode not woken yet.
 */
inline wake_check(buf, word, wordvar, seq, last_woken, m) {
	B2(buf);
	load(buf, wordvar, word, m);
	if
	:: (m & 1) && (m / 2) != last_woken ->
		fence(buf);
		atomic { last_woken = m / 2; seq++ }
	:: else -> skip
	fi
}

/*
 * The sleeper (apq_sleeper_wait_until(), sleeper_announce()): snapshot the
 * sequence, announce SLEEPING with a fresh episode, B1, look once more, and
 * block only while the sequence has not moved.  `work` is the caller's
 * has_work(), evaluated anew each time it is used.
 */
#define SLEEP(buf, other, word, wordvar, seq, ep, token, work)		\
	token = seq;							\
	NEXT_EPISODE(ep);						\
	store(buf, wordvar, ep * 2 + 1);				\
	B1(buf, other);							\
	RECHECK(work);							\
	(seq != token)

#ifdef NO_RECHECK
#define RECHECK(work)	skip
#else
#define RECHECK(work)	if :: work -> goto awake :: else -> skip fi
#endif

proctype Producer()
{
	byte sent, p, c, m, ep, token, lw = 255;

	do
	:: sent == PKTS -> break
	:: else ->
		load(pbuf, V_CONS, cons, c);
		if
		:: p - c < RING ->
			/* producer_put() and producer_publish(): R1 */
			p++;
			store(pbuf, V_PROD, p);
			wake_check(pbuf, dmode, V_DMODE, dseq, lw, m);
			sent++
		:: else ->
			/* the ring is full: wait for space */
			SLEEP(pbuf, cbuf, smode, V_SMODE, sseq, ep, token,
			      (p - cons < RING));
		awake:	store(pbuf, V_SMODE, ep * 2)
		fi
	od;
	/* apq_producer_detach(): the close (release), then a wake */
	store(pbuf, V_SCLOSED, 1);
	wake_check(pbuf, dmode, V_DMODE, dseq, lw, m);
	pdone = true
}

proctype Consumer()
{
	byte got, p, c, m, ep, token, lw = 255;
	bool closed;

	do
	:: true ->
		load(cbuf, V_PROD, prod, p);
		if
		:: p != c ->
			/* a packet: take it, release its space (R2) */
			c++;
			got++;
			store(cbuf, V_CONS, c);
			wake_check(cbuf, smode, V_SMODE, sseq, lw, m)
		:: else ->
			load(cbuf, V_SCLOSED, sclosed, closed);
			if
			:: closed ->
				/* gone: drain what it published, then end */
				load(cbuf, V_PROD, prod, p);
				if
				:: p == c -> break
				:: else -> skip
				fi
			:: else ->
				SLEEP(cbuf, pbuf, dmode, V_DMODE, dseq, ep,
				      token, (prod != c || sclosed));
			awake:	store(cbuf, V_DMODE, ep * 2)
			fi
		fi
	od;
	assert(got == PKTS);
	cdone = true
}

init {
	atomic {
		run Flusher(pbuf);
		run Flusher(cbuf);
		run Producer();
		run Consumer()
	}
}

ltl done { <> (pdone && cdone) }
