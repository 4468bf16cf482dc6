/*
 * tables.c - the guest mapping walk: the active L1 table, every usable
 * snapshot L1 table, and every L2 table they reference
 * (doc/format.md §4, §4.3, §9.3, §9.4).
 *
 * 1. Each L1 table is read, claimed and its entries validated (reserved bits,
 *    alignment, flags with offset 0, L2 past EOF).  An entry that fails is
 *    never followed: qemu-img parses L2 tables at unaligned offsets and at
 *    offset 0 (the header), and "repairs" them into guest data (§9.5 A, J).
 * 2. All L2 references of all L1 tables are sorted by L2 offset.  Each L2
 *    cluster is claimed once with as many references as L1 entries point to
 *    it, read in large sorted runs, and processed ONCE; every data reference
 *    it holds is counted with that multiplicity, which is exactly what
 *    qemu-img's walk of every L1 counts.
 * 3. Every L2 entry is validated (standard and extended entries), its
 *    clusters are claimed as guest data, vm_state or compressed data, the
 *    active entries' OFLAG_COPIED is recorded in the cluster map for
 *    copied.c, qemu-img's statistics are accumulated (active L1 only), and
 *    the vm_state coverage of each snapshot is measured for vmstate.c.
 *    (--deep finds the compressed descriptors itself: deepwalk.c.)
 * With --jobs above 1, helper threads read the runs of L2 tables ahead and
 * decode their entries into segments (fast_decode, a function of the bytes
 * alone); every claim and report is still made here, table by table in
 * sorted order, so the result does not depend on the threads.
 *
 * Relies on: header.c (geometry, l1_ok), snapshots.c (l1_usable, validated
 * l1_size/offset, vm_first_l1_index, vm_state_size).
 *
 * Memory of the whole walk (tables.c + refcounts.c + copied.c), in bytes:
 *   cluster map      131072 charged per 64 Ki-cluster page holding a
 *                    referenced cluster (2 per cluster; held: 1.3 KiB per
 *                    page + 1 KiB per 512-cluster block whose entries
 *                    differ, clustermap.c) + 8 per 64 Ki clusters of file
 *                    + 32 per cluster referenced more than 1022 times
 *   tables.c         8 x active l1_size + 16..32 x non-empty L1 entries of
 *                    all L1 tables + S read slots (prefetch.h) of RUN_MAX
 *                    (256 KiB, or one cluster if larger) + 64 KiB of decoded
 *                    segments + 16 per table a run holds, and a 512 KiB
 *                    L1 chunk (snapshot L1 tables are read by extent in
 *                    chunks, holes skipped: walk_l1())
 *   refcounts.c      13 x reftable entries (<= 13 MiB) + S x RUN_MAX
 *                    + 6 KiB
 * where S = 1 with --jobs=1, else min(jobs + 1, 4).  I.e. about 2 bytes
 * per referenced host cluster + 24 per L2 reference + up to 5 MiB (jobs
 * 1) or 9 MiB, whatever the virtual size or the file's apparent size.
 * Every size comes from a field validated before (header.c,
 * snapshots.c).  The map and every allocation sized by the image (tables,
 * lists, indexes) draw on one budget, opt.mem_cap (budget.c
 * qc_budget_alloc()); only the fixed buffers (the read slots, 6 KiB, the
 * L1 chunk, one cluster) are outside it.
 */
#include "check.h"
#include "l1read.h"
#include "prefetch.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <stdlib.h>
#include <string.h>

/* bytes per run of L2 tables (prefetch.h: one per slot); scattered tables
 * come 16 to a run at most (QC_PF_EXTENTS_MAX), so 4 tables of 64 KiB fill
 * it and 1 MiB bought nothing but resident memory on the bench image */
#define RUN_MAX (1u << 18)

/* Test hook (check.h): false walks every L2 entry through the classifier
 * and claims data clusters one by one (tests/unit/test_walk_diff.c). */
bool qc_walk_fast_paths = true;

struct l2ref {
	uint64_t l2;       /* L2 table offset */
	uint32_t l1_index;
	int32_t table;     /* -1 active, else snapshot index */
};

struct walk {
	struct qc_image *img;
	struct l2ref *refs;
	size_t n, cap;
	unsigned shift;    /* log2 of one L1 entry's guest span */
	/* per-L2 state */
	uint64_t l2_off;
	uint64_t guest0;   /* guest offset of entry 0 through the first reference */
	int32_t snap;      /* snapshot of the first reference, -1 if active */
	uint64_t n_data, n_vm, n_act;
	/* pending run of data clusters (see claim_data) */
	uint64_t run_start, run_n, run_j;
	unsigned run_flags;
	struct qc_loc run_loc;
};

