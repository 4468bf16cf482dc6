/*
 * bitmaps.c - the persistent dirty bitmaps (docs/interop/qcow2.txt
 * "Bitmaps"; doc/format.md §6, §9.3): directory, tables and
 * data clusters.
 *
 * Relies on the extension pass (img->ext: has_bitmaps, bitmaps_valid,
 * nb_bitmaps, bitmap_dir_size, bitmap_dir_offset) and on the geometry.
 * Like QEMU, the bitmaps are only read when the extension is valid and
 * autoclear bit 0 is set; otherwise QEMU ignores them and their clusters
 * count as leaks, so nothing is claimed here.
 *
 * Every rule QEMU applies when it loads the directory (check_dir_entry,
 * bitmap_list_load) and counts refcounts (check_table_entry) is applied,
 * plus what QEMU never checks: name uniqueness, the in_use flag (warning)
 * and the unused tail bits of the last data cluster (warning).  Each
 * problem carries the offset of the faulty field.  Claims: directory
 * (BITMAP_DIR), each table (BITMAP_TABLE), each data cluster (BITMAP_DATA).
 */
#include "check.h"
#include "../core/escape.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <stdlib.h>
#include <string.h>

#define DIR_ENTRY_FIXED 24
#define BME_MIN_GRANULARITY 9
#define BME_MAX_GRANULARITY 31
#define BME_TYPE_DIRTY 1
#define BME_ENTRY_ALL_ONES UINT64_C(1)

/* One directory entry as decoded; name points into the directory buffer. */
struct bm_entry {
	uint64_t off; /* host offset of the entry */
	uint64_t table_offset;
	uint32_t table_size;
	uint32_t flags;
	uint8_t type, granularity;
	uint16_t name_size;
	uint32_t extra_size;
	const uint8_t *name;
	bool table_ok; /* the table may be read */
};

static void rep(struct qc_image *img, enum qc_code code, uint64_t off, const char *fmt,
		const char *name, uint16_t name_size, unsigned long long v)
{
	/* raw bytes, bounded; the report escapes them when it prints */
	char nm[QC_ESC_BOUND_SIZE];
	qc_report(&img->problems, code, QC_LOC(off), 1, fmt, qc_esc_bound_n(nm, name, name_size), v);
}

#define REP(img, code, off, e, fmt, v) \
	rep(img, code, off, "bitmap '%s': " fmt, (const char *)(e)->name, (e)->name_size, \
	    (unsigned long long)(v))

/* Bits a bitmap of this granularity has for the virtual disk. */
static uint64_t disk_bits(const struct qc_image *img, unsigned gran)
{
	return (img->h.size >> gran) + ((img->h.size & ((UINT64_C(1) << gran) - 1)) != 0);
}

/* Table entries needed to cover the virtual disk at this granularity. */
static uint64_t needed_entries(const struct qc_image *img, unsigned gran)
{
	uint64_t bits = disk_bits(img, gran);
	uint64_t bits_per_cluster = img->cluster_size * 8;
	return bits / bits_per_cluster + (bits % bits_per_cluster != 0);
}

