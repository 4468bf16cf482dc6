/*
 * snapfix.c - pass 11: what a repair would do with each snapshot entry
 * (doc/repair.md "Snapshot tables").  Runs after the walk, so it can use
 * what the walk proved: which L1 entries map which guest clusters, which
 * clusters other structures own.  It only decides; repair/snaptable.c
 * writes the table it describes, and the check and info reports show the
 * verdict of every entry (kept, fixed, recovered, dropped, left).
 *
 * Rules (each from evidence the image holds, never from a message):
 *  - an empty, duplicate or lost ID gets a fresh one (highest numeric ID
 *    + 1, as QEMU picks them); a lost name becomes "lost-<new ID>";
 *  - lengths the resynchronised parse corrected (snapshots.c) are written
 *    as parsed; extra data over 1024 bytes or under 16 (version 3) is
 *    rewritten with the fields QEMU knows (24 bytes);
 *  - vm_state_size: the value (64-bit, else 32-bit) whose extent the
 *    snapshot's L1 really maps; else the mapped extent itself; else 0
 *    (the VM state is dropped, the disk kept); both fields then agree;
 *  - a VM state cluster on metadata: the VM state is dropped and the L1
 *    cut to the disk's entries (the authoritative owner keeps the cluster);
 *  - l1_size below the disk size: raised when the L1's own clusters hold
 *    the missing entries (a non-zero one proves it; zeros change nothing a
 *    guest reads), else disk_size lowered to what the L1 maps;
 *  - nb_snapshots too large: the entries that parse.
 * A lost table (offset zero, unaligned, past EOF, on another structure),
 * entries lost mid-table, or an entry whose L1 pointer is bad are left
 * with the reason: the scan that would find them is not in this version.
 *
 * Relies on: snapshots.c (parsed entries, resynchronised lengths, the
 * problem records with loc.snapshot), tables.c (l1_usable, contested
 * clusters), vmstate.c (its codes), the bounded reader for every byte.
 */
#include "check.h"
#include "snapscan.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_overlap(enum qc_code c);

/* The scan of the leaked clusters, made once and only when needed. */
struct fixctx {
	struct qc_image *img;
	struct qc_snapscan sc;
	bool scanned;
	bool *shares;   /* per entry: its L1 range meets another entry's */
};

static struct qc_snapscan *scan(struct fixctx *x)
{
	if (!x->scanned) {
		x->scanned = true;
		qc_snapscan_init(&x->sc, x->img);
	}
	return x->sc.ok ? &x->sc : NULL;
}
static void relayout(struct qc_image *img, uint32_t i, struct qc_snapshot *s);
static bool l1_short(const struct qc_image *img, const struct qc_snap_fix *f, bool vm);

/* Index the problem records by snapshot (counting sort), so that asking
 * about one entry costs its own records, not the whole list. */
static void index_problems(struct qc_image *img)
{
	struct qc_snap_plan *sp = &img->snapfix;
	const struct qc_problems *ps = &img->problems;
	uint32_t n = img->nsnapshots;
	uint32_t *start = calloc((size_t)n + 1, sizeof(uint32_t));
	uint32_t *idx = calloc(ps->n ? ps->n : 1, sizeof(uint32_t));
	if (!start || !idx || ps->n > UINT32_MAX) {
		free(start);
		free(idx);
		return; /* has() falls back to the whole list */
	}
	for (size_t k = 0; k < ps->n; k++) {
		int32_t s = ps->v[k].loc.snapshot;
		if (s >= 0 && (uint32_t)s < n)
			start[s + 1]++;
	}
	for (uint32_t i = 0; i < n; i++)
		start[i + 1] += start[i];
	/* fill: start[s] walks to the end of run s (= the start of run s+1) */
	for (size_t k = 0; k < ps->n; k++) {
		int32_t s = ps->v[k].loc.snapshot;
		if (s >= 0 && (uint32_t)s < n)
			idx[start[s]++] = (uint32_t)k;
	}
	for (uint32_t i = n; i > 0; i--)
		start[i] = start[i - 1];
	start[0] = 0;
	sp->by_snap_start = start;
	sp->by_snap = idx;
}

static void unindex_problems(struct qc_image *img)
{
	free(img->snapfix.by_snap_start);
	free(img->snapfix.by_snap);
	img->snapfix.by_snap_start = img->snapfix.by_snap = NULL;
}

/* Calls f on every problem record of snapshot i until it returns true. */
static bool any_record(const struct qc_image *img, int32_t i,
		       bool (*f)(const struct qc_problem *, const void *), const void *ctx)
{
	const struct qc_problems *ps = &img->problems;
	const struct qc_snap_plan *sp = &img->snapfix;
	if (sp->by_snap_start && i >= 0 && (uint32_t)i < img->nsnapshots) {
		for (uint32_t k = sp->by_snap_start[i]; k < sp->by_snap_start[i + 1]; k++)
			if (f(&ps->v[sp->by_snap[k]], ctx))
				return true;
		return false;
	}
	for (size_t k = 0; k < ps->n; k++)
		if (ps->v[k].loc.snapshot == i && f(&ps->v[k], ctx))
			return true;
	return false;
}

