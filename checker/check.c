/*
 * check.c - runs the passes in order over one image and holds the helpers
 * all passes share: ownership claims with overlap detection, the EOF rule,
 * bounded metadata reads and the verdict (exit code).
 *
 * Relies on each pass honouring the trust flags in struct qc_image: a pass
 * whose input is unusable skips its work, so one damaged structure costs
 * only the checks that depend on it.
 */
#include "check.h"
#include "../core/reader.h"
#include "../core/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qc_abort(struct qc_image *img, const char *fmt, ...)
{
	if (img->aborted)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(img->abort_reason, sizeof(img->abort_reason), fmt, ap);
	va_end(ap);
	img->aborted = true;
}

bool qc_past_eof(const struct qc_image *img, uint64_t off, uint64_t len)
{
	uint64_t end;
	if (!qc_add(off, len, &end))
		return true;
	if (end <= img->file_size)
		return false;
	/* A structure none of whose bytes is in the file is not tolerated
	 * either: a repair appends new metadata right there, and would adopt
	 * the dangling pointer (found by fuzzing the repair target). */
	if (off >= img->file_size)
		return true;
	return end - img->file_size >= img->cluster_size;
}

static bool is_data(enum qc_owner o)
{
	return o == QC_OWN_DATA || o == QC_OWN_VMSTATE || o == QC_OWN_COMPRESSED;
}

static bool is_l2(enum qc_owner o)
{
	return o == QC_OWN_L2 || o == QC_OWN_L2_INACTIVE;
}

/* May a cluster owned by `a` also be claimed by `b`? */
static bool compatible(enum qc_owner a, enum qc_owner b)
{
	if (a == QC_OWN_FREE)
		return true;
	if (is_l2(a) && is_l2(b))
		return true;
	if ((a == QC_OWN_DATA || a == QC_OWN_VMSTATE) && (b == QC_OWN_DATA || b == QC_OWN_VMSTATE))
		return true;
	if (a == QC_OWN_COMPRESSED && b == QC_OWN_COMPRESSED)
		return true;
	if (a == QC_OWN_BITMAP_DATA && b == QC_OWN_BITMAP_DATA)
		return true;
	return false;
}

static void note_contested(struct qc_image *img, uint64_t cluster)
{
	if (img->ncontested >= QC_MAX_CONTESTED) {
		img->contested_overflow = true;
		return;
	}
	uint64_t *n = qc_grow(img->contested, &img->contested_cap, img->ncontested, sizeof(*n), 16);
	if (!n) {
		img->contested_overflow = true;
		return;
	}
	img->contested = n;
	img->contested[img->ncontested++] = cluster;
}

/* Sort and deduplicate the contested clusters (once, after the passes). */
static void settle_contested(struct qc_image *img)
{
	img->ncontested = qc_sort_unique_u64(img->contested, img->ncontested);
}

void qc_note_contested(struct qc_image *img, uint64_t off, uint64_t len)
{
	uint64_t end;
	if (!len || !img->geometry_ok || !qc_add(off, len - 1, &end)) {
		img->contested_overflow |= len && img->geometry_ok;
		return;
	}
	for (uint64_t c = off >> img->cluster_bits; c <= end >> img->cluster_bits; c++) {
		if (img->contested_overflow)
			return;
		note_contested(img, c);
	}
}

bool qc_contested(const struct qc_image *img, uint64_t off, uint64_t len)
{
	if (!len || !img->geometry_ok)
		return false;
	if (img->contested_overflow)
		return true;
	uint64_t end;
	if (!qc_add(off, len - 1, &end))
		return true;
	uint64_t first = off >> img->cluster_bits, last = end >> img->cluster_bits;
	size_t lo = 0, hi = img->ncontested;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (img->contested[mid] < first)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < img->ncontested && img->contested[lo] <= last;
}