/* QEMU's check_dir_entry, field by field; sets e->table_ok. */
static void check_entry(struct qc_image *img, struct bm_entry *e)
{
	bool ok = true;
	if (e->table_offset == 0 || (e->table_offset & (img->cluster_size - 1))) {
		REP(img, QC_P_BITMAP_TABLE_OFFSET_INVALID, e->off, e,
		    "table offset 0x%llx is 0 or not cluster aligned", e->table_offset);
		ok = false;
	}
	uint64_t phys = (uint64_t)e->table_size * img->cluster_size;
	if (e->table_size == 0 || e->table_size > QC_BME_MAX_TABLE_SIZE ||
	    phys > QC_BME_MAX_PHYS_SIZE) {
		REP(img, QC_P_BITMAP_TABLE_SIZE_INVALID, e->off + 8, e,
		    "table size %llu entries is 0 or too large", e->table_size);
		ok = false;
	}
	if (e->flags & QC_BME_RESERVED_FLAGS)
		REP(img, QC_P_BITMAP_FLAGS_RESERVED, e->off + 12, e, "reserved flags 0x%llx set",
		    e->flags & QC_BME_RESERVED_FLAGS);
	if (e->type != BME_TYPE_DIRTY)
		REP(img, QC_P_BITMAP_TYPE_INVALID, e->off + 16, e, "type %llu (expected 1)", e->type);
	bool gran_ok = e->granularity >= BME_MIN_GRANULARITY && e->granularity <= BME_MAX_GRANULARITY;
	if (!gran_ok)
		REP(img, QC_P_BITMAP_GRANULARITY_INVALID, e->off + 17, e,
		    "granularity_bits %llu outside 9..31", e->granularity);
	if (e->name_size == 0 || e->name_size > QC_BME_MAX_NAME)
		REP(img, QC_P_BITMAP_NAME_SIZE_INVALID, e->off + 18, e, "name size %llu",
		    e->name_size);
	if (e->extra_size != 0)
		REP(img, QC_P_BITMAP_EXTRA_DATA, e->off + 20, e,
		    "%llu bytes of extra data (QEMU refuses to load the bitmap)", e->extra_size);
	if (e->flags & QC_BME_FLAG_IN_USE)
		REP(img, QC_P_BITMAP_IN_USE, e->off + 12, e,
		    "in use (flags 0x%llx): not saved cleanly, contents inconsistent", e->flags);
	else if (ok && gran_ok) {
		uint64_t need = needed_entries(img, e->granularity);
		if (e->table_size < need)
			REP(img, QC_P_BITMAP_TABLE_TOO_SMALL, e->off + 8, e,
			    "table of %llu entries is too small for the virtual disk", e->table_size);
	}
	if (ok) {
		uint64_t len = (uint64_t)e->table_size * 8;
		if (qc_past_eof(img, e->table_offset, len)) {
			REP(img, QC_P_BITMAP_TABLE_PAST_EOF, e->off, e,
			    "table at 0x%llx lies past the end of the file", e->table_offset);
			ok = false;
		}
	}
	e->table_ok = ok;
}

/* True when any bit at or after bit `from` of a little-endian bitmap is set. */
static bool tail_bits_set(const uint8_t *buf, uint64_t nbytes, uint64_t from)
{
	uint64_t byte = from / 8;
	if (byte >= nbytes)
		return false;
	if (buf[byte] & (uint8_t)(0xff << (from % 8)))
		return true;
	for (uint64_t i = byte + 1; i < nbytes; i++)
		if (buf[i])
			return true;
	return false;
}

/* The unused bits past the virtual disk in the last data cluster. */
static void check_tail(struct qc_image *img, const struct bm_entry *e, uint64_t data_off)
{
	uint64_t bits = disk_bits(img, e->granularity);
	uint64_t per = img->cluster_size * 8;
	uint64_t used = bits % per;
	if (used == 0)
		return;
	int err;
	uint8_t *buf = qc_read_meta(img, data_off, img->cluster_size, &err);
	if (!buf)
		return; /* a short data cluster at EOF reads as zero bits: nothing set */
	if (tail_bits_set(buf, img->cluster_size, used))
		REP(img, QC_P_BITMAP_TAIL_BITS, data_off, e,
		    "bits past the end of the disk are set in the last data cluster 0x%llx",
		    data_off);
	qc_free_meta(img, buf, img->cluster_size);
}

/* Does [off, off+len) touch a cluster another bitmap's table already owns? */
static bool table_taken(const struct qc_image *img, uint64_t off, uint64_t len)
{
	uint64_t last;
	if (!len || !qc_add(off, len - 1, &last))
		return false;
	last >>= img->cluster_bits;
	for (uint64_t c = off >> img->cluster_bits; c <= last && c < img->cmap.nclusters; c++)
		if (qc_cm_owner(&img->cmap, c) == QC_OWN_BITMAP_TABLE)
			return true;
	return false;
}

