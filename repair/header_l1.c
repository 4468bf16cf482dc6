/*
 * header_l1.c - the active L1 table's header fields restored from evidence
 * (doc/repair.md "Header fields"):
 *   - l1_size below what the virtual size needs: raised when the L1
 *     table's clusters hold the missing entries;
 *   - l1_size above it and spanning clusters that are not the L1 table's
 *     (another structure's, free, or past the end of the file), every entry
 *     past the need being 0 up to there: lowered to the need;
 *   - l1_table_offset unaligned, past the end of the file, or naming
 *     clusters that cannot be an L1 table (the header, another structure's
 *     cluster, entries that break the L1 rules): restored to the one leaked
 *     run of clusters shaped like this image's L1 table, found by a
 *     correction of bits that cannot be set or else by a search of the
 *     leaked clusters, and confirmed by a check of the image with the
 *     restored offset (header_trial.c).
 *
 * Relies on the model's cluster map and stored refcounts (repair/fix.h)
 * and the bounded reads of core/io.h; entry counts are bounded by the
 * format's limit (QC_MAX_L1_SIZE) before any read, and the search reads at
 * most SEARCH_READ_CAP bytes.
 */
#include "header_fields.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/reader.h"

/* Bytes the search for a lost L1 table may read before it gives up. */
#define SEARCH_READ_CAP (UINT64_C(256) << 20)
/* Leaked runs shaped like the L1 table that the search confirms by a trial
 * check; more than this is not "exactly one" anyway. */
#define SEARCH_MAX_CAND 4

/* Read len bytes at off; zeros past the end of the file (a table in the
 * file's last, partial cluster).  false on a read error. */
static bool read_zf(struct qc_image *img, uint8_t *buf, uint64_t len, uint64_t off)
{
	memset(buf, 0, (size_t)len);
	return qc_io_read(img->io, buf, (size_t)len, off) >= 0;
}

/* Can an active L1 entry name an L2 table that lost this reference: 0, or
 * an aligned in-file offset without reserved bits naming a leaked cluster,
 * an L2 table a snapshot shares whose stored refcount counts one more
 * reference than the walk found, or, when flen is not 0, a cluster inside
 * [freed, +flen) (the range the header's wrong L1 offset names) or an L2
 * table only the active walk (through that wrong table) claims: those
 * claims go away?
 * *nonzero counts the non-zero ones. */
static bool l1_entry_lost(struct qc_image *img, uint64_t e, uint64_t freed, uint64_t flen,
			  unsigned *nonzero)
{
	if (!e)
		return true;
	uint64_t off = e & QC_L1E_OFFSET_MASK;
	if ((e & QC_L1E_RESERVED_MASK) || !off)
		return false;
	++*nonzero;
	if (flen && !qc_past_eof(img, off, img->cluster_size) && !(off & (img->cluster_size - 1))) {
		/* the wrong table's range, or an L2 table only the wrong
		 * table's walk claims: those claims go away */
		uint64_t cl = off >> img->cluster_bits;
		if (off >= freed && off - freed < flen)
			return true;
		if (cl < img->cmap.nclusters && qc_cm_owner(&img->cmap, cl) == QC_OWN_L2 &&
		    !qc_contested(img, off, img->cluster_size))
			return true;
	}
	return qc_fix_unclaimed(img, off) || qc_fix_missing_ref(img, off, QC_OWN_L2) ||
	       qc_fix_missing_ref(img, off, QC_OWN_L2_INACTIVE);
}

/* Are the n entries at off (read from the file) all entries that lost
 * their reference, with at least min_nonzero of them non-zero? */
