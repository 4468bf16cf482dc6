/*
 * snapsizes.c - the size fields of a snapshot entry a repair rewrites
 * (part of pass 11, snapfix.c; doc/repair.md "Snapshot tables"):
 * vm_state_size from what the snapshot's L1 really maps, a VM state on
 * metadata dropped, l1_size against disk_size and the VM state (also past
 * the format's limit), and a disk_size QEMU cannot have written.
 *
 * Relies on: the walk (tables.c: l1_usable, the overlap records with
 * their guest offsets, contested clusters, the cluster map) and the
 * bounded reader; reads only the VM area's L1 entries and L2 tables and
 * the missing tail of an L1 table.
 */
#include "check.h"
#include "snapfix.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool l1_short(const struct qc_image *img, const struct qc_snap_fix *f, bool vm);

/* Is an L2 entry mapped (as tables.c counts vm_state clusters)? */
static bool l2_mapped(const struct qc_image *img, const uint8_t *p)
{
	uint64_t e = qc_be64_at(p);
	uint64_t bm = img->extended_l2 ? qc_be64_at(p + 8) : 0;
	return (e & (QC_OFLAG_COMPRESSED | QC_L2E_OFFSET_MASK)) ||
	       (!img->extended_l2 && (e & QC_OFLAG_ZERO)) || (img->extended_l2 && (bm >> 32)) ||
	       (img->data_file && (e & QC_OFLAG_COPIED));
}

/*
 * The VM state area of snapshot s as its L1 maps it: *prefix = bytes of
 * the contiguous mapped run from vm offset 0, *last = end of the last
 * mapped cluster.  Reads the L1 entries of the VM area and their L2
 * tables only.  False on a read error or bad pointer (nothing proven).
 */
static bool vm_extent(struct qc_image *img, const struct qc_snapshot *s, uint64_t *prefix,
		      uint64_t *last)
{
	*prefix = *last = 0;
	uint64_t first = qc_sf_size_to_l1(img, s->fix.disk_size);
	if (!s->l1_usable || s->fix.l1_size <= first)
		return true;
	uint64_t n = s->fix.l1_size - first;
	uint64_t cs = img->cluster_size;
	uint8_t *l1 = malloc((size_t)n * 8);
	uint8_t *l2 = malloc((size_t)cs);
	bool ok = l1 && l2 &&
		  qc_io_read(img->io, l1, (size_t)n * 8,
				  s->l1_table_offset + first * 8) >= 0;
	bool in_prefix = true;
	uint64_t span = img->l2_entries * cs;
	for (uint64_t i = 0; ok && i < n; i++) {
		uint64_t e = qc_be64_at(l1 + i * 8);
		uint64_t off = e & QC_L1E_OFFSET_MASK;
		if (!off || (off & (cs - 1)) || qc_past_eof(img, off, cs) ||
		    qc_io_read(img->io, l2, (size_t)cs, off) < 0) {
			in_prefix = false;
			continue;
		}
		for (uint64_t j = 0; j < img->l2_entries; j++) {
			bool m = l2_mapped(img, l2 + j * img->l2_entry_size);
			uint64_t end = i * span + (j + 1) * cs;
			if (m && in_prefix)
				*prefix = end;
			else if (!m)
				in_prefix = false;
			if (m)
				*last = end;
		}
	}
	free(l1);
	free(l2);
	return ok;
}

/* Does the extent the L1 maps prove a VM state of size v? */
static bool proves(const struct qc_image *img, uint64_t v, uint64_t prefix)
{
	return v && v <= prefix && v + img->cluster_size > prefix;
}

/* A VM state cluster of snapshot i that lies on another structure. */
static bool overlap_at_or_past(const struct qc_problem *p, const void *ctx)
{
	uint64_t vm_start = *(const uint64_t *)ctx;
	return qc_sf_is_overlap(p->code) && p->loc.guest_offset != QC_NO_OFFSET &&
	       p->loc.guest_offset >= vm_start;
}

static bool vm_on_metadata(const struct qc_image *img, int32_t i, const struct qc_snapshot *s)
{
	unsigned shift = qc_l1_shift(img);
	if (s->vm_first_l1_index > (UINT64_MAX >> shift))
		return false;
	uint64_t vm_start = s->vm_first_l1_index << shift;
	return qc_sf_any_record(img, i, overlap_at_or_past, &vm_start);
}

