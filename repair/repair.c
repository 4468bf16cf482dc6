/*
 * repair.c - the planner's entry point and the rules shared by the
 * planners: when the model may be trusted to free anything, and the
 * header flag bits (dirty, corrupt).
 *
 * Relies on the check's trust flags and problem list (checker/image.h).
 */
#include "repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "overlay.h"

/*
 * Corruption codes the repair itself fixes, or that do not hide a
 * reference from the walk: with only these (and leaks and warnings) in
 * the report, every reference was counted.
 */
/*
 * Are all l1-entry-reserved findings on active L1 entries that also have
 * no L2 offset?  Such an entry hides no reference (there is no L2 to
 * follow) and the COPIED planner zeroes it (l1-entry-no-offset), so it
 * must not hold back the refcount rebuild: otherwise a second repair
 * would do what the first one left (found by fuzz/fuzz_repair.c).
 */
static bool reserved_only_on_dropped(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->per_code[QC_P_L1_ENTRY_RESERVED] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_L1_ENTRY_NO_OFFSET] > QC_MAX_RECORDS_PER_CODE)
		return false;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].code != QC_P_L1_ENTRY_RESERVED)
			continue;
		if (ps->v[i].loc.snapshot >= 0)
			return false;
		bool dropped = false;
		for (size_t j = 0; j < ps->n && !dropped; j++)
			dropped = ps->v[j].code == QC_P_L1_ENTRY_NO_OFFSET && ps->v[j].loc.snapshot < 0 &&
				  ps->v[j].loc.offset == ps->v[i].loc.offset;
		if (!dropped)
			return false;
	}
	return true;
}

static bool harmless_for_counts(const struct qc_image *img, enum qc_code c)
{
	const char *code = qc_problem_table[c].code;
	if (c == QC_P_L1_ENTRY_RESERVED)
		return reserved_only_on_dropped(img);
	if (c == QC_P_OVERLAP_METADATA) {
		/* two reftable entries naming one refblock: a rebuild fixes it;
		 * any other overlap leaves a doubt about which pointer is wrong */
		const char *rb = qc_owner_name(QC_OWN_REFBLOCK);
		const struct qc_problems *ps = &img->problems;
		for (size_t i = 0; i < ps->n; i++)
			if (ps->v[i].code == c && (!ps->v[i].loc.other || strcmp(ps->v[i].loc.other, rb) ||
						   strncmp(ps->v[i].message, rb, strlen(rb))))
				return false;
		return ps->per_code[c] <= QC_MAX_RECORDS_PER_CODE;
	}
	static const char *const prefixes[] = {
		"refcount-", "reftable-", "refblock-", "header-reftable-", "header-corrupt-bit",
		"header-dirty", "l1-entry-no-offset", NULL,
	};
	for (size_t i = 0; prefixes[i]; i++)
		if (!strncmp(code, prefixes[i], strlen(prefixes[i])))
			return !strstr(code, "reference-past-eof");
	/* wrong COPIED flags (compressed-copied too: the data is still claimed) */
	return strstr(code, "copied") != NULL;
}

bool qc_repair_walk_complete(const struct qc_image *img, const char **why)
{
	const char *w = NULL;
	if (!img->is_qcow2 || !img->geometry_ok)
		w = "the header's geometry is unusable";
	else if (img->aborted)
		w = "the check did not complete";
	else if (!img->l1_ok)
		w = "the active L1 table is unusable";
	else if (img->h.nb_snapshots && (!img->snapshot_table_ok || img->nsnapshots < img->h.nb_snapshots))
		w = "the snapshot table is unusable";
	else if (img->ext.has_bitmaps && !img->ext.bitmaps_valid)
		w = "the bitmap directory is unusable";
	for (uint32_t i = 0; !w && i < img->nsnapshots; i++)
		if (!img->snapshots[i].l1_usable)
			w = "a snapshot's L1 table is unusable";
	const struct qc_problems *ps = &img->problems;
	for (int c = 0; !w && c < QC_P_COUNT; c++)
		if (ps->per_code[c] && qc_problem_table[c].severity == QC_SEV_CORRUPTION &&
		    !harmless_for_counts(img, (enum qc_code)c))
			w = qc_problem_table[c].code;
	if (why)
		*why = w;
	return w == NULL;
}

