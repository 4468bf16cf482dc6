/*
 * claims.c - ownership claims: every structure the passes find claims its
 * host clusters in the cluster map (core/clustermap.h) with its reference
 * count; a cluster claimed by two owners that may not share it is an
 * overlap (reported, and noted contested: contested.c).  Also the EOF rule
 * every pass applies to the structures it follows (doc/format.md).
 */
#include "check.h"
#include "../core/reader.h"
#include "../core/util.h"

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
	qc_note_contested(img, cluster << img->cluster_bits, 1);
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
