/*
 * test_problems.c - the problem table: codes unique, sorted, kebab-case,
 * grouped by a known structure prefix, every entry complete; and the
 * problem list's counting and per-code record cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/problems.h"

static void codes_sorted_unique(void **state)
{
	(void)state;
	for (int i = 1; i < QC_P_COUNT; i++)
		assert_true(strcmp(qc_problem_table[i - 1].code, qc_problem_table[i].code) < 0);
}

static void codes_kebab_case_with_prefix(void **state)
{
	(void)state;
	static const char *const prefixes[] = {
		"bitmap-", "compressed-", "ext-", "header-", "image-", "l1-", "l2-", "luks-",
		"overlap-", "refblock-", "refcount-", "reftable-", "snapshot-", "vmstate-",
	};
	for (int i = 0; i < QC_P_COUNT; i++) {
		const struct qc_problem_info *p = &qc_problem_table[i];
		assert_non_null(p->code);
		assert_non_null(p->summary);
		assert_non_null(p->structure);
		assert_true(strlen(p->summary) > 10);
		for (const char *c = p->code; *c; c++)
			assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-');
		bool ok = false;
		for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++)
			ok |= strncmp(p->code, prefixes[k], strlen(prefixes[k])) == 0;
		assert_true(ok);
		assert_int_equal(qc_code_by_name(p->code), i);
	}
	assert_int_equal(qc_code_by_name("no-such-code"), QC_P_COUNT);
}

static void counting_and_cap(void **state)
{
	(void)state;
	struct qc_problems ps;
	qc_problems_init(&ps);
	for (int i = 0; i < QC_MAX_RECORDS_PER_CODE + 5; i++)
		qc_report(&ps, QC_P_HEADER_DIRTY, QC_LOC(72), 1, "dirty %d", i);
	qc_report(&ps, QC_P_HEADER_CORRUPT_BIT, QC_LOC(72), 3, "corrupt");
	assert_int_equal(ps.n, QC_MAX_RECORDS_PER_CODE + 1);
	assert_int_equal(ps.omitted, 5);
	assert_int_equal(ps.warnings, QC_MAX_RECORDS_PER_CODE + 5);
	assert_int_equal(ps.corruptions, 3);
	assert_int_equal(ps.leaks, 0);
	assert_false(ps.unsupported);
	assert_string_equal(ps.v[0].message, "dirty 0");
	qc_report(&ps, QC_P_HEADER_VERSION_UNSUPPORTED, QC_LOC(4), 1, "v4");
	assert_true(ps.unsupported);
	qc_problems_free(&ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(codes_sorted_unique),
		cmocka_unit_test(codes_kebab_case_with_prefix),
		cmocka_unit_test(counting_and_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
