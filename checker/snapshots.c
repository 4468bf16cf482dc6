/*
 * snapshots.c - pass 3: the snapshot table (docs/interop/qcow2.txt
 * "Snapshots"; doc/format.md §5, §9.3, §9.4).
 *
 * Reads the table through the bounded reader in a buffer that grows only
 * as far as the entries need (never past the file plus one cluster of
 * zeros, as QEMU reads, nor past 64 MiB), parses each entry into
 * img->snapshots, validates its fields and its L1 table (offset, size,
 * reach of disk_size) and decides l1_usable, checks IDs and names across
 * entries, and claims the clusters the entries span.
 *
 * One bad entry costs only its own verdict: when an entry's lengths
 * cannot be right (shape impossible, or strings that are not strings and
 * a next entry that is not where they say), parsing looks for the next
 * plausible entry (8-byte steps within the largest possible entry; ranges
 * already scanned are not scanned again) and carries on from there.  The
 * damaged entry keeps its fixed part and gets its id and name back from
 * the space it really spans when one length can be changed to fit.  The
 * last entry has no next entry: its lengths are measured against the
 * table's end instead (snaplast.c).
 * Padding bytes prove nothing: QEMU does not write them.
 *
 * Relies on: the header pass (geometry_ok, cluster size, l2_bits).
 * Leaves to tables.c the snapshot L1/L2 walk (entries with l1_usable) and
 * to vmstate.c the vm_state verdicts.
 */
#include "check.h"
#include "snaplast.h"
#include "../core/escape.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "../core/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIXED 40u
/* Largest entry the format allows: fixed part, extra data, id, name, padding. */
#define MAX_ENTRY (FIXED + QC_MAX_SNAPSHOT_EXTRA + 2u * 65535u + 7u)

/* The table bytes read so far: [base, base+len) of the file. */
struct tbuf {
	struct qc_image *img;
	uint8_t *p;
	uint64_t alloc;     /* bytes allocated at p (from the memory budget) */
	uint64_t base;
	uint64_t len;
	uint64_t eof;       /* table bytes inside the file */
	uint64_t limit;     /* bytes that may be read: min(eof + 1 cluster, 64 MiB);
			     * past eof they read as zeros, as QEMU reads them */
	bool limit_is_eof;  /* the limit comes from the end of the file (else 64 MiB) */
	uint64_t dead_lo, dead_hi; /* a range known to hold no plausible entry */
	char why_last[320];  /* why the last entry's lengths were not found (snaplast.c) */
};

/* Make [base, base+end) available; false if end is past the limit or on error. */
static bool tb_ensure(struct tbuf *t, uint64_t end)
{
	if (end > t->limit)
		return false;
	if (end <= t->len)
		return true;
	uint64_t want = t->len ? t->len : 4096;
	while (want < end)
		want *= 2;
	if (want > t->limit)
		want = t->limit;
	struct qc_image *img = t->img;
	uint8_t *np = qc_budget_realloc(img, t->p, t->alloc, want, "the snapshot table");
	if (!np)
		return false;
	t->p = np;
	t->alloc = want;
	long long r = qc_io_read(img->io, np + t->len, (size_t)(want - t->len), t->base + t->len);
	if (r < 0) {
		qc_abort(img, "I/O error reading the snapshot table at 0x%llx: %s",
			 (unsigned long long)(t->base + t->len), strerror((int)-r));
		return false;
	}
	t->len = want;
	return true;
}

static struct qc_view tb_view(const struct tbuf *t)
{
	return qc_view_make(t->p, (size_t)t->len);
}

/* The fixed part of an entry at table position pos (already ensured). */
struct fixed {
	uint64_t l1_off;
	uint32_t l1_size;
	uint16_t id_size, name_size;
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock;
	uint32_t vm_state32;
	uint32_t extra;
};

static void read_fixed(const struct tbuf *t, uint64_t pos, struct fixed *f)
{
	struct qc_view v = tb_view(t);
	qc_get_be64(v, pos, &f->l1_off);
	qc_get_be32(v, pos + 8, &f->l1_size);
	qc_get_be16(v, pos + 12, &f->id_size);
	qc_get_be16(v, pos + 14, &f->name_size);
	qc_get_be32(v, pos + 16, &f->date_sec);
	qc_get_be32(v, pos + 20, &f->date_nsec);
	qc_get_be64(v, pos + 24, &f->vm_clock);
	qc_get_be32(v, pos + 32, &f->vm_state32);
	qc_get_be32(v, pos + 36, &f->extra);
}

/* Bytes an id may hold to look like a real one: printable ASCII. */
static bool id_bytes_ok(const uint8_t *p, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return false;
	return true;
}

/* Name bytes: no control characters (UTF-8 allowed). */
static bool name_bytes_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	return true;
}

enum shape {
	SHAPE_OK,
	SHAPE_NO_ROOM,     /* the fixed part does not fit before the limit */
	SHAPE_BLANK,       /* the fixed part is all zeros */
	SHAPE_EXTRA_LARGE, /* extra_data_size > 1024 */
	SHAPE_OVERRUN,     /* extra + id + name run past the limit */
};

