/*
 * test_clustermap.c - the cluster map (core/clustermap.c): reference
 * counts past the 10-bit inline field (the overflow hash: exact values,
 * its growth, counts going down and up again, saturation), page
 * boundaries (runs across pages, the last cluster, out of range, the
 * skipping helpers next_mapped and end), and the byte cap (the page
 * directory, a page, the overflow hash, memory held outside; a map whose
 * directory is over the cap is empty and safe to free: it was a NULL
 * dereference in `check --max-mem=1K` of a 1 TiB sparse image), and the
 * blocks of equal entries (uniform_blocks, entries_in_place).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../core/clustermap.h"

#define PAGE QC_CM_PAGE_CLUSTERS
#define PAGE_BYTES ((size_t)PAGE * 2) /* charged: 16 bits per cluster */
#define BLK QC_CM_BLOCK_CLUSTERS

static void add(struct qc_clustermap *m, uint64_t c, enum qc_owner o, uint64_t n)
{
	enum qc_owner prev;
	assert_true(qc_cm_add(m, c, o, n, &prev));
}

/* 1022 fits inline; 1023 and more are exact through the overflow hash. */
static void overflow_counts_exact(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 10, 0), 0);
	add(&m, 3, QC_OWN_DATA, 1022);
	assert_int_equal(qc_cm_count(&m, 3), 1022);
	assert_int_equal(m.ov_used, 0);
	add(&m, 3, QC_OWN_DATA, 1);
	assert_int_equal(qc_cm_count(&m, 3), 1023);
	assert_int_equal(m.ov_used, 1);
	add(&m, 3, QC_OWN_DATA, 100000);
	assert_int_equal(qc_cm_count(&m, 3), 101023);
	/* the owner and flags survive the overflow */
	assert_true(qc_cm_set_flags(&m, 3, QC_CM_ACTIVE_COPIED));
	assert_int_equal(qc_cm_owner(&m, 3), QC_OWN_DATA);
	assert_int_equal(qc_cm_flags(&m, 3), QC_CM_ACTIVE_COPIED);
	/* down below the inline limit and up again */
	qc_cm_sub(&m, 3, 100500);
	assert_int_equal(qc_cm_count(&m, 3), 523);
	add(&m, 3, QC_OWN_DATA, 600);
	assert_int_equal(qc_cm_count(&m, 3), 1123);
	qc_cm_sub(&m, 3, 5000);
	assert_int_equal(qc_cm_count(&m, 3), 0);
	assert_int_equal(qc_cm_owner(&m, 3), QC_OWN_DATA);
	/* the counts read in bulk are the same exact values */
	add(&m, 4, QC_OWN_DATA, 2000);
	add(&m, 5, QC_OWN_DATA, 7);
	uint64_t cnt[4];
	uint8_t fl[4];
	qc_cm_get_run(&m, 3, 4, cnt, fl);
	assert_int_equal(cnt[0], 0);
	assert_int_equal(cnt[1], 2000);
	assert_int_equal(cnt[2], 7);
	assert_int_equal(cnt[3], 0);
	assert_int_equal(fl[0], QC_CM_ACTIVE_COPIED);
	qc_cm_free(&m);
}

/* Counts saturate at UINT64_MAX instead of wrapping. */
static void overflow_saturates(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 2, 0), 0);
	add(&m, 1, QC_OWN_L2, UINT64_MAX - 5);
	add(&m, 1, QC_OWN_L2, 100);
	assert_int_equal(qc_cm_count(&m, 1), UINT64_MAX);
	qc_cm_free(&m);
}

/* Thousands of clusters past the inline limit: the hash grows, every
 * count stays exact, and a run add refuses them (the caller's slow path). */
