/*
 * test_clone.c - the clone planner (repair/fix_clone.c) and the
 * overwritten-table planner (repair/fix_l2table.c) through the real
 * planner, on memory copies of the corpus seeds made by
 * corpus/make-corpus.sh (4 KiB clusters): tbl-clone-data (guest 64k's L2
 * entry names guest 0's data cluster), tbl-clone-l1 (L1 entry 1 names L1
 * entry 0's table), tbl-l2-random (the active L2 table is random bytes).
 * Each: the plan's copies lie past the end of the file, the repaired image
 * re-checks clean, the claimants name different clusters holding the same
 * bytes, and a second plan is empty.  Run from the repository root (make
 * unit).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../core/layout.h"
#include "../../core/reader.h"
#include "../../repair/apply.h"
#include "../../repair/repair.h"
#include "corpus.h"

#define CS 4096u

static void plan_of(struct qc_io *io, struct qc_plan *p)
{
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, p), 0);
	qc_image_free(img);
}

/* Repair the image in io completely; returns the plan's write count. */
static size_t repair(struct qc_io *io, size_t len, size_t *past_eof)
{
	struct qc_plan p;
	plan_of(io, &p);
	*past_eof = 0;
	for (size_t i = 0; i < p.n; i++)
		*past_eof += p.w[i].phase == QC_PH_NEW && p.w[i].offset >= len;
	size_t done = 0, n = p.n;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	qc_plan_free(&p);
	struct qc_image *img = check(io);
	assert_int_equal(qc_check_exit_code(img), 0);
	qc_image_free(img);
	plan_of(io, &p);
	assert_int_equal(qc_plan_unconditional(&p), 0);
	qc_plan_free(&p);
	return n;
}

static const uint8_t *bytes(struct qc_io *io)
{
	size_t n;
	return qc_io_memory_bytes(io, &n);
}

static uint64_t l1e(struct qc_io *io, unsigned i)
{
	const uint8_t *b = bytes(io);
	return qc_be64_at(b + qc_be64_at(b + 40) + 8 * i) & QC_L1E_OFFSET_MASK;
}

static uint64_t l2e(struct qc_io *io, unsigned l1i, unsigned i)
{
	return qc_be64_at(bytes(io) + l1e(io, l1i) + 8 * i);
}

static void two_data_entries_get_their_own_clusters(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = load("corpus/seeds/tbl-clone-data.qcow2", &len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	assert_int_equal(l2e(io, 0, 0) & QC_L2E_OFFSET_MASK, l2e(io, 0, 16) & QC_L2E_OFFSET_MASK);
	size_t past;
	repair(io, len, &past);
	assert_int_equal(past, 1); /* one copy, past the old end */
	uint64_t a = l2e(io, 0, 0), b = l2e(io, 0, 16);
	assert_true(a & QC_OFLAG_COPIED);
	assert_true(b & QC_OFLAG_COPIED);
	a &= QC_L2E_OFFSET_MASK;
	b &= QC_L2E_OFFSET_MASK;
	assert_true(a != b);
	assert_true(b >= len); /* the second claimant moved, the first kept it */
	assert_memory_equal(bytes(io) + a, bytes(io) + b, CS);
	qc_io_close(io);
	free(d);
}

static void two_l1_entries_get_their_own_tables(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = load("corpus/seeds/tbl-clone-l1.qcow2", &len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	assert_int_equal(l1e(io, 0), l1e(io, 1));
	size_t past;
	repair(io, len, &past);
	/* the table and its two data clusters (guest 0 and 64k) */
	assert_int_equal(past, 3);
	assert_true(l1e(io, 0) != l1e(io, 1));
	for (unsigned i = 0; i < CS / 8; i++) {
		uint64_t a = l2e(io, 0, i), b = l2e(io, 1, i);
		assert_int_equal(a == 0, b == 0);
		if (!a)
			continue;
		assert_true((a & QC_L2E_OFFSET_MASK) != (b & QC_L2E_OFFSET_MASK));
		assert_memory_equal(bytes(io) + (a & QC_L2E_OFFSET_MASK),
				    bytes(io) + (b & QC_L2E_OFFSET_MASK), CS);
	}
	qc_io_close(io);
	free(d);
}

static void random_table_is_dropped_not_restored(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = load("corpus/seeds/tbl-l2-random.qcow2", &len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	plan_of(io, &p);
	/* every write into the table sets an entry to the zero flag */
	uint64_t t = l1e(io, 0);
	size_t drops = 0;
	for (size_t i = 0; i < p.n; i++) {
		if (p.w[i].offset < t || p.w[i].offset >= t + CS)
			continue;
		assert_int_equal(p.w[i].len, 8);
		assert_int_equal(qc_be64_at(p.w[i].data), QC_OFLAG_ZERO);
		drops++;
	}
	assert_true(drops >= 8);
	qc_plan_free(&p);
	size_t past;
	repair(io, len, &past);
	assert_int_equal(past, 0);
	for (unsigned i = 0; i < CS / 8; i++) {
		uint64_t e = l2e(io, 0, i);
		/* what is left is a zero entry or a valid pointer inside the file */
		assert_true(e == QC_OFLAG_ZERO || ((e & QC_L2E_OFFSET_MASK) + CS <= io->size &&
						   !(e & QC_L2E_STD_RESERVED_MASK)));
	}
	qc_io_close(io);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_data_entries_get_their_own_clusters),
		cmocka_unit_test(two_l1_entries_get_their_own_tables),
		cmocka_unit_test(random_table_is_dropped_not_restored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
