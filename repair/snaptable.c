/*
 * snaptable.c - planning a rewritten snapshot table (doc/repair.md
 * "Snapshot tables").
 *
 * checker/snapfix.c decided what each entry becomes (kept, fixed,
 * recovered, dropped, left); this file writes that table:
 *   new-structures  the new table, in whole clusters past the end of the
 *                   file and past anything mapped (nothing is stored
 *                   there); then, when a usable refblock covers those
 *                   clusters, their refcounts set to 1 in it (until the
 *                   switch they are merely leaked, so a crash here is
 *                   harmless; refcounts under 8 bits: see sub_byte_align);
 *   switch          one 12-byte header write: nb_snapshots and
 *                   snapshots_offset (header bytes 60..71);
 * The old table's clusters are then unreferenced: the refcount planner,
 * run on the image as it will be (repair.c), lowers them in place, after
 * the switch.  A kept entry is copied byte for byte; a fixed one is
 * written field by field (strings as parsed, extra data as found with the
 * known fields set, 24 bytes when it had to be rebuilt).
 *
 * Relies on: checker/snapshots.c (which reports the two empty-table
 * offsets QEMU refuses), the model (img->snapshots with their fix, img->snapfix, the
 * cluster map, the reftable and refblock_usable) and the image's bytes
 * through the bounded reader.
 */
#include "repair.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "../core/refblock.h"

#define FIXED 40u
#define MAX_LEFT_NAMED 20 /* entries left, listed one by one in the plan */

struct buf {
	uint8_t *p;
	size_t n, cap;
	bool oom;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->n + n > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->n + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	if (d)
		memcpy(b->p + b->n, d, n);
	else
		memset(b->p + b->n, 0, n);
	b->n += n;
}

/* "name 's1', ID '1', 2026-12-02 01:02:03 UTC" */
static void describe(const struct qc_snapshot *s, char *out, size_t n)
{
	char date[32] = "?";
	time_t t = (time_t)s->date_sec;
	struct tm tm;
	if (gmtime_r(&t, &tm))
		strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, n, "name '%.40s', ID '%.20s', %s UTC", s->name ? s->name : "?",
		 s->id ? s->id : "?", date);
}

