/*
 * refcounts.c - planning refcount repairs from the check's model.
 *
 * Stored refcounts are read from the refblocks the reftable points to;
 * the target of every cluster is the reference count the walk computed
 * (img->cmap).  When every refblock is sane the differences are fixed IN
 * PLACE: leaks lowered (content of the cluster untouched), counts too low
 * raised, counts stored past the end of the file zeroed.  When the
 * structure itself is broken (a reftable entry with reserved bits,
 * unaligned, past EOF, shared, or a referenced cluster no refblock covers)
 * the whole structure is REBUILT past the end of the file and switched in
 * by one 12-byte header write (refcount_table_offset and _clusters); the
 * old reftable and refblocks are simply no longer referenced.  A refblock
 * shared with an L1 or L2 table is rebuilt when the check disproved it
 * by its content (checker/trust.c, doc/repair.md "The refcount table").
 *
 * Steps: plan_in_place (sane_entry, check_cover, plan_block per refblock)
 * decides whether a rebuild is needed; rebuild_or_leave then drops the
 * in-place edits and runs plan_rebuild (collect_old_claims, base_blocks,
 * size_structure, emit_structure).
 *
 * Relies on: the model's record of what the walk counted for the refcount
 * structure itself (img->self_claims: the reftable range and every usable
 * entry's refblock, with the references each got); rebuilt counts
 * subtract exactly that record (old_claims()), and no rebuild is planned
 * when the record does not account for every such claim
 * (qc_self_claims_consistent()).
 */
#include "repair.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"
#include "../core/refblock.h"
#include "../core/util.h"

/* The code a rebuild is filed under: the first reported record whose
 * policy needs a rebuild (policy.def NEEDS_REBUILD). */
static enum qc_code rebuild_code(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	for (size_t i = 0; i < ps->n; i++)
		if (qc_policy(ps->v[i].code)->needs_rebuild)
			return ps->v[i].code;
	return QC_P_REFCOUNT_NO_REFBLOCK;
}

/* Did the walk claim the refblock of reftable entry i (checker/refcounts.c)? */
static bool entry_claimed(const struct qc_image *img, uint64_t i)
{
	return img->refblock_usable && img->refblock_usable[i];
}

/* Overflowing clusters listed one by one in the plan; the rest are counted. */
#define MAX_OVERFLOW_NOTES 20

struct ctx {
	struct qc_image *img;
	const struct qc_repair_opts *o;
	struct qc_plan *p;
	unsigned order;
	uint64_t rb_entries;   /* refcount entries per refblock */
	uint64_t file_clusters;
	bool complete;
	const char *why_incomplete;
	bool need_rebuild;
	char rebuild_reason[160];
	uint64_t rebuild_at;
	bool left;             /* some refcount problem stays */
	bool left_lower_noted, left_raise_noted;
	uint64_t overflows;    /* overflowing clusters seen (notes are capped) */
	uint64_t *claims;      /* old-structure claims per cluster, rebuild only (sparse) */
};

static void want_rebuild(struct ctx *c, uint64_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void want_rebuild(struct ctx *c, uint64_t at, const char *fmt, ...)
{
	if (c->need_rebuild)
		return;
	c->need_rebuild = true;
	c->rebuild_at = at;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->rebuild_reason, sizeof(c->rebuild_reason), fmt, ap);
	va_end(ap);
}

static uint64_t computed(const struct ctx *c, uint64_t cl)
{
	return cl < c->img->cmap.nclusters ? qc_cm_count(&c->img->cmap, cl) : 0;
}

/* Is reftable entry i a refblock that can be edited in place? */
static bool sane_entry(struct ctx *c, uint64_t i)
{
	struct qc_image *img = c->img;
	uint64_t e = img->reftable[i];
	uint64_t off = e & QC_REFT_OFFSET_MASK;
	uint64_t at = img->h.refcount_table_offset + i * 8;
	if (e & QC_REFT_RESERVED_MASK) {
		want_rebuild(c, at, "reftable entry %" PRIu64 " has reserved bits set (0x%" PRIx64 ")", i, e);
		return false;
	}
	if (off & (img->cluster_size - 1)) {
		want_rebuild(c, at, "reftable entry %" PRIu64 " is not cluster aligned (0x%" PRIx64 ")", i, e);
		return false;
	}
	if (!entry_claimed(img, i)) {
		want_rebuild(c, at, "reftable entry %" PRIu64 " points past the end of the file (0x%" PRIx64 ")", i, off);
		return false;
	}
	uint64_t cl = off >> img->cluster_bits;
	if (computed(c, cl) != 1 || qc_cm_owner(&img->cmap, cl) != QC_OWN_REFBLOCK) {
		want_rebuild(c, at, "the refblock of reftable entry %" PRIu64 " at 0x%" PRIx64 " is shared with other structures", i, off);
		return false;
	}
	return true;
}