/* a << s, saturating at UINT64_MAX. */
static uint64_t shl_sat(uint64_t a, unsigned s)
{
	if (s >= 64)
		return a ? UINT64_MAX : 0;
	if (a > (UINT64_MAX >> s))
		return UINT64_MAX;
	return a << s;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static bool push_ref(struct walk *w, uint64_t l2, uint32_t i, int32_t table)
{
	struct l2ref *r = qc_budget_grow(w->img, w->refs, &w->cap, w->n, sizeof(*r), 1024,
					 "the list of L2 references");
	if (!r)
		return false;
	w->refs = r;
	w->refs[w->n++] = (struct l2ref){ l2, i, table };
	return true;
}

/* vm_state hole candidate for snapshot s at vm-relative offset v. */
static void vm_hole(struct qc_snapshot *sn, uint64_t v)
{
	if (v < sn->vm_state_size && v < sn->vm_first_hole)
		sn->vm_first_hole = v;
}

/* Validate entries [first, first+n) of one L1 table (ent[k] is entry
 * first+k) and collect their L2 references. */
static bool scan_entries(struct walk *w, const uint64_t *ent, uint32_t first, uint32_t n,
			 uint64_t l1_off, int32_t table)
{
	struct qc_image *img = w->img;
	struct qc_problems *ps = &img->problems;
	struct qc_snapshot *sn = table >= 0 ? &img->snapshots[table] : NULL;
	uint64_t vm_first = sn ? sn->vm_first_l1_index : UINT64_MAX;
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = first + k;
		uint64_t e = ent[k];
		struct qc_entry ce = qc_l1e_classify(e, &g);
		uint64_t l2 = ce.offset;
		struct qc_loc loc = { l1_off + 8 * (uint64_t)i, shl_sat(i, w->shift),
				      shl_sat(1, w->shift), table, NULL };
		bool ok = qc_entry_followable(&ce);
		if (ce.reasons & QC_ER_RESERVED)
			qc_report(ps, QC_P_L1_ENTRY_RESERVED, loc, 1,
				  "L1 entry %u (0x%llx) has reserved bits set", i,
				  (unsigned long long)e);
		if (ce.reasons & QC_ER_NO_OFFSET) {
			qc_report(ps, QC_P_L1_ENTRY_NO_OFFSET, loc, 1,
				  "L1 entry %u (0x%llx) has flags but no L2 offset", i,
				  (unsigned long long)e);
		} else if (ce.reasons & QC_ER_UNALIGNED) {
			qc_report(ps, QC_P_L1_ENTRY_UNALIGNED, loc, 1,
				  "L1 entry %u: L2 table offset 0x%llx is not cluster aligned", i,
				  (unsigned long long)l2);
		} else if (ok && qc_past_eof(img, l2, img->cluster_size)) {
			qc_report(ps, QC_P_L1_L2_PAST_EOF, loc, 1,
				  "L1 entry %u: L2 table at 0x%llx is past the end of the file", i,
				  (unsigned long long)l2);
			ok = false;
		}
		if (ok) {
			if (!push_ref(w, l2, i, table))
				return false;
		} else if (sn && i >= vm_first) {
			vm_hole(sn, shl_sat(i - vm_first, w->shift));
		}
	}
	return true;
}

#define L1_CHUNK_ENTRIES (64u * 1024) /* entries read at once: 512 KiB */

/*
 * Read and scan one L1 table (at off, size entries, validated) by data
 * extent of the file (qc_io_next_data/next_hole): entries lying in a hole
 * or past the end of the file are zeros, which need no check, so they are
 * neither read nor scanned; for the vm_state coverage only the first zero
 * entry of a gap counts.  A snapshot L1 table in a hole thus costs nothing
 * (SECURITY.md, "Bounded time").  keep, when not NULL, is a zeroed array
 * of size entries that receives the table (the active L1, img->l1).
 * chunk holds L1_CHUNK_ENTRIES entries.
 */
struct l1walk {
	struct walk *w;
	struct qc_snapshot *sn;
	uint64_t vm_first;
	uint64_t off;
	int32_t table;
	uint64_t *keep;
};

static bool l1_run(void *ctx, const uint64_t *ent, uint32_t first, uint32_t n)
{
	struct l1walk *l = ctx;
	if (l->keep)
		memcpy(l->keep + first, ent, (size_t)n * 8);
	return scan_entries(l->w, ent, first, n, l->off, l->table);
}

/* The gap [at, a) is zeros: only its first entry counts for vm_state. */
static void l1_gap(void *ctx, uint32_t at, uint32_t a)
{
	struct l1walk *l = ctx;
	if (l->sn && a > l->vm_first)
		vm_hole(l->sn, shl_sat((at > l->vm_first ? at : l->vm_first) - l->vm_first, l->w->shift));
}

