/* SPDX-License-Identifier: MIT */
/* Floods: see flood.h. */
#include <errno.h>
#include <time.h>

#include "flood.h"

static int64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t apq_flood_event(struct apq_flood *f, int64_t now, uint32_t budget)
{
	int64_t pause = APQ_FLOOD_PAUSE_NS, used;

	if (now - f->last_ns > APQ_FLOOD_WINDOW_NS) {
		f->streak = 0;
		f->cpu_mark = 0;
	}
	f->last_ns = now;
	if (++f->streak <= budget)
		return 0;
	/* Only a flood pays for reading the thread's CPU clock. */
	used = f->cpu_mark ? thread_cpu_ns() - f->cpu_mark : 0;
	if (used > pause / APQ_FLOOD_PAUSE_FACTOR)
		pause = used * APQ_FLOOD_PAUSE_FACTOR;
	return pause;
}

void apq_flood_paused(struct apq_flood *f, int64_t now)
{
	f->cpu_mark = thread_cpu_ns();
	/* A pause is no quiet window: the streak goes on from its end. */
	f->last_ns = now;
}

void apq_sleep_until(int64_t until)
{
	struct timespec ts = { .tv_sec = until / 1000000000,
			       .tv_nsec = until % 1000000000 };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}
