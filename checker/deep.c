/*
 * deep.c - `check --deep`: decompress every compressed cluster and report
 * the streams QEMU could not read (doc/format.md §9.4: its
 * check never decompresses, so a damaged stream passes "No errors" while
 * reads and convert fail with EIO).
 *
 * Relies on the table walk (tables.c) having listed every compressed
 * descriptor in img->compressed (only when opt.deep is set), on the header
 * pass for the geometry and compression type, and on core/decompress.c for
 * QEMU's acceptance rules.  The list is sorted by host offset and read in
 * large windows, so the payload is read once, sequentially.  Input is
 * bounded by the descriptor's length clamped to the file; output is
 * exactly one cluster.
 */
#include "check.h"
#include "../core/decompress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEEP_WINDOW (16u << 20) /* bytes read at once */
#define DEEP_GAP (1u << 20)     /* holes up to this size are read through */

static int cmp_ref(const void *a, const void *b)
{
	const struct qc_compressed_ref *x = *(const struct qc_compressed_ref *const *)a;
	const struct qc_compressed_ref *y = *(const struct qc_compressed_ref *const *)b;
	if (x->host_offset != y->host_offset)
		return x->host_offset < y->host_offset ? -1 : 1;
	if (x->length != y->length)
		return x->length < y->length ? -1 : 1;
	return 0;
}

/* Bytes of the descriptor's range that lie inside the file. */
static uint64_t clamped_len(const struct qc_image *img, const struct qc_compressed_ref *r)
{
	if (r->host_offset >= img->file_size)
		return 0;
	uint64_t room = img->file_size - r->host_offset;
	return r->length < room ? r->length : room;
}

static void report(struct qc_image *img, const struct qc_compressed_ref *r, enum qc_dc_result res,
		   const char *why, size_t produced)
{
	struct qc_loc loc = { r->host_offset, r->guest_offset, img->cluster_size, r->snapshot, NULL };
	const char *algo = img->h.compression_type ? "zstd" : "zlib";
	char where[48] = "";
	if (r->snapshot >= 0)
		snprintf(where, sizeof(where), " in snapshot %d", (int)r->snapshot);
	enum qc_code code;
	switch (res) {
	case QC_DC_INEXACT:
		code = QC_P_COMPRESSED_STREAM_INEXACT;
		break;
	case QC_DC_SHORT:
	case QC_DC_LONG:
		code = QC_P_COMPRESSED_STREAM_SIZE;
		break;
	case QC_DC_TRUNCATED:
		code = QC_P_COMPRESSED_STREAM_TRUNCATED;
		break;
	case QC_DC_WINDOW:
		code = QC_P_COMPRESSED_STREAM_WINDOW;
		break;
	default:
		code = QC_P_COMPRESSED_STREAM_INVALID;
		break;
	}
	qc_report(&img->problems, code, loc, 1,
		  "%s cluster at host 0x%llx (%llu bytes) for guest 0x%llx%s: %s (%zu of %llu bytes)",
		  algo, (unsigned long long)r->host_offset, (unsigned long long)r->length,
		  (unsigned long long)r->guest_offset, where, why, produced,
		  (unsigned long long)img->cluster_size);
}

/* Decompress refs[i..j) whose ranges all lie in buf, which starts at base. */
static void run_window(struct qc_image *img, struct qc_dc *dc, struct qc_compressed_ref **refs,
		       size_t i, size_t j, const uint8_t *buf, uint64_t base, uint8_t *out)
{
	enum qc_dc_result res = QC_DC_OK;
	const char *why = "";
	size_t produced = 0;
	for (size_t k = i; k < j; k++) {
		const struct qc_compressed_ref *r = refs[k];
		uint64_t len = clamped_len(img, r);
		if (len == 0)
			continue; /* past EOF: the walk reports it */
		/* the same stream seen again (another guest offset): same verdict */
		if (k == i || cmp_ref(&refs[k - 1], &refs[k]) != 0) {
			res = qc_dc_run(dc, buf + (r->host_offset - base), (size_t)len, out,
					(size_t)img->cluster_size, &produced, &why);
			if (res == QC_DC_NOMEM) {
				qc_abort(img, "out of memory in the decompressor");
				return;
			}
		}
		if (res != QC_DC_OK)
			report(img, r, res, why, produced);
	}
}

void qc_pass_deep(struct qc_image *img)
{
	/* with an external data file compressed clusters are invalid (the walk
	 * reports them) and their bytes are not in this file */
	if (!img->opt.deep || !img->geometry_ok || img->ncompressed == 0 ||
	    img->h.compression_type > 1 || img->data_file)
		return;
	size_t n = img->ncompressed;
	size_t win = DEEP_WINDOW;
	if (img->file_size < win)
		win = (size_t)img->file_size;
	/* the sorted index, the read window, one cluster of output and the
	 * decoder (its zstd window is capped: core/decompress.h) */
	uint64_t budget = (uint64_t)n * sizeof(struct qc_compressed_ref *) + win + img->cluster_size +
			  qc_dc_mem_bound(img->h.compression_type);
	if (!qc_mem_reserve(img, budget)) {
		qc_abort(img, "memory cap reached: --deep needs %llu bytes more than --max-mem leaves",
			 (unsigned long long)budget);
		return;
	}
	struct qc_compressed_ref **refs = calloc(n, sizeof(*refs));
	uint8_t *buf = malloc(win ? win : 1);
	uint8_t *out = malloc((size_t)img->cluster_size);
	struct qc_dc *dc = qc_dc_new(img->h.compression_type);
	if (!refs || !buf || !out || !dc) {
		qc_abort(img, "out of memory for --deep");
		goto out;
	}
	for (size_t k = 0; k < n; k++)
		refs[k] = &img->compressed[k];
	qsort(refs, n, sizeof(*refs), cmp_ref);

	size_t i = 0;
	while (i < n && !img->aborted) {
		uint64_t base = refs[i]->host_offset;
		uint64_t end = base + clamped_len(img, refs[i]);
		size_t j = i + 1;
		/* a descriptor covers at most two clusters (4 MiB), so it fits */
		while (j < n) {
			uint64_t s = refs[j]->host_offset, e = s + clamped_len(img, refs[j]);
			if (e - base > win || s > end + DEEP_GAP)
				break;
			if (e > end)
				end = e;
			j++;
		}
		if (end > base && qc_io_read(img->io, buf, (size_t)(end - base), base) < 0) {
			qc_abort(img, "cannot read compressed data at 0x%llx", (unsigned long long)base);
			break;
		}
		run_window(img, dc, refs, i, j, buf, base, out);
		i = j;
	}
	img->deep_streams = i;
out:
	qc_dc_free(dc);
	free(out);
	free(buf);
	free(refs);
	qc_mem_release(img, budget);
}
