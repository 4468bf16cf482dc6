/*
 * copied.c - planning OFLAG_COPIED fixes in the active L1 and L2 tables
 * (doc/copied.md).
 *
 * Target: COPIED is set exactly when the walk found one reference to the
 * L2 table or data cluster (always set with an external data file); the
 * refcount repairs store the computed counts, so after the plan the
 * stored refcount is 1 too.  Only bit 63 of an entry changes; an L2 entry
 * that is exactly COPIED with offset 0 (no data file) becomes 0, and
 * COPIED is cleared on compressed entries (the spec forbids it there); an
 * active L1 entry with flags but offset 0 becomes 0.  Entries whose
 * pointer is doubtful (reserved bits, unaligned, past EOF, pointing at a
 * cluster owned by another structure) are left to the check's report.
 * Only the active tables are visited (snapshot tables are never written).
 * Setting the flag needs a complete walk (a missed reference would let
 * QEMU overwrite a shared cluster in place); clearing it is always safe
 * (it only costs a copy-on-write).
 *
 * A cluster with one reference and a stored refcount above 1
 * (QC_CM_OVERCOUNTED, checker/refcounts.c) is a leak: the leak repair
 * lowers its refcount and this planner sets its COPIED flag in the same
 * plan, also with --leaks-only (otherwise the repair would leave
 * refcount 1 without COPIED, a corruption).  Those writes carry the code
 * refcount-leak.  The flag is set even where the refcount cannot be
 * lowered in place (a rebuild is due, or the refblock is contested):
 * with one reference it is safe, and the cluster stays a leak.  With
 * --leaks-only nothing else is edited here.
 *
 * An L2 table several L1 entries share is planned once: the shared
 * offsets are kept in a sorted array and looked up by binary search.
 */
#include "repair.h"
#include "fix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/reader.h"

struct cp {
	struct qc_image *img;
	struct qc_plan *p;
	bool complete;
	bool leaks_only;   /* only the COPIED part of leak repairs */
	bool noted_set_left;
	const char *why;
};

/* Plan one entry's bit 63.  want: should COPIED be set?  over: the
 * target has one reference and an over-counted stored refcount. */
static int fix_entry(struct cp *c, uint64_t at, uint64_t e, bool want, bool over, bool l1,
		     uint64_t goff, uint64_t glen, const char *what)
{
	bool has = (e & QC_OFLAG_COPIED) != 0;
	/* an entry a table fixer rewrites (repair/fix.h) */
	if (has == want || qc_fix_planned(c->p, at, 8))
		return 0;
	enum qc_code code = want ? (l1 ? QC_P_L1_COPIED_MISSING : QC_P_L2_COPIED_MISSING)
				 : (l1 ? QC_P_L1_COPIED_SPURIOUS : QC_P_L2_COPIED_SPURIOUS);
	if (!(e & ~QC_OFLAG_COPIED))
		code = QC_P_L2_COPIED_NO_OFFSET;
	else if (e & QC_OFLAG_COMPRESSED)
		code = QC_P_COMPRESSED_COPIED;
	else if (want && over)
		code = QC_P_REFCOUNT_LEAK; /* part of the leak repair */
	if (c->leaks_only && !(want && over))
		return 0;
	if (want && !c->complete) {
		if (!c->noted_set_left)
			qc_plan_leave(c->p, code, at,
				      "OFLAG_COPIED is not set where it is missing: the walk did not see every reference (%s)",
				      c->why);
		c->noted_set_left = true;
		return 0;
	}
	uint8_t b[8];
	qc_put_be64(b, want ? e | QC_OFLAG_COPIED : e & ~QC_OFLAG_COPIED);
	struct qc_write *w = qc_plan_add(c->p, QC_PH_INPLACE, at, b, 8, code,
					 "%s 0x%016" PRIx64 " -> 0x%016" PRIx64 " (%s OFLAG_COPIED)", what, e,
					 qc_be64_at(b), want ? "set" : "clear");
	if (!w)
		return -ENOMEM;
	w->guest_offset = goff;
	w->guest_length = glen;
	return 0;
}

/* A pointer the walk accepted: no reserved bits, aligned, inside the file
 * (the entry classifier, core/entry.h, decides the first two). */
static bool plain_pointer(const struct qc_image *img, uint64_t e, bool l1, uint64_t *off)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = l1 ? qc_l1e_classify(e, &g) : qc_l2e_classify(e, 0, &g);
	*off = ce.offset;
	if (ce.kind != QC_ENTRY_NORMAL || !*off || (ce.reasons & QC_ER_RESERVED) ||
	    !qc_entry_followable(&ce))
		return false;
	/* with an external data file the offset is in that file, not this one */
	return img->data_file || !qc_past_eof(img, *off, img->cluster_size);
}

