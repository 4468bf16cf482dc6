/*
 * snapids.c - the ID, name and lengths of a snapshot entry a repair
 * rewrites (part of pass 11, snapfix.c; doc/repair.md "Snapshot tables"):
 * an empty ID or the last entry's lengths read back from the entry's own
 * bytes, and fresh IDs (highest numeric ID + 1, as QEMU picks them) for
 * empty, lost or duplicate ones.
 *
 * Relies on: snapshots.c (the parsed entries, their strings and extents)
 * and the bounded reader.
 */
#include "check.h"
#include "snapfix.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool qc_sf_numeric(const char *s, uint64_t *v)
{
	if (!s || !*s)
		return false;
	uint64_t x = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9' || x > UINT64_MAX / 10 - 1)
			return false;
		x = x * 10 + (uint64_t)(*p - '0');
	}
	*v = x;
	return true;
}

static bool id_bytes(const uint8_t *p, size_t n, bool *num)
{
	*num = n > 0;
	for (size_t k = 0; k < n; k++) {
		if (p[k] < 0x21 || p[k] > 0x7e)
			return false;
		*num &= p[k] >= '0' && p[k] <= '9';
	}
	return n > 0;
}

static bool name_bytes(const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k] < 0x20 || p[k] == 0x7f)
			return false;
	return true;
}

static bool zeros(const uint8_t *p, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (p[k])
			return false;
	return true;
}

/*
 * An entry whose strings are not strings where its lengths put them, or
 * whose ID is empty, when the parse could not resynchronise it against a
 * next entry (the last entry has none; an empty ID keeps the extent).
 * Look for the one change of ONE length that puts a numeric ID (as QEMU
 * writes them) and a name there, with only zero padding after them and
 * the next entry (if any) not overrun.  Empty ID: the ID length; odd
 * strings: the extra data length.  Among several, prefer 24 bytes of
 * extra data; a tie leaves the entry as parsed.
 */
void qc_sf_relayout(struct qc_image *img, uint32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool empty = s->id && s->id_size == 0;
	bool odd = false;
	if (qc_sf_has(img, (int32_t)i, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID) || !s->id || !s->name)
		return;
	if (!empty) {
		bool num;
		odd = !id_bytes((const uint8_t *)s->id, s->id_size, &num) ||
		      !name_bytes((const uint8_t *)s->name, s->name_size);
	}
	bool flagged = false;
	for (int k = 0; k < QC_P_COUNT && !flagged; k++)
		flagged = qc_snapfix_handles((enum qc_code)k) && qc_sf_has(img, (int32_t)i, (enum qc_code)k);
	if (!empty && !(odd && flagged))
		return; /* only an entry the check reports is changed */
	uint64_t limit = i + 1 < img->nsnapshots ? img->snapshots[i + 1].entry_offset
						  : s->entry_offset + 40 + QC_MAX_SNAPSHOT_EXTRA + 64 + s->name_size + 8;
	if (limit > img->file_size)
		limit = img->file_size;
	if (limit <= s->entry_offset + 40)
		return;
	size_t n = (size_t)(limit - s->entry_offset);
	uint8_t *b = malloc(n);
	if (!b || qc_io_read_full(img->io, b, n, s->entry_offset) < 0) {
		free(b);
		return;
	}
	uint32_t min_extra = img->h.version >= 3 ? 16 : 0;
	int best = -1, nbest = 0;
	uint32_t bx = 0, bid = 0;
	uint32_t x0 = empty ? s->extra_data_size : min_extra;
	uint32_t x1 = empty ? s->extra_data_size : QC_MAX_SNAPSHOT_EXTRA;
	for (uint32_t x = x0; x <= x1 && x <= QC_MAX_SNAPSHOT_EXTRA; x++) {
		for (uint32_t k = empty ? 1 : s->id_size; k <= (empty ? 64u : s->id_size); k++) {
			uint64_t used = 40 + (uint64_t)x + k + s->name_size;
			uint64_t end = (used + 7) & ~UINT64_C(7);
			if (used > n)
				break;
			bool num;
			if (!id_bytes(b + 40 + x, k, &num) || !num || !name_bytes(b + 40 + x + k, s->name_size))
				continue;
			if (!zeros(b + used, (size_t)((end < n ? end : n) - used)))
				continue;
			if (i + 1 < img->nsnapshots && end != n)
				continue; /* must end where the next entry starts */
			int score = 2 * (x == 24);
			if (score > best) {
				best = score;
				nbest = 1;
				bx = x;
				bid = k;
			} else if (score == best) {
				nbest++;
			}
		}
	}
	if (best >= 0 && nbest == 1) {
		f->relayout = true;
		f->extra_size = bx;
		f->id_size = (uint16_t)bid;
		f->name_size = s->name_size;
		memcpy(f->rec_id, b + 40 + bx, bid);
		f->rec_id[bid] = 0;
		if (bx >= 8)
			f->vm_state_size = qc_be64_at(b + 40);
		if (bx >= 16)
			f->disk_size = qc_be64_at(b + 48);
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		if (empty)
			qc_sf_note(f, "empty ID: the entry's bytes hold ID '%s' before the name (id length 0 -> %u)",
			     f->rec_id, bid);
		else
			qc_sf_note(f, "extra data length %u -> %u: the ID and name are where %u bytes of extra data put them",
			     s->extra_data_size, bx, bx);
	}
	free(b);
}

