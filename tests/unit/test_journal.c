/*
 * test_journal.c - the undo journal and the phased apply on memory images:
 * crash after every write k (fault injection) then undo restores the
 * original bytes and length; undo refuses foreign images and damaged
 * journals; journals are never overwritten; refcount entry access at every
 * width; plan diffs.
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
#include "../../core/refblock.h"
#include "../../repair/apply.h"
#include "../../repair/cas.h"
#include "../../repair/journal.h"
#include "../../repair/plan.h"
#include "../../repair/repair.h"

#define IMG_LEN (64 * 1024 + 100) /* deliberately not cluster aligned */
#define HDR_LEN 4096

static uint8_t orig[IMG_LEN];
/* the "header cluster" and a "table" the repair does not write */
static const struct qc_witness wit[2] = { { 0, HDR_LEN }, { 20000, 5000 } };
static char dir[64];
static char jpath[128];

static int setup(void **state)
{
	(void)state;
	srand(7);
	for (size_t i = 0; i < IMG_LEN; i++)
		orig[i] = (uint8_t)rand();
	strcpy(dir, "/tmp/qc-journal.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(jpath, sizeof(jpath), "%s/undo", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(jpath);
	rmdir(dir);
	return 0;
}

/* A plan touching every phase: new bytes past EOF, a header switch,
 * in-place edits (one straddling the old EOF), a header flag write and a
 * conditional write to the same 8 bytes. */
static void make_plan(struct qc_plan *p)
{
	uint8_t buf[8192];
	qc_plan_init(p, IMG_LEN);
	memset(buf, 0xab, sizeof(buf));
	assert_non_null(qc_plan_add(p, QC_PH_NEW, 72 * 1024, buf, 4096, QC_P_REFTABLE_ENTRY_RESERVED, "new block"));
	assert_non_null(qc_plan_add(p, QC_PH_NEW, 76 * 1024, buf, 8192, QC_P_REFTABLE_ENTRY_RESERVED, "new table"));
	uint8_t sw[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	assert_non_null(qc_plan_add(p, QC_PH_SWITCH, 48, sw, 12, QC_P_REFTABLE_ENTRY_RESERVED, "switch"));
	assert_non_null(qc_plan_add(p, QC_PH_INPLACE, 8192 + 6, buf, 2, QC_P_REFCOUNT_LEAK, "leak"));
	assert_non_null(qc_plan_add(p, QC_PH_INPLACE, IMG_LEN - 10, buf, 40, QC_P_REFCOUNT_LEAK, "straddle"));
	uint8_t h1[8] = { 0 }, h2[8] = { 0 };
	h1[7] = 2;
	assert_non_null(qc_plan_add(p, QC_PH_FINAL, 72, h2, 8, QC_P_HEADER_CORRUPT_BIT, "corrupt"));
	assert_non_null(qc_plan_add(p, QC_PH_HEADER, 72, h1, 8, QC_P_HEADER_DIRTY, "dirty"));
	qc_plan_sort(p);
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, false);
	assert_non_null(io);
	assert_int_equal(qc_plan_record_old(p, io), 0);
	qc_io_close(io);
	assert_int_equal(p->w[p->n - 1].phase, QC_PH_FINAL);
	assert_int_equal(p->w[0].phase, QC_PH_NEW);
}

static void assert_original(struct qc_io *io)
{
	size_t len;
	const uint8_t *b = qc_io_memory_bytes(io, &len);
	assert_int_equal(len, IMG_LEN);
	assert_memory_equal(b, orig, IMG_LEN);
}

static void crash_after_every_write(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	for (size_t k = 0; k <= p.n; k++) {
		struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
		assert_non_null(io);
		unlink(jpath);
		assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
		size_t done = 0;
		io->fail_after_writes = k;
		int r = qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done);
		if (k == 0 || k == p.n) {
			/* k == 0 means no fault: everything written */
			assert_int_equal(r, 0);
			assert_int_equal(done, p.n);
			assert_true(io->size > IMG_LEN);
		} else {
			assert_int_equal(r, -EIO);
			assert_int_equal(done, k);
		}
		io->fail_after_writes = 0;
		assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
		assert_original(io);
		/* undo is idempotent on the restored image */
		assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
		assert_original(io);
		qc_io_close(io);
	}
	/* partial phases: stop before the conditional write, then undo */
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done), 0);
	assert_int_equal(done, qc_plan_unconditional(&p));
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	assert_original(io);
	qc_io_close(io);
	qc_plan_free(&p);
}

