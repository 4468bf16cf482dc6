/*
 * refcounts.c - the refcount structures (docs/interop/qcow2.txt "Host cluster
 * management"; doc/format.md §3, §9.2, §9.3, §9.4).
 *
 * qc_pass_reftable (after the header and snapshot passes): reads the refcount
 * table into img->reftable, claims its clusters, validates every entry
 * (reserved bits, alignment, refblock inside the file) and claims each usable
 * refblock.  img->refblock_usable[i] says which entries the compare pass and
 * the repair planner may follow; an unusable refblock is never read.
 *
 * qc_pass_refcounts (after every structure has been claimed): compares the
 * stored refcount of every cluster with the references the walk counted
 * (qc_cm_count): lower is corruption, higher is a leak (one per cluster),
 * more references than the width holds is an overflow.  A cluster with one
 * reference and a stored refcount above 1 is marked QC_CM_OVERCOUNTED for
 * copied.c (its COPIED flag is then part of the leak).  Unlike qemu-img it
 * also compares the refcounts stored for clusters past the end of the file.
 * Refblocks are read sorted by offset in large runs, each once, ahead of
 * the compare on --jobs threads (prefetch.h); the compare itself runs in
 * sorted order in the calling thread, so its report does not depend on
 * them.  Where a chunk's stored refcounts all equal the map's counts (the
 * common case) it is settled reading the map in place (agree16 for the
 * default 16-bit width, agree_chunk otherwise).  It also
 * computes image_end_offset the way qemu-img does.
 *
 * Memory: the reftable copy (8 bytes/entry, at most 8 MiB by the header
 * rule), 5 bytes per entry of bookkeeping, and the prefetcher's read
 * slots of RUN_MAX (one with --jobs=1, else min(jobs + 1, 4): prefetch.h).
 */
#include "check.h"
#include "prefetch.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "../core/refblock.h"

#include <stdlib.h>
#include <string.h>

#define RUN_MAX (1u << 18) /* bytes per run of refblocks (prefetch.h: one per slot) */

void qc_pass_reftable(struct qc_image *img)
{
	if (!img->geometry_ok || !img->reftable_ok || !img->refcount_bits)
		return;
	uint64_t off = img->h.refcount_table_offset;
	uint64_t bytes = (uint64_t)img->h.refcount_table_clusters << img->cluster_bits;
	uint64_t n = bytes / 8;
	uint8_t *raw = qc_budget_alloc(img, bytes, "the refcount table");
	if (!raw)
		return;
	img->reftable = qc_budget_alloc(img, n * sizeof(uint64_t), "the refcount table");
	img->refblock_usable = img->reftable ? qc_budget_alloc(img, n, "the refcount table") : NULL;
	if (!img->refblock_usable) {
		qc_budget_free(img, raw, bytes);
		return;
	}
	/* Up to one cluster of overhang past EOF is tolerated (header rule);
	 * the missing bytes read as zero, i.e. "no refblock". */
	if (qc_io_read(img->io, raw, (size_t)bytes, off) < 0) {
		qc_budget_free(img, raw, bytes);
		qc_abort(img, "I/O error reading the refcount table");
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		img->reftable[i] = qc_be64_at(raw + 8 * i);
	qc_budget_free(img, raw, bytes);
	img->reftable_entries = n;
	/* the claims the walk makes for the refcount structure itself are
	 * recorded where they are made (image.h self_claims) */
	struct qc_self_claims *self = &img->self_claims;
	self->reftable_off = off;
	self->reftable_bytes = bytes;
	self->reftable_nref = 1;
	self->refblock_nref = 1;
	if (!qc_claim(img, off, bytes, QC_OWN_REFTABLE, self->reftable_nref, QC_LOC(off)))
		return;

	uint64_t file_clusters = (img->file_size + img->cluster_size - 1) >> img->cluster_bits;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t e = img->reftable[i];
		if (!e)
			continue;
		uint64_t eoff = off + 8 * i;
		uint64_t rb = e & QC_REFT_OFFSET_MASK;
		if (e & QC_REFT_RESERVED_MASK) {
			qc_report(&img->problems, QC_P_REFTABLE_ENTRY_RESERVED, QC_LOC(eoff), 1,
				  "refcount table entry %llu (0x%llx) has reserved bits set",
				  (unsigned long long)i, (unsigned long long)e);
			continue;
		}
		if (rb & (img->cluster_size - 1)) {
			qc_report(&img->problems, QC_P_REFTABLE_ENTRY_UNALIGNED, QC_LOC(eoff), 1,
				  "refcount block %llu at 0x%llx is not cluster aligned",
				  (unsigned long long)i, (unsigned long long)rb);
			continue;
		}
		if ((rb >> img->cluster_bits) >= file_clusters) {
			qc_report(&img->problems, QC_P_REFTABLE_ENTRY_PAST_EOF, QC_LOC(eoff), 1,
				  "refcount block %llu at 0x%llx is outside the file (%llu bytes)",
				  (unsigned long long)i, (unsigned long long)rb,
				  (unsigned long long)img->file_size);
			continue;
		}
		img->refblock_usable[i] = QC_RB_USABLE;
		self->refblocks++;
		/* A second claim (two entries, or other metadata on it) is
		 * reported by qc_claim as an overlap naming both owners. */
		if (!qc_claim(img, rb, img->cluster_size, QC_OWN_REFBLOCK, self->refblock_nref,
			      QC_LOC(eoff)))
			return;
	}
}

