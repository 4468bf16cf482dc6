/*
 * test_snaplast.c - the last snapshot entry's lengths measured against the
 * table's end (checker/snaplast.c): each single damaged length found
 * again, names that start with digits, stale bytes after the entry (no
 * guess), two layouts that both fit (no guess), an entry that ends on a
 * cluster boundary, version 2's entries without extra data, and the ID and
 * UTF-8 name rules.  The image tests (tests/images/repair-snapshot-fields.sh)
 * run the same on real images.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/snaplast.h"
#include "../../core/reader.h"

#define CS 4096u
#define AT 0x30000u /* the entry's file offset (cluster aligned) */

/* An entry at the start of two zeroed clusters: `extra` bytes of extra
 * data (disk_size set), then id and name; the caller declares lengths. */
static void entry(uint8_t *b, uint32_t extra, const char *id, const char *name)
{
	memset(b, 0, 2 * CS);
	qc_put_be32(b + 36, extra);
	if (extra >= 16)
		qc_put_be64(b + 48, UINT64_C(16) << 20); /* disk_size */
	memcpy(b + 40 + extra, id, strlen(id));
	memcpy(b + 40 + extra + strlen(id), name, strlen(name));
}

static enum qc_snaplast_result fit(const uint8_t *b, size_t n, uint64_t at, unsigned version,
				   uint32_t x, uint32_t k, uint32_t m, struct qc_snap_lens *out)
{
	struct qc_snap_lens d = { x, k, m }, other;
	char why[256];
	return qc_snaplast_fit(b, n, at, CS, version, &d, out, &other, why, sizeof(why));
}

static void expect_one(const uint8_t *b, uint32_t x, uint32_t k, uint32_t m, uint32_t wx,
		       uint32_t wk, uint32_t wm)
{
	struct qc_snap_lens got;
	assert_int_equal(fit(b, 2 * CS, AT, 3, x, k, m, &got), QC_SNAPLAST_ONE);
	assert_int_equal(got.extra, wx);
	assert_int_equal(got.id, wk);
	assert_int_equal(got.name, wm);
}

static void one_length_damaged(void **state)
{
	(void)state;
	uint8_t b[2 * CS];
	entry(b, 24, "1", "snap1");
	expect_one(b, 0x8018, 1, 5, 24, 1, 5);     /* extra ^0x8000 */
	expect_one(b, 0xffffffff, 1, 5, 24, 1, 5); /* extra all ones */
	expect_one(b, 8, 1, 5, 24, 1, 5);          /* extra too small */
	expect_one(b, 24, 0xffff, 5, 24, 1, 5);    /* id length */
	expect_one(b, 24, 2, 5, 24, 1, 5);
	expect_one(b, 24, 1, 0xffff, 24, 1, 5);    /* name length */
	expect_one(b, 24, 1, 6, 24, 1, 5);
	/* 16 bytes of extra data (QEMU before 5.2) */
	entry(b, 16, "12", "disk-only");
	expect_one(b, 0x10, 0x102, 9, 16, 2, 9);
	expect_one(b, 0x4010, 2, 9, 16, 2, 9);
}

static void digits_in_name(void **state)
{
	(void)state;
	uint8_t b[2 * CS];
	/* "1" + "23abc": only ID "1" leaves the declared 5-byte name ending
	 * before the zeros */
	entry(b, 24, "1", "23abc");
	expect_one(b, 24, 0x1001, 5, 24, 1, 5);
	/* "12" + "abcd" declared id 2, name 5 (runs into the zeros): ID "1"
	 * with name "2abcd", or ID "12" with name "abcd" -- both fit */
	entry(b, 24, "12", "abcd");
	struct qc_snap_lens got;
	assert_int_equal(fit(b, 2 * CS, AT, 3, 24, 2, 5, &got), QC_SNAPLAST_MANY);
}

