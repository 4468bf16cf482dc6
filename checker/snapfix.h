/*
 * snapfix.h - shared between the files of pass 11 (snapfix.c decides the
 * table, snapsizes.c the size fields, snapids.c IDs, names and lengths).
 * Internal to checker/.
 */
#ifndef QC_SNAPFIX_H
#define QC_SNAPFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

/* Does entry i have a problem record with code c (every record is kept:
 * snapfix.c checks the per-code caps first)? */
bool qc_sf_has(const struct qc_image *img, int32_t i, enum qc_code c);
/* Calls f on every problem record of entry i until it returns true. */
bool qc_sf_any_record(const struct qc_image *img, int32_t i,
		      bool (*f)(const struct qc_problem *, const void *), const void *ctx);
bool qc_sf_is_overlap(enum qc_code c);
/* Append to the entry's "what changes" text ("; " separated). */
void qc_sf_note(struct qc_snap_fix *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Raise the verdict (kept < fixed < recovered < dropped < left). */
void qc_sf_set_verdict(struct qc_snap_fix *f, enum qc_snap_verdict v);
/* L1 entries needed to map size bytes. */
uint64_t qc_sf_size_to_l1(const struct qc_image *img, uint64_t size);

/* snapsizes.c */
void qc_sf_decide_l1_size(struct qc_image *img, int32_t i, struct qc_snapshot *s);
void qc_sf_decide_vmstate(struct qc_image *img, int32_t i, struct qc_snapshot *s);
/* l1_size beyond the limit: fixed from disk_size and the L1's clusters,
 * or left; false when the entry has no such finding. */
bool qc_sf_decide_l1_too_large(struct qc_image *img, int32_t i, struct qc_snapshot *s);
/* disk_size QEMU cannot have written, or short of the snapshot's data. */
void qc_sf_decide_disk_size(struct qc_image *img, int32_t i, struct qc_snapshot *s);

/* snapids.c */
bool qc_sf_numeric(const char *s, uint64_t *v);
void qc_sf_relayout(struct qc_image *img, uint32_t i, struct qc_snapshot *s);
void qc_sf_assign_ids(struct qc_image *img);

#endif