/* A referenced cluster no sane refblock covers needs a rebuild. */
static void check_cover(void *vctx, uint64_t cl, enum qc_owner o, uint64_t count, unsigned flags)
{
	struct ctx *c = vctx;
	(void)o;
	(void)flags;
	if (!count || c->need_rebuild)
		return;
	uint64_t i = cl / c->rb_entries;
	if (i >= c->img->reftable_entries || c->img->reftable[i] == 0)
		want_rebuild(c, QC_NO_OFFSET,
			     "cluster %" PRIu64 " is referenced but no refblock covers it (reftable index %" PRIu64 ")",
			     cl, i);
}

/* The code of one changed count, for naming and grouping writes. */
static enum qc_code change_code(const struct ctx *c, uint64_t cl, uint64_t s, uint64_t t)
{
	if (s > t)
		return cl >= c->file_clusters ? QC_P_REFCOUNT_LEAK_PAST_EOF : QC_P_REFCOUNT_LEAK;
	return s == 0 ? QC_P_REFCOUNT_ZERO : QC_P_REFCOUNT_TOO_LOW;
}

/*
 * neu = old (refblock i) with every count the model may set set to the
 * walk's; the counts left (overflow, a walk that missed references,
 * --leaks-only) are noted in the plan when emit is set.
 */
static void set_block_counts(struct ctx *c, uint64_t i, const uint8_t *old, uint8_t *neu, bool emit)
{
	struct qc_image *img = c->img;
	for (uint64_t k = 0; k < c->rb_entries; k++) {
		uint64_t cl = i * c->rb_entries + k;
		uint64_t s = qc_rc_get(old, c->order, k);
		uint64_t t = computed(c, cl);
		if (s == t)
			continue;
		if (t > img->refcount_max) {
			if (emit && c->overflows++ < MAX_OVERFLOW_NOTES)
				qc_plan_leave(c->p, QC_P_REFCOUNT_OVERFLOW, cl << img->cluster_bits,
					      "cluster has %" PRIu64 " references but %u-bit refcounts hold at most %" PRIu64 "; widen them first (qemu-img amend -o refcount_bits=%u)",
					      t, img->refcount_bits, img->refcount_max,
					      img->refcount_bits < 64 ? img->refcount_bits * 2 : 64);
			c->left = true;
			continue;
		}
		if (s > t) {
			if (!c->complete) {
				if (emit && !c->left_lower_noted)
					qc_plan_leave(c->p, QC_P_REFCOUNT_LEAK, QC_NO_OFFSET,
						      "refcounts are not lowered: the walk did not see every reference (%s)",
						      c->why_incomplete);
				c->left_lower_noted = true;
				c->left = true;
				continue;
			}
			if (t == 0 && cl < c->file_clusters)
				qc_plan_freed(c->p, cl);
		} else if (c->o->leaks_only) {
			if (emit && !c->left_raise_noted)
				qc_plan_leave(c->p, QC_P_REFCOUNT_TOO_LOW, QC_NO_OFFSET,
					      "refcounts lower than their references are not raised with --leaks-only");
			c->left_raise_noted = true;
			c->left = true;
			continue;
		}
		qc_rc_set(neu, c->order, k, t);
	}
}

/*
 * One write per refblock, from its first to its last changed byte (the
 * entries in between are rewritten with their own bytes), so a refblock
 * of alternating leaks costs one write and one journal region, not one
 * per run (SECURITY.md, "Bounded time").  The write is named after its
 * first changed entry; the codes of the others are noted as covered by
 * the plan.
 */
