/* SPDX-License-Identifier: MIT */
/*
 * test-policy: ADAPTIVE's rule, fed measurements directly (lib/policy.c
 * alone), so that what it decides does not depend on how loaded the
 * machine is: it polls on gaps shorter than a block's cost and blocks on
 * longer ones; mixed traffic near the break-even point does not flip it on
 * every gap; a crowded CPU stops polling for a while; what the peer
 * advises is clamped; the fixed policies are their number.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>

#include "policy.h"

#define US(x)	((int64_t)(x) * 1000)
#define MS(x)	((int64_t)(x) * 1000 * 1000)

static struct apq_policy_state adaptive(void)
{
	struct apq_policy_state p;

	apq_policy_init(&p, NULL);
	return p;
}

/* Wakes that cost a 4 us call, and blocks 10 us of this side's CPU:
 * B = 14 us.  This side runs 4 us after a wake: a gap g is worth a poll
 * when g + 4 us < B. */
static int64_t learn_block(struct apq_policy_state *p, int64_t now)
{
	for (int i = 0; i < 64; i++) {
		now += MS(1);
		apq_policy_woken(p, 4000, (uint64_t)(now - US(4)), now);
		apq_policy_blocked(p, US(10));
	}
	return now;
}

static int64_t feed(struct apq_policy_state *p, int64_t now, int64_t gap,
		    int n)
{
	for (int i = 0; i < n; i++) {
		now += gap + US(1);
		apq_policy_waited(p, gap, true, false, now);
	}
	return now;
}

START_TEST(test_fixed)
{
	struct apq_config cfg = { .policy = APQ_POLICY_SPIN, .spin_ns = 777 };
	struct apq_policy_state p;

	apq_policy_init(&p, &cfg);
	ck_assert_uint_eq(apq_policy_budget(&p, 0), 777);
	/* Fixed policies learn nothing. */
	feed(&p, 0, MS(5), 100);
	ck_assert_uint_eq(apq_policy_budget(&p, MS(600)), 777);
	cfg.policy = APQ_POLICY_BUSY_POLL;
	apq_policy_init(&p, &cfg);
	ck_assert_uint_eq(apq_policy_budget(&p, 0), UINT64_MAX);
	cfg.policy = APQ_POLICY_ALWAYS_NOTIFY;
	apq_policy_init(&p, &cfg);
	ck_assert_uint_eq(apq_policy_budget(&p, 0), 0);
	ck_assert(apq_policy_always_notify(&cfg));
	ck_assert(!apq_policy_always_notify(NULL));
	ck_assert_int_eq(apq_policy_check(NULL), 0);
	cfg.policy = (enum apq_policy)99;
	ck_assert_int_eq(apq_policy_check(&cfg), -EINVAL);
}
END_TEST

START_TEST(test_short_gaps_poll_for_block_cost)
{
	struct apq_policy_state p = adaptive();
	int64_t now = learn_block(&p, 0);

	now = feed(&p, now, MS(2), 200);
	ck_assert_uint_eq(apq_policy_budget(&p, now), 0);
	now = feed(&p, now, US(2), 200);
	/* Polls for B, what blocking costs (learned: within a few ns). */
	ck_assert_uint_ge(apq_policy_budget(&p, now), US(14) - 100);
	ck_assert_uint_le(apq_policy_budget(&p, now), US(14));
}
END_TEST

START_TEST(test_long_gaps_block_at_once)
{
	struct apq_policy_state p = adaptive();
	int64_t now = learn_block(&p, 0);

	now = feed(&p, now, US(2), 200);
	ck_assert_uint_gt(apq_policy_budget(&p, now), 0);
	now = feed(&p, now, US(500), 200);
	ck_assert_uint_eq(apq_policy_budget(&p, now), 0);
}
END_TEST

/* Bursts: a few short gaps, then a long one.  Whatever the mix, the
 * choice must not flip on single gaps: count flips over a long run. */
START_TEST(test_hysteresis)
{
	struct apq_policy_state p = adaptive();
	int64_t now = learn_block(&p, 0);
	uint64_t was = apq_policy_budget(&p, now);
	int flips = 0, i;

	for (i = 0; i < 4000; i++) {
		/* 7 short gaps in 11, spread out: about the share at which
		 * polling for B = 14 us saves (B - 6 us) on them what it
		 * wastes (B) on the others. */
		int64_t gap = i * 7 % 11 < 7 ? US(2) : US(200);
		uint64_t b;

		now += gap;
		apq_policy_waited(&p, gap, true, false, now);
		b = apq_policy_budget(&p, now);
		flips += (b == 0) != (was == 0);
		was = b;
	}
	/* Near break-even: settled once, not flipping with every gap. */
	ck_assert_int_le(flips, 1);
}
END_TEST

START_TEST(test_crowded_stops_polling)
{
	struct apq_policy_state p = adaptive();
	int64_t now = learn_block(&p, 0);
	int i;

	now = feed(&p, now, US(2), 200);
	ck_assert_uint_gt(apq_policy_budget(&p, now), 0);
	for (i = 0; i < 16; i++) {
		now += US(3);
		apq_policy_waited(&p, US(2), true, true, now);
	}
	ck_assert_uint_eq(apq_policy_budget(&p, now), 0);
	/* For a while, then it tries again. */
	ck_assert_uint_eq(apq_policy_budget(&p, now + MS(10)), 0);
	ck_assert_uint_gt(apq_policy_budget(&p, now + MS(30)), 0);
	/* A wake far later than the usual one is a crowded CPU too. */
	ck_assert(!apq_policy_woken(&p, 4000, (uint64_t)(now - US(4)), now));
	ck_assert(apq_policy_woken(&p, 4000, (uint64_t)(now - MS(2)), now));
}
END_TEST

START_TEST(test_advice_clamped)
{
	struct apq_policy_state p = adaptive();
	struct apq_stats st = { 0 };
	int64_t now = MS(1000);
	int i;

	for (i = 0; i < 100; i++) {
		now += MS(1);
		/* A 4 s call; stamps from the future, the past, zero. */
		apq_policy_woken(&p, UINT32_MAX, (uint64_t)(now + MS(1)), now);
		apq_policy_woken(&p, UINT32_MAX, (uint64_t)(now - MS(500)), now);
		apq_policy_woken(&p, UINT32_MAX, 0, now);
	}
	now = feed(&p, now, US(1), 200);
	ck_assert_uint_le(apq_policy_budget(&p, now), US(200));
	apq_policy_add_stats(&p, &st);
	ck_assert_uint_le(st.wake_call_ns, US(200));
	ck_assert_uint_le(st.wake_late_ns, US(200));
	/* A block's CPU is our own measure, and bounded alike. */
	apq_policy_blocked(&p, MS(900));
	ck_assert_uint_le(apq_policy_budget(&p, now), US(200));
	ck_assert_uint_eq(apq_policy_wake_call_ewma(0, MS(50)), US(200));
	ck_assert_uint_eq(apq_policy_wake_call_ewma(0, -5), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("rule");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_fixed);
	tcase_add_test(tc, test_short_gaps_poll_for_block_cost);
	tcase_add_test(tc, test_long_gaps_block_at_once);
	tcase_add_test(tc, test_hysteresis);
	tcase_add_test(tc, test_crowded_stops_polling);
	tcase_add_test(tc, test_advice_clamped);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