/* Append entry s as its fix says.  -ENOMEM / -EIO. */
static int serialize(struct qc_image *img, const struct qc_snapshot *s, struct buf *b)
{
	const struct qc_snap_fix *f = &s->fix;
	size_t start = b->n;
	if (f->verdict == QC_SNAP_KEPT || f->verdict == QC_SNAP_LEFT) {
		/* byte for byte: fixed part, extra data, id, name */
		uint64_t used = (uint64_t)FIXED + s->extra_data_size + s->id_size + s->name_size;
		if (used > s->entry_size || used > FIXED + QC_MAX_SNAPSHOT_EXTRA + 2u * 65535u)
			return -EIO;
		put(b, NULL, (size_t)used);
		if (b->oom)
			return -ENOMEM;
		int r = qc_io_read_full(img->io, b->p + start, (size_t)used, s->entry_offset);
		if (r < 0)
			return r;
	} else {
		/* the entry's real layout: as parsed, or as snapfix found it */
		uint32_t xs = f->relayout ? f->extra_size : s->extra_data_size;
		size_t id_len = f->relayout ? f->id_size : s->id_size;
		size_t name_len = f->relayout ? f->name_size : s->name_size;
		uint8_t extra[QC_MAX_SNAPSHOT_EXTRA];
		bool sane = xs <= QC_MAX_SNAPSHOT_EXTRA && s->entry_offset + FIXED + xs <= img->file_size;
		if (!sane)
			xs = 0;
		if (xs && qc_io_read_full(img->io, extra, xs, s->entry_offset + FIXED) < 0)
			return -EIO;
		bool had_icount = xs >= 24;
		if (xs < 24) {
			/* QEMU's three fields; icount -1 means "none" */
			memset(extra + xs, 0, 24 - xs);
			if (!had_icount)
				qc_put_be64(extra + 16, UINT64_MAX);
			xs = 24;
		}
		qc_put_be64(extra, f->vm_state_size);
		qc_put_be64(extra + 8, f->disk_size);
		uint8_t *str = NULL;
		if (f->relayout) {
			str = malloc(id_len + name_len + 1);
			if (!str)
				return -ENOMEM;
			if (qc_io_read_full(img->io, str, id_len + name_len,
					    s->entry_offset + FIXED + f->extra_size) < 0) {
				free(str);
				return -EIO;
			}
		}
		const char *id = f->new_id[0] ? f->new_id : str ? (const char *)str : s->id;
		if (f->new_id[0])
			id_len = strlen(f->new_id);
		const char *name = str ? (const char *)str + f->id_size : s->name;
		/* QEMU reads the name up to its first NUL (and never writes one):
		 * a name with NUL bytes is written as QEMU reads it, so the
		 * entry's length agrees with its bytes */
		if (name)
			name_len = strnlen(name, name_len);
		char lost[32];
		if (f->new_name || !name) {
			snprintf(lost, sizeof(lost), "lost-%s", id ? id : "");
			name = lost;
			name_len = strlen(lost);
		}
		if (!id) {
			free(str);
			return -EIO; /* snapfix gives every lost ID a new one */
		}
		uint8_t h[FIXED];
		qc_put_be64(h, f->l1_table_offset);
		qc_put_be32(h + 8, f->l1_size);
		qc_put_be16(h + 12, (uint16_t)id_len);
		qc_put_be16(h + 14, (uint16_t)name_len);
		qc_put_be32(h + 16, s->date_sec);
		qc_put_be32(h + 20, s->date_nsec);
		qc_put_be64(h + 24, s->vm_clock_nsec);
		qc_put_be32(h + 32, f->vm_state_size > UINT32_MAX ? 0 : (uint32_t)f->vm_state_size);
		qc_put_be32(h + 36, xs);
		put(b, h, FIXED);
		put(b, extra, xs);
		put(b, id, id_len);
		put(b, name, name_len);
		free(str);
	}
	put(b, NULL, (8 - (b->n - start) % 8) % 8);
	return b->oom ? -ENOMEM : 0;
}

/*
 * Set the refcounts of clusters [first, first+n) to 1 in the refblocks
 * that cover them, as new-structure writes.  Clusters no usable refblock
 * covers are left to the refcount planner (it rebuilds).
 */
static int plan_new_refcounts(struct qc_image *img, struct qc_plan *p, uint64_t first, uint64_t n,
			      enum qc_code code)
{
	uint64_t per = (uint64_t)1 << img->refblock_bits;
	size_t cs = (size_t)img->cluster_size;
	unsigned order = img->h.refcount_order;
	if (!img->reftable_ok || !img->reftable || !img->refblock_usable)
		return 0;
	uint8_t *old = malloc(cs), *neu = malloc(cs);
	int ret = 0;
	if (!old || !neu)
		ret = -ENOMEM;
	for (uint64_t c = first; !ret && c < first + n;) {
		uint64_t i = c / per, end = (i + 1) * per;
		if (end > first + n)
			end = first + n;
		uint64_t off = i < img->reftable_entries ? img->reftable[i] & QC_REFT_OFFSET_MASK : 0;
		if (i >= img->reftable_entries || !img->refblock_usable[i] || !off ||
		    qc_contested(img, off, cs)) {
			c = end;
			continue;
		}
		if (qc_io_read_full(img->io, old, cs, off) < 0) {
			ret = -EIO;
			break;
		}
		/* Sub-byte widths (1, 2, 4 bits) share a byte between clusters:
		 * first is byte-aligned (see sub_byte_align), so the only other
		 * clusters in these bytes follow the table, past the end of the
		 * file.  Their counts must be 0 already, or the refcount planner
		 * would change the same bytes: then this is left to it (an
		 * in-place raise after the switch). */
		bool shared = false;
		if (order < 3) {
			uint64_t k8 = UINT64_C(8) >> order, stop = (end + k8 - 1) / k8 * k8;
			if (stop > (i + 1) * per)
				stop = (i + 1) * per;
			for (uint64_t k = end; k < stop && !shared; k++)
				shared = qc_rc_get(old, order, k - i * per) != 0;
		}
		if (shared) {
			c = end;
			continue;
		}
		memcpy(neu, old, cs);
		for (uint64_t k = c; k < end; k++)
			qc_rc_set(neu, order, k - i * per, 1);
		if (qc_plan_diff(p, QC_PH_NEW, off, old, neu, cs, code,
				 "refcount of the new snapshot table's clusters %" PRIu64 "..%" PRIu64 " -> 1 (before the switch: leaked until then)",
				 c, end - 1) < 0)
			ret = -ENOMEM;
		c = end;
	}
	free(old);
	free(neu);
	return ret;
}

