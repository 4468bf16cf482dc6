/*
 * test_entry.c - the L1/L2 entry classifier (core/entry.h): every kind
 * (unallocated, zero, normal, zero-alloc, compressed), every reason, for
 * version 2 and 3, standard and extended L2 entries, with and without an
 * external data file.  64 KiB clusters unless said.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../core/entry.h"
#include "../../core/layout.h"

static const struct qc_entry_geom V3 = { 16, false, false, false };
static const struct qc_entry_geom V2 = { 16, true, false, false };
static const struct qc_entry_geom EXT = { 16, false, true, false };
static const struct qc_entry_geom DF = { 16, false, false, true };
static const struct qc_entry_geom DF_EXT = { 16, false, true, true };

#define COPIED QC_OFLAG_COPIED
#define COMPRESSED QC_OFLAG_COMPRESSED

static void l1_entries(void **state)
{
	(void)state;
	struct qc_entry c = qc_l1e_classify(0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, 0);
	assert_false(qc_entry_followable(&c));

	c = qc_l1e_classify(COPIED | 0x50000, &V3);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.offset, 0x50000);
	assert_int_equal(c.length, 0x10000);
	assert_true(c.copied);
	assert_int_equal(c.reasons, 0);
	assert_true(qc_entry_followable(&c));

	/* reserved bits: reported, still followed (the walk counts it) */
	c = qc_l1e_classify(UINT64_C(1) << 56 | 0x50000, &V3);
	assert_int_equal(c.reasons, QC_ER_RESERVED);
	assert_true(qc_entry_followable(&c));
	c = qc_l1e_classify(0x50000 | 1, &V3);
	assert_int_equal(c.reasons, QC_ER_RESERVED);

	/* flags without offset: never followed */
	c = qc_l1e_classify(COPIED, &V3);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, QC_ER_NO_OFFSET);
	assert_false(qc_entry_followable(&c));
	c = qc_l1e_classify(COPIED | 0x100, &V3);
	assert_int_equal(c.reasons, QC_ER_NO_OFFSET | QC_ER_RESERVED);

	/* unaligned for 64 KiB clusters, aligned for 512-byte ones */
	c = qc_l1e_classify(0x50200, &V3);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.reasons, QC_ER_UNALIGNED);
	assert_false(qc_entry_followable(&c));
	struct qc_entry_geom small = { 9, false, false, false };
	c = qc_l1e_classify(0x50200, &small);
	assert_int_equal(c.reasons, 0);
	assert_int_equal(c.length, 512);
}

