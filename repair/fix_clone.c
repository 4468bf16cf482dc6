/*
 * fix_clone.c - two claims on one cluster (doc/repair.md "Two claims"):
 * two active L2 entries naming one data cluster, or two active L1 entries
 * naming one L2 table, while the stored refcount is below the references
 * (QEMU never writes either: it gives each guest cluster and each L1 range
 * its own cluster).  Which claim is the real one cannot be told from the
 * image, so neither is dropped: as e2fsck clones a multiply-claimed block,
 * the cluster is copied to new space past the end of the file and every
 * claimant but the first (in guest order) is pointed at its own copy.  The
 * guest reads exactly what it read before in both ranges, and the plan
 * names both.
 *
 *   - a data cluster: copied whole; the moved entry keeps its flags (zero
 *     flag, subcluster bitmap) with the new offset and OFLAG_COPIED (its
 *     copy has one reference);
 *   - an L2 table: copied, and so is every data cluster it names (a
 *     zero-allocated standard entry becomes a plain zero entry, compressed
 *     clusters stay shared: they never carry OFLAG_COPIED), so the two
 *     tables share nothing and OFLAG_COPIED stays right in both after any
 *     guest write.
 *
 * Only clusters that no snapshot and no other structure claims, outside
 * any contested cluster, and tables the active L1 alone names are cloned.
 * At most MAX_CLONE_BYTES and MAX_CLONES copies per repair (the plan keeps
 * every write's bytes in memory); the claims beyond are left to the refcount
 * planner, which raises the count (the state before this fixer existed).
 *
 * Writes: the copies in phase new-structures (past the end of the file:
 * until the pointer switch they are unreferenced, so a crash before it
 * loses nothing), the 8-byte pointer edits in phase in-place.  The caller
 * (repair.c) re-checks the image as these writes leave it and plans the
 * rest (refcounts of the copies, COPIED of the first claimant) on that
 * model, as for the snapshot-table rewrite.
 *
 * Relies on the walk's cluster map (computed counts and owners), the
 * active L1 (img->l1), the entry classifier (core/entry.h), fix_util.c for
 * stored refcounts, and the image's memory budget for the claim list.
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

#define MAX_CLONE_BYTES (UINT64_C(64) << 20)
#define MAX_CLONES 4096 /* copies per repair, whatever the cluster size */

/* One active claim: the cluster named, the entry naming it, and where. */
struct claim {
	uint64_t cl;  /* host cluster index named */
	uint64_t at;  /* entry address */
	uint64_t l1i; /* L1 index */
	uint64_t l2i; /* L2 index (L2 claims) */
};

struct clone_ctx {
	struct qc_image *img;
	struct qc_plan *p;
	uint64_t next;  /* next free cluster past everything */
	uint64_t bytes; /* copies planned so far */
	uint64_t nclones;
	uint64_t left;  /* claims not cloned for the byte cap */
	uint8_t *buf;
	int planned;
};

static int cmp_claim(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	if (x->cl != y->cl)
		return x->cl < y->cl ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Followable active L1 entry -> its L2 offset inside the file, else 0
 * (reserved bits allowed: the walk follows the entry, the L1 fixer only
 * clears them). */
static uint64_t l2_of(const struct qc_image *img, uint64_t e)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = qc_l1e_classify(e, &g);
	if (!qc_entry_followable(&ce) || (ce.reasons & ~QC_ER_RESERVED) ||
	    qc_past_eof(img, ce.offset, img->cluster_size))
		return 0;
	return ce.offset;
}

/* The group claims[0..n) of one cluster qualifies for cloning: n claims
 * are all its references (nothing else, no snapshot, claims it), it is
 * owned by `want`, nobody contests it, and its stored refcount is below n
 * (*stored gets it). */
static bool clonable(struct qc_image *img, uint64_t cl, uint64_t n, enum qc_owner want,
		     uint64_t *stored)
{
	uint64_t off = cl << img->cluster_bits;
	if (n < 2 || cl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, cl) != want ||
	    qc_cm_count(&img->cmap, cl) != n || qc_contested(img, off, img->cluster_size))
		return false;
	return qc_fix_stored_refcount(img, cl, stored) && *stored < n;
}