struct cmp {
	struct qc_image *img;
	uint64_t file_clusters; /* ceil(file size / cluster) */
	uint64_t limit;         /* clusters qemu-img compares */
	uint64_t highest;       /* highest cluster < limit in use */
	const char *stale;      /* message prefix for dirty images */
	uint64_t suspects;      /* see image.h copied_suspects */
	uint64_t uncovered_scanned; /* clusters looked at outside usable refblocks */
	uint64_t referenced, agree; /* this refblock: clusters the walk references,
				     * and those whose stored count equals it */
};

static void mismatch(struct cmp *c, uint64_t cl, uint64_t stored, uint64_t comp, uint64_t rbe_off)
{
	struct qc_image *img = c->img;
	struct qc_loc loc = QC_LOC(rbe_off);
	unsigned long long h = (unsigned long long)(cl << img->cluster_bits);
	if (comp > img->refcount_max) {
		qc_report(&img->problems, QC_P_REFCOUNT_OVERFLOW, loc, 1,
			  "%scluster %llu (0x%llx) has %llu references, more than %u-bit refcounts hold",
			  c->stale, (unsigned long long)cl, h, (unsigned long long)comp,
			  img->refcount_bits);
		return;
	}
	if (stored > comp) {
		if (comp == 0 && cl >= c->file_clusters)
			qc_report(&img->problems, QC_P_REFCOUNT_LEAK_PAST_EOF, loc, 1,
				  "%scluster %llu (0x%llx), past the end of the file, has refcount=%llu",
				  c->stale, (unsigned long long)cl, h, (unsigned long long)stored);
		else
			qc_report(&img->problems, QC_P_REFCOUNT_LEAK, loc, 1,
				  "%sleaked cluster %llu (0x%llx) refcount=%llu reference=%llu",
				  c->stale, (unsigned long long)cl, h, (unsigned long long)stored,
				  (unsigned long long)comp);
	} else if (stored == 0) {
		qc_report(&img->problems, QC_P_REFCOUNT_ZERO, loc, 1,
			  "%scluster %llu (0x%llx) refcount=0 reference=%llu", c->stale,
			  (unsigned long long)cl, h, (unsigned long long)comp);
	} else {
		qc_report(&img->problems, QC_P_REFCOUNT_TOO_LOW, loc, 1,
			  "%scluster %llu (0x%llx) refcount=%llu reference=%llu", c->stale,
			  (unsigned long long)cl, h, (unsigned long long)stored,
			  (unsigned long long)comp);
	}
}

/* clusters compared per read of the map: one block of it, whose entries
 * qc_cm_entries gives in place (or, for a block of equal entries, copied) */
#define CHUNK QC_CM_BLOCK_CLUSTERS

/*
 * Compare stored refcounts [j0, j0+cn) of refblock rb (entry i) with the
 * computed counts cnt[].  `order` is a constant in each caller (see
 * compare_block), so the compiler builds one tight loop per width.
 */
