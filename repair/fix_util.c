/*
 * fix_util.c - the evidence rules the table fixers share (see fix.h and
 * doc/repair.md "Repairing damaged pointers"): the stored refcount of one
 * cluster, "unclaimed" clusters, the unique recovery of a damaged offset,
 * and marking problem records fixed.  Relies on the model's cluster map
 * (computed counts), the in-memory reftable and refblock_usable[] of the
 * reftable pass (checker/refcounts.c) and core/refblock.h.
 */
#include "fix.h"

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/refblock.h"

/* ... and *at the byte offset of its refblock entry (when at != NULL). */
static bool stored_at(struct qc_image *img, uint64_t cl, uint64_t *rc, uint64_t *atp)
{
	if (!img->geometry_ok || !img->reftable || !img->refblock_usable)
		return false;
	unsigned bits = img->refcount_bits, order = 0;
	while ((1u << order) < bits)
		order++;
	if (bits == 0 || (1u << order) != bits || order > 6)
		return false;
	uint64_t per_block = (img->cluster_size * 8) >> order;
	uint64_t i = cl / per_block, j = cl % per_block;
	if (i >= img->reftable_entries || !img->refblock_usable[i])
		return false;
	uint64_t rb = img->reftable[i] & QC_REFT_OFFSET_MASK;
	uint8_t b[8] = { 0 };
	uint64_t byte = (j << order) >> 3;
	size_t len = order >= 3 ? bits / 8 : 1;
	uint64_t at;
	if (!qc_add(rb, byte, &at) || qc_past_eof(img, at, len) ||
	    qc_io_read_full(img->io, b, len, at) < 0)
		return false;
	/* the entry sits at index j within its byte (narrow widths) or at 0 */
	uint64_t jj = order >= 3 ? 0 : j & ((8u >> order) - 1);
	*rc = qc_rc_get(b, order, jj);
	if (atp)
		*atp = order >= 3 ? at : QC_NO_OFFSET;
	return true;
}

bool qc_fix_stored_refcount(struct qc_image *img, uint64_t cl, uint64_t *rc)
{
	return stored_at(img, cl, rc, NULL);
}

bool qc_fix_unclaimed(struct qc_image *img, uint64_t off)
{
	uint64_t cl = off >> img->cluster_bits, rc;
	if (!off || (off & (img->cluster_size - 1)) || qc_past_eof(img, off, img->cluster_size))
		return false;
	if (cl < img->cmap.nclusters &&
	    (qc_cm_owner(&img->cmap, cl) != QC_OWN_FREE || qc_cm_count(&img->cmap, cl) != 0))
		return false;
	if (qc_contested(img, off, img->cluster_size))
		return false;
	return qc_fix_stored_refcount(img, cl, &rc) && rc >= 1;
}

bool qc_fix_recover(struct qc_image *img, uint64_t off, bool (*ok)(void *, uint64_t), void *ctx,
		    uint64_t *out)
{
	const uint64_t cs = img->cluster_size;
	uint64_t base = off & ~(cs - 1) & QC_L2E_OFFSET_MASK;
	uint64_t cand[66];
	size_t n = 0;
	cand[n++] = base;
	unsigned top = 0; /* bits at or above this cannot be set inside the file */
	while (top < 64 && (UINT64_C(1) << top) < img->file_size)
		top++;
	for (unsigned b = top; b < 56; b++)
		if (base & (UINT64_C(1) << b))
			cand[n++] = base & ~(UINT64_C(1) << b);
	if (top < 64)
		cand[n++] = base & ((UINT64_C(1) << top) - 1);
	uint64_t found = 0;
	unsigned nfound = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t k = 0; k < i && !dup; k++)
			dup = cand[k] == cand[i];
		if (dup || !cand[i] || qc_past_eof(img, cand[i], cs))
			continue;
		if (ok(ctx, cand[i])) {
			found = cand[i];
			nfound++;
		}
	}
	if (nfound != 1)
		return false;
	*out = found;
	return true;
}

void qc_fix_mark(struct qc_image *img, uint64_t at, int fixer)
{
	struct qc_problems *ps = &img->problems;
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].loc.offset == at && (int)qc_policy(ps->v[i].code)->fixer == fixer)
			ps->v[i].fixed = true;
}

