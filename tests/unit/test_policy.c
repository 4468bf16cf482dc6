/*
 * test_policy.c - the repair policy table (core/problems/policy.def):
 * every corruption and every leak code has exactly one explicit line;
 * QC_POLICY_WARNING lines name warnings and QC_POLICY lines do not (a
 * policy for a warning-only code must say so); every line is coherent
 * (a rebuild trigger is fixed by the refcount planner, a code that hides
 * references names no fixer that would act on it, every LEFT text is
 * set); and the trust rule (checker/trust.c) follows the HIDES column,
 * including its two conditions, evaluated on structured record fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/trust.h"
#include "../../core/policy.h"

/* How often each ID appears in policy.def, and on which kind of line. */
static int lines[QC_P_COUNT], warning_lines[QC_P_COUNT];

static void count_lines(void)
{
	memset(lines, 0, sizeof(lines));
	memset(warning_lines, 0, sizeof(warning_lines));
#define QC_POLICY(id, hides, fixer, rebuild, left) lines[QC_P_##id]++;
#define QC_POLICY_WARNING(id, fixer, left) warning_lines[QC_P_##id]++;
#include "../../core/problems/policy.def"
#undef QC_POLICY
#undef QC_POLICY_WARNING
}

static void every_corruption_and_leak_listed_once(void **state)
{
	(void)state;
	count_lines();
	for (int c = 0; c < QC_P_COUNT; c++) {
		enum qc_severity s = qc_problem_table[c].severity;
		if (s == QC_SEV_CORRUPTION || s == QC_SEV_LEAK) {
			if (lines[c] != 1 || warning_lines[c] != 0)
				fail_msg("%s: %d QC_POLICY line(s), %d warning line(s); want exactly one QC_POLICY",
					 qc_problem_table[c].code, lines[c], warning_lines[c]);
			assert_true(qc_policy((enum qc_code)c)->listed);
			assert_false(qc_policy((enum qc_code)c)->warning_line);
		}
	}
}

static void warning_lines_only_for_warnings(void **state)
{
	(void)state;
	count_lines();
	for (int c = 0; c < QC_P_COUNT; c++) {
		bool warning = qc_problem_table[c].severity == QC_SEV_WARNING;
		if (warning && lines[c])
			fail_msg("%s is a warning: use QC_POLICY_WARNING to mean it", qc_problem_table[c].code);
		if (!warning && warning_lines[c])
			fail_msg("%s is not a warning but has a QC_POLICY_WARNING line", qc_problem_table[c].code);
		assert_true(warning_lines[c] <= 1);
		/* the default of an unlisted warning */
		if (warning && !warning_lines[c]) {
			const struct qc_policy *p = qc_policy((enum qc_code)c);
			assert_false(p->listed);
			assert_int_equal(p->hides, QC_HIDES_NO);
			assert_int_equal(p->fixer, QC_FIX_NONE);
			assert_false(p->needs_rebuild);
		}
	}
}

static void lines_are_coherent(void **state)
{
	(void)state;
	for (int c = 0; c < QC_P_COUNT; c++) {
		const struct qc_policy *p = qc_policy((enum qc_code)c);
		assert_non_null(p->left);
		assert_true(strlen(p->left) > 10);
		assert_true(p->fixer < QC_FIX_COUNT);
		assert_string_not_equal(qc_fixer_name(p->fixer), "?");
		/* a rebuild is planned by the refcount planner */
		if (p->needs_rebuild)
			assert_true(p->fixer == QC_FIX_REBUILD || p->fixer == QC_FIX_REFCOUNTS);
		/* the refcount planners act only on a complete walk: a code that
		 * always hides references cannot be theirs.  The snapshot-table
		 * planner may take such a code: it rewrites the table, and the
		 * other planners then work on a fresh check of the image as
		 * rewritten (repair/repair.c, plan_snapshots_first), and so may the
		 * bitmap and header-field planners (the same fresh check); so may the
		 * table fixers (repair/fix.h), which mark the records they plan */
		if (p->hides == QC_HIDES_YES)
			assert_true(p->fixer == QC_FIX_NONE || p->fixer == QC_FIX_SNAPSHOT_TABLE ||
				    p->fixer == QC_FIX_BITMAPS || p->fixer == QC_FIX_HEADER_FIELDS ||
				    p->fixer == QC_FIX_L1 ||
				    p->fixer == QC_FIX_L2);
		if (p->warning_line)
			assert_int_equal(p->hides, QC_HIDES_NO);
	}
	/* out of range: taken to hide references */
	assert_int_equal(qc_policy(QC_P_COUNT)->hides, QC_HIDES_YES);
}