static bool is_code(const struct qc_problem *p, const void *ctx)
{
	return p->code == *(const enum qc_code *)ctx;
}

/* Problem records kept for entry i with code c. */
static bool has(const struct qc_image *img, int32_t i, enum qc_code c)
{
	if (!img->problems.per_code[c])
		return false;
	return any_record(img, i, is_code, &c);
}

static void refuse(struct qc_snap_plan *sp, enum qc_code c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void refuse(struct qc_snap_plan *sp, enum qc_code c, const char *fmt, ...)
{
	if (sp->refused)
		return;
	sp->refused = true;
	sp->why_code = (int)c;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sp->why, sizeof(sp->why), fmt, ap);
	va_end(ap);
}

static void note(struct qc_snap_fix *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct qc_snap_fix *f, const char *fmt, ...)
{
	size_t n = strlen(f->what);
	if (n + 3 >= sizeof(f->what))
		return;
	if (n) {
		memcpy(f->what + n, "; ", 3);
		n += 2;
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->what + n, sizeof(f->what) - n, fmt, ap);
	va_end(ap);
}

static void set_verdict(struct qc_snap_fix *f, enum qc_snap_verdict v)
{
	if (v > f->verdict)
		f->verdict = v;
}

static uint64_t size_to_l1(const struct qc_image *img, uint64_t size)
{
	unsigned shift = qc_l1_shift(img);
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* Is an L2 entry mapped (as tables.c counts vm_state clusters)? */
static bool l2_mapped(const struct qc_image *img, const uint8_t *p)
{
	uint64_t e = qc_be64_at(p);
	uint64_t bm = img->extended_l2 ? qc_be64_at(p + 8) : 0;
	return (e & (QC_OFLAG_COMPRESSED | QC_L2E_OFFSET_MASK)) ||
	       (!img->extended_l2 && (e & QC_OFLAG_ZERO)) || (img->extended_l2 && (bm >> 32)) ||
	       (img->data_file && (e & QC_OFLAG_COPIED));
}

/*
 * The VM state area of snapshot s as its L1 maps it: *prefix = bytes of
 * the contiguous mapped run from vm offset 0, *last = end of the last
 * mapped cluster.  Reads the L1 entries of the VM area and their L2
 * tables only.  False on a read error or bad pointer (nothing proven).
 */
static bool vm_extent(struct qc_image *img, const struct qc_snapshot *s, uint64_t *prefix,
		      uint64_t *last)
{
	*prefix = *last = 0;
	uint64_t first = size_to_l1(img, s->fix.disk_size);
	if (!s->l1_usable || s->fix.l1_size <= first)
		return true;
	uint64_t n = s->fix.l1_size - first;
	uint64_t cs = img->cluster_size;
	uint8_t *l1 = malloc((size_t)n * 8);
	uint8_t *l2 = malloc((size_t)cs);
	bool ok = l1 && l2 &&
		  qc_io_read(img->io, l1, (size_t)n * 8,
				  s->l1_table_offset + first * 8) >= 0;
	bool in_prefix = true;
	uint64_t span = img->l2_entries * cs;
	for (uint64_t i = 0; ok && i < n; i++) {
		uint64_t e = qc_be64_at(l1 + i * 8);
		uint64_t off = e & QC_L1E_OFFSET_MASK;
		if (!off || (off & (cs - 1)) || qc_past_eof(img, off, cs) ||
		    qc_io_read(img->io, l2, (size_t)cs, off) < 0) {
			in_prefix = false;
			continue;
		}
		for (uint64_t j = 0; j < img->l2_entries; j++) {
			bool m = l2_mapped(img, l2 + j * img->l2_entry_size);
			uint64_t end = i * span + (j + 1) * cs;
			if (m && in_prefix)
				*prefix = end;
			else if (!m)
				in_prefix = false;
			if (m)
				*last = end;
		}
	}
	free(l1);
	free(l2);
	return ok;
}

/* Does the extent the L1 maps prove a VM state of size v? */
static bool proves(const struct qc_image *img, uint64_t v, uint64_t prefix)
{
	return v && v <= prefix && v + img->cluster_size > prefix;
}

/* A VM state cluster of snapshot i that lies on another structure. */
static bool overlap_at_or_past(const struct qc_problem *p, const void *ctx)
{
	uint64_t vm_start = *(const uint64_t *)ctx;
	return is_overlap(p->code) && p->loc.guest_offset != QC_NO_OFFSET &&
	       p->loc.guest_offset >= vm_start;
}

static bool vm_on_metadata(const struct qc_image *img, int32_t i, const struct qc_snapshot *s)
{
	unsigned shift = qc_l1_shift(img);
	if (s->vm_first_l1_index > (UINT64_MAX >> shift))
		return false;
	uint64_t vm_start = s->vm_first_l1_index << shift;
	return any_record(img, i, overlap_at_or_past, &vm_start);
}

static void decide_vmstate(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool on_meta = vm_on_metadata(img, i, s);
	uint64_t first = size_to_l1(img, f->disk_size);
	bool mismatch = has(img, i, QC_P_VMSTATE_SIZE_MISMATCH);
	bool bad = has(img, i, QC_P_VMSTATE_BEYOND_L1) || has(img, i, QC_P_VMSTATE_HOLE) ||
		   l1_short(img, f, true);
	if (!on_meta && !mismatch && !bad)
		return;
	if (on_meta) {
		f->vm_state_size = 0;
		f->vm_dropped = s->vm_state_size != 0;
		if (f->l1_size > first)
			f->l1_size = (uint32_t)first;
		note(f, "VM state dropped: a cluster of it lies on another structure; l1_size %u -> %u (the disk's entries)",
		     s->l1_size, f->l1_size);
		set_verdict(f, QC_SNAP_FIXED);
		return;
	}
	uint64_t prefix = 0, last = 0;
	if (!vm_extent(img, s, &prefix, &last)) {
		set_verdict(f, QC_SNAP_LEFT);
		note(f, "the VM state's L1/L2 tables cannot be read: vm_state_size not changed");
		return;
	}
	uint64_t cur = f->vm_state_size, v;
	const char *how;
	if (proves(img, cur, prefix)) {
		v = cur;
		how = "the size the mapped clusters prove";
	} else if (s->has_vm_state_size_large && proves(img, s->vm_state_size_large, prefix)) {
		v = s->vm_state_size_large;
		how = "the 64-bit field, which the mapped clusters prove";
	} else if (proves(img, s->vm_state_size32, prefix)) {
		v = s->vm_state_size32;
		how = "the 32-bit field, which the mapped clusters prove";
	} else if (prefix) {
		v = prefix;
		how = "the extent its L1 maps without a hole";
	} else {
		v = 0;
		how = "nothing is mapped for it";
	}
	f->vm_state_size = v;
	uint64_t want32 = v > UINT32_MAX ? 0 : v;
	if (v == cur && s->vm_state_size32 == want32 &&
	    (!s->has_vm_state_size_large || s->vm_state_size_large == v))
		return;
	set_verdict(f, QC_SNAP_FIXED);
	if (v == 0 && cur) {
		f->vm_dropped = true;
		note(f, "VM state dropped (vm_state_size %" PRIu64 " -> 0: %s); the disk content is kept",
		     cur, how);
	} else if (v != cur) {
		note(f, "vm_state_size %" PRIu64 " -> %" PRIu64 " (%s)", cur, v, how);
	} else {
		note(f, "32-bit vm_state_size %u -> %" PRIu64 " (agrees with vm_state_size_large)",
		     s->vm_state_size32, want32);
	}
}

/*
 * Entries [from, to) read from the L1's own clusters, when they lie there
 * (the clusters of its l1_size entries, at least one, owned by nothing
 * else): *nonzero says one holds a pointer; false when they do not lie
 * there or one is not a plausible L2 pointer.
 */
static bool l1_tail(struct qc_image *img, const struct qc_snapshot *s, uint64_t from, uint64_t to,
		    bool *nonzero)
{
	uint64_t cs = img->cluster_size;
	*nonzero = false;
	if (to <= from || to > QC_MAX_L1_SIZE / 8)
		return false;
	uint64_t have = ((uint64_t)s->l1_size * 8 + cs - 1) / cs;
	if (!have)
		have = 1;
	if (!s->l1_table_offset || (s->l1_table_offset & (cs - 1)) || to * 8 > have * cs ||
	    qc_past_eof(img, s->l1_table_offset, to * 8) ||
	    qc_contested(img, s->l1_table_offset, have * cs))
		return false;
	uint64_t first = s->l1_table_offset >> img->cluster_bits;
	for (uint64_t c = first; c < first + have && c < img->cmap.nclusters; c++) {
		enum qc_owner o = qc_cm_owner(&img->cmap, c);
		if (o != QC_OWN_FREE && o != QC_OWN_SNAPSHOT_L1)
			return false;
	}
	uint64_t n = to - from;
	uint8_t *b = malloc((size_t)n * 8);
	bool ok = b && qc_io_read(img->io, b, (size_t)n * 8, s->l1_table_offset + from * 8) >= 0;
	for (uint64_t k = 0; ok && k < n; k++) {
		uint64_t e = qc_be64_at(b + k * 8), off = e & QC_L1E_OFFSET_MASK;
		if (!e)
			continue;
		*nonzero = true;
		if ((e & QC_L1E_RESERVED_MASK) || !off || (off & (cs - 1)) || qc_past_eof(img, off, cs))
			ok = false;
	}
	free(b);
	return ok;
}

/*
 * l1_size too small for disk_size (and its VM state): raise it when the
 * L1's clusters hold the missing entries and one of them is a pointer
 * (QEMU wrote them), else fix disk_size from what the L1 maps.
 */
/* Would the entry, with the values decided so far, still be found with
 * an l1_size too small for its disk, or for its VM state?  (A rewritten
 * entry must not carry a finding the next check would fix again.) */
static bool l1_short(const struct qc_image *img, const struct qc_snap_fix *f, bool vm)
{
	if (f->verdict != QC_SNAP_FIXED && f->verdict != QC_SNAP_RECOVERED)
		return false;
	uint64_t need = size_to_l1(img, f->disk_size);
	if (vm && f->vm_state_size)
		need += size_to_l1(img, f->vm_state_size);
	return need > f->l1_size || need < size_to_l1(img, f->disk_size);
}

static void decide_l1_size(struct qc_image *img, int32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool small = has(img, i, QC_P_SNAPSHOT_L1_TOO_SMALL) || l1_short(img, f, false);
	bool beyond = has(img, i, QC_P_VMSTATE_BEYOND_L1) || l1_short(img, f, true);
	if (!small && !beyond)
		return;
	unsigned shift = qc_l1_shift(img);
	uint64_t need = size_to_l1(img, f->disk_size);
	uint64_t need_vm = need;
	if (f->vm_state_size && (f->vm_state_size >> shift) < QC_MAX_L1_SIZE / 8)
		need_vm = need + size_to_l1(img, f->vm_state_size);
	bool nz = false;
	/* the disk and its VM state, when the entries prove both */
	if (need_vm > s->l1_size && l1_tail(img, s, s->l1_size, need_vm, &nz) && nz) {
		set_verdict(f, QC_SNAP_FIXED);
		f->l1_size = (uint32_t)need_vm;
		note(f, "l1_size %u -> %" PRIu64 " (its L1 cluster holds the missing entries)", s->l1_size,
		     need_vm);
		return;
	}
	if (!small)
		return; /* the VM state's size is the suspect: decide_vmstate */
	uint64_t hs_need = size_to_l1(img, img->h.size);
	bool tail = l1_tail(img, s, s->l1_size, need, &nz);
	set_verdict(f, QC_SNAP_FIXED);
	if (tail && nz) {
		f->l1_size = (uint32_t)need;
		note(f, "l1_size %u -> %" PRIu64 " (its L1 cluster holds the missing entries)", s->l1_size, need);
	} else if (hs_need <= s->l1_size && s->has_disk_size && f->disk_size != img->h.size) {
		note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (the image's size, which its %u L1 entries map)",
		     f->disk_size, img->h.size, s->l1_size);
		f->disk_size = img->h.size;
	} else if (tail) {
		f->l1_size = (uint32_t)need;
		note(f, "l1_size %u -> %" PRIu64 " (the added entries are zero: nothing a guest reads changes)",
		     s->l1_size, need);
	} else {
		uint64_t d = (uint64_t)s->l1_size << shift;
		note(f, "disk_size %" PRIu64 " -> %" PRIu64 " (what its %u L1 entries map)", f->disk_size, d,
		     s->l1_size);
		f->disk_size = d;
	}
}

/* The entry's L1 pointer cannot be right: unaligned, 0, past EOF, too
 * large, or on another L1 table (tables.c then does not walk it). */
static bool l1_impossible(const struct qc_image *img, int32_t i)
{
	return has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
	       has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) || has(img, i, QC_P_SNAPSHOT_L1_PAST_EOF) ||
	       !img->snapshots[i].l1_usable;
}

