/*
 * fix.h - what the table fixers (fix_l1.c, fix_l2.c) share: the evidence
 * rules of doc/repair.md "Repairing damaged pointers" (recover before
 * dropping) and the bookkeeping that lets the other planners trust the
 * model once a damaged pointer is planned away.
 *
 * A fixer that plans an entry's repair marks every problem record about
 * that entry `fixed` and brings the cluster map to the state the repaired
 * image will have (a restored pointer claims its target).  A code all of
 * whose records are fixed hides no reference any more (checker/trust.c),
 * so the refcount planner may then trust the walk.
 */
#ifndef QC_FIX_H
#define QC_FIX_H

#include <stdbool.h>
#include <stdint.h>

#include "repair.h"

/* Stored refcount of host cluster cl read from the image's refblocks;
 * false when no usable refblock covers it or the read failed. */
bool qc_fix_stored_refcount(struct qc_image *img, uint64_t cl, uint64_t *rc);

/* A cluster nothing claims (the walk counted no reference) whose stored
 * refcount is at least 1: an orphan that a damaged pointer may have named. */
bool qc_fix_unclaimed(struct qc_image *img, uint64_t off);
/* Could the cluster at off be an L2 table (free, or an L2 table already),
 * so that dropping an L1 entry naming it would be a guess? */
bool qc_fix_maybe_l2(const struct qc_image *img, uint64_t off);

/* A cluster owned by `want` whose stored refcount is above the count the
 * walk found: a reference to it is missing (a snapshot shares it and the
 * active pointer to it is the damaged one). */
bool qc_fix_missing_ref(struct qc_image *img, uint64_t off, enum qc_owner want);

/* Were all records of every code the fixer repairs kept (none dropped by
 * the per-code cap)?  A fixer works from the records, so with more damage
 * than that it repairs nothing (the entries stay left, and a second repair
 * plans nothing new). */
bool qc_fix_records_complete(const struct qc_image *img, int fixer);

/* Does a planned write touch [off, off+len)? */
bool qc_fix_planned(const struct qc_plan *p, uint64_t off, uint64_t len);

/*
 * The unique recovery of a damaged cluster offset off (aligned or not):
 * candidates are off with its alignment bits cleared, then with any one
 * set bit at or above the file's size cleared, or every such bit cleared.
 * Returns true and *out when exactly one candidate lies inside the file
 * and passes ok(ctx, candidate); false when none or several do.
 */
bool qc_fix_recover(struct qc_image *img, uint64_t off, bool (*ok)(void *, uint64_t), void *ctx,
		    uint64_t *out);

/* Mark fixed every record whose loc.offset is at and whose fixer is f. */
void qc_fix_mark(struct qc_image *img, uint64_t at, int fixer);
/* Mark fixed the refcount-leak and refcount-too-low records of the
 * cluster at off when the model's count now equals the stored one (a
 * restored pointer references it again, a dropped one no longer does),
 * and, for an active L2 table now counted once, the l1-copied-spurious
 * record of the L1 entry naming it. */
void qc_fix_mark_refcount(struct qc_image *img, uint64_t off);

/*
 * Once the fixers planned overlap records fixed: a contested cluster stops
 * being contested when every overlap record about it is fixed (the wrong
 * claims on it were all dropped), so edits inside it (a refcount in a
 * refblock that a dropped data pointer named) are planned in this repair,
 * not left for a second one.  Nothing changes while an overlap code has
 * more occurrences than records, the contested list overflowed, or a range
 * overlap (a table over another table) is not fixed.
 */
void qc_fix_settle_contested(struct qc_image *img);

/* Is there a backing file (a dropped pointer then shows it in v2)? */
static inline bool qc_fix_has_backing(const struct qc_image *img)
{
	return img->h.backing_file_offset != 0 && img->h.backing_file_size != 0;
}

/*
 * The L1 fixer decides (and marks, and updates the model) first and writes
 * last, after the L2 fixer: OFLAG_COPIED may be set only on the final trust
 * (qc_walk_complete() once every fixer marked its records).  *out is NULL
 * when there is nothing to do.
 */
struct qc_fix_l1;
int qc_fix_l1_decide(struct qc_image *img, const struct qc_repair_opts *o, struct qc_fix_l1 **out);
int qc_fix_l1_emit(struct qc_image *img, struct qc_fix_l1 *f, struct qc_plan *p);
void qc_fix_l1_free(struct qc_fix_l1 *f);
/*
 * The entries of snapshot L1 tables (fix_snapl1.c), decided by
 * qc_fix_l1_decide after the active ones and written by qc_fix_l1_emit:
 * decide marks the records and updates the model; *out is NULL when there
 * is nothing to do.
 */
struct qc_fix_snapl1;
int qc_fix_snapl1_decide(struct qc_image *img, struct qc_fix_snapl1 **out);
int qc_fix_snapl1_emit(struct qc_image *img, const struct qc_fix_snapl1 *f, struct qc_plan *p);
void qc_fix_snapl1_free(struct qc_fix_snapl1 *f);
/*
 * Two active claims on one cluster (fix_clone.c): plans a copy for every
 * claimant but the first and the pointer edits.  Returns 1 when it planned
 * something (the caller re-checks the image as the writes leave it), 0
 * when not, or -errno.
 */
int qc_plan_clone(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/*
 * Active L2 tables overwritten by other content (fix_l2table.c): every
 * entry no correction explains is dropped.  Returns 1 when it planned
 * something (the caller re-checks), 0 when not, or -errno.
 */
int qc_plan_fix_l2table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
int qc_plan_fix_l2(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);

#endif
