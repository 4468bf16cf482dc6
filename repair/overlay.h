/*
 * overlay.h - a read-only view of an image as it will be once some
 * planned writes are applied, without writing anything: reads come from
 * the image with the writes laid over them.  The repair planner checks
 * this view again after planning a snapshot-table rewrite, so the other
 * planners see the image the rewrite leaves (doc/repair.md).
 */
#ifndef QC_OVERLAY_H
#define QC_OVERLAY_H

#include "../core/io.h"
#include "plan.h"

/* A view of base with writes [0, n) of plan p (phases before FINAL) laid
 * over it.  The writes' data must outlive the view; base stays owned by
 * the caller.  NULL on OOM. */
struct qc_io *qc_io_overlay(struct qc_io *base, const struct qc_plan *p, size_t n);

#endif
