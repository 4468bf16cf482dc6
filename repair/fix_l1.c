/*
 * fix_l1.c - repairing damaged entries of the active L1 table, by the
 * rules of doc/repair.md "Repairing damaged pointers".  Dropping an L1
 * entry loses a whole L2 range, so:
 *
 *   - reserved bits on an entry whose L2 offset is valid are cleared;
 *   - an L2 offset that is unaligned or past the end of the file is
 *     restored when exactly one correction (alignment bits, or bits at or
 *     above the file's size, cleared) names either an orphan cluster shaped
 *     like an active L2 table (every entry decodes; a data cluster with
 *     OFLAG_COPIED is an orphan with refcount 1, one without it is shared
 *     and its stored refcount counts this reference too; compressed data
 *     lies inside the file on such clusters), or an L2 table the
 *     snapshots share whose stored refcount proves the missing reference;
 *   - an entry naming a metadata cluster (the walk followed it: the
 *     overlap record of its L2 claim says so) whose content cannot be an
 *     L2 table (an entry breaks a rule, or names a cluster outside the file
 *     or on metadata) is dropped, and everything the walk claimed through
 *     it is taken back out of the model;
 *   - it is dropped (set to 0) only when no correction can be an L2 table:
 *     every candidate lies past the end of the file or in a cluster another
 *     structure owns (not an L2 table, not an orphan).  A version 3 image
 *     with a backing file keeps the entry (0 would expose the backing file;
 *     a zero L2 table is not written by this version).
 *
 * A restored entry's L2 table and data clusters are claimed in the model
 * as the walk would claim them, so the refcount planner sees the repaired
 * image.  The shape test reads at most SHAPE_MAX candidate clusters per
 * repair.  Relies on fix_util.c, the entry classifier and the model.
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

#define SHAPE_MAX 64

struct l1ctx {
	struct qc_image *img;
	uint8_t *buf;         /* one cluster */
	unsigned shapes;      /* candidate clusters read */
	bool eio;
};

/* Does the target of L2 entry j (normal or compressed) fit what the caller
 * asks of it?  arg is the caller's flag. */
typedef bool l2_target_fn(struct l1ctx *c, const struct qc_entry *ce, uint64_t j, bool arg);

/*
 * Read the cluster at off into c->buf and decode it as L2 entries: false
 * when an entry breaks a rule outside `allowed` (QC_ER_* bits) or when
 * `fits` rejects the target of a normal or compressed entry (not asked
 * with an external data file: the targets do not lie in this file).  A
 * read error sets c->eio and returns eio_result.
 */
