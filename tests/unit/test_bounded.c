/*
 * test_bounded.c - complexity tests: every path a hostile image controls
 * costs what the image really holds (SECURITY.md, "Bounded time").
 *
 * Most tests count work through counters the code under test exposes
 * (bytes read through qc_io, clusters the refcount compare looked at,
 * undo's matching steps, writes in a plan), so they are deterministic.
 * Two (the plan printer and the phase sort) have no natural counter: they
 * run on inputs where the old quadratic code took minutes and the new one
 * takes milliseconds, and must stay under 20 s of CPU time (clock(): the
 * process's own time, so a loaded machine does not count against it, only
 * the work does).  The linear code passes it by three orders of magnitude,
 * even under ASan; the quadratic one needs minutes of CPU.
 *
 * The memory tests check that the problem records and the repair plan draw
 * on the --max-mem budget of the check (exit 1 when it runs out).
 *
 * The images are built here byte by byte (512-byte or 64 KiB clusters,
 * 16-bit refcounts, every structure with its correct refcount), as
 * tests/mkslow.py builds the same shapes for the image tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../core/reader.h"
#include "../../repair/apply.h"
#include "../../repair/cas.h"
#include "../../repair/journal.h"
#include "../../repair/repair.h"

/* The fixed v3 header (104 bytes) of docs/interop/qcow2.txt. */
static void put_header(uint8_t *h, unsigned cluster_bits, uint64_t size, uint32_t l1_size,
		       uint64_t l1_off, uint64_t rt_off, uint32_t rt_clusters, uint32_t nb_snap,
		       uint64_t snap_off)
{
	memset(h, 0, 104);
	qc_put_be32(h, 0x514649fb);
	qc_put_be32(h + 4, 3);
	qc_put_be32(h + 20, cluster_bits);
	qc_put_be64(h + 24, size);
	qc_put_be32(h + 36, l1_size);
	qc_put_be64(h + 40, l1_off);
	qc_put_be64(h + 48, rt_off);
	qc_put_be32(h + 56, rt_clusters);
	qc_put_be32(h + 60, nb_snap);
	qc_put_be64(h + 64, snap_off);
	qc_put_be32(h + 96, 4);   /* refcount_order: 16 bits */
	qc_put_be32(h + 100, 104); /* header_length */
}

/*
 * The "leaky" shape of tests/mkslow.py: 512-byte clusters, and nfake
 * refblocks covering only clusters past the end of the file, each with
 * refcount 1 in every other entry (128 runs of changes per refblock).
 */
static uint8_t *leaky(size_t nfake, size_t *len)
{
	const size_t cs = 512, per = 256;
	size_t k = 1, r, f;
	for (;;) {
		r = ((k + nfake) * 8 + cs - 1) / cs;
		f = 2 + r + k + nfake;
		if ((f + per - 1) / per <= k)
			break;
		k++;
	}
	uint8_t *b = calloc(f, cs);
	assert_non_null(b);
	size_t rt = 2, real0 = rt + r, fake0 = real0 + k;
	put_header(b, 9, 32768, 1, cs, rt * cs, (uint32_t)r, 0, 0);
	for (size_t i = 0; i < k; i++) {
		qc_put_be64(b + rt * cs + 8 * i, (real0 + i) * cs);
		for (size_t e = 0; e < per && i * per + e < f; e++)
			qc_put_be16(b + (real0 + i) * cs + 2 * e, 1);
	}
	for (size_t j = 0; j < nfake; j++) {
		qc_put_be64(b + rt * cs + 8 * (k + j), (fake0 + j) * cs);
		for (size_t e = 0; e < per; e += 2)
			qc_put_be16(b + (fake0 + j) * cs + 2 * e, 1);
	}
	*len = f * cs;
	return b;
}

static struct qc_image *check(struct qc_io *io, size_t mem_cap)
{
	struct qc_options o = { .deep = false, .mem_cap = mem_cap };
	struct qc_image *img;
	assert_int_equal(qc_check_run(io, &o, &img), 0);
	return img;
}

