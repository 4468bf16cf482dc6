/*
 * repair.c - the planner's entry point and the rules shared by the
 * planners: when the model may be trusted to free anything, and the
 * header flag bits (dirty, corrupt).
 *
 * Relies on the check's trust decision (checker/trust.c) and the policy
 * table (core/problems/policy.def): every decision about a code here is a
 * lookup in that table.
 */
#include "repair.h"
#include "cas.h"
#include "fix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"
#include "overlay.h"

int qc_plan_header_bits(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
			bool refcounts_left)
{
	if (!img->is_qcow2 || img->h.version < 3 || !img->header_cluster ||
	    img->header_cluster_len < QC_HDR_INCOMPAT + 8)
		return 0;
	uint64_t inc = qc_be64_at(img->header_cluster + QC_HDR_INCOMPAT);
	uint64_t after = inc;
	const char *why = NULL;
	bool complete = qc_walk_complete(img, &why);
	if ((inc & QC_INCOMPAT_DIRTY) && !complete) {
		qc_plan_leave(p, QC_P_HEADER_DIRTY, QC_HDR_INCOMPAT,
			      "the dirty bit stays: the refcounts cannot be verified while the walk misses references (%s); QEMU will run its own repair when it opens the image for writing",
			      why);
	} else if (inc & QC_INCOMPAT_DIRTY) {
		if (o->leaks_only || refcounts_left) {
			qc_plan_leave(p, QC_P_HEADER_DIRTY, QC_HDR_INCOMPAT,
				      "the dirty bit stays: the refcounts could not all be verified or repaired%s",
				      o->leaks_only ? " (--leaks-only)" : "");
		} else {
			after &= ~QC_INCOMPAT_DIRTY;
			uint8_t b[8];
			qc_put_be64(b, after);
			if (!qc_plan_add(p, QC_PH_HEADER, QC_HDR_INCOMPAT, b, 8, QC_P_HEADER_DIRTY,
					 "header: clear the dirty bit (incompatible features 0x%" PRIx64 " -> 0x%" PRIx64 ") once the refcounts are verified",
					 inc, after))
				return -ENOMEM;
		}
	}
	if ((inc & QC_INCOMPAT_CORRUPT) && !o->leaks_only) {
		uint64_t fin = after & ~QC_INCOMPAT_CORRUPT;
		uint8_t b[8];
		qc_put_be64(b, fin);
		if (!qc_plan_add(p, QC_PH_FINAL, QC_HDR_INCOMPAT, b, 8, QC_P_HEADER_CORRUPT_BIT,
				 "header: clear the corrupt bit (incompatible features 0x%" PRIx64 " -> 0x%" PRIx64 ") if the re-check finds nothing else",
				 after, fin))
			return -ENOMEM;
	}
	return 0;
}

static bool planned_write(const struct qc_plan *p, enum qc_code code)
{
	return qc_plan_fixes(p, code);
}

static bool planned(const struct qc_plan *p, enum qc_code code)
{
	if (planned_write(p, code))
		return true;
	for (size_t i = 0; i < p->nleft; i++)
		if (p->left[i].code == code)
			return true;
	return false;
}

/* Is code c, reported in img, repaired without a write of its own? */
static bool covered(const struct qc_image *img, const struct qc_plan *p, enum qc_code c,
		    bool rebuild)
{
	const struct qc_policy *pol = qc_policy(c);
	/* every record planned by a table fixer (repair/fix.h) */
	if (qc_code_all_fixed(img, c))
		return true;
	/* a rebuild replaces the whole refcount structure */
	if (rebuild && (pol->fixer == QC_FIX_REFCOUNTS || pol->fixer == QC_FIX_REBUILD))
		return true;
	/* reserved bits on active L1 entries the COPIED planner zeroes */
	return pol->hides == QC_HIDES_UNLESS_DROPPED && planned_write(p, QC_P_L1_ENTRY_NO_OFFSET) &&
	       qc_reserved_only_on_dropped(img);
}

/* Every reported code no planner wrote or left: say why it stays (the
 * policy table's LEFT text). */
