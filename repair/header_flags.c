/*
 * header_flags.c - header fields whose right value the image's other
 * fields or its own bytes settle (doc/repair.md "Header fields"), each
 * written whole, in phase `switch`:
 *
 *   - autoclear_features: unknown bits are cleared (the specification asks
 *     every writer that does not know a bit to clear it), and bit 1 (raw
 *     external data) when the image has no external data file;
 *   - crypt_method outside 0..2: 2 when the LUKS header extension is there
 *     (it is written only for LUKS); 0 when there is none and an allocated
 *     data cluster shows plain data: two equal adjacent 16-byte blocks in
 *     one sector, which AES-CBC or XTS ciphertext never has (a 2^-128
 *     chance); else refused, naming the field;
 *   - backing_file_offset set while backing_file_size is 0 (QEMU writes 0
 *     then), when it is invalid or the extension area it cuts short does
 *     not parse: 0; invalid with a name: the offset QEMU writes the name at
 *     (right after the header extensions' end marker) when the bytes there
 *     are a name of backing_file_size bytes;
 *   - backing_file_size too large for the cluster or above 1023: the length
 *     of the name at the offset, when NUL bytes follow it to the end of the
 *     header cluster (QEMU zero-fills the cluster);
 *   - compression_type: made to agree with incompatible bit 3 (1 when the
 *     bit is set, 0 when clear) when the image holds no compressed
 *     cluster, whose streams could say otherwise; with compressed clusters
 *     it is refused.  The incompatible bits themselves are never changed.
 *
 * A field another planner writes in the same round (the bitmaps planner
 * clears autoclear bit 0) is left to the next planning round
 * (repair/repair.c), which plans on the image as that write leaves it.
 * Relies on the header bytes the check kept (img->header_cluster), the
 * extension walk (img->ext), the cluster map and bounded reads.
 */
#include "fix.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/reader.h"

/* Data clusters read, at most, looking for plain data. */
#define PLAIN_DATA_SCAN 64

/* Does some write of p touch [off, off+len)? */
static bool written(const struct qc_plan *p, uint64_t off, uint64_t len)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->w[i].offset < off + len && off < p->w[i].offset + p->w[i].len)
			return true;
	return false;
}

static int put_field(struct qc_plan *p, uint64_t off, uint64_t v, size_t len, enum qc_code code,
		     const char *what, uint64_t old)
{
	uint8_t b[8];
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * (len - 1 - i)));
	if (!qc_plan_add(p, QC_PH_SWITCH, off, b, len, code,
			 "header: %s 0x%" PRIx64 " -> 0x%" PRIx64, what, old, v))
		return -ENOMEM;
	return 1;
}

static int fix_autoclear(struct qc_image *img, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	uint64_t a = img->h.autoclear_features, v = a & QC_AUTOCLEAR_KNOWN;
	enum qc_code code = QC_P_HEADER_AUTOCLEAR_UNKNOWN;
	if (ps->per_code[QC_P_HEADER_DATA_RAW_WITHOUT_DATA_FILE]) {
		v &= ~QC_AUTOCLEAR_DATA_RAW;
		code = QC_P_HEADER_DATA_RAW_WITHOUT_DATA_FILE;
	}
	if (v == a || written(p, QC_HDR_AUTOCLEAR, 8))
		return 0;
	return put_field(p, QC_HDR_AUTOCLEAR, v, 8, code, "autoclear_features", a);
}

/*
 * Does an allocated data cluster show plain data: two equal adjacent
 * 16-byte blocks in one 512-byte sector (a sector of zeros has them)?
 * Encrypted sectors never do: AES-CBC and XTS make every 16-byte block of
 * a sector depend on its position, so two equal neighbours would take a
 * 2^-128 chance.
 */
static int plain_data_seen(struct qc_image *img)
{
	const uint64_t cs = img->cluster_size;
	uint8_t *buf = malloc(cs);
	if (!buf)
		return -ENOMEM;
	int found = 0;
	unsigned read = 0;
	for (uint64_t c = 0; c < img->cmap.nclusters && read < PLAIN_DATA_SCAN && !found; c++) {
		if (qc_cm_owner(&img->cmap, c) != QC_OWN_DATA || qc_past_eof(img, c * cs, cs))
			continue;
		read++;
		if (qc_io_read_full(img->io, buf, cs, c * cs) < 0) {
			found = -EIO;
			break;
		}
		for (uint64_t s = 0; s + 512 <= cs && !found; s += 512)
			for (uint64_t k = 16; k < 512 && !found; k += 16)
				found = !memcmp(buf + s + k - 16, buf + s + k, 16);
	}
	free(buf);
	return found;
}

