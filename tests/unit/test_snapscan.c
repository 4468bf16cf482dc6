/*
 * test_snapscan.c - the snapshot-table repair on memory images made from
 * corpus/seeds/snaps-zlib.qcow2 (one snapshot, 1 KiB clusters, 16-bit
 * refcounts): a snapshot L1 pointer one bit off is recovered (the check's
 * verdict says so, the planned table switches in, the repaired image
 * re-checks clean and a second plan is empty); a lost table pointer is
 * re-linked; and the scan's work grows linearly with the leaked clusters
 * (counted, not timed: a scan re-reading every leaked cluster per
 * candidate would do quadratic work and fail the bound); and its lists
 * are held on --max-mem and given back, a cap they exceed making the
 * scan find nothing.
 * Run from the repository root (make unit).
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
#include "../../checker/snapscan.h"
#include "../../core/reader.h"
#include "../../core/refblock.h"
#include "../../repair/apply.h"
#include "../../repair/repair.h"

static uint8_t *load(const char *path, size_t *len, size_t extra)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	uint8_t *b = calloc(1, *len + extra);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static struct qc_image *check(struct qc_io *io)
{
	struct qc_options o = { 0 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(io, &o, &img), 0);
	return img;
}

#define SEED "corpus/seeds/snaps-zlib.qcow2"

/* Plan and apply a repair on a memory image; returns the re-check. */
static struct qc_image *repair(struct qc_io *io, size_t *nwrites)
{
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	struct qc_plan p;
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	*nwrites = p.n;
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	qc_plan_free(&p);
	qc_image_free(img);
	return check(io);
}

