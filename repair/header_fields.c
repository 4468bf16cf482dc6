/*
 * header_fields.c - header fields restored from evidence (doc/repair.md
 * "Header fields"): l1_size too small for the virtual size, raised when the
 * L1 table's clusters hold the missing entries; l1_table_offset unaligned or
 * past the end of the file, restored when exactly one correction of bits
 * that cannot be set names leaked clusters shaped like this image's L1
 * table; header_length invalid, restored to the length at which the header
 * extensions parse.  Anything else is refused, and the refusal names the
 * field.
 *
 * The changed fields go into the header cluster in phase `switch`, one
 * write per run of changed bytes (emit() below), and the other planners
 * then plan on a check of the image as those writes leave it
 * (repair/repair.c, repair/overlay.c): a raised or restored L1 table is
 * walked there, so the L2 tables and data it names are referenced again,
 * not leaks.
 *
 * Relies on the model (the cluster map, the stored refcounts through
 * repair/fix.h), the header bytes in img->header_cluster, and the bounded
 * reads of core/io.h.  Every size read from the image is bounded before
 * use: entries by the header rules (QC_MAX_L1_SIZE), extension lengths by
 * the header cluster.
 */
#include "fix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"

struct hf {
	struct qc_image *img;
	struct qc_plan *p;
	uint8_t hdr[QC_HDR_HEADER_LENGTH + 4]; /* the header fields as they will be */
	bool changed;
	enum qc_code code;                     /* of the first change */
	char what[3][48];                      /* summary of each change */
	unsigned nwhat;
	bool eio;
};

static void note(struct hf *h, enum qc_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct hf *h, enum qc_code code, const char *fmt, ...)
{
	if (!h->changed)
		h->code = code;
	if (h->nwhat >= sizeof(h->what) / sizeof(h->what[0]))
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(h->what[h->nwhat++], sizeof(h->what[0]), fmt, ap);
	va_end(ap);
	h->changed = true;
}

/* Can an active L1 entry name an L2 table that lost this reference: 0, or
 * an aligned in-file offset without reserved bits naming a leaked cluster
 * or an L2 table a snapshot shares whose stored refcount counts one more
 * reference than the walk found?  *nonzero counts the non-zero ones. */
static bool l1_entry_lost(struct qc_image *img, uint64_t e, unsigned *nonzero)
{
	if (!e)
		return true;
	uint64_t off = e & QC_L1E_OFFSET_MASK;
	if ((e & QC_L1E_RESERVED_MASK) || !off)
		return false;
	++*nonzero;
	return qc_fix_unclaimed(img, off) || qc_fix_missing_ref(img, off, QC_OWN_L2) ||
	       qc_fix_missing_ref(img, off, QC_OWN_L2_INACTIVE);
}

/* Are the n entries at off (read from the file) all entries that lost
 * their reference, with at least min_nonzero of them non-zero? */
static bool entries_lost(struct hf *h, uint64_t off, uint64_t n, unsigned min_nonzero)
{
	struct qc_image *img = h->img;
	if (!n)
		return min_nonzero == 0;
	uint64_t bytes = n * 8;
	/* a candidate past the end of the file holds no entries (not an
	 * I/O error: found by tests/gap-sweep.py, an L1 pointer moved into
	 * compressed data) */
	if (qc_past_eof(img, off, bytes))
		return false;
	uint8_t *buf = qc_budget_alloc(img, bytes, "the header-field repair");
	if (!buf) {
		h->eio = true;
		return false;
	}
	bool ok = qc_io_read_full(img->io, buf, (size_t)bytes, off) >= 0;
	h->eio |= !ok;
	unsigned nonzero = 0;
	for (uint64_t i = 0; ok && i < n; i++)
		ok = l1_entry_lost(img, qc_be64_at(buf + 8 * i), &nonzero);
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

/* l1_size below what the virtual size needs: raised when the clusters the
 * raised table covers are the L1's own or leaked, and every missing entry
 * is 0 or names an L2 table that lost its reference. */
static void fix_l1_size(struct hf *h)
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
	if (!clusters_free_for_l1(img, off, need * 8, true) ||
	    !entries_lost(h, off + have * 8, need - have, 0)) {
		if (!h->eio)
			qc_plan_leave(h->p, QC_P_HEADER_L1_TOO_SMALL, QC_HDR_L1_SIZE,
				      "header field l1_size (%" PRIu64 ", %" PRIu64 " needed): not raised: the clusters after the table are not the L1's own or leaked, or the entries there are not L2 pointers that lost their reference",
				      have, need);
		return;
	}
	qc_put_be32(h->hdr + QC_HDR_L1_SIZE, (uint32_t)need);
	note(h, QC_P_HEADER_L1_TOO_SMALL, "l1_size %" PRIu64 " -> %" PRIu64, have, need);
}