/* An unaligned or past-EOF L2 pointer at the snapshot L1 entry *ctx. */
static bool l1_pointer_at(const struct qc_problem *p, const void *ctx)
{
	return (p->code == QC_P_L1_ENTRY_UNALIGNED || p->code == QC_P_L1_L2_PAST_EOF) &&
	       p->loc.offset == *(const uint64_t *)ctx;
}

/* Is cluster-aligned off inside the file and free or an L2 table? */
static bool may_be_l2(const struct qc_image *img, uint64_t off)
{
	if (!off || qc_past_eof(img, off, img->cluster_size))
		return false;
	uint64_t cl = off >> img->cluster_bits;
	enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
	return o == QC_OWN_FREE || o == QC_OWN_L2 || o == QC_OWN_L2_INACTIVE;
}

/*
 * Could the table repair restore the damaged L1 entry e?  Only a
 * correction the repair would try (doc/repair.md "Repairing damaged
 * pointers": alignment bits cleared, then any one bit at or above the
 * file's size, or all of them) that lands on a free cluster or an L2 table
 * can; with none, the entry is dropped and the hole is real.
 */
static bool may_be_restored(const struct qc_image *img, uint64_t e)
{
	uint64_t base = e & QC_L1E_OFFSET_MASK & ~(img->cluster_size - 1);
	unsigned top = 0;
	while (top < 64 && (UINT64_C(1) << top) < img->file_size)
		top++;
	if (may_be_l2(img, base) || (top < 64 && may_be_l2(img, base & ((UINT64_C(1) << top) - 1))))
		return true;
	for (unsigned b = top; b < 56; b++)
		if ((base & (UINT64_C(1) << b)) && may_be_l2(img, base & ~(UINT64_C(1) << b)))
			return true;
	return false;
}

/*
 * Is the VM state's first hole an L1 entry whose pointer is damaged?  The
 * walk did not follow it, so the hole may be the damage, not a missing VM
 * state: when a correction of it may name an L2 table, the table repair
 * decides that pointer (doc/repair.md "Snapshot tables' entries": restored
 * onto its table when the refcounts prove it), and the size is not judged
 * from the hole.
 */
static bool hole_is_damaged_pointer(const struct qc_image *img, int32_t i,
				    const struct qc_snapshot *s)
{
	unsigned shift = qc_l1_shift(img);
	if (s->vm_first_hole == QC_NO_OFFSET || shift >= 64 ||
	    s->vm_first_l1_index >= s->l1_size ||
	    s->vm_first_hole >> shift >= s->l1_size - s->vm_first_l1_index)
		return false;
	uint64_t at = s->l1_table_offset + 8 * (s->vm_first_l1_index + (s->vm_first_hole >> shift));
	uint8_t raw[8];
	return qc_sf_any_record(img, i, l1_pointer_at, &at) &&
	       qc_io_read_full(img->io, raw, 8, at) >= 0 && may_be_restored(img, qc_be64_at(raw));
}