static int emit_block_write(struct ctx *c, uint64_t i, uint64_t off, const uint8_t *old,
			    const uint8_t *neu)
{
	struct qc_image *img = c->img;
	size_t cs = (size_t)img->cluster_size;
	size_t unit = c->order >= 3 ? (size_t)1 << (c->order - 3) : 1;
	size_t b = 0, e = cs;
	while (b < cs && !memcmp(old + b, neu + b, unit))
		b += unit;
	while (e > b && !memcmp(old + e - unit, neu + e - unit, unit))
		e -= unit;
	if (b >= e)
		return 0;
	uint64_t k0 = c->order >= 3 ? b / unit : (uint64_t)b << (3 - c->order);
	uint64_t kend = c->order >= 3 ? e / unit : (uint64_t)e << (3 - c->order);
	uint64_t changed = 0;
	enum qc_code first = QC_P_COUNT;
	for (uint64_t k = k0; k < kend; k++) {
		uint64_t s = qc_rc_get(old, c->order, k), t = qc_rc_get(neu, c->order, k);
		if (s == t)
			continue;
		enum qc_code code = change_code(c, i * c->rb_entries + k, s, t);
		if (first == QC_P_COUNT) {
			first = code;
			k0 = k;
		} else if (code != first) {
			qc_plan_cover(c->p, code);
		}
		changed++;
	}
	uint64_t cl = i * c->rb_entries + k0;
	uint64_t s = qc_rc_get(old, c->order, k0), t = qc_rc_get(neu, c->order, k0);
	if (!qc_plan_add(c->p, QC_PH_INPLACE, off + b, neu + b, e - b, first,
			 "refcount of cluster %" PRIu64 " (0x%" PRIx64 "): %" PRIu64 " -> %" PRIu64 " (%" PRIu64 " entr%s of refblock %" PRIu64 " changed in this write)",
			 cl, cl << img->cluster_bits, s, t, changed, changed == 1 ? "y" : "ies", i))
		return -ENOMEM;
	return 0;
}

/* Plan the in-place edits of one sane refblock (emit: into the plan;
 * otherwise only decide what would be left). */
static int plan_block(struct ctx *c, uint64_t i, bool emit)
{
	struct qc_image *img = c->img;
	uint64_t off = img->reftable[i] & QC_REFT_OFFSET_MASK;
	size_t cs = (size_t)img->cluster_size;
	uint8_t *old = malloc(cs), *neu = malloc(cs);
	/* the file may end inside the refblock's cluster (QEMU does not pad
	 * the last cluster, and a damaged entry can name it): the bytes past
	 * the end read as zeros, as they do for the check */
	size_t have = off < img->file_size ? (img->file_size - off < cs ? (size_t)(img->file_size - off) : cs) : 0;
	int r = old && neu ? (have ? qc_io_read_full(img->io, old, have, off) : 0) : -ENOMEM;
	if (r >= 0) {
		memset(old + have, 0, cs - have);
		memcpy(neu, old, cs);
		set_block_counts(c, i, old, neu, emit);
		r = emit ? emit_block_write(c, i, off, old, neu) : 0;
	}
	free(old);
	free(neu);
	return r < 0 ? r : 0;
}


struct rb_ctx {
	struct ctx *c;
	uint64_t *blocks;  /* block indices with nonzero counts (unsorted while collecting) */
	size_t n, cap;
	uint64_t *claimed; /* clusters the old structures claim, sorted, with repeats */
	size_t nclaimed;
	bool oom;
};

static void add_block(struct rb_ctx *r, uint64_t b)
{
	if (r->n && r->blocks[r->n - 1] == b)
		return;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 64;
		uint64_t *nb = qc_budget_realloc(r->c->img, r->blocks, r->cap * sizeof(*nb),
						 ncap * sizeof(*nb), "the refcount rebuild");
		if (!nb) {
			r->oom = true;
			return;
		}
		r->blocks = nb;
		r->cap = ncap;
	}
	r->blocks[r->n++] = b;
}

/* How many references the old reftable and refblocks hold on a cluster. */
static uint64_t old_claims(const struct rb_ctx *r, uint64_t cl)
{
	size_t lo = qc_lower_bound_u64(r->claimed, r->nclaimed, cl);
	uint64_t n = 0;
	while (lo < r->nclaimed && r->claimed[lo] == cl)
		n++, lo++;
	return n;
}

/* New count of an existing cluster once the old structures are gone. */
static uint64_t new_count(const struct rb_ctx *r, uint64_t cl)
{
	uint64_t t = computed(r->c, cl);
	uint64_t o = t ? old_claims(r, cl) : 0;
	return t > o ? t - o : 0;
}

static void collect_blocks(void *vctx, uint64_t cl, enum qc_owner o, uint64_t count, unsigned flags)
{
	struct rb_ctx *r = vctx;
	(void)o;
	(void)flags;
	if (count && new_count(r, cl))
		add_block(r, cl / r->c->rb_entries);
}