static uint64_t guest_of(const struct qc_image *img, uint64_t l1i, uint64_t l2i)
{
	unsigned shift = qc_l1_shift(img);
	if (shift >= 64 || l1i > (UINT64_MAX >> shift))
		return QC_NO_OFFSET;
	return (l1i << shift) + (l2i << img->cluster_bits);
}

/* Does the L2 entry at t[k] name a data cluster of its own to copy (an
 * allocated cluster the walk owns as data, nobody contests)? */
static bool own_data(const struct qc_image *img, const uint8_t *t, uint64_t k, uint64_t *off)
{
	const unsigned es = img->l2_entry_size;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint64_t e = qc_be64_at(t + k * es), bm = es == 16 ? qc_be64_at(t + k * es + 8) : 0;
	struct qc_entry ce = qc_l2e_classify(e, bm, &g);
	uint64_t cl = ce.offset >> img->cluster_bits;
	if (ce.kind != QC_ENTRY_NORMAL || ce.reasons || qc_past_eof(img, ce.offset, img->cluster_size) ||
	    cl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, cl) != QC_OWN_DATA ||
	    qc_contested(img, ce.offset, img->cluster_size))
		return false;
	*off = ce.offset;
	return true;
}

/* The next free cluster's offset, or false past what an entry can hold. */
static bool take(struct clone_ctx *c, uint64_t *dst)
{
	const uint64_t cs = c->img->cluster_size;
	if (!qc_mul(c->next, cs, dst) || *dst > QC_L2E_OFFSET_MASK - cs)
		return false;
	c->next++;
	c->bytes += cs;
	c->nclones++;
	return true;
}

/*
 * The copy of L2 table tbl (in c->buf) for the claimant at L1 index l1i:
 * each data cluster it names is copied too (the two tables then share
 * nothing, so OFLAG_COPIED stays right in both after any guest write), a
 * zero-allocated standard entry becomes a plain zero entry (it reads zeros
 * either way), compressed clusters stay shared (they never carry
 * OFLAG_COPIED; the refcount planner raises their counts).  False when
 * the copies would pass the byte cap.
 */
static int copy_table(struct clone_ctx *c, uint64_t l1i, bool *fits)
{
	struct qc_image *img = c->img;
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	uint8_t *t = c->buf;
	uint64_t need = cs, off;
	for (uint64_t k = 0; k < cs / es; k++)
		if (own_data(img, t, k, &off) && !(es == 8 && (qc_be64_at(t + k * es) & QC_OFLAG_ZERO)))
			need += cs;
	*fits = c->bytes + need <= MAX_CLONE_BYTES && c->nclones + need / cs <= MAX_CLONES &&
		c->next + need / cs <= QC_L2E_OFFSET_MASK / cs;
	if (!*fits)
		return 0;
	uint8_t *d = malloc(cs);
	if (!d)
		return -ENOMEM;
	int r = 0;
	for (uint64_t k = 0; k < cs / es && r == 0; k++) {
		uint64_t e = qc_be64_at(t + k * es), dst;
		if (!own_data(img, t, k, &off)) {
			/* a compressed or unallocated entry never carries
			 * OFLAG_COPIED (the COPIED planner would clear it inside
			 * the copy, over the copy's own write) */
			qc_put_be64(t + k * es, e & ~QC_OFLAG_COPIED);
			continue;
		}
		if (es == 8 && (e & QC_OFLAG_ZERO)) {
			qc_put_be64(t + k * es, QC_OFLAG_ZERO);
			continue;
		}
		if (!take(c, &dst) || qc_io_read_full(img->io, d, cs, off) < 0) {
			r = -EIO;
			break;
		}
		uint64_t guest = guest_of(img, l1i, k);
		if (!qc_plan_add(c->p, QC_PH_NEW, dst, d, cs, QC_P_REFCOUNT_TOO_LOW,
				 "copy of data cluster 0x%" PRIx64 " for guest 0x%" PRIx64 " (entry %" PRIu64 " of the copied L2 table)",
				 off, guest, k))
			r = -ENOMEM;
		qc_put_be64(t + k * es, (e & ~QC_L2E_OFFSET_MASK) | dst | QC_OFLAG_COPIED);
	}
	free(d);
	return r;
}

