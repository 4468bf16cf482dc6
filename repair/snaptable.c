/*
 * snaptable.c - planning the one snapshot-table repair: the offset of an
 * EMPTY snapshot table (nb_snapshots 0) that QEMU refuses (unaligned, or
 * beyond 2^63 - 1; doc/snapshots.md) is set to 0, as QEMU itself writes
 * it for an image without snapshots.  An 8-byte header write through the
 * plan and its journal like every other edit.  A table with entries is
 * never edited.
 *
 * Relies on: checker/snapshots.c (which reports the same two cases).
 */
#include "repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>

#include "../checker/check.h"

/* nb_snapshots 0 and an offset QEMU's table validation refuses. */
static bool empty_offset_bad(const struct qc_image *img)
{
	uint64_t off = img->h.snapshots_offset;
	return img->is_qcow2 && img->geometry_ok && img->h.nb_snapshots == 0 &&
	       ((off & (img->cluster_size - 1)) || off > (uint64_t)INT64_MAX);
}

int qc_plan_snapshot_table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	if (o->leaks_only || !empty_offset_bad(img))
		return 0;
	uint64_t off = img->h.snapshots_offset;
	enum qc_code code = (off & (img->cluster_size - 1)) ? QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED
							     : QC_P_SNAPSHOT_TABLE_OFFSET_INVALID;
	uint8_t z[8] = { 0 };
	if (!qc_plan_add(p, QC_PH_HEADER, 64, z, 8, code,
			 "header: snapshots_offset 0x%" PRIx64 " -> 0 (the table is empty)", off))
		return -ENOMEM;
	return 0;
}