static bool walk_l1(struct walk *w, uint64_t off, uint32_t size, int32_t table, uint64_t *keep,
		    uint8_t *chunk)
{
	struct qc_image *img = w->img;
	struct qc_snapshot *sn = table >= 0 ? &img->snapshots[table] : NULL;
	uint64_t vm_first = sn ? sn->vm_first_l1_index : UINT64_MAX;
	struct l1walk l = { w, sn, vm_first, off, table, keep };
	if (!qc_l1_read_extents(img, off, size, chunk, L1_CHUNK_ENTRIES, l1_run, l1_gap, &l))
		return false;
	if (sn && sn->vm_state_size) {
		/* vm_state beyond the L1 table's coverage is a hole too */
		uint64_t cover = size > vm_first ? shl_sat(size - vm_first, w->shift) : 0;
		vm_hole(sn, cover);
	}
	return true;
}

static int ref_cmp(const void *a, const void *b)
{
	const struct l2ref *x = a, *y = b;
	if (x->l2 != y->l2)
		return x->l2 < y->l2 ? -1 : 1;
	if (x->table != y->table)
		return x->table < y->table ? -1 : 1;
	return x->l1_index < y->l1_index ? -1 : x->l1_index > y->l1_index;
}

static bool ref_is_vm(const struct qc_image *img, const struct l2ref *r)
{
	if (r->table < 0)
		return r->l1_index >= img->l1_vm_state_index;
	return r->l1_index >= img->snapshots[r->table].vm_first_l1_index;
}

/*
 * Data claims are batched: contiguous clusters with the same COPIED flag
 * form a run claimed with qc_cm_add_run; a cluster the fast path refuses
 * (another owner, a large count) goes through qc_claim, which reports the
 * overlap.
 */
static void claim_owner(struct walk *w, enum qc_owner o, uint64_t nref, unsigned flags)
{
	struct qc_image *img = w->img;
	struct qc_clustermap *m = &img->cmap;
	uint64_t first = w->run_start >> img->cluster_bits;
	uint64_t n = w->run_n, done = 0;
	while (done < n) {
		done += qc_cm_add_run(m, first + done, n - done, o, nref, flags);
		if (done >= n)
			break;
		if (m->over_cap) {
			qc_abort(img, "memory cap reached while mapping host clusters");
			return;
		}
		struct qc_loc loc = w->run_loc;
		if (loc.guest_offset != QC_NO_OFFSET)
			loc.guest_offset += done << img->cluster_bits;
		loc.offset += done * img->l2_entry_size;
		uint64_t off = (first + done) << img->cluster_bits;
		if (!qc_claim(img, off, img->cluster_size, o, nref, loc))
			return;
		if (flags && !qc_cm_set_flags(m, first + done, flags)) {
			qc_abort(img, "memory cap reached while mapping host clusters");
			return;
		}
		done++;
	}
}

static void flush_run(struct walk *w)
{
	if (!w->run_n)
		return;
	unsigned flags = w->n_act ? w->run_flags : 0;
	if (w->n_data)
		claim_owner(w, QC_OWN_DATA, w->n_data, flags);
	if (w->n_vm && !w->img->aborted)
		claim_owner(w, QC_OWN_VMSTATE, w->n_vm, w->n_data ? 0 : flags);
	w->run_n = 0;
}

/* Claim one data cluster (aligned, inside the file) for L2 entry j. */
static inline void claim_data(struct walk *w, uint64_t off, uint64_t e, uint64_t j)
{
	unsigned flags = (e & QC_OFLAG_COPIED) ? QC_CM_ACTIVE_COPIED : QC_CM_ACTIVE_NOCOPIED;
	if (qc_walk_fast_paths && w->run_n &&
	    off == w->run_start + (w->run_n << w->img->cluster_bits) &&
	    flags == w->run_flags && j == w->run_j + w->run_n) {
		w->run_n++;
		return;
	}
	flush_run(w);
	w->run_start = off;
	w->run_n = 1;
	w->run_j = j;
	w->run_flags = flags;
	w->run_loc = (struct qc_loc){ w->l2_off + j * w->img->l2_entry_size,
				      w->guest0 == QC_NO_OFFSET ? QC_NO_OFFSET
								: w->guest0 + (j << w->img->cluster_bits),
				      w->img->cluster_size, w->snap, NULL };
}