/*
 * With refcounts narrower than a byte, the new table starts at a cluster
 * whose refcount starts a byte (up to 7 clusters further, left as holes
 * past the old end of the file): its counts then share no byte with a
 * cluster of the file, which the refcount planner may change in place.
 */
static uint64_t sub_byte_align(const struct qc_image *img, uint64_t first)
{
	unsigned order = img->h.refcount_order;
	if (order >= 3)
		return first;
	uint64_t k8 = UINT64_C(8) >> order;
	return (first + k8 - 1) / k8 * k8;
}

/* The code a rewrite is filed under: the first handled code reported
 * (for entry i only, when i >= 0). */
static enum qc_code table_code(const struct qc_image *img, int32_t i)
{
	const struct qc_problems *ps = &img->problems;
	for (size_t k = 0; k < ps->n; k++)
		if (qc_snapfix_handles(ps->v[k].code) && ps->v[k].code != QC_P_SNAPSHOT_TABLE_REWRITE &&
		    (i < 0 || ps->v[k].loc.snapshot == i))
			return ps->v[k].code;
	/* none reported: --drop-snapshot, or entries behind a zero count */
	return i < 0 ? QC_P_SNAPSHOT_TABLE_REWRITE : table_code(img, -1);
}

/* nb_snapshots 0 and an offset QEMU's table validation refuses. */
static bool empty_offset_bad(const struct qc_image *img)
{
	uint64_t off = img->h.snapshots_offset;
	return img->is_qcow2 && img->geometry_ok && img->h.nb_snapshots == 0 &&
	       ((off & (img->cluster_size - 1)) || off > (uint64_t)INT64_MAX);
}

/* The empty table's offset set to 0: 0, or -ENOMEM. */
static int plan_empty_offset(const struct qc_image *img, struct qc_plan *p)
{
	uint64_t off = img->h.snapshots_offset;
	enum qc_code code = (off & (img->cluster_size - 1)) ? QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED
							     : QC_P_SNAPSHOT_TABLE_OFFSET_INVALID;
	uint8_t z[8] = { 0 };
	if (!qc_plan_add(p, QC_PH_HEADER, 64, z, 8, code,
			 "header: snapshots_offset 0x%" PRIx64 " -> 0 (the table is empty)", off))
		return -ENOMEM;
	return 0;
}

/* Entries left as they are: the first few by name, then a count. */
static void list_left(const struct qc_image *img, struct qc_plan *p)
{
	uint32_t nleft = 0;
	enum qc_code lcode = QC_P_COUNT;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (s->fix.verdict != QC_SNAP_LEFT)
			continue;
		if (lcode == QC_P_COUNT)
			lcode = table_code(img, -1);
		if (nleft++ < MAX_LEFT_NAMED)
			qc_plan_leave(p, lcode, s->entry_offset, "snapshot %u (ID '%.20s'): %s", i,
				      s->id ? s->id : "?", s->fix.what);
	}
	if (nleft > MAX_LEFT_NAMED)
		qc_plan_leave(p, lcode, QC_NO_OFFSET, "%u more snapshot(s) left as they are (see the check's verdicts)",
			      nleft - MAX_LEFT_NAMED);
}

