/*
 * test_util.c - the generic helpers of core/util.c: qc_lower_bound_u64
 * against a linear scan over every key of small sorted arrays (repeats,
 * extremes, empty), and qc_sort_unique_u64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../core/util.h"

static size_t linear(const uint64_t *v, size_t n, uint64_t x)
{
	size_t i = 0;
	while (i < n && v[i] < x)
		i++;
	return i;
}

static void lower_bound_edges(void **state)
{
	(void)state;
	const uint64_t v[] = { 0, 3, 3, 3, 7, UINT64_MAX };
	const size_t n = sizeof(v) / sizeof(v[0]);
	assert_int_equal(qc_lower_bound_u64(NULL, 0, 5), 0);
	assert_int_equal(qc_lower_bound_u64(v, n, 0), 0);
	assert_int_equal(qc_lower_bound_u64(v, n, 1), 1);
	assert_int_equal(qc_lower_bound_u64(v, n, 3), 1); /* the first of the repeats */
	assert_int_equal(qc_lower_bound_u64(v, n, 4), 4);
	assert_int_equal(qc_lower_bound_u64(v, n, 8), 5);
	assert_int_equal(qc_lower_bound_u64(v, n, UINT64_MAX), 5);
	assert_int_equal(qc_lower_bound_u64(v, n - 1, UINT64_MAX), n - 1); /* all below: n */
	assert_int_equal(qc_lower_bound_u64(v, 1, 0), 0);
	assert_int_equal(qc_lower_bound_u64(v, 1, 1), 1);
}

/* Every length 0..40 of sorted arrays with repeats (values 0..2n, step
 * 0-2), every key from 0 to past the largest value. */
static void lower_bound_matches_linear(void **state)
{
	(void)state;
	uint64_t v[40];
	unsigned seed = 1;
	for (size_t n = 0; n <= 40; n++) {
		for (int round = 0; round < 20; round++) {
			uint64_t x = 0;
			for (size_t i = 0; i < n; i++) {
				seed = seed * 1103515245u + 12345u;
				x += (seed >> 16) % 3;
				v[i] = x;
			}
			for (uint64_t k = 0; k <= x + 2; k++)
				assert_int_equal(qc_lower_bound_u64(v, n, k), linear(v, n, k));
		}
	}
}

static void sort_unique(void **state)
{
	(void)state;
	uint64_t v[] = { 9, 1, 9, UINT64_MAX, 0, 1, 1 };
	size_t n = qc_sort_unique_u64(v, sizeof(v) / sizeof(v[0]));
	assert_int_equal(n, 4);
	assert_int_equal(v[0], 0);
	assert_int_equal(v[1], 1);
	assert_int_equal(v[2], 9);
	assert_true(v[3] == UINT64_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lower_bound_edges),
		cmocka_unit_test(lower_bound_matches_linear),
		cmocka_unit_test(sort_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