/* A model with just enough set for qc_walk_complete(). */
static struct qc_image *model(void)
{
	struct qc_image *img = calloc(1, sizeof(*img));
	assert_non_null(img);
	img->is_qcow2 = img->geometry_ok = img->l1_ok = true;
	qc_problems_init(&img->problems);
	return img;
}

static void drop(struct qc_image *img)
{
	qc_problems_free(&img->problems);
	free(img);
}

static void trust_follows_hides_column(void **state)
{
	(void)state;
	struct qc_image *img = model();
	const char *why = NULL;
	assert_true(qc_walk_complete(img, &why));
	/* leaks, codes fixed by the planners and warnings hide nothing */
	qc_report(&img->problems, QC_P_REFCOUNT_LEAK, QC_LOC(0x10000), 1, "leak");
	qc_report(&img->problems, QC_P_L2_COPIED_MISSING, QC_LOC(0x20000), 1, "copied");
	qc_report(&img->problems, QC_P_REFTABLE_ENTRY_RESERVED, QC_LOC(0x30000), 1, "reserved");
	qc_report(&img->problems, QC_P_HEADER_DIRTY, QC_LOC(72), 1, "dirty");
	assert_true(qc_walk_complete(img, &why));
	/* a doubtful pointer hides what it points to */
	qc_report(&img->problems, QC_P_L2_ENTRY_UNALIGNED, QC_LOC(0x40000), 1, "unaligned");
	assert_false(qc_walk_complete(img, &why));
	assert_string_equal(why, "l2-entry-unaligned");
	drop(img);
}

static void overlap_condition_uses_owners(void **state)
{
	(void)state;
	struct qc_image *img = model();
	/* the message says "refcount block" first, but the owners do not:
	 * only the recorded owners count */
	qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, QC_LOC(0x30008), QC_OWN_REFBLOCK,
			  QC_OWN_REFBLOCK, "refcount block at host offset 0x50000 overlaps refcount block");
	assert_true(qc_walk_complete(img, NULL));
	assert_false(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	assert_string_equal(img->problems.v[0].loc.other, qc_owner_name(QC_OWN_REFBLOCK));
	qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, QC_LOC(0x30010), QC_OWN_L2,
			  QC_OWN_REFBLOCK, "refcount block (a lie) overlaps refcount block");
	assert_true(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	const char *why = NULL;
	assert_false(qc_walk_complete(img, &why));
	assert_string_equal(why, "overlap-metadata");
	drop(img);
}

static void reserved_condition_uses_offsets(void **state)
{
	(void)state;
	struct qc_image *img = model();
	qc_report(&img->problems, QC_P_L1_ENTRY_RESERVED, QC_LOC(0x30008), 1, "reserved");
	assert_false(qc_walk_complete(img, NULL));
	qc_report(&img->problems, QC_P_L1_ENTRY_NO_OFFSET, QC_LOC(0x30008), 1, "no offset");
	assert_true(qc_walk_complete(img, NULL));
	/* the same finding in a snapshot's L1 is never dropped by the repair */
	struct qc_loc snap = QC_LOC(0x30008);
	snap.snapshot = 0;
	qc_report(&img->problems, QC_P_L1_ENTRY_RESERVED, snap, 1, "reserved");
	assert_false(qc_walk_complete(img, NULL));
	drop(img);
}

/* An overlap whose refcount side is disproved by its content hides
 * nothing (checker/trust.c refcount_side_wrong); a refblock shaped like
 * one (QC_RB_PROVED) keeps the doubt. */