static void stale_bytes_after(void **state)
{
	(void)state;
	uint8_t b[2 * CS];
	struct qc_snap_lens got;
	entry(b, 24, "1", "snap1");
	b[CS - 3] = 0x41; /* a stale byte later in the cluster */
	assert_int_equal(fit(b, 2 * CS, AT, 3, 0x8018, 1, 5, &got), QC_SNAPLAST_NONE);
	/* nothing readable past the entry's cluster: the rest of it must be */
	entry(b, 24, "1", "snap1");
	assert_int_equal(fit(b, 100, AT, 3, 0x8018, 1, 5, &got), QC_SNAPLAST_NONE);
}

static void ends_on_cluster_boundary(void **state)
{
	(void)state;
	uint8_t b[2 * CS];
	struct qc_snap_lens got;
	/* the entry starts 70 bytes before a boundary and its name ends on
	 * it; the next cluster holds something else */
	entry(b, 24, "3", "abcde");
	memset(b + 70, 0xcc, CS);
	assert_int_equal(fit(b, 2 * CS, AT + CS - 70, 3, 0x8018, 1, 5, &got), QC_SNAPLAST_ONE);
	assert_int_equal(got.extra, 24);
	/* its name length damaged: the name may stop at the boundary, or run
	 * on through bytes that are not a name: one fits */
	assert_int_equal(fit(b, 2 * CS, AT + CS - 70, 3, 24, 1, 0x900, &got), QC_SNAPLAST_ONE);
	assert_int_equal(got.name, 5);
	/* ... but bytes that read as a name and end before zeros fit too */
	memset(b + 70, 'x', 10);
	memset(b + 80, 0, CS - 10);
	assert_int_equal(fit(b, 2 * CS, AT + CS - 70, 3, 24, 1, 0x900, &got), QC_SNAPLAST_MANY);
}

static void version2(void **state)
{
	(void)state;
	uint8_t b[2 * CS];
	struct qc_snap_lens got;
	entry(b, 0, "4", "old");
	assert_int_equal(fit(b, 2 * CS, AT, 2, 0x8000, 1, 3, &got), QC_SNAPLAST_ONE);
	assert_int_equal(got.extra, 0);
	/* version 3 needs extra data: no layout fits */
	assert_int_equal(fit(b, 2 * CS, AT, 3, 0x8000, 1, 3, &got), QC_SNAPLAST_NONE);
}

static void id_and_name_rules(void **state)
{
	(void)state;
	assert_true(qc_snap_id_ok((const uint8_t *)"1", 1));
	assert_true(qc_snap_id_ok((const uint8_t *)"18446744073709551615", 20));
	assert_false(qc_snap_id_ok((const uint8_t *)"01", 2));
	assert_false(qc_snap_id_ok((const uint8_t *)"", 0));
	assert_false(qc_snap_id_ok((const uint8_t *)"1a", 2));
	assert_false(qc_snap_id_ok((const uint8_t *)"123456789012345678901", 21));
	assert_true(qc_snap_name_ok((const uint8_t *)"", 0));
	assert_true(qc_snap_name_ok((const uint8_t *)"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
	assert_false(qc_snap_name_ok((const uint8_t *)"a\0b", 3));
	assert_false(qc_snap_name_ok((const uint8_t *)"a\tb", 3));
	assert_false(qc_snap_name_ok((const uint8_t *)"\x7f", 1));
	assert_false(qc_snap_name_ok((const uint8_t *)"\xc0\x80", 2));     /* overlong NUL */
	assert_false(qc_snap_name_ok((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
	assert_false(qc_snap_name_ok((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
	assert_false(qc_snap_name_ok((const uint8_t *)"\xc3", 1));         /* cut */
	assert_false(qc_snap_name_ok((const uint8_t *)"\x80", 1));
	assert_false(qc_snap_name_ok((const uint8_t *)"\xff", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_length_damaged),
		cmocka_unit_test(digits_in_name),
		cmocka_unit_test(stale_bytes_after),
		cmocka_unit_test(ends_on_cluster_boundary),
		cmocka_unit_test(version2),
		cmocka_unit_test(id_and_name_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