/* The new structure's place and size: nrb refblocks, then nrt reftable
 * clusters, from cluster `start` on (past the end of the file and past
 * anything mapped). */
struct layout {
	uint64_t start, nrb, nrt;
	enum qc_code code;
};

/* The references the old reftable and refblocks hold, as the model
 * recorded them (img->self_claims), into r->claimed: one list entry per
 * reference (a cluster claimed n times appears n times), sorted. */
static int collect_old_claims(struct rb_ctx *r, uint64_t *bytes)
{
	struct qc_image *img = r->c->img;
	const struct qc_self_claims *self = &img->self_claims;
	*bytes = 0;
	if (!self->reftable_bytes)
		return 0;
	uint64_t first = self->reftable_off >> img->cluster_bits;
	uint64_t nrt = ((self->reftable_off + self->reftable_bytes - 1) >> img->cluster_bits) - first + 1;
	uint64_t nrb = img->reftable ? self->refblocks : 0;
	*bytes = (nrt * self->reftable_nref + nrb * self->refblock_nref + 1) * sizeof(uint64_t);
	r->claimed = qc_budget_alloc(img, *bytes, "the refcount rebuild");
	if (!r->claimed)
		return -ENOMEM;
	for (uint64_t k = 0; k < nrt; k++)
		for (uint64_t m = 0; m < self->reftable_nref; m++)
			r->claimed[r->nclaimed++] = first + k;
	for (uint64_t i = 0; nrb && i < img->reftable_entries; i++)
		if (entry_claimed(img, i))
			for (uint64_t m = 0; m < self->refblock_nref; m++)
				r->claimed[r->nclaimed++] = (img->reftable[i] & QC_REFT_OFFSET_MASK) >> img->cluster_bits;
	qsort(r->claimed, r->nclaimed, sizeof(uint64_t), qc_cmp_u64);
	return 0;
}

/* The refblock indices that will count an existing cluster (sorted,
 * unique), copied into *base (budget: *bytes). */
static int base_blocks(struct rb_ctx *r, uint64_t **base, size_t *nbase, uint64_t *bytes)
{
	struct qc_image *img = r->c->img;
	*base = NULL;
	*bytes = 0;
	qc_cm_foreach(&img->cmap, collect_blocks, r);
	if (r->oom)
		return -ENOMEM;
	*nbase = qc_sort_unique_u64(r->blocks, r->n);
	*bytes = (*nbase + 1) * sizeof(uint64_t);
	*base = qc_budget_alloc(img, *bytes, "the refcount rebuild");
	if (!*base)
		return -ENOMEM;
	memcpy(*base, r->blocks, *nbase * sizeof(uint64_t));
	return 0;
}

/*
 * Size the new structure: the refblocks must also cover themselves and the
 * reftable, which in turn grows with the refblocks; iterate to the fixed
 * point.  r->blocks ends as every refblock index of the new structure.
 * Returns 1 when the reftable would exceed the format's limit, 0, or
 * -ENOMEM.
 */
static int size_structure(struct rb_ctx *r, const uint64_t *base, size_t nbase, struct layout *L)
{
	struct ctx *c = r->c;
	uint64_t cs = c->img->cluster_size;
	L->nrb = L->nrt = 0;
	for (;;) {
		r->n = 0;
		for (size_t k = 0; k < nbase; k++)
			add_block(r, base[k]);
		uint64_t end = L->start + L->nrb + L->nrt;
		for (uint64_t b = L->start / c->rb_entries; end > L->start && b <= (end - 1) / c->rb_entries; b++)
			add_block(r, b);
		if (r->oom)
			return -ENOMEM;
		r->n = qc_sort_unique_u64(r->blocks, r->n);
		uint64_t entries = r->n ? r->blocks[r->n - 1] + 1 : 1;
		uint64_t nrt2 = (entries * 8 + cs - 1) / cs;
		if (r->n == L->nrb && nrt2 == L->nrt)
			return 0;
		L->nrb = r->n;
		L->nrt = nrt2;
		if (L->nrt * cs > QC_MAX_REFTABLE_SIZE)
			return 1;
	}
}

/* Count of cluster cl in the new structure: its own clusters 1, anything
 * else past its start 0, the rest the walk's count minus the old
 * structure's claims, capped at the width (noted). */