static inline __attribute__((always_inline)) void
compare_chunk(struct cmp *c, uint64_t i, const uint8_t *rb, uint64_t j0, size_t cn,
	      const uint64_t *cnt, const uint8_t *fl, unsigned order)
{
	struct qc_image *img = c->img;
	const uint64_t max = img->refcount_max;
	const uint64_t base = i << img->refblock_bits;
	/* clusters below `limit` count for image_end_offset */
	size_t lim = base + j0 >= c->limit ? 0
		     : c->limit - (base + j0) < cn ? (size_t)(c->limit - (base + j0)) : cn;
	/* pass 1, branch-free: any mismatch? how many COPIED suspects? */
	uint64_t diff = 0, susp = 0, ref = 0, agree = 0;
	for (size_t k = 0; k < cn; k++) {
		uint64_t st = qc_rc_get(rb, order, j0 + k);
		uint64_t cp = cnt[k];
		uint64_t one = cp == 1, notover = st <= 1;
		diff |= (st ^ cp) | (uint64_t)(cp > max);
		ref += cp != 0;
		agree += (cp != 0) & (st == cp);
		/* COPIED with several references; no COPIED on the only
		 * reference of a cluster whose stored refcount is not above 1
		 * (doc/copied.md: over-counted clusters are leaks) */
		susp += (((fl[k] >> 4) & 1) & (one ^ 1)) | (((fl[k] >> 5) & 1) & one & notover);
	}
	c->suspects += susp;
	c->referenced += ref;
	c->agree += agree;
	if (__builtin_expect(diff != 0, 0)) {
		uint64_t rb_off = img->reftable[i] & QC_REFT_OFFSET_MASK;
		for (size_t k = 0; k < cn; k++) {
			uint64_t st = qc_rc_get(rb, order, j0 + k);
			if (st != cnt[k] || cnt[k] > max)
				mismatch(c, base + j0 + k, st, cnt[k], rb_off + (((j0 + k) << order) >> 3));
			/* one reference, stored above 1: mark it for copied.c */
			if (cnt[k] == 1 && st > 1 &&
			    !qc_cm_set_flags(&img->cmap, base + j0 + k, QC_CM_OVERCOUNTED))
				qc_abort(img, "memory cap reached while mapping host clusters");
		}
	}
	/* highest cluster in use below the limit (image_end_offset) */
	for (size_t k = lim; k-- > 0;) {
		if (qc_rc_get(rb, order, j0 + k) | cnt[k]) {
			if (base + j0 + k > c->highest)
				c->highest = base + j0 + k;
			break;
		}
	}
}

/*
 * The highest cluster below c->limit in use in a chunk whose stored
 * refcounts equal the map's counts (raw: its entries), for
 * image_end_offset: the last one with a non-zero count.
 */
static void highest_in(struct cmp *c, uint64_t i, uint64_t j0, size_t cn, const uint16_t *raw)
{
	const uint64_t base = i << c->img->refblock_bits;
	size_t lim = base + j0 >= c->limit ? 0
		     : c->limit - (base + j0) < cn ? (size_t)(c->limit - (base + j0)) : cn;
	for (size_t k = lim; k-- > 0;) {
		if (QC_CM_E_COUNT(raw[k])) {
			if (base + j0 + k > c->highest)
				c->highest = base + j0 + k;
			return;
		}
	}
}

/*
 * compare_chunk's common case, reading the map's entries in place (raw,
 * from qc_cm_entries) instead of a copy: the stored refcounts all equal
 * the counts, none of which is in the overflow table.  Returns false,
 * with nothing accounted, when that does not hold: the caller then runs
 * compare_chunk, which reports.
 */
static inline __attribute__((always_inline)) bool
agree_chunk(struct cmp *c, uint64_t i, const uint8_t *rb, uint64_t j0, size_t cn,
	    const uint16_t *raw, unsigned order)
{
	const uint64_t max = c->img->refcount_max;
	uint64_t diff = 0, susp = 0, ref = 0;
	for (size_t k = 0; k < cn; k++) {
		uint64_t st = qc_rc_get(rb, order, j0 + k);
		unsigned e = raw[k];
		uint64_t cp = QC_CM_E_COUNT(e);
		uint64_t one = cp == 1, notover = st <= 1;
		/* a count in the overflow table (QC_CM_E_COUNT_BIG) is
		 * above any refcount_max below 1023 and never agrees here */
		diff |= (st ^ cp) | (uint64_t)(cp > max) | (uint64_t)(cp == QC_CM_E_COUNT_BIG);
		ref += cp != 0;
		susp += (((e >> 4) & 1) & (one ^ 1)) | (((e >> 5) & 1) & one & notover);
	}
	if (diff)
		return false;
	c->suspects += susp;
	c->referenced += ref;
	c->agree += ref; /* every referenced cluster agrees */
	highest_in(c, i, j0, cn, raw);
	return true;
}

