/*
 * fix_l2.c - repairing damaged entries of the active L2 tables, by the
 * rules of doc/repair.md "Repairing damaged pointers":
 *
 *   - reserved bits on an entry whose offset is valid are cleared;
 *   - a data offset that is unaligned or past the end of the file is
 *     restored when exactly one correction (alignment bits, or bits at or
 *     above the file's size, cleared) names a cluster whose stored refcount
 *     proves a missing reference (an orphan, or a shared cluster counted
 *     once too few); otherwise the entry is dropped;
 *   - a zero-allocated entry with such an offset, or one into metadata,
 *     becomes a plain zero entry (the guest reads zeros either way); an
 *     extended entry with no allocated subcluster gets offset 0 and keeps
 *     its bitmap (each subcluster reads as before);
 *   - a compressed descriptor past the end of the file or with offset bits
 *     56+ is dropped; a compressed extended entry's subcluster bitmap is
 *     cleared (as QEMU writes it);
 *   - bit 0 of a version 2 entry is cleared like a reserved bit (no zero
 *     flag before version 3: QEMU never sets it there);
 *   - an extended entry with no host offset but allocated subclusters has
 *     those subclusters' zero bits set and allocation bits cleared.
 *
 * Dropped: version 3 entries read zeros (zero flag, or an all-zero
 * subcluster bitmap), version 2 entries become 0 (unallocated: zeros, or
 * the backing file, which the write's summary says).
 *
 * Relies on the problem records of the walk (checker/tables.c: each L2
 * record is located at its entry), the cluster map, the entry classifier
 * and fix_util.c.  Tables the active L1 owns (shared with snapshots or
 * not: one cluster, one decision per entry) and tables only snapshots
 * reference are edited, never in a contested cluster.  In a snapshot-only
 * table OFLAG_COPIED is never set (QEMU never reads it there: bit 63 stays
 * as found), the plan names the snapshot, and a table with MIN_SUSPECT or
 * more damaged entries is left whole (it may have been overwritten:
 * fix_l2table.c judges only active tables).
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

enum act { A_NONE, A_CLEAR, A_RESTORE, A_DROP, A_ZERO_PLAIN, A_BITMAP, A_NOOFF };

#define MIN_SUSPECT 8

/* Owners a guest data pointer may never name: metadata. */
static bool is_metadata(enum qc_owner o)
{
	return o != QC_OWN_FREE && o != QC_OWN_DATA && o != QC_OWN_VMSTATE && o != QC_OWN_COMPRESSED;
}

/* Does [off, off+len) touch a metadata cluster? */
static bool on_metadata(const struct qc_image *img, uint64_t off, uint64_t len)
{
	uint64_t last;
	if (!len || !qc_add(off, len - 1, &last))
		return false;
	for (uint64_t c = off >> img->cluster_bits; c <= last >> img->cluster_bits; c++)
		if (c < img->cmap.nclusters && is_metadata(qc_cm_owner(&img->cmap, c)))
			return true;
	return false;
}

struct todo {
	uint64_t at;          /* entry address */
	enum act act;
	uint64_t e, bm;       /* the entry as found */
	uint64_t target;      /* data cluster of CLEAR / RESTORE */
	uint64_t unclaim_off, unclaim_len; /* DROP / ZERO_PLAIN of a pointer the
				* walk counted on metadata: taken out of the model */
	const struct qc_problem *rec;
	uint64_t refs;        /* references the walk gave its table, before any change */
	bool snap;            /* in a table only snapshots reference */
};

/* No record of c, or every one planned. */
static bool all_fixed(const struct qc_image *img, enum qc_code c)
{
	return !img->problems.per_code[c] || qc_code_all_fixed(img, c);
}

static bool ok_data(void *ctx, uint64_t off)
{
	struct qc_image *img = ctx;
	return qc_fix_unclaimed(img, off) || qc_fix_missing_ref(img, off, QC_OWN_DATA) ||
	       qc_fix_missing_ref(img, off, QC_OWN_VMSTATE);
}