static bool entries_lost(struct hf *h, uint64_t off, uint64_t n, unsigned min_nonzero,
			 uint64_t freed, uint64_t flen)
{
	struct qc_image *img = h->img;
	if (!n)
		return min_nonzero == 0;
	uint64_t bytes = n * 8;
	/* a candidate past the end of the file holds no entries (not an I/O
	 * error: an L1 pointer moved into compressed data) */
	if (qc_past_eof(img, off, bytes))
		return false;
	uint8_t *buf = qc_budget_alloc(img, bytes, "the header-field repair");
	if (!buf) {
		h->eio = true;
		return false;
	}
	bool ok = read_zf(img, buf, bytes, off);
	h->eio |= !ok;
	unsigned nonzero = 0;
	for (uint64_t i = 0; ok && i < n; i++)
		ok = l1_entry_lost(img, qc_be64_at(buf + 8 * i), freed, flen, &nonzero);
	qc_budget_free(img, buf, bytes);
	return ok && nonzero >= min_nonzero;
}

/* Is every cluster of [off, off+len) either claimed by the active L1
 * already or leaked (stored refcount >= 1, nothing claims it)? */
static bool clusters_free_for_l1(struct qc_image *img, uint64_t off, uint64_t len, bool own_ok)
{
	uint64_t first = off >> img->cluster_bits;
	uint64_t last = (off + len - 1) >> img->cluster_bits;
	for (uint64_t c = first; c <= last; c++) {
		uint64_t at = c << img->cluster_bits;
		bool own = own_ok && c < img->cmap.nclusters && qc_cm_owner(&img->cmap, c) == QC_OWN_L1 &&
			   !qc_contested(img, at, img->cluster_size);
		if (!own && !qc_fix_unclaimed(img, at))
			return false;
	}
	return true;
}

/* Is cluster c one the L1 table may own: claimed by the active L1 alone
 * or leaked, with a stored refcount of at least 1, inside the file? */
static bool l1_own_cluster(struct qc_image *img, uint64_t c)
{
	uint64_t at = c << img->cluster_bits, rc;
	if (qc_past_eof(img, at, img->cluster_size))
		return false;
	if (c < img->cmap.nclusters && qc_cm_owner(&img->cmap, c) == QC_OWN_L1 &&
	    !qc_contested(img, at, img->cluster_size))
		return qc_fix_stored_refcount(img, c, &rc) && rc >= 1;
	return qc_fix_unclaimed(img, at);
}

/* Codes a restored L1 field must leave behind in the trial check. */
static const enum qc_code l1_codes[] = {
	QC_P_HEADER_L1_OFFSET_UNALIGNED, QC_P_HEADER_L1_PAST_EOF, QC_P_HEADER_L1_TOO_LARGE,
	QC_P_HEADER_L1_TOO_SMALL,        QC_P_L1_ENTRY_NO_OFFSET, QC_P_L1_ENTRY_RESERVED,
	QC_P_L1_ENTRY_UNALIGNED,         QC_P_L1_L2_PAST_EOF,     QC_P_OVERLAP_METADATA,
	QC_P_OVERLAP_DATA_METADATA,
};

/* Is trial model m free of the L1 codes above, with fewer corruptions
 * than the image now? */
static bool trial_passes(const struct hf *h, const struct qc_image *m)
{
	const struct qc_problems *ps = &m->problems;
	bool ok = ps->corruptions < h->img->problems.corruptions;
	for (size_t i = 0; ok && i < sizeof(l1_codes) / sizeof(l1_codes[0]); i++)
		ok = ps->per_code[l1_codes[i]] == 0;
	return ok;
}

/* Does the image with the candidate header bytes pass (trial_passes)?
 * *eio on failure. */
static bool trial_ok(struct hf *h, const uint8_t *hdr)
{
	struct qc_hf_trial *t = qc_hf_trial_run(h->img, hdr, sizeof(h->hdr), &h->eio);
	if (!t)
		return false;
	bool ok = trial_passes(h, qc_hf_trial_model(t));
	qc_hf_trial_free(t);
	return ok;
}

/* l1_size below what the virtual size needs: raised when the clusters the
 * raised table covers are the L1's own or leaked, and every missing entry
 * is 0 or names an L2 table that lost its reference. */
