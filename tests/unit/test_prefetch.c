/*
 * test_prefetch.c - the read-ahead of sorted metadata (checker/prefetch.c):
 * how qc_pf_add builds a run from sorted items (a repeated item, contiguous
 * clusters merged, a new extent for a gap, the byte and extent limits, an
 * item larger than the buffer), where qc_pf_at finds an item in the
 * buffer, and the whole prefetcher over a memory image: items scattered
 * through the file, some repeated, read with 1, 2 and 4 jobs, must reach
 * the consumer in order, each once, with its own bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/prefetch.h"

#define CS 4096u

static struct qc_pf_run empty(void)
{
	struct qc_pf_run r;
	memset(&r, 0, sizeof(r));
	return r;
}

static void add_merges_and_splits(void **state)
{
	(void)state;
	struct qc_pf_run r = empty();
	assert_true(qc_pf_add(&r, 10 * CS, CS, 4 * CS));
	assert_true(qc_pf_add(&r, 10 * CS, CS, 4 * CS)); /* the same item again */
	assert_true(qc_pf_add(&r, 11 * CS, CS, 4 * CS)); /* contiguous: merged */
	assert_int_equal(r.next, 1);
	assert_int_equal(r.len, 2 * CS);
	assert_true(qc_pf_add(&r, 20 * CS, CS, 4 * CS)); /* a gap: new extent */
	assert_int_equal(r.next, 2);
	assert_int_equal(r.ext[1].off, 20 * CS);
	assert_true(qc_pf_add(&r, 30 * CS, CS, 4 * CS));
	assert_false(qc_pf_add(&r, 31 * CS, CS, 4 * CS)); /* past bufmax */
	assert_int_equal(r.len, 4 * CS);
	assert_int_equal(r.next, 3);
	assert_true(qc_pf_add(&r, 30 * CS, CS, 4 * CS)); /* inside: still fine */
	/* positions: extents back to back */
	assert_int_equal(qc_pf_at(&r, 10 * CS), 0);
	assert_int_equal(qc_pf_at(&r, 11 * CS + 5), CS + 5);
	assert_int_equal(qc_pf_at(&r, 20 * CS), 2 * CS);
	assert_int_equal(qc_pf_at(&r, 30 * CS), 3 * CS);
}

static void add_limits(void **state)
{
	(void)state;
	struct qc_pf_run r = empty();
	assert_false(qc_pf_add(&r, 0, 2 * CS, CS)); /* larger than the buffer */
	assert_int_equal(r.next, 0);
	for (unsigned i = 0; i < QC_PF_EXTENTS_MAX; i++)
		assert_true(qc_pf_add(&r, (uint64_t)(2 * i) * CS, CS, 1u << 30));
	assert_int_equal(r.next, QC_PF_EXTENTS_MAX);
	/* no extent left for a gap, but the last one may still grow */
	assert_false(qc_pf_add(&r, (uint64_t)(2 * QC_PF_EXTENTS_MAX + 1) * CS, CS, 1u << 30));
	assert_true(qc_pf_add(&r, (uint64_t)(2 * QC_PF_EXTENTS_MAX - 1) * CS, CS, 1u << 30));
	assert_int_equal(r.next, QC_PF_EXTENTS_MAX);
	assert_int_equal(r.len, (QC_PF_EXTENTS_MAX + 1) * CS);
}

/* Items: cluster numbers, sorted, some repeated, with gaps and stretches
 * of contiguous clusters. */
#define NCL 300u
struct feed {
	const uint32_t *items;
	size_t n, cursor;
	size_t bufmax;
};

static bool feed_next(void *ctx, struct qc_pf_run *run)
{
	struct feed *f = ctx;
	size_t a = f->cursor, b = a;
	if (a >= f->n)
		return false;
	while (b < f->n && qc_pf_add(run, (uint64_t)f->items[b] * CS, CS, f->bufmax))
		b++;
	run->a = a;
	run->b = b;
	f->cursor = b;
	return true;
}

/* prep: the sum of the run's first bytes per item, to see prep ran on the
 * slot's own bytes */
static void feed_prep(const void *ctx, const struct qc_pf_run *run, const uint8_t *buf, void *aux)
{
	const struct feed *f = ctx;
	unsigned sum = 0;
	for (size_t i = run->a; i < run->b; i++)
		sum += buf[qc_pf_at(run, (uint64_t)f->items[i] * CS)];
	memcpy(aux, &sum, sizeof(sum));
}

static void whole_prefetcher(void **state)
{
	(void)state;
	uint8_t *img = malloc((size_t)NCL * CS);
	assert_non_null(img);
	for (unsigned c = 0; c < NCL; c++)
		memset(img + (size_t)c * CS, (int)(c & 0xff), CS);
	uint32_t items[600];
	size_t n = 0;
	for (unsigned c = 0; c < NCL && n < 590; c++) {
		if (c % 7 == 3 || (c >= 100 && c < 140) || c % 11 == 0)
			items[n++] = c;
		if (c % 13 == 0)
			items[n++] = c; /* shared */
	}
	for (unsigned jobs = 1; jobs <= 4; jobs *= 2) {
		struct qc_io *io = qc_io_open_memory(img, (size_t)NCL * CS, false);
		assert_non_null(io);
		struct feed f = { items, n, 0, 5 * CS };
		struct qc_prefetch *p =
			qc_pf_start(io, jobs, f.bufmax, sizeof(unsigned), feed_next, feed_prep, &f);
		assert_non_null(p);
		size_t seen = 0;
		struct qc_pf_slot *s;
		while ((s = qc_pf_get(p)) != NULL) {
			assert_int_equal(s->err, 0);
			assert_int_equal(s->run.a, seen);
			assert_true(s->run.b > s->run.a);
			assert_true(s->run.len <= f.bufmax);
			unsigned sum = 0;
			for (size_t i = s->run.a; i < s->run.b; i++) {
				const uint8_t *t = s->buf + qc_pf_at(&s->run, (uint64_t)items[i] * CS);
				assert_int_equal(t[0], items[i] & 0xff);
				assert_int_equal(t[CS - 1], items[i] & 0xff);
				sum += t[0];
			}
			unsigned got;
			memcpy(&got, s->aux, sizeof(got));
			assert_int_equal(got, sum);
			seen = s->run.b;
			qc_pf_release(p);
		}
		assert_int_equal(seen, n);
		qc_pf_stop(p);
		qc_io_close(io);
	}
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_merges_and_splits),
		cmocka_unit_test(add_limits),
		cmocka_unit_test(whole_prefetcher),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
