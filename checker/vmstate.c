/*
 * vmstate.c - pass 8: each snapshot's saved VM state (doc/format.md
 * §5).  The state lives in the snapshot's own guest
 * address space from L1 index size_to_l1(disk_size) on; the snapshot's
 * l1_size must reach its end, every cluster of it must be mapped and
 * nothing should be mapped past it.  The 32-bit vm_state_size must agree
 * with vm_state_size_large (0 when the size needs more than 32 bits).
 *
 * Relies on: snapshots.c (parsed entries, vm_first_l1_index,
 * vm_clusters_expected, vm_first_hole = QC_NO_OFFSET) and tables.c, which
 * walks each usable snapshot L1 and fills vm_clusters_mapped,
 * vm_clusters_past_end, vm_first_hole and vm_first_past_end; until that
 * walk has run those fields say "no hole, nothing past the end".  vm_state
 * overlapping metadata is reported by qc_claim() during the walk.
 */
#include "check.h"
#include "../core/escape.h"

static struct qc_loc vloc(const struct qc_snapshot *s, unsigned field, int32_t idx,
			  uint64_t guest, uint64_t glen)
{
	struct qc_loc l = QC_LOC(s->entry_offset + field);
	l.snapshot = idx;
	l.guest_offset = guest;
	l.guest_length = glen;
	return l;
}

static void check_one(struct qc_image *img, struct qc_snapshot *s, int32_t idx)
{
	struct qc_problems *ps = &img->problems;
	char idb[QC_ESC_BOUND_SIZE];
	const char *id = qc_esc_bound(idb, s->id ? s->id : "?");
	unsigned shift = qc_l1_shift(img);
	uint64_t vm_start = s->vm_first_l1_index > (UINT64_MAX >> shift)
				    ? QC_NO_OFFSET
				    : s->vm_first_l1_index << shift;

	if (s->has_vm_state_size_large) {
		uint64_t want32 = s->vm_state_size_large > UINT32_MAX ? 0 : s->vm_state_size_large;
		if (s->vm_state_size32 != want32)
			qc_report(ps, QC_P_VMSTATE_SIZE_MISMATCH, vloc(s, 32, idx, QC_NO_OFFSET, 0), 1,
				  "snapshot %d (id '%s'): 32-bit vm_state_size %u, vm_state_size_large %llu (the 32-bit field is ignored)",
				  idx, id, s->vm_state_size32, (unsigned long long)s->vm_state_size_large);
	}
	if (s->vm_state_size == 0 && s->vm_clusters_past_end == 0)
		return;

	/* Entries the L1 needs: disk part plus ceil(vm_state_size / L1 span). */
	uint64_t vm_entries = (s->vm_state_size >> shift) +
			      ((s->vm_state_size & ((UINT64_C(1) << shift) - 1)) != 0);
	uint64_t need = s->vm_first_l1_index + vm_entries;
	uint64_t covered = 0; /* vm_state bytes the L1 can map */
	if (s->l1_size > s->vm_first_l1_index) {
		uint64_t n = s->l1_size - s->vm_first_l1_index;
		covered = n > (UINT64_MAX >> shift) ? UINT64_MAX : n << shift;
	}
	bool beyond = need < s->vm_first_l1_index || s->l1_size < need;
	if (beyond)
		qc_report(ps, QC_P_VMSTATE_BEYOND_L1, vloc(s, 8, idx, vm_start == QC_NO_OFFSET ? QC_NO_OFFSET : vm_start + covered,
			       s->vm_state_size - covered), 1,
			  "snapshot %d (id '%s'): vm_state of %llu bytes starts at L1 index %llu and needs %llu entries, but l1_size is %u (%llu bytes of it cannot be mapped)",
			  idx, id, (unsigned long long)s->vm_state_size,
			  (unsigned long long)s->vm_first_l1_index, (unsigned long long)need, s->l1_size,
			  (unsigned long long)(s->vm_state_size - covered));

	if (!s->l1_usable)
		return;
	/* When the size is beyond the L1, the size is the suspect: the state
	 * it would need is not there, and a hole report would only repeat it. */
	if (!beyond && s->vm_first_hole != QC_NO_OFFSET && s->vm_first_hole < covered &&
	    s->vm_first_hole < s->vm_state_size) {
		uint64_t reach = covered < s->vm_state_size ? covered : s->vm_state_size;
		uint64_t can = (reach >> img->cluster_bits) + ((reach & (img->cluster_size - 1)) != 0);
		uint64_t missing = can > s->vm_clusters_mapped ? can - s->vm_clusters_mapped : 1;
		qc_report(ps, QC_P_VMSTATE_HOLE, vloc(s, 0, idx, vm_start == QC_NO_OFFSET ? QC_NO_OFFSET : vm_start + s->vm_first_hole, 0),
			  1,
			  "snapshot %d (id '%s'): %llu of the %llu clusters of its vm_state are not mapped, the first at vm_state offset 0x%llx (guest 0x%llx); loading it would read zeros there",
			  idx, id, (unsigned long long)missing,
			  (unsigned long long)s->vm_clusters_expected,
			  (unsigned long long)s->vm_first_hole,
			  (unsigned long long)(vm_start == QC_NO_OFFSET ? 0 : vm_start + s->vm_first_hole));
	}
	if (s->vm_clusters_past_end)
		qc_report(ps, QC_P_VMSTATE_PAST_END,
			  vloc(s, 0, idx, s->vm_first_past_end, 0), 1,
			  "snapshot %d (id '%s'): %llu clusters are mapped past the end of its %llu-byte vm_state, the first at guest offset 0x%llx",
			  idx, id, (unsigned long long)s->vm_clusters_past_end,
			  (unsigned long long)s->vm_state_size,
			  (unsigned long long)s->vm_first_past_end);
}

void qc_pass_vmstate(struct qc_image *img)
{
	if (!img->geometry_ok)
		return;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		struct qc_snapshot *s = &img->snapshots[i];
		if (s->parsed)
			check_one(img, s, (int32_t)i);
	}
}