static void leave_the_rest(const struct qc_image *img, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	bool rebuild = false;
	for (size_t i = 0; i < p->n; i++)
		/* the rebuild's switch: refcount_table_offset and _clusters */
		rebuild |= p->w[i].phase == QC_PH_SWITCH && p->w[i].offset == QC_HDR_REFTABLE_OFFSET;
	for (int i = 0; i < QC_P_COUNT; i++) {
		enum qc_code c = (enum qc_code)i;
		enum qc_fixer f = qc_policy(c)->fixer;
		/* the table fixers plan entry by entry: one write does not cover
		 * the code's other records */
		bool per_record = f == QC_FIX_L1 || f == QC_FIX_L2;
		if (!ps->per_code[c] || (!per_record && planned(p, c)) || covered(img, p, c, rebuild))
			continue;
		uint64_t off = QC_NO_OFFSET;
		for (size_t k = 0; k < ps->n && off == QC_NO_OFFSET; k++)
			if (ps->v[k].code == c)
				off = ps->v[k].loc.offset;
		qc_plan_leave(p, c, off, "%" PRIu64 " occurrence(s): %s", ps->per_code[c],
			      qc_policy(c)->left);
	}
}

/*
 * Drop every in-place edit that lands in a contested cluster (one two
 * structures claim, see check.h): the bytes belong to both, so the edit
 * would also change the other structure (found by fuzz/fuzz_repair.c: an
 * active L1 table at offset 0 had its entry 9 zeroed, which zeroed the
 * header's incompatible features and turned the external data file off).
 * Which pointer is wrong is a guess, so the edit is listed as left.
 * Returns true when a refcount edit was dropped (the dirty bit must stay).
 */
static bool refuse_contested(const struct qc_image *img, struct qc_plan *p)
{
	bool refcounts = false;
	struct refused { enum qc_code code; uint64_t at, n; } refused[16];
	size_t nref = 0, k = 0;
	bool overflow = false;
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		if (w->phase != QC_PH_INPLACE || !qc_contested(img, w->offset, w->len)) {
			p->w[k++] = *w;
			continue;
		}
		refcounts |= qc_policy(w->code)->fixer == QC_FIX_REFCOUNTS;
		size_t j = 0;
		while (j < nref && refused[j].code != w->code)
			j++;
		if (j == nref && nref < sizeof(refused) / sizeof(refused[0]))
			refused[nref++] = (struct refused){ w->code, w->offset, 0 };
		if (j < nref)
			refused[j].n++;
		else
			overflow = true;
		qc_plan_drop_data(p, w);
	}
	p->n = k;
	for (size_t j = 0; j < nref; j++)
		qc_plan_leave(p, refused[j].code, refused[j].at,
			      "%" PRIu64 " edit(s) not written: the bytes lie in a cluster two structures claim (see the overlap-* findings), so each edit would change both",
			      refused[j].n);
	if (overflow)
		qc_plan_leave(p, QC_P_OVERLAP_METADATA, QC_NO_OFFSET,
			      "more edits not written: they lie in clusters two structures claim");
	return refcounts;
}

/* Check the image as the plan's writes so far leave it (a read-only
 * overlay, overlay.h) into *after; the caller frees both. */
static int recheck(struct qc_image *img, struct qc_plan *p, struct qc_io **ov,
		   struct qc_image **after)
{
	*ov = qc_io_overlay(img->io, p, p->n);
	if (!*ov)
		return -ENOMEM;
	struct qc_options opt = img->opt;
	opt.drop_snapshot = NULL;
	/* the second model lives beside the first: it gets what --max-mem
	 * leaves after the first model and the plan so far */
	uint64_t used = img->cmap.bytes + img->mem_held;
	if (opt.mem_cap)
		opt.mem_cap = used < opt.mem_cap ? opt.mem_cap - (size_t)used : 1;
	if (qc_check_run(*ov, &opt, after) < 0)
		return -ENOMEM;
	if ((*after)->aborted) {
		/* the model of the rewritten image could not be built: plan nothing */
		qc_abort(img, "checking the image as the planned repairs leave it: %s",
			 (*after)->abort_reason);
		return -EIO;
	}
	return 0;
}

