/*
 * test_copied.c - the COPIED report and planner stay bounded when many
 * active L1 entries share L2 tables (doc/copied.md):
 *  - the check reads each distinct L2 table a bounded number of times (a
 *    counting qc_io counts reads of the shared table; the old report read
 *    it once per L1 entry);
 *  - the planner looks shared L2 tables up in a sorted array: 2^17
 *    distinct tables, each shared by two L1 entries (a sparse file: the L2
 *    tables are holes).  A linear search does about 2^33 comparisons
 *    there (24 s of CPU measured, more under the sanitizers); the sorted
 *    lookup needs well under 0.1 s.  The limit, 5 s of CPU time (not wall
 *    time, so load does not matter), separates the two by far.
 * Images are built here (512-byte clusters, 16-bit refcounts, every
 * refcount exact), so the only findings are the ones a test plants.
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
#include "../../core/layout.h"
#include "../../core/reader.h"
#include "../../repair/repair.h"

#define CB 9
#define CS (1u << CB)

struct geo {
	uint64_t nl2, refs, data; /* L2 tables, L1 entries per L2, data entries per L2 */
	bool copied;              /* COPIED on the data entries */
	uint64_t R, B, L, total;  /* reftable, refblock, L1 clusters; all clusters */
	uint64_t rt, rb, l1, l2, d; /* first cluster of each area */
};

static void layout(struct geo *g)
{
	uint64_t l1n = g->nl2 * g->refs;
	g->L = (l1n * 8 + CS - 1) / CS;
	g->B = 1;
	g->R = 1;
	for (;;) {
		uint64_t t = 1 + g->R + g->B + g->L + g->nl2 + g->nl2 * g->data;
		uint64_t b = (t + 255) / 256, r = (b * 8 + CS - 1) / CS;
		if (b == g->B && r == g->R) {
			g->total = t;
			break;
		}
		g->B = b;
		g->R = r;
	}
	g->rt = 1;
	g->rb = g->rt + g->R;
	g->l1 = g->rb + g->B;
	g->l2 = g->l1 + g->L;
	g->d = g->l2 + g->nl2;
}

static void wr(int fd, const void *b, size_t n, uint64_t off)
{
	assert_int_equal(pwrite(fd, b, n, (off_t)off), (ssize_t)n);
}

/* Write the image to a new sparse file; returns its descriptor's path. */
static void build(struct geo *g, const char *path)
{
	layout(g);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(g->total * CS)), 0);
	uint64_t l1n = g->nl2 * g->refs;
	uint8_t h[CS] = { 0 };
	memcpy(h, "QFI\xfb", 4);
	qc_put_be32(h + 4, 3);
	qc_put_be32(h + 20, CB);
	qc_put_be64(h + 24, l1n << (CB + CB - 3));
	qc_put_be32(h + 36, (uint32_t)l1n);
	qc_put_be64(h + 40, g->l1 * CS);
	qc_put_be64(h + 48, g->rt * CS);
	qc_put_be32(h + 56, (uint32_t)g->R);
	qc_put_be32(h + 96, 4);
	qc_put_be32(h + 100, 104);
	wr(fd, h, CS, 0);
	uint8_t *rt = calloc(g->R, CS), *rb = calloc(g->B, CS), *l1 = calloc(g->L, CS);
	assert_true(rt && rb && l1);
	for (uint64_t i = 0; i < g->B; i++)
		qc_put_be64(rt + 8 * i, (g->rb + i) * CS);
	for (uint64_t c = 0; c < g->total; c++) {
		uint64_t n = c >= g->l2 ? g->refs : 1;
		qc_put_be16(rb + 2 * c, (uint16_t)n);
	}
	for (uint64_t k = 0; k < l1n; k++)
		qc_put_be64(l1 + 8 * k, ((g->l2 + k % g->nl2) * CS) |
						(g->refs == 1 ? QC_OFLAG_COPIED : 0));
	wr(fd, rt, g->R * CS, g->rt * CS);
	wr(fd, rb, g->B * CS, g->rb * CS);
	wr(fd, l1, g->L * CS, g->l1 * CS);
	uint8_t l2[CS];
	for (uint64_t t = 0; g->data && t < g->nl2; t++) {
		memset(l2, 0, sizeof(l2));
		for (uint64_t j = 0; j < g->data; j++)
			qc_put_be64(l2 + 8 * j, ((g->d + t * g->data + j) * CS) |
							(g->copied ? QC_OFLAG_COPIED : 0));
		wr(fd, l2, CS, (g->l2 + t) * CS);
	}
	free(rt);
	free(rb);
	free(l1);
	close(fd);
}