/* Witness ranges that lie partly or wholly past the end of the file (a
 * refcount table or L1 table named past EOF) still give a journal undo
 * accepts (found by fuzz/fuzz_repair.c: undo refused "witness range 1 is
 * outside the image"). */
static void witnesses_past_eof(void **state)
{
	(void)state;
	static const struct qc_witness far[3] = {
		{ 0, HDR_LEN }, { IMG_LEN + 4096, 8192 }, { IMG_LEN - 100, 4096 },
	};
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, far, 3, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	assert_original(io);
	qc_io_close(io);
	qc_plan_free(&p);
}

static void dry_run_writes_nothing(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	size_t len;
	const uint8_t *b = qc_io_memory_bytes(io, &len);
	uint8_t *snap = malloc(len);
	memcpy(snap, b, len);
	size_t snaplen = len;
	assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_DRY_RUN, NULL, err, sizeof(err)), 0);
	b = qc_io_memory_bytes(io, &len);
	assert_int_equal(len, snaplen);
	assert_memory_equal(b, snap, len);
	free(snap);
	qc_io_close(io);
	qc_plan_free(&p);
}

static void refuses_foreign_image(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	qc_io_close(io);

	/* header byte outside every region differs */
	uint8_t *other = malloc(IMG_LEN);
	memcpy(other, orig, IMG_LEN);
	other[200] ^= 1;
	io = qc_io_open_memory(other, IMG_LEN, true);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -ESTALE);
	size_t len;
	assert_memory_equal(qc_io_memory_bytes(io, &len), other, IMG_LEN);
	qc_io_close(io);

	/* a byte of the second witness range differs */
	memcpy(other, orig, IMG_LEN);
	other[24000] ^= 1;
	io = qc_io_open_memory(other, IMG_LEN, true);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -ESTALE);
	qc_io_close(io);

	/* a region holds bytes that are neither old nor new */
	memcpy(other, orig, IMG_LEN);
	other[8192 + 6] ^= 0x55;
	io = qc_io_open_memory(other, IMG_LEN, true);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -ESTALE);
	qc_io_close(io);
	/* ... which --force (a repair cut off mid-write) restores */
	io = qc_io_open_memory(other, IMG_LEN, true);
	assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_FORCE, NULL, err, sizeof(err)), 0);
	assert_memory_equal(qc_io_memory_bytes(io, &len), orig, IMG_LEN);
	qc_io_close(io);
	/* --force still refuses an image whose witness bytes differ */
	other[200] ^= 1;
	io = qc_io_open_memory(other, IMG_LEN, true);
	assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_FORCE, NULL, err, sizeof(err)), -ESTALE);
	qc_io_close(io);

	/* wrong length (shorter than the image the journal was written for) */
	io = qc_io_open_memory(orig, IMG_LEN - 200, true);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -ESTALE);
	qc_io_close(io);
	free(other);
	qc_plan_free(&p);
}