static void l2_standard(void **state)
{
	(void)state;
	struct qc_entry c = qc_l2e_classify(0, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, 0);

	c = qc_l2e_classify(COPIED | 0x70000, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.offset, 0x70000);
	assert_false(c.zero);
	assert_true(qc_entry_followable(&c));

	/* zero-plain and zero-alloc */
	c = qc_l2e_classify(QC_OFLAG_ZERO, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_ZERO);
	assert_true(c.zero);
	assert_int_equal(c.reasons, 0);
	c = qc_l2e_classify(QC_OFLAG_ZERO | 0x70000, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_true(c.zero);
	/* version 2 has no zero flag */
	c = qc_l2e_classify(QC_OFLAG_ZERO, 0, &V2);
	assert_int_equal(c.kind, QC_ENTRY_ZERO);
	assert_int_equal(c.reasons, QC_ER_ZERO_V2);
	c = qc_l2e_classify(0x70000, 0, &V2);
	assert_int_equal(c.reasons, 0);

	/* COPIED alone: read as unallocated, flagged */
	c = qc_l2e_classify(COPIED, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, QC_ER_COPIED_NO_OFFSET);
	c = qc_l2e_classify(COPIED | QC_OFLAG_ZERO, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_ZERO);
	assert_int_equal(c.reasons, 0);

	/* reserved bits (1-8, 56-61) and an unaligned data offset */
	c = qc_l2e_classify(0x70000 | 2, 0, &V3);
	assert_int_equal(c.reasons, QC_ER_RESERVED);
	assert_true(qc_entry_followable(&c));
	c = qc_l2e_classify(UINT64_C(1) << 61 | 0x70000, 0, &V3);
	assert_int_equal(c.reasons, QC_ER_RESERVED);
	c = qc_l2e_classify(0x70200, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.reasons, QC_ER_DATA_UNALIGNED);
	assert_false(qc_entry_followable(&c));
}

static void l2_compressed(void **state)
{
	(void)state;
	/* 64 KiB clusters: offset in bits 0..53, sector count - 1 above */
	uint64_t desc = COMPRESSED | (UINT64_C(3) << 54) | 0x80100;
	struct qc_entry c = qc_l2e_classify(desc, 0, &V3);
	assert_int_equal(c.kind, QC_ENTRY_COMPRESSED);
	assert_int_equal(c.offset, 0x80100);
	assert_int_equal(c.length, 4 * 512 - 0x100);
	assert_int_equal(c.reasons, 0);
	assert_true(qc_entry_followable(&c));
	c = qc_l2e_classify(desc | COPIED, 0, &V3);
	assert_int_equal(c.reasons, QC_ER_COMPRESSED_COPIED);
	assert_true(qc_entry_followable(&c));
	/* bits 56+ of the offset: possible with small clusters only */
	struct qc_entry_geom small = { 9, false, false, false };
	c = qc_l2e_classify(COMPRESSED | (UINT64_C(1) << 56), 0, &small);
	assert_int_equal(c.reasons, QC_ER_COMPRESSED_TOO_LARGE);
	assert_false(qc_entry_followable(&c));
	/* extended L2: the bitmap must be 0 */
	c = qc_l2e_classify(desc, 1, &EXT);
	assert_int_equal(c.reasons, QC_ER_COMPRESSED_BITMAP);
	c = qc_l2e_classify(desc, 0, &EXT);
	assert_int_equal(c.reasons, 0);
	/* with a data file nothing else is looked at */
	c = qc_l2e_classify(desc | COPIED, 1, &DF_EXT);
	assert_int_equal(c.reasons, QC_ER_COMPRESSED_COPIED | QC_ER_COMPRESSED_DATA_FILE);
	assert_false(qc_entry_followable(&c));
}

static void l2_extended(void **state)
{
	(void)state;
	/* bit 0 is reserved, not the zero flag */
	struct qc_entry c = qc_l2e_classify(QC_OFLAG_ZERO | 0x70000, 0, &EXT);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_false(c.zero);
	assert_int_equal(c.reasons, QC_ER_EXTL2_BIT0);
	c = qc_l2e_classify(QC_OFLAG_ZERO, 0, &EXT);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, QC_ER_EXTL2_BIT0);
	/* unallocated with all-zero subclusters: fine; with allocation bits: not */
	c = qc_l2e_classify(0, QC_L2_BITMAP_ALL_ZERO, &EXT);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	assert_int_equal(c.reasons, 0);
	c = qc_l2e_classify(0, 1, &EXT);
	assert_int_equal(c.reasons, QC_ER_SUB_ALLOC_UNALLOCATED);
	/* allocated: subcluster 3 both allocated and zero */
	c = qc_l2e_classify(0x70000, 0x8, &EXT);
	assert_int_equal(c.reasons, 0);
	c = qc_l2e_classify(0x70000, (UINT64_C(0x8) << 32) | 0x8, &EXT);
	assert_int_equal(c.reasons, QC_ER_SUB_ALLOC_AND_ZERO);
	assert_true(qc_entry_followable(&c));
	/* the bitmap is ignored for standard entries */
	c = qc_l2e_classify(0, UINT64_MAX, &V3);
	assert_int_equal(c.reasons, 0);
}

static void l2_data_file(void **state)
{
	(void)state;
	/* COPIED with offset 0 maps host offset 0 of the data file */
	struct qc_entry c = qc_l2e_classify(COPIED, 0, &DF);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.offset, 0);
	assert_int_equal(c.reasons, 0);
	assert_true(qc_entry_followable(&c));
	/* ... but not with the zero flag, and not without COPIED */
	c = qc_l2e_classify(COPIED | QC_OFLAG_ZERO, 0, &DF);
	assert_int_equal(c.kind, QC_ENTRY_ZERO);
	c = qc_l2e_classify(0, 0, &DF);
	assert_int_equal(c.kind, QC_ENTRY_UNALLOCATED);
	c = qc_l2e_classify(COPIED | 0x20000, 0, &DF);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.offset, 0x20000);
	/* extended L2 with a data file */
	c = qc_l2e_classify(COPIED, 0xff, &DF_EXT);
	assert_int_equal(c.kind, QC_ENTRY_NORMAL);
	assert_int_equal(c.reasons, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(l1_entries),
		cmocka_unit_test(l2_standard),
		cmocka_unit_test(l2_compressed),
		cmocka_unit_test(l2_extended),
		cmocka_unit_test(l2_data_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
