/*
 * test_journal.c - the undo journal and the phased apply on memory images:
 * crash after every write k (fault injection) then undo restores the
 * original bytes and length; undo refuses foreign images and damaged
 * journals; journals are never overwritten; the summary section (version
 * 2: printed by a dry run, bounded, checked; version-1 journals without it
 * still undone); refcount entry access at every width; plan diffs.
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
#include <openssl/evp.h>

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

/* ---- the summary section (journal.h, version 2) ---- */

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	uint8_t *b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	b[n] = 0;
	*len = (size_t)n;
	return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	fclose(f);
}

static void sha(const void *d, size_t n, uint8_t out[32])
{
	unsigned int l = 0;
	assert_int_equal(EVP_Digest(d, n, out, &l, EVP_sha256(), NULL), 1);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* The layout of a journal read back by hand (journal.h): the end of the
 * header's checksum, each region record's checksum, the summary section. */
struct layout {
	size_t hdr_end;    /* offset past the header sha */
	size_t nreg;
	size_t reg_sha[16];
	size_t sum_at;     /* offset of the summary section (= trailer in v1) */
};

static void layout_of(const uint8_t *j, size_t len, struct layout *L)
{
	uint32_t nwit = be32(j + 12);
	L->hdr_end = 40 + (size_t)nwit * 48 + 32;
	L->nreg = be32(j + 32);
	assert_true(L->nreg <= 16);
	size_t at = L->hdr_end;
	for (size_t i = 0; i < L->nreg; i++) {
		size_t reclen = 56 + be32(j + at + 20);
		L->reg_sha[i] = at + reclen;
		at += reclen + 32;
	}
	L->sum_at = at;
	assert_true(at <= len);
}

/* Rewrite the trailer's chain checksum (with or without a summary sha). */
static void reseal(uint8_t *j, size_t len, const struct layout *L, const uint8_t *sum_sha)
{
	uint8_t chain[32 * 18];
	size_t n = 0;
	memcpy(chain, j + L->hdr_end - 32, 32);
	n++;
	for (size_t i = 0; i < L->nreg; i++, n++)
		memcpy(chain + n * 32, j + L->reg_sha[i], 32);
	if (sum_sha) {
		memcpy(chain + n * 32, sum_sha, 32);
		n++;
	}
	sha(chain, n * 32, j + len - 48 + 16);
}

/* A plan with a guest range at stake and a summary holding a control byte. */
static void make_guest_plan(struct qc_plan *p)
{
	make_plan(p);
	uint8_t e[8] = { 0 };
	struct qc_write *w = qc_plan_add(p, QC_PH_INPLACE, 30000, e, 8, QC_P_L2_DATA_PAST_EOF,
					 "entry dropped; guest 0x300000 keeps it\ttab");
	assert_non_null(w);
	w->guest_offset = 0x400000;
	w->guest_length = 0x10000;
	qc_plan_sort(p);
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, false);
	for (size_t i = 0; i < p->n; i++) {
		free(p->w[i].old);
		p->w[i].old = NULL;
	}
	assert_int_equal(qc_plan_record_old(p, io), 0);
	qc_io_close(io);
}

/* undo --dry-run of the journal at jpath into a string (malloc'd) */
static char *dry_run_text(struct qc_io *io, int *rc)
{
	char err[256], out[128];
	snprintf(out, sizeof(out), "%s/out", dir);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	*rc = qc_journal_undo(jpath, io, QC_UNDO_DRY_RUN, f, err, sizeof(err));
	fclose(f);
	size_t len;
	char *t = (char *)slurp(out, &len);
	unlink(out);
	return t;
}

static void summary_printed(void **state)
{
	(void)state;
	struct qc_plan p;
	make_guest_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	int rc;
	char *t = dry_run_text(io, &rc);
	assert_int_equal(rc, 0);
	/* one line per write, the plan's own words, the guest range */
	char want[200];
	snprintf(want, sizeof(want), "the repair's writes (%zu line(s)):\n", p.n);
	assert_non_null(strstr(t, want));
	assert_non_null(strstr(t, "  [switch] write 0x30 +12  reftable-entry-reserved: switch\n"));
	assert_non_null(strstr(t, "  [in-place] write 0x7530 +8  l2-data-past-eof: entry dropped; guest 0x300000 keeps it?tab (guest 0x400000+0x10000)\n"));
	free(t);
	/* the image is untouched by the dry run and undone by the real one */
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	assert_original(io);
	qc_io_close(io);
	qc_plan_free(&p);
}