static void raise_l1_size(struct hf *h)
{
	struct qc_image *img = h->img;
	uint64_t need = img->l1_vm_state_index, have = img->h.l1_size;
	uint64_t off = img->h.l1_table_offset;
	if (!img->l1_ok || need <= have || need * 8 > QC_MAX_L1_SIZE ||
	    qc_past_eof(img, off, need * 8)) {
		qc_plan_leave(h->p, QC_P_HEADER_L1_TOO_SMALL, QC_HDR_L1_SIZE,
			      "header field l1_size (%" PRIu64 ", %" PRIu64 " needed): not raised: the L1 table's offset is damaged or the raised table would not lie inside the file",
			      have, need);
		return;
	}
	if (clusters_free_for_l1(img, off, need * 8, true) &&
	    entries_lost(h, off + have * 8, need - have, 0, 0, 0) &&
	    !entries_lost(h, off + have * 8, need - have, 1, 0, 0) && !h->eio) {
		/* all 0: the L1 never mapped the range the size adds, so the
		 * size may be the damaged field; nothing settles which */
		qc_plan_leave(h->p, QC_P_HEADER_L1_TOO_SMALL, QC_HDR_L1_SIZE,
			      "header field l1_size (%" PRIu64 ", %" PRIu64 " needed) or size (%" PRIu64 "): not restored: every missing entry is 0, so either field may be the damaged one",
			      have, need, img->h.size);
		return;
	}
	if (!clusters_free_for_l1(img, off, need * 8, true) ||
	    !entries_lost(h, off + have * 8, need - have, 1, 0, 0)) {
		if (!h->eio)
			qc_plan_leave(h->p, QC_P_HEADER_L1_TOO_SMALL, QC_HDR_L1_SIZE,
				      "header field l1_size (%" PRIu64 ", %" PRIu64 " needed): not raised: the clusters after the table are not the L1's own or leaked, or the entries there are not L2 pointers that lost their reference",
				      have, need);
		return;
	}
	qc_put_be32(h->hdr + QC_HDR_L1_SIZE, (uint32_t)need);
	qc_hf_note(h, QC_P_HEADER_L1_TOO_SMALL, "l1_size %" PRIu64 " -> %" PRIu64, have, need);
}

/*
 * l1_size above the need: where does the table stop being the L1's?  Walks
 * the entries from index need on, cluster by cluster, until l1_size or the
 * first cluster that is not the L1's own in model m (l1_own_cluster: m is
 * the trial check with l1_size = need, where the L2 tables and data the
 * table names are claimed).  Returns 1 when a foreign cluster (or the end
 * of the file) comes first (l1_size is then proved too large), with *keep
 * one past the last non-zero entry before it, at least need (QEMU grows an
 * L1 table past the disk's need for the VM state that savevm writes, and
 * zero-fills the rest of its clusters); 0 when the table holds up to
 * l1_size (nothing proved); -1 on a read error.
 */
static int l1_overreaches(struct hf *h, struct qc_image *m, uint64_t off, uint64_t need,
			  uint64_t have, uint64_t *keep)
{
	struct qc_image *img = h->img;
	const uint64_t cs = img->cluster_size;
	uint8_t *buf = qc_budget_alloc(img, cs, "the header-field repair");
	if (!buf)
		return -1;
	int r = 0;
	uint64_t i = need;
	*keep = need;
	while (i < have) {
		uint64_t at = off + i * 8, c = at >> img->cluster_bits;
		if (!l1_own_cluster(m, c)) {
			r = 1;
			break;
		}
		uint64_t cend = (c + 1) << img->cluster_bits;
		uint64_t n = (cend - at) / 8;
		if (n > have - i)
			n = have - i;
		if (!read_zf(img, buf, n * 8, at)) {
			r = -1;
			break;
		}
		for (uint64_t k = 0; k < n; k++)
			if (qc_be64_at(buf + 8 * k))
				*keep = i + k + 1;
		i += n;
	}
	qc_budget_free(img, buf, cs);
	return r;
}

