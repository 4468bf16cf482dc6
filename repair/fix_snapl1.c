/*
 * fix_snapl1.c - repairing damaged entries of snapshot L1 tables, by the
 * rules of doc/repair.md "Repairing damaged pointers" as its paragraph
 * "Snapshot tables' entries" applies them:
 *
 *   - reserved bits on an entry whose L2 offset is valid are cleared;
 *   - an L2 offset that is unaligned or past the end of the file is
 *     restored when exactly one correction (fix_util.c qc_fix_recover)
 *     names an L2 table whose stored refcount proves the missing reference
 *     (one the active L1 or another snapshot shares, counted once too few),
 *     or an orphan cluster (refcount 1, nothing claims it) shaped like a
 *     snapshot's L2 table: every entry decodes and each data cluster it
 *     names is an orphan or a cluster whose stored refcount is above the
 *     references the walk found (snapshot tables share their data with the
 *     active layer and with each other, and their OFLAG_COPIED bits mean
 *     nothing: QEMU copies the active L1's flags when it takes a snapshot
 *     and never reads them there);
 *   - dropped (set to 0) only when no correction can be an L2 table (every
 *     candidate past the end of the file or in a cluster another structure
 *     owns); a version 3 image with a backing file keeps the entry (0 would
 *     show the backing file in the snapshot).
 *
 * Bit 63 (OFLAG_COPIED) of an edited entry stays as it was found: never
 * set.  An entry in a contested cluster is left (its bytes belong to two
 * structures).  A restored entry's table and data clusters are claimed in
 * the model as the walk would have claimed them (vm_state clusters as
 * vm_state), so the refcount planner sees the repaired image.  The shape
 * test reads at most SHAPE_MAX candidate clusters per repair.
 *
 * Relies on the walk's records (checker/tables.c: a snapshot L1 record
 * carries its snapshot index and is located at its entry), the cluster
 * map, the entry classifier and fix_util.c.
 */
#include "fix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"
#include "../core/util.h"

#define SHAPE_MAX 64

struct sedit {
	uint64_t at, i, e, ne;
	int32_t snap;
	const char *what;
	enum qc_code code;
};

struct qc_fix_snapl1 {
	struct sedit *v;
	size_t n;
};

struct sctx {
	struct qc_image *img;
	uint8_t *buf;     /* one cluster */
	uint64_t *offs;   /* the data offsets of one candidate table */
	unsigned shapes;  /* candidate clusters read */
	bool eio;
};

/* Does the walk's model miss a reference to the guest data cluster at off
 * (an orphan, or a shared cluster counted once too few)? */
static bool data_missing(struct qc_image *img, uint64_t off)
{
	return qc_fix_unclaimed(img, off) || qc_fix_missing_ref(img, off, QC_OWN_DATA) ||
	       qc_fix_missing_ref(img, off, QC_OWN_VMSTATE);
}