/* Item: one refcount write per refblock, not one per run of entries. */
static void refcount_writes_per_refblock(void **state)
{
	(void)state;
	size_t len, nfake = 40;
	uint8_t *b = leaky(nfake, &len);
	struct qc_io *io = qc_io_open_memory(b, len, true);
	assert_non_null(io);
	struct qc_image *img = check(io, 0);
	assert_int_equal(qc_check_exit_code(img), 3);
	struct qc_plan p;
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	/* the old planner made 128 writes per refblock (5120 here) */
	assert_int_equal(p.n, nfake);
	for (size_t i = 0; i < p.n; i++)
		assert_int_equal(p.w[i].code, QC_P_REFCOUNT_LEAK_PAST_EOF);
	/* apply, re-check clean, undo restores every byte */
	char dir[] = "/tmp/qc-bounded.XXXXXX", jpath[64];
	assert_non_null(mkdtemp(dir));
	snprintf(jpath, sizeof(jpath), "%s/undo", dir);
	struct qc_witness wit = { 0, 512 };
	char err[256];
	assert_int_equal(qc_journal_write(jpath, io, &p, &wit, 1, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	assert_int_equal(done, nfake);
	struct qc_image *after = check(io, 0);
	assert_int_equal(qc_check_exit_code(after), 0);
	qc_image_free(after);
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	size_t n;
	const uint8_t *now = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, len);
	assert_memory_equal(now, b, len);
	unlink(jpath);
	rmdir(dir);
	qc_plan_free(&p);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

/* Item: the plan printer counts per code once, not every earlier write. */
static void plan_printer_linear(void **state)
{
	(void)state;
	enum { N = 200000 }; /* the old printer: N^2/2 = 2e10 steps, minutes */
	struct qc_plan p;
	qc_plan_init(&p, 1 << 20);
	uint8_t byte = 1;
	clock_t t0 = clock(); /* CPU time, not wall time: see the top of the file */
	for (size_t i = 0; i < N; i++)
		assert_non_null(qc_plan_add(&p, i % 2 ? QC_PH_INPLACE : QC_PH_NEW, 2 * i, &byte, 1,
					    i % 3 ? QC_P_REFCOUNT_LEAK : QC_P_REFCOUNT_ZERO, "w %zu", i));
	/* the old insertion sort moved N/2 NEW writes past N/2 INPLACE ones */
	qc_plan_sort(&p);
	assert_false(p.oom);
	for (size_t i = 1; i < p.n; i++)
		assert_true(p.w[i - 1].phase <= p.w[i].phase);
	/* stable: within a phase the writes keep their order */
	assert_int_equal(p.w[0].offset, 0);
	assert_int_equal(p.w[1].offset, 4);
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	assert_non_null(f);
	qc_plan_print_human(&p, f);
	fclose(f);
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 20.0);
	/* 20 lines per code, then one "... and N more" line per code */
	size_t lines = 0;
	for (size_t i = 0; i < outlen; i++)
		lines += out[i] == '\n';
	assert_int_equal(lines, 1 + 2 * 20 + 2);
	char want[80];
	snprintf(want, sizeof(want), "... and %d more refcount-zero write(s)", (N + 2) / 3 - 20);
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof(want), "... and %d more refcount-leak write(s)", N - (N + 2) / 3 - 20);
	assert_non_null(strstr(out, want));
	free(out);
	qc_plan_free(&p);
}

/* Item: undo matches regions by sort and binary search. */
static void undo_matching_n_log_n(void **state)
{
	(void)state;
	enum { N = 50000, LEN = N * 16 };
	uint8_t *img = malloc(LEN);
	assert_non_null(img);
	for (size_t i = 0; i < LEN; i++)
		img[i] = (uint8_t)(i * 7);
	struct qc_io *io = qc_io_open_memory(img, LEN, true);
	assert_non_null(io);
	struct qc_plan p;
	qc_plan_init(&p, LEN);
	uint8_t nb[8];
	for (size_t i = 0; i < N; i++) {
		memset(nb, (int)(i & 0xff) ^ 0x5a, sizeof(nb));
		assert_non_null(qc_plan_add(&p, QC_PH_INPLACE, 16 * i, nb, 8, QC_P_REFCOUNT_LEAK, "w"));
	}
	/* a header write and the conditional one share 8 bytes on purpose */
	memset(nb, 0, sizeof(nb));
	assert_non_null(qc_plan_add(&p, QC_PH_HEADER, 8, nb, 8, QC_P_HEADER_DIRTY, "h"));
	assert_non_null(qc_plan_add(&p, QC_PH_FINAL, 8, nb, 8, QC_P_HEADER_CORRUPT_BIT, "c"));
	char dir[] = "/tmp/qc-bounded.XXXXXX", jpath[64], err[256];
	assert_non_null(mkdtemp(dir));
	snprintf(jpath, sizeof(jpath), "%s/undo", dir);
	struct qc_witness wit = { 0, LEN };
	assert_int_equal(qc_plan_record_old(&p, io), 0); /* compare-and-swap: the bytes replaced */
	assert_int_equal(qc_journal_write(jpath, io, &p, &wit, 1, err, sizeof(err)), 0);
	size_t done = 0;
	assert_int_equal(qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_FINAL, &done), 0);
	qc_journal_match_steps = 0;
	assert_int_equal(qc_journal_undo(jpath, io, 0, NULL, err, sizeof(err)), 0);
	/* every region holds its new bytes: one binary search each (<= 17
	 * steps for 50002 regions) plus the overlap check; the old matching
	 * compared each region with all others: 2.5e9 steps */
	assert_true(qc_journal_match_steps <= (unsigned long long)(N + 2) * 18);
	size_t n;
	const uint8_t *now = qc_io_memory_bytes(io, &n);
	assert_int_equal(n, LEN);
	assert_memory_equal(now, img, LEN);
	unlink(jpath);
	rmdir(dir);
	qc_plan_free(&p);
	qc_io_close(io);
	free(img);
}