/* What the entry at pos says about its own extent; *size = padded size. */
static enum shape entry_shape(struct tbuf *t, uint64_t pos, struct fixed *f, uint64_t *size)
{
	if (!tb_ensure(t, pos + FIXED))
		return SHAPE_NO_ROOM;
	read_fixed(t, pos, f);
	/* A version 2 entry of 40 zero bytes is a valid entry (no ID, no
	 * name, no L1 table; QEMU accepts it and its own repair writes such
	 * entries, doc/snapshots.md); version 3 needs 16 bytes of extra data. */
	if (qc_all_zero(t->p + pos, FIXED) && t->img->h.version >= 3)
		return SHAPE_BLANK;
	if (f->extra > QC_MAX_SNAPSHOT_EXTRA)
		return SHAPE_EXTRA_LARGE;
	uint64_t n = (uint64_t)FIXED + f->extra + f->id_size + f->name_size;
	n = (n + 7) & ~UINT64_C(7);
	*size = n;
	if (!tb_ensure(t, pos + n))
		return SHAPE_OVERRUN;
	return SHAPE_OK;
}

/*
 * Loose plausibility of an entry whose shape is OK: its strings look like
 * strings.  Damage to other fields (offsets, sizes, dates) does not change
 * this, so it only tells whether the declared lengths put the strings
 * where they really are.  Padding is not looked at: QEMU does not write
 * it, so it may hold stale bytes of a reused cluster.
 */
static bool layout_looks_right(const struct tbuf *t, uint64_t pos, const struct fixed *f)
{
	const uint8_t *e = t->p + pos + FIXED + f->extra;
	if (f->id_size && !id_bytes_ok(e, f->id_size))
		return false;
	return name_bytes_ok(e + f->id_size, f->name_size);
}

/*
 * An entry as QEMU writes it, its L1 fields aside (the damage this
 * tolerates: a bad L1 pointer or size changes nothing else): shape OK,
 * date_nsec < 10^9, 16+ bytes of extra data in version 3, a printable ID
 * of 1..64 bytes and a name of at most 4096 bytes without control
 * characters.  *f and *size as entry_shape gives them.
 */
static bool plausible_but_l1(struct tbuf *t, uint64_t pos, struct fixed *f, uint64_t *size)
{
	if (entry_shape(t, pos, f, size) != SHAPE_OK)
		return false;
	if (f->date_nsec >= 1000000000u)
		return false;
	if (t->img->h.version >= 3 && f->extra < 16)
		return false;
	if (f->id_size > 64 || f->name_size > 4096)
		return false;
	const uint8_t *e = t->p + pos + FIXED + f->extra;
	return id_bytes_ok(e, f->id_size) && name_bytes_ok(e + f->id_size, f->name_size);
}

/*
 * Strict plausibility, for resynchronisation only: would an entry at pos
 * look exactly like one QEMU writes?
 */
static bool plausible(struct tbuf *t, uint64_t pos)
{
	struct qc_image *img = t->img;
	struct fixed f;
	uint64_t size;
	if (!plausible_but_l1(t, pos, &f, &size))
		return false;
	if (!f.l1_off || (f.l1_off & (img->cluster_size - 1)) || f.l1_off >= img->file_size)
		return false;
	return (uint64_t)f.l1_size * 8 <= QC_MAX_L1_SIZE;
}

/* Nothing more at pos: the readable bytes end, or a zero fixed part. */
static bool table_end(struct tbuf *t, uint64_t pos)
{
	return !tb_ensure(t, pos + FIXED) || qc_all_zero(t->p + pos, FIXED);
}

/*
 * An entry with a damaged L1 pointer or size among good ones: at pos an
 * entry plausible but for its L1 fields, whose lengths lead (through at
 * most 16 such entries) to a plausible entry or to the end of the table.
 * Without it, a resynchronisation would skip such an entry and give its
 * strings to the damaged entry before it.
 */
static bool plausible_chain(struct tbuf *t, uint64_t pos)
{
	for (int n = 0; n < 16; n++) {
		struct fixed f;
		uint64_t size = 0;
		if (!plausible_but_l1(t, pos, &f, &size))
			return false;
		pos += size;
		if (table_end(t, pos) || plausible(t, pos))
			return true;
	}
	return false;
}

/*
 * Next plausible entry in [from, to), 8-byte steps, skipping `skip`.  A
 * range that a failed scan covered is remembered and not scanned again,
 * so a table of garbage costs linear time.
 */
static bool resync(struct tbuf *t, uint64_t from, uint64_t to, uint64_t skip, uint64_t *out)
{
	if (to > t->limit)
		to = t->limit;
	uint64_t q = (from + 7) & ~UINT64_C(7);
	uint64_t start = q;
	if (q >= t->dead_lo && q < t->dead_hi)
		q = t->dead_hi;
	for (; q + FIXED <= to; q += 8) {
		if (t->img->aborted)
			return false;
		if (q != skip && (plausible(t, q) || plausible_chain(t, q))) {
			*out = q;
			return true;
		}
	}
	if (start >= t->dead_lo && start <= t->dead_hi) {
		if (q > t->dead_hi)
			t->dead_hi = q;
	} else {
		t->dead_lo = start;
		t->dead_hi = q;
	}
	return false;
}

/*
 * Do the declared lengths of the entries from pos on (a few of them, each
 * with an OK shape) lead exactly to q?  Then entries with odd strings are
 * just odd, not out of step.
 */
static bool chain_reaches(struct tbuf *t, uint64_t pos, uint64_t q)
{
	for (int n = 0; n < 16 && pos < q; n++) {
		struct fixed f;
		uint64_t size = 0;
		if (entry_shape(t, pos, &f, &size) != SHAPE_OK)
			return false;
		pos += size;
	}
	return pos == q;
}

