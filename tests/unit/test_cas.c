/*
 * test_cas.c - compare-and-swap of planned writes (repair/cas.h): the real
 * planner on corpus/demo-leaks.qcow2 damaged in memory (a reftable entry
 * with a reserved bit, OFLAG_COPIED flipped in the active L1, dirty and
 * corrupt bits: writes in every phase).  Between plan and apply the memory
 * image is changed: in a region a write replaces, past the end of the
 * file where the new structures go, or between the two apply calls.  The
 * journal and the apply step must refuse, and nothing of the plan may
 * reach the image.  An unchanged image still takes the whole plan (the
 * corrupt-bit write, which follows the dirty-bit write to the same bytes,
 * is compared against the bytes the dirty-bit write left).
 * Run from the repository root (make unit).
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
#include "../../repair/cas.h"
#include "../../repair/journal.h"
#include "../../repair/repair.h"
#include "corpus.h"

static void plan_of(struct qc_io *io, struct qc_plan *p)
{
	struct qc_image *img = check(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, p), 0);
	qc_image_free(img);
	assert_true(p->n > 3);
	for (size_t i = 0; i < p->n; i++)
		assert_non_null(p->w[i].old);
}

/* The first write of phase ph. */
static const struct qc_write *first_of(const struct qc_plan *p, enum qc_phase ph)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].phase == ph)
			return &p->w[i];
	fail_msg("no write in phase %s", qc_phase_name(ph));
	return NULL;
}

static char jpath[64];

static void assert_bytes(struct qc_io *io, const uint8_t *want, size_t len)
{
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, len);
	assert_memory_equal(b, want, len);
}

static void unchanged_image_takes_the_plan(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	plan_of(io, &p);
	char err[256];
	const struct qc_witness wit[] = { { 0, 65536 } };
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	/* the corrupt-bit write expects the dirty-bit write's bytes */
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_FINAL, QC_PH_FINAL, &done), 0);
	assert_int_equal(done, p.n);
	unlink(jpath);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

/* Change one byte the plan replaces after planning: the journal refuses. */
static void journal_refuses_changed_region(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	plan_of(io, &p);
	const struct qc_write *w = first_of(&p, QC_PH_INPLACE);
	uint8_t x = (uint8_t)(w->old[0] ^ 0x5a);
	assert_int_equal(qc_io_write(io, &x, 1, w->offset), 0);
	size_t n;
	uint8_t *changed = malloc(len);
	memcpy(changed, qc_io_memory_bytes(io, &n), len);
	char err[256];
	const struct qc_witness wit[] = { { 0, 65536 } };
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), -ESTALE);
	assert_non_null(strstr(err, "changed"));
	assert_int_equal(access(jpath, F_OK), -1);
	/* and apply refuses on its own, before writing anything */
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), -ESTALE);
	assert_int_equal(done, 0);
	assert_bytes(io, changed, len);
	free(changed);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

/* Journal written, then the image changes: apply refuses before its first
 * write, whichever phase the changed region belongs to. */
static void apply_refuses_change_after_journal(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	for (int ph = QC_PH_NEW; ph <= QC_PH_HEADER; ph++) {
		struct qc_io *io = qc_io_open_memory(d, len, true);
		struct qc_plan p;
		plan_of(io, &p);
		char err[256];
		const struct qc_witness wit[] = { { 0, 65536 } };
		unlink(jpath);
		assert_int_equal(qc_journal_write(jpath, io, &p, wit, 1, err, sizeof(err)), 0);
		const struct qc_write *w = first_of(&p, (enum qc_phase)ph);
		/* the last byte of the region: for a new structure past the end
		 * of the file this extends the file (another writer appended) */
		size_t at = w->len - 1;
		uint8_t x = (uint8_t)(w->old[at] ^ 0xa5);
		assert_int_equal(qc_io_write(io, &x, 1, w->offset + at), 0);
		size_t n;
		const uint8_t *now = qc_io_memory_bytes(io, &n);
		uint8_t *changed = malloc(n);
		memcpy(changed, now, n);
		size_t done = 0;
		assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), -ESTALE);
		assert_int_equal(done, 0);
		for (size_t i = 0; i < p.n; i++)
			assert_false(p.w[i].applied);
		assert_bytes(io, changed, n);
		free(changed);
		unlink(jpath);
		qc_plan_free(&p);
		qc_io_close(io);
	}
	free(d);
}

/* The corrupt-bit write comes after a re-check: a header change in between
 * is refused, and the header keeps the foreign bytes. */
static void final_write_refuses_change_between_calls(void **state)
{
	(void)state;
	size_t len;
	uint8_t *d = damaged(&len);
	struct qc_io *io = qc_io_open_memory(d, len, true);
	struct qc_plan p;
	plan_of(io, &p);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	size_t before = done;
	const struct qc_write *fin = first_of(&p, QC_PH_FINAL);
	uint8_t x = 0x40; /* someone sets an unknown incompatible bit */
	assert_int_equal(qc_io_write(io, &x, 1, fin->offset + 6), 0);
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_FINAL, QC_PH_FINAL, &done), -ESTALE);
	assert_int_equal(done, before);
	size_t n;
	assert_int_equal(qc_io_memory_bytes(io, &n)[fin->offset + 6], 0x40);
	qc_plan_free(&p);
	qc_io_close(io);
	free(d);
}

static void no_old_bytes_no_write(void **state)
{
	(void)state;
	uint8_t img[4096] = { 0 };
	struct qc_io *io = qc_io_open_memory(img, sizeof(img), true);
	struct qc_plan p;
	qc_plan_init(&p, sizeof(img));
	uint8_t b[8] = { 1 };
	assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 64, b, 8, QC_P_REFCOUNT_LEAK, "x"));
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), -ESTALE);
	assert_int_equal(done, 0);
	assert_bytes(io, img, sizeof(img));
	assert_int_equal(qc_plan_record_old(&p, io), 0);
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	assert_int_equal(done, 1);
	qc_plan_free(&p);
	qc_io_close(io);
}

static int setup(void **state)
{
	(void)state;
	snprintf(jpath, sizeof(jpath), "/tmp/qc-cas-%d.undo", (int)getpid());
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
		cmocka_unit_test(unchanged_image_takes_the_plan),
		cmocka_unit_test(journal_refuses_changed_region),
		cmocka_unit_test(apply_refuses_change_after_journal),
		cmocka_unit_test(final_write_refuses_change_between_calls),
		cmocka_unit_test(no_old_bytes_no_write),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
