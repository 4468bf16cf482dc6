/*
 * layer_read.c - reading windows of a layer's guest view into a buffer
 * (see layer_read.h): the extents of guestmap.c, holes of a sparse file
 * skipped with SEEK_DATA (core/io.c qc_io_extent), compressed clusters
 * decompressed with QEMU's acceptance rules (core/decompress.c: QC_DC_OK
 * and QC_DC_INEXACT are what QEMU reads), entries QEMU cannot read refused
 * unless force (doc/digest.md "Reading a layer").
 */
#include "layer_read.h"
#include "../core/decompress.h"
#include "../core/mapguard.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int fail(struct qc_lr *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct qc_lr *w, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	return code;
}

void qc_lr_unmap(struct qc_lr *w)
{
	for (unsigned k = 0; k < w->nviews; k++)
		qc_io_unmap(&w->views[k]);
	w->nviews = 0;
	memset(w->direct, 0, sizeof(w->direct));
}

void qc_lr_free(struct qc_lr *w)
{
	if (!w)
		return;
	qc_lr_unmap(w);
	free(w->buf);
	free(w->cin);
	free(w->cout);
	free(w->l2.buf);
	free(w->ext);
	qc_dc_free(w->dc);
	free(w);
}

struct qc_lr *qc_lr_new(const struct qc_layer *L, bool force, uint64_t ra_max)
{
	struct qc_lr *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->L = L;
	w->force = force;
	w->hole_kind = -1;
	w->no_map = !qc_mapguard_available();
	w->maxext = qc_gm_max_extents(L, QC_LR_WIN);
	w->buf = malloc(QC_LR_WIN);
	w->l2.buf = malloc(qc_gm_l2_scratch(L, ra_max));
	w->ext = calloc(w->maxext, sizeof(*w->ext));
	if (L->img) {
		w->cout = malloc((size_t)L->img->cluster_size);
		w->cin = malloc((size_t)L->img->cluster_size * 2);
	}
	if (!w->buf || !w->l2.buf || !w->ext || (L->img && (!w->cout || !w->cin))) {
		qc_lr_free(w);
		return NULL;
	}
	return w;
}

/* Is host offset off in a hole of the file?  *end: where that run ends. */
static bool in_hole(struct qc_lr *w, uint64_t off, uint64_t *end)
{
	if (w->no_holes) {
		*end = UINT64_MAX;
		return false;
	}
	if (w->hole_kind < 0 || off < w->hole_a || off >= w->hole_b) {
		uint64_t e;
		int r = qc_io_extent(w->L->io, off, &e);
		if (r < 0) {
			w->no_holes = true;
			*end = UINT64_MAX;
			return false;
		}
		w->hole_kind = r;
		w->hole_a = off;
		w->hole_b = e;
	}
	*end = w->hole_b;
	return w->hole_kind == 1;
}

static void touch(struct qc_lr *w, uint64_t rel, uint64_t len)
{
	for (uint64_t b = rel / QC_LR_BLOCK; b <= (rel + len - 1) / QC_LR_BLOCK; b++)
		w->touched[b] = 1;
}

/* Zeros into the touched blocks that [rel, rel+len) meets. */
static void zero_fill(struct qc_lr *w, uint64_t rel, uint64_t len)
{
	for (uint64_t b = rel / QC_LR_BLOCK; b <= (rel + len - 1) / QC_LR_BLOCK; b++) {
		if (!w->touched[b])
			continue;
		uint64_t a = b * QC_LR_BLOCK > rel ? b * QC_LR_BLOCK : rel;
		uint64_t e = min64((b + 1) * QC_LR_BLOCK, rel + len);
		memset(w->buf + a, 0, (size_t)(e - a));
	}
}

/*
 * Stored bytes [h, h+len) for window bytes [rel, rel+len): the blocks
 * they cover whole are mapped when they can be (direct[]), the rest read
 * into buf.
 */
static int read_run(struct qc_lr *w, uint64_t rel, uint64_t len, uint64_t h)
{
	uint64_t b0 = (rel + QC_LR_BLOCK - 1) / QC_LR_BLOCK, b1 = (rel + len) / QC_LR_BLOCK;
	if (b1 > b0 && !w->no_map && w->nviews < QC_LR_VIEWS) {
		uint64_t a = b0 * QC_LR_BLOCK, e = b1 * QC_LR_BLOCK;
		struct qc_io_view *v = &w->views[w->nviews];
		if (qc_io_map(w->L->io, h + (a - rel), (size_t)(e - a), v) == 0) {
			w->nviews++;
			for (uint64_t b = b0; b < b1; b++)
				w->direct[b] = v->p + (b - b0) * QC_LR_BLOCK;
			int r = a > rel ? read_run(w, rel, a - rel, h) : 0;
			return r || e == rel + len ? r : read_run(w, e, rel + len - e, h + (e - rel));
		}
	}
	long long got = qc_io_read(w->L->io, w->buf + rel, (size_t)len, h);
	if (got < 0)
		return fail(w, 1, "I/O error reading host offset 0x%llx: %s", (unsigned long long)h,
			    strerror((int)-got));
	return 0;
}

