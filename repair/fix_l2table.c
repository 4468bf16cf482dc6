/*
 * fix_l2table.c - an active L2 table whose cluster was overwritten by
 * other content (refblock counts, random bytes; doc/repair.md "Overwritten
 * L2 tables").  Entry by entry, such content looks like damaged pointers,
 * and the entry rules of fix_l2.c would "restore" some of them: a random
 * value with its high bits cleared names a random cluster of the file, and
 * when that cluster is an orphan (the overwritten table's own data clusters
 * are), the guest would read another cluster's data.  So a table is judged
 * whole first: when at least MIN_BAD of its entries break a rule that no
 * correction can explain (see bad()) and they outnumber the entries that
 * are valid, the content proves nothing about the broken ones: each is
 * dropped (the guest cluster reads zeros: the zero flag, every subcluster's
 * zero bit, or 0 in version 2), and the valid entries are kept as they are
 * (fix_l2.c and the COPIED planner judge them on the re-check).  A broken
 * entry whose guest cluster a snapshot's copy proves (same L1 and L2
 * index, a data cluster whose stored refcount counts one reference more
 * than the walk found) is restored to share that cluster instead
 * (gather_copies, doc/repair.md: it holds this guest cluster's content as
 * of the snapshot, never another's).  A table of
 * zeros needs nothing here: its range already reads zeros and its old data
 * clusters are leaks, lowered and kept.
 *
 * Only tables one active L1 entry alone names are edited (not one a
 * snapshot or a second L1 entry shares), and a contested table only when
 * every overlap on it comes from its own entries or from a data pointer.  Writes: one per dropped entry (phase in-place), so the
 * planners that follow may still edit the kept entries.  The caller
 * (repair.c) re-checks the image as these writes leave it.
 *
 * Relies on the entry classifier (core/entry.h), the cluster map (owners,
 * counts), the overlap records' host clusters (checker/check.c) and the
 * policy table (which codes the L2 fixer owns).
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

#define MIN_BAD 8

static bool is_metadata(enum qc_owner o)
{
	return o != QC_OWN_FREE && o != QC_OWN_DATA && o != QC_OWN_VMSTATE && o != QC_OWN_COMPRESSED;
}

/* 1: the entry breaks a rule no correction of it explains (an offset past
 * the end of the file or into metadata, bits no writer sets); 0: valid or
 * empty; -1: damaged, but recoverable (reserved bits on an in-file data
 * pointer, an unaligned offset): neither good nor bad. */
static int bad(const struct qc_image *img, uint64_t e, uint64_t bm)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = qc_l2e_classify(e, bm, &g);
	const uint64_t cs = img->cluster_size;
	if (ce.kind == QC_ENTRY_COMPRESSED)
		return (ce.reasons & QC_ER_COMPRESSED_TOO_LARGE) || qc_past_eof(img, ce.offset, ce.length) ? 1
		       : ce.reasons ? -1 : 0;
	if (ce.kind != QC_ENTRY_NORMAL)
		return ce.reasons ? 1 : 0;
	uint64_t base = ce.offset & ~(cs - 1), cl = base >> img->cluster_bits;
	if (qc_past_eof(img, base, cs))
		return 1;
	if (cl < img->cmap.nclusters && is_metadata(qc_cm_owner(&img->cmap, cl)))
		return 1;
	return ce.reasons ? -1 : 0;
}

/* The dropped form of an entry: zeros for the guest. */
static void dropped(const struct qc_image *img, uint8_t *b, size_t *len)
{
	*len = 8;
	if (img->h.version < 3) {
		qc_put_be64(b, 0);
	} else if (img->extended_l2) {
		qc_put_be64(b, 0);
		qc_put_be64(b + 8, QC_L2_BITMAP_ALL_ZERO);
		*len = 16;
	} else {
		qc_put_be64(b, QC_OFLAG_ZERO);
	}
}

/* Is the table at tbl contested only by claims of its own entries, or by
 * data pointers (which are the wrong ones)? */
