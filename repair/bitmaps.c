/*
 * bitmaps.c - repairing a damaged persistent-bitmap extension or directory
 * (doc/repair.md "Bitmaps"): autoclear bit 0 is cleared in the header.
 * QEMU then ignores the bitmaps extension (docs/interop/qcow2.txt,
 * "autoclear features": a program that does not understand or cannot
 * trust the bitmaps clears the bit), so the bitmaps are lost and guest
 * data is not: no guest pointer is touched.  The next backup must be a
 * full one, since incremental backups start from those bitmaps.
 *
 * The bitmap clusters (directory, tables, data) are then referenced by
 * nothing: the other planners plan on a check of the image as this write
 * leaves it (repair/repair.c, repair/overlay.c), where they are ordinary
 * leaks that the refcount planner lowers, their content kept in the file
 * and copied out first by --salvage-leaks; that is also what QEMU's own
 * next write open and `qemu-img check -r leaks` would do.
 *
 * Relies on the policy table (core/problems/policy.def: the codes whose
 * fixer is BITMAPS), the overlap records' owners and checker/trust.h (a
 * refblock disproved by its content is not a rival claim).
 */
#include "repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"
#include "../checker/trust.h"

static bool bitmap_owner(enum qc_owner o)
{
	return o == QC_OWN_BITMAP_DIR || o == QC_OWN_BITMAP_TABLE || o == QC_OWN_BITMAP_DATA;
}

/* Is record r an overlap of a bitmap structure with a refblock its content
 * disproves (checker/trust.h)?  The refcount table is then the one in the
 * wrong: the rebuild of the refcount structure drops that "refblock"
 * (doc/repair.md "The refcount table"), and the bitmaps stay. */
static bool on_disproved_refblock(const struct qc_image *img, const struct qc_problem *r,
				  uint8_t **states, bool *built)
{
	if (r->owner != QC_OWN_REFBLOCK && r->other_owner != QC_OWN_REFBLOCK)
		return false;
	if (r->host_cluster == QC_NO_OFFSET || r->host_cluster >= (UINT64_MAX >> img->cluster_bits))
		return false;
	if (!*built) {
		*built = true;
		*states = qc_refblock_states(img);
	}
	return qc_refblock_disproved(img, *states, r->host_cluster << img->cluster_bits);
}

/* The first bitmap finding: a code of the BITMAPS fixer, or an overlap
 * with a bitmap structure on one side (the header -> L1 -> L2 and
 * header -> reftable chains own their clusters, doc/repair.md principle
 * 3: the bitmap pointer is the wrong one), unless the other side is a
 * refblock disproved by its content.  QC_P_COUNT when none. */
static enum qc_code bitmap_finding(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	for (int c = 0; c < QC_P_COUNT; c++)
		if (ps->per_code[c] && qc_policy((enum qc_code)c)->fixer == QC_FIX_BITMAPS)
			return (enum qc_code)c;
	uint8_t *states = NULL;
	bool built = false;
	enum qc_code found = QC_P_COUNT;
	for (size_t i = 0; i < ps->n && found == QC_P_COUNT; i++)
		if ((bitmap_owner(ps->v[i].owner) || bitmap_owner(ps->v[i].other_owner)) &&
		    qc_problem_table[ps->v[i].code].severity == QC_SEV_CORRUPTION &&
		    !on_disproved_refblock(img, &ps->v[i], &states, &built))
			found = ps->v[i].code;
	free(states);
	return found;
}

int qc_plan_bitmaps(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	if (!img->is_qcow2 || img->h.version < 3 || !img->ext.has_bitmaps ||
	    !(img->h.autoclear_features & QC_AUTOCLEAR_BITMAPS))
		return 0;
	enum qc_code code = bitmap_finding(img);
	if (code == QC_P_COUNT)
		return 0;
	if (o->leaks_only) {
		qc_plan_leave(p, code, QC_HDR_AUTOCLEAR,
			      "the damaged bitmaps are dropped (autoclear bit 0 cleared) only by a full repair, not with --leaks-only");
		return 0;
	}
	uint64_t before = img->h.autoclear_features;
	uint64_t after = before & ~QC_AUTOCLEAR_BITMAPS;
	uint8_t b[8];
	qc_put_be64(b, after);
	if (!qc_plan_add(p, QC_PH_SWITCH, QC_HDR_AUTOCLEAR, b, sizeof(b), code,
			 "header: autoclear features 0x%" PRIx64 " -> 0x%" PRIx64 ": the %" PRIu32 " persistent bitmap(s) are dropped (guest data kept); the next backup must be a full one",
			 before, after, img->ext.nb_bitmaps))
		return -ENOMEM;
	return 1;
}