/* Decide what to do with one entry. */
/* The bits of an entry that no writer sets in this image: the reserved
 * bits, and bit 0 in version 2 (no zero flag there: QEMU never writes it,
 * so it is damage, and the entry without it is the one QEMU wrote). */
static uint64_t never_set(const struct qc_image *img)
{
	return QC_L2E_STD_RESERVED_MASK | (img->h.version < 3 ? QC_OFLAG_ZERO : 0);
}

/* An extended entry with no host offset whose bitmap marks subclusters
 * allocated: there is no cluster to read them from, so they read zeros
 * (their zero bits set, the allocation bits cleared). */
static uint64_t alloc_to_zero(uint64_t bm)
{
	return (bm & QC_L2_BITMAP_ALL_ZERO) | ((bm & QC_L2_BITMAP_ALL_ALLOC) << 32);
}

static void decide(struct qc_image *img, struct todo *t)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	/* classified as it was written, without the bits nothing sets */
	const bool v2_zero = g.v2 && (t->e & QC_OFLAG_ZERO) && !(t->e & QC_OFLAG_COMPRESSED);
	struct qc_entry ce = qc_l2e_classify(v2_zero ? t->e & ~QC_OFLAG_ZERO : t->e, t->bm, &g);
	const uint64_t cs = img->cluster_size;
	t->act = A_NONE;
	if (ce.kind == QC_ENTRY_COMPRESSED) {
		if (ce.reasons & QC_ER_COMPRESSED_DATA_FILE)
			return;
		if ((ce.reasons & QC_ER_COMPRESSED_TOO_LARGE) || qc_past_eof(img, ce.offset, ce.length)) {
			t->act = A_DROP;
		} else if (on_metadata(img, ce.offset, ce.length)) {
			/* a compressed descriptor reaching into metadata */
			t->act = A_DROP;
			t->unclaim_off = ce.offset;
			t->unclaim_len = ce.length;
		}
		else if (ce.reasons & QC_ER_COMPRESSED_BITMAP)
			t->act = A_BITMAP;
		return;
	}
	if (ce.kind != QC_ENTRY_NORMAL) {
		/* no offset: reserved bits (the guest reads the same without
		 * them), and allocation bits with nothing allocated */
		if (ce.reasons & QC_ER_SUB_ALLOC_UNALLOCATED)
			t->act = A_NOOFF;
		else if ((ce.reasons & QC_ER_RESERVED) || v2_zero)
			t->act = A_CLEAR;
		return;
	}
	if (img->data_file)
		return;
	bool bad = (ce.reasons & QC_ER_DATA_UNALIGNED) || qc_past_eof(img, ce.offset & ~(cs - 1), cs);
	/* no subcluster reads the cluster: a zero-allocated standard entry, or
	 * an extended entry with no allocation bit */
	const bool zero_only = ce.zero || (g.extended_l2 && !(t->bm & ~QC_L2_BITMAP_ALL_ZERO));
	if (bad && zero_only) {
		t->act = A_ZERO_PLAIN;
		return;
	}
	if (bad) {
		t->act = qc_fix_recover(img, ce.offset, ok_data, img, &t->target) ? A_RESTORE : A_DROP;
		return;
	}
	if (on_metadata(img, ce.offset, cs)) {
		/* a data pointer into metadata: the authoritative chains own
		 * their clusters, so this pointer is the wrong one */
		t->act = zero_only ? A_ZERO_PLAIN : A_DROP;
		t->unclaim_off = ce.offset;
		t->unclaim_len = cs;
		return;
	}
	if ((ce.reasons & QC_ER_RESERVED) || v2_zero) {
		uint64_t cl = ce.offset >> img->cluster_bits;
		/* the walk followed it: the target is this entry's data cluster
		 * (a snapshot's vm_state cluster in a snapshot table) */
		if (cl < img->cmap.nclusters && (qc_cm_owner(&img->cmap, cl) == QC_OWN_DATA ||
						 qc_cm_owner(&img->cmap, cl) == QC_OWN_VMSTATE)) {
			t->act = A_CLEAR;
			t->target = ce.offset;
		}
	}
}

