/*
 * extensions.c - pass 2: the header extensions (docs/interop/qcow2.txt
 * "Header extensions", QEMU's qcow2_read_extensions).
 *
 * Walks [header_length, backing_file_offset or cluster end) of the first
 * cluster (already read by the header pass into img->header_cluster, zero
 * filled past EOF like QEMU's reads) with the bounded reader: each
 * extension's 8-byte type/length header and its data must lie inside the
 * area.  Known types are decoded into img->ext (backing format, feature
 * names, bitmaps, full-disk-encryption pointer, data file name) and
 * validated; unknown ones are warnings (QEMU preserves them); a repeated
 * type is reported (QEMU silently lets the later one win, and so do we).
 * Cross-field rules that need the whole walk (LUKS needs the crypto
 * pointer, the data-file bit wants a name) run after it.
 */
#include "check.h"
#include "../core/escape.h"
#include "extensions.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "../core/util.h"

#include <stdlib.h>
#include <string.h>

#define FEATURE_ENTRY_LEN 48
#define FEATURE_NAME_LEN 46
#define BITMAPS_EXT_LEN 24
#define CRYPTO_EXT_LEN 16
#define MAX_BACKING_FORMAT 15

struct walk {
	struct qc_image *img;
	bool report;
	struct qc_view v;
};

#define REPORT(w, code, off, ...)                                                  \
	do {                                                                       \
		if ((w)->report)                                                   \
			qc_report(&(w)->img->problems, code, QC_LOC(off), 1, __VA_ARGS__); \
	} while (0)

const char *qc_ext_type_name(uint32_t type)
{
	switch (type) {
	case QC_EXT_END:
		return "end";
	case QC_EXT_BACKING_FORMAT:
		return "backing format";
	case QC_EXT_FEATURE_TABLE:
		return "feature name table";
	case QC_EXT_BITMAPS:
		return "bitmaps";
	case QC_EXT_CRYPTO:
		return "full disk encryption header pointer";
	case QC_EXT_DATA_FILE:
		return "external data file name";
	default:
		return "unknown";
	}
}

const char *qc_ext_feature_name(const struct qc_image *img, unsigned type, unsigned bit)
{
	const char *found = NULL;
	for (size_t i = 0; i < img->ext.nfeatures; i++) {
		const struct qc_feature_name *f = &img->ext.features[i];
		if (f->type == type && f->bit == bit && f->name[0])
			found = f->name; /* the last entry wins, like the later extension */
	}
	return found;
}

/* The block driver names QEMU accepts as a backing format (doc/formats.md,
 * "Backing formats"): the format_name of every driver QEMU registers,
 * formats, protocols and filters alike, sorted for bsearch. */