static unsigned popcount64(uint64_t v)
{
	unsigned n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

/*
 * The entry's L1 pointer is bad (impossible, or on another structure):
 * look for its table among the leaked clusters.  One candidate: recovered.
 * Several: the one a single flipped bit away, if exactly one is.  None:
 * dropped when the pointer was impossible (what it names is gone), else
 * left.  False when the L1 pointer is not in doubt.
 */
static bool decide_l1(struct fixctx *x, int32_t i, struct qc_snapshot *s)
{
	struct qc_image *img = x->img;
	struct qc_snap_fix *f = &s->fix;
	bool impossible = l1_impossible(img, i);
	/* usable but on a structure whose own chain owns the cluster */
	bool contested = false;
	if (s->l1_size && s->l1_usable &&
	    qc_contested(img, s->l1_table_offset, (uint64_t)s->l1_size * 8)) {
		uint64_t cl = s->l1_table_offset >> img->cluster_bits;
		enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
		contested = o == QC_OWN_HEADER || o == QC_OWN_L1 || o == QC_OWN_REFTABLE ||
			    o == QC_OWN_REFBLOCK || o == QC_OWN_SNAPSHOT_TABLE || o == QC_OWN_BITMAP_DIR ||
			    o == QC_OWN_BITMAP_TABLE || o == QC_OWN_LUKS;
	}
	if (x->shares && x->shares[i] && !has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) &&
	    !has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) && !has(img, i, QC_P_SNAPSHOT_L1_PAST_EOF)) {
		/* two entries name one L1 table: which pointer is wrong is a guess */
		f->verdict = QC_SNAP_LEFT;
		note(f, "its L1 table at 0x%" PRIx64 " is also another snapshot's: which pointer is wrong is a guess",
		     s->l1_table_offset);
		return true;
	}
	if (!impossible && !contested)
		return false;
	if (has(img, i, QC_P_SNAPSHOT_L1_TOO_LARGE)) {
		f->verdict = QC_SNAP_LEFT;
		note(f, "l1_size %u is beyond the format's limit: neither it nor the table can be trusted", s->l1_size);
		return true;
	}
	if (!s->l1_size) {
		/* no L1 at all: only QEMU's alignment rule is broken */
		f->l1_table_offset = 0;
		set_verdict(f, QC_SNAP_FIXED);
		note(f, "L1 table offset 0x%" PRIx64 " -> 0 (l1_size is 0)", s->l1_table_offset);
		return true;
	}
	struct qc_snapscan *sc = scan(x);
	uint64_t found[2] = { 0, 0 };
	unsigned n = sc ? qc_snapscan_find_l1(sc, s->l1_size, found) : 0;
	uint64_t mask = ~(img->cluster_size - 1);
	if (n >= 2) {
		/* a flipped bit: the candidate one bit from the pointer (its
		 * alignment bits aside) */
		unsigned near = 0;
		uint64_t pick = 0;
		for (unsigned k = 0; k < 2; k++)
			if (popcount64((found[k] ^ s->l1_table_offset) & mask & QC_L1E_OFFSET_MASK) <= 1) {
				near++;
				pick = found[k];
			}
		if (near == 1 && qc_snapscan_l1_shaped(sc, pick, s->l1_size)) {
			n = 1;
			found[0] = pick;
		}
	}
	if (n == 1) {
		f->verdict = QC_SNAP_RECOVERED;
		f->l1_table_offset = found[0];
		note(f, "L1 table found again at 0x%" PRIx64 " (was 0x%" PRIx64 "): the one leaked run whose entries point at L2 tables whose refcounts count this snapshot",
		     found[0], s->l1_table_offset);
	} else if (n >= 2) {
		f->verdict = QC_SNAP_LEFT;
		note(f, "its L1 pointer 0x%" PRIx64 " is bad and two leaked runs have the shape of its L1 table (0x%" PRIx64 ", 0x%" PRIx64 "): not guessed",
		     s->l1_table_offset, found[0], found[1]);
	} else if (impossible && sc) {
		f->verdict = QC_SNAP_DROPPED;
		note(f, "its L1 table is gone: the pointer 0x%" PRIx64 " cannot be right and no leaked cluster run holds a table of its %u entries; its clusters become leaks, freed as leaks are (--salvage-leaks copies their content out first)",
		     s->l1_table_offset, s->l1_size);
	} else {
		f->verdict = QC_SNAP_LEFT;
		note(f, "its L1 pointer 0x%" PRIx64 " is doubtful and no other leaked run has its table's shape%s",
		     s->l1_table_offset, sc ? "" : " (the refcounts could not be read to look)");
	}
	return true;
}

