/*
 * test_repair.c - the real planner on memory images: corpus/demo-leaks.qcow2
 * (a snapshot and a leaked cluster, made by corpus/make-demo.sh) further
 * damaged in memory (a reftable entry with a reserved bit, OFLAG_COPIED
 * cleared in the active L1, dirty and corrupt bits).  The plan then has
 * writes in every phase; for every k, stopping the apply after write k
 * (qc_io fail_after_writes) and undoing restores the damaged bytes; the
 * complete repair re-checks clean and a second plan is empty; a clean
 * image gets an empty plan; overlapping planned writes are detected.  Run from the repository root (make unit).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../core/reader.h"
#include "../../repair/apply.h"
#include "../../repair/journal.h"
#include "../../repair/repair.h"
#include "corpus.h"

static void plan_of(struct qc_io *io, struct qc_plan *p, int *code)
{
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	*code = qc_check_exit_code(img);
	qc_plan_init(p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, p), 0);
	qc_image_free(img);
}

static char jpath[64];

static void crash_at_every_write_then_undo(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	int code;
	plan_of(io, &p, &code);
	qc_io_close(io);
	assert_int_equal(code, 2);
	bool phases[QC_PH_COUNT] = { false };
	for (size_t i = 0; i < p.n; i++)
		phases[p.w[i].phase] = true;
	for (int ph = 0; ph < QC_PH_COUNT; ph++)
		assert_true(phases[ph]);
	const struct qc_witness wit[] = { { 0, 65536 } };
	char err[256];
	for (size_t k = 1; k < p.n; k++) {
		io = qc_io_open_memory(d, len, true);
		unlink(jpath);
		assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), 0);
		io->fail_after_writes = k;
		size_t done = 0;
		assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), -EIO);
		assert_int_equal(done, k);
		io->fail_after_writes = 0;
		assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
		size_t n;
		const uint8_t *b = qc_io_memory_bytes(io, &n);
		assert_int_equal(n, len);
		assert_memory_equal(b, d, len);
		qc_io_close(io);
	}
	unlink(jpath);
	qc_plan_free(&p);
	free(d);
}

static void complete_repair_rechecks_clean(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	int code;
	plan_of(io, &p, &code);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	struct qc_image *img = check(io);
	/* only the corrupt bit is left: the conditional write may go */
	assert_int_equal(img->problems.corruptions, 1);
	assert_int_equal(img->problems.per_code[QC_P_HEADER_CORRUPT_BIT], 1);
	qc_image_free(img);
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_FINAL, QC_PH_FINAL, &done), 0);
	assert_int_equal(done, p.n);
	img = check(io);
	assert_int_equal(qc_check_exit_code(img), 0);
	assert_int_equal(img->problems.warnings, 0);
	qc_image_free(img);
	/* the new structures are past the old end of the file */
	assert_true(io->size > len);
	assert_true(qc_be64_at(qc_io_memory_bytes(io, &(size_t){ 0 }) + 48) >= len);
	qc_plan_free(&p);
	plan_of(io, &p, &code);
	assert_int_equal(code, 0);
	assert_int_equal(p.n, 0);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

