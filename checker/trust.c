/*
 * trust.c - whether the walk saw every reference (see trust.h).  The
 * per-code decision is the HIDES column of core/problems/policy.def; the
 * two conditional entries are evaluated here on the problem records
 * (structured fields only: offsets, snapshot index, overlap owners).
 */
#include "trust.h"

#include "../core/layout.h"
#include "../core/policy.h"
#include "check.h"

#include <stdlib.h>

bool qc_reserved_only_on_dropped(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->per_code[QC_P_L1_ENTRY_RESERVED] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_L1_ENTRY_NO_OFFSET] > QC_MAX_RECORDS_PER_CODE)
		return false;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].code != QC_P_L1_ENTRY_RESERVED)
			continue;
		if (ps->v[i].loc.snapshot >= 0)
			return false;
		bool dropped = false;
		for (size_t j = 0; j < ps->n && !dropped; j++)
			dropped = ps->v[j].code == QC_P_L1_ENTRY_NO_OFFSET && ps->v[j].loc.snapshot < 0 &&
				  ps->v[j].loc.offset == ps->v[i].loc.offset;
		if (!dropped)
			return false;
	}
	return true;
}

/* Is any usable refblock shaped like one (QC_RB_PROVED)?  A genuine
 * refcount table names at least the refblock that counts the header. */
static bool reftable_disproved(const struct qc_image *img)
{
	if (!img->reftable || !img->refblock_usable)
		return false;
	for (uint64_t i = 0; i < img->reftable_entries; i++)
		if (img->refblock_usable[i] & QC_RB_PROVED)
			return false;
	return true;
}

/* Index of contested cluster c in img->contested, or ncontested. */
static size_t contested_index(const struct qc_image *img, uint64_t c)
{
	size_t lo = 0, hi = img->ncontested;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (img->contested[mid] < c)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < img->ncontested && img->contested[lo] == c ? lo : img->ncontested;
}

#define RBS_NAMED 1
#define RBS_PROVED 2

uint8_t *qc_refblock_states(const struct qc_image *img)
{
	if (!img->geometry_ok || !img->reftable || !img->refblock_usable || img->contested_overflow ||
	    !img->ncontested)
		return NULL;
	/* at most QC_MAX_CONTESTED bytes */
	uint8_t *st = calloc(img->ncontested, 1);
	if (!st)
		return NULL;
	for (uint64_t i = 0; i < img->reftable_entries; i++) {
		if (!(img->refblock_usable[i] & QC_RB_USABLE))
			continue;
		size_t k = contested_index(img, (img->reftable[i] & QC_REFT_OFFSET_MASK) >> img->cluster_bits);
		if (k == img->ncontested)
			continue;
		st[k] |= RBS_NAMED;
		if (img->refblock_usable[i] & QC_RB_PROVED)
			st[k] |= RBS_PROVED;
	}
	return st;
}

bool qc_refblock_disproved(const struct qc_image *img, const uint8_t *states, uint64_t off)
{
	if (!states || !img->geometry_ok)
		return false;
	size_t k = contested_index(img, off >> img->cluster_bits);
	return k < img->ncontested && states[k] == RBS_NAMED;
}

/* Is every usable refblock that lies in a contested cluster disproved by
 * its content (not QC_RB_PROVED)? */
static bool contested_refblocks_disproved(const struct qc_image *img)
{
	if (!img->reftable || !img->refblock_usable)
		return false;
	for (uint64_t i = 0; i < img->reftable_entries; i++) {
		uint64_t off = img->reftable[i] & QC_REFT_OFFSET_MASK;
		if ((img->refblock_usable[i] & QC_RB_USABLE) && (img->refblock_usable[i] & QC_RB_PROVED) &&
		    qc_contested(img, off, img->cluster_size))
			return false;
	}
	return true;
}

static bool is_refcount_owner(enum qc_owner o)
{
	return o == QC_OWN_REFTABLE || o == QC_OWN_REFBLOCK;
}

/*
 * Does no record of code c leave a doubt which side is wrong?  Every
 * record must be a refblock claimed by a refblock (two reftable entries
 * naming one cluster: the rebuild gives each its own count), or have the
 * refcount structure on one side with that side disproved by content: a
 * refblock whose stored counts disagree with what the walk references in
 * most of its range, or a refcount table none of whose refblocks is shaped
 * like one.  The rebuild then drops the disproved side and keeps the
 * other structure as it is (doc/repair.md "The refcount table").  False
 * when records were dropped by the cap.
 */
