/*
 * copied.c - OFLAG_COPIED in the active L1 and L2 tables (doc/copied.md;
 * what qemu-img's check_oflag_copied does: doc/format.md §9.3).
 *
 * The verdict on one flag uses the references the walk found (the
 * computed count) and whether the stored refcount is over-counted:
 *   set,   more than 1 reference                -> *-copied-spurious
 *                                                  (a write in place would
 *                                                  change a snapshot)
 *   set or clear, 1 reference, stored above 1   -> nothing here: the
 *                                                  refcount compare reports
 *                                                  the leak, and the leak
 *                                                  repair sets the flag
 *   clear, 1 reference, stored 1 (or unknown)   -> *-copied-missing
 * This is the class `qemu-img check` gives the states QEMU leaves when it
 * is killed mid-operation: an over-counted cluster is a leak there too.
 * Compressed entries never carry the flag (tables.c reports that).
 *
 * Fast path: tables.c left QC_CM_ACTIVE_COPIED / _NOCOPIED on every data
 * cluster an active L2 entry references, and refcounts.c marked
 * over-counted clusters (QC_CM_OVERCOUNTED) while counting the suspects;
 * without a refcount table this file counts them itself.  Only when a
 * suspect exists are the active L2 tables read again, each distinct table
 * once (an L2 table several L1 entries share is read once), to report
 * each wrong entry at its own offset.
 * Relies on: tables.c (img->l1, cluster map flags), refcounts.c
 * (QC_CM_OVERCOUNTED, copied_suspects), header.c (l1_ok).
 */
#include "check.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <stdlib.h>

/* Guest offset of L1 index i plus delta, or QC_NO_OFFSET on overflow. */
static uint64_t guest_of(unsigned shift, uint64_t i, uint64_t delta)
{
	if (shift >= 64 || i > (UINT64_MAX >> shift) || (i << shift) > UINT64_MAX - delta)
		return QC_NO_OFFSET;
	return (i << shift) + delta;
}

/* Usable active L1 entry -> its L2 offset, else 0 (tables.c's rules:
 * the classifier's, core/entry.h, and inside the file). */
static uint64_t l2_of(const struct qc_image *img, uint64_t e)
{
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	struct qc_entry ce = qc_l1e_classify(e, &g);
	if (!qc_entry_followable(&ce) || qc_past_eof(img, ce.offset, img->cluster_size))
		return 0;
	return ce.offset;
}

/*
 * The verdict on one flag (see the top of the file): QC_P_COUNT when it is
 * right or part of a leak, else the spurious or missing code.  *rc gets
 * the references found.
 */
static enum qc_code verdict(const struct qc_image *img, uint64_t cluster, bool copied,
			    enum qc_code spurious, enum qc_code missing, uint64_t *rc)
{
	*rc = qc_cm_count(&img->cmap, cluster);
	if (copied && *rc > 1)
		return spurious;
	if (!copied && *rc == 1 && !qc_cm_overcounted(&img->cmap, cluster))
		return missing;
	return QC_P_COUNT;
}

static void check_l1(struct qc_image *img)
{
	unsigned shift = qc_l1_shift(img);
	for (uint32_t i = 0; i < img->h.l1_size; i++) {
		uint64_t e = img->l1[i];
		uint64_t l2 = l2_of(img, e);
		if (!l2)
			continue;
		uint64_t rc;
		enum qc_code code = verdict(img, l2 >> img->cluster_bits, (e & QC_OFLAG_COPIED) != 0,
					    QC_P_L1_COPIED_SPURIOUS, QC_P_L1_COPIED_MISSING, &rc);
		if (code == QC_P_COUNT)
			continue;
		struct qc_loc loc = { img->h.l1_table_offset + 8 * (uint64_t)i, guest_of(shift, i, 0),
				      shift < 64 ? UINT64_C(1) << shift : 0, -1, NULL };
		qc_report(&img->problems, code, loc, 1,
			  "L1 entry %u (0x%llx): L2 table 0x%llx has %llu references", i,
			  (unsigned long long)e, (unsigned long long)l2, (unsigned long long)rc);
	}
}

/* Number of data clusters whose active COPIED flags look wrong (no
 * refcount table was compared, so no cluster is known over-counted). */
