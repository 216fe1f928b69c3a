/* SPDX-License-Identifier: MIT */
/*
 * Wakeup policies.  The fixed ones are a number each; ADAPTIVE is the ski
 * rental problem, learned online (doc/adaptive.md):
 *
 *   A wait for work either polls (costs its length, in CPU) or blocks
 *   (costs B, in CPU too: the waker's notify call, and this side's own
 *   syscall and context switches to block and resume).  Not knowing the
 *   gap, polling for B and then blocking never costs more than twice the
 *   better choice made knowing it (Karlin, Li, Manasse and Owicki, SOSP
 *   '91).  Knowing the recent gaps does better: poll only while the gaps
 *   short enough to pay (shorter than B less the wake-up latency, since a
 *   late wake-up batches packets for free) are common enough that polling
 *   saves more on them than it wastes on the others, and then for B.  The
 *   saving is judged with hysteresis, so bursty traffic does not flip the
 *   choice on every gap.
 *
 *   B is measured, not assumed: each waker times its notify call and
 *   publishes the smoothed figure beside the wake sequence, with the time it
 *   woke; the sleeper reads both once when a wake ends its block, and
 *   measures its own CPU on a sample of blocks.  The figures come from
 *   whatever the backend does (futex, eventfd, Xen hypercall), so each
 *   backend's own cost is what is learned.  The wake-up latency is not
 *   CPU, but it batches packets (above) and tells a crowded CPU (below).
 *
 *   A sleeper whose polls lose their CPU, or whose wakes come late, shares
 *   its CPU with more runnable threads than there are CPUs: polling then
 *   takes time from the very thread it waits for, so it stops for a while.
 */
#include <errno.h>
#include <time.h>

#include "atomic.h"
#include "policy.h"

/* Until measured: a futex wake, a futex wait and its context switches, and
 * a wake-up, on a quiet machine. */
#define PRIOR_WAKE_CALL_NS	5000
#define PRIOR_BLOCK_CPU_NS	3000
#define PRIOR_WAKE_LATE_NS	10000
/* One block in this many has its CPU measured. */
#define BLOCK_SAMPLE		16
/* B's bounds: below, polling would not cover a syscall; above, the peer's
 * figures are not believed (they are advice from shared memory). */
#define BLOCK_MIN_NS		1000
#define BLOCK_MAX_NS		200000
_Static_assert(BLOCK_MIN_NS >= APQ_POLICY_QUICK_NS, "quick polls within B");
/* A wake-to-run time beyond this is another clock (a peer in another
 * domain) or a stale stamp, not a measurement. */
#define LATE_MAX_NS		(10 * 1000 * 1000)

#define RATE_ONE		1024
/* Smoothing: a new gap counts 1/16, a new cost 1/8. */
#define RATE_SHIFT		4
#define COST_SHIFT		3
/* Hysteresis: the expected saving must pass B/8 either way to flip. */
#define FLIP_SHIFT		3

/* Crowded: a wake later than LATE_FACTOR times the usual, and at least
 * LATE_MIN_NS; when a quarter of recent waits were crowded, no polling
 * for QUIET_NS, then try again. */
#define LATE_FACTOR		8
#define LATE_MIN_NS		(100 * 1000)
#define CROWD_LIMIT		(RATE_ONE / 4)
#define QUIET_NS		(20 * 1000 * 1000)

