/*
 * test_rounds.c - planning rounds (repair/plan.h qc_plan_merge_round,
 * doc/repair.md "Planning rounds") on hand-made plans over a memory
 * image: a later round's writes follow the earlier round's in the apply
 * order; its corrupt-bit write and "left" list replace the earlier ones;
 * a write that overlaps an earlier round's other than on exactly the same
 * range is refused; a same-range rewrite goes through the journal, the
 * compare-and-swap and undo (also when the repair stops between rounds).
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

#include "../../core/io.h"
#include "../../repair/apply.h"
#include "../../repair/cas.h"
#include "../../repair/journal.h"
#include "../../repair/plan.h"

#define IMG_LEN 16384
#define INCOMPAT 72

static char jpath[64];

static uint8_t *image(void)
{
	uint8_t *d = malloc(IMG_LEN);
	for (size_t i = 0; i < IMG_LEN; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	return d;
}

static void fill8(uint8_t b[8], uint8_t v)
{
	memset(b, v, 8);
}

/* Round 0: an edit at 100, the dirty bit, the corrupt bit; one left entry. */
static void round0(struct qc_plan *p)
{
	uint8_t b[8];
	qc_plan_init(p, IMG_LEN);
	fill8(b, 0xa0);
	assert_non_null(qc_plan_add(p, QC_PH_INPLACE, 100, b, 8, QC_P_L2_ENTRY_RESERVED, "r0 edit"));
	fill8(b, 0x01);
	assert_non_null(qc_plan_add(p, QC_PH_HEADER, INCOMPAT, b, 8, QC_P_HEADER_DIRTY, "r0 dirty"));
	fill8(b, 0x02);
	assert_non_null(qc_plan_add(p, QC_PH_FINAL, INCOMPAT, b, 8, QC_P_HEADER_CORRUPT_BIT, "r0 bit"));
	qc_plan_leave(p, QC_P_REFCOUNT_LEAK, 0, "r0 leaves a leak");
	qc_plan_freed(p, 3);
	p->rounds = 1;
}

static void round1(struct qc_plan *q, uint64_t off, size_t len, uint8_t v)
{
	uint8_t b[16];
	qc_plan_init(q, IMG_LEN);
	q->round = 1;
	memset(b, v, sizeof(b));
	assert_non_null(qc_plan_add(q, QC_PH_INPLACE, off, b, len, QC_P_L1_ENTRY_RESERVED, "r1 edit"));
	fill8(b, 0x03);
	assert_non_null(qc_plan_add(q, QC_PH_FINAL, INCOMPAT, b, 8, QC_P_HEADER_CORRUPT_BIT, "r1 bit"));
	qc_plan_freed(q, 9);
}

static void merge_appends_and_replaces_verdicts(void **state)
{
	(void)state;
	struct qc_plan p, q;
	round0(&p);
	round1(&q, 200, 8, 0xb1);
	assert_int_equal(qc_plan_merge_round(&p, &q), 0);
	qc_plan_free(&q);
	qc_plan_sort(&p);
	assert_int_equal(p.n, 4);
	assert_int_equal(p.rounds, 2);
	/* round 0 (in-place, header), then round 1 (in-place, its final) */
	assert_int_equal(p.w[0].round, 0);
	assert_int_equal(p.w[0].offset, 100);
	assert_int_equal(p.w[1].phase, QC_PH_HEADER);
	assert_int_equal(p.w[2].round, 1);
	assert_int_equal(p.w[2].offset, 200);
	assert_int_equal(p.w[3].phase, QC_PH_FINAL);
	assert_int_equal(p.w[3].round, 1);
	assert_int_equal(p.w[3].data[0], 0x03);
	assert_int_equal(qc_plan_unconditional(&p), 3);
	/* the later round's verdicts: no left entry; freed clusters of both */
	assert_int_equal(p.nleft, 0);
	assert_int_equal(p.nfreed, 2);
	uint64_t at;
	assert_int_equal(qc_plan_conflict(&p, &at), 0);
	qc_plan_free(&p);
}

static void merge_refuses_partial_overlap(void **state)
{
	(void)state;
	struct qc_plan p, q;
	round0(&p);
	/* [104, 112) meets round 0's [100, 108) with other bytes */
	round1(&q, 104, 8, 0xb2);
	assert_int_equal(qc_plan_merge_round(&p, &q), 1);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.nleft, 1);
	assert_int_equal(p.rounds, 1);
	qc_plan_free(&q);
	/* a larger range over the same start is refused too */
	round1(&q, 100, 16, 0xb3);
	assert_int_equal(qc_plan_merge_round(&p, &q), 1);
	qc_plan_free(&q);
	qc_plan_free(&p);
}