int qc_plan_header_bits(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p,
			bool refcounts_left)
{
	if (!img->is_qcow2 || img->h.version < 3 || !img->header_cluster ||
	    img->header_cluster_len < 80)
		return 0;
	uint64_t inc = qc_be64_at(img->header_cluster + 72);
	uint64_t after = inc;
	const char *why = NULL;
	bool complete = qc_repair_walk_complete(img, &why);
	if ((inc & QC_INCOMPAT_DIRTY) && !complete) {
		qc_plan_leave(p, "header-dirty", 72,
			      "the dirty bit stays: the refcounts cannot be verified while the walk misses references (%s); QEMU will run its own repair when it opens the image for writing",
			      why);
	} else if (inc & QC_INCOMPAT_DIRTY) {
		if (o->leaks_only || refcounts_left) {
			qc_plan_leave(p, "header-dirty", 72,
				      "the dirty bit stays: the refcounts could not all be verified or repaired%s",
				      o->leaks_only ? " (--leaks-only)" : "");
		} else {
			after &= ~QC_INCOMPAT_DIRTY;
			uint8_t b[8];
			qc_put_be64(b, after);
			if (!qc_plan_add(p, QC_PH_HEADER, 72, b, 8, "header-dirty",
					 "header: clear the dirty bit (incompatible features 0x%" PRIx64 " -> 0x%" PRIx64 ") once the refcounts are verified",
					 inc, after))
				return -ENOMEM;
		}
	}
	if ((inc & QC_INCOMPAT_CORRUPT) && !o->leaks_only) {
		uint64_t fin = after & ~QC_INCOMPAT_CORRUPT;
		uint8_t b[8];
		qc_put_be64(b, fin);
		if (!qc_plan_add(p, QC_PH_FINAL, 72, b, 8, "header-corrupt-bit",
				 "header: clear the corrupt bit (incompatible features 0x%" PRIx64 " -> 0x%" PRIx64 ") if the re-check finds nothing else",
				 after, fin))
			return -ENOMEM;
	}
	return 0;
}

static bool planned_write(const struct qc_plan *p, const char *code)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].code && !strcmp(p->w[i].code, code))
			return true;
	return false;
}

static bool planned(const struct qc_plan *p, const char *code)
{
	if (planned_write(p, code))
		return true;
	for (size_t i = 0; i < p->nleft; i++)
		if (p->left[i].code && !strcmp(p->left[i].code, code))
			return true;
	return false;
}