/* The references the walk gives each entry of the table at l2 (how many
 * L1 entries name it). */
static uint64_t table_refs(const struct qc_image *img, uint64_t at)
{
	uint64_t n = qc_cm_count(&img->cmap, at >> img->cluster_bits);
	return n ? n : 1;
}

/*
 * Mark the records of t's entry fixed: those of the codes the L2 and
 * COPIED planners own, and every other record at the entry when the entry
 * as written (OFLAG_COPIED aside) breaks no rule any more (a 16-byte drop
 * also rewrites a bad subcluster bitmap).
 */
static void mark_entry(struct qc_image *img, const struct todo *t)
{
	qc_fix_mark(img, t->at, QC_FIX_L2);
	/* the entry is rewritten whole, its OFLAG_COPIED included */
	qc_fix_mark(img, t->at, QC_FIX_COPIED);
	uint64_t e = t->e, bm = t->bm;
	switch (t->act) {
	case A_CLEAR:
	case A_RESTORE:
		e &= ~never_set(img);
		if (t->act == A_RESTORE)
			e = (e & ~QC_L2E_OFFSET_MASK) | t->target;
		if (!t->target && !img->data_file)
			e &= ~QC_OFLAG_COPIED;
		break;
	case A_ZERO_PLAIN:
		e = img->extended_l2 ? 0 : QC_OFLAG_ZERO;
		break;
	case A_NOOFF:
		e &= ~(never_set(img) | QC_OFLAG_COPIED);
		bm = alloc_to_zero(bm);
		break;
	case A_BITMAP:
		bm = 0;
		break;
	case A_DROP:
		e = img->h.version < 3 || img->extended_l2 ? 0 : QC_OFLAG_ZERO;
		bm = img->extended_l2 && img->h.version >= 3 ? QC_L2_BITMAP_ALL_ZERO : 0;
		break;
	case A_NONE:
		return;
	}
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = qc_l2e_classify(e, bm, &g);
	if (ce.reasons)
		return;
	struct qc_problems *ps = &img->problems;
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].loc.offset == t->at)
			ps->v[i].fixed = true;
}