static void sort_orders_round_then_phase(void **state)
{
	(void)state;
	struct qc_plan p;
	uint8_t b[8] = { 0 };
	qc_plan_init(&p, IMG_LEN);
	p.round = 1;
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, IMG_LEN, b, 8, QC_P_REFCOUNT_LEAK, "r1 new"));
	p.round = 0;
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 10, b, 8, QC_P_REFCOUNT_LEAK, "r0 inplace"));
	assert_non_null(qc_plan_add(&p, QC_PH_NEW, IMG_LEN + 8, b, 8, QC_P_REFCOUNT_LEAK, "r0 new"));
	p.round = 1;
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 30, b, 8, QC_P_REFCOUNT_LEAK, "r1 inplace"));
	qc_plan_sort(&p);
	const char *want[] = { "r0 new", "r0 inplace", "r1 new", "r1 inplace" };
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(p.w[i].summary, want[i]);
	qc_plan_free(&p);
}

/* Round 0 writes 8 bytes at 100, round 1 the same range again, plus a
 * structure past the end of the file.  Returns the merged, recorded plan. */
static void same_range_plan(struct qc_io *io, struct qc_plan *p)
{
	struct qc_plan q;
	round0(p);
	round1(&q, 100, 8, 0xb4);
	uint8_t blk[512];
	memset(blk, 0xc5, sizeof(blk));
	assert_non_null(qc_plan_add(&q, QC_PH_NEW, IMG_LEN, blk, sizeof(blk), QC_P_REFCOUNT_LEAK, "r1 new"));
	assert_int_equal(qc_plan_merge_round(p, &q), 0);
	qc_plan_free(&q);
	qc_plan_sort(p);
	assert_int_equal(qc_plan_record_old(p, io), 0);
	uint64_t at;
	assert_int_equal(qc_plan_conflict(p, &at), 0);
}

static void same_range_applies_and_undoes(void **state)
{
	(void)state;
	uint8_t *d = image();
	struct qc_io *io = qc_io_open_memory(d, IMG_LEN, true);
	struct qc_plan p;
	same_range_plan(io, &p);
	char err[256];
	const struct qc_witness wit[] = { { 0, 4096 } };
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_FINAL, QC_PH_FINAL, &done), 0);
	assert_int_equal(done, p.n);
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, IMG_LEN + 512);
	assert_int_equal(b[100], 0xb4); /* round 1's bytes over round 0's */
	assert_int_equal(b[INCOMPAT], 0x03);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	b = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, IMG_LEN);
	assert_memory_equal(b, d, IMG_LEN);
	unlink(jpath);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

/* The repair stops after round 0's writes: the journal still recognises
 * the image (the range holds round 0's bytes) and undo restores it. */
static void stopped_between_rounds_undoes(void **state)
{
	(void)state;
	uint8_t *d = image();
	struct qc_io *io = qc_io_open_memory(d, IMG_LEN, true);
	struct qc_plan p;
	same_range_plan(io, &p);
	char err[256];
	const struct qc_witness wit[] = { { 0, 4096 } };
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), 0);
	io->fail_after_writes = 2; /* round 0: the edit and the dirty bit */
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), -EIO);
	assert_int_equal(done, 2);
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	assert_int_equal(b[100], 0xa0);
	io->fail_after_writes = 0;
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	b = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, IMG_LEN);
	assert_memory_equal(b, d, IMG_LEN);
	unlink(jpath);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

/* Between planning and apply the range round 1 rewrites changes: the
 * compare-and-swap refuses before the first write. */
static void same_range_cas_refuses_change(void **state)
{
	(void)state;
	uint8_t *d = image();
	struct qc_io *io = qc_io_open_memory(d, IMG_LEN, true);
	struct qc_plan p;
	same_range_plan(io, &p);
	uint8_t x = 0x77;
	assert_int_equal(qc_io_write(io, &x, 1, 103), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), -ESTALE);
	assert_int_equal(done, 0);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

static int setup(void **state)
{
	(void)state;
	snprintf(jpath, sizeof(jpath), "/tmp/qc-rounds-%d.undo", (int)getpid());
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(jpath);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(merge_appends_and_replaces_verdicts),
		cmocka_unit_test(merge_refuses_partial_overlap),
		cmocka_unit_test(sort_orders_round_then_phase),
		cmocka_unit_test(same_range_applies_and_undoes),
		cmocka_unit_test(stopped_between_rounds_undoes),
		cmocka_unit_test(same_range_cas_refuses_change),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
