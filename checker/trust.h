/*
 * trust.h - what the finished check lets later steps trust: whether the
 * walk saw every reference (so the computed counts are the truth and a
 * repair may lower refcounts, rebuild them or set OFLAG_COPIED), and the
 * conditions under which a finding hides no reference.
 *
 * A checker fact, read by the report (walk-complete) and the planners.
 * Relies on the trust flags of the model (image.h) and the HIDES column of
 * the policy table (core/problems/policy.def).
 */
#ifndef QC_TRUST_H
#define QC_TRUST_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

/*
 * True when the walk saw every reference.  When false, *why (may be NULL)
 * names the first reason: a trust flag in words, or a problem code.
 */
bool qc_walk_complete(const struct qc_image *img, const char **why);

/* Does code c, as reported in img, hide references (policy HIDES column,
 * with its condition evaluated on the records)?  False when not reported. */
bool qc_code_hides_refs(const struct qc_image *img, enum qc_code c);

/* Every record of code c is marked fixed by a repair planner (and none was
 * dropped by the per-code cap): the code then hides nothing. */
bool qc_code_all_fixed(const struct qc_image *img, enum qc_code c);

/* Are all l1-entry-reserved records on active L1 entries that also have no
 * L2 offset (l1-entry-no-offset at the same offset)?  False when records
 * were dropped by the per-code cap. */
bool qc_reserved_only_on_dropped(const struct qc_image *img);

/*
 * Refblocks in contested clusters, for qc_refblock_disproved(): per entry
 * of img->contested, whether a usable reftable entry names it as its
 * refblock and whether one of those refblocks is shaped like one
 * (QC_RB_PROVED).  One pass over the reftable; at most QC_MAX_CONTESTED
 * bytes, malloc'd (free()).  NULL when nothing is contested, the contested
 * list overflowed, or memory ran out: then nothing counts as disproved.
 */
uint8_t *qc_refblock_states(const struct qc_image *img);

/*
 * Is the contested cluster at host offset off named by at least one usable
 * reftable entry as its refblock, and is every such refblock disproved by
 * its content (its stored counts disagree with most of what the walk
 * references in its range)?  Then an overlap of that "refblock" with
 * another structure is the refcount table's error.  O(log n).
 */
bool qc_refblock_disproved(const struct qc_image *img, const uint8_t *states, uint64_t off);

/*
 * Does the model's record of the refcount structure's own claims
 * (img->self_claims) account for every reference qc_claim() added for the
 * reftable and refblock owners (img->claimed_refs)?  The rebuild subtracts
 * the record; when this is false it must not rebuild.
 */
bool qc_self_claims_consistent(const struct qc_image *img);

#endif
