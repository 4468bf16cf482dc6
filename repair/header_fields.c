/*
 * header_fields.c - header fields restored from evidence (doc/repair.md
 * "Header fields"): l1_size too small for the virtual size, raised when the
 * L1 table's clusters hold the missing entries; l1_table_offset unaligned or
 * past the end of the file, restored when exactly one correction of bits
 * that cannot be set names leaked clusters shaped like this image's L1
 * table; header_length invalid, restored to the length at which the header
 * extensions parse; cluster_bits (header_cluster_bits.c) and refcount_order
 * (header_refcount.c) restored when exactly one value makes the image's
 * structures agree.  Anything else is refused, and the refusal names the
 * field.
 *
 * The changed fields go into the header cluster in one write (phase
 * `switch`), and the other planners then plan on a check of the image as
 * that write leaves it (repair/repair.c, repair/overlay.c): a raised or
 * restored L1 table is walked there, so the L2 tables and data it names
 * are referenced again, not leaks.
 *
 * Relies on the model (the cluster map, the stored refcounts through
 * repair/fix.h), the header bytes in img->header_cluster, and the bounded
 * reads of core/io.h.  Every size read from the image is bounded before
 * use: entries by the header rules (QC_MAX_L1_SIZE), extension lengths by
 * the header cluster.
 */
#include "header_fields.h"

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

void qc_hf_note(struct hf *h, enum qc_code code, const char *fmt, ...)
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
static void fix_header_length(struct hf *h, enum qc_code code)
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
		qc_plan_leave(h->p, code, QC_HDR_HEADER_LENGTH,
			      "header field header_length (%" PRIu32 "): not restored: the header extensions parse neither at 104 nor at 112",
			      img->h.header_length);
		return;
	}
	len = n112 > n104 ? 112 : 104;
	qc_put_be32(h->hdr + QC_HDR_HEADER_LENGTH, len);
	qc_hf_note(h, code, "header_length %" PRIu32 " -> %" PRIu32, img->h.header_length, len);
}

/* header_length above 112 while the extension area it leaves runs into
 * garbage (ext-too-large, ext-header-truncated): restored as above when the
 * extensions parse at 104 or 112 (QEMU writes no longer header).  A future
 * header with more fields than 112 bytes would not parse there. */
static void fix_header_length_large(struct hf *h)
{
	const struct qc_image *img = h->img;
	const struct qc_problems *ps = &img->problems;
	if (img->h.version < 3 || img->h.header_length <= 112 ||
	    (!ps->per_code[QC_P_EXT_TOO_LARGE] && !ps->per_code[QC_P_EXT_HEADER_TRUNCATED]))
		return;
	uint64_t end = img->cluster_size;
	if (img->h.backing_file_offset && img->h.backing_file_offset < end)
		end = img->h.backing_file_offset;
	if (end > img->header_cluster_len)
		end = img->header_cluster_len;
	if (end > img->h.header_length && ext_chain(img, img->h.header_length, end) >= 0)
		return;
	fix_header_length(h, ps->per_code[QC_P_EXT_TOO_LARGE] ? QC_P_EXT_TOO_LARGE : QC_P_EXT_HEADER_TRUNCATED);
}

/* size: nothing in the image bounds the virtual size from below but the
 * highest mapped guest offset, and l1_size times the L2 coverage only from
 * above, so a damaged size is never restored: the refusal names it. */
static void leave_size(struct hf *h)
{
	qc_plan_leave(h->p, QC_P_HEADER_SIZE_TOO_LARGE, QC_HDR_SIZE,
		      "header field size (%" PRIu64 "): not restored: the image holds no evidence of the virtual size (the L1 table bounds it only from above, the mapped data only from below)",
		      h->img->h.size);
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
	if (!img->is_qcow2 || !img->header_cluster || o->leaks_only ||
	    img->header_cluster_len < sizeof(((struct hf *)0)->hdr))
		return 0;
	struct hf h = { .img = img, .p = p };
	memcpy(h.hdr, img->header_cluster, sizeof(h.hdr));
	if (img->h.version >= 2 && qc_hf_cluster_bits_suspect(img)) {
		/* nothing else is judged under a wrong cluster size: the other
		 * fields are planned on the image as this write leaves it */
		qc_hf_cluster_bits(&h);
		if (h.eio)
			return -EIO;
		return h.changed ? emit(&h) : 0;
	}
	if (!img->geometry_ok)
		return 0;
	if (ps->per_code[QC_P_HEADER_LENGTH_INVALID] && img->h.version >= 3)
		fix_header_length(&h, QC_P_HEADER_LENGTH_INVALID);
	else
		fix_header_length_large(&h);
	if (ps->per_code[QC_P_HEADER_SIZE_TOO_LARGE]) {
		leave_size(&h);
		return 0;
	}
	qc_hf_l1_size(&h);
	if (ps->per_code[QC_P_HEADER_L1_OFFSET_UNALIGNED])
		qc_hf_l1_offset(&h, QC_P_HEADER_L1_OFFSET_UNALIGNED);
	else if (ps->per_code[QC_P_HEADER_L1_PAST_EOF])
		qc_hf_l1_offset(&h, QC_P_HEADER_L1_PAST_EOF);
	else if (ps->per_code[QC_P_L1_ENTRY_RESERVED] || ps->per_code[QC_P_L1_ENTRY_UNALIGNED] ||
		 ps->per_code[QC_P_L1_L2_PAST_EOF] || ps->per_code[QC_P_L1_ENTRY_NO_OFFSET] ||
		 ps->per_code[QC_P_OVERLAP_METADATA] || ps->per_code[QC_P_OVERLAP_DATA_METADATA])
		qc_hf_l1_offset(&h, QC_P_COUNT);
	if (!h.eio)
		qc_hf_refcount_order(&h);
	if (h.eio)
		return -EIO;
	return h.changed ? emit(&h) : 0;
}