static void overlap_refcount_side_disproved(void **state)
{
	(void)state;
	struct qc_image *img = model();
	uint64_t reftable[1] = { 0x50000 };
	uint8_t usable[1] = { QC_RB_USABLE };
	uint64_t contested[1] = { 5 };
	img->cluster_bits = 16;
	img->cluster_size = 65536;
	img->reftable = reftable;
	img->reftable_entries = 1;
	img->refblock_usable = usable;
	img->contested = contested;
	img->ncontested = 1;
	/* a reftable entry naming an active L2 table */
	qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, QC_LOC(0x10000), QC_OWN_L2,
			  QC_OWN_REFBLOCK, "active L2 table overlaps refcount block");
	assert_false(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	usable[0] |= QC_RB_PROVED;
	assert_true(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	/* the table itself on the L1: disproved only when no refblock is proved */
	qc_problems_free(&img->problems);
	qc_problems_init(&img->problems);
	qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, QC_LOC(0x30000), QC_OWN_REFTABLE,
			  QC_OWN_L1, "refcount table overlaps active L1 table");
	assert_true(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	usable[0] = QC_RB_USABLE;
	assert_false(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	/* two structures neither of which is the refcount structure: doubt */
	qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, QC_LOC(0x40000), QC_OWN_L2,
			  QC_OWN_L1, "active L2 table overlaps active L1 table");
	assert_true(qc_code_hides_refs(img, QC_P_OVERLAP_METADATA));
	img->reftable = NULL;
	img->refblock_usable = NULL;
	img->contested = NULL;
	drop(img);
}

/* qc_refblock_states / qc_refblock_disproved (checker/trust.h): a
 * contested cluster is a disproved refblock when a usable reftable entry
 * names it and none of the entries naming it is shaped like a refblock;
 * a cluster no entry names, or one entry proves, is not. */
static void refblock_disproved_by_cluster(void **state)
{
	(void)state;
	struct qc_image *img = model();
	/* entries 0 and 1 name cluster 5, entry 2 names cluster 9, entry 3
	 * names cluster 12 but is not usable; clusters 5, 9, 12, 20 contested */
	uint64_t reftable[4] = { 0x50000, 0x50000, 0x90000, 0xc0000 };
	uint8_t usable[4] = { QC_RB_USABLE, QC_RB_USABLE, QC_RB_USABLE | QC_RB_PROVED, 0 };
	uint64_t contested[4] = { 5, 9, 12, 20 };
	img->cluster_bits = 16;
	img->cluster_size = 65536;
	img->reftable = reftable;
	img->reftable_entries = 4;
	img->refblock_usable = usable;
	img->contested = contested;
	img->ncontested = 4;
	uint8_t *st = qc_refblock_states(img);
	assert_non_null(st);
	assert_true(qc_refblock_disproved(img, st, 0x50000));
	assert_true(qc_refblock_disproved(img, st, 0x50000 + 4096)); /* any offset in it */
	assert_false(qc_refblock_disproved(img, st, 0x90000));       /* proved */
	assert_false(qc_refblock_disproved(img, st, 0xc0000));       /* not usable */
	assert_false(qc_refblock_disproved(img, st, 0x140000));      /* no entry */
	assert_false(qc_refblock_disproved(img, st, 0x60000));       /* not contested */
	assert_false(qc_refblock_disproved(img, NULL, 0x50000));     /* no states */
	free(st);
	/* one of the two entries naming cluster 5 proved: not disproved */
	usable[1] |= QC_RB_PROVED;
	st = qc_refblock_states(img);
	assert_false(qc_refblock_disproved(img, st, 0x50000));
	free(st);
	/* an overflowed contested list: nothing counts as disproved */
	img->contested_overflow = true;
	assert_null(qc_refblock_states(img));
	img->reftable = NULL;
	img->refblock_usable = NULL;
	img->contested = NULL;
	drop(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_corruption_and_leak_listed_once),
		cmocka_unit_test(warning_lines_only_for_warnings),
		cmocka_unit_test(lines_are_coherent),
		cmocka_unit_test(trust_follows_hides_column),
		cmocka_unit_test(overlap_condition_uses_owners),
		cmocka_unit_test(reserved_condition_uses_offsets),
		cmocka_unit_test(overlap_refcount_side_disproved),
		cmocka_unit_test(refblock_disproved_by_cluster),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