static char *copy_str(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

/* Decode the extra data and strings of an entry whose layout is known. */
static void fill_entry(struct qc_image *img, struct tbuf *t, uint64_t pos, uint32_t extra, uint16_t id_size, uint16_t name_size, struct qc_snapshot *s)
{
	struct qc_view ex;
	s->has_vm_state_size_large = s->has_disk_size = s->has_icount = false;
	if (qc_view_sub(tb_view(t), pos + FIXED, extra, &ex)) {
		s->has_vm_state_size_large = qc_get_be64(ex, 0, &s->vm_state_size_large);
		s->has_disk_size = qc_get_be64(ex, 8, &s->disk_size_raw);
		s->has_icount = qc_get_be64(ex, 16, &s->icount);
	}
	const uint8_t *str = t->p + pos + FIXED + extra;
	s->id_size = id_size;
	s->name_size = name_size;
	s->id = copy_str(str, id_size);
	s->name = copy_str(str + id_size, name_size);
	if (!s->id || !s->name)
		qc_abort(img, "out of memory copying snapshot names");
}

static bool all_digits(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return n > 0;
}

/*
 * An entry at pos whose declared lengths are wrong really spans `span`
 * bytes (up to the next plausible entry).  Try changing one length (extra,
 * id or name) so that the padded layout ends exactly there with an ID and
 * a name that look like strings; among those, prefer what QEMU writes (a
 * numeric ID, 24 bytes of extra data, zero padding).  False if none fits.
 */
static bool recover_layout(struct qc_image *img, struct tbuf *t, uint64_t pos, uint64_t span,
			   const struct fixed *f, uint32_t *extra, uint16_t *id, uint16_t *name)
{
	const uint8_t *e = t->p + pos;
	uint32_t min_extra = img->h.version >= 3 ? 16 : 0;
	int best = -1;
	for (unsigned pad = 0; pad < 8; pad++) {
		if (pad >= span || span - pad < FIXED)
			break;
		uint64_t c = span - pad - FIXED; /* extra + id + name */
		uint64_t cand[3][3] = {
			{ c - f->id_size - f->name_size, f->id_size, f->name_size },
			{ f->extra, c - f->extra - f->name_size, f->name_size },
			{ f->extra, f->id_size, c - f->extra - f->id_size },
		};
		bool fits[3] = {
			c >= (uint64_t)f->id_size + f->name_size,
			c >= (uint64_t)f->extra + f->name_size,
			c >= (uint64_t)f->extra + f->id_size,
		};
		for (int k = 0; k < 3; k++) {
			if (!fits[k])
				continue;
			uint64_t x = cand[k][0], ids = cand[k][1], nms = cand[k][2];
			if (x > QC_MAX_SNAPSHOT_EXTRA || x < min_extra || ids > 65535 || nms > 65535)
				continue;
			/* the padded layout must end exactly where the next entry starts */
			if (((FIXED + x + ids + nms + 7) & ~UINT64_C(7)) != span)
				continue;
			const uint8_t *str = e + FIXED + x;
			if (!id_bytes_ok(str, (size_t)ids) || !name_bytes_ok(str + ids, (size_t)nms))
				continue;
			int score = 4 * all_digits(str, (size_t)ids) + 2 * (x == 24) +
				    qc_all_zero(e + span - pad, pad);
			if (score > best) {
				best = score;
				*extra = (uint32_t)x;
				*id = (uint16_t)ids;
				*name = (uint16_t)nms;
			}
		}
	}
	return best >= 0;
}

static struct qc_loc sloc(uint64_t off, int32_t idx)
{
	struct qc_loc l = QC_LOC(off);
	l.snapshot = idx;
	return l;
}

static struct qc_snapshot *new_entry(struct qc_image *img, size_t *cap)
{
	struct qc_snapshot *n = qc_budget_grow(img, img->snapshots, cap, img->nsnapshots, sizeof(*n),
					       16, "the snapshot entries");
	if (!n)
		return NULL;
	img->snapshots = n;
	struct qc_snapshot *s = &img->snapshots[img->nsnapshots];
	memset(s, 0, sizeof(*s));
	return s;
}

static uint64_t size_to_l1(const struct qc_image *img, uint64_t size)
{
	unsigned shift = qc_l1_shift(img);
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* Effective sizes and the vm_state fields the walk starts from. */
static void derive(struct qc_image *img, struct qc_snapshot *s)
{
	s->vm_state_size = s->has_vm_state_size_large ? s->vm_state_size_large : s->vm_state_size32;
	s->disk_size = s->has_disk_size ? s->disk_size_raw : img->h.size;
	s->vm_first_l1_index = size_to_l1(img, s->disk_size);
	s->vm_clusters_expected = (s->vm_state_size >> img->cluster_bits) +
				  ((s->vm_state_size & (img->cluster_size - 1)) != 0);
	s->vm_first_hole = s->vm_first_past_end = QC_NO_OFFSET;
	s->vm_clusters_mapped = s->vm_clusters_past_end = 0;
}

/* Derived fields and the checks of one entry on its own. */
static void check_entry(struct qc_image *img, struct qc_snapshot *s, int32_t idx)
{
	struct qc_problems *ps = &img->problems;
	uint64_t eo = s->entry_offset;
	char idb[QC_ESC_BOUND_SIZE];
	const char *id = qc_esc_bound(idb, s->id ? s->id : "?");

	derive(img, s);
	if (eo + FIXED + s->extra_data_size > img->file_size) {
		/* Cut by the end of the file (reported by the caller): its
		 * fields past EOF read as zeros and prove nothing. */
		s->l1_usable = false;
		return;
	}
	if (img->h.version >= 3 && s->extra_data_size < 16)
		qc_report(ps, QC_P_SNAPSHOT_EXTRA_DATA_TOO_SMALL, sloc(eo + 36, idx), 1,
			  "snapshot %d (id '%s') has %u bytes of extra data (version 3 needs 16): disk_size is missing, assumed %llu",
			  idx, id, s->extra_data_size, (unsigned long long)s->disk_size);
	if (s->date_nsec >= 1000000000u)
		qc_report(ps, QC_P_SNAPSHOT_DATE_NSEC_INVALID, sloc(eo + 20, idx), 1,
			  "snapshot %d (id '%s') date_nsec %u is not below 10^9", idx, id, s->date_nsec);
	if (s->has_disk_size && (s->disk_size & 511))
		qc_report(ps, QC_P_SNAPSHOT_DISK_SIZE_UNALIGNED, sloc(eo + 48, idx), 1,
			  "snapshot %d (id '%s') disk_size %llu is not a multiple of 512", idx, id,
			  (unsigned long long)s->disk_size);

	/* Its L1 table. */
	bool ok = true;
	uint64_t l1_bytes = (uint64_t)s->l1_size * 8;
	if ((uint64_t)s->l1_size * 8 > QC_MAX_L1_SIZE) {
		qc_report(ps, QC_P_SNAPSHOT_L1_TOO_LARGE, sloc(eo + 8, idx), 1,
			  "snapshot %d (id '%s') l1_size %u exceeds the limit of %u entries", idx, id,
			  s->l1_size, QC_MAX_L1_SIZE / 8);
		ok = false;
	} else if ((s->l1_size || s->l1_table_offset) && s->l1_size < s->vm_first_l1_index) {
		/* no L1 table at all (size and offset 0) is an empty snapshot
		 * that reads as zeros: the 40-byte all-zero v2 entry QEMU
		 * writes (doc/snapshots.md); a table cut to size 0 is not */
		qc_report(ps, QC_P_SNAPSHOT_L1_TOO_SMALL, sloc(eo + 8, idx), 1,
			  "snapshot %d (id '%s') l1_size %u cannot map its disk size %llu (needs %llu entries)",
			  idx, id, s->l1_size, (unsigned long long)s->disk_size,
			  (unsigned long long)s->vm_first_l1_index);
	}
	if (s->l1_size == 0) {
		/* No L1 table: nothing to walk, so the walk is trivially
		 * complete; QEMU still insists on an aligned offset. */
		if (s->l1_table_offset & (img->cluster_size - 1))
			qc_report(ps, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED, sloc(eo, idx), 1,
				  "snapshot %d (id '%s') L1 table offset 0x%llx is not cluster aligned (l1_size 0)",
				  idx, id, (unsigned long long)s->l1_table_offset);
	} else if (s->l1_table_offset & (img->cluster_size - 1)) {
		qc_report(ps, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED, sloc(eo, idx), 1,
			  "snapshot %d (id '%s') L1 table offset 0x%llx is not cluster aligned", idx, id,
			  (unsigned long long)s->l1_table_offset);
		ok = false;
	} else if (s->l1_table_offset == 0 || s->l1_table_offset > QC_MAX_OFFSET) {
		qc_report(ps, QC_P_SNAPSHOT_L1_OFFSET_INVALID, sloc(eo, idx), 1,
			  "snapshot %d (id '%s') L1 table offset 0x%llx is %s", idx, id,
			  (unsigned long long)s->l1_table_offset,
			  s->l1_table_offset ? "beyond the largest host offset" : "the header");
		ok = false;
	} else if (ok && qc_past_eof(img, s->l1_table_offset, l1_bytes)) {
		qc_report(ps, QC_P_SNAPSHOT_L1_PAST_EOF, sloc(eo, idx), 1,
			  "snapshot %d (id '%s') L1 table [0x%llx, +%llu) lies past the end of the file (%llu bytes)",
			  idx, id, (unsigned long long)s->l1_table_offset, (unsigned long long)l1_bytes,
			  (unsigned long long)img->file_size);
		ok = false;
	}
	s->l1_usable = ok;
}

/* IDs unique and non-empty, names unique (warning). */
struct keyed {
	const char *key;
	uint32_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void check_ids(struct qc_image *img)
{
	struct qc_problems *ps = &img->problems;
	uint32_t n = img->nsnapshots;
	for (uint32_t i = 0; i < n; i++) {
		struct qc_snapshot *s = &img->snapshots[i];
		char nb[QC_ESC_BOUND_SIZE];
		if (s->parsed && s->id && s->id_size == 0)
			qc_report(ps, QC_P_SNAPSHOT_ID_EMPTY, sloc(s->entry_offset + 12, (int32_t)i), 1,
				  "snapshot %u (name '%s') has an empty ID", i,
				  qc_esc_bound(nb, s->name ? s->name : ""));
	}
	if (n < 2)
		return;
	struct keyed *v = qc_budget_alloc(img, (uint64_t)n * sizeof(*v), "the snapshot ID index");
	if (!v)
		return;
	for (int pass = 0; pass < 2; pass++) {
		uint32_t m = 0;
		for (uint32_t i = 0; i < n; i++) {
			const struct qc_snapshot *s = &img->snapshots[i];
			const char *key = pass ? s->name : s->id;
			if (s->parsed && key && *key)
				v[m++] = (struct keyed){ key, i };
		}
		qsort(v, m, sizeof(*v), cmp_keyed);
		for (uint32_t a = 1, first = 0; a < m; a++) {
			if (strcmp(v[first].key, v[a].key)) {
				first = a;
				continue;
			}
			const struct qc_snapshot *s = &img->snapshots[v[a].idx];
			char kb[QC_ESC_BOUND_SIZE];
			const char *key = qc_esc_bound(kb, v[a].key);
			if (pass == 0)
				qc_report(ps, QC_P_SNAPSHOT_ID_DUPLICATE,
					  sloc(s->entry_offset + 12, (int32_t)v[a].idx), 1,
					  "snapshot %u has ID '%s', already used by snapshot %u", v[a].idx,
					  key, v[first].idx);
			else
				qc_report(ps, QC_P_SNAPSHOT_NAME_DUPLICATE,
					  sloc(s->entry_offset + 14, (int32_t)v[a].idx), 1,
					  "snapshot %u has name '%s', already used by snapshot %u", v[a].idx,
					  key, v[first].idx);
		}
	}
	qc_budget_free(img, v, (uint64_t)n * sizeof(*v));
}

static const char *shape_reason(enum shape sh, const struct fixed *f, char *buf, size_t n)
{
	switch (sh) {
	case SHAPE_BLANK:
		snprintf(buf, n, "it is blank (all zeros)");
		break;
	case SHAPE_EXTRA_LARGE:
		snprintf(buf, n, "extra_data_size %u exceeds %u", f->extra, QC_MAX_SNAPSHOT_EXTRA);
		break;
	case SHAPE_OVERRUN:
		snprintf(buf, n, "extra data (%u), id (%u) and name (%u) run past the %s", f->extra,
			 f->id_size, f->name_size, "readable table");
		break;
	case SHAPE_OK:
		snprintf(buf, n, "its lengths (extra %u, id %u, name %u) do not lead to the next entry",
			 f->extra, f->id_size, f->name_size);
		break;
	default:
		snprintf(buf, n, "it does not fit");
	}
	return buf;
}

/*
 * An empty table's offset: QEMU validates it like any table's
 * (qcow2_validate_table: cluster aligned, offset + size within 2^63 - 1)
 * and refuses to open the image otherwise ("Snapshot table offset
 * invalid", doc/snapshots.md).  The repair sets it to 0.
 */
static void empty_table_offset(struct qc_image *img)
{
	uint64_t off = img->h.snapshots_offset;
	if (off & (img->cluster_size - 1))
		qc_report(&img->problems, QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED, QC_LOC(64), 1,
			  "snapshot table offset 0x%llx is not cluster aligned (no snapshots; QEMU refuses to open the image)",
			  (unsigned long long)off);
	else if (off > (uint64_t)INT64_MAX)
		qc_report(&img->problems, QC_P_SNAPSHOT_TABLE_OFFSET_INVALID, QC_LOC(64), 1,
			  "snapshot table offset 0x%llx is beyond 2^63 - 1 (no snapshots; QEMU refuses to open the image)",
			  (unsigned long long)off);
}

/* Validate the table location; false when it cannot be read at all. */
static bool check_location(struct qc_image *img)
{
	struct qc_problems *ps = &img->problems;
	struct qc_header *h = &img->h;
	if (img->data_file)
		qc_report(ps, QC_P_SNAPSHOT_WITH_DATA_FILE, QC_LOC(60), 1,
			  "%u snapshots in an image with an external data file", h->nb_snapshots);
	if (h->nb_snapshots > QC_MAX_SNAPSHOTS)
		qc_report(ps, QC_P_SNAPSHOT_COUNT_TOO_LARGE, QC_LOC(60), 1,
			  "nb_snapshots %u exceeds %u; only the entries that parse are kept",
			  h->nb_snapshots, QC_MAX_SNAPSHOTS);
	if (h->snapshots_offset & (img->cluster_size - 1)) {
		qc_report(ps, QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED, QC_LOC(64), 1,
			  "snapshot table offset 0x%llx is not cluster aligned; its %u entries are not read",
			  (unsigned long long)h->snapshots_offset, h->nb_snapshots);
		return false;
	}
	if (h->snapshots_offset == 0 || h->snapshots_offset > QC_MAX_OFFSET) {
		qc_report(ps, QC_P_SNAPSHOT_TABLE_OFFSET_INVALID, QC_LOC(64), 1,
			  "snapshot table offset 0x%llx is %s; its %u entries are not read",
			  (unsigned long long)h->snapshots_offset,
			  h->snapshots_offset ? "beyond the largest host offset" : "the header",
			  h->nb_snapshots);
		return false;
	}
	if (h->snapshots_offset >= img->file_size) {
		qc_report(ps, QC_P_SNAPSHOT_TABLE_PAST_EOF, QC_LOC(64), 1,
			  "snapshot table offset 0x%llx is at or past the end of the file (%llu bytes); its %u entries are lost",
			  (unsigned long long)h->snapshots_offset, (unsigned long long)img->file_size,
			  h->nb_snapshots);
		return false;
	}
	return true;
}

/* A new entry with the fixed part f, at table position pos. */
static struct qc_snapshot *record(struct qc_image *img, size_t *cap, const struct tbuf *t,
				  uint64_t pos, uint64_t size, const struct fixed *f)
{
	struct qc_snapshot *s = new_entry(img, cap);
	if (!s)
		return NULL;
	s->entry_offset = t->base + pos;
	s->entry_size = size;
	s->l1_table_offset = f->l1_off;
	s->l1_size = f->l1_size;
	s->date_sec = f->date_sec;
	s->date_nsec = f->date_nsec;
	s->vm_clock_nsec = f->vm_clock;
	s->vm_state_size32 = f->vm_state32;
	s->extra_data_size = f->extra;
	s->parsed = true;
	img->nsnapshots++;
	return s;
}

/* Entry i at pos could not be parsed and nothing plausible follows. */
static void report_lost(struct qc_image *img, const struct tbuf *t, uint32_t i, uint32_t want,
			uint64_t pos, enum shape sh, const struct fixed *f, uint64_t size)
{
	struct qc_problems *ps = &img->problems;
	unsigned long long at = t->base + pos;
	char why[160];
	if (img->aborted) /* a read failed: what is missing is not known lost */
		return;
	if (sh == SHAPE_BLANK)
		qc_report(ps, QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE, QC_LOC(60), 1,
			  "nb_snapshots is %u but entry %u at 0x%llx is blank and no entry follows: the table holds %u entries",
			  img->h.nb_snapshots, i, at, i);
	else if (sh == SHAPE_OVERRUN && !t->limit_is_eof)
		qc_report(ps, QC_P_SNAPSHOT_TABLE_TOO_LARGE, QC_LOC(at), 1,
			  "entry %u at 0x%llx (%llu bytes) would end %llu bytes into the table, past the 64 MiB limit; entries %u..%u are lost",
			  i, at, (unsigned long long)size, (unsigned long long)(pos + size), i, want - 1);
	else if (sh == SHAPE_OVERRUN)
		qc_report(ps, QC_P_SNAPSHOT_ENTRY_PAST_EOF, QC_LOC(at), 1,
			  "entry %u at 0x%llx: %s (end of file); entries %u..%u are lost", i, at,
			  shape_reason(sh, f, why, sizeof(why)), i, want - 1);
	else
		qc_report(ps, QC_P_SNAPSHOT_ENTRY_UNPARSABLE, QC_LOC(at), 1,
			  "entry %u at 0x%llx cannot be parsed (%s) and no plausible entry follows; entries %u..%u are lost%s%s",
			  i, at, shape_reason(sh, f, why, sizeof(why)), i, want - 1,
			  t->why_last[0] ? "; as the last entry, its lengths measured against the table's end: " : "",
			  t->why_last);
}

/* The entry before (at prev, index i-1) really ends at q: redo it. */
static void redo_previous(struct qc_image *img, struct tbuf *t, uint32_t i, uint64_t prev,
			  uint64_t q)
{
	struct qc_snapshot *pe = &img->snapshots[img->nsnapshots - 1];
	int32_t idx = (int32_t)img->nsnapshots - 1;
	unsigned long long at = t->base + prev, next = t->base + q;
	struct fixed pf;
	read_fixed(t, prev, &pf);
	uint32_t x = 0;
	uint16_t a = 0, b = 0;
	free(pe->id);
	free(pe->name);
	pe->id = pe->name = NULL;
	bool rec = recover_layout(img, t, prev, q - prev, &pf, &x, &a, &b);
	if (rec) {
		fill_entry(img, t, prev, x, a, b, pe);
		pe->extra_data_size = x;
	}
	pe->entry_size = q - prev;
	if (rec)
		qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, sloc(at, idx), 1,
			  "entry %u at 0x%llx declares extra %u, id %u, name %u bytes, but the next entry starts at 0x%llx; the entry's extent implies extra %u, id %u, name %u bytes",
			  i - 1, at, pf.extra, pf.id_size, pf.name_size, next, x, a, b);
	else
		qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, sloc(at, idx), 1,
			  "entry %u at 0x%llx declares extra %u, id %u, name %u bytes, but the next entry starts at 0x%llx; its id and name are lost",
			  i - 1, at, pf.extra, pf.id_size, pf.name_size, next);
	check_entry(img, pe, idx);
}

/* Entry i spans [pos, q) but its lengths say otherwise: keep its fixed
 * part and recover its strings from the real extent.  False on OOM. */
static bool keep_damaged(struct qc_image *img, size_t *cap, struct tbuf *t, uint32_t i,
			 uint64_t pos, uint64_t q, enum shape sh, const struct fixed *f)
{
	int32_t idx = (int32_t)img->nsnapshots;
	unsigned long long at = t->base + pos, next = t->base + q;
	char why[160];
	if (sh == SHAPE_EXTRA_LARGE)
		qc_report(&img->problems, QC_P_SNAPSHOT_EXTRA_DATA_TOO_LARGE, sloc(at + 36, idx), 1,
			  "entry %u at 0x%llx: extra_data_size %u exceeds %u", i, at, f->extra,
			  QC_MAX_SNAPSHOT_EXTRA);
	struct qc_snapshot *s = record(img, cap, t, pos, q - pos, f);
	if (!s)
		return false;
	uint32_t x = 0;
	uint16_t a = 0, b = 0;
	bool rec = sh != SHAPE_BLANK && recover_layout(img, t, pos, q - pos, f, &x, &a, &b);
	if (rec) {
		fill_entry(img, t, pos, x, a, b, s);
		s->extra_data_size = x;
	}
	shape_reason(sh, f, why, sizeof(why));
	if (rec)
		qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, sloc(at, idx), 1,
			  "entry %u at 0x%llx: %s; parsing resynchronised at the next entry, 0x%llx; the entry's extent implies extra %u, id %u, name %u bytes (declared %u, %u, %u)",
			  i, at, why, next, x, a, b, f->extra, f->id_size, f->name_size);
	else
		qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, sloc(at, idx), 1,
			  "entry %u at 0x%llx: %s; parsing resynchronised at the next entry, 0x%llx; its id and name are lost",
			  i, at, why, next);
	if (sh != SHAPE_BLANK) {
		check_entry(img, s, idx);
	} else {
		derive(img, s);
		s->l1_usable = true; /* blank: l1_size 0, nothing to walk */
	}
	return true;
}