/*
 * Clone the cluster of group g[0..n) for claimants 1..n-1.  l2 says the
 * claims are L2 entries (data clusters), else L1 entries (L2 tables).
 */
static int clone_group(struct clone_ctx *c, const struct claim *g, uint64_t n, bool l2,
		       uint64_t stored)
{
	struct qc_image *img = c->img;
	const uint64_t cs = img->cluster_size;
	const uint64_t src = g[0].cl << img->cluster_bits;
	enum qc_code code = stored ? QC_P_REFCOUNT_TOO_LOW : QC_P_REFCOUNT_ZERO;
	const uint64_t span = l2 ? cs : (uint64_t)1 << qc_l1_shift(img);
	const uint64_t keep = guest_of(img, g[0].l1i, l2 ? g[0].l2i : 0);
	for (uint64_t k = 1; k < n; k++) {
		if (qc_io_read_full(img->io, c->buf, cs, src) < 0)
			return -EIO;
		uint64_t moved = guest_of(img, g[k].l1i, l2 ? g[k].l2i : 0), dst;
		bool fits = c->bytes + cs <= MAX_CLONE_BYTES && c->nclones < MAX_CLONES;
		if (fits && !l2) {
			int r = copy_table(c, g[k].l1i, &fits);
			if (r)
				return r;
		}
		if (!fits || !take(c, &dst)) {
			c->left += n - k;
			return 0;
		}
		if (!qc_plan_add(c->p, QC_PH_NEW, dst, c->buf, cs, code,
				 "copy of %s 0x%" PRIx64 " for guest 0x%" PRIx64 " (%s at 0x%" PRIx64 "); guest 0x%" PRIx64 " keeps it (refcount %" PRIu64 ", %" PRIu64 " claims)",
				 l2 ? "data cluster" : "L2 table", src, moved, l2 ? "L2 entry" : "L1 entry",
				 g[k].at, keep, stored, n))
			return -ENOMEM;
		uint8_t raw[8];
		if (qc_io_read_full(img->io, raw, 8, g[k].at) < 0)
			return -EIO;
		uint64_t e = qc_be64_at(raw);
		uint64_t mask = l2 ? QC_L2E_OFFSET_MASK : QC_L1E_OFFSET_MASK;
		/* reserved bits cleared too, as the entry fixers would */
		uint64_t resv = l2 ? QC_L2E_STD_RESERVED_MASK : QC_L1E_RESERVED_MASK;
		uint64_t ne = ((e & ~mask & ~resv) | dst | QC_OFLAG_COPIED);
		qc_put_be64(raw, ne);
		struct qc_write *w = qc_plan_add(
			c->p, QC_PH_INPLACE, g[k].at, raw, 8, code,
			"%s at 0x%" PRIx64 " 0x%016" PRIx64 " -> 0x%016" PRIx64 ": own copy of 0x%" PRIx64 ", which guest 0x%" PRIx64 " keeps",
			l2 ? "L2 entry" : "L1 entry", g[k].at, e, ne, src, keep);
		if (!w)
			return -ENOMEM;
		w->guest_offset = moved;
		w->guest_length = span;
		c->planned = 1;
	}
	return 0;
}

/*
 * No problem record lies inside the L2 table at off, and none was dropped
 * by the per-code cap: its copy would otherwise carry damage the entry
 * fixers then edit in the copy as well, over the copy's own write (found
 * by fuzz/fuzz_repair.c: two planned writes overlapped).
 */