static void check_table(struct qc_image *img, const struct bm_entry *e)
{
	uint64_t len = (uint64_t)e->table_size * 8;
	struct qc_loc loc = QC_LOC(e->off);
	/* A table over another bitmap's table is reported and not scanned
	 * again: 65535 directory entries naming one 8 MiB table would cost
	 * 65535 scans of it (SECURITY.md, T9). */
	if (table_taken(img, e->table_offset, len)) {
		qc_note_contested(img, e->table_offset, len);
		qc_report_overlap(&img->problems, QC_P_OVERLAP_METADATA, loc, QC_OWN_BITMAP_TABLE,
				  QC_OWN_BITMAP_TABLE,
				  "bitmap table at 0x%llx overlaps another bitmap's table; not scanned again",
				  (unsigned long long)e->table_offset);
		return;
	}
	if (!qc_claim(img, e->table_offset, len, QC_OWN_BITMAP_TABLE, 1, loc))
		return;
	/* len <= 8 MiB (table_size * cluster <= 512 MiB was checked); a table
	 * ending less than a cluster past EOF reads as zeros, as in QEMU */
	uint8_t *t = qc_budget_alloc(img, len, "a bitmap table");
	if (!t)
		return;
	long long r = qc_io_read(img->io, t, (size_t)len, e->table_offset);
	if (r < 0) {
		qc_abort(img, "I/O error reading a bitmap table at 0x%llx: %s",
			 (unsigned long long)e->table_offset, strerror((int)-r));
		qc_budget_free(img, t, len);
		return;
	}
	uint64_t need = e->granularity >= BME_MIN_GRANULARITY &&
				e->granularity <= BME_MAX_GRANULARITY ?
			needed_entries(img, e->granularity) : 0;
	for (uint64_t i = 0; i < e->table_size; i++) {
		uint64_t v = qc_be64_at(t + 8 * i);
		uint64_t where = e->table_offset + 8 * i;
		uint64_t off = v & QC_BME_TABLE_OFFSET_MASK;
		if (v & QC_BME_TABLE_RESERVED_MASK) {
			REP(img, QC_P_BITMAP_ENTRY_RESERVED, where, e,
			    "table entry 0x%llx has reserved bits set", v);
			continue;
		}
		if (off == 0)
			continue; /* all zeroes, or all ones with bit 0 */
		if (v & BME_ENTRY_ALL_ONES) {
			REP(img, QC_P_BITMAP_ENTRY_FLAG_INVALID, where, e,
			    "table entry 0x%llx has the all-ones flag and an offset", v);
			continue;
		}
		if (off & (img->cluster_size - 1)) {
			REP(img, QC_P_BITMAP_ENTRY_UNALIGNED, where, e,
			    "data offset 0x%llx is not cluster aligned", off);
			continue;
		}
		if (qc_past_eof(img, off, img->cluster_size)) {
			REP(img, QC_P_BITMAP_ENTRY_PAST_EOF, where, e,
			    "data cluster 0x%llx lies past the end of the file", off);
			continue;
		}
		if (!qc_claim(img, off, img->cluster_size, QC_OWN_BITMAP_DATA, 1, QC_LOC(where)))
			break;
		if (i + 1 == need)
			check_tail(img, e, off);
	}
	qc_budget_free(img, t, len);
}

static int cmp_name(const void *a, const void *b)
{
	const struct bm_entry *x = *(const struct bm_entry *const *)a;
	const struct bm_entry *y = *(const struct bm_entry *const *)b;
	if (x->name_size != y->name_size)
		return x->name_size < y->name_size ? -1 : 1;
	int c = memcmp(x->name, y->name, x->name_size);
	if (c)
		return c;
	return x < y ? -1 : x > y; /* directory order within one name */
}

/* Names must be unique (QEMU cannot load two bitmaps with one name).
 * Sorted, so 65535 bitmaps cost n log n, not n^2. */
static void check_names(struct qc_image *img, struct bm_entry *es, size_t n)
{
	if (n < 2)
		return;
	struct bm_entry **v = qc_budget_alloc(img, n * sizeof(*v), "the bitmap name index");
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = &es[i];
	qsort(v, n, sizeof(*v), cmp_name);
	size_t first = 0;
	for (size_t i = 1; i < n; i++) {
		if (v[i]->name_size == v[first]->name_size &&
		    memcmp(v[i]->name, v[first]->name, v[i]->name_size) == 0)
			REP(img, QC_P_BITMAP_NAME_DUPLICATE, v[i]->off + 18, v[i],
			    "name also used by bitmap %llu", (size_t)(v[first] - es));
		else
			first = i;
	}
	qc_budget_free(img, v, n * sizeof(*v));
}

/*
 * Walk the directory the way bitmap_list_load does: each fixed part and
 * each whole entry must fit, the entries must end exactly at the end of
 * the directory, and there must be nb_bitmaps of them.
 */