static bool refcount_side_wrong(const struct qc_image *img, enum qc_code c)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->per_code[c] > QC_MAX_RECORDS_PER_CODE)
		return false;
	bool need_rt = false, need_rb = false;
	for (size_t i = 0; i < ps->n; i++) {
		/* records a repair planner planned away (fixed) hide nothing */
		if (ps->v[i].code != c || ps->v[i].fixed)
			continue;
		enum qc_owner a = ps->v[i].owner, b = ps->v[i].other_owner;
		if (a == QC_OWN_REFBLOCK && b == QC_OWN_REFBLOCK)
			continue;
		if (!is_refcount_owner(a) && !is_refcount_owner(b))
			return false;
		if ((a == QC_OWN_REFTABLE && b != QC_OWN_REFBLOCK) ||
		    (b == QC_OWN_REFTABLE && a != QC_OWN_REFBLOCK))
			need_rt = true;
		else
			need_rb = true;
	}
	return (!need_rt || reftable_disproved(img)) && (!need_rb || contested_refblocks_disproved(img));
}

bool qc_code_all_fixed(const struct qc_image *img, enum qc_code c)
{
	const struct qc_problems *ps = &img->problems;
	if (!ps->per_code[c] || ps->per_code[c] > QC_MAX_RECORDS_PER_CODE)
		return false;
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].code == c && !ps->v[i].fixed)
			return false;
	return true;
}

bool qc_code_hides_refs(const struct qc_image *img, enum qc_code c)
{
	if (!img->problems.per_code[c])
		return false;
	/* a repair planner planned every record away and updated the model */
	if (qc_code_all_fixed(img, c))
		return false;
	switch (qc_policy(c)->hides) {
	case QC_HIDES_NO:
		return false;
	case QC_HIDES_YES:
		return true;
	case QC_HIDES_UNLESS_DROPPED:
		return !qc_reserved_only_on_dropped(img);
	case QC_HIDES_UNLESS_REFCOUNT_WRONG:
		return !refcount_side_wrong(img, c);
	case QC_HIDES_UNLESS_EMPTY:
		return img->h.nb_snapshots != 0;
	}
	return true;
}

bool qc_walk_complete(const struct qc_image *img, const char **why)
{
	const char *w = NULL;
	if (!img->is_qcow2 || !img->geometry_ok)
		w = "the header's geometry is unusable";
	else if (img->aborted)
		w = "the check did not complete";
	else if (!img->l1_ok)
		w = "the active L1 table is unusable";
	else if (img->h.nb_snapshots && (!img->snapshot_table_ok || img->nsnapshots < img->h.nb_snapshots))
		w = "the snapshot table is unusable";
	/* with autoclear bit 0 clear the extension is ignored (QEMU too): it
	 * references nothing */
	else if (img->ext.has_bitmaps && (img->h.autoclear_features & QC_AUTOCLEAR_BITMAPS) &&
		 !img->ext.bitmaps_valid)
		w = "the bitmap directory is unusable";
	for (uint32_t i = 0; !w && i < img->nsnapshots; i++)
		if (!img->snapshots[i].l1_usable)
			w = "a snapshot's L1 table is unusable";
	for (int c = 0; !w && c < QC_P_COUNT; c++)
		if (qc_code_hides_refs(img, (enum qc_code)c))
			w = qc_problem_table[c].code;
	if (why)
		*why = w;
	return w == NULL;
}

bool qc_self_claims_consistent(const struct qc_image *img)
{
	const struct qc_self_claims *s = &img->self_claims;
	uint64_t rt = 0;
	if (s->reftable_bytes && img->geometry_ok) {
		/* qc_claim adds nothing for clusters past the map */
		uint64_t first = s->reftable_off >> img->cluster_bits;
		uint64_t last = (s->reftable_off + s->reftable_bytes - 1) >> img->cluster_bits;
		uint64_t n = img->cmap.nclusters;
		uint64_t in = first >= n ? 0 : (last < n ? last : n - 1) - first + 1;
		rt = in * s->reftable_nref;
	}
	return img->claimed_refs[QC_OWN_REFTABLE] == rt &&
	       img->claimed_refs[QC_OWN_REFBLOCK] == s->refblocks * s->refblock_nref;
}