static void l1_pointer_one_bit_off_is_recovered(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = load(SEED, &len, 0);
	uint64_t so = qc_be64_at(b + 64);
	uint64_t l1 = qc_be64_at(b + so);
	qc_put_be64(b + so, l1 ^ 0x200); /* one bit: unaligned for 1 KiB clusters */
	struct qc_io *io = qc_io_open_memory(b, len, true);
	struct qc_image *img = check(io);
	assert_int_equal(qc_check_exit_code(img), 2);
	assert_int_equal(img->nsnapshots, 1);
	assert_int_equal(img->snapshots[0].fix.verdict, QC_SNAP_RECOVERED);
	assert_int_equal(img->snapshots[0].fix.l1_table_offset, l1);
	qc_image_free(img);
	size_t n;
	img = repair(io, &n);
	assert_true(n >= 3); /* new table, its refcount, the switch (+ the old table freed) */
	assert_int_equal(qc_check_exit_code(img), 0);
	assert_int_equal(img->nsnapshots, 1);
	assert_int_equal(img->snapshots[0].l1_table_offset, l1);
	qc_image_free(img);
	img = repair(io, &n);
	assert_int_equal(n, 0);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

static void lost_table_is_relinked(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = load(SEED, &len, 0);
	uint64_t so = qc_be64_at(b + 64);
	qc_put_be64(b + 64, 0);
	struct qc_io *io = qc_io_open_memory(b, len, true);
	struct qc_image *img = check(io);
	assert_true(img->snapfix.relink);
	assert_int_equal(img->snapfix.relink_offset, so);
	assert_int_equal(img->snapfix.relink_count, 1);
	qc_image_free(img);
	size_t n;
	img = repair(io, &n);
	assert_int_equal(qc_check_exit_code(img), 0);
	assert_int_equal(img->h.snapshots_offset, so);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

/*
 * The seed with n leaked clusters (refcount 1, nothing references them)
 * after the end of the file, each an almost-L1 table: 7 entries point at
 * the snapshot's L2 table (its refcount raised by one, so it passes as a
 * table that counts a lost snapshot), the 8th at the reftable (which
 * fails), so every candidate is examined to its last entry.  *total: the
 * image's length in the returned buffer.
 */
static uint8_t *leaky_image(uint64_t n, size_t *total)
{
	size_t len;
	uint8_t *b = load(SEED, &len, (size_t)(n + 2) * 1024);
	uint64_t cs = 1024;
	uint64_t so = qc_be64_at(b + 64);
	uint64_t l1 = qc_be64_at(b + so);
	uint64_t l2 = qc_be64_at(b + l1) & UINT64_C(0x00fffffffffffe00);
	uint64_t first = (len + cs - 1) / cs;
	uint64_t rt = qc_be64_at(b + 48);
	uint64_t rb = qc_be64_at(b + rt);
	assert_true(first + n < 512); /* one 16-bit refblock covers 512 clusters */
	for (uint64_t k = 0; k < n; k++) {
		for (uint64_t e = 0; e < 7; e++)
			qc_put_be64(b + (first + k) * cs + e * 8, l2);
		qc_put_be64(b + (first + k) * cs + 7 * 8, rt);
		qc_rc_set(b + rb, 4, first + k, 1);
	}
	qc_rc_set(b + rb, 4, l2 / cs, qc_rc_get(b + rb, 4, l2 / cs) + 1);
	*total = (size_t)((first + n) * cs);
	return b;
}

/* Scan the seed with n leaked clusters (leaky_image); the work counters. */
static struct qc_snapscan scan_with_leaks(uint64_t n)
{
	size_t total;
	uint8_t *b = leaky_image(n, &total);
	struct qc_io *io = qc_io_open_memory(b, total, false);
	struct qc_image *img = check(io);
	struct qc_snapscan sc;
	assert_int_equal(qc_snapscan_init(&sc, img), 0);
	assert_true(sc.nleaked >= n);
	uint64_t found[2];
	qc_snapscan_find_l1(&sc, 8, found);
	struct qc_snapscan_table t[2];
	qc_snapscan_find_table(&sc, 0, t);
	struct qc_snapscan out = sc;
	out.excess = out.leaked = NULL;
	out.l2buf = NULL;
	qc_snapscan_free(&sc);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
	return out;
}

/* The scan's lists are held on --max-mem while it lives and given back by
 * qc_snapscan_free; a cap they do not fit under makes the scan find
 * nothing (init fails, sc.ok false) instead of growing past it. */
static void scan_lists_are_held_on_the_cap(void **state)
{
	(void)state;
	size_t total;
	uint8_t *b = leaky_image(400, &total);
	struct qc_io *io = qc_io_open_memory(b, total, false);
	struct qc_image *img = check(io);
	uint64_t held = img->mem_held;
	struct qc_snapscan sc;
	assert_int_equal(qc_snapscan_init(&sc, img), 0);
	assert_true(sc.mem >= 400 * sizeof(uint64_t));
	assert_int_equal(img->mem_held, held + sc.mem);
	qc_snapscan_free(&sc);
	assert_int_equal(img->mem_held, held);
	/* 1 KiB left under the cap: 400 leaked clusters need 3.2 KiB */
	img->opt.mem_cap = (size_t)(img->cmap.bytes + img->mem_held + 1024);
	assert_int_equal(qc_snapscan_init(&sc, img), -1);
	assert_false(sc.ok);
	qc_snapscan_free(&sc);
	assert_int_equal(img->mem_held, held);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

static void scan_work_is_linear_in_the_leaks(void **state)
{
	(void)state;
	struct qc_snapscan a = scan_with_leaks(100), c = scan_with_leaks(400);
	print_message("work: 100 leaks: %llu clusters, %llu entries; 400 leaks: %llu clusters, %llu entries\n", (unsigned long long)a.clusters_read, (unsigned long long)a.entries_examined, (unsigned long long)c.clusters_read, (unsigned long long)c.entries_examined);
	/* every leaked cluster read a bounded number of times: by the L1
	 * search, the table search, and as the target of a candidate's
	 * entries (8 entries per candidate here) */
	assert_true(a.clusters_read <= 100 * 12 + 64);
	assert_true(c.clusters_read <= 400 * 12 + 64);
	/* 4x the leaks: at most ~4x the work (plus the fixed part) */
	assert_true(c.clusters_read <= 4 * a.clusters_read + 64);
	assert_true(c.entries_examined <= 4 * a.entries_examined + 4096);
	/* each candidate examined to its last entry, not more */
	assert_true(a.entries_examined >= 100 * 8 && a.entries_examined <= 100 * 8 * 3 + 4096);
	assert_int_equal(a.refblocks_read, c.refblocks_read);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(l1_pointer_one_bit_off_is_recovered),
		cmocka_unit_test(lost_table_is_relinked),
		cmocka_unit_test(scan_work_is_linear_in_the_leaks),
		cmocka_unit_test(scan_lists_are_held_on_the_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