/* qc_fix_recover's test: a leaked run shaped like this image's L1 table. */
static bool l1_candidate(void *ctx, uint64_t cand)
{
	struct hf *h = ctx;
	struct qc_image *img = h->img;
	uint64_t len = (uint64_t)img->h.l1_size * 8;
	return !qc_past_eof(img, cand, len) && clusters_free_for_l1(img, cand, len, false) &&
	       entries_lost(h, cand, img->h.l1_size, 1);
}

/* l1_table_offset unaligned or past the end of the file: restored when
 * exactly one candidate (repair/fix.h qc_fix_recover) is an L1 table
 * that lost its reference. */
static void fix_l1_offset(struct hf *h, enum qc_code code)
{
	struct qc_image *img = h->img;
	uint64_t off = img->h.l1_table_offset, found;
	const char *why = NULL;
	if (!img->h.l1_size || (uint64_t)img->h.l1_size * 8 > QC_MAX_L1_SIZE)
		why = "l1_size is 0 or too large to judge a candidate";
	else if (img->problems.per_code[QC_P_HEADER_L1_TOO_SMALL])
		why = "l1_size is damaged too";
	else if (!qc_fix_recover(img, off, l1_candidate, h, &found))
		why = h->eio ? "reading a candidate failed"
			     : "no single leaked run of clusters a flipped or alignment bit away is shaped like the L1 table";
	if (why) {
		qc_plan_leave(h->p, code, QC_HDR_L1_TABLE_OFFSET,
			      "header field l1_table_offset (0x%" PRIx64 "): not restored: %s", off, why);
		return;
	}
	qc_put_be64(h->hdr + QC_HDR_L1_TABLE_OFFSET, found);
	note(h, code, "l1_table_offset 0x%" PRIx64 " -> 0x%" PRIx64, off, found);
}

/* Known extension types: a chain of them is evidence of where it starts. */
static bool known_ext(uint32_t t)
{
	return t == QC_EXT_BACKING_FORMAT || t == QC_EXT_FEATURE_TABLE || t == QC_EXT_BITMAPS ||
	       t == QC_EXT_CRYPTO || t == QC_EXT_DATA_FILE;
}

/* Number of extensions in a chain starting at `start` that ends in an end
 * marker before `end`, every one of a known type; -1 when it does not. */
static int ext_chain(const struct qc_image *img, uint64_t start, uint64_t end)
{
	struct qc_view v = qc_view_make(img->header_cluster, img->header_cluster_len);
	int n = 0;
	for (uint64_t off = start; off + 8 <= end; n++) {
		uint32_t type = 0, len = 0;
		if (!qc_get_be32(v, off, &type) || !qc_get_be32(v, off + 4, &len))
			return -1;
		if (type == QC_EXT_END)
			return len == 0 ? n : -1;
		if (!known_ext(type) || len > end - off - 8)
			return -1;
		off += 8 + (((uint64_t)len + 7) & ~UINT64_C(7));
	}
	return -1;
}

/* header_length invalid: the length (104 or 112, what QEMU writes) at
 * which the extensions parse as a chain of known types to an end marker;
 * of two, the one with more extensions, else 112 when the compression type
 * byte must be inside the header, else 104. */