/* Where the parse of the entries stands. */
struct cursor {
	uint32_t i, want;   /* entry i of the want the header promises (capped) */
	uint64_t pos, prev; /* table offsets of entry i and of the one before it */
	size_t cap;         /* img->snapshots' capacity */
	bool table_ok;
};

/*
 * The last entry c->i, whose lengths cannot be right (extra data too
 * large, strings that run past what can be read, or strings that are not
 * strings), has no next entry to be measured against: measure it against
 * the table's end instead (snaplast.c: one length changed, a layout QEMU
 * writes, zeros after it).  True when exactly one layout fits: the entry
 * is recorded with it.  Else t->why_last says why not (none or several)
 * and the caller goes on as for any damaged entry.
 */
static bool last_entry(struct qc_image *img, struct tbuf *t, struct cursor *c, enum shape sh,
		       const struct fixed *f)
{
	t->why_last[0] = 0;
	if (c->i + 1 != c->want ||
	    !(sh == SHAPE_EXTRA_LARGE || sh == SHAPE_OVERRUN ||
	      (sh == SHAPE_OK && !layout_looks_right(t, c->pos, f))))
		return false;
	/* the largest entry and the rest of the cluster it may end in */
	uint64_t want = c->pos + MAX_ENTRY + img->cluster_size;
	if (want > t->limit)
		want = t->limit;
	if (want > t->len && !tb_ensure(t, want))
		return false;
	struct qc_snap_lens d = { f->extra, f->id_size, f->name_size }, got, other;
	char why[256];
	enum qc_snaplast_result r =
		qc_snaplast_fit(t->p + c->pos, (size_t)(t->len - c->pos), t->base + c->pos,
				img->cluster_size, img->h.version, &d, &got, &other, why, sizeof(why));
	if (r != QC_SNAPLAST_ONE) {
		snprintf(t->why_last, sizeof(t->why_last), "%s", why);
		return false;
	}
	int32_t idx = (int32_t)img->nsnapshots;
	unsigned long long at = t->base + c->pos;
	uint64_t used = (uint64_t)FIXED + got.extra + got.id + got.name;
	char shw[160];
	if (sh == SHAPE_EXTRA_LARGE)
		qc_report(&img->problems, QC_P_SNAPSHOT_EXTRA_DATA_TOO_LARGE, sloc(at + 36, idx), 1,
			  "entry %u at 0x%llx: extra_data_size %u exceeds %u", c->i, at, f->extra,
			  QC_MAX_SNAPSHOT_EXTRA);
	if (img->h.version >= 3 && f->extra < 16)
		qc_report(&img->problems, QC_P_SNAPSHOT_EXTRA_DATA_TOO_SMALL, sloc(at + 36, idx), 1,
			  "entry %u at 0x%llx: %u bytes of extra data (version 3 needs 16)", c->i, at,
			  f->extra);
	struct qc_snapshot *s = record(img, &c->cap, t, c->pos, (used + 7) & ~UINT64_C(7), f);
	if (!s)
		return false;
	fill_entry(img, t, c->pos, got.extra, (uint16_t)got.id, (uint16_t)got.name, s);
	s->extra_data_size = got.extra;
	qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, sloc(at, idx), 1,
		  "entry %u at 0x%llx, the last: %s; the one layout QEMU writes with one length changed that ends the table (zeros after it) is extra %u, id %u, name %u bytes (declared %u, %u, %u)",
		  c->i, at,
		  sh == SHAPE_OK ? "its ID and name are not strings where its lengths put them"
				 : shape_reason(sh, f, shw, sizeof(shw)),
		  got.extra, got.id, got.name, f->extra, f->id_size, f->name_size);
	check_entry(img, s, idx);
	c->prev = c->pos;
	c->pos += s->entry_size;
	return true;
}