/* Remove "left" entries [from, to) of the plan. */
static void drop_left(struct qc_plan *p, size_t from, size_t to)
{
	if (from == to)
		return;
	memmove(p->left + from, p->left + to, (p->nleft - to) * sizeof(*p->left));
	p->nleft -= to - from;
}

/* The first planners' state across rounds (plan_snapshots_first). */
struct first {
	bool snap, bitmaps, header, flags; /* planned a write already */
	size_t snap_left0, snap_left1; /* the snapshot planner's last "left" entries */
};

/* One round of the first planners on model m; -errno, or 1 when one of
 * them planned a write. */
static int first_round(struct first *f, struct qc_image *m, const struct qc_repair_opts *o,
		       struct qc_plan *p, bool header)
{
	size_t n0 = p->n;
	/* the header -> L1 chain first (doc/repair.md principle 3): a restored
	 * l1_table_offset claims its leaked L1 table before the snapshot
	 * planner looks for lost snapshot L1 tables among the leaked clusters
	 * (found by fuzz/fuzz_repair.c: both took the same run) */
	if (header && !f->header) {
		int h = qc_plan_header_fields(m, o, p);
		if (h < 0)
			return h;
		f->header = h > 0;
		if (f->header)
			return 1;
	}
	if (!f->snap) {
		/* a later round's verdicts replace an earlier round's */
		drop_left(p, f->snap_left0, f->snap_left1);
		size_t l0 = p->nleft, before = p->n;
		int r = qc_plan_snapshot_table(m, o, p);
		if (r < 0)
			return r;
		f->snap = p->n > before;
		f->snap_left0 = l0;
		f->snap_left1 = p->nleft;
	}
	if (!f->bitmaps) {
		int b = qc_plan_bitmaps(m, o, p);
		if (b < 0)
			return b;
		f->bitmaps = b > 0;
	}
	/* after the bitmaps planner: a field it writes (autoclear) is left to
	 * the next planning round */
	if (!f->flags) {
		int h = qc_plan_header_flags(m, o, p);
		if (h < 0)
			return h;
		f->flags = h > 0;
	}
	return p->n > n0;
}

/* recheck() after dropping the view and model of an earlier one. */
static int recheck_again(struct qc_image *img, struct qc_plan *p, struct qc_io **ov,
			 struct qc_image **after)
{
	qc_image_free(*after);
	if (*ov)
		qc_io_close(*ov);
	*after = NULL;
	*ov = NULL;
	return recheck(img, p, ov, after);
}

/*
 * A planned snapshot-table rewrite, dropped bitmaps or restored header
 * fields change what the other planners must see (the new table's
 * clusters referenced, the old one's and the bitmaps' not, a restored L1
 * walked): check the image again as it will be after those writes
 * (overlay.h) and plan the rest on that model.  The first planners run
 * again on that model while one of them plans something new (at most
 * four rounds: the header fields alone first, then each of the others
 * writes once; found by fuzz/fuzz_repair.c: a restored header_length
 * brings a damaged bitmaps extension into view, and dropped bitmaps can
 * free a snapshot table they overlapped).  A re-linked table is checked the same way,
 * and when its own entries need fixing, the re-link becomes one rewrite of
 * it (qc_plan_snapshot_relinked), and the model is made again.
 */
static int plan_first_rounds(struct qc_image *img, const struct qc_repair_opts *o,
			     struct qc_plan *p, struct qc_io **ov, struct qc_image **after)
{
	struct first f = { .snap_left0 = p->nleft, .snap_left1 = p->nleft };
	for (int round = 0; round < 4; round++) {
		struct qc_image *m = *after ? *after : img;
		bool snap_before = f.snap;
		int r = first_round(&f, m, o, p, round == 0);
		if (r <= 0)
			return r;
		bool relinked = !snap_before && f.snap && m->snapfix.relink;
		struct qc_image *old = *after;
		struct qc_io *old_ov = *ov;
		*after = NULL;
		*ov = NULL;
		r = recheck(img, p, ov, after);
		if (r == 0 && relinked) {
			/* the found table's own entries, fixed in one rewrite */
			r = qc_plan_snapshot_relinked(*after, m, p);
			if (r > 0)
				r = recheck_again(img, p, ov, after);
		}
		qc_image_free(old);
		if (old_ov)
			qc_io_close(old_ov);
		if (r < 0)
			return r;
	}
	return 0;
}

