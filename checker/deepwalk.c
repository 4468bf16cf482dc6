/*
 * deepwalk.c - the compressed cluster descriptors of every L1 table, in
 * bounded batches (for --deep, checker/deep.c; see qc_compressed_batches()
 * in check.h).
 *
 * The same descriptors tables.c's walk claims, found the same way: the
 * L2 references of the active L1 table (img->l1) and of every usable
 * snapshot L1 table (read by data extent, holes skipped, as tables.c
 * does) are sorted by L2 offset; each L2 table is read once and its
 * compressed entries, classified by core/entry.c, are taken when they are
 * followable and inside the file, with the guest offset and snapshot of
 * the table's first reference (the active table first).  Runs after the
 * walk, which reported every entry this skips.
 *
 * Memory: 16 bytes per followable L1 entry of all L1 tables (the walk's
 * own list had the same), one L1 chunk (512 KiB), one L2 table, and the
 * batch: at most batch_max descriptors of 32 bytes, whatever the number of
 * compressed clusters.
 */
#include "check.h"
#include "l1read.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <stdlib.h>
#include <string.h>

#define L1_CHUNK (64u * 1024) /* L1 entries read at once */

struct ref {
	uint64_t l2;
	uint32_t l1_index;
	int32_t table; /* -1 active */
};

struct refs {
	struct qc_image *img;
	struct ref *v;
	size_t n, cap;
};

static uint64_t shl_sat(uint64_t a, unsigned s)
{
	if (s >= 64)
		return a ? UINT64_MAX : 0;
	if (a > (UINT64_MAX >> s))
		return UINT64_MAX;
	return a << s;
}

static bool scan(struct refs *R, const uint64_t *ent, uint32_t first, uint32_t n, int32_t table)
{
	struct qc_image *img = R->img;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	for (uint32_t k = 0; k < n; k++) {
		struct qc_entry ce = qc_l1e_classify(ent[k], &g);
		if (!qc_entry_followable(&ce) || qc_past_eof(img, ce.offset, img->cluster_size))
			continue;
		struct ref *v = qc_budget_grow(img, R->v, &R->cap, R->n, sizeof(*v), 1024,
					       "the list of L2 references (--deep)");
		if (!v)
			return false;
		R->v = v;
		R->v[R->n++] = (struct ref){ ce.offset, first + k, table };
	}
	return true;
}

struct l1scan {
	struct refs *R;
	int32_t table;
};

static bool scan_run(void *ctx, const uint64_t *ent, uint32_t first, uint32_t n)
{
	const struct l1scan *l = ctx;
	return scan(l->R, ent, first, n, l->table);
}

/* A snapshot L1 table, by data extent: entries in holes are zeros. */
static bool read_l1(struct refs *R, uint64_t off, uint32_t size, int32_t table, uint8_t *chunk)
{
	struct l1scan l = { R, table };
	return qc_l1_read_extents(R->img, off, size, chunk, L1_CHUNK, scan_run, NULL, &l);
}

static int ref_cmp(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	if (x->l2 != y->l2)
		return x->l2 < y->l2 ? -1 : 1;
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	return x->l1_index < y->l1_index ? -1 : x->l1_index > y->l1_index;
}

static int desc_cmp(const void *a, const void *b)
{
	const struct qc_compressed_ref *x = a, *y = b;
	if (x->host_offset != y->host_offset)
		return x->host_offset < y->host_offset ? -1 : 1;
	if (x->length != y->length)
		return x->length < y->length ? -1 : 1;
	if (x->snapshot != y->snapshot)
		return x->snapshot < y->snapshot ? -1 : 1;
	return x->guest_offset < y->guest_offset ? -1 : x->guest_offset > y->guest_offset;
}

static bool flush(struct qc_compressed_ref *b, size_t *n, qc_batch_fn fn, void *ctx)
{
	if (!*n)
		return true;
	qsort(b, *n, sizeof(*b), desc_cmp);
	bool go = fn(ctx, b, *n);
	*n = 0;
	return go;
}