/* One compressed entry (ce: its classification). */
static void compressed_entry(struct walk *w, uint64_t e, uint64_t bm, const struct qc_entry *ce,
			     struct qc_loc loc)
{
	struct qc_image *img = w->img;
	struct qc_problems *ps = &img->problems;
	uint64_t coff = ce->offset;
	uint64_t len = ce->length;
	if (ce->reasons & QC_ER_COMPRESSED_COPIED)
		qc_report(ps, QC_P_COMPRESSED_COPIED, loc, 1,
			  "compressed L2 entry 0x%llx (data at 0x%llx) has OFLAG_COPIED set",
			  (unsigned long long)e, (unsigned long long)coff);
	if (ce->reasons & QC_ER_COMPRESSED_DATA_FILE) {
		qc_report(ps, QC_P_COMPRESSED_WITH_DATA_FILE, loc, 1,
			  "compressed L2 entry 0x%llx in an image with an external data file",
			  (unsigned long long)e);
		return;
	}
	if (ce->reasons & QC_ER_COMPRESSED_BITMAP)
		qc_report(ps, QC_P_COMPRESSED_BITMAP_NONZERO, loc, 1,
			  "compressed L2 entry 0x%llx has subcluster bitmap 0x%llx",
			  (unsigned long long)e, (unsigned long long)bm);
	if (ce->reasons & QC_ER_COMPRESSED_TOO_LARGE) {
		qc_report(ps, QC_P_COMPRESSED_OFFSET_TOO_LARGE, loc, 1,
			  "compressed L2 entry 0x%llx: host offset 0x%llx has bits 56+ set",
			  (unsigned long long)e, (unsigned long long)coff);
		return;
	}
	if (qc_past_eof(img, coff, len)) {
		qc_report(ps, QC_P_COMPRESSED_PAST_EOF, loc, 1,
			  "compressed data [0x%llx, +%llu) lies past the end of the file (%llu bytes)",
			  (unsigned long long)coff, (unsigned long long)len,
			  (unsigned long long)img->file_size);
		return;
	}
	qc_claim(img, coff, len, QC_OWN_COMPRESSED, w->n_data + w->n_vm, loc);
}

/*
 * Report what the classifier found wrong with a standard or extended L2
 * entry that is not compressed (the unaligned offset excepted: the caller
 * reports it with the offset), in the order the reasons are listed.
 */
static void report_l2_flags(struct qc_problems *ps, struct qc_loc loc, uint64_t e, uint64_t bm,
			    unsigned reasons)
{
	if (reasons & QC_ER_RESERVED)
		qc_report(ps, QC_P_L2_ENTRY_RESERVED, loc, 1,
			  "L2 entry 0x%llx has reserved bits set", (unsigned long long)e);
	if (reasons & QC_ER_EXTL2_BIT0)
		qc_report(ps, QC_P_L2_EXTL2_BIT0, loc, 1,
			  "extended L2 entry 0x%llx has descriptor bit 0 set", (unsigned long long)e);
	if (reasons & QC_ER_ZERO_V2)
		qc_report(ps, QC_P_L2_ZERO_FLAG_V2, loc, 1,
			  "L2 entry 0x%llx has the zero flag in a version 2 image",
			  (unsigned long long)e);
	if (reasons & QC_ER_COPIED_NO_OFFSET)
		qc_report(ps, QC_P_L2_COPIED_NO_OFFSET, loc, 1,
			  "L2 entry 0x%llx is OFLAG_COPIED with offset 0 (read as unallocated)",
			  (unsigned long long)e);
	if (reasons & QC_ER_SUB_ALLOC_UNALLOCATED)
		qc_report(ps, QC_P_L2_SUBCLUSTER_ALLOC_UNALLOCATED, loc, 1,
			  "unallocated extended L2 entry has allocation bitmap 0x%llx",
			  (unsigned long long)bm);
	if (reasons & QC_ER_SUB_ALLOC_AND_ZERO)
		qc_report(ps, QC_P_L2_SUBCLUSTER_ALLOC_AND_ZERO, loc, 1,
			  "L2 entry 0x%llx: subcluster bitmap 0x%llx marks subclusters both allocated and zero",
			  (unsigned long long)e, (unsigned long long)bm);
}

/* Counters of one L2 table for qemu-img's statistics (allocated,
 * fragmented, compressed clusters). */
struct l2count {
	uint64_t next_contig, alloc, frag, comp;
};

/* One more allocated cluster at off; fragmented unless it follows the
 * previous one. */
static void count_alloc(struct l2count *c, uint64_t off, uint64_t cs)
{
	c->alloc++;
	if (c->next_contig && off != c->next_contig)
		c->frag++;
	c->next_contig = off + cs;
}

/*
 * How many of the (at most max) entries at p (es bytes apart) equal
 * expect, expect + cs, expect + 2 cs, ... with bitmap bm (extended L2):
 * the continuation of a run of contiguous data clusters with the same
 * flags.  Bounded so that every offset it accepts (starting at off) stays
 * below fsize and below 2^56, so each accepted entry is valid exactly as
 * the one that started the run.
 */
static uint64_t match_run(const uint8_t *p, unsigned es, uint64_t max, uint64_t expect,
			  uint64_t bm, uint64_t cs, uint64_t off, uint64_t fsize)
{
	uint64_t lim = off < fsize ? (fsize - off + cs - 1) / cs : 0;
	uint64_t lim56 = off < (UINT64_C(1) << 56) ? ((UINT64_C(1) << 56) - off) / cs : 0;
	if (max > lim)
		max = lim;
	if (max > lim56)
		max = lim56;
	uint64_t k = 0;
	while (k < max && qc_be64_at(p + (size_t)es * k) == expect &&
	       (es == 8 || qc_be64_at(p + (size_t)es * k + 8) == bm)) {
		expect += cs;
		k++;
	}
	return k;
}