/* A sparse file of `size` bytes holding b[0..len). */
static struct qc_io *sparse_file(const uint8_t *b, size_t len, uint64_t size, char *path)
{
	strcpy(path, "/tmp/qc-bounded-img.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	struct qc_io *io;
	assert_int_equal(qc_io_open_file(path, false, &io), 0);
	return io;
}

/* Item: the refcount compare skips unmapped pages of the cluster map. */
static void truncated_to_4tib(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = leaky(0, &len); /* a clean 512-byte-cluster image */
	char path[64];
	struct qc_io *io = sparse_file(b, len, UINT64_C(4) << 40, path);
	struct qc_image *img = check(io, 0);
	assert_int_equal(qc_check_exit_code(img), 0);
	/* 8 Gi clusters of apparent size; only the first page of the map is
	 * allocated, and only it is looked at (the old loop visited all) */
	assert_true(img->refcount_uncovered_scanned <= QC_CM_PAGE_CLUSTERS);
	qc_image_free(img);
	qc_io_close(io);
	unlink(path);
	free(b);
}

/*
 * Item: snapshot L1 tables in holes are not read.  NSNAP snapshots of a
 * 64 KiB-cluster image each have a 32 MiB L1 table in a hole of a sparse
 * file; every cluster (the holes too) has its correct refcount.  The check
 * reads the metadata it finds, not 32 MiB per snapshot.  (The file
 * system must answer SEEK_DATA/SEEK_HOLE, as ext4, xfs, btrfs and tmpfs do.)
 */
static void snapshot_l1_in_holes(void **state)
{
	(void)state;
	enum { NSNAP = 4 };
	const uint64_t cs = 65536, l1_bytes = 32u << 20, per = cs / 2;
	const uint64_t st0 = 4, l10 = 5;
	uint64_t f = l10 + NSNAP * (l1_bytes / cs);
	assert_true(f <= per); /* one refblock */
	size_t len = (size_t)(st0 + 1) * cs;
	uint8_t *b = calloc(1, len);
	assert_non_null(b);
	put_header(b, 16, 1 << 30, 2, cs, 2 * cs, 1, NSNAP, st0 * cs);
	qc_put_be64(b + 2 * cs, 3 * cs);
	for (uint64_t c = 0; c < f; c++)
		qc_put_be16(b + 3 * cs + 2 * c, 1);
	uint8_t *e = b + st0 * cs;
	for (int i = 0; i < NSNAP; i++) {
		qc_put_be64(e, (l10 + (uint64_t)i * (l1_bytes / cs)) * cs);
		qc_put_be32(e + 8, (uint32_t)(l1_bytes / 8));
		qc_put_be16(e + 12, 1);
		qc_put_be16(e + 14, 2);
		qc_put_be32(e + 36, 16);          /* extra data: vm_state_size_large, disk_size */
		qc_put_be64(e + 48, 1 << 30);
		e[56] = (uint8_t)('1' + i);       /* id */
		e[57] = 's';                      /* name */
		e[58] = (uint8_t)('1' + i);
		e += 64;                          /* 59 bytes, padded to 8 */
	}
	char path[64];
	struct qc_io *io = sparse_file(b, len, f * cs, path);
	struct qc_image *img = check(io, 0);
	assert_int_equal(img->nsnapshots, NSNAP);
	assert_int_equal(qc_check_exit_code(img), 0);
	/* the old code read 4 x 32 MiB of zeros */
	assert_true(io->bytes_read < (UINT64_C(2) << 20));
	qc_image_free(img);
	qc_io_close(io);
	unlink(path);
	free(b);
}

/* The memory backend answers holes exactly (at 512-byte granularity). */
static void memory_holes_exact(void **state)
{
	(void)state;
	enum { LEN = 1 << 20 };
	uint8_t *b = calloc(1, LEN);
	assert_non_null(b);
	b[5000] = 1;
	b[700000] = 2;
	struct qc_io *io = qc_io_open_memory(b, LEN, false);
	assert_non_null(io);
	assert_int_equal(qc_io_next_data(io, 0), 4608);      /* the block of byte 5000 */
	assert_int_equal(qc_io_next_hole(io, 4608), 5120);
	assert_int_equal(qc_io_next_hole(io, 4700), 5120);
	assert_int_equal(qc_io_next_data(io, 4700), 4700);   /* inside data */
	assert_int_equal(qc_io_next_hole(io, 0), 0);         /* inside a hole */
	assert_int_equal(qc_io_next_data(io, 5120), 699904);
	assert_int_equal(qc_io_next_data(io, 700416), LEN);  /* only zeros follow */
	assert_int_equal(qc_io_next_data(io, LEN + 5), LEN);
	assert_int_equal(qc_io_next_hole(io, 699904), 700416);
	qc_io_close(io);
	free(b);
}

/* Bytes of the budget the model holds once the check is over. */
static uint64_t model_bytes(const struct qc_image *img)
{
	return img->cmap.bytes + img->mem_held;
}

/*
 * Item: the problem records are under --max-mem.  2000 refblocks past the
 * end of the file give 1000 kept records (the per-code cap); with a cap
 * that leaves room for the map and tables but not for half the records,
 * the check ends with exit 1 and says why.
 */
static void problems_under_budget(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = leaky(2000, &len);
	struct qc_io *io = qc_io_open_memory(b, len, false);
	assert_non_null(io);
	struct qc_image *img = check(io, 0);
	assert_int_equal(qc_check_exit_code(img), 3);
	uint64_t rec = img->problems.bytes, all = model_bytes(img);
	assert_true(rec > 1000 * sizeof(struct qc_problem));
	assert_true(all >= rec);
	qc_image_free(img);
	img = check(io, (size_t)(all - rec / 2));
	assert_int_equal(qc_check_exit_code(img), 1);
	assert_true(img->aborted);
	assert_non_null(strstr(img->abort_reason, "problem records"));
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

/*
 * Item: the repair plan is under the same --max-mem as the model it is
 * planned from: with room for the model but not for the plan, planning
 * fails (the repair then changes nothing: exit 1).
 */
static void plan_under_budget(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = leaky(2000, &len);
	struct qc_io *io = qc_io_open_memory(b, len, false);
	assert_non_null(io);
	struct qc_repair_opts ro = { .leaks_only = false };
	struct qc_image *img = check(io, 0);
	uint64_t all = model_bytes(img);
	struct qc_plan p;
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	uint64_t plan_bytes = p.bytes;
	assert_true(plan_bytes > 2000 * 510); /* every write's bytes are counted */
	/* the plan's bytes are part of the model's budget (and stay so until
	 * the model is freed: the plan may outlive it) */
	assert_int_equal(model_bytes(img), all + plan_bytes);
	qc_image_free(img);
	qc_plan_free(&p);
	img = check(io, (size_t)(all + plan_bytes / 2));
	assert_int_equal(qc_check_exit_code(img), 3);
	qc_plan_init(&p, io->size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), -ENOMEM);
	assert_true(p.over_cap);
	assert_non_null(strstr(img->abort_reason, "repair plan"));
	qc_plan_free(&p);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refcount_writes_per_refblock),
		cmocka_unit_test(plan_printer_linear),
		cmocka_unit_test(undo_matching_n_log_n),
		cmocka_unit_test(truncated_to_4tib),
		cmocka_unit_test(snapshot_l1_in_holes),
		cmocka_unit_test(memory_holes_exact),
		cmocka_unit_test(problems_under_budget),
		cmocka_unit_test(plan_under_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