/*
 * Does the entry at pos (shape `sh`) lose the thread?  An entry whose
 * shape is wrong does; one with odd strings does unless the next entry is
 * where its lengths say.  When lost, *q is the next plausible entry
 * (*found false: none).  An entry with an OK shape is kept as declared
 * when nothing better is found or its lengths lead to *q anyway.
 */
static bool lost_thread(struct tbuf *t, uint32_t i, uint32_t want, uint64_t pos, uint64_t prev,
			enum shape sh, const struct fixed *f, uint64_t size, uint64_t *q, bool *found)
{
	*found = false;
	bool lost = sh != SHAPE_OK;
	if (!lost && i + 1 < want && !layout_looks_right(t, pos, f)) {
		struct fixed nf;
		uint64_t nsize = 0;
		lost = pos + size >= t->eof || entry_shape(t, pos + size, &nf, &nsize) != SHAPE_OK ||
		       !layout_looks_right(t, pos + size, &nf);
	}
	if (!lost || t->img->aborted)
		return false;
	/* Look for the next plausible entry, from just after the previous
	 * entry's fixed part (that entry may have been the one out of step). */
	uint64_t from = prev != UINT64_MAX ? prev + FIXED : pos + 8;
	*found = resync(t, from, pos + MAX_ENTRY, pos, q);
	if (sh == SHAPE_OK && (!*found || chain_reaches(t, pos, *q)))
		return false;
	return true;
}