static void overflow_hash_grows(void **state)
{
	(void)state;
	struct qc_clustermap m;
	const uint64_t n = 5000;
	assert_int_equal(qc_cm_init(&m, 3 * PAGE, 0), 0);
	for (uint64_t c = 0; c < n; c++)
		add(&m, c * 37 % (3 * PAGE), QC_OWN_DATA, 1023 + c);
	assert_int_equal(m.ov_used, n);
	assert_true(m.ov_cap >= 2 * n);
	for (uint64_t c = 0; c < n; c++)
		assert_int_equal(qc_cm_count(&m, c * 37 % (3 * PAGE)), 1023 + c);
	assert_int_equal(qc_cm_add_run(&m, 0, 5, QC_OWN_DATA, 1, 0), 0);
	qc_cm_free(&m);
}

/* A run crossing two page boundaries is added whole; only the pages it
 * touches are allocated. */
static void run_across_pages(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 4 * PAGE, 0), 0);
	size_t dir = m.bytes;
	uint64_t first = PAGE - 3, n = PAGE + 6; /* pages 0, 1 and 2 */
	assert_int_equal(qc_cm_add_run(&m, first, n, QC_OWN_DATA, 2, QC_CM_ACTIVE_NOCOPIED), n);
	assert_int_equal(m.bytes, dir + 3 * PAGE_BYTES);
	assert_int_equal(qc_cm_count(&m, first - 1), 0);
	assert_int_equal(qc_cm_count(&m, first), 2);
	assert_int_equal(qc_cm_count(&m, PAGE - 1), 2);
	assert_int_equal(qc_cm_count(&m, PAGE), 2);
	assert_int_equal(qc_cm_count(&m, 2 * PAGE), 2);
	assert_int_equal(qc_cm_count(&m, first + n - 1), 2);
	assert_int_equal(qc_cm_count(&m, first + n), 0);
	assert_int_equal(qc_cm_flags(&m, PAGE), QC_CM_ACTIVE_NOCOPIED);
	assert_int_equal(qc_cm_end(&m), first + n);
	/* the page after the run was never touched */
	assert_int_equal(qc_cm_next_mapped(&m, 3 * PAGE - 1), 3 * PAGE - 1);
	assert_int_equal(qc_cm_next_mapped(&m, 3 * PAGE), 4 * PAGE);
	/* counts read back across the boundaries */
	uint64_t cnt[8];
	qc_cm_get_run(&m, 2 * PAGE + 1, 8, cnt, NULL);
	for (int i = 0; i < 8; i++)
		assert_int_equal(cnt[i], 2 * PAGE + 1 + (uint64_t)i < first + n ? 2 : 0);
	qc_cm_free(&m);
}

/* A run stops at a cluster of another owner (or one near the inline
 * limit) and says where: the caller claims that one through the slow path. */
static void run_stops_at_other_owner(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 2 * PAGE, 0), 0);
	add(&m, PAGE + 2, QC_OWN_L2, 1);
	assert_int_equal(qc_cm_add_run(&m, PAGE - 2, 10, QC_OWN_DATA, 1, 0), 4);
	assert_int_equal(qc_cm_count(&m, PAGE + 1), 1);
	assert_int_equal(qc_cm_count(&m, PAGE + 2), 1);
	assert_int_equal(qc_cm_owner(&m, PAGE + 2), QC_OWN_L2);
	add(&m, 10, QC_OWN_DATA, 1020);
	assert_int_equal(qc_cm_add_run(&m, 8, 5, QC_OWN_DATA, 3, 0), 2);
	assert_int_equal(qc_cm_count(&m, 10), 1020);
	qc_cm_free(&m);
}

/* A map whose size is not a whole number of pages: the last cluster is
 * usable, the one past it is out of range (reads as free, adds fail). */