static bool own_contest_only(const struct qc_image *img, uint64_t tbl, uint64_t *ndata)
{
	*ndata = 0;
	if (!qc_contested(img, tbl, img->cluster_size))
		return true;
	if (img->contested_overflow)
		return false;
	const struct qc_problems *ps = &img->problems;
	uint64_t cl = tbl >> img->cluster_bits;
	bool any = false;
	if (ps->per_code[QC_P_OVERLAP_DATA_COMPRESSED] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_OVERLAP_DATA_METADATA] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_OVERLAP_METADATA] > QC_MAX_RECORDS_PER_CODE)
		return false;
	for (size_t i = 0; i < ps->n; i++) {
		const struct qc_problem *r = &ps->v[i];
		if (r->code != QC_P_OVERLAP_DATA_COMPRESSED && r->code != QC_P_OVERLAP_DATA_METADATA &&
		    r->code != QC_P_OVERLAP_METADATA)
			continue;
		if (r->host_cluster == QC_NO_OFFSET && !r->fixed)
			return false;
		if (r->host_cluster != cl)
			continue;
		/* a data pointer into the table is the wrong claim (principle 3:
		 * the L1 -> L2 chain owns it; fix_l2.c drops the pointer) */
		bool inside = r->loc.offset >= tbl && r->loc.offset - tbl < img->cluster_size;
		if (r->code != QC_P_OVERLAP_DATA_METADATA && !inside)
			return false;
		/* each data claim on the table counted once more on it */
		*ndata += r->code == QC_P_OVERLAP_DATA_METADATA;
		any = true;
	}
	return any;
}

/*
 * Snapshots' copies of the overwritten table's range (doc/repair.md
 * "Overwritten L2 tables"): per entry k of the table, the one data
 * cluster the snapshots' L2 tables name at the same L1 and L2 index
 * (cand[k]; 0 none, UINT64_MAX two different ones) and that entry's bytes
 * (ent, es bytes each), and the snapshot it came from.
 */
struct copies {
	uint64_t *cand;
	uint8_t *ent;
	int32_t *snap;
};

/* Snapshot L2 tables read per repair at most (each a cluster). */
#define MAX_SNAP_TABLES 256

/* The snapshot L2 table that snapshot s's L1 entry l1i names, when it is
 * one the walk followed as an L2 table and nothing contests: else 0. */
static uint64_t snap_table(struct qc_image *img, const struct qc_snapshot *s, uint64_t l1i,
			   uint64_t tbl)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint8_t b[8];
	uint64_t at;
	if (!s->l1_usable || s->fix.verdict != QC_SNAP_KEPT || l1i >= s->l1_size ||
	    !qc_add(s->l1_table_offset, l1i * 8, &at) || qc_past_eof(img, at, 8) ||
	    qc_io_read_full(img->io, b, 8, at) < 0)
		return 0;
	struct qc_entry le = qc_l1e_classify(qc_be64_at(b), &g);
	uint64_t off = le.offset, cl = off >> img->cluster_bits;
	if (!qc_entry_followable(&le) || le.reasons || off == tbl ||
	    qc_past_eof(img, off, img->cluster_size) || cl >= img->cmap.nclusters ||
	    (qc_cm_owner(&img->cmap, cl) != QC_OWN_L2_INACTIVE && qc_cm_owner(&img->cmap, cl) != QC_OWN_L2) ||
	    qc_contested(img, off, img->cluster_size))
		return 0;
	return off;
}

/* Gather the snapshots' copies of the entries of table tbl (L1 index
 * l1i) that bad() rejects; *budget counts the snapshot tables still to be
 * read this repair.  -errno on a read error. */
