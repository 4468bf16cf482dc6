/*
 * repair.h - turning a check's model into a repair plan.
 *
 * The planners read only the model (checker/image.h: the computed
 * reference counts in img->cmap, the in-memory reftable and L1, the
 * problem list) and the image's bytes; they never write.  They fix only
 * what the model proves; everything else goes to the plan's "left" list
 * with the reason (DESIGN.md "Repair").
 */
#ifndef QC_REPAIR_H
#define QC_REPAIR_H

#include <stdbool.h>

#include "../checker/image.h"
#include "plan.h"

struct qc_repair_opts {
	bool leaks_only;   /* only lower leaked refcounts in place */
};

/* Fill p (initialised by the caller with the image's size).  Returns 0 or
 * -ENOMEM / -EIO (reading the image failed). */
int qc_repair_plan(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);

/*
 * True when the walk saw every reference: the model may then be trusted to
 * lower refcounts, rebuild them, or set OFLAG_COPIED.  When false, *why
 * names the first reason (a problem code or a trust flag).
 */
bool qc_repair_walk_complete(const struct qc_image *img, const char **why);

/* Planners (one file each); each adds writes and "left" entries. */
int qc_plan_refcounts(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
		      bool *refcounts_left);
int qc_plan_copied(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* Snapshot table rewrite (snaptable.c): 1 when it planned one (new table
 * + header switch), 0 when not, or -errno. */
int qc_plan_snapshot_table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
int qc_plan_header_bits(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
			bool refcounts_left);

/* Refcount entry access in a refblock buffer (any width 1..64 bits, as
 * QEMU stores them: sub-byte widths from the least significant bit). */
uint64_t qc_refblock_get(const uint8_t *blk, unsigned refcount_order, uint64_t idx);
void qc_refblock_set(uint8_t *blk, unsigned refcount_order, uint64_t idx, uint64_t v);

/* Copy the non-zero leaked clusters into dir (one file per cluster, named
 * by host offset) before anything is written.  Returns clusters saved or
 * -errno. */
long qc_salvage_leaks(struct qc_image *img, const struct qc_plan *p, const char *dir,
		      char *err, size_t errlen);

#endif