static bool table_clean(const struct qc_image *img, uint64_t off)
{
	const struct qc_problems *ps = &img->problems;
	for (int c = 0; c < QC_P_COUNT; c++)
		if (ps->per_code[c] > QC_MAX_RECORDS_PER_CODE)
			return false;
	/* OFLAG_COPIED records follow from the sharing itself: the copy's
	 * entries are written with the flag right, the original's are fixed
	 * by the COPIED planner on the re-check */
	for (size_t i = 0; i < ps->n; i++)
		if (ps->v[i].loc.offset != QC_NO_OFFSET && ps->v[i].loc.offset >= off &&
		    ps->v[i].loc.offset - off < img->cluster_size &&
		    qc_policy(ps->v[i].code)->fixer != QC_FIX_COPIED)
			return false;
	return true;
}

/* Clone every qualifying group of the sorted claims v[0..n). */
static int clone_groups(struct clone_ctx *c, struct claim *v, size_t n, bool l2)
{
	if (n < 2)
		return 0;
	qsort(v, n, sizeof(*v), cmp_claim);
	int r = 0;
	for (size_t i = 0; i < n && r == 0;) {
		size_t j = i + 1;
		while (j < n && v[j].cl == v[i].cl)
			j++;
		uint64_t stored;
		if (clonable(c->img, v[i].cl, j - i, l2 ? QC_OWN_DATA : QC_OWN_L2, &stored) &&
		    (l2 || table_clean(c->img, v[i].cl << c->img->cluster_bits))) {
			/* the first claimant in guest order keeps the cluster */
			for (size_t k = i + 1; k < j; k++)
				if (v[k].l1i < v[i].l1i || (v[k].l1i == v[i].l1i && v[k].l2i < v[i].l2i)) {
					struct claim t = v[i];
					v[i] = v[k];
					v[k] = t;
				}
			r = clone_group(c, v + i, j - i, l2, stored);
		}
		i = j;
	}
	return r;
}

/* Append one claim, growing the array inside the image's memory budget. */
static bool push(struct qc_image *img, struct claim **v, size_t *n, size_t *cap, struct claim x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		if (!qc_mem_reserve(img, (nc - *cap) * sizeof(**v)))
			return false;
		struct claim *nv = realloc(*v, nc * sizeof(**v));
		if (!nv) {
			qc_mem_release(img, (nc - *cap) * sizeof(**v));
			return false;
		}
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return true;
}

/* Active L2 entries naming a data cluster that has several references,
 * from tables only the active L1 names (each table once). */
static int collect_l2(struct qc_image *img, struct claim **v, size_t *n, size_t *cap)
{
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint8_t *t = malloc(cs);
	if (!t)
		return -ENOMEM;
	int r = 0;
	for (uint64_t i = 0; i < img->h.l1_size && r == 0; i++) {
		uint64_t l2 = l2_of(img, img->l1[i]), tcl = l2 >> img->cluster_bits;
		if (!l2 || tcl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, tcl) != QC_OWN_L2 ||
		    qc_cm_count(&img->cmap, tcl) != 1 || qc_contested(img, l2, cs))
			continue;
		if (qc_io_read_full(img->io, t, cs, l2) < 0) {
			r = -EIO;
			break;
		}
		for (uint64_t k = 0; k < cs / es; k++) {
			uint64_t e = qc_be64_at(t + k * es), bm = es == 16 ? qc_be64_at(t + k * es + 8) : 0;
			struct qc_entry ce = qc_l2e_classify(e, bm, &g);
			/* reserved bits on a followed pointer: the walk counted
			 * it, and the L2 fixer only clears them */
			if (ce.kind != QC_ENTRY_NORMAL || (ce.reasons & ~QC_ER_RESERVED) ||
			    qc_past_eof(img, ce.offset, cs))
				continue;
			uint64_t cl = ce.offset >> img->cluster_bits;
			if (cl >= img->cmap.nclusters || qc_cm_count(&img->cmap, cl) < 2 ||
			    qc_cm_owner(&img->cmap, cl) != QC_OWN_DATA)
				continue;
			if (!push(img, v, n, cap, (struct claim){ cl, l2 + k * es, i, k })) {
				r = -ENOSPC;
				break;
			}
		}
	}
	free(t);
	return r;
}

