/*
 * test_model.c - the model says what it counted (checker/image.h
 * self_claims): the references the walk adds for the refcount structure
 * itself are recorded where they are made, qc_self_claims_consistent()
 * proves the record is the whole of what qc_claim() added for the reftable
 * and refblock owners, and the refcount rebuild subtracts that record.
 * When the two drift (a checker change claims differently without
 * recording it) the check fails here, and the planner refuses to rebuild
 * rather than write wrong refcounts.  Images: corpus/demo-leaks.qcow2 and
 * corpus/demo-clean.qcow2, damaged in memory.  Run from the repository
 * root (make unit).
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
#include "../../checker/trust.h"
#include "../../core/reader.h"
#include "../../repair/apply.h"
#include "../../repair/repair.h"
#include "corpus.h"

/* The record matches the image's reftable and its usable entries. */
static void assert_record(const struct qc_image *img)
{
	const struct qc_self_claims *s = &img->self_claims;
	assert_int_equal(s->reftable_off, img->h.refcount_table_offset);
	assert_int_equal(s->reftable_bytes, (uint64_t)img->h.refcount_table_clusters << img->cluster_bits);
	uint64_t usable = 0;
	for (uint64_t i = 0; i < img->reftable_entries; i++)
		usable += img->refblock_usable[i] != 0;
	assert_int_equal(s->refblocks, usable);
	assert_true(qc_self_claims_consistent(img));
	/* and every reference on the reftable's and refblocks' clusters is one
	 * the record names (no other structure shares them in these images) */
	assert_int_equal(img->claimed_refs[QC_OWN_REFTABLE],
			 img->h.refcount_table_clusters * s->reftable_nref);
	assert_int_equal(img->claimed_refs[QC_OWN_REFBLOCK], usable * s->refblock_nref);
}

static void record_matches_claims(void **state)
{
	(void)state;
	const char *files[] = { "corpus/demo-clean.qcow2", "corpus/demo-leaks.qcow2" };
	for (size_t f = 0; f < 2; f++) {
		size_t len;
		uint8_t *d = load(files[f], &len);
		struct qc_io *io = qc_io_open_memory(d, len, false);
		struct qc_image *img = check(io);
		assert_true(img->self_claims.refblocks >= 1);
		assert_record(img);
		qc_image_free(img);
		qc_io_close(io);
		/* an entry with a reserved bit is not claimed, and not recorded */
		uint64_t rt = qc_be64_at(d + 48);
		d[rt + 7] |= 1;
		io = qc_io_open_memory(d, len, false);
		img = check(io);
		assert_int_equal(img->self_claims.refblocks, 0);
		assert_record(img);
		qc_image_free(img);
		qc_io_close(io);
		free(d);
	}
}

/* A reftable entry with a reserved bit: the planner rebuilds. */
static uint8_t *needs_rebuild(size_t *len)
{
	uint8_t *d = load("corpus/demo-leaks.qcow2", len);
	d[qc_be64_at(d + 48) + 7] |= 1;
	return d;
}

static bool has_switch(const struct qc_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].phase == QC_PH_SWITCH)
			return true;
	return false;
}

static void rebuild_subtracts_the_record(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = needs_rebuild(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	struct qc_plan p;
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	assert_true(has_switch(&p));
	assert_int_equal(p.nleft, 0);
	qc_image_free(img);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	/* the old reftable and refblock now hold no reference: a count left on
	 * them (a claim not subtracted) would be a leak, one subtracted twice
	 * would be refcount-zero/too-low somewhere */
	img = check(io);
	assert_int_equal(img->problems.leaks, 0);
	assert_int_equal(img->problems.corruptions, 0);
	assert_record(img);
	qc_image_free(img);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

/* Drift: the checker claimed something for the refcount structure that the
 * record does not name (or the record names what was not claimed). */
static void drift_refuses_rebuild(void **state)
{
	(void)state;
	for (int k = 0; k < 3; k++) {
		size_t len;
		uint8_t *d = needs_rebuild(&len);
		struct qc_io *io = qc_io_open_memory(d, len, false);
		struct qc_image *img = check(io);
		assert_true(qc_self_claims_consistent(img));
		if (k == 0)
			img->claimed_refs[QC_OWN_REFBLOCK]++;   /* an unrecorded refblock claim */
		else if (k == 1)
			img->self_claims.reftable_nref = 2;     /* the record says more than was claimed */
		else
			img->claimed_refs[QC_OWN_REFTABLE] += 1; /* an unrecorded reftable claim */
		assert_false(qc_self_claims_consistent(img));
		struct qc_repair_opts ro = { .leaks_only = false };
		struct qc_plan p;
		qc_plan_init(&p, io->size);
		assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
		assert_false(has_switch(&p));
		bool left = false;
		for (size_t i = 0; i < p.nleft; i++)
			left |= p.left[i].code == QC_P_REFTABLE_ENTRY_RESERVED &&
				strstr(p.left[i].reason, "record") != NULL;
		assert_true(left);
		qc_plan_free(&p);
		qc_image_free(img);
		qc_io_close(io);
		free(d);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(record_matches_claims),
		cmocka_unit_test(rebuild_subtracts_the_record),
		cmocka_unit_test(drift_refuses_rebuild),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