/* A version-1 journal (no summary section) is still read and undone. */
static void version1_still_undone(void **state)
{
	(void)state;
	struct qc_plan p;
	make_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	size_t len;
	uint8_t *j = slurp(jpath, &len);
	assert_int_equal(be32(j + 8), 2);
	struct layout L;
	layout_of(j, len, &L);
	/* a version-1 header over a journal that has a summary section: the
	 * summary is not where a version-1 trailer must be: damaged */
	put32(j + 8, 1);
	sha(j, L.hdr_end - 32, j + L.hdr_end - 32);
	spit(jpath, j, len);
	assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_DRY_RUN, NULL, err, sizeof(err)), -EINVAL);
	/* cut the summary out: header version 1, trailer chain without it */
	size_t sum_len = len - 48 - L.sum_at;
	memmove(j + L.sum_at, j + len - 48, 48);
	len -= sum_len;
	put32(j + 8, 1);
	sha(j, L.hdr_end - 32, j + L.hdr_end - 32);
	reseal(j, len, &L, NULL);
	spit(jpath, j, len);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	int rc;
	char *t = dry_run_text(io, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(t, "journal version 1: no summary"));
	free(t);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	assert_original(io);
	free(j);
	qc_io_close(io);
	qc_plan_free(&p);
}

/* A summary whose checksums are right but whose content breaks a rule
 * (a control byte, a line count that disagrees, a missing line end, a
 * length past the bound) is refused as damaged; so is an unknown version. */
static void damaged_summary_refused(void **state)
{
	(void)state;
	struct qc_plan p;
	make_guest_plan(&p);
	char err[256];
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	size_t len;
	uint8_t *j0 = slurp(jpath, &len);
	struct layout L;
	layout_of(j0, len, &L);
	uint8_t *j = malloc(len);
	uint32_t tlen = be32(j0 + L.sum_at + 8);
	for (int k = 0; k < 5; k++) {
		memcpy(j, j0, len);
		uint8_t *sec = j + L.sum_at, *text = sec + 16;
		switch (k) {
		case 0: text[5] = 0x01; break;                       /* control byte */
		case 1: put32(sec + 4, be32(sec + 4) + 1); break;    /* line count */
		case 2: text[tlen - 1] = 'x'; break;                 /* last '\n' */
		case 3: put32(sec + 12, 1); break;                   /* reserved word */
		case 4: text[0] = '\n'; text[1] = 'x'; break;        /* empty line: count off */
		}
		uint8_t ssha[32];
		sha(sec, 16 + tlen, ssha);
		memcpy(text + tlen, ssha, 32);
		reseal(j, len, &L, ssha);
		spit(jpath, j, len);
		assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_DRY_RUN, NULL, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "summary"));
	}
	/* a text length past the bound, checksums aside */
	memcpy(j, j0, len);
	put32(j + L.sum_at + 8, QC_JOURNAL_MAX_SUMMARY + 1);
	spit(jpath, j, len);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -EINVAL);
	/* version 3 is unknown */
	memcpy(j, j0, len);
	put32(j + 8, 3);
	sha(j, L.hdr_end - 32, j + L.hdr_end - 32);
	spit(jpath, j, len);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), -EINVAL);
	/* the untouched journal is accepted */
	spit(jpath, j0, len);
	assert_int_equal(qc_journal_undo(jpath, io, QC_UNDO_DRY_RUN, NULL, err, sizeof(err)), 0);
	assert_original(io);
	free(j);
	free(j0);
	qc_io_close(io);
	qc_plan_free(&p);
}

/* The summary is bounded: past QC_JOURNAL_MAX_SUMMARY / 2 the writes with
 * no guest range are left out (counted on a last line), while a write with
 * a guest range at stake that comes after them is still summarised. */
static void summary_bounded(void **state)
{
	(void)state;
	struct qc_plan p;
	qc_plan_init(&p, IMG_LEN);
	uint8_t b = 0x5a;
	size_t nw = 0;
	/* each line is 70..80 bytes: enough writes to pass half the bound */
	for (; nw * 60 < QC_JOURNAL_MAX_SUMMARY / 2 + 100000; nw++)
		assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 8192 + nw % 40000, &b, 1, QC_P_REFCOUNT_LEAK,
					    "refcount of cluster %zu: 1 -> 0", nw));
	struct qc_write *w = qc_plan_add(&p, QC_PH_INPLACE, 100, &b, 1, QC_P_L2_DATA_PAST_EOF, "the last one");
	w->guest_offset = 0x1230000;
	w->guest_length = 0x10000;
	struct qc_io *io = qc_io_open_memory(orig, IMG_LEN, true);
	assert_int_equal(qc_plan_record_old(&p, io), 0);
	char err[256];
	unlink(jpath);
	assert_int_equal(qc_journal_write(jpath, io, &p, wit, 2, err, sizeof(err)), 0);
	int rc;
	char *t = dry_run_text(io, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(t, "more write(s) not summarised (0 with a guest range at stake)"));
	assert_non_null(strstr(t, "l2-data-past-eof: the last one (guest 0x1230000+0x10000)\n"));
	free(t);
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
		cmocka_unit_test(summary_printed),
		cmocka_unit_test(version1_still_undone),
		cmocka_unit_test(damaged_summary_refused),
		cmocka_unit_test(summary_bounded),
		cmocka_unit_test(refblock_entries_every_width),
		cmocka_unit_test(plan_diff_runs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