static int emit(struct qc_image *img, struct qc_plan *p, const struct todo *t, bool complete)
{
	const bool ext = img->extended_l2;
	uint8_t b[16];
	size_t len = 8;
	uint64_t at = t->at;
	uint64_t e = t->e;
	const char *what = "";
	switch (t->act) {
	case A_NONE:
		return 0;
	case A_CLEAR:
	case A_RESTORE: {
		e &= ~never_set(img);
		if (t->act == A_RESTORE)
			e = (e & ~QC_L2E_OFFSET_MASK) | t->target;
		if (t->target && t->snap) {
			/* a snapshot table's OFLAG_COPIED: as found, never set */
		} else if (t->target) {
			uint64_t n = qc_cm_count(&img->cmap, t->target >> img->cluster_bits);
			if (n != 1)
				e &= ~QC_OFLAG_COPIED;
			else if (complete)
				e |= QC_OFLAG_COPIED;
		} else if (!img->data_file) {
			/* no offset: COPIED means nothing there (the COPIED rule) */
			e &= ~QC_OFLAG_COPIED;
		}
		what = t->act == A_RESTORE ? "restored (the corrected offset names a cluster that lost its reference)"
		       : img->h.version < 3 && (t->e & QC_OFLAG_ZERO)
			       ? "bit 0 cleared (version 2 has no zero flag; QEMU never sets it there)"
			       : "reserved bits cleared";
		break;
	}
	case A_NOOFF:
		e &= ~(never_set(img) | QC_OFLAG_COPIED);
		len = 16;
		qc_put_be64(b + 8, alloc_to_zero(t->bm));
		what = "no host cluster: the subclusters marked allocated read zeros (zero bits set), the others as before";
		break;
	case A_ZERO_PLAIN:
		/* extended: offset 0, the bitmap as it was (each subcluster reads
		 * zeros or the backing file as before), as QEMU rewrites it */
		e = ext ? 0 : QC_OFLAG_ZERO;
		what = ext ? "offset cleared: no subcluster was allocated (each reads as before)"
			   : "rewritten as a plain zero entry (the guest read zeros already)";
		break;
	case A_BITMAP:
		at += 8;
		qc_put_be64(b, 0);
		what = "subcluster bitmap of a compressed entry cleared";
		break;
	case A_DROP:
		if (img->h.version < 3) {
			e = 0;
			what = qc_fix_has_backing(img) ? "dropped: the range now shows the backing file"
							: "dropped: the range reads zeros";
		} else if (ext) {
			e = 0;
			len = 16;
			qc_put_be64(b + 8, QC_L2_BITMAP_ALL_ZERO);
			what = "dropped: the range reads zeros (all subclusters zero)";
		} else {
			e = QC_OFLAG_ZERO;
			what = "dropped: the range reads zeros (zero flag)";
		}
		break;
	}
	if (t->act != A_BITMAP)
		qc_put_be64(b, e);
	/* a table only snapshots reference: the summary names the (first)
	 * snapshot, the write's guest range is that snapshot's */
	int32_t s = t->rec->loc.snapshot;
	struct qc_write *w =
		t->snap && s >= 0 && (uint32_t)s < img->nsnapshots
			? qc_plan_add(p, QC_PH_INPLACE, at, b, len, t->rec->code,
				      "snapshot ID '%.8s' L2 entry 0x%016" PRIx64 " -> 0x%016" PRIx64 ": %s",
				      img->snapshots[s].id ? img->snapshots[s].id : "?", t->e,
				      t->act == A_BITMAP ? t->e : e, what)
			: qc_plan_add(p, QC_PH_INPLACE, at, b, len, t->rec->code,
				      "L2 entry at 0x%" PRIx64 " 0x%016" PRIx64 " -> 0x%016" PRIx64 ": %s",
				      t->at, t->e, t->act == A_BITMAP ? t->e : e, what);
	if (!w)
		return -ENOMEM;
	w->guest_offset = t->rec->loc.guest_offset;
	w->guest_length = t->rec->loc.guest_length;
	return 0;
}

/* The owner a restored target is claimed as: the one it has when another
 * pointer shares it, else vm_state in a snapshot's vm_state range, else
 * guest data. */
static enum qc_owner restored_owner(const struct qc_image *img, const struct todo *t)
{
	uint64_t cl = t->target >> img->cluster_bits;
	enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
	if (o == QC_OWN_DATA || o == QC_OWN_VMSTATE)
		return o;
	int32_t s = t->rec->loc.snapshot;
	unsigned shift = qc_l1_shift(img);
	if (s >= 0 && (uint32_t)s < img->nsnapshots && t->rec->loc.guest_offset != QC_NO_OFFSET &&
	    shift < 64 && t->rec->loc.guest_offset >> shift >= img->snapshots[s].vm_first_l1_index)
		return QC_OWN_VMSTATE;
	return QC_OWN_DATA;
}

/* The model as the repaired image will have it: a restored pointer claims
 * its target once per reference to its table. */
static bool claim_restored(struct qc_image *img, const struct todo *t)
{
	struct qc_loc loc = t->rec->loc;
	loc.offset = t->at;
	if (!qc_claim(img, t->target, img->cluster_size, restored_owner(img, t), table_refs(img, t->at),
		      loc))
		return false;
	qc_fix_mark_refcount(img, t->target);
	return true;
}

/* The state of one qc_plan_fix_l2 run: the entries to write and those
 * deferred until their table's overlaps are planned away. */
struct l2work {
	struct qc_image *img;
	struct todo *todo, *def;
	size_t nt, ndef;
};

/* The sorted addresses of the L2 fixer's records (duplicates kept), or NULL. */
static uint64_t *l2_record_addrs(const struct qc_problems *ps, size_t *n)
{
	uint64_t *addr = malloc((ps->n ? ps->n : 1) * sizeof(*addr));
	if (!addr)
		return NULL;
	*n = 0;
	for (size_t i = 0; i < ps->n; i++)
		if (qc_policy(ps->v[i].code)->fixer == QC_FIX_L2 && ps->v[i].loc.offset != QC_NO_OFFSET)
			addr[(*n)++] = ps->v[i].loc.offset;
	qsort(addr, *n, sizeof(*addr), qc_cmp_u64);
	return addr;
}