/* Is there room for entry c->i at c->pos?  If not, reports why the table
 * ends there and returns false.  Else *sh, *f and *size describe it. */
static bool entry_room(struct qc_image *img, struct tbuf *t, struct cursor *c, enum shape *sh,
		       struct fixed *f, uint64_t *size)
{
	struct qc_problems *ps = &img->problems;
	unsigned long long at = t->base + c->pos;
	if (c->pos >= t->eof) {
		c->table_ok = false;
		qc_report(ps, QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE, QC_LOC(60), 1,
			  "nb_snapshots is %u but entry %u would start at 0x%llx, at or past the end of the file: the table holds %u entries",
			  img->h.nb_snapshots, c->i, at, c->i);
		return false;
	}
	*sh = entry_shape(t, c->pos, f, size);
	if (*sh != SHAPE_NO_ROOM)
		return true;
	c->table_ok = false;
	if (img->aborted) /* the table could not be read: no verdict on it */
		return false;
	if (!t->limit_is_eof)
		qc_report(ps, QC_P_SNAPSHOT_TABLE_TOO_LARGE, QC_LOC(at), 1,
			  "entry %u would start %llu bytes into the table, past the 64 MiB limit; entries %u..%u are lost",
			  c->i, (unsigned long long)c->pos, c->i, c->want - 1);
	else
		qc_report(ps, QC_P_SNAPSHOT_ENTRY_PAST_EOF, QC_LOC(at), 1,
			  "entry %u at 0x%llx runs past the end of the file; entries %u..%u are lost",
			  c->i, at, c->i, c->want - 1);
	return false;
}