static bool l2_entries_pass(struct l1ctx *c, uint64_t off, unsigned allowed, bool eio_result,
			    l2_target_fn *fits, bool arg)
{
	struct qc_image *img = c->img;
	if (qc_io_read_full(img->io, c->buf, img->cluster_size, off) < 0) {
		c->eio = true;
		return eio_result;
	}
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	const unsigned es = img->l2_entry_size;
	for (uint64_t j = 0; j < img->l2_entries; j++) {
		uint64_t e = qc_be64_at(c->buf + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(c->buf + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		if (ce.reasons & ~allowed)
			return false;
		if ((ce.kind != QC_ENTRY_NORMAL && ce.kind != QC_ENTRY_COMPRESSED) || img->data_file)
			continue;
		if (!fits(c, &ce, j, arg))
			return false;
	}
	return true;
}

/* A target as QEMU leaves it in an active table (l2_shaped). */
static bool shaped_target(struct l1ctx *c, const struct qc_entry *ce, uint64_t j, bool arg)
{
	struct qc_image *img = c->img;
	const unsigned es = img->l2_entry_size;
	uint64_t rc;
	(void)arg;
	if (ce->kind == QC_ENTRY_COMPRESSED) {
		/* inside the file, every cluster it touches an orphan or a
		 * compressed cluster that lost a reference */
		uint64_t last;
		if (qc_past_eof(img, ce->offset, ce->length) || !qc_add(ce->offset, ce->length - 1, &last))
			return false;
		for (uint64_t a = ce->offset & ~(img->cluster_size - 1); a <= last; a += img->cluster_size)
			if (!qc_fix_unclaimed(img, a) && !qc_fix_missing_ref(img, a, QC_OWN_COMPRESSED))
				return false;
		return true;
	}
	/* as QEMU leaves an active table: COPIED on an orphan with
	 * refcount 1, or no COPIED on a cluster a snapshot shares
	 * whose stored refcount counts this reference too */
	if (ce->copied ? !qc_fix_unclaimed(img, ce->offset) ||
				 !qc_fix_stored_refcount(img, ce->offset >> img->cluster_bits, &rc) ||
				 rc != 1
		       : !qc_fix_missing_ref(img, ce->offset, QC_OWN_DATA))
		return false;
	for (uint64_t k = 0; k < j; k++)
		if ((qc_be64_at(c->buf + k * es) & (QC_OFLAG_COMPRESSED | QC_L2E_OFFSET_MASK)) == ce->offset)
			return false;
	return true;
}

/* Is the orphan cluster at off shaped like an active L2 table QEMU wrote? */
static bool l2_shaped(struct l1ctx *c, uint64_t off)
{
	struct qc_image *img = c->img;
	if (!qc_fix_unclaimed(img, off) || c->shapes >= SHAPE_MAX)
		return false;
	c->shapes++;
	uint64_t rc;
	if (!qc_fix_stored_refcount(img, off >> img->cluster_bits, &rc) || rc != 1)
		return false;
	return l2_entries_pass(c, off, 0, false, shaped_target, false);
}

static bool ok_l2(void *ctx, uint64_t off)
{
	struct l1ctx *c = ctx;
	return qc_fix_missing_ref(c->img, off, QC_OWN_L2) ||
	       qc_fix_missing_ref(c->img, off, QC_OWN_L2_INACTIVE) || l2_shaped(c, off);
}

/*
 * An overlap record of the active L1 entry's L2 claim on a metadata cluster
 * (the header, an L1 table, the refcount table or a refblock, the snapshot
 * table, a bitmap structure): the header -> L1 -> L2 chain does not own
 * that cluster, so the entry is the wrong pointer.  Only when that cluster
 * is named by this one L1 entry (its count is the owner's plus one).
 */
static bool on_metadata_record(struct qc_image *img, const struct qc_problem *rec, uint64_t l1off,
			       uint64_t l1len)
{
	if (rec->code != QC_P_OVERLAP_METADATA || rec->owner != QC_OWN_L2 || rec->fixed ||
	    rec->loc.snapshot >= 0 || rec->loc.offset < l1off || rec->loc.offset - l1off >= l1len ||
	    (rec->loc.offset - l1off) % 8)
		return false;
	enum qc_owner o = rec->other_owner;
	if (o == QC_OWN_FREE || o == QC_OWN_L2 || o == QC_OWN_L2_INACTIVE || o == QC_OWN_DATA ||
	    o == QC_OWN_COMPRESSED || o == QC_OWN_VMSTATE)
		return false;
	uint64_t i = (rec->loc.offset - l1off) / 8, off = img->l1[i] & QC_L1E_OFFSET_MASK;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = qc_l1e_classify(img->l1[i], &g);
	if (ce.kind != QC_ENTRY_NORMAL || (ce.reasons & ~QC_ER_RESERVED) ||
	    qc_past_eof(img, off, img->cluster_size) || qc_cm_owner(&img->cmap, off >> img->cluster_bits) != o)
		return false;
	unsigned n = 0;
	for (uint64_t k = 0; k < img->h.l1_size; k++)
		n += (img->l1[k] & QC_L1E_OFFSET_MASK) == off;
	if (n != 1)
		return false;
	/* and no snapshot L1 names it: their overlap records carry a snapshot */
	for (size_t k = 0; k < img->problems.n; k++) {
		const struct qc_problem *q = &img->problems.v[k];
		if (q->code == QC_P_OVERLAP_METADATA && q->owner == QC_OWN_L2_INACTIVE && q->other_owner == o)
			return false;
	}
	return true;
}

/* A target inside the file, and with owners set on no metadata cluster
 * (l2_plausible). */
static bool plausible_target(struct l1ctx *c, const struct qc_entry *ce, uint64_t j, bool owners)
{
	struct qc_image *img = c->img;
	uint64_t last;
	(void)j;
	if (qc_past_eof(img, ce->offset, ce->length) || !qc_add(ce->offset, ce->length - 1, &last))
		return false;
	for (uint64_t cl = ce->offset >> img->cluster_bits; owners && cl <= last >> img->cluster_bits;
	     cl++) {
		enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
		if (o != QC_OWN_FREE && o != QC_OWN_DATA && o != QC_OWN_COMPRESSED && o != QC_OWN_VMSTATE)
			return false;
	}
	return true;
}

/*
 * Could the metadata cluster at off be an L2 table after all (every entry
 * decodes, every target lies inside the file, and with owners set on no
 * metadata cluster)?  Then the other structure's pointer may be the wrong
 * one: not dropped.  The owners of the targets are trusted only when the
 * other structure belongs to an authoritative chain (header, active L1,
 * refcount table, refblock): a snapshot L1 pointer into the active L2
 * table makes the walk claim that table's data clusters as L2 tables.
 */
static bool l2_plausible(struct l1ctx *c, uint64_t off, bool owners)
{
	return l2_entries_pass(c, off, QC_ER_COPIED_NO_OFFSET | QC_ER_COMPRESSED_COPIED, true,
			       plausible_target, owners);
}

/* Codes about one L2 entry that no table fixer repairs: inside a cluster
 * that is not an L2 table they describe bytes the repaired image no longer
 * reads as entries (found by fuzz/fuzz_repair.c: a refblock named by an L1
 * entry, whose counts read as extended entries with allocation bits). */
static bool entry_code(enum qc_code c)
{
	switch (c) {
	case QC_P_OVERLAP_DATA_COMPRESSED:
	case QC_P_L2_SUBCLUSTER_ALLOC_AND_ZERO:
	case QC_P_L2_SUBCLUSTER_ALLOC_UNALLOCATED:
	case QC_P_L2_ZERO_FLAG_V2:
	case QC_P_L2_EXTL2_BIT0:
	case QC_P_COMPRESSED_WITH_DATA_FILE:
	case QC_P_L2_DATA_FILE_OFFSET_MISMATCH:
	case QC_P_COMPRESSED_STREAM_INEXACT:
	case QC_P_COMPRESSED_STREAM_INVALID:
	case QC_P_COMPRESSED_STREAM_SIZE:
	case QC_P_COMPRESSED_STREAM_TRUNCATED:
	case QC_P_COMPRESSED_STREAM_WINDOW:
		return true;
	default:
		return false;
	}
}

/*
 * Take back what the walk claimed through an L1 entry naming metadata at
 * off: the L2 claim on it and every claim its "entries" made, and mark the
 * records located inside it (they describe bytes that are not an L2 table).
 */
static int unwalk(struct l1ctx *c, uint64_t off)
{
	struct qc_image *img = c->img;
	if (qc_io_read_full(img->io, c->buf, img->cluster_size, off) < 0)
		return -EIO;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	const unsigned es = img->l2_entry_size;
	for (uint64_t j = 0; j < img->l2_entries && !img->data_file; j++) {
		uint64_t e = qc_be64_at(c->buf + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(c->buf + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		uint64_t last;
		if (!qc_entry_followable(&ce) || qc_past_eof(img, ce.offset, ce.length) ||
		    !qc_add(ce.offset, ce.length - 1, &last))
			continue;
		for (uint64_t cl = ce.offset >> img->cluster_bits; cl <= last >> img->cluster_bits; cl++) {
			qc_cm_sub(&img->cmap, cl, 1);
			qc_fix_mark_refcount(img, cl << img->cluster_bits);
		}
	}
	qc_cm_sub(&img->cmap, off >> img->cluster_bits, 1);
	qc_fix_mark_refcount(img, off);
	struct qc_problems *ps = &img->problems;
	for (size_t k = 0; k < ps->n; k++) {
		enum qc_fixer f = qc_policy(ps->v[k].code)->fixer;
		if (ps->v[k].loc.offset >= off && ps->v[k].loc.offset - off < img->cluster_size &&
		    ps->v[k].loc.offset != QC_NO_OFFSET &&
		    (f == QC_FIX_L2 || f == QC_FIX_COPIED || entry_code(ps->v[k].code)))
			ps->v[k].fixed = true;
	}
	return 0;
}

/* Claim what the walk would claim through a restored entry i naming l2. */
static int claim_restored(struct l1ctx *c, uint64_t i, uint64_t l2, struct qc_loc loc)
{
	struct qc_image *img = c->img;
	if (qc_io_read_full(img->io, c->buf, img->cluster_size, l2) < 0)
		return -EIO;
	if (!qc_claim(img, l2, img->cluster_size, QC_OWN_L2, 1, loc))
		return -ENOMEM;
	qc_fix_mark_refcount(img, l2);
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	const unsigned es = img->l2_entry_size;
	enum qc_owner own = i >= img->l1_vm_state_index ? QC_OWN_VMSTATE : QC_OWN_DATA;
	for (uint64_t j = 0; j < img->l2_entries && !img->data_file; j++) {
		uint64_t e = qc_be64_at(c->buf + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(c->buf + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		if (!qc_entry_followable(&ce) || qc_past_eof(img, ce.offset, ce.length))
			continue;
		struct qc_loc dl = { l2 + j * es, loc.guest_offset, img->cluster_size, -1, NULL };
		if (!qc_claim(img, ce.offset, ce.length,
			      ce.kind == QC_ENTRY_COMPRESSED ? QC_OWN_COMPRESSED : own, 1, dl))
			return -ENOMEM;
		qc_fix_mark_refcount(img, ce.offset);
	}
	return 0;
}

struct plan1 { uint64_t i, e, ne; const char *what; enum qc_code code; };

struct qc_fix_l1 {
	struct plan1 *todo;
	size_t nt;
	struct qc_fix_snapl1 *snap; /* snapshot L1 entries (fix_snapl1.c) */
};

/* The state of one qc_fix_l1_decide run. */
struct l1dec {
	struct qc_image *img;
	struct qc_problems *ps;
	uint64_t l1off, l1len, span;
	bool l1_contested;
	struct qc_entry_geom g;
	struct l1ctx c;
	struct plan1 *todo;
	size_t nt;
};

/* Is rec located at an L1 entry that already has a decision? */
static bool entry_decided(const struct l1dec *d, const struct qc_problem *rec)
{
	if (rec->loc.offset < d->l1off || rec->loc.offset - d->l1off >= d->l1len)
		return false;
	bool seen = false;
	for (size_t q = 0; q < d->nt && !seen; q++)
		seen = d->todo[q].i == (rec->loc.offset - d->l1off) / 8;
	return seen;
}

/* Pass 0: drop the entry of record k (one naming metadata) unless its
 * cluster may be an L2 table after all or 0 would show the backing file. */
static int decide_on_metadata(struct l1dec *d, size_t k)
{
	struct qc_image *img = d->img;
	const struct qc_problem *rec = &d->ps->v[k];
	uint64_t i = (rec->loc.offset - d->l1off) / 8;
	uint64_t t = img->l1[i] & QC_L1E_OFFSET_MASK;
	if (d->l1_contested && (t + img->cluster_size <= d->l1off || t >= d->l1off + d->l1len))
		return 0;
	enum qc_owner oo = rec->other_owner;
	if (l2_plausible(&d->c, t, oo == QC_OWN_HEADER || oo == QC_OWN_L1 ||
				   oo == QC_OWN_REFTABLE || oo == QC_OWN_REFBLOCK))
		return d->c.eio ? -EIO : 0; /* it may be the L2 table: left */
	int r = unwalk(&d->c, img->l1[i] & QC_L1E_OFFSET_MASK);
	if (r < 0)
		return r;
	if (img->h.version >= 3 && qc_fix_has_backing(img))
		return 0; /* 0 would show the backing file: left */
	d->ps->v[k].fixed = true;
	/* the entry is rewritten whole, OFLAG_COPIED and its
	 * reserved bits included */
	qc_fix_mark(img, rec->loc.offset, QC_FIX_COPIED);
	qc_fix_mark(img, rec->loc.offset, QC_FIX_L1);
	d->todo[d->nt++] = (struct plan1){ i, img->l1[i], 0,
		img->h.version < 3 && qc_fix_has_backing(img)
			? "dropped: it names metadata, not an L2 table; the range now shows the backing file"
			: "dropped: it names metadata, not an L2 table; the range reads zeros",
		rec->code };
	return 0;
}

/* An entry with no offset: the COPIED planner zeroes it (its reserved
 * bits with it); nothing to follow, so nothing hidden. */
static void mark_no_offset_reserved(struct l1dec *d, const struct qc_problem *rec)
{
	for (size_t q = 0; q < d->ps->n; q++)
		if (d->ps->v[q].code == QC_P_L1_ENTRY_RESERVED &&
		    d->ps->v[q].loc.offset == rec->loc.offset)
			d->ps->v[q].fixed = true;
}

/* Pass 1: decide the L1 entry of rec (an L1 fixer's record): clear its
 * reserved bits, restore its offset, drop it, or leave it. */
static int decide_entry(struct l1dec *d, const struct qc_problem *rec)
{
	struct qc_image *img = d->img;
	if (d->l1_contested || qc_policy(rec->code)->fixer != QC_FIX_L1 || rec->loc.snapshot >= 0 ||
	    rec->fixed || rec->loc.offset < d->l1off || rec->loc.offset - d->l1off >= d->l1len ||
	    (rec->loc.offset - d->l1off) % 8)
		return 0;
	uint64_t i = (rec->loc.offset - d->l1off) / 8;
	uint64_t e = img->l1[i];
	struct qc_entry ce = qc_l1e_classify(e, &d->g);
	if (ce.kind != QC_ENTRY_NORMAL) {
		if (ce.reasons & QC_ER_NO_OFFSET)
			mark_no_offset_reserved(d, rec);
		return 0;
	}
	uint64_t ne = e & ~QC_L1E_RESERVED_MASK, target = 0;
	const char *what;
	bool bad = (ce.reasons & QC_ER_UNALIGNED) ||
		   qc_past_eof(img, ce.offset & ~(img->cluster_size - 1), img->cluster_size);
	struct qc_loc loc = { rec->loc.offset, i * d->span, d->span, -1, NULL };
	if (!bad) {
		what = "reserved bits cleared";
	} else if (qc_fix_recover(img, ce.offset, ok_l2, &d->c, &target)) {
		int r = claim_restored(&d->c, i, target, loc);
		if (r < 0)
			return r;
		ne = (ne & ~QC_L1E_OFFSET_MASK) | target;
		what = "restored (the corrected offset names the L2 table that lost its reference)";
	} else if (d->c.eio) {
		return -EIO;
	} else if (qc_fix_maybe_l2(img, ce.offset & ~(img->cluster_size - 1) & QC_L1E_OFFSET_MASK)) {
		return 0; /* the target may be this range's L2 table: left */
	} else if (img->h.version >= 3 && qc_fix_has_backing(img)) {
		return 0; /* 0 would show the backing file: left */
	} else {
		ne = 0;
		what = img->h.version < 3 && qc_fix_has_backing(img)
			       ? "dropped: no candidate can be an L2 table; the range now shows the backing file"
			       : "dropped: no candidate can be an L2 table; the range reads zeros";
	}
	qc_fix_mark(img, rec->loc.offset, QC_FIX_L1);
	qc_fix_mark(img, rec->loc.offset, QC_FIX_COPIED);
	d->todo[d->nt++] = (struct plan1){ i, e, ne, what, rec->code };
	return 0;
}

/* Pass 0: entries naming metadata (dropped); pass 1: the others, one
 * decision per entry. */
static int decide_all(struct l1dec *d)
{
	int r = 0;
	for (int pass = 0; pass < 2 && r == 0; pass++)
	for (size_t k = 0; k < d->ps->n && r == 0; k++) {
		const struct qc_problem *rec = &d->ps->v[k];
		if (entry_decided(d, rec))
			continue;
		if (pass == 1 && rec->code == QC_P_OVERLAP_METADATA)
			continue;
		if (pass == 0 && on_metadata_record(d->img, rec, d->l1off, d->l1len))
			r = decide_on_metadata(d, k);
		else if (pass == 1)
			r = decide_entry(d, rec);
	}
	return r;
}

int qc_fix_l1_decide(struct qc_image *img, const struct qc_repair_opts *o, struct qc_fix_l1 **out)
{
	*out = NULL;
	if (o->leaks_only || !img->is_qcow2 || !img->geometry_ok || !img->l1_ok || !img->l1 ||
	    !qc_fix_records_complete(img, QC_FIX_L1))
		return 0;
	struct l1dec d = {
		.img = img,
		.ps = &img->problems,
		.l1off = img->h.l1_table_offset,
		.l1len = (uint64_t)img->h.l1_size * 8,
	};
	/* a contested L1 table is edited only by the entry that makes it so:
	 * one naming the table itself as its L2 */
	d.l1_contested = qc_contested(img, d.l1off, d.l1len);
	d.c = (struct l1ctx){ .img = img, .buf = malloc((size_t)img->cluster_size) };
	if (!d.c.buf)
		return -ENOMEM;
	d.g = qc_entry_geom_of(img);
	d.span = (uint64_t)1 << qc_l1_shift(img);
	d.todo = calloc(d.ps->n ? d.ps->n : 1, sizeof(*d.todo));
	if (!d.todo) {
		free(d.c.buf);
		return -ENOMEM;
	}
	int r = decide_all(&d);
	free(d.c.buf);
	/* the snapshots' L1 entries after the active ones (the authoritative
	 * chain claims its tables first) */
	struct qc_fix_snapl1 *snap = NULL;
	if (r == 0)
		r = qc_fix_snapl1_decide(img, &snap);
	if (r == 0)
		*out = malloc(sizeof(**out));
	if (r < 0 || !*out) {
		free(d.todo);
		qc_fix_snapl1_free(snap);
		return r < 0 ? r : -ENOMEM;
	}
	(*out)->todo = d.todo;
	(*out)->nt = d.nt;
	(*out)->snap = snap;
	return 0;
}

int qc_fix_l1_emit(struct qc_image *img, struct qc_fix_l1 *f, struct qc_plan *p)
{
	if (!f)
		return 0;
	const uint64_t l1off = img->h.l1_table_offset;
	const uint64_t span = (uint64_t)1 << qc_l1_shift(img);
	struct plan1 *todo = f->todo;
	size_t nt = f->nt;
	int r = 0;
	/* after every table fixer marked its records: the final trust */
	bool complete = qc_walk_complete(img, NULL);
	for (size_t k = 0; k < nt && r == 0; k++) {
		uint64_t ne = todo[k].ne, off = ne & QC_L1E_OFFSET_MASK;
		if (off) {
			uint64_t n = qc_cm_count(&img->cmap, off >> img->cluster_bits);
			if (n != 1)
				ne &= ~QC_OFLAG_COPIED;
			else if (complete)
				ne |= QC_OFLAG_COPIED;
		}
		uint8_t b[8];
		qc_put_be64(b, ne);
		struct qc_write *w = qc_plan_add(p, QC_PH_INPLACE, l1off + todo[k].i * 8, b, 8, todo[k].code,
						 "L1 entry %" PRIu64 " 0x%016" PRIx64 " -> 0x%016" PRIx64 ": %s",
						 todo[k].i, todo[k].e, ne, todo[k].what);
		if (!w) {
			r = -ENOMEM;
			break;
		}
		w->guest_offset = todo[k].i * span;
		w->guest_length = span;
	}
	if (r == 0)
		r = qc_fix_snapl1_emit(img, f->snap, p);
	return r;
}

void qc_fix_l1_free(struct qc_fix_l1 *f)
{
	if (f) {
		free(f->todo);
		qc_fix_snapl1_free(f->snap);
	}
	free(f);
}