void qc_fix_mark_refcount(struct qc_image *img, uint64_t off)
{
	struct qc_problems *ps = &img->problems;
	uint64_t rc, at, cl = off >> img->cluster_bits;
	/* leak records are located at the refblock entry (byte-wide widths);
	 * the leak is gone when the claims now match the stored count */
	if (!stored_at(img, cl, &rc, &at) || at == QC_NO_OFFSET || cl >= img->cmap.nclusters ||
	    qc_cm_count(&img->cmap, cl) != rc)
		return;
	off = at;
	for (size_t i = 0; i < ps->n; i++)
		if ((ps->v[i].code == QC_P_REFCOUNT_LEAK || ps->v[i].code == QC_P_REFCOUNT_TOO_LOW) &&
		    ps->v[i].loc.offset == off)
			ps->v[i].fixed = true;
	/* an L2 table the active L1 names, now counted once: its entry's
	 * l1-copied-spurious record is stale */
	if (rc != 1 || qc_cm_owner(&img->cmap, cl) != QC_OWN_L2 || !img->l1 || !img->l1_ok)
		return;
	for (uint64_t i = 0; i < img->h.l1_size; i++)
		if ((img->l1[i] & QC_L1E_OFFSET_MASK) == cl << img->cluster_bits &&
		    (img->l1[i] & QC_OFLAG_COPIED)) {
			uint64_t l1e = img->h.l1_table_offset + 8 * i;
			for (size_t k = 0; k < ps->n; k++)
				if (ps->v[k].code == QC_P_L1_COPIED_SPURIOUS && ps->v[k].loc.offset == l1e)
					ps->v[k].fixed = true;
		}
}

bool qc_fix_planned(const struct qc_plan *p, uint64_t off, uint64_t len)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].offset < off + len && off < p->w[i].offset + p->w[i].len)
			return true;
	return false;
}

bool qc_fix_missing_ref(struct qc_image *img, uint64_t off, enum qc_owner want)
{
	uint64_t cl = off >> img->cluster_bits, rc;
	if (!off || (off & (img->cluster_size - 1)) || qc_past_eof(img, off, img->cluster_size) ||
	    cl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, cl) != want ||
	    qc_contested(img, off, img->cluster_size))
		return false;
	return qc_fix_stored_refcount(img, cl, &rc) && rc > qc_cm_count(&img->cmap, cl);
}

bool qc_fix_records_complete(const struct qc_image *img, int fixer)
{
	for (int c = 0; c < QC_P_COUNT; c++)
		if ((int)qc_policy((enum qc_code)c)->fixer == fixer &&
		    img->problems.per_code[c] > QC_MAX_RECORDS_PER_CODE)
			return false;
	return true;
}

static bool is_overlap(enum qc_code c)
{
	return c == QC_P_OVERLAP_DATA_COMPRESSED || c == QC_P_OVERLAP_DATA_METADATA ||
	       c == QC_P_OVERLAP_METADATA;
}

void qc_fix_settle_contested(struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (img->contested_overflow || !img->ncontested)
		return;
	for (int c = 0; c < QC_P_COUNT; c++)
		if (is_overlap((enum qc_code)c) && ps->per_code[c] > QC_MAX_RECORDS_PER_CODE)
			return;
	for (size_t i = 0; i < ps->n; i++)
		if (is_overlap(ps->v[i].code) && !ps->v[i].fixed && ps->v[i].host_cluster == QC_NO_OFFSET)
			return;
	/* contested[] is sorted: keep each cluster that has an unfixed record,
	 * or no record at all (noted by a range overlap), and the active L1
	 * table's clusters: the L1 fixer decided its entries (all but the one
	 * making it contested are left) before this runs */
	uint64_t l1first = 1, l1last = 0, l1end;
	if (img->l1_ok && img->h.l1_size &&
	    qc_add(img->h.l1_table_offset, (uint64_t)img->h.l1_size * 8 - 1, &l1end)) {
		l1first = img->h.l1_table_offset >> img->cluster_bits;
		l1last = l1end >> img->cluster_bits;
	}
	size_t k = 0;
	for (size_t j = 0; j < img->ncontested; j++) {
		uint64_t cl = img->contested[j];
		bool any = false, open = cl >= l1first && cl <= l1last;
		for (size_t i = 0; i < ps->n && !open; i++)
			if (is_overlap(ps->v[i].code) && ps->v[i].host_cluster == cl) {
				any = true;
				open = !ps->v[i].fixed;
			}
		if (!any || open)
			img->contested[k++] = cl;
	}
	img->ncontested = k;
}

bool qc_fix_maybe_l2(const struct qc_image *img, uint64_t off)
{
	if (!off || qc_past_eof(img, off, img->cluster_size))
		return false;
	uint64_t cl = off >> img->cluster_bits;
	enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
	return o == QC_OWN_FREE || o == QC_OWN_L2 || o == QC_OWN_L2_INACTIVE;
}