static int64_t ewma(int64_t avg, int64_t sample, unsigned int shift)
{
	return avg + ((sample - avg) >> shift);
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

int apq_policy_check(const struct apq_config *cfg)
{
	if (cfg && (unsigned int)cfg->policy > APQ_POLICY_BUSY_POLL)
		return -EINVAL;
	return 0;
}

bool apq_policy_always_notify(const struct apq_config *cfg)
{
	return cfg && cfg->policy == APQ_POLICY_ALWAYS_NOTIFY;
}

void apq_policy_init(struct apq_policy_state *p, const struct apq_config *cfg)
{
	enum apq_policy kind = cfg ? cfg->policy : APQ_POLICY_ADAPTIVE;

	*p = (struct apq_policy_state){
		.adaptive = kind == APQ_POLICY_ADAPTIVE,
		.spinning = true,
		.fixed_ns = kind == APQ_POLICY_SPIN ? cfg->spin_ns :
			    kind == APQ_POLICY_BUSY_POLL ? UINT64_MAX : 0,
		.wake_call_ns = PRIOR_WAKE_CALL_NS,
		.block_cpu_ns = PRIOR_BLOCK_CPU_NS,
		.wake_late_ns = PRIOR_WAKE_LATE_NS,
		/* Start as a sleeper that polls: the first gaps decide. */
		.hit_gap_ns = (PRIOR_WAKE_CALL_NS + PRIOR_BLOCK_CPU_NS) / 4,
		.hit_rate = RATE_ONE * 5 / 8,
	};
}

/* B: what blocking costs, as learned. */
static int64_t block_cost(const struct apq_policy_state *p)
{
	return clamp(p->wake_call_ns + p->block_cpu_ns, BLOCK_MIN_NS,
		     BLOCK_MAX_NS);
}

uint64_t apq_policy_budget(struct apq_policy_state *p, int64_t now)
{
	if (!p->adaptive)
		return p->fixed_ns;
	if (now < p->quiet_until)
		return 0;
	/* The pause is over: apq_policy_polls_quick() may say yes again. */
	p->quiet_until = 0;
	if (!p->spinning)
		return 0;
	return (uint64_t)block_cost(p);
}

bool apq_policy_polls_quick(const struct apq_policy_state *p)
{
	if (!p->adaptive)
		return p->fixed_ns >= APQ_POLICY_QUICK_NS;
	/* B is never below its clamp, which is at least the quick polls. */
	return p->spinning && p->quiet_until == 0;
}

/*
 * Re-judge polling: per wait, polling for B saves B - gap on a gap shorter
 * than B (it runs at once instead of blocking), and wastes B on a longer
 * one (it blocks anyway).  In RATE_ONE units of ns.
 */
static void policy_judge(struct apq_policy_state *p)
{
	int64_t b = block_cost(p);
	int64_t saving = p->hit_rate * (b - p->hit_gap_ns) -
			 (RATE_ONE - p->hit_rate) * b;
	int64_t margin = (b * RATE_ONE) >> FLIP_SHIFT;

	if (p->spinning && saving < -margin)
		apq_store_once(&p->spinning, false);
	else if (!p->spinning && saving > margin)
		apq_store_once(&p->spinning, true);
}

void apq_policy_waited(struct apq_policy_state *p, int64_t gap_ns, bool found,
		       bool crowded, int64_t now)
{
	int64_t b;
	bool hit;

	if (!p->adaptive)
		return;
	b = block_cost(p);
	/* Had it blocked, the packets of the wake-up's delay would have
	 * waited for one block between them: per packet, blocking costs
	 * B * gap / (gap + wake-up) and polling the gap, so a poll pays off
	 * only on a gap shorter than B less the wake-up. */
	if (gap_ns < 0)
		gap_ns = 0;
	gap_ns += p->wake_late_ns;
	hit = found && gap_ns <= b;
	p->hit_rate += ((hit ? RATE_ONE : 0) - p->hit_rate) >> RATE_SHIFT;
	if (hit)
		p->hit_gap_ns = ewma(p->hit_gap_ns, gap_ns, RATE_SHIFT);
	p->crowd_rate += ((crowded ? RATE_ONE : 0) - p->crowd_rate) >>
			 RATE_SHIFT;
	/* Only a crowded wait starts a pause: the others may not have read
	 * the clock (apq_policy_polls_quick()). */
	if (crowded && p->crowd_rate > CROWD_LIMIT && now >= p->quiet_until) {
		p->quiet_until = now + QUIET_NS;
		/* Judged afresh after the pause. */
		p->crowd_rate = 0;
	}
	policy_judge(p);
}

bool apq_policy_woken(struct apq_policy_state *p, uint32_t wake_call_ns,
		      uint64_t woken_at_ns, int64_t now)
{
	int64_t late;
	bool crowded;

	if (!p->adaptive)
		return false;
	if (wake_call_ns)
		apq_store_once(&p->wake_call_ns,
			       ewma(p->wake_call_ns,
				    clamp(wake_call_ns, 0, BLOCK_MAX_NS),
				    COST_SHIFT));
	/* Compared unsigned first: the peer may have written any value. */
	if (woken_at_ns == 0 || woken_at_ns > (uint64_t)now)
		return false;
	late = now - (int64_t)woken_at_ns;
	if (late > LATE_MAX_NS)
		return false;
	crowded = late > LATE_MIN_NS && late > LATE_FACTOR * p->wake_late_ns;
	/* The usual wake-up, not the crowded one: rises slowly, falls
	 * fast, so that late wakes stand out against it. */
	apq_store_once(&p->wake_late_ns,
		       ewma(p->wake_late_ns, clamp(late, 0, BLOCK_MAX_NS),
			    late > p->wake_late_ns ? COST_SHIFT + 2 : 1));
	apq_store_once(&p->woken, true);
	return crowded;
}

bool apq_policy_sample_block(struct apq_policy_state *p)
{
	return p->adaptive && p->blocks++ % BLOCK_SAMPLE == 0;
}

int64_t apq_policy_thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void apq_policy_blocked(struct apq_policy_state *p, int64_t cpu_ns)
{
	apq_store_once(&p->block_cpu_ns,
		       ewma(p->block_cpu_ns, clamp(cpu_ns, 0, BLOCK_MAX_NS),
			    COST_SHIFT));
	apq_store_once(&p->woken, true);
}

uint32_t apq_policy_wake_call_ewma(uint32_t published, int64_t call_ns)
{
	int64_t prev = published ? published : call_ns;

	return (uint32_t)clamp(ewma(prev, clamp(call_ns, 0, BLOCK_MAX_NS),
				    COST_SHIFT), 0, BLOCK_MAX_NS);
}

void apq_policy_add_stats(const struct apq_policy_state *p,
			  struct apq_stats *out)
{
	if (!p->adaptive)
		return;
	out->polling += apq_load_once(&p->spinning);
	if (!apq_load_once(&p->woken))
		return;
	out->wake_call_ns += (uint64_t)apq_load_once(&p->wake_call_ns);
	out->block_cpu_ns += (uint64_t)apq_load_once(&p->block_cpu_ns);
	out->wake_late_ns += (uint64_t)apq_load_once(&p->wake_late_ns);
}