/* Entry c->i is damaged and the next one was (found) or was not found at
 * q: keep what can be kept.  False ends the parse. */
static bool lost_entry(struct qc_image *img, struct tbuf *t, struct cursor *c, enum shape sh,
		       const struct fixed *f, uint64_t size, uint64_t q, bool found)
{
	if (!found) {
		c->table_ok = false;
		report_lost(img, t, c->i, c->want, c->pos, sh, f, size);
		return false;
	}
	if (c->prev != UINT64_MAX && q < c->pos + FIXED) {
		/* The next entry starts before this one could end: the previous
		 * entry's lengths were wrong.  Redo it; the entry at q is entry i
		 * (the caller's loop moves on to i again). */
		redo_previous(img, t, c->i, c->prev, q);
		c->pos = q;
		c->i--;
		return true;
	}
	if (!keep_damaged(img, &c->cap, t, c->i, c->pos, q, sh, f))
		return false;
	c->prev = c->pos;
	c->pos = q;
	return true;
}

/* A well-formed entry c->i: recorded and checked.  False ends the parse. */
static bool good_entry(struct qc_image *img, struct tbuf *t, struct cursor *c,
		       const struct fixed *f, uint64_t size)
{
	struct qc_snapshot *s = record(img, &c->cap, t, c->pos, size, f);
	if (!s)
		return false;
	int32_t idx = (int32_t)img->nsnapshots - 1;
	fill_entry(img, t, c->pos, f->extra, f->id_size, f->name_size, s);
	check_entry(img, s, idx);
	uint64_t used = (uint64_t)FIXED + f->extra + f->id_size + f->name_size;
	if (c->pos + used > t->eof) {
		/* Only the padding may lie past the end of the file. */
		c->table_ok = false;
		qc_report(&img->problems, QC_P_SNAPSHOT_ENTRY_PAST_EOF, sloc(t->base + c->pos, idx), 1,
			  "entry %u at 0x%llx (%llu bytes) runs past the end of the file at 0x%llx%s",
			  c->i, (unsigned long long)(t->base + c->pos), (unsigned long long)used,
			  (unsigned long long)img->file_size,
			  c->i + 1 < c->want ? "; the entries after it are lost" : "");
		return false;
	}
	c->prev = c->pos;
	c->pos += size;
	return true;
}

