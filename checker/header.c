/*
 * header.c - pass 1: the qcow2 header (docs/interop/qcow2.txt "Header").
 *
 * Reads the first cluster through the bounded reader, decodes v2 and v3
 * headers, validates every field on its own and then across fields, and
 * derives the geometry (cluster size, L2 and refblock sizes) that every
 * later pass relies on.  Sets the trust flags: is_qcow2, geometry_ok,
 * l1_ok, reftable_ok.  A damaged field is reported and only the passes
 * that need it are disabled.
 */
#include "check.h"
#include "extensions.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOC0(off) QC_LOC(off)

static void read_first_cluster(struct qc_image *img, size_t want)
{
	uint64_t n = img->file_size < want ? img->file_size : want;
	img->header_cluster = calloc(1, want ? want : 1);
	if (!img->header_cluster) {
		qc_abort(img, "out of memory reading the header");
		return;
	}
	long long r = qc_io_read(img->io, img->header_cluster, (size_t)n, 0);
	if (r < 0) {
		qc_abort(img, "I/O error reading the header: %s", strerror((int)-r));
		return;
	}
	img->header_cluster_len = (size_t)r;
}

static void decode(struct qc_image *img, struct qc_view v)
{
	struct qc_header *h = &img->h;
	qc_get_be32(v, QC_HDR_MAGIC, &h->magic);
	qc_get_be32(v, QC_HDR_VERSION, &h->version);
	qc_get_be64(v, QC_HDR_BACKING_FILE_OFFSET, &h->backing_file_offset);
	qc_get_be32(v, QC_HDR_BACKING_FILE_SIZE, &h->backing_file_size);
	qc_get_be32(v, QC_HDR_CLUSTER_BITS, &h->cluster_bits);
	qc_get_be64(v, QC_HDR_SIZE, &h->size);
	qc_get_be32(v, QC_HDR_CRYPT_METHOD, &h->crypt_method);
	qc_get_be32(v, QC_HDR_L1_SIZE, &h->l1_size);
	qc_get_be64(v, QC_HDR_L1_TABLE_OFFSET, &h->l1_table_offset);
	qc_get_be64(v, QC_HDR_REFTABLE_OFFSET, &h->refcount_table_offset);
	qc_get_be32(v, QC_HDR_REFTABLE_CLUSTERS, &h->refcount_table_clusters);
	qc_get_be32(v, QC_HDR_NB_SNAPSHOTS, &h->nb_snapshots);
	qc_get_be64(v, QC_HDR_SNAPSHOTS_OFFSET, &h->snapshots_offset);
	if (h->version >= 3) {
		qc_get_be64(v, QC_HDR_INCOMPAT, &h->incompatible_features);
		qc_get_be64(v, QC_HDR_COMPAT, &h->compatible_features);
		qc_get_be64(v, QC_HDR_AUTOCLEAR, &h->autoclear_features);
		qc_get_be32(v, QC_HDR_REFCOUNT_ORDER, &h->refcount_order);
		qc_get_be32(v, QC_HDR_HEADER_LENGTH, &h->header_length);
		if (h->header_length > 104)
			qc_get_u8(v, QC_HDR_COMPRESSION_TYPE, &h->compression_type);
	} else {
		h->refcount_order = 4;
		h->header_length = QC_V2_HEADER_LEN;
	}
}

/*
 * Append " (bit N \"name\", ...)" style names of the bits in `mask` of
 * feature `type` to buf: names come from the image's feature-name table.
 */
