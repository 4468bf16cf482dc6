/*
 * copied.c - OFLAG_COPIED in the active L1 and L2 tables
 * (doc/format.md §9.3, check_oflag_copied).
 *
 * The flag must be set exactly when the refcount of the L2 table / data
 * cluster is 1; compressed entries never carry it (tables.c reports that).
 * We compare with the COMPUTED reference counts (the truth the walk found),
 * not with the stored refcounts as qemu-img does: a cluster whose stored
 * refcount is too high is then reported once, as a leak, and not also as a
 * COPIED error.
 *
 * Fast path: tables.c left QC_CM_ACTIVE_COPIED / _NOCOPIED on every data
 * cluster an active L2 entry references; one scan of the cluster map (done
 * by refcounts.c during its compare, else here) finds whether any L2 entry
 * is wrong.  Only then are the active L2 tables read
 * again, to report each wrong entry at its own offset.
 * Relies on: tables.c (img->l1, cluster map flags), header.c (l1_ok).
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

static void check_l1(struct qc_image *img)
{
	unsigned shift = qc_l1_shift(img);
	for (uint32_t i = 0; i < img->h.l1_size; i++) {
		uint64_t e = img->l1[i];
		uint64_t l2 = l2_of(img, e);
		if (!l2)
			continue;
		uint64_t rc = qc_cm_count(&img->cmap, l2 >> img->cluster_bits);
		bool copied = (e & QC_OFLAG_COPIED) != 0;
		if (copied == (rc == 1))
			continue;
		struct qc_loc loc = { img->h.l1_table_offset + 8 * (uint64_t)i, guest_of(shift, i, 0),
				      shift < 64 ? UINT64_C(1) << shift : 0, -1, NULL };
		qc_report(&img->problems, copied ? QC_P_L1_COPIED_SPURIOUS : QC_P_L1_COPIED_MISSING,
			  loc, 1, "L1 entry %u (0x%llx): L2 table 0x%llx has %llu references", i,
			  (unsigned long long)e, (unsigned long long)l2, (unsigned long long)rc);
	}
}

/* Number of data clusters whose active COPIED flags disagree with their count. */
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
			bad += ((fl[i] & QC_CM_ACTIVE_COPIED) && cnt[i] != 1) |
			       ((fl[i] & QC_CM_ACTIVE_NOCOPIED) && cnt[i] == 1);
	}
	free(cnt);
	free(fl);
	return bad;
}

/* Report every active L2 entry whose COPIED flag is wrong. */
static void report_l2(struct qc_image *img)
{
	const uint64_t cs = img->cluster_size;
	const unsigned es = img->l2_entry_size;
	unsigned shift = qc_l1_shift(img);
	const struct qc_entry_geom g = qc_entry_geom_of(img);
	uint8_t *t = malloc((size_t)cs);
	if (!t) {
		qc_abort(img, "out of memory checking OFLAG_COPIED");
		return;
	}
	for (uint32_t i = 0; i < img->h.l1_size; i++) {
		uint64_t l2 = l2_of(img, img->l1[i]);
		if (!l2)
			continue;
		if (qc_io_read(img->io, t, (size_t)cs, l2) < 0) {
			qc_abort(img, "I/O error reading L2 table 0x%llx", (unsigned long long)l2);
			break;
		}
		for (uint64_t j = 0; j < img->l2_entries; j++) {
			uint64_t e = qc_be64_at(t + j * es);
			uint64_t bm = es == 16 ? qc_be64_at(t + j * es + 8) : 0;
			struct qc_entry ce = qc_l2e_classify(e, bm, &g);
			uint64_t off = ce.offset;
			if (ce.kind != QC_ENTRY_NORMAL || !off || !qc_entry_followable(&ce) ||
			    qc_past_eof(img, off, cs))
				continue;
			uint64_t rc = qc_cm_count(&img->cmap, off >> img->cluster_bits);
			bool copied = (e & QC_OFLAG_COPIED) != 0;
			if (copied == (rc == 1))
				continue;
			struct qc_loc loc = { l2 + j * es, guest_of(shift, i, j * cs), cs, -1, NULL };
			qc_report(&img->problems,
				  copied ? QC_P_L2_COPIED_SPURIOUS : QC_P_L2_COPIED_MISSING, loc, 1,
				  "L2 entry 0x%llx: data cluster 0x%llx has %llu references",
				  (unsigned long long)e, (unsigned long long)off,
				  (unsigned long long)rc);
		}
	}
	free(t);
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
