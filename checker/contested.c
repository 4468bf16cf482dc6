/*
 * contested.c - the contested list: host clusters two structures claim
 * (an overlap) or that a structure shares with one it may not, kept sorted
 * after the passes so a repair planner can ask, in O(log n), whether a
 * range it would write touches one (it then leaves it).  Bounded by
 * QC_MAX_CONTESTED; past that every range counts as contested.
 */
#include "check.h"
#include "../core/reader.h"
#include "../core/util.h"

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

void qc_settle_contested(struct qc_image *img)
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
	size_t lo = qc_lower_bound_u64(img->contested, img->ncontested, first);
	return lo < img->ncontested && img->contested[lo] <= last;
}