/*
 * agree_chunk for 16-bit refcounts (the default width) over a whole CHUNK,
 * written with 16-bit lanes and a constant trip count so that the compiler
 * vectorises it at -O2: true when every stored refcount equals the map's
 * count and none is in the overflow table; *ref gets the referenced
 * clusters, *susp the COPIED suspects (with the counts equal, a stored
 * refcount is above 1 exactly when the count is).
 */
static bool agree16(const uint8_t *rb, const uint16_t *raw, uint64_t *ref, uint64_t *susp)
{
	uint16_t diff = 0, nref = 0, nsusp = 0;
	for (unsigned k = 0; k < CHUNK; k++) {
		uint16_t be;
		memcpy(&be, rb + 2 * k, 2);
		uint16_t st = (uint16_t)(qc_be16_at((const uint8_t *)&be));
		uint16_t e = raw[k];
		uint16_t cp = (uint16_t)QC_CM_E_COUNT(e);
		uint16_t one = cp == 1;
		diff |= (uint16_t)((st ^ cp) | (cp == QC_CM_E_COUNT_BIG));
		nref += cp != 0;
		nsusp += (uint16_t)((((e >> 4) & 1) & (one ^ 1)) | (((e >> 5) & 1) & one));
	}
	*ref = nref;
	*susp = nsusp;
	return diff == 0;
}

/*
 * agree16 for a chunk whose map entries are all the one value e
 * (qc_cm_uniform): every stored refcount must equal its count.
 */
static bool agree16_uniform(const uint8_t *rb, uint16_t e, uint64_t *ref, uint64_t *susp)
{
	const uint16_t cp = (uint16_t)QC_CM_E_COUNT(e);
	uint16_t diff = cp == QC_CM_E_COUNT_BIG;
	for (unsigned k = 0; k < CHUNK; k++) {
		uint16_t be;
		memcpy(&be, rb + 2 * k, 2);
		diff |= (uint16_t)(qc_be16_at((const uint8_t *)&be) ^ cp);
	}
	unsigned one = cp == 1;
	*ref = cp ? CHUNK : 0;
	*susp = ((((e >> 4) & 1u) & (one ^ 1u)) | (((e >> 5) & 1u) & one)) ? CHUNK : 0;
	return diff == 0;
}

/* highest_in for a chunk whose entries are all e. */
static void highest_uniform(struct cmp *c, uint64_t i, uint64_t j0, size_t cn, uint16_t e)
{
	const uint64_t base = i << c->img->refblock_bits;
	size_t lim = base + j0 >= c->limit ? 0
		     : c->limit - (base + j0) < cn ? (size_t)(c->limit - (base + j0)) : cn;
	if (lim && QC_CM_E_COUNT(e) && base + j0 + lim - 1 > c->highest)
		c->highest = base + j0 + lim - 1;
}