void qc_sf_decide_vmstate(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool on_meta = vm_on_metadata(img, i, s);
	uint64_t first = qc_sf_size_to_l1(img, f->disk_size);
	bool mismatch = qc_sf_has(img, i, QC_P_VMSTATE_SIZE_MISMATCH);
	bool bad = qc_sf_has(img, i, QC_P_VMSTATE_BEYOND_L1) || qc_sf_has(img, i, QC_P_VMSTATE_HOLE) ||
		   l1_short(img, f, true);
	if (!on_meta && !mismatch && !bad)
		return;
	if (!on_meta && !mismatch && !qc_sf_has(img, i, QC_P_VMSTATE_BEYOND_L1) &&
	    !l1_short(img, f, true) && hole_is_damaged_pointer(img, i, s))
		return;
	if (on_meta) {
		f->vm_state_size = 0;
		f->vm_dropped = s->vm_state_size != 0;
		if (f->l1_size > first)
			f->l1_size = (uint32_t)first;
		qc_sf_note(f, "VM state dropped: a cluster of it lies on another structure; l1_size %u -> %u (the disk's entries)",
		     s->l1_size, f->l1_size);
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		return;
	}
	uint64_t prefix = 0, last = 0;
	if (!vm_extent(img, s, &prefix, &last)) {
		qc_sf_set_verdict(f, QC_SNAP_LEFT);
		qc_sf_note(f, "the VM state's L1/L2 tables cannot be read: vm_state_size not changed");
		return;
	}
	uint64_t cur = f->vm_state_size, v;
	const char *how;
	if (proves(img, cur, prefix)) {
		v = cur;
		how = "the size the mapped clusters prove";
	} else if (s->has_vm_state_size_large && proves(img, s->vm_state_size_large, prefix)) {
		v = s->vm_state_size_large;
		how = "the 64-bit field, which the mapped clusters prove";
	} else if (proves(img, s->vm_state_size32, prefix)) {
		v = s->vm_state_size32;
		how = "the 32-bit field, which the mapped clusters prove";
	} else if (prefix) {
		v = prefix;
		how = "the extent its L1 maps without a hole";
	} else {
		v = 0;
		how = "nothing is mapped for it";
	}
	f->vm_state_size = v;
	uint64_t want32 = v > UINT32_MAX ? 0 : v;
	if (v == cur && s->vm_state_size32 == want32 &&
	    (!s->has_vm_state_size_large || s->vm_state_size_large == v))
		return;
	qc_sf_set_verdict(f, QC_SNAP_FIXED);
	if (v == 0 && cur) {
		f->vm_dropped = true;
		qc_sf_note(f, "VM state dropped (vm_state_size %" PRIu64 " -> 0: %s); the disk content is kept",
		     cur, how);
	} else if (v != cur) {
		qc_sf_note(f, "vm_state_size %" PRIu64 " -> %" PRIu64 " (%s)", cur, v, how);
	} else {
		qc_sf_note(f, "32-bit vm_state_size %u -> %" PRIu64 " (agrees with vm_state_size_large)",
		     s->vm_state_size32, want32);
	}
}

/*
 * Entries [from, to) read from the L1's own clusters, when they lie there
 * (the clusters of its l1_size entries, at least one, owned by nothing
 * else): *nonzero says one holds a pointer; false when they do not lie
 * there or one is not a plausible L2 pointer.
 */
static bool l1_tail(struct qc_image *img, const struct qc_snapshot *s, uint64_t from, uint64_t to,
		    bool *nonzero)
{
	uint64_t cs = img->cluster_size;
	*nonzero = false;
	if (to <= from || to > QC_MAX_L1_SIZE / 8)
		return false;
	uint64_t have = ((uint64_t)s->l1_size * 8 + cs - 1) / cs;
	if (!have)
		have = 1;
	if (!s->l1_table_offset || (s->l1_table_offset & (cs - 1)) || to * 8 > have * cs ||
	    qc_past_eof(img, s->l1_table_offset, to * 8) ||
	    qc_contested(img, s->l1_table_offset, have * cs))
		return false;
	uint64_t first = s->l1_table_offset >> img->cluster_bits;
	for (uint64_t c = first; c < first + have && c < img->cmap.nclusters; c++) {
		enum qc_owner o = qc_cm_owner(&img->cmap, c);
		if (o != QC_OWN_FREE && o != QC_OWN_SNAPSHOT_L1)
			return false;
	}
	uint64_t n = to - from;
	uint8_t *b = malloc((size_t)n * 8);
	bool ok = b && qc_io_read(img->io, b, (size_t)n * 8, s->l1_table_offset + from * 8) >= 0;
	for (uint64_t k = 0; ok && k < n; k++) {
		uint64_t e = qc_be64_at(b + k * 8), off = e & QC_L1E_OFFSET_MASK;
		if (!e)
			continue;
		*nonzero = true;
		if ((e & QC_L1E_RESERVED_MASK) || !off || (off & (cs - 1)) || qc_past_eof(img, off, cs))
			ok = false;
	}
	free(b);
	return ok;
}

/*
 * l1_size too small for disk_size (and its VM state): raise it when the
 * L1's clusters hold the missing entries and one of them is a pointer
 * (QEMU wrote them), else fix disk_size from what the L1 maps.
 */
/* Would the entry, with the values decided so far, still be found with
 * an l1_size too small for its disk, or for its VM state?  (A rewritten
 * entry must not carry a finding the next check would fix again.) */
static bool l1_short(const struct qc_image *img, const struct qc_snap_fix *f, bool vm)
{
	if (f->verdict != QC_SNAP_FIXED && f->verdict != QC_SNAP_RECOVERED)
		return false;
	uint64_t need = qc_sf_size_to_l1(img, f->disk_size);
	if (vm && f->vm_state_size)
		need += qc_sf_size_to_l1(img, f->vm_state_size);
	return need > f->l1_size || need < qc_sf_size_to_l1(img, f->disk_size);
}