static void fix_header_length(struct hf *h)
{
	struct qc_image *img = h->img;
	uint64_t end = img->cluster_size;
	if (img->h.backing_file_offset && img->h.backing_file_offset < end)
		end = img->h.backing_file_offset;
	if (end > img->header_cluster_len)
		end = img->header_cluster_len;
	int n104 = end > 104 ? ext_chain(img, 104, end) : -1;
	int n112 = end > 112 ? ext_chain(img, 112, end) : -1;
	bool zstd = img->h.incompatible_features & QC_INCOMPAT_COMPRESSION;
	if (zstd)
		n104 = -1;
	uint32_t len;
	if (n104 < 0 && n112 < 0) {
		qc_plan_leave(h->p, QC_P_HEADER_LENGTH_INVALID, QC_HDR_HEADER_LENGTH,
			      "header field header_length (%" PRIu32 "): not restored: the header extensions parse neither at 104 nor at 112",
			      img->h.header_length);
		return;
	}
	len = n112 > n104 ? 112 : 104;
	qc_put_be32(h->hdr + QC_HDR_HEADER_LENGTH, len);
	note(h, QC_P_HEADER_LENGTH_INVALID, "header_length %" PRIu32 " -> %" PRIu32, img->h.header_length, len);
}

/*
 * The header writes: one per run of changed bytes, a run ending where 8
 * unchanged bytes follow, so that l1_size and l1_table_offset (adjacent)
 * change in one write while the bytes between two distant fields are not
 * rewritten: other planners (the snapshot-table switch, the autoclear
 * bits) plan their own header fields in the same repair, and a span over
 * theirs would carry the old values (found by fuzz/fuzz_repair.c: "two
 * planned writes overlap").
 */
static int emit(struct hf *h)
{
	const uint8_t *old = h->img->header_cluster;
	const size_t n = sizeof(h->hdr);
	char sum[160];
	snprintf(sum, sizeof(sum), "%s%s%s%s%s", h->what[0], h->nwhat > 1 ? ", " : "",
		 h->nwhat > 1 ? h->what[1] : "", h->nwhat > 2 ? ", " : "", h->nwhat > 2 ? h->what[2] : "");
	int planned = 0;
	size_t b = 0;
	while (b < n) {
		while (b < n && old[b] == h->hdr[b])
			b++;
		if (b == n)
			break;
		size_t e = b + 1, same = 0;
		for (size_t k = e; k < n && same < 8; k++) {
			if (old[k] == h->hdr[k]) {
				same++;
			} else {
				same = 0;
				e = k + 1;
			}
		}
		if (!qc_plan_add(h->p, QC_PH_SWITCH, b, h->hdr + b, e - b, h->code, "header: %s", sum))
			return -ENOMEM;
		planned = 1;
		b = e;
	}
	return planned;
}

int qc_plan_header_fields(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	if (!img->is_qcow2 || !img->geometry_ok || !img->header_cluster || o->leaks_only ||
	    img->header_cluster_len < sizeof(((struct hf *)0)->hdr))
		return 0;
	struct hf h = { .img = img, .p = p };
	memcpy(h.hdr, img->header_cluster, sizeof(h.hdr));
	if (ps->per_code[QC_P_HEADER_LENGTH_INVALID] && img->h.version >= 3)
		fix_header_length(&h);
	if (ps->per_code[QC_P_HEADER_L1_TOO_SMALL])
		fix_l1_size(&h);
	if (ps->per_code[QC_P_HEADER_L1_OFFSET_UNALIGNED])
		fix_l1_offset(&h, QC_P_HEADER_L1_OFFSET_UNALIGNED);
	else if (ps->per_code[QC_P_HEADER_L1_PAST_EOF])
		fix_l1_offset(&h, QC_P_HEADER_L1_PAST_EOF);
	if (h.eio)
		return -EIO;
	return h.changed ? emit(&h) : 0;
}