static void refuses_damaged_journal(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	FILE *f = fopen(jpath, "rb");
	fseek(f, 0, SEEK_END);
	long jlen = ftell(f);
	rewind(f);
	uint8_t *j = malloc((size_t)jlen);
	assert_int_equal(fread(j, 1, (size_t)jlen, f), (size_t)jlen);
	fclose(f);
	/* flip one bit at many positions, and cut the file short */
	for (long pos = 0; pos < jlen; pos++) {
		j[pos] ^= 0x10;
		f = fopen(jpath, "wb");
		fwrite(j, 1, (size_t)jlen, f);
		fclose(f);
		assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -EINVAL);
		j[pos] ^= 0x10;
	}
	for (long cut = 1; cut < jlen; cut += jlen / 7) {
		f = fopen(jpath, "wb");
		fwrite(j, 1, (size_t)(jlen - cut), f);
		fclose(f);
		assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -EINVAL);
	}
	assert_original(io);
	free(j);
	qc_io_close(io);
	qc_plan_free(&p);
}

static void never_overwrites_journal(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), -EEXIST);
	/* the default path skips existing journals */
	char img[128], *d1, *d2;
	snprintf(img, sizeof(img), "%s/img", dir);
	d1 = qc_journal_default_path(img);
	assert_non_null(d1);
	FILE *f = fopen(d1, "w");
	fclose(f);
	d2 = qc_journal_default_path(img);
	assert_string_not_equal(d1, d2);
	unlink(d1);
	free(d1);
	free(d2);
	qc_io_close(io);
	qc_plan_free(&p);
}

static void refblock_entries_every_width(void **state)
{
	(void)state;
	uint8_t blk[512];
	for (unsigned order = 0; order <= 6; order++) {
		uint64_t max = order == 6 ? UINT64_MAX : (UINT64_C(1) << (1u << order)) - 1;
		uint64_t n = (uint64_t)sizeof(blk) * 8 >> order;
		memset(blk, 0, sizeof(blk));
		for (uint64_t i = 0; i < n; i++)
			qc_rc_set(blk, order, i, (i * 2654435761u) & max);
		for (uint64_t i = 0; i < n; i++)
			assert_true(qc_rc_get(blk, order, i) == ((i * 2654435761u) & max));
	}
	/* QEMU's layouts: 16-bit big-endian; 1-bit from the least significant bit */
	memset(blk, 0, sizeof(blk));
	qc_rc_set(blk, 4, 1, 0x0102);
	assert_int_equal(blk[2], 1);
	assert_int_equal(blk[3], 2);
	memset(blk, 0, sizeof(blk));
	qc_rc_set(blk, 0, 1, 1);
	assert_int_equal(blk[0], 2);
	qc_rc_set(blk, 2, 1, 0xf);
	assert_int_equal(blk[0], 0xf2);
}

static void plan_diff_runs(void **state)
{
	(void)state;
	uint8_t a[256] = { 0 }, b[256] = { 0 };
	b[3] = 1;
	b[10] = 1;  /* within 16 bytes of 3: merged */
	b[100] = 1; /* separate */
	struct qc_plan p;
	qc_plan_init(&p, 1000);
	assert_int_equal(qc_plan_diff(&p, QC_PH_INPLACE, 1000, a, b, sizeof(a), QC_P_L2_COPIED_MISSING, "t"), 2);
	assert_int_equal(p.w[0].offset, 1003);
	assert_int_equal(p.w[0].len, 8);
	assert_int_equal(p.w[1].offset, 1100);
	assert_int_equal(p.w[1].len, 1);
	assert_int_equal(p.end_after, 1101);
	assert_int_equal(qc_plan_diff(&p, QC_PH_INPLACE, 0, a, a, sizeof(a), QC_P_L2_COPIED_MISSING, "t"), 0);
	qc_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crash_after_every_write),
		cmocka_unit_test(dry_run_writes_nothing),
		cmocka_unit_test(witnesses_past_eof),
		cmocka_unit_test(refuses_foreign_image),
		cmocka_unit_test(refuses_damaged_journal),
		cmocka_unit_test(never_overwrites_journal),
		cmocka_unit_test(refblock_entries_every_width),
		cmocka_unit_test(plan_diff_runs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