static void last_cluster_and_range(void **state)
{
	(void)state;
	struct qc_clustermap m;
	uint64_t n = PAGE + 5;
	assert_int_equal(qc_cm_init(&m, n, 0), 0);
	assert_int_equal(m.npages, 2);
	add(&m, n - 1, QC_OWN_REFBLOCK, 1);
	assert_int_equal(qc_cm_owner(&m, n - 1), QC_OWN_REFBLOCK);
	enum qc_owner prev;
	assert_false(qc_cm_add(&m, n, QC_OWN_DATA, 1, &prev));
	assert_int_equal(qc_cm_owner(&m, n), QC_OWN_FREE);
	assert_int_equal(qc_cm_count(&m, n + 1000), 0);
	assert_int_equal(qc_cm_add_run(&m, n - 2, 5, QC_OWN_DATA, 1, 0), 1);
	uint64_t cnt[4];
	qc_cm_get_run(&m, n - 2, 4, cnt, NULL);
	assert_int_equal(cnt[0], 1);
	assert_int_equal(cnt[1], 1);
	assert_int_equal(cnt[2], 0);
	assert_int_equal(cnt[3], 0);
	assert_int_equal(qc_cm_end(&m), n);
	assert_int_equal(qc_cm_next_mapped(&m, 0), PAGE);
	assert_int_equal(qc_cm_next_mapped(&m, n), n);
	qc_cm_free(&m);
}

/* Owners: the first stays; an inactive L2 becomes active. */
static void owner_rules(void **state)
{
	(void)state;
	struct qc_clustermap m;
	enum qc_owner prev;
	assert_int_equal(qc_cm_init(&m, 4, 0), 0);
	assert_true(qc_cm_add(&m, 0, QC_OWN_L2_INACTIVE, 1, &prev));
	assert_int_equal(prev, QC_OWN_FREE);
	assert_true(qc_cm_add(&m, 0, QC_OWN_L2, 1, &prev));
	assert_int_equal(prev, QC_OWN_L2_INACTIVE);
	assert_int_equal(qc_cm_owner(&m, 0), QC_OWN_L2);
	assert_true(qc_cm_add(&m, 0, QC_OWN_DATA, 1, &prev));
	assert_int_equal(prev, QC_OWN_L2);
	assert_int_equal(qc_cm_owner(&m, 0), QC_OWN_L2);
	assert_int_equal(qc_cm_count(&m, 0), 3);
	qc_cm_free(&m);
}

/* qc_cm_add_run tests whole blocks of clusters at once: a cluster that
 * stops it in the middle of a block (another owner, or a count that would
 * pass the inline limit) still stops it exactly there, with every cluster
 * before it added and none after; a long run over fresh and half-used
 * clusters keeps each cluster's flags and owner. */
static void run_blocks_stop_exactly(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 2 * PAGE, 0), 0);
	add(&m, 200, QC_OWN_L2, 1);
	assert_int_equal(qc_cm_add_run(&m, 3, 1000, QC_OWN_DATA, 1, QC_CM_ACTIVE_COPIED), 197);
	for (uint64_t c = 0; c < 260; c++) {
		uint64_t want = c >= 3 && c < 200 ? 1 : c == 200 ? 1 : 0;
		assert_int_equal(qc_cm_count(&m, c), want);
		assert_int_equal(qc_cm_owner(&m, c), c >= 3 && c < 200 ? QC_OWN_DATA
						     : c == 200	   ? QC_OWN_L2
								   : QC_OWN_FREE);
		assert_int_equal(qc_cm_flags(&m, c), c >= 3 && c < 200 ? QC_CM_ACTIVE_COPIED : 0);
	}
	/* a second run over the same clusters: counts add up, flags merge */
	assert_int_equal(qc_cm_add_run(&m, 3, 197, QC_OWN_DATA, 2, QC_CM_ACTIVE_NOCOPIED), 197);
	assert_int_equal(qc_cm_count(&m, 100), 3);
	assert_int_equal(qc_cm_flags(&m, 100), QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED);
	/* a count near the inline limit in the middle of a block */
	add(&m, 1000 + 70, QC_OWN_DATA, 1020);
	assert_int_equal(qc_cm_add_run(&m, 1000, 500, QC_OWN_DATA, 3, 0), 70);
	assert_int_equal(qc_cm_count(&m, 1069), 3);
	assert_int_equal(qc_cm_count(&m, 1070), 1020);
	assert_int_equal(qc_cm_count(&m, 1071), 0);
	/* more references than the inline limit: nothing is added */
	assert_int_equal(qc_cm_add_run(&m, 5000, 10, QC_OWN_DATA, 1023, 0), 0);
	assert_int_equal(qc_cm_count(&m, 5000), 0);
	qc_cm_free(&m);
}