/*
 * Pointers past the end of the file: the copies go there, so such a
 * pointer (left dangling until its own fix) would name a copy in the image
 * as rewritten.  Found by fuzz/fuzz_repair.c: a truncated image whose L1
 * entry named a lost L2 table where the copy of another table was placed.
 */
static const enum qc_code past_eof_pointers[] = {
	QC_P_BITMAP_ENTRY_PAST_EOF, QC_P_BITMAP_TABLE_PAST_EOF,  QC_P_COMPRESSED_PAST_EOF,
	QC_P_EXT_BITMAPS_DIR_PAST_EOF, QC_P_HEADER_L1_PAST_EOF,  QC_P_HEADER_REFTABLE_PAST_EOF,
	QC_P_L1_L2_PAST_EOF,          QC_P_L2_DATA_PAST_EOF,     QC_P_REFTABLE_ENTRY_PAST_EOF,
	QC_P_SNAPSHOT_ENTRY_PAST_EOF, QC_P_SNAPSHOT_L1_PAST_EOF, QC_P_SNAPSHOT_TABLE_PAST_EOF,
};

int qc_plan_clone(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	if (o->leaks_only || !img->is_qcow2 || !img->geometry_ok || !img->l1_ok || !img->l1 ||
	    img->data_file || (!ps->per_code[QC_P_REFCOUNT_TOO_LOW] && !ps->per_code[QC_P_REFCOUNT_ZERO]))
		return 0;
	for (size_t i = 0; i < sizeof(past_eof_pointers) / sizeof(past_eof_pointers[0]); i++)
		if (ps->per_code[past_eof_pointers[i]])
			return 0; /* the refcount planner raises the counts instead */
	const uint64_t cs = img->cluster_size;
	struct clone_ctx c = { .img = img, .p = p };
	/* past the file, everything mapped and everything planned so far */
	c.next = (img->file_size + cs - 1) >> img->cluster_bits;
	if (qc_cm_end(&img->cmap) > c.next)
		c.next = qc_cm_end(&img->cmap);
	if (((p->end_after + cs - 1) >> img->cluster_bits) > c.next)
		c.next = (p->end_after + cs - 1) >> img->cluster_bits;
	c.buf = malloc(cs);
	struct claim *v = NULL;
	size_t n = 0, cap = 0;
	int r = c.buf ? 0 : -ENOMEM;
	/* L1 entries sharing one L2 table */
	for (uint64_t i = 0; i < img->h.l1_size && r == 0; i++) {
		uint64_t l2 = l2_of(img, img->l1[i]);
		if (l2 && !push(img, &v, &n, &cap,
				(struct claim){ l2 >> img->cluster_bits, img->h.l1_table_offset + 8 * i, i, 0 }))
			r = -ENOSPC;
	}
	if (r == 0 && !qc_contested(img, img->h.l1_table_offset, (uint64_t)img->h.l1_size * 8))
		r = clone_groups(&c, v, n, false);
	/* L2 entries sharing one data cluster */
	n = 0;
	if (r == 0)
		r = collect_l2(img, &v, &n, &cap);
	if (r == 0)
		r = clone_groups(&c, v, n, true);
	if (r == -ENOSPC) {
		qc_plan_leave(p, QC_P_REFCOUNT_TOO_LOW, QC_NO_OFFSET,
			      "clusters two active entries share are not copied apart: the list of claims passes --max-mem");
		r = 0;
	}
	if (r == 0 && c.left)
		qc_plan_leave(p, QC_P_REFCOUNT_TOO_LOW, QC_NO_OFFSET,
			      "%" PRIu64 " more claim(s) on shared clusters not copied apart (at most %" PRIu64 " MiB or %d copies per repair): their refcounts are raised instead, so the claimants share the cluster and a guest write copies it first",
			      c.left, MAX_CLONE_BYTES >> 20, MAX_CLONES);
	qc_mem_release(img, cap * sizeof(*v));
	free(v);
	free(c.buf);
	return r < 0 ? r : c.planned;
}