/* Compare one refblock (entry i) against the map. */
static void compare_block(struct cmp *c, uint64_t i, const uint8_t *rb, uint64_t *cnt,
			  uint8_t *fl)
{
	struct qc_image *img = c->img;
	uint64_t per = UINT64_C(1) << img->refblock_bits;
	uint64_t base = i << img->refblock_bits;
	uint16_t scratch[CHUNK];
	c->referenced = c->agree = 0;
	for (uint64_t j0 = 0; j0 < per; j0 += CHUNK) {
		size_t cn = per - j0 < CHUNK ? (size_t)(per - j0) : CHUNK;
		/* a chunk of equal entries (a run of data clusters) against
		 * their one value, without a copy */
		uint16_t u;
		if (qc_walk_fast_paths && img->h.refcount_order == 4 && cn == CHUNK &&
		    qc_cm_uniform(&img->cmap, base + j0, cn, &u)) {
			uint64_t ref, susp;
			if (agree16_uniform(rb + 2 * j0, u, &ref, &susp)) {
				c->suspects += susp;
				c->referenced += ref;
				c->agree += ref;
				highest_uniform(c, i, j0, cn, u);
				continue;
			}
		}
		/* off with the walk's fast paths (tests/unit/test_walk_diff.c) */
		const uint16_t *raw =
			qc_walk_fast_paths ? qc_cm_entries(&img->cmap, base + j0, cn, scratch) : NULL;
		if (raw && img->h.refcount_order == 4 && cn == CHUNK) {
			uint64_t ref, susp;
			if (agree16(rb + 2 * j0, raw, &ref, &susp)) {
				c->suspects += susp;
				c->referenced += ref;
				c->agree += ref;
				highest_in(c, i, j0, cn, raw);
				continue;
			}
		} else if (raw) {
			bool same;
			switch (img->h.refcount_order) {
			case 0: same = agree_chunk(c, i, rb, j0, cn, raw, 0); break;
			case 1: same = agree_chunk(c, i, rb, j0, cn, raw, 1); break;
			case 2: same = agree_chunk(c, i, rb, j0, cn, raw, 2); break;
			case 3: same = agree_chunk(c, i, rb, j0, cn, raw, 3); break;
			case 4: same = agree_chunk(c, i, rb, j0, cn, raw, 4); break;
			case 5: same = agree_chunk(c, i, rb, j0, cn, raw, 5); break;
			default: same = agree_chunk(c, i, rb, j0, cn, raw, 6); break;
			}
			if (same)
				continue;
		}
		qc_cm_get_run(&img->cmap, base + j0, cn, cnt, fl);
		switch (img->h.refcount_order) {
		case 0: compare_chunk(c, i, rb, j0, cn, cnt, fl, 0); break;
		case 1: compare_chunk(c, i, rb, j0, cn, cnt, fl, 1); break;
		case 2: compare_chunk(c, i, rb, j0, cn, cnt, fl, 2); break;
		case 3: compare_chunk(c, i, rb, j0, cn, cnt, fl, 3); break;
		case 4: compare_chunk(c, i, rb, j0, cn, cnt, fl, 4); break;
		case 5: compare_chunk(c, i, rb, j0, cn, cnt, fl, 5); break;
		default: compare_chunk(c, i, rb, j0, cn, cnt, fl, 6); break;
		}
	}
	/* shaped like a refblock: it agrees with the walk on most of what
	 * the walk references in its range (a refblock covers at least
	 * itself, so a genuine one has something to agree on) */
	if (c->agree * 2 > c->referenced)
		img->refblock_usable[i] |= QC_RB_PROVED;
}

/*
 * A refblock whose whole range lies past the end of the file and past every
 * referenced cluster: any refcount in it is a leak past EOF.  Reported as one
 * record per reftable entry (weight = clusters), and the scan of a refblock
 * that several entries share is done once (memo), so a reftable whose
 * million entries all name one cluster costs one scan, not a million.
 */
struct memo {
	uint64_t off;   /* refblock scanned last */
	uint64_t count; /* its non-zero refcounts */
	uint64_t first; /* index of the first one */
};

static void beyond_end(struct cmp *c, uint64_t i, const uint8_t *rb, uint64_t off,
		       struct memo *memo)
{
	struct qc_image *img = c->img;
	if (memo->off != off) {
		uint64_t per = UINT64_C(1) << img->refblock_bits;
		unsigned order = img->h.refcount_order;
		memo->off = off;
		memo->count = 0;
		memo->first = 0;
		for (uint64_t j = 0; j < per; j++) {
			if (qc_rc_get(rb, order, j)) {
				if (!memo->count)
					memo->first = j;
				memo->count++;
			}
		}
	}
	if (!memo->count)
		return;
	uint64_t cl = (i << img->refblock_bits) + memo->first;
	qc_report(&img->problems, QC_P_REFCOUNT_LEAK_PAST_EOF,
		  QC_LOC(off + ((memo->first << img->h.refcount_order) >> 3)), memo->count,
		  "%s%llu clusters past the end of the file have refcounts in refcount block %llu, the first cluster %llu (0x%llx) refcount=%llu",
		  c->stale, (unsigned long long)memo->count, (unsigned long long)i,
		  (unsigned long long)cl, (unsigned long long)(cl << img->cluster_bits),
		  (unsigned long long)qc_rc_get(rb, img->h.refcount_order, memo->first));
}