/* l1_size above the need and reaching into clusters that are not the L1
 * table's: lowered to the need, or to one past the last non-zero entry of
 * the L1's own clusters when that is more, when the image checks better
 * with that size. */
static bool lower_l1_size(struct hf *h)
{
	struct qc_image *img = h->img;
	const struct qc_problems *ps = &img->problems;
	uint64_t need = img->l1_vm_state_index, have = img->h.l1_size;
	uint64_t off = img->h.l1_table_offset;
	if (have <= need || !need || need * 8 > QC_MAX_L1_SIZE || off < img->cluster_size ||
	    (off & (img->cluster_size - 1)) || qc_past_eof(img, off, need * 8))
		return false;
	bool suspect = ps->per_code[QC_P_HEADER_L1_TOO_LARGE] || ps->per_code[QC_P_HEADER_L1_PAST_EOF] ||
		       ps->per_code[QC_P_L1_ENTRY_RESERVED] || ps->per_code[QC_P_L1_ENTRY_UNALIGNED] ||
		       ps->per_code[QC_P_L1_L2_PAST_EOF] || ps->per_code[QC_P_L1_ENTRY_NO_OFFSET] ||
		       ps->per_code[QC_P_OVERLAP_METADATA] || ps->per_code[QC_P_OVERLAP_DATA_METADATA];
	if (!suspect)
		return false;
	uint8_t cand[sizeof(h->hdr)];
	memcpy(cand, h->hdr, sizeof(cand));
	qc_put_be32(cand + QC_HDR_L1_SIZE, (uint32_t)need);
	struct qc_hf_trial *t = qc_hf_trial_run(img, cand, sizeof(cand), &h->eio);
	if (!t)
		return false;
	struct qc_image *m = qc_hf_trial_model(t);
	uint64_t keep = need;
	int r = l1_overreaches(h, m, off, need, have, &keep);
	bool ok = r > 0 && keep == need && trial_passes(h, m);
	qc_hf_trial_free(t);
	if (r < 0)
		h->eio = true;
	if (r <= 0 || keep >= have)
		return false;
	if (keep > need) {
		/* the entries past the need, kept: the image must check
		 * better with them */
		qc_put_be32(cand + QC_HDR_L1_SIZE, (uint32_t)keep);
		ok = trial_ok(h, cand);
	}
	if (!ok)
		return false;
	memcpy(h->hdr, cand, sizeof(cand));
	qc_hf_note(h, ps->per_code[QC_P_HEADER_L1_TOO_LARGE] ? QC_P_HEADER_L1_TOO_LARGE
			: ps->per_code[QC_P_HEADER_L1_PAST_EOF] ? QC_P_HEADER_L1_PAST_EOF
								 : QC_P_L1_ENTRY_RESERVED,
		   "l1_size %" PRIu64 " -> %" PRIu64, have, keep);
	return true;
}

void qc_hf_l1_size(struct hf *h)
{
	struct qc_image *img = h->img;
	if (img->problems.per_code[QC_P_HEADER_L1_TOO_SMALL]) {
		raise_l1_size(h);
		return;
	}
	if (lower_l1_size(h) || h->eio)
		return;
	if (img->problems.per_code[QC_P_HEADER_L1_TOO_LARGE])
		qc_plan_leave(h->p, QC_P_HEADER_L1_TOO_LARGE, QC_HDR_L1_SIZE,
			      "header field l1_size (%" PRIu32 ", %" PRIu64 " needed): not lowered: the table holds its entries up to l1_size, or the image does not check better with the need or with the entries of the L1's own clusters",
			      img->h.l1_size, img->l1_vm_state_index);
}