static void leak_lowered_in_place_nothing_else_written(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = load("corpus/demo-leaks.qcow2", &len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	int code;
	plan_of(io, &p, &code);
	assert_int_equal(code, 3);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.w[0].code, QC_P_REFCOUNT_LEAK);
	assert_int_equal(p.w[0].phase, QC_PH_INPLACE);
	/* the orphaned entry's cluster is still held by the snapshot: 2 -> 1 */
	assert_int_equal(p.nfreed, 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	/* only the refcount entry changed: every cluster's content is intact */
	assert_int_equal(n, len);
	for (size_t i = 0; i < len; i++)
		if (b[i] != d[i])
			assert_true(i >= p.w[0].offset && i < p.w[0].offset + p.w[0].len);
	struct qc_image *img = check(io);
	assert_int_equal(qc_check_exit_code(img), 0);
	qc_image_free(img);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

static void leaks_only_and_clean(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, false);
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = true };
	struct qc_plan p;
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	/* a rebuild is needed: nothing at all with --leaks-only, and it says so */
	assert_int_equal(p.n, 0);
	assert_true(p.nleft > 0);
	qc_plan_free(&p);
	qc_image_free(img);
	qc_io_close(io);
	free(d);
	d = load("corpus/demo-clean.qcow2", &len);
	io = qc_io_open_memory(d, len, false);
	int code;
	plan_of(io, &p, &code);
	assert_int_equal(code, 0);
	assert_int_equal(p.n, 0);
	assert_int_equal(p.nleft, 0);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

static int setup(void **state)
{
	(void)state;
	snprintf(jpath, sizeof(jpath), "/tmp/qc-test-repair.%d", (int)getpid());
	return 0;
}

/* qc_plan_conflict(): overlapping writes are a planner bug, except the
 * header flag field rewritten by the HEADER and FINAL phases. */
static void plan_conflicts(void **state)
{
	(void)state;
	uint8_t b[16] = { 0 }, c[16];
	memset(c, 0xa5, sizeof(c));
	uint64_t at = 0;
	struct qc_plan p;
	qc_plan_init(&p, 1 << 20);
	assert_int_equal(qc_plan_conflict(&p, &at), 0);
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 0x10000, b, 8, QC_P_REFCOUNT_LEAK, "a"));
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 0x10008, b, 8, QC_P_REFCOUNT_LEAK, "adjacent, not overlapping"));
	assert_non_null(qc_plan_add(&p, QC_PH_HEADER, 72, b, 8, QC_P_REFCOUNT_LEAK, "dirty"));
	assert_non_null(qc_plan_add(&p, QC_PH_FINAL, 72, b, 8, QC_P_REFCOUNT_LEAK, "corrupt"));
	assert_int_equal(qc_plan_conflict(&p, &at), 0);
	/* an L1 "entry" on the header: the in-place write meets the flag writes */
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 72, c, 8, QC_P_REFCOUNT_LEAK, "L1 entry 9 on the header"));
	assert_int_equal(qc_plan_conflict(&p, &at), 1);
	assert_int_equal(at, 72);
	qc_plan_free(&p);
	/* a long write covering a later short one, found past an unrelated one */
	qc_plan_init(&p, 1 << 20);
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, 0x20000, b, 16, QC_P_REFCOUNT_LEAK, "long"));
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, 0x20004, c, 2, QC_P_REFCOUNT_LEAK, "inside"));
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, 0x10000, b, 2, QC_P_REFCOUNT_LEAK, "before"));
	assert_int_equal(qc_plan_conflict(&p, &at), 1);
	assert_int_equal(at, 0x20004);
	qc_plan_free(&p);
	/* the same bytes written twice (a refblock span over an entry the
	 * snapshot rewrite set to the same value): not a conflict */
	qc_plan_init(&p, 1 << 20);
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, 0x30005, c, 1, QC_P_REFCOUNT_LEAK, "new table refcount"));
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 0x30002, c, 12, QC_P_REFCOUNT_LEAK, "refblock span"));
	assert_int_equal(qc_plan_conflict(&p, &at), 0);
	/* ... but one differing byte among them is */
	c[3] = 0;
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 0x30002, c, 4, QC_P_REFCOUNT_LEAK, "differs at 0x30005"));
	assert_int_equal(qc_plan_conflict(&p, &at), 1);
	qc_plan_free(&p);
	/* more than 64 writes over one byte: refused, so the check stays bounded */
	qc_plan_init(&p, 1 << 20);
	for (int k = 0; k < 65; k++)
		assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 0x40000, b, 8, QC_P_REFCOUNT_LEAK, "same"));
	assert_int_equal(qc_plan_conflict(&p, &at), 1);
	qc_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crash_at_every_write_then_undo),
		cmocka_unit_test(complete_repair_rechecks_clean),
		cmocka_unit_test(leak_lowered_in_place_nothing_else_written),
		cmocka_unit_test(leaks_only_and_clean),
		cmocka_unit_test(plan_conflicts),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