static int gather_copies(struct qc_image *img, uint64_t l1i, uint64_t tbl, const uint8_t *t,
			 uint64_t nent, struct copies *c, uint8_t *buf, unsigned *budget)
{
	const unsigned es = img->l2_entry_size;
	const unsigned shift = qc_l1_shift(img);
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint64_t seen[8];
	unsigned nseen = 0;
	if (shift >= 64 || l1i > (UINT64_MAX >> shift))
		return 0;
	for (uint32_t si = 0; si < img->nsnapshots && *budget; si++) {
		const struct qc_snapshot *s = &img->snapshots[si];
		uint64_t st = snap_table(img, s, l1i, tbl);
		bool dup = false;
		for (unsigned q = 0; q < nseen && !dup; q++)
			dup = seen[q] == st;
		if (!st || dup)
			continue;
		if (nseen < sizeof(seen) / sizeof(seen[0]))
			seen[nseen++] = st;
		(*budget)--;
		if (qc_io_read_full(img->io, buf, img->cluster_size, st) < 0)
			return -EIO;
		for (uint64_t k = 0; k < nent; k++) {
			uint64_t e = qc_be64_at(t + k * es), bm = es == 16 ? qc_be64_at(t + k * es + 8) : 0;
			if (bad(img, e, bm) != 1)
				continue;
			/* the guest cluster must lie inside the snapshot's disk:
			 * past it the snapshot's L1 maps its VM state */
			uint64_t guest = (l1i << shift) + (k << img->cluster_bits);
			if (guest >= s->disk_size || s->disk_size - guest < img->cluster_size)
				continue;
			uint64_t se = qc_be64_at(buf + k * es), sbm = es == 16 ? qc_be64_at(buf + k * es + 8) : 0;
			struct qc_entry ce = qc_l2e_classify(se, sbm, &g);
			if (ce.kind != QC_ENTRY_NORMAL || ce.reasons || ce.zero)
				continue;
			if (c->cand[k] && c->cand[k] != ce.offset) {
				c->cand[k] = UINT64_MAX;
				continue;
			}
			c->cand[k] = ce.offset;
			c->snap[k] = (int32_t)si;
			memcpy(c->ent + k * es, buf + k * es, es);
		}
	}
	return 0;
}

/* Plan the drops of one overwritten table (its content in t); an entry a
 * snapshot's copy proves (c, may be NULL) is restored to share it. */
static int drop_table(struct qc_image *img, struct qc_plan *p, uint64_t l1i, uint64_t tbl,
		      const uint8_t *t, uint64_t nbad, uint64_t nent, enum qc_code code,
		      const struct copies *c)
{
	const unsigned es = img->l2_entry_size;
	const unsigned shift = qc_l1_shift(img);
	const bool backing = img->h.version < 3 && qc_fix_has_backing(img);
	for (uint64_t k = 0; k < nent; k++) {
		uint64_t e = qc_be64_at(t + k * es), bm = es == 16 ? qc_be64_at(t + k * es + 8) : 0;
		if (bad(img, e, bm) != 1)
			continue;
		uint8_t b[16];
		size_t len;
		struct qc_write *w;
		uint64_t x = c ? c->cand[k] : 0, xcl = x >> img->cluster_bits, rc = 0;
		enum qc_owner prev;
		if (x && x != UINT64_MAX && qc_fix_missing_ref(img, x, QC_OWN_DATA) &&
		    qc_fix_stored_refcount(img, xcl, &rc) && qc_cm_add(&img->cmap, xcl, QC_OWN_DATA, 1, &prev)) {
			/* the snapshot's entry, shared: OFLAG_COPIED clear (the
			 * cluster is counted twice again), its subcluster bitmap
			 * kept; the model claims it once more, so no second entry
			 * takes the same missing reference */
			memcpy(b, c->ent + k * es, es);
			qc_put_be64(b, qc_be64_at(b) & ~QC_OFLAG_COPIED);
			len = es;
			w = qc_plan_add(p, QC_PH_INPLACE, tbl + k * es, b, len, code,
					"L2 entry at 0x%" PRIx64 " restored to 0x%" PRIx64 ", shared with snapshot ID '%.16s' (refcount %" PRIu64 ", a reference missing): table 0x%" PRIx64 " overwritten",
					tbl + k * es, x, img->snapshots[c->snap[k]].id ? img->snapshots[c->snap[k]].id : "?", rc, tbl);
		} else {
			dropped(img, b, &len);
			w = qc_plan_add(
				p, QC_PH_INPLACE, tbl + k * es, b, len, code,
				"L2 entry at 0x%" PRIx64 " 0x%016" PRIx64 " dropped (%s): table 0x%" PRIx64 " overwritten, %" PRIu64 " of %" PRIu64 " entries invalid",
				tbl + k * es, e, backing ? "shows the backing file" : "reads zeros", tbl, nbad, nent);
		}
		if (!w)
			return -ENOMEM;
		if (shift < 64 && l1i <= (UINT64_MAX >> shift)) {
			w->guest_offset = (l1i << shift) + (k << img->cluster_bits);
			w->guest_length = img->cluster_size;
		}
	}
	return 0;
}