/* Did qc_hf_l1_size change l1_size? */
static bool l1_size_changed(const struct hf *h)
{
	return memcmp(h->hdr + QC_HDR_L1_SIZE, h->img->header_cluster + QC_HDR_L1_SIZE, 4) != 0;
}

/* qc_fix_recover's test: a leaked run shaped like this image's L1 table. */
static bool l1_candidate(void *ctx, uint64_t cand)
{
	struct hf *h = ctx;
	struct qc_image *img = h->img;
	uint64_t len = (uint64_t)img->h.l1_size * 8;
	return !qc_past_eof(img, cand, len) && clusters_free_for_l1(img, cand, len, false) &&
	       entries_lost(h, cand, img->h.l1_size, 1, 0, 0);
}

/* Does the walk from the active L1 table find damaged L1 or L2 entries?
 * A contested L1 table whose tree walks clean is the other claimant's
 * mistake (a snapshot's L1 pointer aimed at it, principle 3), not a wrong
 * l1_table_offset. */
static bool active_tree_damaged(const struct qc_image *img)
{
	static const enum qc_code codes[] = {
		QC_P_L1_ENTRY_NO_OFFSET, QC_P_L1_ENTRY_RESERVED, QC_P_L1_ENTRY_UNALIGNED,
		QC_P_L1_L2_PAST_EOF,     QC_P_L2_ENTRY_RESERVED, QC_P_L2_ENTRY_UNALIGNED,
		QC_P_L2_DATA_PAST_EOF,   QC_P_OVERLAP_DATA_METADATA,
	};
	const struct qc_problems *ps = &img->problems;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].loc.snapshot >= 0)
			continue;
		for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++)
			if (ps->v[i].code == codes[k])
				return true;
	}
	return false;
}

/*
 * Can the table the header names not be this image's L1 table?  It lies in
 * the header cluster, or another structure claims one of its clusters
 * while the tree under it has damaged entries, or
 * more than half of its non-zero entries break the L1 rules (reserved bits,
 * unaligned, past the end of the file, flags without an offset).  One or a
 * few bad entries are the L1 fixer's (fix_l1.c), not evidence of a wrong
 * offset.  The range is in the file (the caller checked).
 */
static bool l1_impossible(struct hf *h, uint64_t off, uint64_t n)
{
	struct qc_image *img = h->img;
	if (off < img->cluster_size || (qc_contested(img, off, n * 8) && active_tree_damaged(img)))
		return true;
	uint8_t *buf = qc_budget_alloc(img, n * 8, "the header-field repair");
	if (!buf) {
		h->eio = true;
		return false;
	}
	bool ok = read_zf(img, buf, n * 8, off);
	h->eio |= !ok;
	uint64_t bad = 0, nonzero = 0;
	for (uint64_t i = 0; ok && i < n; i++) {
		uint64_t e = qc_be64_at(buf + 8 * i), o = e & QC_L1E_OFFSET_MASK;
		if (!e)
			continue;
		nonzero++;
		bad += (e & QC_L1E_RESERVED_MASK) || !o || (o & (img->cluster_size - 1)) ||
		       qc_past_eof(img, o, img->cluster_size);
	}
	qc_budget_free(img, buf, n * 8);
	return ok && bad && bad * 2 > nonzero;
}

/*
 * The search: every leaked run of clusters (or clusters of the wrong
 * table the header names now) shaped like the L1 table
 * (l1_size entries, each 0 or naming an L2 table that lost its reference,
 * or one inside the range the header names now, whose claim goes away; at
 * least one non-zero).  Exactly one such run that a trial check confirms
 * is restored.  Returns the reason when none is, NULL with *found set.
 */