static uint64_t suspects(struct qc_image *img)
{
	enum { CH = 4096 };
	if (img->copied_scanned)
		return img->copied_suspects; /* refcounts.c counted them */
	uint64_t *cnt = malloc(CH * sizeof(*cnt));
	uint8_t *fl = malloc(CH);
	uint64_t bad = 0;
	if (!cnt || !fl) {
		free(cnt);
		free(fl);
		return 1; /* take the slow path */
	}
	uint64_t n = img->cmap.nclusters;
	for (uint64_t c = 0; c < n; c += CH) {
		size_t k = n - c < CH ? (size_t)(n - c) : CH;
		qc_cm_get_run(&img->cmap, c, k, cnt, fl);
		for (size_t i = 0; i < k; i++)
			bad += ((fl[i] & QC_CM_ACTIVE_COPIED) && cnt[i] > 1) |
			       ((fl[i] & QC_CM_OVERCOUNTED) == QC_CM_ACTIVE_NOCOPIED && cnt[i] == 1);
	}
	free(cnt);
	free(fl);
	return bad;
}

struct l2use {
	uint64_t l2;
	uint32_t l1_index;
};

static int use_cmp(const void *a, const void *b)
{
	const struct l2use *x = a, *y = b;
	if (x->l2 != y->l2)
		return x->l2 < y->l2 ? -1 : 1;
	return x->l1_index < y->l1_index ? -1 : x->l1_index > y->l1_index;
}

/* Report the wrong entries of the L2 table at l2, reached first through
 * L1 entry i (its guest offsets are given through that entry). */
static bool report_one(struct qc_image *img, uint8_t *t, uint64_t l2, uint32_t i)
{
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	unsigned shift = qc_l1_shift(img);
	if (qc_io_read(img->io, t, (size_t)cs, l2) < 0) {
		qc_abort(img, "I/O error reading L2 table 0x%llx", (unsigned long long)l2);
		return false;
	}
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	for (uint64_t j = 0; j < img->l2_entries; j++) {
		uint64_t e = qc_be64_at(t + j * es);
		uint64_t bm = es == 16 ? qc_be64_at(t + j * es + 8) : 0;
		struct qc_entry ce = qc_l2e_classify(e, bm, &g);
		uint64_t off = ce.offset;
		if (ce.kind != QC_ENTRY_NORMAL || !off || !qc_entry_followable(&ce) ||
		    qc_past_eof(img, off, cs))
			continue;
		uint64_t rc;
		enum qc_code code = verdict(img, off >> img->cluster_bits, (e & QC_OFLAG_COPIED) != 0,
					    QC_P_L2_COPIED_SPURIOUS, QC_P_L2_COPIED_MISSING, &rc);
		if (code == QC_P_COUNT)
			continue;
		struct qc_loc loc = { l2 + j * es, guest_of(shift, i, j * cs), cs, -1, NULL };
		qc_report(&img->problems, code, loc, 1,
			  "L2 entry 0x%llx: data cluster 0x%llx has %llu references",
			  (unsigned long long)e, (unsigned long long)off, (unsigned long long)rc);
	}
	return true;
}

/* Report every active L2 entry whose COPIED flag is wrong, reading each
 * distinct L2 table once (sorted by offset). */
static void report_l2(struct qc_image *img)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < img->h.l1_size; i++)
		n += l2_of(img, img->l1[i]) != 0;
	if (!n)
		return;
	struct l2use *u = qc_budget_alloc(img, n * sizeof(*u), "the list of active L2 tables");
	uint8_t *t = u ? malloc((size_t)img->cluster_size) : NULL;
	if (!t) {
		if (u)
			qc_budget_free(img, u, n * sizeof(*u));
		if (!img->aborted)
			qc_abort(img, "out of memory checking OFLAG_COPIED");
		return;
	}
	size_t k = 0;
	for (uint32_t i = 0; i < img->h.l1_size; i++) {
		uint64_t l2 = l2_of(img, img->l1[i]);
		if (l2)
			u[k++] = (struct l2use){ l2, i };
	}
	qsort(u, k, sizeof(*u), use_cmp);
	for (size_t a = 0; a < k; a++) {
		if (a && u[a].l2 == u[a - 1].l2)
			continue; /* the same table through another L1 entry */
		if (!report_one(img, t, u[a].l2, u[a].l1_index))
			break;
	}
	free(t);
	qc_budget_free(img, u, n * sizeof(*u));
}

void qc_pass_copied(struct qc_image *img)
{
	if (!img->geometry_ok || !img->l1)
		return;
	check_l1(img);
	if (img->data_file)
		return; /* tables.c checks COPIED on external data clusters */
	if (suspects(img))
		report_l2(img);
}