static uint64_t rebuilt_count(struct rb_ctx *r, const struct layout *L, uint64_t cl)
{
	struct ctx *c = r->c;
	struct qc_image *img = c->img;
	if (cl >= L->start)
		return cl < L->start + L->nrb + L->nrt;
	uint64_t t = new_count(r, cl);
	if (t > img->refcount_max) {
		if (c->overflows++ < MAX_OVERFLOW_NOTES)
			qc_plan_leave(c->p, QC_P_REFCOUNT_OVERFLOW, cl << img->cluster_bits,
				      "cluster has %" PRIu64 " references; %u-bit refcounts hold at most %" PRIu64 ": stored as the maximum (widen with qemu-img amend -o refcount_bits=)",
				      t, img->refcount_bits, img->refcount_max);
		c->left = true;
		t = img->refcount_max;
	}
	return t;
}

/* Plan the new refblocks (filling the new reftable rt), the reftable and
 * the 12-byte header switch to it. */
static int emit_structure(struct rb_ctx *r, const struct layout *L, uint8_t *rt, uint8_t *blk)
{
	struct ctx *c = r->c;
	struct qc_image *img = c->img;
	uint64_t cs = img->cluster_size;
	for (size_t k = 0; k < r->n; k++) {
		uint64_t b = r->blocks[k];
		uint64_t boff = (L->start + k) << img->cluster_bits;
		memset(blk, 0, cs);
		for (uint64_t e = 0; e < c->rb_entries; e++) {
			uint64_t t = rebuilt_count(r, L, b * c->rb_entries + e);
			if (t)
				qc_rc_set(blk, c->order, e, t);
		}
		qc_put_be64(rt + b * 8, boff);
		if (!qc_plan_add(c->p, QC_PH_NEW, boff, blk, cs, L->code,
				 "new refblock %" PRIu64 " (clusters %" PRIu64 "..%" PRIu64 ") past the end of the file",
				 b, b * c->rb_entries, (b + 1) * c->rb_entries - 1))
			return -ENOMEM;
	}
	uint64_t rt_off = (L->start + L->nrb) << img->cluster_bits;
	if (!qc_plan_add(c->p, QC_PH_NEW, rt_off, rt, L->nrt * cs, L->code,
			 "new refcount table, %" PRIu64 " cluster(s), %zu refblock(s)", L->nrt, r->n))
		return -ENOMEM;
	/* refcount_table_offset and refcount_table_clusters, adjacent */
	uint8_t sw[QC_HDR_REFTABLE_CLUSTERS + 4 - QC_HDR_REFTABLE_OFFSET];
	qc_put_be64(sw, rt_off);
	qc_put_be32(sw + (QC_HDR_REFTABLE_CLUSTERS - QC_HDR_REFTABLE_OFFSET), (uint32_t)L->nrt);
	if (!qc_plan_add(c->p, QC_PH_SWITCH, QC_HDR_REFTABLE_OFFSET, sw, sizeof(sw), L->code,
			 "header: refcount_table_offset 0x%" PRIx64 " -> 0x%" PRIx64 ", clusters %" PRIu32 " -> %" PRIu64 " (%s)",
			 img->h.refcount_table_offset, rt_off, img->h.refcount_table_clusters, L->nrt,
			 c->rebuild_reason))
		return -ENOMEM;
	return 0;
}

/* The rebuild: new refblocks and reftable past the end of the file and
 * past anything mapped, switched in by one header write. */
static int plan_rebuild(struct ctx *c)
{
	struct qc_image *img = c->img;
	uint64_t cs = img->cluster_size;
	struct rb_ctx r = { .c = c };
	struct layout L = { .code = rebuild_code(img) };
	uint64_t claimed_bytes = 0, base_bytes = 0, *base = NULL;
	size_t nbase = 0;
	int ret = collect_old_claims(&r, &claimed_bytes);
	if (!ret)
		ret = base_blocks(&r, &base, &nbase, &base_bytes);
	L.start = (img->file_size + cs - 1) >> img->cluster_bits;
	if (qc_cm_end(&img->cmap) > L.start)
		L.start = qc_cm_end(&img->cmap);
	if (!ret)
		ret = size_structure(&r, base, nbase, &L);
	if (ret == 1) {
		qc_plan_leave(c->p, L.code, c->rebuild_at,
			      "a rebuilt refcount table would exceed the format's 8 MiB limit: not rebuilt (%s)",
			      c->rebuild_reason);
		c->left = true;
		ret = 0;
	} else if (!ret) {
		uint8_t *blk = malloc(cs);
		uint8_t *rt = qc_budget_alloc(img, L.nrt * cs, "the rebuilt refcount table");
		ret = blk && rt ? emit_structure(&r, &L, rt, blk) : -ENOMEM;
		free(blk);
		qc_budget_free(img, rt, rt ? L.nrt * cs : 0);
	}
	qc_budget_free(img, base, base_bytes);
	qc_budget_free(img, r.blocks, r.cap * sizeof(uint64_t));
	qc_budget_free(img, r.claimed, claimed_bytes);
	return ret;
}