static const char *const backing_drivers[] = {
	"blkdebug", "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress",
	"copy-before-write", "copy-on-read", "dmg", "file", "ftp", "ftps", "gluster",
	"host_cdrom", "host_device", "http", "https", "io_uring", "iscsi", "iser", "luks", "nbd",
	"nfs", "null-aio", "null-co", "nvme", "nvme-io_uring", "parallels", "preallocate", "qcow",
	"qcow2", "qed", "quorum", "raw", "rbd", "replication", "snapshot-access", "ssh",
	"throttle", "vdi", "vhdx", "virtio-blk-vfio-pci", "virtio-blk-vhost-user",
	"virtio-blk-vhost-vdpa", "vmdk", "vpc", "vvfat",
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool qc_backing_driver_known(const char *name)
{
	return bsearch(&name, backing_drivers, sizeof(backing_drivers) / sizeof(backing_drivers[0]),
		       sizeof(backing_drivers[0]), cmp_name) != NULL;
}

static void do_backing_format(struct walk *w, uint64_t data, uint32_t len)
{
	struct qc_extensions *e = &w->img->ext;
	if (len > MAX_BACKING_FORMAT) {
		REPORT(w, QC_P_EXT_BACKING_FORMAT_TOO_LONG, data - 8,
		       "backing format name of %u bytes (QEMU refuses 16 or more)", len);
		e->has_backing_format = false;
		return;
	}
	memset(e->backing_format, 0, sizeof(e->backing_format));
	qc_get_bytes(w->v, data, e->backing_format, len);
	e->has_backing_format = true;
	/* QEMU passes a non-empty name as the backing file's driver and fails
	 * the open when no driver has that name (an empty one means "probe");
	 * without a backing file the name is unused (see the check below). */
	if (w->img->h.backing_file_offset && e->backing_format[0] &&
	    !qc_backing_driver_known(e->backing_format))
		REPORT(w, QC_P_EXT_BACKING_FORMAT_UNKNOWN, data - 8,
		       "backing format \"%s\" is not a QEMU block driver: QEMU refuses to open the image",
		       e->backing_format);
}

static void do_feature_table(struct walk *w, uint64_t data, uint32_t len)
{
	struct qc_extensions *e = &w->img->ext;
	if (len % FEATURE_ENTRY_LEN)
		REPORT(w, QC_P_EXT_FEATURE_TABLE_LENGTH_INVALID, data - 4,
		       "feature name table of %u bytes is not a multiple of %u", len,
		       FEATURE_ENTRY_LEN);
	size_t n = len / FEATURE_ENTRY_LEN;
	free(e->features);
	e->features = NULL;
	e->nfeatures = 0;
	e->has_feature_table = true;
	if (!n)
		return;
	/* n <= cluster_size / 48: bounded by the (validated) cluster size. */
	e->features = calloc(n, sizeof(*e->features));
	if (!e->features) {
		qc_abort(w->img, "out of memory reading the feature name table");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t off = data + i * FEATURE_ENTRY_LEN;
		uint8_t type = 0, bit = 0;
		qc_get_u8(w->v, off, &type);
		qc_get_u8(w->v, off + 1, &bit);
		struct qc_feature_name *f = &e->features[e->nfeatures];
		if (type > 2 || bit > 63) {
			REPORT(w, QC_P_EXT_FEATURE_TABLE_ENTRY_INVALID, off,
			       "feature name table entry %zu has type %u and bit %u (type 0-2, bit 0-63)",
			       i, type, bit);
			continue;
		}
		f->type = type;
		f->bit = bit;
		qc_get_bytes(w->v, off + 2, f->name, FEATURE_NAME_LEN);
		f->name[FEATURE_NAME_LEN] = 0;
		e->nfeatures++;
	}
}

static void do_bitmaps(struct walk *w, uint64_t data, uint32_t len)
{
	struct qc_image *img = w->img;
	struct qc_extensions *e = &img->ext;
	e->has_bitmaps = true;
	e->bitmaps_valid = false;
	if (len != BITMAPS_EXT_LEN) {
		REPORT(w, QC_P_EXT_BITMAPS_LENGTH_INVALID, data - 4,
		       "bitmaps extension of %u bytes (must be exactly %u)", len, BITMAPS_EXT_LEN);
		return;
	}
	uint32_t reserved = 0;
	qc_get_be32(w->v, data, &e->nb_bitmaps);
	qc_get_be32(w->v, data + 4, &reserved);
	qc_get_be64(w->v, data + 8, &e->bitmap_dir_size);
	qc_get_be64(w->v, data + 16, &e->bitmap_dir_offset);
	if (!(img->h.autoclear_features & QC_AUTOCLEAR_BITMAPS)) {
		/* QEMU ignores the extension (and drops it on the next write
		 * open); the bitmap clusters then count as leaks. */
		REPORT(w, QC_P_EXT_BITMAPS_AUTOCLEAR_CLEAR, 88,
		       "bitmaps extension present but autoclear bit 0 is clear: QEMU ignores the %u bitmap(s) and will drop them",
		       e->nb_bitmaps);
		return;
	}
	bool ok = true;
	if (reserved) {
		REPORT(w, QC_P_EXT_BITMAPS_RESERVED_NONZERO, data + 4,
		       "bitmaps extension reserved field is 0x%08x", reserved);
		ok = false;
	}
	if (e->nb_bitmaps == 0 || e->nb_bitmaps > QC_MAX_BITMAPS) {
		REPORT(w, QC_P_EXT_BITMAPS_COUNT_INVALID, data,
		       "bitmaps extension declares %u bitmaps (1..%u)", e->nb_bitmaps,
		       QC_MAX_BITMAPS);
		ok = false;
	}
	if (e->bitmap_dir_size == 0 || e->bitmap_dir_size > QC_MAX_BITMAP_DIR_SIZE) {
		REPORT(w, QC_P_EXT_BITMAPS_DIR_SIZE_INVALID, data + 8,
		       "bitmap directory size %llu (1..%u)",
		       (unsigned long long)e->bitmap_dir_size, QC_MAX_BITMAP_DIR_SIZE);
		ok = false;
	}
	if (e->bitmap_dir_offset & (img->cluster_size - 1)) {
		REPORT(w, QC_P_EXT_BITMAPS_DIR_OFFSET_UNALIGNED, data + 16,
		       "bitmap directory offset 0x%llx is not cluster aligned",
		       (unsigned long long)e->bitmap_dir_offset);
		ok = false;
	} else if (e->bitmap_dir_offset == 0 ||
		   (ok && qc_past_eof(img, e->bitmap_dir_offset, e->bitmap_dir_size))) {
		REPORT(w, QC_P_EXT_BITMAPS_DIR_PAST_EOF, data + 16,
		       "bitmap directory [0x%llx, +%llu) is not inside the file (%llu bytes)",
		       (unsigned long long)e->bitmap_dir_offset,
		       (unsigned long long)e->bitmap_dir_size,
		       (unsigned long long)img->file_size);
		ok = false;
	}
	e->bitmaps_valid = ok;
}

static void do_crypto(struct walk *w, uint64_t data, uint32_t len)
{
	struct qc_image *img = w->img;
	struct qc_extensions *e = &img->ext;
	e->has_crypto = true;
	e->crypto_valid = false;
	if (img->h.crypt_method != QC_CRYPT_LUKS) {
		REPORT(w, QC_P_EXT_CRYPTO_WITHOUT_LUKS, data - 8,
		       "full disk encryption header pointer with crypt_method %u (only LUKS, 2, has one)",
		       img->h.crypt_method);
		return;
	}
	if (len != CRYPTO_EXT_LEN) {
		REPORT(w, QC_P_EXT_CRYPTO_LENGTH_INVALID, data - 4,
		       "full disk encryption header pointer of %u bytes (must be %u)", len,
		       CRYPTO_EXT_LEN);
		return;
	}
	qc_get_be64(w->v, data, &e->crypto_offset);
	qc_get_be64(w->v, data + 8, &e->crypto_length);
	if (e->crypto_offset & (img->cluster_size - 1)) {
		REPORT(w, QC_P_EXT_CRYPTO_OFFSET_UNALIGNED, data,
		       "LUKS header offset 0x%llx is not cluster aligned",
		       (unsigned long long)e->crypto_offset);
		return;
	}
	if (e->crypto_offset == 0 || e->crypto_length == 0 ||
	    qc_past_eof(img, e->crypto_offset, e->crypto_length)) {
		REPORT(w, QC_P_EXT_CRYPTO_RANGE_INVALID, data,
		       "LUKS header area [0x%llx, +%llu) is empty, overlaps the qcow2 header or lies past the end of the file (%llu bytes)",
		       (unsigned long long)e->crypto_offset, (unsigned long long)e->crypto_length,
		       (unsigned long long)img->file_size);
		return;
	}
	e->crypto_valid = true;
}

static void do_data_file(struct walk *w, uint64_t data, uint32_t len)
{
	struct qc_extensions *e = &w->img->ext;
	if (len > QC_MAX_BACKING_NAME) {
		REPORT(w, QC_P_EXT_DATA_FILE_NAME_TOO_LONG, data - 4,
		       "external data file name of %u bytes (at most %u)", len,
		       QC_MAX_BACKING_NAME);
		e->has_data_file = false;
		return;
	}
	memset(e->data_file, 0, sizeof(e->data_file));
	qc_get_bytes(w->v, data, e->data_file, len);
	e->has_data_file = true;
}

/* True when some earlier extension had this type. */
static bool seen_before(const struct qc_extensions *e, uint32_t type, uint64_t *prev)
{
	for (unsigned i = 0; i + 1 < e->nlist; i++) {
		if (e->list[i].type == type) {
			*prev = e->list[i].offset;
			return true;
		}
	}
	return false;
}

/* Bytes [off, end) of v are zero (bytes past the view count as zero). */
static bool view_zero(struct qc_view v, uint64_t off, uint64_t end)
{
	if (end > v.len)
		end = v.len;
	return off >= end || qc_all_zero(v.p + off, (size_t)(end - off));
}

/* Count the extension at ext_off and list it (the first QC_EXT_LIST_MAX);
 * a type seen before is a duplicate. */
static void list_ext(struct walk *w, uint32_t type, uint32_t len, uint64_t ext_off)
{
	struct qc_extensions *e = &w->img->ext;
	e->ntotal++;
	if (e->nlist >= QC_EXT_LIST_MAX)
		return;
	e->list[e->nlist].type = type;
	e->list[e->nlist].length = len;
	e->list[e->nlist].offset = ext_off;
	e->nlist++;
	uint64_t prev;
	if (seen_before(e, type, &prev))
		REPORT(w, QC_P_EXT_DUPLICATE, ext_off,
		       "second %s extension (0x%08x) at 0x%llx, first at 0x%llx: QEMU uses the later one",
		       qc_ext_type_name(type), type, (unsigned long long)ext_off,
		       (unsigned long long)prev);
}

/* Interpret the data [off, off+len) of one extension by its type. */
static void interpret(struct walk *w, uint32_t type, uint64_t off, uint32_t len, uint64_t ext_off)
{
	switch (type) {
	case QC_EXT_BACKING_FORMAT:
		do_backing_format(w, off, len);
		break;
	case QC_EXT_FEATURE_TABLE:
		do_feature_table(w, off, len);
		break;
	case QC_EXT_BITMAPS:
		do_bitmaps(w, off, len);
		break;
	case QC_EXT_CRYPTO:
		do_crypto(w, off, len);
		break;
	case QC_EXT_DATA_FILE:
		do_data_file(w, off, len);
		break;
	default:
		w->img->ext.nunknown++;
		REPORT(w, QC_P_EXT_UNKNOWN, ext_off,
		       "unknown header extension 0x%08x (%u bytes) at 0x%llx: preserved, not interpreted",
		       type, len, (unsigned long long)ext_off);
		break;
	}
}

void qc_ext_walk(struct qc_image *img, bool report)
{
	struct qc_extensions *e = &img->ext;
	struct qc_header *h = &img->h;
	free(e->features);
	memset(e, 0, sizeof(*e));
	if (!img->cluster_size || !img->header_cluster)
		return;
	uint64_t start = h->version >= 3 ? h->header_length : QC_V2_HEADER_LEN;
	uint64_t end = img->cluster_size;
	if (h->backing_file_offset && h->backing_file_offset < end)
		end = h->backing_file_offset;
	if (start > img->cluster_size || (h->version >= 3 && start < QC_V3_MIN_HEADER_LEN))
		return; /* header_length already reported; nothing to walk */
	e->walked = true;
	e->area_start = start;
	e->area_end = end;
	struct walk w = { img, report, qc_view_make(img->header_cluster, img->cluster_size) };
	uint64_t off = start;
	while (off < end) {
		if (end - off < 8) {
			if (!view_zero(w.v, off, end))
				REPORT(&w, QC_P_EXT_HEADER_TRUNCATED, off,
				       "%llu bytes left in the extension area at 0x%llx: too few for an extension header",
				       (unsigned long long)(end - off), (unsigned long long)off);
			break;
		}
		uint32_t type = 0, len = 0;
		qc_get_be32(w.v, off, &type);
		qc_get_be32(w.v, off + 4, &len);
		uint64_t ext_off = off;
		off += 8;
		/* QEMU checks the length before it looks at the type, so even
		 * an end marker with a length past the area stops the open. */
		if (len > end - off) {
			REPORT(&w, QC_P_EXT_TOO_LARGE, ext_off,
			       "%s extension (0x%08x) at 0x%llx: %u bytes run past the end of the extension area (0x%llx)",
			       qc_ext_type_name(type), type, (unsigned long long)ext_off, len,
			       (unsigned long long)end);
			break;
		}
		if (type == QC_EXT_END)
			break;
		list_ext(&w, type, len, ext_off);
		interpret(&w, type, off, len, ext_off);
		if (img->aborted)
			return;
		/* Data is padded to 8 bytes; len <= end - off so this cannot overflow. */
		off += ((uint64_t)len + 7) & ~UINT64_C(7);
	}
}

static bool has_type(const struct qc_extensions *e, uint32_t type)
{
	for (unsigned i = 0; i < e->nlist; i++)
		if (e->list[i].type == type)
			return true;
	return false;
}

void qc_pass_extensions(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	qc_ext_walk(img, true);
	struct qc_extensions *e = &img->ext;
	char db[QC_ESC_BOUND_SIZE];
	if (!e->walked)
		return;
	if (h->crypt_method == QC_CRYPT_LUKS && !e->has_crypto)
		qc_report(&img->problems, QC_P_EXT_CRYPTO_MISSING, QC_LOC(32), 1,
			  "crypt_method 2 (LUKS) but no full disk encryption header pointer extension");
	if ((h->incompatible_features & QC_INCOMPAT_DATA_FILE) && !has_type(e, QC_EXT_DATA_FILE))
		qc_report(&img->problems, QC_P_EXT_DATA_FILE_MISSING, QC_LOC(72), 1,
			  "external data file bit set but no data file name: QEMU needs the data-file option to open it");
	if (!(h->incompatible_features & QC_INCOMPAT_DATA_FILE) && e->has_data_file)
		qc_report(&img->problems, QC_P_EXT_DATA_FILE_WITHOUT_FEATURE, QC_LOC(72), 1,
			  "external data file name \"%s\" present but incompatible bit 2 is clear: QEMU ignores it",
			  qc_esc_bound(db, e->data_file));
	if (e->has_backing_format && !h->backing_file_offset)
		qc_report(&img->problems, QC_P_EXT_BACKING_FORMAT_WITHOUT_BACKING, QC_LOC(8), 1,
			  "backing format \"%s\" but no backing file", e->backing_format);
}