int qc_plan_fix_l2table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	if (o->leaks_only || !img->is_qcow2 || !img->geometry_ok || !img->l1_ok || !img->l1 ||
	    img->data_file)
		return 0;
	/* the first code of the L2 fixer reported names the writes */
	enum qc_code code = QC_P_COUNT;
	for (int c = 0; c < QC_P_COUNT && code == QC_P_COUNT; c++)
		if (qc_policy((enum qc_code)c)->fixer == QC_FIX_L2 && ps->per_code[c])
			code = (enum qc_code)c;
	if (code == QC_P_COUNT)
		return 0;
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	const uint64_t nent = cs / es;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint8_t *t = malloc(cs), *sbuf = NULL;
	if (!t)
		return -ENOMEM;
	/* the snapshots' copies: only with snapshots, allocated once */
	struct copies cp = { NULL, NULL, NULL }, *cpp = NULL;
	unsigned budget = MAX_SNAP_TABLES;
	if (img->nsnapshots && img->snapshots) {
		cp.cand = malloc(nent * sizeof(*cp.cand));
		cp.snap = malloc(nent * sizeof(*cp.snap));
		cp.ent = malloc(cs);
		sbuf = malloc(cs);
		if (!cp.cand || !cp.snap || !cp.ent || !sbuf) {
			free(cp.cand);
			free(cp.snap);
			free(cp.ent);
			free(sbuf);
			free(t);
			return -ENOMEM;
		}
		cpp = &cp;
	}
	int r = 0, planned = 0;
	for (uint64_t i = 0; i < img->h.l1_size && r == 0; i++) {
		struct qc_entry le = qc_l1e_classify(img->l1[i], &g);
		uint64_t tbl = le.offset, tcl = tbl >> img->cluster_bits;
		if (!qc_entry_followable(&le) || le.reasons || qc_past_eof(img, tbl, cs) ||
		    tcl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, tcl) != QC_OWN_L2)
			continue;
		/* one L1 entry names it and no snapshot shares it: its count is
		 * that entry's and the wrong data claims' (a data claim of more
		 * than one reference makes the sum differ: not edited) */
		uint64_t ndata;
		if (!own_contest_only(img, tbl, &ndata) || qc_cm_count(&img->cmap, tcl) != 1 + ndata ||
		    qc_fix_planned(p, tbl, cs))
			continue;
		if (qc_io_read(img->io, t, cs, tbl) < 0) { /* zeros past the end (a last, partial cluster) */
			r = -EIO;
			break;
		}
		uint64_t nbad = 0, ngood = 0;
		for (uint64_t k = 0; k < nent; k++) {
			uint64_t e = qc_be64_at(t + k * es), bm = es == 16 ? qc_be64_at(t + k * es + 8) : 0;
			int v = bad(img, e, bm);
			nbad += v == 1;
			ngood += v == 0 && (e || bm);
		}
		if (nbad < MIN_BAD || nbad <= ngood)
			continue;
		if (cpp) {
			memset(cp.cand, 0, nent * sizeof(*cp.cand));
			r = gather_copies(img, i, tbl, t, nent, cpp, sbuf, &budget);
		}
		if (r == 0)
			r = drop_table(img, p, i, tbl, t, nbad, nent, code, cpp);
		planned = 1;
	}
	free(cp.cand);
	free(cp.snap);
	free(cp.ent);
	free(sbuf);
	free(t);
	return r < 0 ? r : planned;
}