static void report_overlap(struct qc_image *img, uint64_t cluster, enum qc_owner prev,
			   enum qc_owner o, struct qc_loc loc)
{
	enum qc_code code;
	if (is_data(prev) && is_data(o))
		code = QC_P_OVERLAP_DATA_COMPRESSED;
	else if (is_data(prev) || is_data(o))
		code = QC_P_OVERLAP_DATA_METADATA;
	else
		code = QC_P_OVERLAP_METADATA;
	note_contested(img, cluster);
	size_t kept = img->problems.n;
	uint64_t host = cluster << img->cluster_bits;
	if (loc.guest_offset != QC_NO_OFFSET)
		qc_report_overlap(&img->problems, code, loc, o, prev,
				  "%s at host offset 0x%llx (guest 0x%llx) overlaps %s", qc_owner_name(o),
				  (unsigned long long)host, (unsigned long long)loc.guest_offset,
				  qc_owner_name(prev));
	else
		qc_report_overlap(&img->problems, code, loc, o, prev,
				  "%s at host offset 0x%llx overlaps %s", qc_owner_name(o),
				  (unsigned long long)host, qc_owner_name(prev));
	/* the record (when one was kept) names the cluster as data */
	if (img->problems.n > kept)
		img->problems.v[kept].host_cluster = cluster;
}

bool qc_claim(struct qc_image *img, uint64_t off, uint64_t len, enum qc_owner o, uint64_t nref,
	      struct qc_loc loc)
{
	if (len == 0 || !img->geometry_ok)
		return true;
	uint64_t first = off >> img->cluster_bits;
	uint64_t end;
	if (!qc_add(off, len - 1, &end))
		return true;
	uint64_t last = end >> img->cluster_bits;
	for (uint64_t c = first; c <= last && c < img->cmap.nclusters; c++) {
		enum qc_owner prev;
		if (!qc_cm_add(&img->cmap, c, o, nref, &prev)) {
			qc_abort(img, "memory cap reached while mapping host clusters");
			return false;
		}
		img->claimed_refs[o] += nref;
		if (!compatible(prev, o))
			report_overlap(img, c, prev, o, loc);
	}
	return true;
}

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

void *qc_read_meta(struct qc_image *img, uint64_t off, size_t len, int *err)
{
	if (!qc_mem_reserve(img, len)) {
		*err = -ENOMEM;
		return NULL;
	}
	void *buf = malloc(len ? len : 1);
	if (!buf) {
		qc_mem_release(img, len);
		*err = -ENOMEM;
		return NULL;
	}
	int r = qc_io_read_full(img->io, buf, len, off);
	if (r < 0) {
		qc_free_meta(img, buf, len);
		*err = r;
		return NULL;
	}
	*err = 0;
	return buf;
}

void qc_free_meta(struct qc_image *img, void *buf, size_t len)
{
	free(buf);
	qc_mem_release(img, len);
}

int qc_check_exit_code(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->unsupported)
		return 63;
	if (img->aborted || ps->oom)
		return 1;
	if (ps->corruptions)
		return 2;
	if (ps->leaks)
		return 3;
	return 0;
}

static void run_passes(struct qc_image *img)
{
	static void (*const passes[])(struct qc_image *) = {
		qc_pass_header,   qc_pass_extensions, qc_pass_snapshot_table,
		qc_pass_reftable, qc_pass_luks,       qc_pass_bitmaps,
		qc_pass_tables,   qc_pass_vmstate,    qc_pass_refcounts,
		qc_pass_copied,   qc_pass_snapfix,    qc_pass_deep,       qc_pass_stats,
	};
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		passes[i](img);
		if (img->aborted || img->problems.unsupported || !img->is_qcow2)
			break;
	}
}

int qc_check_run(struct qc_io *io, const struct qc_options *opt, struct qc_image **out)
{
	struct qc_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->io = io;
	if (opt)
		img->opt = *opt;
	img->file_size = io->size;
	qc_problems_init(&img->problems);
	img->problems.reserve = qc_budget_hook_problems;
	img->problems.budget_ctx = img;
	run_passes(img);
	settle_contested(img);
	*out = img;
	return 0;
}

void qc_image_free(struct qc_image *img)
{
	if (!img)
		return;
	qc_problems_free(&img->problems);
	qc_cm_free(&img->cmap);
	free(img->contested);
	free(img->header_cluster);
	free(img->ext.features);
	free(img->l1);
	free(img->reftable);
	free(img->refblock_usable);
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		free(img->snapshots[i].id);
		free(img->snapshots[i].name);
	}
	free(img->snapshots);
	free(img->compressed);
	free(img);
}