/*
 * Then the drops in overwritten L2 tables (fix_l2table.c: what the walk
 * claimed through their garbage no longer claimed) and the copies of
 * clusters two active entries claim (fix_clone.c: the copies referenced,
 * the shared cluster claimed once), each followed by a check of the image
 * as it will be.  *after is NULL when nothing was planned.
 */
static int plan_snapshots_first(struct qc_image *img, const struct qc_repair_opts *o,
				struct qc_plan *p, struct qc_io **ov, struct qc_image **after)
{
	*ov = NULL;
	*after = NULL;
	int r = plan_first_rounds(img, o, p, ov, after);
	if (r < 0)
		return r;
	r = qc_plan_fix_l2table(*after ? *after : img, o, p);
	if (r < 0)
		return r;
	if (r > 0 && (r = recheck_again(img, p, ov, after)) < 0)
		return r;
	r = qc_plan_clone(*after ? *after : img, o, p);
	if (r <= 0)
		return r;
	return recheck_again(img, p, ov, after);
}

/*
 * One planning round on model img0: every planner, in order.  The writes
 * are sorted; their old bytes are not recorded yet.  The plan draws on
 * img0's budget while planning and is detached from it on return.
 */
static int plan_round(struct qc_image *img0, const struct qc_repair_opts *o, struct qc_plan *p)
{
	/* the plan shares --max-mem with the check's model (SECURITY.md) */
	if (!qc_plan_set_budget(p, qc_budget_hook_plan, qc_budget_hook_release, img0))
		return -ENOMEM;
	struct qc_io *ov;
	struct qc_image *after;
	int r = plan_snapshots_first(img0, o, p, &ov, &after);
	struct qc_image *img = after ? after : img0;
	bool left = false;
	/* the table fixers next: they bring the model to the repaired state
	 * that the refcount and COPIED planners then read (repair/fix.h) */
	struct qc_fix_l1 *l1fix = NULL;
	if (r == 0)
		r = qc_fix_l1_decide(img, o, &l1fix);
	if (r == 0)
		r = qc_plan_fix_l2(img, o, p);
	if (r == 0)
		r = qc_fix_l1_emit(img, l1fix, p);
	qc_fix_l1_free(l1fix);
	if (r == 0)
		r = qc_plan_refcounts(img, o, p, &left);
	if (r == 0)
		r = qc_plan_copied(img, o, p);
	if (r == 0 && refuse_contested(img, p))
		left = true;
	if (r == 0)
		r = qc_plan_header_bits(img, o, p, left);
	if (r == 0)
		leave_the_rest(img, p);
	qc_plan_sort(p);
	if (r == 0 && p->oom)
		r = -ENOMEM;
	/* The plan's bytes stay counted in the image's budget until the image
	 * is freed; the plan no longer reports to it, as the image may go
	 * first (the caller passes what the plan holds, p->bytes, on to the
	 * re-check's cap). */
	qc_plan_set_budget(p, NULL, NULL, NULL);
	qc_image_free(after);
	if (ov)
		qc_io_close(ov);
	return r;
}

/*
 * Round k > 0: check the image as the plan's unconditional writes leave
 * it (a read-only overlay) and plan on that model into q.  1 when q was
 * planned, 0 when the model could not be built (the rounds stop), -errno.
 */