/*
 * The fast path (qc_walk_fast_paths), in two halves so that the first can
 * run ahead on a helper thread (walk_all): fast_decode looks at the
 * entries at p (left of them) and says how many the fast path takes:
 * SEG_EMPTY, k empty entries; SEG_FAST, an aligned data cluster inside the
 * file with no flag that needs the classifier and the k - 1 entries
 * continuing its run; SEG_SLOW (k = 1), the entry needs the classifier.
 * It reads only the geometry (struct geo), so its answer depends on the
 * bytes alone.  fast_apply then counts and claims a SEG_FAST segment as
 * classified_entry() would each entry: every entry it takes is one the
 * classifier finds NORMAL with no reason to report.
 */
enum { SEG_EMPTY = 0, SEG_FAST = 1, SEG_SLOW = 2 };

struct geo {
	uint64_t cs;       /* cluster size */
	unsigned es;       /* L2 entry size */
	bool ext;          /* extended L2 */
	uint64_t fsize;    /* file size, 0 with an external data file (no data
			    * clusters in this file) */
	uint64_t entries;  /* entries per L2 table */
};

static struct geo geo_of(const struct qc_image *img)
{
	return (struct geo){ img->cluster_size, img->l2_entry_size, img->extended_l2,
			     img->data_file ? 0 : img->file_size, img->l2_entries };
}

static uint64_t fast_decode(const struct geo *g, const uint8_t *p, uint64_t left, unsigned *type)
{
	const uint64_t cs = g->cs;
	const unsigned es = g->es;
	/* entries the fast path must not take: compressed, reserved, zero flag */
	const uint64_t slow_bits = QC_OFLAG_COMPRESSED | QC_L2E_STD_RESERVED_MASK | QC_OFLAG_ZERO;
	uint64_t e = qc_be64_at(p);
	uint64_t bm = g->ext ? qc_be64_at(p + 8) : 0;
	if (!e && !bm) {
		uint64_t k = 1;
		while (k < left && !qc_be64_at(p + (size_t)es * k) &&
		       (!g->ext || !qc_be64_at(p + (size_t)es * k + 8)))
			k++;
		*type = SEG_EMPTY;
		return k;
	}
	uint64_t off = e & QC_L2E_OFFSET_MASK;
	if ((e & slow_bits) || !off || (off & (cs - 1)) || off >= g->fsize || ((bm >> 32) & bm)) {
		*type = SEG_SLOW;
		return 1;
	}
	*type = SEG_FAST;
	return 1 + match_run(p + es, es, left - 1, e + cs, bm, cs, off + cs, g->fsize);
}

/* Count and claim the SEG_FAST segment of k entries that starts with
 * entry j (at p). */
static void fast_apply(struct walk *w, const uint8_t *p, uint64_t j, uint64_t k,
		       struct l2count *c)
{
	const uint64_t cs = w->img->cluster_size;
	uint64_t e = qc_be64_at(p);
	uint64_t off = e & QC_L2E_OFFSET_MASK;
	count_alloc(c, off, cs);
	claim_data(w, off, e, j);
	/* claim_data left the pending run ending with this entry: extend it */
	c->alloc += k - 1;
	c->next_contig += (k - 1) * cs;
	w->run_n += k - 1;
}

/* A data cluster of a classified normal entry: checked against the data
 * file or the end of the file, then claimed. */
static void data_entry(struct walk *w, uint64_t e, uint64_t off, uint64_t j, struct qc_loc loc)
{
	struct qc_image *img = w->img;
	struct qc_problems *ps = &img->problems;
	if (img->data_file) {
		if (loc.guest_offset != UINT64_MAX && off != loc.guest_offset)
			qc_report(ps, QC_P_L2_DATA_FILE_OFFSET_MISMATCH, loc, 1,
				  "L2 entry 0x%llx: data file offset 0x%llx differs from guest offset 0x%llx",
				  (unsigned long long)e, (unsigned long long)off,
				  (unsigned long long)loc.guest_offset);
		if (w->n_act && !(e & QC_OFLAG_COPIED))
			qc_report(ps, QC_P_L2_COPIED_MISSING, loc, 1,
				  "L2 entry 0x%llx lacks OFLAG_COPIED (external data clusters always have refcount 1)",
				  (unsigned long long)e);
		return;
	}
	if (qc_past_eof(img, off, img->cluster_size)) {
		qc_report(ps, QC_P_L2_DATA_PAST_EOF, loc, 1,
			  "L2 entry 0x%llx: data cluster 0x%llx is past the end of the file (%llu bytes)",
			  (unsigned long long)e, (unsigned long long)off,
			  (unsigned long long)img->file_size);
		return;
	}
	claim_data(w, off, e, j);
}

/* Entry j (at p) through the classifier (core/entry.c): every kind, every
 * problem. */
