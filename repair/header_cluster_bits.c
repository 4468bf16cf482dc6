/*
 * header_cluster_bits.c - cluster_bits restored from evidence (doc/repair.md
 * "Header fields").  A wrong cluster size misplaces every structure the
 * header names: the L1 table, the refcount table and the snapshot table
 * offsets are no longer cluster aligned, or name bytes that are not those
 * tables, and no refcount block agrees with the walk.  Each valid value
 * (9..21) is tried by a check of the image with it laid over the header
 * (header_trial.c); the one restored is the only value under which the
 * geometry is usable, the active L1 table and the refcount table are
 * where the header says (no unaligned or past-the-end finding for them, nor
 * for the snapshot table), every usable refcount block is shaped like one
 * and agrees with the walk (QC_RB_PROVED), and no stored refcount is below
 * its references.  Anything else is left, and the refusal names the field.
 *
 * Tried when cluster_bits is outside 9..21, or when at least two of those
 * three tables' offsets are unaligned (one alone is a damaged offset,
 * which header_l1.c and the snapshot-table planner judge).
 *
 * A candidate whose trial check cannot complete (a wrong size can name
 * tables past the memory cap) is one that does not agree.
 *
 * Relies on qc_check_run through the trial (header_trial.c
 * qc_hf_try_be32): up to 13 checks of the image's metadata, each bounded
 * as any check is.
 */
#include "header_fields.h"

#include <inttypes.h>

#include "../checker/check.h"
#include "../core/reader.h"

static bool placed_right(const struct qc_problems *ps)
{
	return !ps->per_code[QC_P_HEADER_L1_OFFSET_UNALIGNED] && !ps->per_code[QC_P_HEADER_L1_PAST_EOF] &&
	       !ps->per_code[QC_P_HEADER_REFTABLE_OFFSET_UNALIGNED] &&
	       !ps->per_code[QC_P_HEADER_REFTABLE_PAST_EOF] &&
	       !ps->per_code[QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED];
}

bool qc_hf_cluster_bits_suspect(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->per_code[QC_P_HEADER_CLUSTER_BITS_INVALID])
		return true;
	unsigned unaligned = (ps->per_code[QC_P_HEADER_L1_OFFSET_UNALIGNED] != 0) +
			     (ps->per_code[QC_P_HEADER_REFTABLE_OFFSET_UNALIGNED] != 0) +
			     (ps->per_code[QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED] != 0);
	return unaligned >= 2;
}

static bool bits_agree(const struct qc_image *m)
{
	return m->is_qcow2 && m->geometry_ok && m->l1_ok && placed_right(&m->problems) &&
	       qc_hf_refblocks_proved(m) && !qc_hf_counts_below(&m->problems);
}

void qc_hf_cluster_bits(struct hf *h)
{
	struct qc_image *img = h->img;
	const struct qc_problems *ps = &img->problems;
	enum qc_code code = ps->per_code[QC_P_HEADER_CLUSTER_BITS_INVALID] ? QC_P_HEADER_CLUSTER_BITS_INVALID
			    : ps->per_code[QC_P_HEADER_L1_OFFSET_UNALIGNED] ? QC_P_HEADER_L1_OFFSET_UNALIGNED
									   : QC_P_HEADER_REFTABLE_OFFSET_UNALIGNED;
	uint32_t cur = qc_be32_at(h->hdr + QC_HDR_CLUSTER_BITS);
	unsigned found = 0, nfound = 0;
	for (unsigned bits = QC_MIN_CLUSTER_BITS; bits <= QC_MAX_CLUSTER_BITS; bits++) {
		if (bits == cur)
			continue;
		/* a check the candidate makes fail (a cap, a read past what
		 * the wrong size names) is a candidate that does not agree */
		bool failed = false;
		if (qc_hf_try_be32(h, QC_HDR_CLUSTER_BITS, bits, bits_agree, &failed)) {
			found = bits;
			nfound++;
		}
	}
	if (nfound != 1) {
		qc_plan_leave(h->p, code, QC_HDR_CLUSTER_BITS,
			      "header field cluster_bits (%" PRIu32 "): not restored: %s", cur,
			      nfound ? "the image's structures agree with several cluster sizes"
				     : "the image's structures agree with no other cluster size");
		return;
	}
	qc_put_be32(h->hdr + QC_HDR_CLUSTER_BITS, found);
	qc_hf_note(h, code, "cluster_bits %" PRIu32 " -> %u", cur, found);
}