static int data_extent(struct qc_lr *w, int pass, uint64_t rel, const struct qc_gm_extent *x)
{
	for (uint64_t pos = 0; pos < x->len;) {
		uint64_t h = x->host + pos, end;
		bool hole = in_hole(w, h, &end);
		uint64_t seg = min64(x->len - pos, end - h);
		if (hole) {
			if (pass)
				zero_fill(w, rel + pos, seg);
		} else if (!pass) {
			touch(w, rel + pos, seg);
		} else {
			int r = read_run(w, rel + pos, seg, h);
			if (r)
				return r;
		}
		pos += seg;
	}
	return 0;
}

static int compressed_extent(struct qc_lr *w, uint64_t rel, const struct qc_gm_extent *x)
{
	const struct qc_image *img = w->L->img;
	size_t cs = (size_t)img->cluster_size;
	if (!w->cached || w->cached_cstart != x->cstart) {
		if (!w->dc && !(w->dc = qc_dc_new(img->h.compression_type)))
			return fail(w, 1, "cannot set up the decompressor (compression type %u)",
				    img->h.compression_type);
		size_t clen = (size_t)min64(x->clen, 2 * img->cluster_size);
		long long got = qc_io_read(img->io, w->cin, clen, x->host);
		if (got < 0)
			return fail(w, 1, "I/O error reading compressed data at 0x%llx: %s",
				    (unsigned long long)x->host, strerror((int)-got));
		size_t produced = 0;
		const char *why = "";
		enum qc_dc_result r = qc_dc_run(w->dc, w->cin, (size_t)got, w->cout, cs, &produced, &why);
		if (r == QC_DC_NOMEM)
			return fail(w, 1, "out of memory in the decompressor");
		if (r != QC_DC_OK && w->observe)
			w->observe(w->observe_ctx, x->host, x->clen, (int)r, why, produced);
		if (r != QC_DC_OK && r != QC_DC_INEXACT) {
			if (!w->force)
				return fail(w, 2,
					    "the compressed cluster at host 0x%llx (guest 0x%llx) cannot be read: %s",
					    (unsigned long long)x->host, (unsigned long long)x->cstart, why);
			memset(w->cout + produced, 0, cs - produced);
			w->unreadable += cs - produced;
		}
		w->cached = true;
		w->cached_cstart = x->cstart;
	}
	memcpy(w->buf + rel, w->cout + (x->guest - x->cstart), (size_t)x->len);
	return 0;
}

int qc_lr_fill(struct qc_lr *w, uint64_t g, uint64_t wlen, uint64_t ra_end)
{
	size_t n;
	int r = qc_gm_map(w->L, g, wlen, ra_end, &w->l2, w->ext, w->maxext, &n);
	if (r)
		return fail(w, 1, "cannot map guest offset 0x%llx: %s", (unsigned long long)g,
			    strerror(-r));
	memset(w->touched, 0, sizeof(w->touched));
	qc_lr_unmap(w);
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < n; k++) {
			const struct qc_gm_extent *x = &w->ext[k];
			uint64_t rel = x->guest - g;
			switch (x->kind) {
			case QC_GM_ZERO:
				if (pass)
					zero_fill(w, rel, x->len);
				break;
			case QC_GM_BAD:
				if (!w->force)
					return fail(w, 2,
						    "guest bytes [0x%llx, +%llu) cannot be read: their L1 or L2 entry is invalid",
						    (unsigned long long)x->guest,
						    (unsigned long long)x->len);
				if (pass) {
					zero_fill(w, rel, x->len);
					w->unreadable += x->len;
				}
				break;
			case QC_GM_DATA:
				r = data_extent(w, pass, rel, x);
				break;
			case QC_GM_COMPRESSED:
				if (!pass)
					touch(w, rel, x->len);
				else
					r = compressed_extent(w, rel, x);
				break;
			}
			if (r)
				return r;
		}
	}
	return 0;
}