static void classified_entry(struct walk *w, const uint8_t *p, uint64_t j, struct l2count *c)
{
	struct qc_image *img = w->img;
	const uint64_t cs = img->cluster_size;
	const struct qc_entry_geom geom = qc_entry_geom_of(img);
	uint64_t e = qc_be64_at(p);
	uint64_t bm = img->extended_l2 ? qc_be64_at(p + 8) : 0;
	struct qc_loc loc = { w->l2_off + j * img->l2_entry_size,
			      w->guest0 == UINT64_MAX ? UINT64_MAX : w->guest0 + j * cs, cs, w->snap,
			      NULL };
	struct qc_entry ce = qc_l2e_classify(e, bm, &geom);
	if (ce.kind == QC_ENTRY_COMPRESSED) {
		compressed_entry(w, e, bm, &ce, loc);
		if (!img->data_file) {
			c->alloc++;
			c->comp++;
			c->frag++;
		}
		return;
	}
	report_l2_flags(&img->problems, loc, e, bm, ce.reasons);
	if (ce.kind != QC_ENTRY_NORMAL)
		return; /* unallocated or zero-plain */
	/* normal or zero-alloc */
	count_alloc(c, ce.offset, cs);
	if (ce.reasons & QC_ER_DATA_UNALIGNED)
		qc_report(&img->problems, QC_P_L2_ENTRY_UNALIGNED, loc, 1,
			  "L2 entry 0x%llx: cluster offset 0x%llx is not cluster aligned",
			  (unsigned long long)e, (unsigned long long)ce.offset);
	else
		data_entry(w, e, ce.offset, j, loc);
}

/*
 * Segments of one L2 table decoded ahead by fast_decode (walk_all's
 * helpers): segs[0..nseg) (SEG(k, type)) cover its entries [0, upto);
 * the rest, if the segment space ran out, is decoded in walk_l2.
 */
#define SEG(k, t) ((uint32_t)(k) << 2 | (uint32_t)(t))
struct l2dec {
	const uint32_t *segs;
	uint32_t nseg, upto;
};

/* One entry or segment of entries at j, k of them of this type. */
static void walk_seg(struct walk *w, const uint8_t *t, uint64_t j, uint64_t k, unsigned type,
		     struct l2count *c)
{
	const unsigned es = w->img->l2_entry_size;
	if (type == SEG_FAST)
		fast_apply(w, t + j * es, j, k, c);
	else if (type == SEG_SLOW)
		classified_entry(w, t + j * es, j, c);
}

/* Validate and account the entries of one L2 table (t: its bytes; dec,
 * when not NULL, the segments already decoded). */
static void walk_l2(struct walk *w, const uint8_t *t, const struct l2dec *dec)
{
	struct qc_image *img = w->img;
	const struct geo g = geo_of(img);
	const uint64_t n = img->l2_entries;
	struct l2count c = { 0 };
	uint64_t j = 0;
	w->run_n = 0;
	w->run_start = 0;
	if (dec) {
		for (uint32_t i = 0; i < dec->nseg && !img->aborted; i++) {
			uint64_t k = dec->segs[i] >> 2;
			walk_seg(w, t, j, k, dec->segs[i] & 3, &c);
			j += k;
		}
	}
	while (j < n && !img->aborted) {
		unsigned type = SEG_SLOW;
		uint64_t k = qc_walk_fast_paths ? fast_decode(&g, t + j * g.es, n - j, &type) : 1;
		walk_seg(w, t, j, k, type, &c);
		j += k;
	}
	if (img->aborted)
		return;
	flush_run(w);
	if (w->n_act) {
		img->stats.allocated_clusters += c.alloc * w->n_act;
		img->stats.fragmented_clusters += c.frag * w->n_act;
		img->stats.compressed_clusters += c.comp * w->n_act;
	}
}

/* vm_state coverage of one snapshot reference into an L2 table. */
static void vm_account(struct walk *w, const uint8_t *t, const struct l2ref *r)
{
	struct qc_image *img = w->img;
	struct qc_snapshot *sn = &img->snapshots[r->table];
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	const bool ext = img->extended_l2;
	uint64_t vbase = shl_sat(r->l1_index - sn->vm_first_l1_index, w->shift);
	uint64_t gbase = shl_sat(r->l1_index, w->shift);
	for (uint64_t j = 0; j < img->l2_entries; j++) {
		const uint8_t *p = t + j * es;
		uint64_t e = qc_be64_at(p);
		uint64_t bm = ext ? qc_be64_at(p + 8) : 0;
		bool mapped = (e & (QC_OFLAG_COMPRESSED | QC_L2E_OFFSET_MASK)) ||
			      (!ext && (e & QC_OFLAG_ZERO)) || (ext && (bm >> 32)) ||
			      (img->data_file && (e & QC_OFLAG_COPIED));
		uint64_t v = vbase + j * cs;
		if (v < vbase)
			v = UINT64_MAX;
		if (v < sn->vm_state_size) {
			if (mapped)
				sn->vm_clusters_mapped++;
			else
				vm_hole(sn, v);
		} else if (mapped) {
			sn->vm_clusters_past_end++;
			sn->vm_first_past_end = min64(sn->vm_first_past_end, gbase + j * cs);
		}
	}
}