/* qc_cm_entries: the raw entries of a range inside one block of an
 * allocated page, or NULL (unallocated page, across blocks, past the map);
 * a block of equal entries comes as copies in the scratch buffer. */
static void entries_in_place(void **state)
{
	(void)state;
	struct qc_clustermap m;
	uint16_t scratch[BLK];
	assert_int_equal(qc_cm_init(&m, 2 * PAGE + 10, 0), 0);
	add(&m, PAGE + 5, QC_OWN_DATA, 2);
	assert_true(qc_cm_set_flags(&m, PAGE + 5, QC_CM_ACTIVE_NOCOPIED));
	assert_null(qc_cm_entries(&m, 0, 16, scratch)); /* page 0 never allocated */
	const uint16_t *e = qc_cm_entries(&m, PAGE, 16, scratch);
	assert_non_null(e);
	assert_ptr_not_equal(e, scratch);
	assert_int_equal(QC_CM_E_COUNT(e[5]), 2);
	assert_int_equal(QC_CM_E_FLAGS(e[5]), QC_CM_ACTIVE_NOCOPIED);
	assert_int_equal(QC_CM_E_COUNT(e[4]), 0);
	assert_null(qc_cm_entries(&m, PAGE - 1, 2, scratch));   /* across pages */
	assert_null(qc_cm_entries(&m, PAGE + BLK - 1, 2, scratch)); /* across blocks */
	assert_null(qc_cm_entries(&m, 3 * PAGE, 1, scratch));   /* past the map */
	assert_null(qc_cm_entries(&m, PAGE, BLK + 1, scratch)); /* longer than a block */
	add(&m, PAGE + 6, QC_OWN_DATA, 5000);                   /* overflow table */
	assert_int_equal(QC_CM_E_COUNT(e[6]), QC_CM_E_COUNT_BIG);
	/* a block of equal entries (here all free) comes as copies */
	e = qc_cm_entries(&m, PAGE + 3 * BLK, BLK, scratch);
	assert_ptr_equal(e, scratch);
	assert_int_equal(e[0], 0);
	assert_int_equal(e[BLK - 1], 0);
	qc_cm_free(&m);
}

static void count_visit(void *ctx, uint64_t c, enum qc_owner o, uint64_t count, unsigned flags)
{
	uint64_t *v = ctx;
	(void)o;
	(void)flags;
	v[0]++;
	v[1] += count;
	v[2] = c;
}

/* Blocks of equal entries: a run claimed over whole blocks leaves them one
 * value each, and every reader sees the same map as a flat one would;
 * writes of one cluster, flags, a retype, a subtraction and a run that
 * covers part of a block give it its own entries, and a write that
 * changes nothing does not. */