/* Does the pointer t takes out of the model touch cluster cl? */
static bool unclaims_cluster(const struct qc_image *img, const struct todo *t, uint64_t cl)
{
	return t->unclaim_len && t->unclaim_off >> img->cluster_bits <= cl &&
	       (t->unclaim_off + t->unclaim_len - 1) >> img->cluster_bits >= cl;
}

/* Take refs references off every cluster of t's unclaimed range. */
static void unclaim(struct qc_image *img, const struct todo *t, uint64_t refs)
{
	uint64_t last = t->unclaim_off + t->unclaim_len - 1; /* bounded by on_metadata */
	for (uint64_t c = t->unclaim_off >> img->cluster_bits; c <= last >> img->cluster_bits; c++) {
		qc_cm_sub(&img->cmap, c, refs);
		qc_fix_mark_refcount(img, c << img->cluster_bits);
	}
}

/* A table only snapshots reference with nent >= MIN_SUSPECT damaged
 * entries: its content may be something else (fix_l2table.c judges
 * overwritten tables of the active L1 only), so each "correction" could
 * name another cluster's data; none is planned. */
static bool suspect_snapshot_table(const struct qc_image *img, uint64_t cl, uint64_t nent)
{
	return nent >= MIN_SUSPECT && cl < img->cmap.nclusters &&
	       qc_cm_owner(&img->cmap, cl) == QC_OWN_L2_INACTIVE;
}

/* Read and decide the entry at at into the next todo slot (or defer it). */
static int plan_entry(struct l2work *w, uint64_t at)
{
	struct qc_image *img = w->img;
	struct qc_problems *ps = &img->problems;
	const unsigned es = img->l2_entry_size;
	uint64_t cl = at >> img->cluster_bits;
	/* an entry of an L2 table nobody else claims: the active L1's (shared
	 * with snapshots or not) or one only snapshots reference */
	enum qc_owner to = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
	if (at % es || (to != QC_OWN_L2 && to != QC_OWN_L2_INACTIVE) || qc_past_eof(img, at, es))
		return 0;
	uint8_t raw[16] = { 0 };
	if (qc_io_read(img->io, raw, es, at) < 0) /* zeros past the end of a last, partial cluster */
		return -EIO;
	struct todo *t = &w->todo[w->nt];
	/* the slot may hold an entry decided to need nothing: start clean
	 * (its record would otherwise stand for this entry) */
	memset(t, 0, sizeof(*t));
	t->at = at;
	t->e = qc_be64_at(raw);
	t->bm = es == 16 ? qc_be64_at(raw + 8) : 0;
	for (size_t k = 0; k < ps->n && !t->rec; k++)
		if (ps->v[k].loc.offset == at && qc_policy(ps->v[k].code)->fixer == QC_FIX_L2)
			t->rec = &ps->v[k];
	t->snap = to == QC_OWN_L2_INACTIVE;
	decide(img, t);
	if (t->act == A_NONE)
		return 0;
	/* a contested table is edited only by the entry that makes it so:
	 * a data pointer into its own table */
	if (qc_contested(img, at, es) && !unclaims_cluster(img, t, cl)) {
		/* decided again once the overlaps are planned away */
		w->def[w->ndef++] = *t;
		memset(t, 0, sizeof(*t));
		return 0;
	}
	if (t->act == A_RESTORE && !claim_restored(img, t))
		return -ENOMEM;
	t->refs = table_refs(img, at);
	w->nt++;
	return 0;
}

/*
 * Pointers the walk counted on metadata leave the model.  Each counted
 * once per reference to its table; a pointer into its own table was
 * counted on that table too: with m such entries, the table's count is
 * k (1 + m) for k references, and anything else is left alone.
 */