void qc_sf_decide_l1_size(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool small = qc_sf_has(img, i, QC_P_SNAPSHOT_L1_TOO_SMALL) || l1_short(img, f, false);
	bool beyond = qc_sf_has(img, i, QC_P_VMSTATE_BEYOND_L1) || l1_short(img, f, true);
	if (!small && !beyond)
		return;
	unsigned shift = qc_l1_shift(img);
	uint64_t need = qc_sf_size_to_l1(img, f->disk_size);
	uint64_t need_vm = need;
	if (f->vm_state_size && (f->vm_state_size >> shift) < QC_MAX_L1_SIZE / 8)
		need_vm = need + qc_sf_size_to_l1(img, f->vm_state_size);
	bool nz = false;
	/* the disk and its VM state, when the entries prove both */
	if (need_vm > s->l1_size && l1_tail(img, s, s->l1_size, need_vm, &nz) && nz) {
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		f->l1_size = (uint32_t)need_vm;
		qc_sf_note(f, "l1_size %u -> %" PRIu64 " (its L1 cluster holds the missing entries)", s->l1_size,
		     need_vm);
		return;
	}
	if (!small)
		return; /* the VM state's size is the suspect: decide_vmstate */
	uint64_t hs_need = qc_sf_size_to_l1(img, img->h.size);
	bool tail = l1_tail(img, s, s->l1_size, need, &nz);
	qc_sf_set_verdict(f, QC_SNAP_FIXED);
	if (tail && nz) {
		f->l1_size = (uint32_t)need;
		qc_sf_note(f, "l1_size %u -> %" PRIu64 " (its L1 cluster holds the missing entries)", s->l1_size, need);
	} else if (hs_need <= s->l1_size && s->has_disk_size && f->disk_size != img->h.size) {
		qc_sf_note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (the image's size, which its %u L1 entries map)",
		     f->disk_size, img->h.size, s->l1_size);
		f->disk_size = img->h.size;
	} else if (tail) {
		f->l1_size = (uint32_t)need;
		qc_sf_note(f, "l1_size %u -> %" PRIu64 " (the added entries are zero: nothing a guest reads changes)",
		     s->l1_size, need);
	} else {
		uint64_t d = (uint64_t)s->l1_size << shift;
		qc_sf_note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (what its %u L1 entries map)", f->disk_size, d,
		     s->l1_size);
		f->disk_size = d;
	}
}

/*
 * l1_size beyond the format's limit (4 Mi entries), or running the table
 * past the end of the file while the table of the needed entries lies
 * inside it: one damaged field, so
 * the pointer and disk_size (and the VM state size) still say what the L1
 * table holds: the disk's entries, size_to_l1(disk_size), then the VM
 * state's.  Taken when the table's pointer is sound (aligned, inside the
 * file, its clusters owned by nothing else), every entry of those
 * clusters up to that count is zero or a plausible L2 pointer, and every
 * entry after it in the same clusters is zero (QEMU writes an L1 table in
 * whole clusters of its own, so nothing else can be there).  Else left:
 * neither the size nor the table can be trusted.  True when decided
 * (fixed or left).
 */