/* Serialize every kept entry into b; entry k starts at starts[k], *n counts
 * them.  1 when serialized, 0 when left (filed under code), or -errno. */
static int serialize_kept(struct qc_image *img, struct qc_plan *p, enum qc_code code, struct buf *b,
			  size_t *starts, uint32_t *n)
{
	int r = 0;
	for (uint32_t i = 0; i < img->nsnapshots && !r; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (s->fix.verdict == QC_SNAP_DROPPED)
			continue;
		starts[(*n)++] = b->n;
		r = serialize(img, s, b);
	}
	if (!r && (b->n > QC_MAX_SNAPSHOTS_SIZE || *n > QC_MAX_SNAPSHOTS)) {
		qc_plan_leave(p, code, 64, "the rewritten snapshot table would pass QEMU's limits: not written");
		return 0;
	}
	if (r == -EIO) {
		qc_plan_leave(p, code, 64, "an entry of the snapshot table cannot be read again: not rewritten");
		return 0;
	}
	return r ? r : 1;
}

/* Pad b to whole clusters and plan one write per kept entry at at, so the
 * plan says what happens to each.  0 or -ENOMEM. */
static int plan_entries(struct qc_image *img, struct qc_plan *p, enum qc_code code, struct buf *b,
			const size_t *starts, uint32_t n, uint64_t at, uint64_t nclusters)
{
	uint64_t cs = img->cluster_size;
	put(b, NULL, (size_t)(nclusters * cs - b->n));
	if (b->oom)
		return -ENOMEM;
	uint32_t k = 0;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (s->fix.verdict == QC_SNAP_DROPPED)
			continue;
		size_t e = k + 1 < n ? starts[k + 1] : (size_t)(nclusters * cs);
		char d[120];
		describe(s, d, sizeof(d));
		if (!qc_plan_add(p, QC_PH_NEW, at + starts[k], b->p + starts[k], e - starts[k], code,
				 "new snapshot table entry %u (was %u; %s): %s%s%.80s", k, i, d,
				 qc_snap_verdict_name(s->fix.verdict), s->fix.what[0] ? ": " : "",
				 s->fix.what))
			return -ENOMEM;
		k++;
	}
	return 0;
}

/* The dropped entries, each described, into out (cut at its size). */
static void describe_dropped(const struct qc_image *img, char *out, size_t size)
{
	size_t dl = 0;
	for (uint32_t i = 0; i < img->nsnapshots && dl + 1 < size; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (s->fix.verdict != QC_SNAP_DROPPED)
			continue;
		char d[120];
		describe(s, d, sizeof(d));
		int w = snprintf(out + dl, size - dl, "; dropped snapshot %u (%s): %s", i, d, s->fix.what);
		dl += w > 0 ? (size_t)w : 0;
	}
}

/* The header switch to the new table of n entries at at (filed under
 * switch_code); from as for plan_rewrite.  0 or -ENOMEM. */
static int plan_table_switch(const struct qc_image *img, struct qc_plan *p, enum qc_code switch_code,
			     const struct qc_image *from, uint32_t n, uint64_t at)
{
	uint8_t sw[12];
	qc_put_be32(sw, n);
	qc_put_be64(sw + 4, n ? at : 0);
	char dropped[160] = "";
	describe_dropped(img, dropped, sizeof(dropped));
	const struct qc_header *was = from ? &from->h : &img->h;
	char found[120] = "";
	if (from)
		snprintf(found, sizeof(found), " (the lost table found at 0x%" PRIx64 ", %" PRIu32 " entries, rewritten with its entries fixed)",
			 img->h.snapshots_offset, img->h.nb_snapshots);
	if (!qc_plan_add(p, QC_PH_SWITCH, 60, sw, sizeof(sw), switch_code,
			 "header: nb_snapshots %" PRIu32 " -> %" PRIu32 ", snapshots_offset 0x%" PRIx64 " -> 0x%" PRIx64 "%s%s",
			 was->nb_snapshots, n, was->snapshots_offset, n ? at : 0, found, dropped))
		return -ENOMEM;
	return 0;
}