static int fix_crypt(struct qc_image *img, struct qc_plan *p)
{
	uint32_t m = img->h.crypt_method;
	if (written(p, QC_HDR_CRYPT_METHOD, 4))
		return 0;
	if (img->ext.has_crypto)
		return put_field(p, QC_HDR_CRYPT_METHOD, QC_CRYPT_LUKS, 4, QC_P_HEADER_CRYPT_METHOD_INVALID,
				 "crypt_method (the LUKS header extension is present)", m);
	int z = plain_data_seen(img);
	if (z < 0)
		return z;
	if (!z) {
		qc_plan_leave(p, QC_P_HEADER_CRYPT_METHOD_INVALID, QC_HDR_CRYPT_METHOD,
			      "crypt_method %" PRIu32 " not restored: no LUKS extension, and no data cluster read shows plain data (two equal 16-byte blocks in a sector), so AES encryption cannot be ruled out",
			      m);
		return 0;
	}
	return put_field(p, QC_HDR_CRYPT_METHOD, QC_CRYPT_NONE, 4, QC_P_HEADER_CRYPT_METHOD_INVALID,
			 "crypt_method (no LUKS extension; the data is not encrypted: equal 16-byte blocks in a sector)", m);
}

/* Where QEMU writes the backing file name: right after the end marker of
 * the header extensions; 0 when the chain does not end in the cluster. */
static uint64_t name_position(const struct qc_image *img)
{
	const uint8_t *h = img->header_cluster;
	uint64_t end = img->header_cluster_len;
	uint64_t at = img->h.version >= 3 ? img->h.header_length : QC_V2_HEADER_LEN;
	while (at + 8 <= end) {
		uint32_t type = qc_be32_at(h + at), len = qc_be32_at(h + at + 4);
		uint64_t padded = ((uint64_t)len + 7) & ~UINT64_C(7);
		if (type == 0)
			return len == 0 ? at + 8 : 0;
		if (padded > end - at - 8)
			return 0;
		at += 8 + padded;
	}
	return 0;
}

/* Are the n bytes at off a file name: no NUL, no control byte? */
static bool name_at(const struct qc_image *img, uint64_t off, uint64_t n)
{
	if (!n || off > img->header_cluster_len || n > img->header_cluster_len - off)
		return false;
	for (uint64_t i = 0; i < n; i++)
		if (img->header_cluster[off + i] < 0x20 || img->header_cluster[off + i] == 0x7f)
			return false;
	return true;
}

/* Does the extension area end too early for its chain (what a stray
 * backing_file_offset, which ends the area, does)? */
static bool ext_cut_short(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	return ps->per_code[QC_P_EXT_TOO_LARGE] || ps->per_code[QC_P_EXT_HEADER_TRUNCATED];
}

static int fix_backing_offset(struct qc_image *img, struct qc_plan *p)
{
	const struct qc_header *h = &img->h;
	bool invalid = img->problems.per_code[QC_P_HEADER_BACKING_OFFSET_INVALID] > 0;
	if (written(p, QC_HDR_BACKING_FILE_OFFSET, 8) || !h->backing_file_offset)
		return 0;
	if (h->backing_file_size == 0 && (invalid || ext_cut_short(img)))
		return put_field(p, QC_HDR_BACKING_FILE_OFFSET, 0, 8,
				 invalid ? QC_P_HEADER_BACKING_OFFSET_INVALID
					 : img->problems.per_code[QC_P_EXT_TOO_LARGE] ? QC_P_EXT_TOO_LARGE
										    : QC_P_EXT_HEADER_TRUNCATED,
				 "backing_file_offset (backing_file_size is 0: no backing file)",
				 h->backing_file_offset);
	if (!invalid)
		return 0;
	uint64_t at = name_position(img);
	if (at && h->backing_file_size <= QC_MAX_BACKING_NAME && name_at(img, at, h->backing_file_size))
		return put_field(p, QC_HDR_BACKING_FILE_OFFSET, at, 8, QC_P_HEADER_BACKING_OFFSET_INVALID,
				 "backing_file_offset (the name follows the header extensions)",
				 h->backing_file_offset);
	qc_plan_leave(p, QC_P_HEADER_BACKING_OFFSET_INVALID, QC_HDR_BACKING_FILE_OFFSET,
		      "backing_file_offset not restored: no backing file name of %" PRIu32 " bytes follows the header extensions",
		      h->backing_file_size);
	return 0;
}