/* Parse the entries the header promises; true when the table is sound. */
static bool parse_entries(struct qc_image *img, struct tbuf *t)
{
	uint32_t nb = img->h.nb_snapshots;
	struct cursor c = { .want = nb > QC_MAX_SNAPSHOTS ? QC_MAX_SNAPSHOTS : nb,
			    .prev = UINT64_MAX, .table_ok = true };
	for (c.i = 0; c.i < c.want && !img->aborted; c.i++) {
		struct fixed f;
		enum shape sh;
		uint64_t size = 0, q = 0;
		bool found;
		if (!entry_room(img, t, &c, &sh, &f, &size))
			break;
		if (last_entry(img, t, &c, sh, &f))
			continue;
		if (img->aborted)
			break;
		bool lost = lost_thread(t, c.i, c.want, c.pos, c.prev, sh, &f, size, &q, &found);
		if (img->aborted)
			break;
		if (!(lost ? lost_entry(img, t, &c, sh, &f, size, q, found)
			   : good_entry(img, t, &c, &f, size)))
			break;
	}
	return c.table_ok;
}

/* The table ends where the last entry's bytes end (QEMU counts no padding
 * after the last entry, and the file may end there). */
static uint64_t table_size(const struct qc_image *img, uint64_t base)
{
	if (!img->nsnapshots)
		return 0;
	const struct qc_snapshot *last = &img->snapshots[img->nsnapshots - 1];
	uint64_t used = (uint64_t)FIXED + last->extra_data_size + last->id_size + last->name_size;
	if (used > last->entry_size)
		used = last->entry_size;
	return last->entry_offset + used - base;
}

void qc_pass_snapshot_table(struct qc_image *img)
{
	struct qc_header *h = &img->h;
	if (!img->geometry_ok)
		return;
	if (h->nb_snapshots == 0) {
		img->snapshot_table_ok = true;
		empty_table_offset(img);
		return;
	}
	if (!check_location(img))
		return;
	struct tbuf t = { .img = img, .base = h->snapshots_offset };
	t.eof = img->file_size - h->snapshots_offset;
	uint64_t room = t.eof + img->cluster_size;
	t.limit = room < QC_MAX_SNAPSHOTS_SIZE ? room : QC_MAX_SNAPSHOTS_SIZE;
	t.limit_is_eof = room <= QC_MAX_SNAPSHOTS_SIZE;
	bool table_ok = parse_entries(img, &t);
	img->snapshot_table_size = table_size(img, t.base);
	qc_budget_free(img, t.p, t.alloc);
	if (img->aborted)
		return;
	if (img->snapshot_table_size)
		qc_claim(img, t.base, img->snapshot_table_size, QC_OWN_SNAPSHOT_TABLE, 1, QC_LOC(64));
	check_ids(img);
	img->snapshot_table_ok = table_ok;
}