static const char *search_l1(struct hf *h, uint64_t *found)
{
	struct qc_image *img = h->img;
	uint64_t n = img->h.l1_size, len = n * 8, cur = img->h.l1_table_offset;
	uint64_t flen = img->l1_ok && !qc_past_eof(img, cur, len) ? len : 0;
	uint64_t cand[SEARCH_MAX_CAND], read = 0;
	unsigned ncand = 0;
	uint64_t last = img->file_size >> img->cluster_bits;
	for (uint64_t c = 1; c < last; c++) {
		uint64_t at = c << img->cluster_bits;
		if (qc_past_eof(img, at, len))
			break;
		/* the wrong table's own clusters count as free: its claim goes
		 * away (a table at offset 0 spanning the header and the real
		 * L1's first clusters, small clusters) */
		if (at == cur || !clusters_free_for_l1(img, at, len, true))
			continue;
		read += len;
		if (read > SEARCH_READ_CAP)
			return "too many leaked clusters to search for the L1 table";
		if (!entries_lost(h, at, n, 1, cur, flen)) {
			if (h->eio)
				return "reading a candidate failed";
			continue;
		}
		if (ncand == SEARCH_MAX_CAND)
			return "several leaked runs of clusters are shaped like the L1 table";
		cand[ncand++] = at;
	}
	unsigned ok = 0;
	for (unsigned i = 0; i < ncand; i++) {
		uint8_t hdr[sizeof(h->hdr)];
		memcpy(hdr, h->hdr, sizeof(hdr));
		qc_put_be64(hdr + QC_HDR_L1_TABLE_OFFSET, cand[i]);
		if (trial_ok(h, hdr)) {
			*found = cand[i];
			ok++;
		}
		if (h->eio)
			return "checking a candidate failed";
	}
	if (ok == 1)
		return NULL;
	return ok ? "several leaked runs of clusters are shaped like the L1 table"
		  : "no leaked run of clusters is shaped like the L1 table";
}

/* l1_table_offset unaligned, past the end of the file (code), or naming a
 * table that cannot be the L1 (code 0: nothing is left when no evidence). */
void qc_hf_l1_offset(struct hf *h, enum qc_code code)
{
	struct qc_image *img = h->img;
	uint64_t off = img->h.l1_table_offset, found = 0;
	uint64_t n = img->h.l1_size;
	const char *why = NULL;
	if (l1_size_changed(h))
		return;
	if (code == QC_P_COUNT && (!n || n * 8 > QC_MAX_L1_SIZE || !img->l1_ok ||
				   img->problems.per_code[QC_P_HEADER_L1_TOO_SMALL]))
		return;
	if (!n || n * 8 > QC_MAX_L1_SIZE)
		why = "l1_size is 0 or too large to judge a candidate";
	else if (img->problems.per_code[QC_P_HEADER_L1_TOO_SMALL])
		why = "l1_size is damaged too";
	else if (code == QC_P_COUNT) {
		/* aligned and inside the file: only a table that cannot be the
		 * L1 is replaced */
		if (!l1_impossible(h, off, n))
			return;
		code = img->problems.per_code[QC_P_OVERLAP_METADATA] ? QC_P_OVERLAP_METADATA
								     : QC_P_L1_ENTRY_RESERVED;
		why = search_l1(h, &found);
		/* bad entries alone do not prove the offset wrong: without a
		 * found table they stay the L1 fixer's, and nothing is said
		 * about the offset */
		if (why && !h->eio && off >= img->cluster_size && !qc_contested(img, off, n * 8))
			return;
	} else if (!qc_fix_recover(img, off, l1_candidate, h, &found)) {
		why = h->eio ? "reading a candidate failed" : search_l1(h, &found);
	}
	if (h->eio)
		why = "reading or checking a candidate failed";
	if (why) {
		qc_plan_leave(h->p, code, QC_HDR_L1_TABLE_OFFSET,
			      "header field l1_table_offset (0x%" PRIx64 "): not restored: %s", off, why);
		return;
	}
	qc_put_be64(h->hdr + QC_HDR_L1_TABLE_OFFSET, found);
	qc_hf_note(h, code, "l1_table_offset 0x%" PRIx64 " -> 0x%" PRIx64, off, found);
}
