/* SPDX-License-Identifier: MIT */
/*
 * The Xen backend's calls outside Xen: argument checks, sizes, and the
 * errors a machine without /dev/xen gives.  What they do under a real
 * hypervisor is the `xen` suite's job (tests/xen/), which boots one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <check.h>

#include <apq/apq.h>
#include <apq/xen.h>

static int on_xen(void)
{
	return access("/dev/xen/evtchn", F_OK) == 0;
}

START_TEST(test_region_refs)
{
	/* The link page, then the region's pages: 640 bytes of control
	 * area push a 4 KiB ring into a second page. */
	ck_assert_uint_eq(apq_xen_region_refs(4096), 3);
	ck_assert_uint_eq(apq_xen_region_refs(8192), 4);
	ck_assert_uint_eq(apq_xen_region_refs(1 << 20), 1 + 257);
	ck_assert_uint_eq(apq_xen_region_refs(0), 0);
	ck_assert_uint_eq(apq_xen_region_refs(4095), 0);
	ck_assert_uint_eq(apq_xen_region_refs(6144), 0);
}
END_TEST

START_TEST(test_not_a_xen_notifier)
{
	struct apq_notifier *futex;
	struct apq_xen_region *x = NULL;
	uint32_t refs[3] = { 0 };

	ck_assert_int_eq(apq_notifier_futex(&futex), 0);
	ck_assert_int_eq(apq_notifier_xen_port(futex), -EINVAL);
	ck_assert_int_eq(apq_notifier_xen_fd(futex), -EINVAL);
	ck_assert_int_eq(apq_notifier_xen_port(NULL), -EINVAL);
	ck_assert_int_eq(apq_notifier_xen_fd(NULL), -EINVAL);
	ck_assert_int_eq(apq_xen_region_share(&x, 0, 4096, futex, refs),
			 -EINVAL);
	ck_assert_int_eq(apq_xen_region_map(&x, 0, 4096, refs, futex),
			 -EINVAL);
	ck_assert_ptr_null(x);
	apq_notifier_free(futex);
}
END_TEST

START_TEST(test_null_arguments)
{
	ck_assert_int_eq(apq_notifier_xen_unbound(NULL, 0), -EINVAL);
	ck_assert_int_eq(apq_notifier_xen_interdomain(NULL, 0, 1), -EINVAL);
	ck_assert_int_eq(apq_notifier_xen_adopt(NULL, NULL, 1), -EINVAL);
	ck_assert_ptr_null(apq_xen_region_mem(NULL));
	ck_assert_uint_eq(apq_xen_region_bytes(NULL), 0);
	apq_xen_region_free(NULL);
}
END_TEST

START_TEST(test_no_xen_here)
{
	struct apq_notifier *n = NULL;

	if (on_xen())
		return;
	/* libxenevtchn opens /dev/xen/evtchn and reports its errno. */
	ck_assert_int_eq(apq_notifier_xen_unbound(&n, 0), -ENOENT);
	ck_assert_int_eq(apq_notifier_xen_interdomain(&n, 0, 1), -ENOENT);
	ck_assert_ptr_null(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("xen-api");
	TCase *tc = tcase_create("outside Xen");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_region_refs);
	tcase_add_test(tc, test_not_a_xen_notifier);
	tcase_add_test(tc, test_null_arguments);
	tcase_add_test(tc, test_no_xen_here);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