bool qc_sf_decide_l1_too_large(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool limit = qc_sf_has(img, i, QC_P_SNAPSHOT_L1_TOO_LARGE);
	if (!limit && !qc_sf_has(img, i, QC_P_SNAPSHOT_L1_PAST_EOF))
		return false;
	uint64_t cs = img->cluster_size;
	unsigned shift = qc_l1_shift(img);
	uint64_t need = qc_sf_size_to_l1(img, f->disk_size);
	if (f->vm_state_size && (f->vm_state_size >> shift) < QC_MAX_L1_SIZE / 8)
		need += qc_sf_size_to_l1(img, f->vm_state_size);
	uint64_t ncl = (need * 8 + cs - 1) / cs, off = s->l1_table_offset;
	/* past the end of the file: the size is the damaged field only when
	 * the table of the needed entries lies inside the file (else the
	 * pointer is in doubt: decide_l1 looks for the table elsewhere) */
	if (!limit && (!need || need >= s->l1_size || need * 8 > QC_MAX_L1_SIZE || !off ||
		       (off & (cs - 1)) || qc_past_eof(img, off, ncl * cs) ||
		       qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
		       qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID)))
		return false;
	const char *what = limit ? "is beyond the format's limit" : "runs the table past the end of the file";
	const char *why = NULL;
	if (!need || need * 8 > QC_MAX_L1_SIZE)
		why = "disk_size and the VM state size give no L1 size within the limit";
	else if (qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
		 qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) || !off || (off & (cs - 1)) ||
		 qc_past_eof(img, off, ncl * cs) || qc_contested(img, off, ncl * cs))
		why = "its L1 pointer is in doubt too";
	for (uint64_t c = off >> img->cluster_bits; !why && c < (off >> img->cluster_bits) + ncl; c++)
		if (c >= img->cmap.nclusters || qc_cm_owner(&img->cmap, c) != QC_OWN_FREE)
			why = "its L1 table's clusters belong to another structure";
	uint8_t *b = why ? NULL : malloc((size_t)(ncl * cs));
	if (!why && (!b || qc_io_read(img->io, b, (size_t)(ncl * cs), off) < 0))
		why = "its L1 table cannot be read";
	for (uint64_t k = 0; !why && k < ncl * cs / 8; k++) {
		uint64_t e = qc_be64_at(b + k * 8), l2 = e & QC_L1E_OFFSET_MASK;
		if (!e)
			continue;
		if (k >= need)
			why = "its L1 clusters hold entries past the disk's and the VM state's";
		else if ((e & QC_L1E_RESERVED_MASK) || !l2 || (l2 & (cs - 1)) || qc_past_eof(img, l2, cs))
			why = "an entry of its L1 table is not an L2 pointer";
	}
	free(b);
	if (why) {
		f->verdict = QC_SNAP_LEFT;
		qc_sf_note(f, "l1_size %u %s and %s: neither it nor the table can be trusted",
			   s->l1_size, what, why);
		return true;
	}
	f->l1_size = (uint32_t)need;
	qc_sf_set_verdict(f, QC_SNAP_FIXED);
	qc_sf_note(f, "l1_size %u -> %" PRIu64 " (it %s; %" PRIu64 " is what disk_size%s needs; its L1 cluster%s hold%s those entries and zeros after them)",
		   s->l1_size, need, what, need, f->vm_state_size ? " and the VM state" : "",
		   ncl > 1 ? "s" : "", ncl > 1 ? "" : "s");
	return true;
}

/*
 * disk_size that QEMU cannot have written, or that leaves the snapshot's
 * data outside its disk (QEMU 7.2 then reads the snapshot as that many
 * bytes, and `qemu-img snapshot -a` resizes the active disk to it, or
 * fails on a size not a multiple of 512).  One damaged field: set to the
 * image's size when
 *  - disk_size is not a multiple of 512 and is the image's size but for
 *    its low 9 bits, or
 *  - the snapshot has no VM state, clusters are mapped past the end of
 *    that (empty) state from a guest offset below the image's size, every
 *    mapped cluster lies below the image's size, and its L1 reaches it.
 * A disk_size within the same L1 reach as the truth, or a snapshot taken
 * before a resize, leaves no such trace: nothing is changed then.
 */
void qc_sf_decide_disk_size(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	uint64_t hs = img->h.size, was = f->disk_size;
	if (!s->has_disk_size || (hs & 511) || !hs || was == hs)
		return;
	if (qc_sf_has(img, i, QC_P_SNAPSHOT_DISK_SIZE_UNALIGNED)) {
		if ((was & ~UINT64_C(511)) != hs)
			return;
		f->disk_size = hs;
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		qc_sf_note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (not a multiple of 512, which QEMU never writes; the image's size but for the low bits)",
			   was, hs);
		return;
	}
	if (!qc_sf_has(img, i, QC_P_VMSTATE_PAST_END) || f->vm_state_size || was > hs ||
	    s->vm_first_past_end >= hs || qc_sf_size_to_l1(img, hs) > f->l1_size)
		return;
	uint64_t prefix = 0, last = 0;
	unsigned shift = qc_l1_shift(img);
	uint64_t first = qc_sf_size_to_l1(img, was);
	if (!vm_extent(img, s, &prefix, &last) || first > (hs >> shift) || (first << shift) + last > hs)
		return;
	f->disk_size = hs;
	qc_sf_set_verdict(f, QC_SNAP_FIXED);
	qc_sf_note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (the image's size: the snapshot, which has no VM state, maps clusters past %" PRIu64 " up to 0x%" PRIx64 ", all below it)",
		   was, hs, was, (first << shift) + last);
}