static void walk_dir(struct qc_image *img, const uint8_t *dir, uint64_t size)
{
	uint64_t base = img->ext.bitmap_dir_offset;
	struct qc_view v = qc_view_make(dir, (size_t)size);
	/* at most size / 24 entries fit, and at most nb_bitmaps are wanted */
	size_t cap = (size_t)(size / DIR_ENTRY_FIXED);
	struct bm_entry *es = qc_budget_alloc(img, cap * sizeof(*es), "the bitmap directory entries");
	if (!es)
		return;
	size_t n = 0;
	uint64_t pos = 0;
	bool broken = false;
	while (pos < size) {
		if (!qc_view_has(v, pos, DIR_ENTRY_FIXED) || n >= cap) {
			broken = true;
			break;
		}
		struct bm_entry *e = &es[n];
		e->off = base + pos;
		qc_get_be64(v, pos, &e->table_offset);
		qc_get_be32(v, pos + 8, &e->table_size);
		qc_get_be32(v, pos + 12, &e->flags);
		qc_get_u8(v, pos + 16, &e->type);
		qc_get_u8(v, pos + 17, &e->granularity);
		qc_get_be16(v, pos + 18, &e->name_size);
		qc_get_be32(v, pos + 20, &e->extra_size);
		uint64_t esize = DIR_ENTRY_FIXED + (uint64_t)e->extra_size + e->name_size;
		esize = (esize + 7) & ~UINT64_C(7);
		if (!qc_view_has(v, pos, esize)) {
			e->name = (const uint8_t *)"";
			e->name_size = 0;
			broken = true;
			break;
		}
		e->name = dir + pos + DIR_ENTRY_FIXED + e->extra_size;
		n++;
		pos += esize;
	}
	if (broken)
		qc_report(&img->problems, QC_P_BITMAP_DIR_BROKEN, QC_LOC(base + pos), 1,
			  "bitmap directory entry %zu at 0x%llx does not fit the %llu-byte directory",
			  n, (unsigned long long)(base + pos), (unsigned long long)size);
	/* a broken directory may hide entries: only "too many" is certain then */
	if (broken ? n > img->ext.nb_bitmaps : n != img->ext.nb_bitmaps)
		qc_report(&img->problems, QC_P_BITMAP_DIR_COUNT_MISMATCH, QC_LOC(base), 1,
			  "the bitmap directory holds %s%zu entries, the header extension says %u",
			  broken ? "at least " : "", n, img->ext.nb_bitmaps);
	for (size_t i = 0; i < n; i++)
		check_entry(img, &es[i]);
	check_names(img, es, n);
	for (size_t i = 0; i < n && !img->aborted; i++)
		if (es[i].table_ok)
			check_table(img, &es[i]);
	qc_budget_free(img, es, cap * sizeof(*es));
}

void qc_pass_bitmaps(struct qc_image *img)
{
	const struct qc_extensions *x = &img->ext;
	if (!img->geometry_ok || !x->has_bitmaps || !x->bitmaps_valid)
		return;
	if (!(img->h.autoclear_features & QC_AUTOCLEAR_BITMAPS))
		return; /* QEMU ignores the extension; its clusters are leaks */
	uint64_t size = x->bitmap_dir_size, off = x->bitmap_dir_offset;
	if (size == 0 || size > QC_MAX_BITMAP_DIR_SIZE)
		return; /* ext-bitmaps-dir-size-invalid (extensions.c) */
	if (qc_past_eof(img, off, size) || off >= img->file_size)
		return; /* ext-bitmaps-dir-past-eof (extensions.c) */
	if (!qc_claim(img, off, size, QC_OWN_BITMAP_DIR, 1, QC_LOC(off)))
		return;
	uint8_t *dir = qc_budget_alloc(img, size, "the bitmap directory");
	if (!dir)
		return;
	/* A directory that ends inside the last cluster past EOF reads as zeros. */
	long long r = qc_io_read(img->io, dir, (size_t)size, off);
	if (r < 0) {
		qc_abort(img, "I/O error reading the bitmap directory at 0x%llx: %s",
			 (unsigned long long)off, strerror((int)-r));
		qc_budget_free(img, dir, size);
		return;
	}
	walk_dir(img, dir, size);
	qc_budget_free(img, dir, size);
}