static void name_bits(const struct qc_image *img, unsigned type, uint64_t mask, char *buf,
		      size_t size)
{
	size_t used = 0;
	buf[0] = 0;
	for (unsigned bit = 0; bit < 64 && used + 1 < size; bit++) {
		if (!(mask & (UINT64_C(1) << bit)))
			continue;
		const char *name = qc_ext_feature_name(img, type, bit);
		int n;
		if (name)
			n = snprintf(buf + used, size - used, "%sbit %u \"%s\"", used ? ", " : "",
				     bit, name);
		else
			n = snprintf(buf + used, size - used, "%sbit %u", used ? ", " : "", bit);
		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* Unknown incompatible bits: the image cannot be read safely (exit 63). */
static bool check_incompat_unknown(struct qc_image *img)
{
	uint64_t unknown = img->h.incompatible_features & ~QC_INCOMPAT_KNOWN;
	if (!unknown)
		return false;
	char names[512];
	name_bits(img, 0, unknown, names, sizeof(names));
	qc_report(&img->problems, QC_P_HEADER_INCOMPAT_UNKNOWN, LOC0(72), 1,
		  "unknown incompatible feature bits 0x%llx: %s", (unsigned long long)unknown,
		  names);
	return true;
}

static void check_features(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	struct qc_problems *ps = &img->problems;
	char names[512];
	uint64_t unknown;
	if (h->incompatible_features & QC_INCOMPAT_DIRTY)
		qc_report(ps, QC_P_HEADER_DIRTY, LOC0(72), 1,
			  "dirty bit set: refcounts may be stale after an unclean shutdown");
	if (h->incompatible_features & QC_INCOMPAT_CORRUPT)
		qc_report(ps, QC_P_HEADER_CORRUPT_BIT, LOC0(72), 1,
			  "corrupt bit set: QEMU will not open the image for writing");
	unknown = h->compatible_features & ~QC_COMPAT_KNOWN;
	if (unknown) {
		name_bits(img, 1, unknown, names, sizeof(names));
		qc_report(ps, QC_P_HEADER_COMPAT_UNKNOWN, LOC0(80), 1,
			  "unknown compatible feature bits 0x%llx: %s", (unsigned long long)unknown,
			  names);
	}
	unknown = h->autoclear_features & ~QC_AUTOCLEAR_KNOWN;
	if (unknown) {
		name_bits(img, 2, unknown, names, sizeof(names));
		qc_report(ps, QC_P_HEADER_AUTOCLEAR_UNKNOWN, LOC0(88), 1,
			  "unknown autoclear feature bits 0x%llx: %s (QEMU clears them on the next write open)",
			  (unsigned long long)unknown, names);
	}
	if ((h->autoclear_features & QC_AUTOCLEAR_DATA_RAW) &&
	    !(h->incompatible_features & QC_INCOMPAT_DATA_FILE))
		qc_report(ps, QC_P_HEADER_DATA_RAW_WITHOUT_DATA_FILE, LOC0(88), 1,
			  "raw external data bit set but the image has no external data file");
	img->extended_l2 = (h->incompatible_features & QC_INCOMPAT_EXTL2) != 0;
	img->data_file = (h->incompatible_features & QC_INCOMPAT_DATA_FILE) != 0;

	bool bit3 = (h->incompatible_features & QC_INCOMPAT_COMPRESSION) != 0;
	if (h->compression_type > QC_COMPRESSION_ZSTD)
		qc_report(ps, QC_P_HEADER_COMPRESSION_TYPE_INVALID, LOC0(104), 1,
			  "unknown compression type %u", h->compression_type);
	else if (bit3 != (h->compression_type != QC_COMPRESSION_ZLIB))
		qc_report(ps, QC_P_HEADER_COMPRESSION_TYPE_MISMATCH, LOC0(104), 1,
			  "compression type %u but incompatible bit 3 is %s", h->compression_type,
			  bit3 ? "set" : "clear");
}

/* Geometry from cluster_bits and refcount_order; false if unusable. */
static bool derive_geometry(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	struct qc_problems *ps = &img->problems;
	bool ok = true;
	if (h->cluster_bits < QC_MIN_CLUSTER_BITS || h->cluster_bits > QC_MAX_CLUSTER_BITS) {
		qc_report(ps, QC_P_HEADER_CLUSTER_BITS_INVALID, LOC0(20), 1,
			  "cluster_bits %u is outside %u..%u", h->cluster_bits, QC_MIN_CLUSTER_BITS,
			  QC_MAX_CLUSTER_BITS);
		return false;
	}
	img->cluster_bits = h->cluster_bits;
	img->cluster_size = UINT64_C(1) << h->cluster_bits;
	if (img->extended_l2 && h->cluster_bits < 14) {
		qc_report(ps, QC_P_HEADER_EXTL2_CLUSTER_TOO_SMALL, LOC0(20), 1,
			  "extended L2 entries with %llu-byte clusters (subclusters below 512 bytes)",
			  (unsigned long long)img->cluster_size);
		ok = false;
	}
	img->l2_entry_size = img->extended_l2 ? 16 : 8;
	img->l2_bits = h->cluster_bits - (img->extended_l2 ? 4 : 3);
	img->l2_entries = UINT64_C(1) << img->l2_bits;
	if (h->refcount_order > 6) {
		qc_report(ps, QC_P_HEADER_REFCOUNT_ORDER_INVALID, LOC0(96), 1,
			  "refcount_order %u (more than 64-bit refcounts)", h->refcount_order);
		img->refcount_bits = 0;
	} else {
		img->refcount_bits = 1u << h->refcount_order;
		img->refcount_max = img->refcount_bits == 64 ? UINT64_MAX
							     : (UINT64_C(1) << img->refcount_bits) - 1;
		img->refblock_bits = h->cluster_bits + 3 - h->refcount_order;
	}
	/* l1_vm_state_index = size_to_l1(size) */
	unsigned shift = img->cluster_bits + img->l2_bits;
	uint64_t span = UINT64_C(1) << shift;
	img->l1_vm_state_index = h->size / span + (h->size % span != 0);
	if (img->l1_vm_state_index > INT32_MAX) {
		qc_report(ps, QC_P_HEADER_SIZE_TOO_LARGE, LOC0(24), 1,
			  "virtual size %llu needs %llu L1 entries (limit %d)",
			  (unsigned long long)h->size, (unsigned long long)img->l1_vm_state_index,
			  INT32_MAX);
	}
	return ok;
}

static void check_header_length(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	if (h->version < 3)
		return;
	if (h->header_length < QC_V3_MIN_HEADER_LEN || h->header_length % 8 ||
	    (img->cluster_size && h->header_length > img->cluster_size))
		qc_report(&img->problems, QC_P_HEADER_LENGTH_INVALID, LOC0(100), 1,
			  "header_length %u (must be >= 104, a multiple of 8 and at most one cluster)",
			  h->header_length);
	if (h->header_length >= QC_HEADER_STRUCT_LEN) {
		struct qc_view v = qc_view_make(img->header_cluster, img->header_cluster_len);
		for (unsigned i = 105; i < 112; i++) {
			uint8_t b = 0;
			qc_get_u8(v, i, &b);
			if (b) {
				qc_report(&img->problems, QC_P_HEADER_PADDING_NONZERO, LOC0(i), 1,
					  "padding byte %u is 0x%02x", i, b);
				break;
			}
		}
	}
}

static void check_crypt(struct qc_image *img)
{
	uint32_t m = img->h.crypt_method;
	if (m > QC_CRYPT_LUKS)
		qc_report(&img->problems, QC_P_HEADER_CRYPT_METHOD_INVALID, LOC0(32), 1,
			  "crypt_method %u", m);
	else if (m == QC_CRYPT_AES)
		qc_report(&img->problems, QC_P_HEADER_CRYPT_AES, LOC0(32), 1,
			  "legacy AES encryption");
}

static void check_l1(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	struct qc_problems *ps = &img->problems;
	bool ok = true;
	if (h->l1_size < img->l1_vm_state_index) {
		qc_report(ps, QC_P_HEADER_L1_TOO_SMALL, LOC0(36), 1,
			  "l1_size %u cannot map virtual size %llu (needs %llu entries)", h->l1_size,
			  (unsigned long long)h->size, (unsigned long long)img->l1_vm_state_index);
	}
	if ((uint64_t)h->l1_size * 8 > QC_MAX_L1_SIZE) {
		qc_report(ps, QC_P_HEADER_L1_TOO_LARGE, LOC0(36), 1,
			  "l1_size %u exceeds the limit of %u entries", h->l1_size, QC_MAX_L1_SIZE / 8);
		ok = false;
	}
	if (h->l1_table_offset & (img->cluster_size - 1)) {
		qc_report(ps, QC_P_HEADER_L1_OFFSET_UNALIGNED, LOC0(40), 1,
			  "L1 table offset 0x%llx is not cluster aligned",
			  (unsigned long long)h->l1_table_offset);
		ok = false;
	} else if (h->l1_size && qc_past_eof(img, h->l1_table_offset, (uint64_t)h->l1_size * 8)) {
		qc_report(ps, QC_P_HEADER_L1_PAST_EOF, LOC0(40), 1,
			  "L1 table [0x%llx, +%llu) lies past the end of the file (%llu bytes)",
			  (unsigned long long)h->l1_table_offset, (unsigned long long)h->l1_size * 8,
			  (unsigned long long)img->file_size);
		ok = false;
	}
	img->l1_ok = ok;
}

static void check_reftable(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	struct qc_problems *ps = &img->problems;
	bool ok = img->refcount_bits != 0;
	uint64_t bytes = (uint64_t)h->refcount_table_clusters << img->cluster_bits;
	if (h->refcount_table_clusters == 0) {
		qc_report(ps, QC_P_HEADER_REFTABLE_EMPTY, LOC0(56), 1,
			  "refcount_table_clusters is 0");
		ok = false;
	} else if (bytes > QC_MAX_REFTABLE_SIZE) {
		qc_report(ps, QC_P_HEADER_REFTABLE_TOO_LARGE, LOC0(56), 1,
			  "refcount table of %u clusters exceeds %u bytes", h->refcount_table_clusters,
			  QC_MAX_REFTABLE_SIZE);
		ok = false;
	}
	if (h->refcount_table_offset & (img->cluster_size - 1)) {
		qc_report(ps, QC_P_HEADER_REFTABLE_OFFSET_UNALIGNED, LOC0(48), 1,
			  "refcount table offset 0x%llx is not cluster aligned",
			  (unsigned long long)h->refcount_table_offset);
		ok = false;
	} else if (h->refcount_table_offset < img->cluster_size) {
		/* cluster 0 is the header: read as a table, its fields would name
		 * "refblocks" on the L1 and snapshot tables (doc/repair.md) */
		qc_report(ps, QC_P_HEADER_REFTABLE_ON_HEADER, LOC0(48), 1,
			  "refcount table offset 0x%llx lies in the header cluster",
			  (unsigned long long)h->refcount_table_offset);
		ok = false;
	} else if (ok && qc_past_eof(img, h->refcount_table_offset, bytes)) {
		qc_report(ps, QC_P_HEADER_REFTABLE_PAST_EOF, LOC0(48), 1,
			  "refcount table [0x%llx, +%llu) lies past the end of the file (%llu bytes)",
			  (unsigned long long)h->refcount_table_offset, (unsigned long long)bytes,
			  (unsigned long long)img->file_size);
		ok = false;
	}
	img->reftable_ok = ok;
}

/*
 * Backing file name: QEMU requires offset <= cluster size and
 * size <= min(1023, cluster - offset).  It must also not overlap the header
 * (offset >= header_length).  The name is an untrusted string: copied for
 * the report, never opened.
 */
static void check_backing_name(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	if (h->backing_file_offset == 0)
		return;
	uint64_t limit = img->cluster_size;
	uint64_t hlen = h->version >= 3 ? h->header_length : QC_V2_HEADER_LEN;
	if (h->backing_file_offset > limit || h->backing_file_offset < hlen) {
		qc_report(&img->problems, QC_P_HEADER_BACKING_OFFSET_INVALID, LOC0(8), 1,
			  "backing file name offset 0x%llx is not inside the first cluster after the %llu-byte header",
			  (unsigned long long)h->backing_file_offset, (unsigned long long)hlen);
		return;
	}
	uint64_t room = limit - h->backing_file_offset;
	if (h->backing_file_size > QC_MAX_BACKING_NAME || h->backing_file_size > room) {
		qc_report(&img->problems, QC_P_HEADER_BACKING_NAME_INVALID, LOC0(16), 1,
			  "backing file name of %u bytes at 0x%llx (at most %u and inside the first cluster)",
			  h->backing_file_size, (unsigned long long)h->backing_file_offset,
			  QC_MAX_BACKING_NAME);
		return;
	}
	struct qc_view v = qc_view_make(img->header_cluster, (size_t)img->cluster_size);
	if (qc_get_bytes(v, h->backing_file_offset, img->backing_file, h->backing_file_size)) {
		img->backing_file[h->backing_file_size] = 0;
		img->has_backing_file = true;
	}
}

void qc_pass_header(struct qc_image *img)
{
	struct qc_problems *ps = &img->problems;
	uint8_t first[QC_HEADER_STRUCT_LEN] = { 0 };
	long long n = qc_io_read(img->io, first, sizeof(first), 0);
	if (n < 0) {
		qc_abort(img, "I/O error reading the header: %s", strerror((int)-n));
		return;
	}
	struct qc_view v = qc_view_make(first, (size_t)n);
	uint32_t magic = 0, version = 0;
	qc_get_be32(v, QC_HDR_VERSION, &version);
	/* version 1 is qcow, another format behind the same magic */
	if (!qc_get_be32(v, QC_HDR_MAGIC, &magic) || magic != QC_MAGIC || version == 1) {
		img->not_qcow2 = qc_sniff_format(img->io, img->file_size);
		qc_report(ps, QC_P_IMAGE_NOT_QCOW2, LOC0(0), 1, "not a qcow2 image: %s (first bytes 0x%08x)",
			  img->not_qcow2, magic);
		return;
	}
	if (version != 2 && version != 3) {
		qc_report(ps, QC_P_HEADER_VERSION_UNSUPPORTED, LOC0(4), 1,
			  "version %u is not supported (2 or 3)", version);
		return;
	}
	img->is_qcow2 = true;
	uint64_t need = version == 2 ? QC_V2_HEADER_LEN : QC_V3_MIN_HEADER_LEN;
	if ((uint64_t)n < need) {
		qc_report(ps, QC_P_IMAGE_TRUNCATED_HEADER, LOC0(0), 1,
			  "file of %lld bytes is shorter than a version %u header (%llu bytes)", n,
			  version, (unsigned long long)need);
		return;
	}
	decode(img, v);
	/* The first cluster (zero filled past EOF, as QEMU reads it) holds the
	 * extensions and the backing file name; with a bad cluster_bits only
	 * the fixed header can be judged. */
	bool cb_ok = img->h.cluster_bits >= QC_MIN_CLUSTER_BITS &&
		     img->h.cluster_bits <= QC_MAX_CLUSTER_BITS;
	if (cb_ok) {
		img->cluster_bits = img->h.cluster_bits;
		img->cluster_size = UINT64_C(1) << img->cluster_bits;
	}
	read_first_cluster(img, cb_ok ? (size_t)img->cluster_size : QC_HEADER_STRUCT_LEN);
	if (img->aborted)
		return;
	/* Silent walk: the feature-name table names unknown feature bits. */
	qc_ext_walk(img, false);
	if (img->aborted || check_incompat_unknown(img))
		return;
	check_features(img);
	img->geometry_ok = derive_geometry(img);
	check_header_length(img);
	check_crypt(img);
	if (img->cluster_size)
		check_backing_name(img);
	if (!img->geometry_ok)
		return;
	uint64_t nclusters = (img->file_size >> img->cluster_bits) + 2;
	int r = qc_cm_init(&img->cmap, nclusters, img->opt.mem_cap);
	if (r < 0) {
		qc_abort(img, "cannot map %llu host clusters within the memory cap",
			 (unsigned long long)nclusters);
		return;
	}
	img->cmap.outside = &img->mem_held; /* one budget for the map and the tables */
	qc_claim(img, 0, img->cluster_size, QC_OWN_HEADER, 1, QC_LOC(0));
	check_l1(img);
	check_reftable(img);
}