/* Referenced clusters in [from, to) that no usable refblock covers. */
static void uncovered(struct cmp *c, uint64_t i, uint64_t from, uint64_t to)
{
	struct qc_image *img = c->img;
	const struct qc_clustermap *m = &img->cmap;
	if (to > m->nclusters)
		to = m->nclusters;
	const char *why = i >= img->reftable_entries ? "beyond the end of the refcount table"
			  : img->reftable[i] == 0   ? "refcount table entry is 0"
						    : "refcount table entry is invalid";
	uint64_t eoff = i < img->reftable_entries ? img->h.refcount_table_offset + 8 * i
						  : QC_NO_OFFSET;
	for (uint64_t cl = from; cl < to; cl++) {
		uint64_t comp = qc_cm_count(m, cl);
		unsigned f = qc_cm_flags(m, cl);
		c->suspects += ((f & QC_CM_ACTIVE_COPIED) && comp != 1) |
			       ((f & QC_CM_ACTIVE_NOCOPIED) && comp == 1);
		if (!comp)
			continue;
		if (cl < c->limit && cl > c->highest)
			c->highest = cl;
		qc_report(&img->problems, QC_P_REFCOUNT_NO_REFBLOCK, QC_LOC(eoff), 1,
			  "%scluster %llu (0x%llx) has %llu references but no refcount block (%s)",
			  c->stale, (unsigned long long)cl,
			  (unsigned long long)(cl << img->cluster_bits), (unsigned long long)comp,
			  why);
	}
}

/* Reftable indices by refblock offset (ties by index).  The table comes
 * through qsort_r's argument, not a static, so checks may run in several
 * threads at once (`scan`, doc/scan.md). */
static int by_offset(const void *a, const void *b, void *tab)
{
	const uint64_t *t = tab;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	uint64_t x = t[i] & QC_REFT_OFFSET_MASK;
	uint64_t y = t[j] & QC_REFT_OFFSET_MASK;
	if (x != y)
		return x < y ? -1 : 1;
	return (i > j) - (i < j);
}

/* The usable refblocks' reftable indexes, sorted by refblock offset
 * (budgeted: n entries), or NULL (aborted). */
static uint32_t *sorted_refblocks(struct qc_image *img, size_t *k)
{
	uint64_t n = img->reftable_entries;
	uint32_t *idx = qc_budget_alloc(img, n * sizeof(*idx), "the refblock index");
	if (!idx)
		return NULL;
	*k = 0;
	for (uint64_t i = 0; i < n; i++)
		if (img->refblock_usable[i])
			idx[(*k)++] = (uint32_t)i;
	qsort_r(idx, *k, sizeof(*idx), by_offset, img->reftable);
	return idx;
}

/* The runs of refblocks for the prefetcher (prefetch.h): up to
 * QC_PF_EXTENTS_MAX extents of contiguous clusters (a block several
 * entries share counted once), at most bufmax bytes; next() moves the
 * cursor under the prefetcher's lock. */
struct feed {
	const uint64_t *reftable;
	const uint32_t *idx;
	size_t k, cursor;
	uint64_t cs;
	size_t bufmax;
};

static bool feed_next(void *ctx, struct qc_pf_run *run)
{
	struct feed *f = ctx;
	size_t a = f->cursor, b = a;
	if (a >= f->k)
		return false;
	while (b < f->k &&
	       qc_pf_add(run, f->reftable[f->idx[b]] & QC_REFT_OFFSET_MASK, (size_t)f->cs, f->bufmax))
		b++;
	run->a = a;
	run->b = b;
	f->cursor = b;
	return true;
}

/* Read the refblocks idx[0..k) in runs of contiguous clusters (ahead, on
 * --jobs threads: prefetch.h) and compare each, in sorted order here, with
 * the walk's counts (beyond_end past the last cluster).  False when its
 * buffers could not be had (aborted). */