/* Is the orphan cluster at off shaped like a snapshot's L2 table? */
static bool snap_l2_shaped(struct sctx *c, uint64_t off)
{
	struct qc_image *img = c->img;
	uint64_t rc;
	if (!qc_fix_unclaimed(img, off) || c->shapes >= SHAPE_MAX)
		return false;
	c->shapes++;
	if (!qc_fix_stored_refcount(img, off >> img->cluster_bits, &rc) || rc != 1)
		return false;
	if (qc_io_read_full(img->io, c->buf, img->cluster_size, off) < 0) {
		c->eio = true;
		return false;
	}
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	const unsigned es = img->l2_entry_size;
	size_t n = 0;
	for (uint64_t j = 0; j < img->l2_entries; j++) {
		uint64_t e = qc_be64_at(c->buf + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(c->buf + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		if (ce.reasons)
			return false;
		if ((ce.kind != QC_ENTRY_NORMAL && ce.kind != QC_ENTRY_COMPRESSED) || img->data_file)
			continue;
		if (ce.kind == QC_ENTRY_COMPRESSED) {
			/* inside the file, every cluster it touches an orphan or a
			 * compressed cluster that lost a reference */
			uint64_t last;
			if (qc_past_eof(img, ce.offset, ce.length) ||
			    !qc_add(ce.offset, ce.length - 1, &last))
				return false;
			for (uint64_t a = ce.offset & ~(img->cluster_size - 1); a <= last;
			     a += img->cluster_size)
				if (!qc_fix_unclaimed(img, a) &&
				    !qc_fix_missing_ref(img, a, QC_OWN_COMPRESSED))
					return false;
			continue;
		}
		if (!data_missing(img, ce.offset))
			return false;
		c->offs[n++] = ce.offset;
	}
	/* one cluster per guest cluster: two entries naming one are not a
	 * table QEMU wrote */
	qsort(c->offs, n, sizeof(*c->offs), qc_cmp_u64);
	for (size_t k = 1; k < n; k++)
		if (c->offs[k] == c->offs[k - 1])
			return false;
	return true;
}

static bool ok_l2(void *ctx, uint64_t off)
{
	struct sctx *c = ctx;
	return qc_fix_missing_ref(c->img, off, QC_OWN_L2) ||
	       qc_fix_missing_ref(c->img, off, QC_OWN_L2_INACTIVE) || snap_l2_shaped(c, off);
}

/* Claim what the walk would claim through snapshot s's restored entry i
 * naming the table at l2. */
static int claim_restored(struct sctx *c, int32_t s, uint64_t i, uint64_t l2, struct qc_loc loc)
{
	struct qc_image *img = c->img;
	const uint64_t cs = img->cluster_size;
	if (qc_io_read_full(img->io, c->buf, cs, l2) < 0)
		return -EIO;
	uint64_t tcl = l2 >> img->cluster_bits;
	/* a table the active L1 shares keeps that owner (the walk claims a
	 * shared table as the active one's) */
	enum qc_owner to = tcl < img->cmap.nclusters && qc_cm_owner(&img->cmap, tcl) == QC_OWN_L2
				   ? QC_OWN_L2
				   : QC_OWN_L2_INACTIVE;
	if (!qc_claim(img, l2, cs, to, 1, loc))
		return -ENOMEM;
	qc_fix_mark_refcount(img, l2);
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	const unsigned es = img->l2_entry_size;
	enum qc_owner own = i >= img->snapshots[s].vm_first_l1_index ? QC_OWN_VMSTATE : QC_OWN_DATA;
	for (uint64_t j = 0; j < img->l2_entries && !img->data_file; j++) {
		uint64_t e = qc_be64_at(c->buf + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(c->buf + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		uint64_t last;
		if (!qc_entry_followable(&ce) || qc_past_eof(img, ce.offset, ce.length) ||
		    !qc_add(ce.offset, ce.length - 1, &last))
			continue;
		uint64_t goff = loc.guest_offset == QC_NO_OFFSET ? QC_NO_OFFSET : loc.guest_offset + j * cs;
		struct qc_loc dl = { l2 + j * es, goff, cs, s, NULL };
		if (!qc_claim(img, ce.offset, ce.length,
			      ce.kind == QC_ENTRY_COMPRESSED ? QC_OWN_COMPRESSED : own, 1, dl))
			return -ENOMEM;
		for (uint64_t cl = ce.offset >> img->cluster_bits; cl <= last >> img->cluster_bits; cl++)
			qc_fix_mark_refcount(img, cl << img->cluster_bits);
	}
	return 0;
}

/* The VM state hole the walk found at snapshot s's entry i (it did not
 * follow the damaged pointer) is filled by the restored entry: its record
 * is planned away (checker/snapsizes.c left the VM state size alone). */
static void mark_vm_hole(struct qc_image *img, int32_t s, uint64_t i, unsigned shift)
{
	const struct qc_snapshot *sn = &img->snapshots[s];
	if (sn->vm_first_hole == QC_NO_OFFSET || shift >= 64 || i < sn->vm_first_l1_index ||
	    i - sn->vm_first_l1_index != sn->vm_first_hole >> shift)
		return;
	struct qc_problems *ps = &img->problems;
	for (size_t k = 0; k < ps->n; k++)
		if (ps->v[k].code == QC_P_VMSTATE_HOLE && ps->v[k].loc.snapshot == s)
			ps->v[k].fixed = true;
}

/*
 * Is the cluster cl of a snapshot L1 table contested only by guest data
 * pointers into it?  Those are the wrong claims (principle 3): the L2
 * fixer drops them in this same repair, after which the cluster is no
 * longer contested and the entry's edit is written (found by
 * fuzz/fuzz_repair.c: deciding such entries only in a second repair).
 * When the L2 fixer leaves one, the write is refused as contested.
 */
static bool data_claims_only(const struct qc_image *img, uint64_t cl)
{
	const struct qc_problems *ps = &img->problems;
	if (img->contested_overflow ||
	    ps->per_code[QC_P_OVERLAP_DATA_COMPRESSED] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_OVERLAP_DATA_METADATA] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_OVERLAP_METADATA] > QC_MAX_RECORDS_PER_CODE)
		return false;
	bool any = false;
	for (size_t i = 0; i < ps->n; i++) {
		const struct qc_problem *r = &ps->v[i];
		if (r->code != QC_P_OVERLAP_DATA_COMPRESSED && r->code != QC_P_OVERLAP_DATA_METADATA &&
		    r->code != QC_P_OVERLAP_METADATA)
			continue;
		if (r->host_cluster == QC_NO_OFFSET)
			return false; /* a range overlap: which clusters is not known */
		if (r->host_cluster != cl)
			continue;
		if (r->code != QC_P_OVERLAP_DATA_METADATA || r->other_owner != QC_OWN_SNAPSHOT_L1 ||
		    (r->owner != QC_OWN_DATA && r->owner != QC_OWN_VMSTATE && r->owner != QC_OWN_COMPRESSED))
			return false;
		any = true;
	}
	return any;
}

/* The state of one decision run. */
struct sdec {
	struct qc_image *img;
	struct sctx c;
	struct qc_entry_geom g;
	unsigned shift;
	struct sedit *v;
	size_t n, cap;
};

/* Is the entry at `at` decided already? */
static bool decided(const struct sdec *d, uint64_t at)
{
	for (size_t k = 0; k < d->n; k++)
		if (d->v[k].at == at)
			return true;
	return false;
}

/* Decide the snapshot L1 entry of rec: clear its reserved bits, restore
 * its offset, drop it, or leave it. */
static int decide_entry(struct sdec *d, const struct qc_problem *rec)
{
	struct qc_image *img = d->img;
	int32_t s = rec->loc.snapshot;
	if (qc_policy(rec->code)->fixer != QC_FIX_L1 || s < 0 || rec->fixed ||
	    (uint32_t)s >= img->nsnapshots || rec->loc.offset == QC_NO_OFFSET)
		return 0;
	const struct qc_snapshot *sn = &img->snapshots[s];
	uint64_t at = rec->loc.offset, l1off = sn->l1_table_offset;
	if (!sn->l1_usable || at < l1off || at - l1off >= (uint64_t)sn->l1_size * 8 ||
	    (at - l1off) % 8 || decided(d, at) || d->n >= d->cap ||
	    (qc_contested(img, at, 8) && !data_claims_only(img, at >> img->cluster_bits)))
		return 0;
	uint64_t i = (at - l1off) / 8;
	uint8_t raw[8];
	if (qc_io_read_full(img->io, raw, 8, at) < 0)
		return -EIO;
	uint64_t e = qc_be64_at(raw);
	struct qc_entry ce = qc_l1e_classify(e, &d->g);
	if (ce.kind != QC_ENTRY_NORMAL)
		return 0;
	uint64_t ne = e & ~QC_L1E_RESERVED_MASK, target = 0;
	uint64_t base = ce.offset & ~(img->cluster_size - 1) & QC_L1E_OFFSET_MASK;
	const char *what;
	bool bad = (ce.reasons & QC_ER_UNALIGNED) || qc_past_eof(img, base, img->cluster_size);
	uint64_t span = (uint64_t)1 << d->shift;
	struct qc_loc loc = { at, i * span, span, s, NULL };
	if (!bad) {
		what = "reserved bits cleared";
	} else if (qc_fix_recover(img, ce.offset, ok_l2, &d->c, &target)) {
		int r = claim_restored(&d->c, s, i, target, loc);
		if (r < 0)
			return r;
		ne = (ne & ~QC_L1E_OFFSET_MASK) | target;
		what = "restored (the corrected offset names the L2 table that lost its reference)";
		mark_vm_hole(img, s, i, d->shift);
	} else if (d->c.eio) {
		return -EIO;
	} else if (qc_fix_maybe_l2(img, base)) {
		return 0; /* the target may be this range's L2 table: left */
	} else if (img->h.version >= 3 && qc_fix_has_backing(img)) {
		return 0; /* 0 would show the backing file: left */
	} else {
		ne = 0;
		what = img->h.version < 3 && qc_fix_has_backing(img)
			       ? "dropped: no candidate can be an L2 table; the range now shows the backing file"
			       : "dropped: no candidate can be an L2 table; the range reads zeros";
	}
	qc_fix_mark(img, at, QC_FIX_L1);
	qc_fix_mark(img, at, QC_FIX_COPIED);
	d->v[d->n++] = (struct sedit){ at, i, e, ne, s, what, rec->code };
	return 0;
}

int qc_fix_snapl1_decide(struct qc_image *img, struct qc_fix_snapl1 **out)
{
	*out = NULL;
	struct qc_problems *ps = &img->problems;
	if (!img->nsnapshots || !img->snapshots)
		return 0;
	size_t cap = 0;
	for (size_t k = 0; k < ps->n; k++)
		cap += qc_policy(ps->v[k].code)->fixer == QC_FIX_L1 && ps->v[k].loc.snapshot >= 0 &&
		       !ps->v[k].fixed;
	if (!cap)
		return 0;
	struct sdec d = { .img = img, .g = qc_entry_geom_of(img), .shift = qc_l1_shift(img), .cap = cap };
	d.c = (struct sctx){ .img = img };
	d.c.buf = malloc((size_t)img->cluster_size);
	d.c.offs = malloc((size_t)img->l2_entries * sizeof(*d.c.offs));
	d.v = calloc(cap, sizeof(*d.v));
	int r = d.c.buf && d.c.offs && d.v ? 0 : -ENOMEM;
	for (size_t k = 0; k < ps->n && r == 0; k++)
		r = decide_entry(&d, &ps->v[k]);
	free(d.c.buf);
	free(d.c.offs);
	if (r == 0 && d.n && !(*out = malloc(sizeof(**out))))
		r = -ENOMEM;
	if (r < 0 || !d.n) {
		free(d.v);
		return r;
	}
	(*out)->v = d.v;
	(*out)->n = d.n;
	return 0;
}

int qc_fix_snapl1_emit(struct qc_image *img, const struct qc_fix_snapl1 *f, struct qc_plan *p)
{
	if (!f)
		return 0;
	const uint64_t span = (uint64_t)1 << qc_l1_shift(img);
	for (size_t k = 0; k < f->n; k++) {
		const struct sedit *t = &f->v[k];
		const struct qc_snapshot *sn = &img->snapshots[t->snap];
		uint8_t b[8];
		qc_put_be64(b, t->ne);
		/* the write's guest range is the snapshot's (the summary names it) */
		struct qc_write *w = qc_plan_add(p, QC_PH_INPLACE, t->at, b, 8, t->code,
						 "snapshot ID '%.8s' L1 entry %" PRIu64 " 0x%016" PRIx64 " -> 0x%016" PRIx64 ": %s",
						 sn->id ? sn->id : "?", t->i, t->e, t->ne, t->what);
		if (!w)
			return -ENOMEM;
		w->guest_offset = t->i * span;
		w->guest_length = span;
	}
	return 0;
}

void qc_fix_snapl1_free(struct qc_fix_snapl1 *f)
{
	if (f)
		free(f->v);
	free(f);
}