/* A qc_io that counts the reads overlapping one cluster. */
struct counting {
	struct qc_io io;
	struct qc_io *inner;
	uint64_t watch;
	unsigned long hits;
};

static long long c_pread(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	struct counting *c = (struct counting *)io;
	if (off < c->watch + CS && off + len > c->watch)
		c->hits++;
	return c->inner->ops->pread(c->inner, buf, len, off);
}
static int c_pwrite(struct qc_io *io, const void *buf, size_t len, uint64_t off)
{
	(void)io, (void)buf, (void)len, (void)off;
	return -EROFS;
}
static int c_truncate(struct qc_io *io, uint64_t len)
{
	(void)io, (void)len;
	return -EROFS;
}
static int c_sync(struct qc_io *io)
{
	(void)io;
	return 0;
}
static void c_close(struct qc_io *io)
{
	(void)io;
}
/* no holes known: every byte may hold data */
static uint64_t c_next_data(struct qc_io *io, uint64_t off)
{
	return off < io->size ? off : io->size;
}
static uint64_t c_next_hole(struct qc_io *io, uint64_t off)
{
	(void)off;
	return io->size;
}
static const struct qc_io_ops counting_ops = { c_pread, c_pwrite, c_truncate, c_sync, c_close,
					       c_next_data, c_next_hole, NULL };

static char path[64];

static uint64_t count_code(const struct qc_image *img, const char *code)
{
	for (int c = 0; c < QC_P_COUNT; c++)
		if (!strcmp(qc_problem_table[c].code, code))
			return img->problems.per_code[c];
	return 0;
}

/* 4096 L1 entries share one L2 table whose 32 data entries wrongly carry
 * COPIED: the table is read by the walk and once more by the report. */
static void report_reads_a_shared_l2_once(void **state)
{
	(void)state;
	struct geo g = { .nl2 = 1, .refs = 4096, .data = 32, .copied = true };
	build(&g, path);
	struct qc_io *f;
	assert_int_equal(qc_io_open_file(path, true, &f), 0);
	struct counting c = { .io = { .ops = &counting_ops, .size = f->size },
			      .inner = f, .watch = g.l2 * CS };
	struct qc_options o = { 0 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(&c.io, &o, &img), 0);
	assert_int_equal(count_code(img, "l2-copied-spurious"), 32);
	assert_int_equal(count_code(img, "refcount-leak") + count_code(img, "refcount-too-low"), 0);
	assert_true(c.hits <= 2);
	/* the planner reads it once more, not once per L1 entry (plus the
	 * old bytes of each planned write, captured for the compare-and-swap,
	 * and the walk and report of each later planning round's check) */
	unsigned long before = c.hits;
	struct qc_plan p;
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(&p, c.io.size);
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	assert_int_equal(p.n, 32); /* bit 63 cleared on each data entry */
	assert_true(p.rounds >= 1 && p.rounds <= QC_PLAN_MAX_ROUNDS);
	if (c.hits - before > 1 + p.n + 2 * (p.rounds - 1))
		fail_msg("the planner read the shared L2 table %lu times", c.hits - before);
	qc_plan_free(&p);
	qc_image_free(img);
	qc_io_close(f);
	unlink(path);
}

/* 2^17 distinct L2 tables, each shared by two L1 entries (interleaved). */
static void planner_looks_up_shared_l2_fast(void **state)
{
	(void)state;
	struct geo g = { .nl2 = 1u << 17, .refs = 2, .data = 0 };
	build(&g, path);
	struct qc_io *f;
	assert_int_equal(qc_io_open_file(path, false, &f), 0);
	struct qc_options o = { 0 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(f, &o, &img), 0);
	assert_int_equal(qc_check_exit_code(img), 0);
	struct qc_plan p;
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(&p, f->size);
	clock_t t0 = clock();
	assert_int_equal(qc_repair_plan(img, &ro, &p), 0);
	double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
	assert_int_equal(p.n, 0);
	/* sorted lookup: ~2^18 x 17 comparisons plus 2^17 table reads */
	if (s > 5.0)
		fail_msg("planning took %.1f s of CPU", s);
	qc_plan_free(&p);
	qc_image_free(img);
	qc_io_close(f);
	unlink(path);
}

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof(path), "/tmp/qc-test-copied.%d", (int)getpid());
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(report_reads_a_shared_l2_once),
		cmocka_unit_test(planner_looks_up_shared_l2_fast),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
