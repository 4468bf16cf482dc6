/*
 * budget.c - the memory budget of one check (--max-mem, opt.mem_cap): the
 * cluster map and every allocation sized by the image draw on it; past the
 * cap the check aborts (exit 1) rather than grow (SECURITY.md).
 */
#include "check.h"
#include "../core/util.h"

#include <stdint.h>
#include <stdlib.h>

bool qc_mem_reserve(struct qc_image *img, uint64_t n)
{
	uint64_t cap = img->opt.mem_cap, used = img->cmap.bytes + img->mem_held;
	if (cap && (used > cap || n > cap - used))
		return false;
	img->mem_held += n;
	return true;
}

void qc_mem_release(struct qc_image *img, uint64_t n)
{
	img->mem_held -= n < img->mem_held ? n : img->mem_held;
}

void *qc_budget_alloc(struct qc_image *img, uint64_t n, const char *what)
{
	if (n > SIZE_MAX || !qc_mem_reserve(img, n)) {
		qc_abort(img, "memory cap reached: %s needs %llu bytes more than --max-mem leaves",
			 what, (unsigned long long)n);
		return NULL;
	}
	void *p = calloc(1, n ? (size_t)n : 1);
	if (!p) {
		qc_mem_release(img, n);
		qc_abort(img, "out of memory: %s (%llu bytes)", what, (unsigned long long)n);
	}
	return p;
}

void *qc_budget_grow(struct qc_image *img, void *p, size_t *cap, size_t n, size_t elem,
		     size_t first, const char *what)
{
	if (n < *cap)
		return p;
	size_t ncap;
	if (!qc_grow_cap(*cap, n, elem, first, &ncap)) {
		qc_abort(img, "memory cap reached: %s", what);
		return NULL;
	}
	void *np = qc_budget_realloc(img, p, (uint64_t)*cap * elem, (uint64_t)ncap * elem, what);
	if (np)
		*cap = ncap;
	return np;
}

void *qc_budget_realloc(struct qc_image *img, void *p, uint64_t old, uint64_t n, const char *what)
{
	uint64_t more = n > old ? n - old : 0;
	if (n > SIZE_MAX || !qc_mem_reserve(img, more)) {
		qc_abort(img, "memory cap reached: %s needs %llu bytes more than --max-mem leaves",
			 what, (unsigned long long)more);
		return NULL;
	}
	void *np = realloc(p, n ? (size_t)n : 1);
	if (!np) {
		qc_mem_release(img, more);
		qc_abort(img, "out of memory: %s (%llu bytes)", what, (unsigned long long)n);
		return NULL;
	}
	if (n < old)
		qc_mem_release(img, old - n);
	return np;
}

void qc_budget_free(struct qc_image *img, void *p, uint64_t n)
{
	if (!p)
		return;
	free(p);
	qc_mem_release(img, n);
}

bool qc_budget_hook_problems(void *ctx, uint64_t n)
{
	struct qc_image *img = ctx;
	if (qc_mem_reserve(img, n))
		return true;
	qc_abort(img, "memory cap reached: the problem records need more than --max-mem leaves");
	return false;
}

bool qc_budget_hook_plan(void *ctx, uint64_t n)
{
	struct qc_image *img = ctx;
	if (qc_mem_reserve(img, n))
		return true;
	qc_abort(img, "memory cap reached: the repair plan needs more than --max-mem leaves");
	return false;
}

void qc_budget_hook_release(void *ctx, uint64_t n)
{
	qc_mem_release(ctx, n);
}