static void uniform_blocks(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 2 * PAGE, 0), 0);
	/* blocks 1 and 2 of page 0 whole, and 10 clusters of block 3 */
	uint64_t first = BLK, n = 2 * BLK + 10;
	assert_int_equal(qc_cm_add_run(&m, first, n, QC_OWN_DATA, 3, QC_CM_ACTIVE_NOCOPIED), n);
	assert_int_equal(qc_cm_add_run(&m, first, n, QC_OWN_DATA, 2, 0), n);
	for (uint64_t c = first - 1; c <= first + n; c++) {
		bool in = c >= first && c < first + n;
		assert_int_equal(qc_cm_count(&m, c), in ? 5 : 0);
		assert_int_equal(qc_cm_owner(&m, c), in ? QC_OWN_DATA : QC_OWN_FREE);
		assert_int_equal(qc_cm_flags(&m, c), in ? QC_CM_ACTIVE_NOCOPIED : 0);
	}
	assert_int_equal(qc_cm_end(&m), first + n);
	uint16_t u;
	assert_true(qc_cm_uniform(&m, first + BLK, BLK, &u)); /* block 2, whole */
	assert_int_equal(QC_CM_E_COUNT(u), 5);
	assert_int_equal(QC_CM_E_FLAGS(u), QC_CM_ACTIVE_NOCOPIED);
	assert_true(qc_cm_uniform(&m, first + 3, 7, &u));     /* part of block 1 */
	assert_false(qc_cm_uniform(&m, first + 2 * BLK, 4, &u)); /* block 3: its own entries */
	assert_false(qc_cm_uniform(&m, first + BLK - 1, 2, &u)); /* across blocks */
	assert_false(qc_cm_uniform(&m, PAGE, 4, &u));            /* page never allocated */
	uint64_t v[3] = { 0, 0, 0 };
	qc_cm_foreach(&m, count_visit, v);
	assert_int_equal(v[0], n);
	assert_int_equal(v[1], 5 * n);
	assert_int_equal(v[2], first + n - 1);
	uint64_t counts[BLK + 4];
	uint8_t flags[BLK + 4];
	qc_cm_get_run(&m, 2 * BLK - 2, BLK + 4, counts, flags);
	for (unsigned k = 0; k < BLK + 4; k++) {
		assert_int_equal(counts[k], 5);
		assert_int_equal(flags[k], QC_CM_ACTIVE_NOCOPIED);
	}
	/* another owner in the middle of a uniform block: the run stops there */
	assert_int_equal(qc_cm_add_run(&m, first, n, QC_OWN_VMSTATE, 1, 0), 0);
	/* writes that change nothing, then writes that do */
	assert_true(qc_cm_set_flags(&m, first + 7, QC_CM_ACTIVE_NOCOPIED));
	qc_cm_retype(&m, first + 8, QC_OWN_DATA);
	qc_cm_sub(&m, 5, 1); /* a free cluster */
	assert_true(qc_cm_set_flags(&m, first + 1, QC_CM_ACTIVE_COPIED));
	qc_cm_retype(&m, first + BLK + 2, QC_OWN_COMPRESSED);
	qc_cm_sub(&m, first + BLK + 3, 4);
	add(&m, first + 4, QC_OWN_DATA, 1);
	assert_int_equal(qc_cm_flags(&m, first + 1), QC_CM_OVERCOUNTED);
	assert_int_equal(qc_cm_flags(&m, first + 2), QC_CM_ACTIVE_NOCOPIED);
	assert_int_equal(qc_cm_owner(&m, first + BLK + 2), QC_OWN_COMPRESSED);
	assert_int_equal(qc_cm_owner(&m, first + BLK + 1), QC_OWN_DATA);
	assert_int_equal(qc_cm_count(&m, first + BLK + 3), 1);
	assert_int_equal(qc_cm_count(&m, first + 4), 6);
	assert_int_equal(qc_cm_count(&m, first + 5), 5);
	v[0] = v[1] = v[2] = 0;
	qc_cm_foreach(&m, count_visit, v);
	assert_int_equal(v[0], n);
	assert_int_equal(v[1], 5 * n - 4 + 1);
	/* the last block: a run to the very end of the map stays uniform */
	assert_int_equal(qc_cm_add_run(&m, 2 * PAGE - BLK, BLK, QC_OWN_DATA, 1, 0), BLK);
	assert_int_equal(qc_cm_end(&m), 2 * PAGE);
	assert_int_equal(qc_cm_count(&m, 2 * PAGE - 1), 1);
	assert_int_equal(qc_cm_count(&m, 2 * PAGE), 0); /* out of range */
	qc_cm_free(&m);
}

/* The cap: the directory alone over it fails init; then one page fits,
 * the second does not (single adds and runs), and memory held outside the
 * map counts against the same cap. */