/*
 * The new table past the end of the file with every entry as its fix says,
 * its refcounts, and the header switch (filed under switch_code; the
 * entries under code).  from: the image whose header the switch replaces
 * when that is not img's (a re-linked table, see
 * qc_plan_snapshot_relinked).  1, or 0 when left, or -errno.
 */
static int plan_rewrite(struct qc_image *img, struct qc_plan *p, enum qc_code code,
			enum qc_code switch_code, const struct qc_image *from)
{
	uint64_t cs = img->cluster_size;
	struct buf b = { 0 };
	uint32_t n = 0;
	/* entry k of the new table starts at starts[k] */
	size_t *starts = calloc(img->nsnapshots + 1, sizeof(size_t));
	if (!starts)
		return -ENOMEM;
	int r = serialize_kept(img, p, code, &b, starts, &n);
	if (r <= 0)
		goto out;
	uint64_t first = (img->file_size + cs - 1) >> img->cluster_bits;
	if (qc_cm_end(&img->cmap) > first)
		first = qc_cm_end(&img->cmap);
	first = sub_byte_align(img, first);
	uint64_t at = first << img->cluster_bits;
	uint64_t nclusters = (b.n + cs - 1) / cs;
	if (n) {
		r = plan_entries(img, p, code, &b, starts, n, at, nclusters);
		if (!r)
			r = plan_new_refcounts(img, p, first, nclusters, code);
		if (r)
			goto out;
	}
	r = plan_table_switch(img, p, switch_code, from, n, at);
	if (!r)
		r = 1;
out:
	free(starts);
	free(b.p);
	return r;
}

int qc_plan_snapshot_table(struct qc_image *img, const struct qc_repair_opts *o, struct qc_plan *p)
{
	const struct qc_snap_plan *sp = &img->snapfix;
	if (o->leaks_only)
		return 0;
	if (empty_offset_bad(img))
		return plan_empty_offset(img, p);
	if (!sp->decided)
		return 0;
	if (sp->refused) {
		qc_plan_leave(p, (enum qc_code)sp->why_code, 64, "%s", sp->why);
		return 0;
	}
	if (sp->relink) {
		/* the table is where it is: only the header changes */
		uint8_t sw[12];
		qc_put_be32(sw, sp->relink_count);
		qc_put_be64(sw + 4, sp->relink_offset);
		if (!qc_plan_add(p, QC_PH_SWITCH, 60, sw, sizeof(sw), table_code(img, -1), "header: %s",
				 sp->why))
			return -ENOMEM;
		return 1;
	}
	list_left(img, p);
	if (!sp->rewrite)
		return 0;
	return plan_rewrite(img, p, table_code(img, -1), table_code(img, -1), NULL);
}

int qc_plan_snapshot_relinked(struct qc_image *after, const struct qc_image *img0, struct qc_plan *p)
{
	const struct qc_snap_plan *sp = &after->snapfix;
	if (!img0->snapfix.relink || !sp->decided || !sp->rewrite || sp->refused || sp->relink)
		return 0;
	/* the re-link's header switch, which the rewrite's replaces */
	size_t k = p->n;
	while (k > 0 && !(p->w[k - 1].phase == QC_PH_SWITCH && p->w[k - 1].offset == 60))
		k--;
	if (!k)
		return 0;
	enum qc_code lost = p->w[k - 1].code;
	list_left(after, p);
	int r = plan_rewrite(after, p, table_code(after, -1), lost, img0);
	if (r <= 0)
		return r; /* not rewritten: the re-link stands */
	qc_plan_drop_data(p, &p->w[k - 1]);
	memmove(&p->w[k - 1], &p->w[k], (p->n - k) * sizeof(p->w[0]));
	p->n--;
	return 1;
}