/* Process the references r[0..k) to one L2 table whose bytes are t. */
static void process_group(struct walk *w, const uint8_t *t, const struct l2ref *r, size_t k,
			  const struct l2dec *dec)
{
	struct qc_image *img = w->img;
	w->l2_off = r[0].l2;
	w->n_data = w->n_vm = w->n_act = 0;
	for (size_t i = 0; i < k; i++) {
		if (ref_is_vm(img, &r[i]))
			w->n_vm++;
		else
			w->n_data++;
		if (r[i].table < 0)
			w->n_act++;
	}
	w->snap = r[0].table; /* sorted: the active table comes first */
	w->guest0 = shl_sat(r[0].l1_index, w->shift);
	walk_l2(w, t, dec);
	for (size_t i = 0; i < k; i++)
		if (r[i].table >= 0 && ref_is_vm(img, &r[i]))
			vm_account(w, t, &r[i]);
}

/*
 * Does [off, off+len) touch a cluster another L1 table (active or snapshot)
 * already owns?  *prev gets that owner.  Bounded by the range's clusters.
 */
static bool l1_range_taken(const struct qc_image *img, uint64_t off, uint64_t len,
			   enum qc_owner *prev)
{
	if (!len)
		return false;
	uint64_t first = off >> img->cluster_bits, last;
	if (!qc_add(off, len - 1, &last))
		return false;
	last >>= img->cluster_bits;
	for (uint64_t c = first; c <= last && c < img->cmap.nclusters; c++) {
		enum qc_owner o = qc_cm_owner(&img->cmap, c);
		if (o == QC_OWN_L1 || o == QC_OWN_SNAPSHOT_L1) {
			*prev = o;
			return true;
		}
	}
	return false;
}

/*
 * The runs of L2 tables for the prefetcher (prefetch.h): groups of equal
 * offsets, contiguous clusters merged into extents, at most bufmax bytes.  next() moves the
 * cursor (under the prefetcher's lock); prep() reads only the rest.
 */
#define SEG_MAX 16384u /* decoded segments per run (64 KiB) */

struct feed {
	const struct l2ref *r;
	size_t n, cursor;
	size_t bufmax;
	struct geo g;
	bool fast;         /* qc_walk_fast_paths when the walk started */
	size_t groups_max; /* distinct tables in one run */
};

/* What prep leaves in a slot's aux: one l2dec per table of the run, in
 * order, then the segments they point into. */
static size_t aux_size(const struct feed *f)
{
	return f->groups_max * sizeof(struct l2dec) + SEG_MAX * sizeof(uint32_t);
}

static bool feed_next(void *ctx, struct qc_pf_run *run)
{
	struct feed *f = ctx;
	size_t a = f->cursor, b = a;
	if (a >= f->n)
		return false;
	while (b < f->n && qc_pf_add(run, f->r[b].l2, (size_t)f->g.cs, f->bufmax))
		b++;
	run->a = a;
	run->b = b;
	f->cursor = b;
	return true;
}

static void feed_prep(const void *ctx, const struct qc_pf_run *run, const uint8_t *buf, void *aux)
{
	const struct feed *f = ctx;
	struct l2dec *dec = aux;
	uint32_t *segs = (uint32_t *)(dec + f->groups_max);
	uint32_t used = 0;
	size_t gi = 0;
	for (size_t a = run->a; a < run->b; gi++) {
		const uint8_t *t = buf + qc_pf_at(run, f->r[a].l2);
		struct l2dec *d = &dec[gi];
		d->segs = segs + used;
		d->nseg = 0;
		uint64_t j = 0;
		while (f->fast && j < f->g.entries && used < SEG_MAX) {
			unsigned type;
			uint64_t k = fast_decode(&f->g, t + j * f->g.es, f->g.entries - j, &type);
			segs[used++] = SEG(k, type);
			d->nseg++;
			j += k;
		}
		d->upto = (uint32_t)j;
		uint64_t l2 = f->r[a].l2;
		while (a < run->b && f->r[a].l2 == l2)
			a++;
	}
}

/* Claim every L2 cluster once, then read and walk them in sorted runs,
 * read and decoded ahead on --jobs threads (prefetch.h); the tables are
 * processed here, one at a time in sorted order, whatever the threads do. */