static int plan_l2(struct cp *c, uint64_t l1i, uint64_t l2off, uint8_t *buf)
{
	struct qc_image *img = c->img;
	size_t cs = (size_t)img->cluster_size;
	/* zeros past the end of the file: a table in a last, partial cluster */
	long long got = qc_io_read(img->io, buf, cs, l2off);
	if (got < 0)
		return (int)got;
	int r = 0;
	for (uint64_t j = 0; j < img->l2_entries; j++) {
		uint64_t at = l2off + j * img->l2_entry_size;
		uint64_t e = qc_be64_at(buf + j * img->l2_entry_size);
		uint64_t goff = (l1i << qc_l1_shift(img)) + (j << img->cluster_bits);
		if (e & QC_OFLAG_COMPRESSED) {
			/* never set on compressed entries (the spec): clearing it is exact */
			if (e & QC_OFLAG_COPIED) {
				r = fix_entry(c, at, e, false, false, false, goff, img->cluster_size,
					      "compressed L2 entry");
				if (r < 0)
					return r;
			}
			continue;
		}
		uint64_t off;
		if ((e & ~QC_OFLAG_COPIED) == 0) {
			if (e && !img->data_file) {
				r = fix_entry(c, at, e, false, false, false, goff,
					      img->cluster_size, "L2 entry with offset 0");
				if (r < 0)
					return r;
			}
			continue;
		}
		if (!plain_pointer(img, e, false, &off))
			continue;
		bool want, over = false;
		if (img->data_file) {
			want = true;
		} else {
			uint64_t cl = off >> img->cluster_bits;
			enum qc_owner o = qc_cm_owner(&img->cmap, cl);
			if (o != QC_OWN_DATA && o != QC_OWN_VMSTATE)
				continue;
			want = qc_cm_count(&img->cmap, cl) == 1;
			over = qc_cm_overcounted(&img->cmap, cl);
		}
		r = fix_entry(c, at, e, want, over, false, goff, img->cluster_size, "L2 entry");
		if (r < 0)
			return r;
	}
	return 0;
}

static int off_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Active L1 entry i as a table fixer's planned 8-byte rewrite of it
 * leaves it (repair/fix.h), or as it is. */
static uint64_t planned_l1(const struct qc_image *img, const struct qc_plan *p, uint64_t i)
{
	uint64_t at = img->h.l1_table_offset + i * 8;
	for (size_t k = 0; k < p->n; k++)
		if (p->w[k].offset == at && p->w[k].len == 8)
			return qc_be64_at(p->w[k].data);
	return img->l1[i];
}

/* Active L1 entry i -> an L2 offset the planner may edit, else 0.  An
 * entry the L1 fixer rewrites (reserved bits cleared) counts as rewritten:
 * otherwise a second repair would plan the table's COPIED bits. */
static uint64_t plannable_l2(const struct qc_image *img, const struct qc_plan *p, uint64_t i)
{
	uint64_t off;
	if (!plain_pointer(img, img->l1[i], true, &off) &&
	    (!qc_fix_planned(p, img->h.l1_table_offset + i * 8, 8) ||
	     !plain_pointer(img, planned_l1(img, p, i), true, &off)))
		return 0;
	if (qc_cm_owner(&img->cmap, off >> img->cluster_bits) != QC_OWN_L2)
		return 0;
	return off;
}

int qc_plan_copied(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	struct cp c = { .img = img, .p = p, .leaks_only = o->leaks_only };
	if (!img->is_qcow2 || !img->geometry_ok || !img->l1_ok || !img->l1)
		return 0;
	c.complete = qc_walk_complete(img, &c.why);
	uint8_t *buf = malloc((size_t)img->cluster_size);
	if (!buf)
		return -ENOMEM;
	/* the L2 tables several L1 entries share, sorted; each is planned once */
	size_t nsh = 0;
	for (uint64_t i = 0; i < img->h.l1_size; i++) {
		uint64_t off = plannable_l2(img, p, i);
		nsh += off && qc_cm_count(&img->cmap, off >> img->cluster_bits) > 1;
	}
	uint64_t *sh = malloc((nsh ? nsh : 1) * sizeof(*sh));
	uint8_t *done = calloc(nsh ? nsh : 1, 1);
	int r = sh && done ? 0 : -ENOMEM;
	nsh = 0;
	for (uint64_t i = 0; r == 0 && i < img->h.l1_size; i++) {
		uint64_t off = plannable_l2(img, p, i);
		if (off && qc_cm_count(&img->cmap, off >> img->cluster_bits) > 1)
			sh[nsh++] = off;
	}
	if (r == 0)
		qsort(sh, nsh, sizeof(*sh), off_cmp);
	for (uint64_t i = 0; r == 0 && i < img->h.l1_size; i++) {
		uint64_t e = img->l1[i];
		if (e && !(e & QC_L1E_OFFSET_MASK)) {
			if (c.leaks_only)
				continue;
			/* flags but offset 0: no L2 can live at offset 0 (the header)
			 * and QEMU reads the range as unallocated; 0 is exact */
			uint8_t z[8] = { 0 };
			uint64_t span = (uint64_t)1 << qc_l1_shift(img);
			struct qc_write *w = qc_plan_add(p, QC_PH_INPLACE, img->h.l1_table_offset + i * 8,
							 z, 8, QC_P_L1_ENTRY_NO_OFFSET,
							 "L1 entry %" PRIu64 " 0x%016" PRIx64 " -> 0 (flags without an L2 offset)",
							 i, e);
			if (!w) {
				r = -ENOMEM;
				break;
			}
			w->guest_offset = i * span;
			w->guest_length = span;
			continue;
		}
		uint64_t off = plannable_l2(img, p, i);
		if (!off)
			continue;
		uint64_t cl = off >> img->cluster_bits;
		uint64_t span = (uint64_t)1 << qc_l1_shift(img);
		r = fix_entry(&c, img->h.l1_table_offset + i * 8, e, qc_cm_count(&img->cmap, cl) == 1,
			      qc_cm_overcounted(&img->cmap, cl), true, i * span, span, "L1 entry");
		if (r == 0 && qc_cm_count(&img->cmap, cl) > 1) {
			uint64_t *hit = bsearch(&off, sh, nsh, sizeof(*sh), off_cmp);
			if (!hit) {
				r = -EINVAL; /* cannot happen: both passes use plannable_l2 */
				break;
			}
			if (done[hit - sh])
				continue;
			done[hit - sh] = 1;
		}
		if (r == 0)
			r = plan_l2(&c, i, off, buf);
	}
	free(sh);
	free(done);
	free(buf);
	if (r == 0 && p->oom)
		r = -ENOMEM;
	return r;
}