/* The ID an entry will have before fresh IDs are given. */
static const char *eff_id(const struct qc_snapshot *s)
{
	if (s->fix.relayout)
		return s->fix.rec_id;
	return s->id;
}

struct idref {
	const char *id;
	uint32_t idx;
};

static int cmp_idref(const void *a, const void *b)
{
	const struct idref *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	return c ? c : (x->idx < y->idx ? -1 : x->idx > y->idx);
}

/* Fresh IDs for kept entries whose ID is empty, lost or a duplicate of an
 * earlier entry's. */
void qc_sf_assign_ids(struct qc_image *img)
{
	uint64_t max = 0;
	uint32_t n = img->nsnapshots;
	struct idref *v = calloc(n ? n : 1, sizeof(*v));
	bool *dup = calloc(n ? n : 1, sizeof(bool));
	if (!v || !dup) {
		free(v);
		free(dup);
		qc_abort(img, "out of memory deciding snapshot IDs");
		return;
	}
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t x;
		const struct qc_snapshot *s = &img->snapshots[i];
		const char *id = eff_id(s);
		if (s->fix.verdict == QC_SNAP_DROPPED || !id || !*id)
			continue;
		if (qc_sf_numeric(id, &x) && x > max)
			max = x;
		v[m++] = (struct idref){ id, i };
	}
	qsort(v, m, sizeof(*v), cmp_idref);
	for (uint32_t k = 1; k < m; k++)
		if (!strcmp(v[k].id, v[k - 1].id))
			dup[v[k].idx] = true;
	free(v);
	for (uint32_t i = 0; i < n; i++) {
		struct qc_snapshot *s = &img->snapshots[i];
		struct qc_snap_fix *f = &s->fix;
		const char *id = eff_id(s);
		if (f->verdict == QC_SNAP_DROPPED || f->verdict == QC_SNAP_LEFT)
			continue;
		if (id && *id && !dup[i])
			continue;
		snprintf(f->new_id, sizeof(f->new_id), "%" PRIu64, ++max);
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		if (!id)
			qc_sf_note(f, "ID and name lost: new ID '%s', name 'lost-%s'", f->new_id, f->new_id);
		else
			qc_sf_note(f, "ID '%s' -> '%s' (%s)", id, f->new_id, dup[i] ? "a duplicate" : "empty");
	}
	free(dup);
}