uint64_t qc_compressed_batch_mem(const struct qc_image *img, size_t batch_max)
{
	return (uint64_t)batch_max * sizeof(struct qc_compressed_ref) + img->cluster_size +
	       (uint64_t)L1_CHUNK * 8;
}

bool qc_compressed_batches(struct qc_image *img, size_t batch_max, qc_batch_fn fn, void *ctx)
{
	if (!img->geometry_ok || img->aborted || !batch_max)
		return false;
	struct refs R = { .img = img };
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size, shift = qc_l1_shift(img);
	uint64_t held = qc_compressed_batch_mem(img, batch_max);
	if (!qc_mem_reserve(img, held)) {
		qc_abort(img, "memory cap reached: --deep needs %llu bytes more than --max-mem leaves",
			 (unsigned long long)held);
		return false;
	}
	uint8_t *chunk = malloc((size_t)L1_CHUNK * 8);
	uint8_t *l2 = malloc((size_t)cs);
	struct qc_compressed_ref *b = malloc(batch_max * sizeof(*b));
	bool ok = chunk && l2 && b;
	if (!ok)
		qc_abort(img, "out of memory for --deep");
	if (ok && img->l1 && img->l1_ok)
		for (uint32_t c = 0; ok && c < img->h.l1_size; c += L1_CHUNK) {
			uint32_t n = img->h.l1_size - c < L1_CHUNK ? img->h.l1_size - c : L1_CHUNK;
			ok = scan(&R, img->l1 + c, c, n, -1);
		}
	for (uint32_t s = 0; ok && s < img->nsnapshots; s++) {
		const struct qc_snapshot *sn = &img->snapshots[s];
		if (sn->l1_usable && sn->l1_size)
			ok = read_l1(&R, sn->l1_table_offset, sn->l1_size, (int32_t)s, chunk);
	}
	if (ok && R.n)
		qsort(R.v, R.n, sizeof(*R.v), ref_cmp);
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	size_t nb = 0;
	for (size_t a = 0; ok && a < R.n; a++) {
		if (a && R.v[a].l2 == R.v[a - 1].l2)
			continue; /* one L2 table, read once (its first reference names it) */
		if (qc_io_read(img->io, l2, (size_t)cs, R.v[a].l2) < 0) {
			qc_abort(img, "I/O error reading L2 tables at 0x%llx",
				 (unsigned long long)R.v[a].l2);
			ok = false;
			break;
		}
		uint64_t guest0 = shl_sat(R.v[a].l1_index, shift);
		for (uint64_t j = 0; ok && j < img->l2_entries; j++) {
			const uint8_t *p = l2 + j * es;
			uint64_t e = qc_be64_at(p);
			if (!(e & QC_OFLAG_COMPRESSED))
				continue;
			struct qc_entry ce = qc_l2e_classify(e, es == 16 ? qc_be64_at(p + 8) : 0, &g);
			if (ce.kind != QC_ENTRY_COMPRESSED ||
			    (ce.reasons & (QC_ER_COMPRESSED_DATA_FILE | QC_ER_COMPRESSED_TOO_LARGE)) ||
			    qc_past_eof(img, ce.offset, ce.length))
				continue;
			b[nb++] = (struct qc_compressed_ref){
				ce.offset, ce.length,
				guest0 == UINT64_MAX ? UINT64_MAX : guest0 + j * cs, R.v[a].table
			};
			if (nb == batch_max)
				ok = flush(b, &nb, fn, ctx);
		}
	}
	if (ok)
		ok = flush(b, &nb, fn, ctx);
	free(b);
	free(l2);
	free(chunk);
	qc_budget_free(img, R.v, R.cap * sizeof(*R.v));
	qc_mem_release(img, held);
	return ok && !img->aborted;
}
