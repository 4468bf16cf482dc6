/*
 * test_snapent.c - damaged entries of a snapshot's L1 table and of an L2
 * table only the snapshot references (repair/fix_snapl1.c, repair/fix_l2.c;
 * doc/repair.md "Snapshot tables' entries"), on corpus/demo-leaks.qcow2 in
 * memory (snapshot "base" has its own L2 table: the active layer rewrote
 * guest cluster 0 after taking it).  The real planner: an unaligned
 * snapshot L1 entry is restored to its old value, one past the end of the
 * file with no candidate becomes 0, reserved bits on 7 empty entries of the
 * snapshot's table are cleared, 8 such entries leave the table alone (it
 * may have been overwritten); each complete repair re-checks clean and a
 * second plan is empty.  Run from the repository root (make unit).
 */
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

/* The demo image and where its snapshot's L1 entry 0 and L2 table lie. */
struct demo {
	uint8_t *d;
	size_t len;
	uint64_t sl1;   /* byte offset of the snapshot's L1 entry 0 */
	uint64_t e;     /* its value */
	uint64_t tbl;   /* the snapshot's own L2 table */
};

static void demo_load(struct demo *m)
{
	m->d = load("corpus/demo-leaks.qcow2", &m->len);
	struct qc_io *io = qc_io_open_memory(m->d, m->len, false);
	struct qc_image *img = check(io);
	assert_int_equal(img->nsnapshots, 1);
	m->sl1 = img->snapshots[0].l1_table_offset;
	m->e = qc_be64_at(m->d + m->sl1);
	m->tbl = m->e & QC_L1E_OFFSET_MASK;
	/* the snapshot's own table, not the active one */
	assert_int_not_equal(m->tbl, img->l1[0] & QC_L1E_OFFSET_MASK);
	qc_image_free(img);
	qc_io_close(io);
}

static void plan_of(struct qc_io *io, struct qc_plan *p)
{
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, p), 0);
	qc_image_free(img);
}

/* The planned write at off, or NULL. */
static const struct qc_write *write_at(const struct qc_plan *p, uint64_t off)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].offset == off)
			return &p->w[i];
	return NULL;
}

/* Apply p to io; the image then checks clean and plans nothing more. */
static void apply_clean(struct qc_io *io, struct qc_plan *p)
{
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	struct qc_image *img = check(io);
	assert_int_equal(qc_check_exit_code(img), 0);
	qc_image_free(img);
	struct qc_plan again;
	plan_of(io, &again);
	assert_int_equal(again.n, 0);
	qc_plan_free(&again);
}

static void snapshot_l1_unaligned_restored(void **state)
{
	(void)state;
	struct demo m;
	demo_load(&m);
	qc_put_be64(m.d + m.sl1, m.e | 0x200);
	struct qc_io *io = qc_io_open_memory(m.d, m.len, true);
	struct qc_plan p;
	plan_of(io, &p);
	const struct qc_write *w = write_at(&p, m.sl1);
	assert_non_null(w);
	assert_int_equal(w->code, QC_P_L1_ENTRY_UNALIGNED);
	assert_int_equal(w->len, 8);
	/* the old value, OFLAG_COPIED as it was found */
	assert_int_equal(qc_be64_at(w->data), m.e);
	assert_non_null(strstr(w->summary, "snapshot ID '1'"));
	apply_clean(io, &p);
	qc_plan_free(&p);
	qc_io_close(io);
	free(m.d);
}

static void snapshot_l1_past_eof_dropped(void **state)
{
	(void)state;
	struct demo m;
	demo_load(&m);
	qc_put_be64(m.d + m.sl1, UINT64_C(0x8000000f00000000));
	struct qc_io *io = qc_io_open_memory(m.d, m.len, true);
	struct qc_plan p;
	plan_of(io, &p);
	const struct qc_write *w = write_at(&p, m.sl1);
	assert_non_null(w);
	assert_int_equal(w->code, QC_P_L1_L2_PAST_EOF);
	assert_int_equal(qc_be64_at(w->data), 0);
	/* the snapshot's guest range: L1 entry 0's */
	assert_int_equal(w->guest_offset, 0);
	/* its old table stays in the file as a leak (lowered, not written) */
	assert_null(write_at(&p, m.tbl));
	apply_clean(io, &p);
	qc_plan_free(&p);
	qc_io_close(io);
	free(m.d);
}

/* n empty entries of the snapshot's table (from entry 100) get a reserved
 * bit; returns how many planned writes land in the table. */
static size_t reserved_in_table(struct demo *m, unsigned n, bool apply)
{
	for (unsigned k = 0; k < n; k++)
		qc_put_be64(m->d + m->tbl + 8 * (100 + k), 0x100);
	struct qc_io *io = qc_io_open_memory(m->d, m->len, true);
	struct qc_plan p;
	plan_of(io, &p);
	size_t in = 0;
	for (size_t i = 0; i < p.n; i++)
		if (p.w[i].offset >= m->tbl && p.w[i].offset < m->tbl + 65536) {
			in++;
			assert_int_equal(p.w[i].code, QC_P_L2_ENTRY_RESERVED);
			assert_int_equal(qc_be64_at(p.w[i].data), 0);
		}
	if (apply)
		apply_clean(io, &p);
	else {
		bool left = false;
		for (size_t i = 0; i < p.nleft; i++)
			left |= p.left[i].code == QC_P_L2_ENTRY_RESERVED;
		assert_true(left);
	}
	qc_plan_free(&p);
	qc_io_close(io);
	return in;
}

static void snapshot_table_entries_cleared(void **state)
{
	(void)state;
	struct demo m;
	demo_load(&m);
	assert_int_equal(reserved_in_table(&m, 7, true), 7);
	free(m.d);
}

static void suspect_snapshot_table_left(void **state)
{
	(void)state;
	struct demo m;
	demo_load(&m);
	assert_int_equal(reserved_in_table(&m, 8, false), 0);
	free(m.d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(snapshot_l1_unaligned_restored),
		cmocka_unit_test(snapshot_l1_past_eof_dropped),
		cmocka_unit_test(snapshot_table_entries_cleared),
		cmocka_unit_test(suspect_snapshot_table_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