static int next_round(struct qc_image *img0, const struct qc_repair_opts *o, struct qc_plan *p,
		      struct qc_plan *q)
{
	struct qc_io *ov = qc_io_overlay(img0->io, p, p->n);
	if (!ov)
		return -ENOMEM;
	if (p->end_after > ov->size)
		ov->size = p->end_after;
	struct qc_options opt = img0->opt;
	opt.drop_snapshot = NULL; /* the rounds judge the image as it will be */
	/* the round's model lives beside the first one and the plan so far */
	uint64_t used = img0->cmap.bytes + img0->mem_held + p->bytes;
	if (opt.mem_cap)
		opt.mem_cap = used < opt.mem_cap ? opt.mem_cap - (size_t)used : 1;
	struct qc_image *m = NULL;
	int r = qc_check_run(ov, &opt, &m) < 0 ? -ENOMEM : 0;
	if (r == 0 && (m->aborted || m->problems.oom || m->problems.unsupported || !m->is_qcow2))
		r = 0; /* no model to plan on: the transaction's re-check judges */
	else if (r == 0) {
		qc_plan_init(q, ov->size > p->end_after ? ov->size : p->end_after);
		q->round = p->round + 1;
		r = plan_round(m, o, q);
		r = r < 0 ? r : 1;
	}
	qc_image_free(m);
	qc_io_close(ov);
	return r;
}

/* A round not merged (its writes overlap the plan's): what it would fix
 * is left, one entry per code, for a second repair. */
static void leave_overlapping_round(struct qc_plan *p, const struct qc_plan *q)
{
	for (size_t i = 0; i < q->n; i++) {
		const struct qc_write *w = &q->w[i];
		bool seen = w->phase == QC_PH_FINAL;
		for (size_t k = 0; k < i && !seen; k++)
			seen = q->w[k].code == w->code;
		if (!seen)
			qc_plan_leave(p, w->code, w->offset,
				      "fixed by a later round of planning, whose writes rewrite bytes this plan writes: run the repair again afterwards");
	}
}

/*
 * A fix planned late can make another planner's evidence complete only
 * on the repaired image (a dropped pointer ends the contest that held an
 * edit back, a restored l1_size brings entries into view; fuzz/
 * open-findings kept those cases).  So planning repeats, each round on a
 * check of the image as the rounds before leave it, until a round plans no
 * new write (its "left" list is then the plan's), at most
 * QC_PLAN_MAX_ROUNDS rounds.  A round whose writes would rewrite bytes an
 * earlier round writes, with other bytes, is not merged: the journal
 * keeps one old copy per byte, and a second repair finishes the work (the
 * plan says so).  Round k's writes are applied after round k-1's, with a
 * sync between (apply.c), so a crash leaves the image as some round left
 * it, or within one round as one planner round always did.
 */
int qc_repair_plan(struct qc_image *img0, const struct qc_repair_opts *o, struct qc_plan *p)
{
	if (!img0->is_qcow2 || img0->problems.unsupported || img0->aborted)
		return 0;
	p->round = 0;
	p->rounds = 1;
	int r = plan_round(img0, o, p);
	while (r == 0 && p->rounds < QC_PLAN_MAX_ROUNDS && qc_plan_unconditional(p) > 0) {
		struct qc_plan q;
		memset(&q, 0, sizeof(q));
		int k = next_round(img0, o, p, &q);
		if (k < 0) {
			qc_plan_free(&q);
			r = k;
			break;
		}
		if (k == 0)
			break;
		bool more = qc_plan_unconditional(&q) > 0;
		int m = qc_plan_merge_round(p, &q);
		if (m > 0)
			leave_overlapping_round(p, &q);
		qc_plan_free(&q);
		if (m < 0)
			r = m;
		if (m != 0 || !more)
			break;
		p->round++;
	}
	if (r == 0 && p->oom)
		r = -ENOMEM;
	/* the bytes every write replaces, as the file holds them now (cas.h):
	 * read from the image itself, never from a round's overlay */
	if (r == 0)
		r = qc_plan_record_old(p, img0->io);
	uint64_t at;
	int c = r == 0 ? qc_plan_conflict(p, &at) : 0;
	if (c < 0)
		r = -ENOMEM;
	else if (c > 0)
		r = -ENOTRECOVERABLE;
	return r;
}
