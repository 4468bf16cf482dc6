/*
 * repair.h - turning a check's model into a repair plan.
 *
 * The planners read only the model (checker/image.h: the computed
 * reference counts in img->cmap, the in-memory reftable and L1, the
 * problem list) and the image's bytes; they never write.  They fix only
 * what the model proves; everything else goes to the plan's "left" list
 * with the reason (doc/contracts.md §6).
 */
#ifndef QC_REPAIR_H
#define QC_REPAIR_H

#include <stdbool.h>

#include "../checker/image.h"
#include "../checker/trust.h" /* qc_walk_complete(): may the model be trusted to free? */
#include "plan.h"

struct qc_repair_opts {
	bool leaks_only;   /* only lower leaked refcounts in place */
};

/* Fill p (initialised by the caller with the image's size).  Returns 0 or
 * -ENOMEM / -EIO (reading the image failed). */
int qc_repair_plan(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);


/* Planners (one file each); each adds writes and "left" entries. */
int qc_plan_refcounts(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
		      bool *refcounts_left);
int qc_plan_copied(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* Snapshot table (snaptable.c): a rewrite of a damaged table (new table +
 * header switch; 1 when it planned one), or, for an empty table, the
 * offset QEMU refuses set to 0 (0); 0 when nothing, or -errno. */
int qc_plan_snapshot_table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* Bitmaps (bitmaps.c): a damaged bitmap extension or directory: autoclear
 * bit 0 cleared (1 when planned), 0 when nothing, or -errno. */
int qc_plan_bitmaps(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* Header fields (header_fields.c): l1_size, l1_table_offset, refcount_order,
 * header_length restored from evidence in one header write (1 when planned), 0, or
 * -errno; a field it cannot restore is left, named. */
int qc_plan_header_fields(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* Header fields the image's other fields or bytes settle (autoclear bits,
 * crypt_method, the backing file name's offset and size, compression_type):
 * repair/header_flags.c.  1 when a write was planned, 0, or -errno. */
int qc_plan_header_flags(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p);
/* After a re-link planned on img0 (only its header switch in p): when the
 * model of the re-linked image (after) wants the found table's entries
 * fixed, the re-link becomes one rewrite of that table past EOF with the
 * entries fixed and one header switch (1); 0 when the re-link stands. */
int qc_plan_snapshot_relinked(struct qc_image *after, const struct qc_image *img0, struct qc_plan *p);
int qc_plan_header_bits(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
			bool refcounts_left);


/* Copy the non-zero leaked clusters into dir (one file per cluster, named
 * by host offset) before anything is written.  Returns clusters saved or
 * -errno. */
long qc_salvage_leaks(struct qc_image *img, const struct qc_plan *p, const char *dir,
		      char *err, size_t errlen);

#endif