static void unclaim_planned(struct l2work *w)
{
	struct qc_image *img = w->img;
	for (size_t i = 0; i < w->nt; i++) {
		struct todo *t = &w->todo[i];
		uint64_t tcl = t->at >> img->cluster_bits, refs = t->refs;
		if (t->unclaim_len) {
			uint64_t m = 0;
			for (size_t k = 0; k < w->nt; k++)
				m += unclaims_cluster(img, &w->todo[k], tcl) &&
				     w->todo[k].at >> img->cluster_bits == tcl;
			if (m && refs % (1 + m)) {
				t->act = A_NONE;
				continue;
			}
			refs /= 1 + m;
			unclaim(img, t, refs);
		}
		mark_entry(img, t);
	}
}

/* Clusters whose every overlap was planned away are no longer contested. */
static void settle_overlaps(struct qc_image *img)
{
	if (!img->contested_overflow && all_fixed(img, QC_P_OVERLAP_DATA_COMPRESSED) &&
	    all_fixed(img, QC_P_OVERLAP_DATA_METADATA) && all_fixed(img, QC_P_OVERLAP_METADATA))
		img->ncontested = 0;
	else
		qc_fix_settle_contested(img);
}

/* Entries of tables that were contested only by the pointers dropped
 * before (a data pointer into its own table), decided again. */
static int plan_deferred(struct l2work *w)
{
	struct qc_image *img = w->img;
	bool settle = false;
	int r = 0;
	for (size_t i = 0; i < w->ndef; i++) {
		struct todo *t = &w->todo[w->nt];
		*t = w->def[i];
		if (qc_contested(img, t->at, img->l2_entry_size))
			continue;
		decide(img, t);
		if (t->act == A_NONE)
			continue;
		if (t->unclaim_len) {
			/* a pointer into other metadata (never its own table: that
			 * entry was not deferred) leaves the model, counted once
			 * per reference to its table */
			if (unclaims_cluster(img, t, t->at >> img->cluster_bits))
				continue;
			unclaim(img, t, table_refs(img, t->at));
			settle = true;
		}
		if (t->act == A_RESTORE && !claim_restored(img, t)) {
			r = -ENOMEM;
			break;
		}
		mark_entry(img, t);
		w->nt++;
	}
	if (settle)
		qc_fix_settle_contested(img);
	return r;
}

int qc_plan_fix_l2(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	if (o->leaks_only || !img->is_qcow2 || !img->geometry_ok || !img->l1_ok ||
	    !qc_fix_records_complete(img, QC_FIX_L2))
		return 0;
	size_t n = 0;
	uint64_t *addr = l2_record_addrs(&img->problems, &n);
	if (!addr)
		return -ENOMEM;
	struct l2work w = { .img = img };
	w.todo = calloc(n ? n : 1, sizeof(*w.todo));
	if (!w.todo) {
		free(addr);
		return -ENOMEM;
	}
	w.def = calloc(n ? n : 1, sizeof(*w.def));
	if (!w.def) {
		free(w.todo);
		free(addr);
		return -ENOMEM;
	}
	int r = 0;
	for (size_t i = 0, j; i < n && r == 0; i = j) {
		/* the records of one table: [i, j) */
		uint64_t cl = addr[i] >> img->cluster_bits, nent = 0;
		for (j = i; j < n && addr[j] >> img->cluster_bits == cl; j++)
			nent += j == i || addr[j] != addr[j - 1];
		if (suspect_snapshot_table(img, cl, nent))
			continue; /* left: it may have been overwritten */
		for (size_t k = i; k < j && r == 0; k++)
			if (k == i || addr[k] != addr[k - 1])
				r = plan_entry(&w, addr[k]);
	}
	if (r == 0)
		unclaim_planned(&w);
	settle_overlaps(img);
	if (r == 0)
		r = plan_deferred(&w);
	bool complete = qc_walk_complete(img, NULL);
	for (size_t i = 0; i < w.nt && r == 0; i++)
		r = emit(img, p, &w.todo[i], complete);
	free(w.def);
	free(w.todo);
	free(addr);
	return r;
}