static void cap_pages(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 1000 * PAGE, 100), -ENOMEM);
	assert_true(m.over_cap);
	/* a map that failed to initialise is empty: reading and freeing it are
	 * safe (the check frees the model whatever happened) */
	assert_int_equal(qc_cm_owner(&m, 5), QC_OWN_FREE);
	assert_int_equal(qc_cm_next_mapped(&m, 0), 0);
	assert_int_equal(qc_cm_end(&m), 0);
	qc_cm_free(&m);
	size_t dir = 4 * sizeof(void *);
	assert_int_equal(qc_cm_init(&m, 4 * PAGE, dir + PAGE_BYTES), 0);
	add(&m, 0, QC_OWN_DATA, 1);
	enum qc_owner prev;
	assert_false(qc_cm_add(&m, PAGE, QC_OWN_DATA, 1, &prev));
	assert_true(m.over_cap);
	assert_int_equal(qc_cm_owner(&m, PAGE), QC_OWN_FREE);
	/* a run fills the allowed page and stops at the next */
	assert_int_equal(qc_cm_add_run(&m, PAGE - 10, 20, QC_OWN_DATA, 1, 0), 10);
	assert_int_equal(m.bytes, dir + PAGE_BYTES);
	qc_cm_free(&m);
	/* bytes held elsewhere under the same cap leave no room for a page */
	uint64_t outside = 1;
	assert_int_equal(qc_cm_init(&m, 4 * PAGE, dir + PAGE_BYTES), 0);
	m.outside = &outside;
	assert_false(qc_cm_add(&m, 0, QC_OWN_DATA, 1, &prev));
	outside = 0;
	add(&m, 0, QC_OWN_DATA, 1);
	qc_cm_free(&m);
}

/* The overflow hash draws on the cap too: a count past the inline limit
 * fails when the hash cannot be had, and the inline count is unchanged. */
static void cap_overflow_hash(void **state)
{
	(void)state;
	struct qc_clustermap m;
	size_t dir = sizeof(void *);
	assert_int_equal(qc_cm_init(&m, PAGE, dir + PAGE_BYTES + 100), 0);
	add(&m, 7, QC_OWN_DATA, 1000);
	enum qc_owner prev;
	assert_false(qc_cm_add(&m, 7, QC_OWN_DATA, 100, &prev));
	assert_true(m.over_cap);
	assert_int_equal(qc_cm_count(&m, 7), 1000);
	qc_cm_free(&m);
	/* with room for the hash's first 256 slots (16 bytes each) it works */
	assert_int_equal(qc_cm_init(&m, PAGE, dir + PAGE_BYTES + 256 * 16), 0);
	add(&m, 7, QC_OWN_DATA, 1000);
	add(&m, 7, QC_OWN_DATA, 100);
	assert_int_equal(qc_cm_count(&m, 7), 1100);
	qc_cm_free(&m);
}

/* foreach visits exactly the clusters with an owner or a count. */
struct visit {
	uint64_t n, sum;
};

static void visit_fn(void *ctx, uint64_t c, enum qc_owner o, uint64_t count, unsigned flags)
{
	struct visit *v = ctx;
	(void)o;
	(void)flags;
	v->n++;
	v->sum += c + count;
}

static void foreach_visits_claimed(void **state)
{
	(void)state;
	struct qc_clustermap m;
	assert_int_equal(qc_cm_init(&m, 3 * PAGE, 0), 0);
	add(&m, 1, QC_OWN_HEADER, 1);
	add(&m, PAGE * 2 + 9, QC_OWN_DATA, 2000);
	struct visit v = { 0, 0 };
	qc_cm_foreach(&m, visit_fn, &v);
	assert_int_equal(v.n, 2);
	assert_int_equal(v.sum, 1 + 1 + PAGE * 2 + 9 + 2000);
	qc_cm_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(overflow_counts_exact),
		cmocka_unit_test(overflow_saturates),
		cmocka_unit_test(overflow_hash_grows),
		cmocka_unit_test(run_across_pages),
		cmocka_unit_test(run_stops_at_other_owner),
		cmocka_unit_test(last_cluster_and_range),
		cmocka_unit_test(owner_rules),
		cmocka_unit_test(run_blocks_stop_exactly),
		cmocka_unit_test(entries_in_place),
		cmocka_unit_test(uniform_blocks),
		cmocka_unit_test(cap_pages),
		cmocka_unit_test(cap_overflow_hash),
		cmocka_unit_test(foreach_visits_claimed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
