/* SPDX-License-Identifier: MIT */
/*
 * Floods (private): what a hostile peer can make this side do as often as
 * it likes (wake up and find nothing, take an event that means nothing) is
 * counted, and past a budget slowed down, as Xen's lateeoi delays the end
 * of a spurious event.
 *
 * Events less than APQ_FLOOD_WINDOW_NS apart make a streak; past budget
 * events in a streak, each further one calls for a pause of at least
 * APQ_FLOOD_PAUSE_NS, and of APQ_FLOOD_PAUSE_FACTOR times the CPU this
 * thread spent since the last pause: whatever an event costs on this
 * machine, the flood then gets at most 1 / (1 + factor) of a CPU, and real
 * work waits at most one pause longer.  A quiet window ends the streak.  No
 * honest peer comes near a budget.
 */
#ifndef APQ_LIB_FLOOD_H
#define APQ_LIB_FLOOD_H

#include <stdint.h>

#define APQ_FLOOD_WINDOW_NS	(10 * 1000 * 1000)
#define APQ_FLOOD_PAUSE_NS	(1000 * 1000)
#define APQ_FLOOD_PAUSE_FACTOR	24		/* at most 4 % of a CPU */
/* Wakeups that brought nothing (a sleeper), events that brought nothing
 * (a Xen waiter), per streak. */
#define APQ_SPURIOUS_BUDGET	32

struct apq_flood {
	int64_t last_ns;	/* the last event */
	uint32_t streak;
	int64_t cpu_mark;	/* the thread's CPU when the last pause ended */
};

/* Count an event at now (CLOCK_MONOTONIC).  @return how long to pause
 * before the next one, in ns: 0 outside a flood. */
int64_t apq_flood_event(struct apq_flood *f, int64_t now, uint32_t budget);

/* The pause ends at now (CLOCK_MONOTONIC): a waiter calls this when it
 * wakes from it, an event loop when it hands the pause to its timer. */
void apq_flood_paused(struct apq_flood *f, int64_t now);

/* Sleep until the absolute CLOCK_MONOTONIC time until, signals or not. */
void apq_sleep_until(int64_t until);

#endif /* APQ_LIB_FLOOD_H */