/* Mark every sane refblock and plan its in-place edits (emitted only when
 * no rebuild is coming: a rebuild replaces them). */
static int plan_in_place(struct ctx *c)
{
	struct qc_image *img = c->img;
	uint64_t sane_bytes = (img->reftable_entries ? img->reftable_entries : 1) * sizeof(bool);
	bool *sane = qc_budget_alloc(img, sane_bytes, "the refcount planner");
	if (!sane)
		return -ENOMEM;
	for (uint64_t i = 0; i < img->reftable_entries; i++)
		if (img->reftable[i])
			sane[i] = sane_entry(c, i);
	qc_cm_foreach(&img->cmap, check_cover, c);
	int r = 0;
	for (uint64_t i = 0; i < img->reftable_entries && r == 0; i++)
		if (sane[i])
			r = plan_block(c, i, !c->need_rebuild);
	qc_budget_free(img, sane, sane_bytes);
	return r;
}

/* Why a needed rebuild cannot be planned, or NULL when it can. */
static const char *rebuild_refused(const struct ctx *c, char *buf, size_t len)
{
	if (!c->complete)
		snprintf(buf, len, "the walk did not see every reference (%s)", c->why_incomplete);
	else if (!qc_self_claims_consistent(c->img))
		snprintf(buf, len, "the model's record of the old structure's own references does not match what the walk counted (a qcow2fsck bug)");
	else if (c->o->leaks_only)
		snprintf(buf, len, "it is not done with --leaks-only");
	else
		return NULL;
	return buf;
}

/* A rebuild is needed: drop the in-place edits and notes planned since
 * (nw0, nleft0, nfreed0), then plan it or say why not. */
static int rebuild_or_leave(struct ctx *c, size_t nw0, size_t nleft0, size_t nfreed0)
{
	struct qc_plan *p = c->p;
	for (size_t k = nw0; k < p->n; k++)
		qc_plan_drop_data(p, &p->w[k]);
	p->n = nw0;
	p->nleft = nleft0;
	char why[200];
	if (rebuild_refused(c, why, sizeof(why))) {
		p->nfreed = nfreed0;
		qc_plan_leave(p, rebuild_code(c->img), c->rebuild_at,
			      "the refcount structure needs a rebuild (%s), but %s: not rebuilt",
			      c->rebuild_reason, why);
		c->left = true;
		return 0;
	}
	c->left = false;
	return plan_rebuild(c);
}

int qc_plan_refcounts(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
		      bool *refcounts_left)
{
	struct ctx c = { .img = img, .o = o, .p = p };
	*refcounts_left = false;
	if (!img->is_qcow2 || !img->geometry_ok)
		return 0;
	c.order = img->h.refcount_order;
	c.rb_entries = (uint64_t)1 << img->refblock_bits;
	c.file_clusters = (img->file_size + img->cluster_size - 1) >> img->cluster_bits;
	c.complete = qc_walk_complete(img, &c.why_incomplete);
	size_t nw0 = p->n, nleft0 = p->nleft, nfreed0 = p->nfreed;
	int r = 0;
	if (!img->reftable_ok || !img->reftable)
		want_rebuild(&c, img->h.refcount_table_offset, "the refcount table itself is unusable");
	else
		r = plan_in_place(&c);
	if (r == 0 && c.need_rebuild)
		r = rebuild_or_leave(&c, nw0, nleft0, nfreed0);
	if (r < 0)
		return r;
	if (c.overflows > MAX_OVERFLOW_NOTES)
		qc_plan_leave(p, QC_P_REFCOUNT_OVERFLOW, QC_NO_OFFSET,
			      "%" PRIu64 " more overflowing cluster(s) not listed", c.overflows - MAX_OVERFLOW_NOTES);
	*refcounts_left = c.left;
	return p->oom ? -ENOMEM : 0;
}
