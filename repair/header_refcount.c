/*
 * header_refcount.c - refcount_order restored from evidence (doc/repair.md
 * "Header fields").  The refcount blocks themselves carry the width: read
 * with the right order, the refcounts they store agree with the references
 * the walk counts (checker/refcounts.c marks such a block QC_RB_PROVED);
 * read with a wrong one they do not (16-bit counts of 1 read as 8-bit
 * counts alternate 0 and 1, read as 32-bit counts become 65537).  Each
 * valid order (0..6) is tried by a check of the image with that order laid
 * over the header (header_trial.c); the one restored is the only order
 * under which every usable refblock is shaped like one and no cluster's
 * stored refcount is below its references.  An invalid order (above 6) and
 * a valid one the blocks disprove (too-low or overflowing counts with
 * unproved refblocks) are both judged this way; anything else is left, and
 * the refusal names the field.
 *
 * Relies on qc_check_run through the trial (one check per order tried:
 * the cost is up to seven checks of the image's metadata).  Version 2
 * images have no such field (the order is 4).
 */
#include "header_fields.h"

#include <inttypes.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/reader.h"

#define MAX_ORDER 6

bool qc_hf_refblocks_proved(const struct qc_image *m)
{
	if (!m->reftable || !m->refblock_usable)
		return false;
	uint64_t usable = 0;
	for (uint64_t i = 0; i < m->reftable_entries; i++) {
		if (!(m->refblock_usable[i] & QC_RB_USABLE))
			continue;
		usable++;
		if (!(m->refblock_usable[i] & QC_RB_PROVED))
			return false;
	}
	return usable > 0;
}

bool qc_hf_counts_below(const struct qc_problems *ps)
{
	return ps->per_code[QC_P_REFCOUNT_TOO_LOW] || ps->per_code[QC_P_REFCOUNT_ZERO] ||
	       ps->per_code[QC_P_REFCOUNT_OVERFLOW] || ps->per_code[QC_P_REFCOUNT_NO_REFBLOCK];
}

bool qc_hf_refcount_order_suspect(const struct qc_image *img)
{
	if (img->h.version < 3 || !img->refcount_bits || !img->reftable || !img->refblock_usable ||
	    !qc_hf_counts_below(&img->problems))
		return false;
	return !qc_hf_refblocks_proved(img);
}

/* Does the image check, with refcount_order = order, with every refblock
 * proved and no count below its references? */
static bool order_agrees(const struct qc_image *m)
{
	return m->refcount_bits && qc_hf_refblocks_proved(m) && !qc_hf_counts_below(&m->problems);
}

void qc_hf_refcount_order(struct hf *h)
{
	struct qc_image *img = h->img;
	bool invalid = img->problems.per_code[QC_P_HEADER_REFCOUNT_ORDER_INVALID] != 0;
	if (img->h.version < 3 || (!invalid && !qc_hf_refcount_order_suspect(img)))
		return;
	uint32_t cur = img->h.refcount_order;
	unsigned found = 0, nfound = 0;
	for (unsigned order = 0; order <= MAX_ORDER && !h->eio; order++) {
		if (order == cur)
			continue;
		if (qc_hf_try_be32(h, QC_HDR_REFCOUNT_ORDER, order, order_agrees, &h->eio)) {
			found = order;
			nfound++;
		}
	}
	if (h->eio || nfound != 1) {
		if (invalid || h->eio)
			qc_plan_leave(h->p, invalid ? QC_P_HEADER_REFCOUNT_ORDER_INVALID
						    : QC_P_REFCOUNT_TOO_LOW,
				      QC_HDR_REFCOUNT_ORDER,
				      "header field refcount_order (%" PRIu32 "): not restored: %s", cur,
				      h->eio ? "checking a candidate failed"
				      : nfound ? "the refcount blocks agree with the walk under several orders"
					       : "the refcount blocks agree with the walk under no order");
		return;
	}
	qc_put_be32(h->hdr + QC_HDR_REFCOUNT_ORDER, found);
	qc_hf_note(h, invalid ? QC_P_HEADER_REFCOUNT_ORDER_INVALID : QC_P_REFCOUNT_TOO_LOW,
		   "refcount_order %" PRIu32 " -> %u", cur, found);
}