static bool compare_refblocks(struct cmp *c, const uint32_t *idx, size_t k)
{
	struct qc_image *img = c->img;
	uint64_t cs = img->cluster_size;
	struct feed f = { img->reftable, idx, k, 0, cs, RUN_MAX > cs ? RUN_MAX : (size_t)cs };
	struct qc_prefetch *pf = qc_pf_start(img->io, img->opt.jobs, f.bufmax, 0, feed_next, NULL, &f);
	uint64_t *cnt = malloc(CHUNK * sizeof(*cnt));
	uint8_t *fl = malloc(CHUNK);
	struct memo memo = { QC_NO_OFFSET, 0, 0 };
	bool ok = pf && cnt && fl;
	if (!ok)
		qc_abort(img, "out of memory comparing refcounts");
	struct qc_pf_slot *sl;
	while (ok && !img->aborted && (sl = qc_pf_get(pf)) != NULL) {
		for (size_t t = sl->run.a; t < sl->run.b; t++) {
			uint64_t o = img->reftable[idx[t]] & QC_REFT_OFFSET_MASK;
			/* a failed read: the blocks before its extent were read */
			if (sl->err < 0 && o >= sl->err_off)
				break;
			const uint8_t *rb = sl->buf + qc_pf_at(&sl->run, o);
			if (((uint64_t)idx[t] << img->refblock_bits) >= c->limit)
				beyond_end(c, idx[t], rb, o, &memo);
			else
				compare_block(c, idx[t], rb, cnt, fl);
		}
		if (sl->err < 0) {
			qc_abort(img, "I/O error reading refcount blocks at 0x%llx: %s",
				 (unsigned long long)sl->err_off, strerror(-sl->err));
			qc_pf_release(pf);
			break;
		}
		qc_pf_release(pf);
	}
	qc_pf_stop(pf);
	free(cnt);
	free(fl);
	return ok;
}

/*
 * Clusters the walk referenced where no usable refblock stands.  Only the
 * allocated pages of the map can hold one: the rest is skipped a page at a
 * time, so a file truncated to terabytes (apparent size) costs its pages,
 * not its clusters (SECURITY.md, "Bounded time").
 */
static void scan_uncovered(struct cmp *c)
{
	struct qc_image *img = c->img;
	uint64_t n = img->reftable_entries;
	uint64_t ncl = img->cmap.nclusters;
	unsigned rbits = img->refblock_bits;
	for (uint64_t cl = qc_cm_next_mapped(&img->cmap, 0); cl < ncl;) {
		uint64_t i = cl >> rbits;
		uint64_t blk_end = (i + 1) << rbits;
		if (i < n && img->refblock_usable[i]) {
			cl = qc_cm_next_mapped(&img->cmap, blk_end);
			continue;
		}
		uint64_t page_end = (cl | (QC_CM_PAGE_CLUSTERS - 1)) + 1;
		uint64_t e = blk_end < page_end ? blk_end : page_end;
		if (e > ncl)
			e = ncl;
		uncovered(c, i, cl, e);
		c->uncovered_scanned += e - cl;
		cl = qc_cm_next_mapped(&img->cmap, e);
	}
}

void qc_pass_refcounts(struct qc_image *img)
{
	if (!img->geometry_ok)
		return;
	struct cmp c = { .img = img };
	c.file_clusters = (img->file_size + img->cluster_size - 1) >> img->cluster_bits;
	uint64_t end = qc_cm_end(&img->cmap);
	c.limit = end > c.file_clusters ? end : c.file_clusters;
	c.stale = (img->h.incompatible_features & QC_INCOMPAT_DIRTY)
			  ? "stale refcount (dirty image, lazy refcounts): "
			  : "";
	if (!img->reftable || !img->refblock_usable) {
		/* No refcount table to compare with (the header pass said why). */
		img->stats.image_end_offset = (end ? end : 1) << img->cluster_bits;
		return;
	}
	size_t k = 0;
	uint32_t *idx = sorted_refblocks(img, &k);
	if (!idx)
		return;
	bool ok = compare_refblocks(&c, idx, k);
	qc_budget_free(img, idx, img->reftable_entries * sizeof(*idx));
	if (!ok)
		return;
	scan_uncovered(&c);
	img->refcount_uncovered_scanned = c.uncovered_scanned;
	img->stats.image_end_offset = (c.highest + 1) << img->cluster_bits;
	if (!img->aborted) {
		img->copied_suspects = c.suspects;
		img->copied_scanned = true;
	}
}