/* Every reported code no planner wrote or left: say why it stays. */
static void leave_the_rest(const struct qc_image *img, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	bool rebuild = false;
	for (size_t i = 0; i < p->n; i++)
		rebuild |= p->w[i].phase == QC_PH_SWITCH;
	for (int c = 0; c < QC_P_COUNT; c++) {
		const char *code = qc_problem_table[c].code;
		if (!ps->per_code[c] || planned(p, code))
			continue;
		/* a rebuild replaces the whole refcount structure */
		if (rebuild && (!strncmp(code, "refcount-", 9) || !strncmp(code, "reftable-", 9) ||
				!strncmp(code, "header-reftable-", 16) || c == QC_P_OVERLAP_METADATA))
			continue;
		/* reserved bits on entries the COPIED planner zeroes */
		if (c == QC_P_L1_ENTRY_RESERVED && planned_write(p, "l1-entry-no-offset") &&
		    reserved_only_on_dropped(img))
			continue;
		uint64_t off = QC_NO_OFFSET;
		for (size_t i = 0; i < ps->n && off == QC_NO_OFFSET; i++)
			if ((int)ps->v[i].code == c)
				off = ps->v[i].loc.offset;
		const char *why;
		if (strstr(code, "copied"))
			why = "the COPIED planner did not edit the table holding the entry: the table's pointer is doubtful or another structure claims its cluster";
		else if (!strncmp(code, "l1-", 3) || !strncmp(code, "l2-", 3) || !strncmp(code, "overlap-", 8) ||
		    !strncmp(code, "compressed-", 11))
			why = "a pointer whose target is doubtful: dropping or redirecting it would be a guess";
		else if (!strncmp(code, "refcount-", 9) || !strncmp(code, "reftable-", 9))
			why = "refcounts cannot be fixed safely while other problems remain (see above)";
		else if (qc_snapfix_handles((enum qc_code)c))
			why = "the snapshot-table repair could not fix it (see the snapshot verdicts)";
		else
			why = "not repaired by this version (table and snapshot repairs are not implemented)";
		qc_plan_leave(p, code, off, "%" PRIu64 " occurrence(s): %s", ps->per_code[c], why);
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
	struct refused { const char *code; uint64_t at, n; } refused[16];
	size_t nref = 0, k = 0;
	bool overflow = false;
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		if (w->phase != QC_PH_INPLACE || !qc_contested(img, w->offset, w->len)) {
			p->w[k++] = *w;
			continue;
		}
		refcounts |= !strncmp(w->code, "refcount-", 9);
		size_t j = 0;
		while (j < nref && strcmp(refused[j].code, w->code))
			j++;
		if (j == nref && nref < sizeof(refused) / sizeof(refused[0]))
			refused[nref++] = (struct refused){ w->code, w->offset, 0 };
		if (j < nref)
			refused[j].n++;
		else
			overflow = true;
		free(w->data);
	}
	p->n = k;
	for (size_t j = 0; j < nref; j++)
		qc_plan_leave(p, refused[j].code, refused[j].at,
			      "%" PRIu64 " edit(s) not written: the bytes lie in a cluster two structures claim (see the overlap-* findings), so each edit would change both",
			      refused[j].n);
	if (overflow)
		qc_plan_leave(p, "overlap-metadata", QC_NO_OFFSET,
			      "more edits not written: they lie in clusters two structures claim");
	return refcounts;
}

/*
 * A planned snapshot-table rewrite changes what the other planners must
 * see (the new table's clusters referenced, the old one's not): check the
 * image again as it will be after the rewrite's writes (overlay.h) and
 * plan the rest on that model.  *after is NULL when nothing was rewritten.
 */
static int plan_snapshots_first(struct qc_image *img, const struct qc_repair_opts *o,
				struct qc_plan *p, struct qc_io **ov, struct qc_image **after)
{
	*ov = NULL;
	*after = NULL;
	int r = qc_plan_snapshot_table(img, o, p);
	if (r <= 0)
		return r;
	*ov = qc_io_overlay(img->io, p, p->n);
	if (!*ov)
		return -ENOMEM;
	struct qc_options opt = img->opt;
	opt.drop_snapshot = NULL;
	if (qc_check_run(*ov, &opt, after) < 0)
		return -ENOMEM;
	if ((*after)->aborted) {
		/* the model of the rewritten image could not be built: plan nothing */
		return -EIO;
	}
	return 0;
}

int qc_repair_plan(struct qc_image *img0, const struct qc_repair_opts *o, struct qc_plan *p)
{
	if (!img0->is_qcow2 || img0->problems.unsupported || img0->aborted)
		return 0;
	struct qc_io *ov;
	struct qc_image *after;
	int r = plan_snapshots_first(img0, o, p, &ov, &after);
	struct qc_image *img = after ? after : img0;
	bool left = false;
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
	uint64_t at;
	int c = r == 0 ? qc_plan_conflict(p, &at) : 0;
	if (c < 0)
		r = -ENOMEM;
	else if (c > 0)
		r = -ENOTRECOVERABLE;
	qc_image_free(after);
	if (ov)
		qc_io_close(ov);
	return r;
}