static int fix_backing_size(struct qc_image *img, struct qc_plan *p)
{
	const struct qc_header *h = &img->h;
	uint64_t off = h->backing_file_offset, end = img->header_cluster_len;
	if (written(p, QC_HDR_BACKING_FILE_SIZE, 4) || off >= end)
		return 0;
	uint64_t n = 0;
	while (off + n < end && img->header_cluster[off + n])
		n++;
	bool zeros_after = true;
	for (uint64_t k = off + n; k < end && zeros_after; k++)
		zeros_after = img->header_cluster[k] == 0;
	if (n && n <= QC_MAX_BACKING_NAME && zeros_after && name_at(img, off, n))
		return put_field(p, QC_HDR_BACKING_FILE_SIZE, n, 4, QC_P_HEADER_BACKING_NAME_INVALID,
				 "backing_file_size (the name's length; zeros follow it)",
				 h->backing_file_size);
	qc_plan_leave(p, QC_P_HEADER_BACKING_NAME_INVALID, QC_HDR_BACKING_FILE_SIZE,
		      "backing_file_size not restored: the bytes at the name's offset are not one name followed by zeros");
	return 0;
}

static bool holds_compressed(const struct qc_image *img)
{
	for (uint64_t c = 0; c < img->cmap.nclusters; c++)
		if (qc_cm_owner(&img->cmap, c) == QC_OWN_COMPRESSED)
			return true;
	return false;
}

static int fix_compression(struct qc_image *img, struct qc_plan *p, enum qc_code code)
{
	uint8_t t = img->h.compression_type;
	if (written(p, QC_HDR_COMPRESSION_TYPE, 1) || img->h.header_length <= QC_HDR_COMPRESSION_TYPE)
		return 0;
	if (holds_compressed(img)) {
		qc_plan_leave(p, code, QC_HDR_COMPRESSION_TYPE,
			      "compression_type %u not restored: the image holds compressed clusters, whose streams would have to settle it",
			      t);
		return 0;
	}
	bool bit3 = (img->h.incompatible_features & QC_INCOMPAT_COMPRESSION) != 0;
	return put_field(p, QC_HDR_COMPRESSION_TYPE, bit3 ? QC_COMPRESSION_ZSTD : QC_COMPRESSION_ZLIB, 1,
			 code, "compression_type (as incompatible bit 3 says; no compressed cluster)", t);
}

int qc_plan_header_flags(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	const struct qc_problems *ps = &img->problems;
	if (!img->is_qcow2 || !img->geometry_ok || !img->header_cluster || o->leaks_only ||
	    img->header_cluster_len < QC_HDR_COMPRESSION_TYPE + 1)
		return 0;
	int planned = 0, r = 0;
	if (ps->per_code[QC_P_HEADER_AUTOCLEAR_UNKNOWN] || ps->per_code[QC_P_HEADER_DATA_RAW_WITHOUT_DATA_FILE])
		r = fix_autoclear(img, p);
	planned |= r > 0;
	if (r >= 0 && ps->per_code[QC_P_HEADER_CRYPT_METHOD_INVALID])
		r = fix_crypt(img, p);
	planned |= r > 0;
	if (r >= 0)
		r = fix_backing_offset(img, p);
	planned |= r > 0;
	if (r >= 0 && ps->per_code[QC_P_HEADER_BACKING_NAME_INVALID])
		r = fix_backing_size(img, p);
	planned |= r > 0;
	if (r >= 0 && ps->per_code[QC_P_HEADER_COMPRESSION_TYPE_INVALID])
		r = fix_compression(img, p, QC_P_HEADER_COMPRESSION_TYPE_INVALID);
	else if (r >= 0 && ps->per_code[QC_P_HEADER_COMPRESSION_TYPE_MISMATCH])
		r = fix_compression(img, p, QC_P_HEADER_COMPRESSION_TYPE_MISMATCH);
	planned |= r > 0;
	return r < 0 ? r : planned;
}
