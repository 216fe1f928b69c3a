/* SPDX-License-Identifier: MIT */
/*
 * Noticing a peer process that died (private).
 *
 * A side that dies without detaching never marks its mode word closed, and
 * a futex has no owner the kernel could report dead.  So each side writes
 * who it is into the mode word it owns (the one it sleeps on) when it
 * attaches: its pid, the time it started (which tells a reused pid apart)
 * and its pid namespace.  The peer, whenever it finds nothing to do, looks at
 * that process through a pidfd, at most once per APQ_LIVENESS_PERIOD_NS: a
 * pidfd becomes readable when its process has exited.
 *
 * Limits: a peer in another pid namespace cannot be looked up and counts as
 * alive (only detach and the backend's own means tell then); threads of one
 * process count as one peer, alive while the process is.  What the peer
 * writes there is validated like everything else it writes: a lying peer can
 * only make itself look alive or dead.
 */
#ifndef APQ_LIB_LIVENESS_H
#define APQ_LIB_LIVENESS_H

#include <stdint.h>

#include "mode.h"

/* How often a side with nothing to do may look at its peer. */
#define APQ_LIVENESS_PERIOD_NS	(10 * 1000 * 1000)

/* What a side watches of its peer; process-local. */
struct apq_peer_watch {
	const struct apq_mode_layout *word;	/* the peer's own word */
	int pidfd;		/* for the identity below; -1: none */
	uint32_t pid;
	uint64_t start;
	int64_t next_ns;	/* the next look, CLOCK_MONOTONIC_COARSE */
	int state;		/* 0 alive or unknown; APQ_PEER_DIED */
};

/* Write this process's identity into w, the word its side owns. */
void apq_owner_publish(struct apq_mode_layout *w);

void apq_peer_watch_init(struct apq_peer_watch *pw,
			 const struct apq_mode_layout *peer_word);
void apq_peer_watch_fini(struct apq_peer_watch *pw);

/*
 * Whether the process that owns the peer's word is still there.  Cheap when
 * called more often than APQ_LIVENESS_PERIOD_NS: a coarse clock read.
 * @return 0 (alive, or cannot tell); APQ_PEER_DIED.
 */
int apq_peer_watch_check(struct apq_peer_watch *pw);

#endif /* APQ_LIB_LIVENESS_H */