static void walk_all(struct walk *w)
{
	struct qc_image *img = w->img;
	const uint64_t cs = img->cluster_size;
	struct l2ref *r = w->refs;
	size_t n = w->n;
	if (!n)
		return;
	qsort(r, n, sizeof(*r), ref_cmp);
	struct feed f = { r, n, 0, RUN_MAX > cs ? RUN_MAX : (size_t)cs, geo_of(img),
			  qc_walk_fast_paths, 0 };
	f.groups_max = f.bufmax / cs;
	struct qc_prefetch *pf = qc_pf_start(img->io, img->opt.jobs, f.bufmax, aux_size(&f),
					     feed_next, feed_prep, &f);
	if (!pf) {
		qc_abort(img, "out of memory reading L2 tables");
		return;
	}
	struct qc_pf_slot *sl;
	while (!img->aborted && (sl = qc_pf_get(pf)) != NULL) {
		/* a failed read: the tables before its extent were read (and
		 * not decoded ahead), the others are not walked */
		const struct l2dec *dec = sl->err < 0 ? NULL : sl->aux;
		for (size_t g = sl->run.a; g < sl->run.b && !img->aborted; dec = dec ? dec + 1 : NULL) {
			if (sl->err < 0 && r[g].l2 >= sl->err_off)
				break;
			size_t h = g + 1;
			while (h < sl->run.b && r[h].l2 == r[g].l2)
				h++;
			bool active = r[g].table < 0;
			const struct l2ref *fr = &r[g];
			uint64_t l1_off = fr->table < 0 ? img->h.l1_table_offset
							: img->snapshots[fr->table].l1_table_offset;
			struct qc_loc loc = { l1_off + 8 * (uint64_t)fr->l1_index,
					      shl_sat(fr->l1_index, w->shift), shl_sat(1, w->shift),
					      fr->table, NULL };
			if (!qc_claim(img, fr->l2, cs, active ? QC_OWN_L2 : QC_OWN_L2_INACTIVE,
				      h - g, loc))
				break;
			process_group(w, sl->buf + qc_pf_at(&sl->run, fr->l2), &r[g], h - g, dec);
			g = h;
		}
		if (sl->err < 0 && !img->aborted)
			qc_abort(img, "I/O error reading L2 tables at 0x%llx: %s",
				 (unsigned long long)sl->err_off, strerror(-sl->err));
		qc_pf_release(pf);
	}
	qc_pf_stop(pf);
}

void qc_pass_tables(struct qc_image *img)
{
	if (!img->geometry_ok)
		return;
	struct walk w = { .img = img, .shift = qc_l1_shift(img) };
	uint8_t *chunk = malloc((size_t)L1_CHUNK_ENTRIES * 8);
	if (!chunk) {
		qc_abort(img, "out of memory reading L1 tables");
		return;
	}
	if (img->l1_ok && img->h.l1_size) {
		uint64_t off = img->h.l1_table_offset;
		img->l1 = qc_budget_alloc(img, (uint64_t)img->h.l1_size * 8, "an L1 table");
		if (!img->l1)
			goto out;
		if (!qc_claim(img, off, (uint64_t)img->h.l1_size * 8, QC_OWN_L1, 1, QC_LOC(off)) ||
		    !walk_l1(&w, off, img->h.l1_size, -1, img->l1, chunk))
			goto out;
	}
	for (uint32_t s = 0; s < img->nsnapshots; s++) {
		struct qc_snapshot *sn = &img->snapshots[s];
		if (!sn->l1_usable)
			continue;
		sn->vm_clusters_mapped = sn->vm_clusters_past_end = 0;
		sn->vm_first_hole = sn->vm_first_past_end = QC_NO_OFFSET;
		if (!sn->l1_size) {
			vm_hole(sn, 0);
			continue;
		}
		struct qc_loc loc = { sn->entry_offset, QC_NO_OFFSET, 0, (int32_t)s, NULL };
		/* A snapshot L1 over bytes another L1 table holds is reported and
		 * not walked again: N entries sharing one 32 MiB table would cost
		 * N walks of it (SECURITY.md, T9).  Never legitimate: QEMU gives
		 * every snapshot its own copy. */
		enum qc_owner prev;
		if (l1_range_taken(img, sn->l1_table_offset, (uint64_t)sn->l1_size * 8, &prev)) {
			qc_note_contested(img, sn->l1_table_offset, (uint64_t)sn->l1_size * 8);
			qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, loc, QC_OWN_SNAPSHOT_L1,
					  prev, "snapshot L1 table at 0x%llx overlaps %s; not walked again",
					  (unsigned long long)sn->l1_table_offset, qc_owner_name(prev));
			sn->l1_usable = false;
			continue;
		}
		if (!qc_claim(img, sn->l1_table_offset, (uint64_t)sn->l1_size * 8,
			      QC_OWN_SNAPSHOT_L1, 1, loc) ||
		    !walk_l1(&w, sn->l1_table_offset, sn->l1_size, (int32_t)s, NULL, chunk))
			goto out;
	}
	walk_all(&w);
out:
	free(chunk);
	qc_budget_free(img, w.refs, w.cap * sizeof(*w.refs));
}