static bool numeric(const char *s, uint64_t *v)
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

struct l1span {
	uint64_t off, end;
	uint32_t idx;
};

static int cmp_span(const void *a, const void *b)
{
	const struct l1span *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Mark entries whose L1 ranges meet another entry's (sorted sweep). */
static void find_shared_l1(struct fixctx *x)
{
	struct qc_image *img = x->img;
	uint32_t n = img->nsnapshots;
	x->shares = calloc(n ? n : 1, sizeof(bool));
	struct l1span *v = calloc(n ? n : 1, sizeof(*v));
	if (!x->shares || !v) {
		free(v);
		return;
	}
	uint32_t m = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		uint64_t end;
		if (s->l1_size && qc_add(s->l1_table_offset, (uint64_t)s->l1_size * 8, &end))
			v[m++] = (struct l1span){ s->l1_table_offset, end, i };
	}
	qsort(v, m, sizeof(*v), cmp_span);
	for (uint32_t k = 1, far = 0; k < m; k++) {
		if (v[k].off < v[far].end) {
			x->shares[v[k].idx] = true;
			x->shares[v[far].idx] = true;
		}
		if (v[k].end > v[far].end)
			far = k;
	}
	free(v);
}

static void decide_entry(struct fixctx *x, int32_t i, struct qc_snapshot *s)
{
	struct qc_image *img = x->img;
	struct qc_snap_fix *f = &s->fix;
	f->l1_table_offset = s->l1_table_offset;
	f->l1_size = s->l1_size;
	f->disk_size = s->disk_size;
	f->vm_state_size = s->vm_state_size;
	const char *drop = img->opt.drop_snapshot;
	if (drop && ((s->id && !strcmp(s->id, drop)) || (s->name && !strcmp(s->name, drop)))) {
		f->verdict = QC_SNAP_DROPPED;
		note(f, "dropped on request (--drop-snapshot=%s)", drop);
		return;
	}
	if (!s->l1_table_offset && !s->l1_size && !s->id_size && !s->name_size && !s->date_sec &&
	    !s->date_nsec && !s->vm_clock_nsec && !s->vm_state_size32 && !s->extra_data_size) {
		/* a blank entry (its fixed part all zeros): nothing to keep */
		f->verdict = QC_SNAP_DROPPED;
		note(f, "the entry is blank (all zeros): there is no snapshot to keep");
		return;
	}
	if (decide_l1(x, i, s) && f->verdict != QC_SNAP_FIXED && f->verdict != QC_SNAP_RECOVERED)
		return;
	if (!s->id || !s->name) {
		set_verdict(f, QC_SNAP_FIXED);
		f->new_name = !s->name;
	}
	relayout(img, (uint32_t)i, s);
	if (has(img, i, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID)) {
		set_verdict(f, QC_SNAP_FIXED);
		if (s->id && s->name)
			note(f, "lengths rewritten as the entry's extent implies (extra %u, id %u, name %u)",
			     s->extra_data_size, s->id_size, s->name_size);
	}
	if (s->extra_data_size > QC_MAX_SNAPSHOT_EXTRA ||
	    has(img, i, QC_P_SNAPSHOT_EXTRA_DATA_TOO_LARGE)) {
		set_verdict(f, QC_SNAP_FIXED);
		note(f, "extra data rewritten with the 24 bytes QEMU knows");
	}
	if (has(img, i, QC_P_SNAPSHOT_EXTRA_DATA_TOO_SMALL) && !(f->relayout && f->extra_size >= 16)) {
		set_verdict(f, QC_SNAP_FIXED);
		if (size_to_l1(img, f->disk_size) > s->l1_size && s->l1_size)
			f->disk_size = (uint64_t)s->l1_size << qc_l1_shift(img);
		note(f, "extra data %u -> 24 bytes (disk_size %" PRIu64 ")", s->extra_data_size, f->disk_size);
	}
	decide_l1_size(img, i, s);
	decide_vmstate(img, i, s);
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
static void relayout(struct qc_image *img, uint32_t i, struct qc_snapshot *s)
{
	struct qc_snap_fix *f = &s->fix;
	bool empty = s->id && s->id_size == 0;
	bool odd = false;
	if (has(img, (int32_t)i, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID) || !s->id || !s->name)
		return;
	if (!empty) {
		bool num;
		odd = !id_bytes((const uint8_t *)s->id, s->id_size, &num) ||
		      !name_bytes((const uint8_t *)s->name, s->name_size);
	}
	bool flagged = false;
	for (size_t k = 0; k < qc_snapfix_ncodes && !flagged; k++)
		flagged = has(img, (int32_t)i, qc_snapfix_codes[k]);
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
		set_verdict(f, QC_SNAP_FIXED);
		if (empty)
			note(f, "empty ID: the entry's bytes hold ID '%s' before the name (id length 0 -> %u)",
			     f->rec_id, bid);
		else
			note(f, "extra data length %u -> %u: the ID and name are where %u bytes of extra data put them",
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
static void assign_ids(struct qc_image *img)
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
		if (numeric(id, &x) && x > max)
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
		set_verdict(f, QC_SNAP_FIXED);
		if (!id)
			note(f, "ID and name lost: new ID '%s', name 'lost-%s'", f->new_id, f->new_id);
		else
			note(f, "ID '%s' -> '%s' (%s)", id, f->new_id, dup[i] ? "a duplicate" : "empty");
	}
	free(dup);
}

/*
 * The codes the snapshot-table repair handles: it fixes them by rewriting
 * the table, or leaves them with its own reason (snap_plan.why / the
 * entry's fix.what).  ONE list, for the policy table to take over.
 */
const enum qc_code qc_snapfix_codes[] = {
	QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE, QC_P_SNAPSHOT_COUNT_TOO_LARGE,
	QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID, QC_P_SNAPSHOT_ENTRY_PAST_EOF,
	QC_P_SNAPSHOT_ENTRY_UNPARSABLE, QC_P_SNAPSHOT_EXTRA_DATA_TOO_LARGE,
	QC_P_SNAPSHOT_EXTRA_DATA_TOO_SMALL, QC_P_SNAPSHOT_ID_DUPLICATE, QC_P_SNAPSHOT_ID_EMPTY,
	QC_P_SNAPSHOT_L1_OFFSET_INVALID, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED,
	QC_P_SNAPSHOT_L1_PAST_EOF, QC_P_SNAPSHOT_L1_TOO_LARGE, QC_P_SNAPSHOT_L1_TOO_SMALL,
	QC_P_SNAPSHOT_TABLE_OFFSET_INVALID, QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED,
	QC_P_SNAPSHOT_TABLE_PAST_EOF, QC_P_SNAPSHOT_TABLE_TOO_LARGE,
	QC_P_VMSTATE_BEYOND_L1, QC_P_VMSTATE_HOLE, QC_P_VMSTATE_SIZE_MISMATCH,
};
const size_t qc_snapfix_ncodes = sizeof(qc_snapfix_codes) / sizeof(qc_snapfix_codes[0]);

bool qc_snapfix_handles(enum qc_code c)
{
	for (size_t k = 0; k < qc_snapfix_ncodes; k++)
		if (qc_snapfix_codes[k] == c)
			return true;
	return false;
}

static bool is_overlap(enum qc_code c)
{
	return c == QC_P_OVERLAP_DATA_COMPRESSED || c == QC_P_OVERLAP_DATA_METADATA ||
	       c == QC_P_OVERLAP_METADATA;
}

/* Entry verdicts need every record of the codes they read. */
static bool records_complete(const struct qc_image *img)
{
	for (int c = 0; c < QC_P_COUNT; c++)
		if ((qc_snapfix_handles((enum qc_code)c) || is_overlap((enum qc_code)c)) &&
		    img->problems.per_code[c] > QC_MAX_RECORDS_PER_CODE)
			return false;
	return true;
}

/* The table lost (location impossible or on another structure): find it
 * among the leaked clusters and re-link the best candidate. */
static void find_table(struct fixctx *x, enum qc_code c)
{
	struct qc_image *img = x->img;
	struct qc_snap_plan *sp = &img->snapfix;
	struct qc_snapscan *sc = scan(x);
	struct qc_snapscan_table t[2];
	unsigned n = sc ? qc_snapscan_find_table(sc, 0, t) : 0;
	if (n == 1) {
		sp->relink = true;
		sp->relink_offset = t[0].offset;
		sp->relink_count = t[0].count;
		snprintf(sp->why, sizeof(sp->why),
			 "re-link the snapshot table: %u entries found at 0x%" PRIx64 " among the leaked clusters (it explains %" PRIu64 " of them); header 0x%" PRIx64 " / %u -> 0x%" PRIx64 " / %u",
			 t[0].count, t[0].offset, t[0].score, img->h.snapshots_offset, img->h.nb_snapshots,
			 t[0].offset, t[0].count);
	} else if (n == 2) {
		refuse(sp, c,
		       "the snapshot table is lost and two leaked tables explain %" PRIu64 " leaked clusters each: 0x%" PRIx64 " (%u entries) and 0x%" PRIx64 " (%u entries); not guessed",
		       t[0].score, t[0].offset, t[0].count, t[1].offset, t[1].count);
	} else {
		refuse(sp, c,
		       "the snapshot table is lost and no leaked cluster holds entries whose L1 tables are found%s",
		       sc ? "" : " (the refcounts could not be read to look)");
	}
}

/* Entries past the counted ones (nb_snapshots too small): plausible
 * entries right after the table whose L1 tables are among the leaks. */
static void find_tail(struct fixctx *x)
{
	struct qc_image *img = x->img;
	struct qc_snap_plan *sp = &img->snapfix;
	if (!img->problems.per_code[QC_P_REFCOUNT_LEAK] || !img->snapshot_table_ok ||
	    img->nsnapshots != img->h.nb_snapshots || img->nsnapshots >= QC_MAX_SNAPSHOTS)
		return;
	uint64_t cs = img->cluster_size;
	uint64_t start = img->h.snapshots_offset + ((img->snapshot_table_size + 7) & ~UINT64_C(7));
	uint64_t end = (start + cs - 1) & ~(cs - 1);
	if (start == end)
		end += cs;
	struct qc_snapscan *sc = NULL;
	/* the rest of the table's last cluster, then leaked clusters */
	while (end < img->file_size && end - start < QC_MAX_SNAPSHOTS_SIZE) {
		if (!sc && !(sc = scan(x)))
			return;
		if (!qc_snapscan_leaked(sc, end, 1))
			break;
		end += cs;
	}
	if (end > img->file_size)
		end = img->file_size;
	if (end <= start + 40)
		return;
	if (!sc && !(sc = scan(x)))
		return;
	uint8_t *b = malloc((size_t)(end - start));
	uint64_t bytes = 0, l1c = 0;
	uint32_t n = 0;
	if (b && qc_io_read(img->io, b, (size_t)(end - start), start) >= 0)
		n = qc_snapscan_entries(sc, b, end - start, QC_MAX_SNAPSHOTS - img->nsnapshots, &bytes, &l1c);
	free(b);
	if (!n)
		return;
	sp->tail_offset = start;
	sp->tail_bytes = bytes;
	sp->tail_count = n;
	snprintf(sp->why, sizeof(sp->why),
		 "nb_snapshots %u -> %u: %u more entr%s follow the counted ones at 0x%" PRIx64 ", with %" PRIu64 " L1 cluster(s) among the leaks",
		 img->h.nb_snapshots, img->h.nb_snapshots + n, n, n == 1 ? "y" : "ies", start, l1c);
}

void qc_pass_snapfix(struct qc_image *img)
{
	struct qc_snap_plan *sp = &img->snapfix;
	memset(sp, 0, sizeof(*sp));
	if (!img->geometry_ok || img->aborted || !img->is_qcow2)
		return;
	sp->decided = true;
	const struct qc_problems *ps = &img->problems;
	struct fixctx x = { .img = img };
	if (img->h.nb_snapshots == 0) {
		/* entries behind a zero count: only with leaks to explain */
		uint64_t off = img->h.snapshots_offset;
		if (off && !(off & (img->cluster_size - 1)) && off < img->file_size) {
			find_tail(&x);
			if (sp->tail_count) {
				sp->relink = true;
				sp->relink_offset = off;
				sp->relink_count = sp->count = sp->tail_count;
			}
		}
		qc_snapscan_free(&x.sc);
		return;
	}
	static const enum qc_code table_lost[] = {
		QC_P_SNAPSHOT_TABLE_OFFSET_INVALID, QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED,
		QC_P_SNAPSHOT_TABLE_PAST_EOF,
	};
	static const enum qc_code entries_lost[] = {
		QC_P_SNAPSHOT_ENTRY_UNPARSABLE, QC_P_SNAPSHOT_ENTRY_PAST_EOF, QC_P_SNAPSHOT_TABLE_TOO_LARGE,
		QC_P_SNAPSHOT_WITH_DATA_FILE,
	};
	bool lost = false;
	enum qc_code lost_code = QC_P_SNAPSHOT_TABLE_OFFSET_INVALID;
	for (size_t k = 0; k < sizeof(table_lost) / sizeof(table_lost[0]); k++)
		if (ps->per_code[table_lost[k]]) {
			lost = true;
			lost_code = table_lost[k];
		}
	/* a table on another structure, or one whose first entry is garbage */
	if (!lost && img->snapshot_table_size &&
	    qc_contested(img, img->h.snapshots_offset, img->snapshot_table_size)) {
		lost = true;
		lost_code = QC_P_OVERLAP_METADATA;
	}
	if (!lost && !img->nsnapshots && ps->per_code[QC_P_SNAPSHOT_ENTRY_UNPARSABLE]) {
		lost = true;
		lost_code = QC_P_SNAPSHOT_ENTRY_UNPARSABLE;
	}
	if (lost) {
		find_table(&x, lost_code);
	} else {
		for (size_t k = 0; k < sizeof(entries_lost) / sizeof(entries_lost[0]); k++)
			if (ps->per_code[entries_lost[k]])
				refuse(sp, entries_lost[k],
				       "entries of the snapshot table are lost mid-table or cut by the end of the file; this version re-links whole tables only, so the table stays as it is");
	}
	if (!records_complete(img))
		refuse(sp, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID,
		       "too many snapshot findings to decide entry by entry");
	if (!sp->refused && !sp->relink) {
		find_shared_l1(&x);
		index_problems(img);
	}
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		struct qc_snapshot *s = &img->snapshots[i];
		memset(&s->fix, 0, sizeof(s->fix));
		if (sp->refused || sp->relink) {
			s->fix.verdict = QC_SNAP_LEFT;
			snprintf(s->fix.what, sizeof(s->fix.what), "%s", sp->refused ? sp->why
				 : "the header points elsewhere: the table found among the leaks replaces this one");
			continue;
		}
		decide_entry(&x, (int32_t)i, s);
	}
	if (sp->refused || sp->relink || img->aborted)
		goto out;
	assign_ids(img);
	uint32_t kept = 0;
	bool change = ps->per_code[QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE] ||
		      ps->per_code[QC_P_SNAPSHOT_COUNT_TOO_LARGE];
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		enum qc_snap_verdict v = img->snapshots[i].fix.verdict;
		kept += v != QC_SNAP_DROPPED;
		change |= v == QC_SNAP_FIXED || v == QC_SNAP_RECOVERED || v == QC_SNAP_DROPPED;
	}
	if (!change)
		find_tail(&x);
	sp->count = kept + sp->tail_count;
	if (!change && sp->tail_count) {
		sp->relink = true;
		sp->relink_offset = img->h.snapshots_offset;
		sp->relink_count = sp->count;
	}
	sp->rewrite = change;
	if (change && img->h.nb_snapshots != sp->count)
		snprintf(sp->why, sizeof(sp->why), "nb_snapshots %u -> %u (the entries that parse)",
			 img->h.nb_snapshots, sp->count);
out:
	unindex_problems(img);
	free(x.shares);
	qc_snapscan_free(&x.sc);
}

const char *qc_snap_verdict_name(enum qc_snap_verdict v)
{
	static const char *const n[] = { "kept", "fixed", "recovered", "dropped", "left" };
	return (unsigned)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}
