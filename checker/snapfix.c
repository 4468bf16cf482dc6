/*
 * snapfix.c - pass 11: what a repair would do with each snapshot entry
 * (doc/repair.md "Snapshot tables").  Runs after the walk, so it can use
 * what the walk proved: which L1 entries map which guest clusters, which
 * clusters other structures own.  It only decides; repair/snaptable.c
 * writes the table it describes, and the check and info reports show the
 * verdict of every entry (kept, fixed, recovered, dropped, left).
 *
 * This file decides the table (lost, re-linked, rewritten or left; the
 * count) and each entry's L1 pointer, blank entries and --drop-snapshot;
 * snapsizes.c the size fields (vm_state_size, l1_size, disk_size);
 * snapids.c the ID, name and lengths; snapscan.c finds what was lost.
 * Every rule takes evidence the image holds, never a message:
 *  - an L1 pointer that cannot be right (unaligned, 0, past EOF, on another
 *    L1 table) or lies on a structure whose chain owns the cluster: the
 *    one leaked run with an L1 table's shape (snapscan.c) -> recovered;
 *    several -> left, both named; none -> dropped (what it names is gone);
 *    two entries naming one L1 table -> both left (a guess either way);
 *    a pointer that names another kind of structure or a table of
 *    non-pointers -> recovered only with exactly one such leaked run;
 *    an L1 that lies only on the snapshot table itself, when the table is
 *    rewritten elsewhere anyway -> its pointer kept (the doubt goes with
 *    the table);
 *  - a table that is lost (offset 0, unaligned, past EOF, on another
 *    structure, no entry, no entry QEMU wrote: table_is_lost) -> with
 *    what the walk counted for it taken back, the leaked table
 *    explaining the most leaked clusters is re-linked; a tie is refused;
 *    none, with the table's clusters claimed
 *    besides only by what a pointer in a table names (an L2 table, a
 *    snapshot's L1, data) -> the table is taken where the header says;
 *  - nb_snapshots too large -> the entries that parse; too small -> the
 *    entries after the counted ones whose L1 tables are leaks;
 *  - entries lost mid-table or cut by the end of the file -> left.
 *
 * Relies on: snapshots.c (parsed entries, resynchronised lengths, the
 * problem records with loc.snapshot), tables.c (l1_usable, contested
 * clusters), vmstate.c (its codes), the bounded reader for every byte.
 */
#include "check.h"
#include "snapfix.h"
#include "snapscan.h"
#include "trust.h"
#include "../core/layout.h"
#include "../core/policy.h"
#include "../core/reader.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool qc_sf_is_overlap(enum qc_code c);

/* The scan of the leaked clusters, made once and only when needed. */
struct fixctx {
	struct qc_image *img;
	struct qc_snapscan sc;
	bool scanned;
	bool *shares;   /* per entry: its L1 range meets another entry's */
	bool table_moves; /* second pass: the table is rewritten elsewhere */
	bool redo_any;    /* first pass: some entry's doubt was the table alone */
	bool *redo;       /* per entry: its L1 was in doubt only for the table */
	uint8_t *rbstates; /* refblocks in contested clusters (trust.h) */
};

static struct qc_snapscan *scan(struct fixctx *x)
{
	if (!x->scanned) {
		x->scanned = true;
		qc_snapscan_init(&x->sc, x->img);
	}
	return x->sc.ok ? &x->sc : NULL;
}

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
		return; /* qc_sf_has() falls back to the whole list */
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
bool qc_sf_any_record(const struct qc_image *img, int32_t i,
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
bool qc_sf_has(const struct qc_image *img, int32_t i, enum qc_code c)
{
	if (!img->problems.per_code[c])
		return false;
	return qc_sf_any_record(img, i, is_code, &c);
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

void qc_sf_note(struct qc_snap_fix *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void qc_sf_note(struct qc_snap_fix *f, const char *fmt, ...)
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

void qc_sf_set_verdict(struct qc_snap_fix *f, enum qc_snap_verdict v)
{
	if (v > f->verdict)
		f->verdict = v;
}

uint64_t qc_sf_size_to_l1(const struct qc_image *img, uint64_t size)
{
	unsigned shift = qc_l1_shift(img);
	return (size >> shift) + ((size & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* The entry's L1 pointer cannot be right: unaligned, 0, past EOF, too
 * large, or on another L1 table (tables.c then does not walk it). */
static bool l1_impossible(const struct qc_image *img, int32_t i)
{
	return qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
	       qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) || qc_sf_has(img, i, QC_P_SNAPSHOT_L1_PAST_EOF) ||
	       !img->snapshots[i].l1_usable;
}

static unsigned popcount64(uint64_t v)
{
	unsigned n = 0;
	for (; v; v &= v - 1)
		n++;
	return n;
}

static bool l1_on_table(const struct qc_problem *p, const void *ctx)
{
	(void)ctx;
	if (!qc_sf_is_overlap(p->code))
		return false;
	enum qc_owner a = p->owner, b = p->other_owner;
	if (a != QC_OWN_SNAPSHOT_L1 && b != QC_OWN_SNAPSHOT_L1)
		return false;
	return !((a == QC_OWN_SNAPSHOT_L1 && b == QC_OWN_SNAPSHOT_TABLE) ||
		 (b == QC_OWN_SNAPSHOT_L1 && a == QC_OWN_SNAPSHOT_TABLE));
}

/* Entry i's L1 table is contested only by the snapshot table: every
 * overlap record of its L1 names the table as the other structure. */
static bool table_only(const struct qc_image *img, int32_t i)
{
	const struct qc_snapshot *s = &img->snapshots[i];
	uint64_t cl = s->l1_table_offset >> img->cluster_bits;
	if (cl >= img->cmap.nclusters || qc_cm_owner(&img->cmap, cl) != QC_OWN_SNAPSHOT_TABLE ||
	    img->problems.per_code[QC_P_OVERLAP_METADATA] > QC_MAX_RECORDS_PER_CODE ||
	    img->problems.per_code[QC_P_OVERLAP_DATA_METADATA] > QC_MAX_RECORDS_PER_CODE)
		return false;
	/* l1_on_table answers true for a record naming anything else */
	return !qc_sf_any_record(img, i, l1_on_table, NULL);
}

/* Entry s's usable L1 lies on a structure whose own chain owns the
 * cluster (header, active L1, refcounts, snapshot table, bitmaps, LUKS). */
static bool l1_contested(const struct fixctx *x, const struct qc_snapshot *s)
{
	const struct qc_image *img = x->img;
	if (!s->l1_size || !s->l1_usable ||
	    !qc_contested(img, s->l1_table_offset, (uint64_t)s->l1_size * 8))
		return false;
	uint64_t cl = s->l1_table_offset >> img->cluster_bits;
	enum qc_owner o = cl < img->cmap.nclusters ? qc_cm_owner(&img->cmap, cl) : QC_OWN_FREE;
	/* a "refblock" its content disproves is the refcount table's error
	 * (the rebuild drops it), not the chain that owns the cluster */
	if (o == QC_OWN_REFBLOCK && qc_refblock_disproved(img, x->rbstates, s->l1_table_offset))
		return false;
	return o == QC_OWN_HEADER || o == QC_OWN_L1 || o == QC_OWN_REFTABLE ||
	       o == QC_OWN_REFBLOCK || o == QC_OWN_SNAPSHOT_TABLE || o == QC_OWN_BITMAP_DIR ||
	       o == QC_OWN_BITMAP_TABLE || o == QC_OWN_LUKS;
}

/*
 * Entry s's usable L1 pointer is suspect though nothing proves it wrong:
 * the clusters it names are also claimed as another kind of structure (an
 * L2 table, a data, compressed or VM state cluster, the snapshot table),
 * or the table it names holds entries that are not L2 pointers (reserved
 * bits, unaligned, flags without an offset, past the end of the file).
 * Either claim may be the wrong one, so this is acted on only with the one
 * leaked run shaped like this snapshot's L1 table (decide_l1): the real
 * table, whose L2 tables' refcounts still count it.
 */
static bool l1_suspect(const struct qc_image *img, int32_t i, const struct qc_snapshot *s)
{
	static const enum qc_code entry_codes[] = {
		QC_P_L1_ENTRY_RESERVED, QC_P_L1_ENTRY_UNALIGNED, QC_P_L1_ENTRY_NO_OFFSET,
		QC_P_L1_L2_PAST_EOF,
	};
	if (!s->l1_size || !s->l1_usable)
		return false;
	for (size_t k = 0; k < sizeof(entry_codes) / sizeof(entry_codes[0]); k++)
		if (qc_sf_has(img, i, entry_codes[k]))
			return true;
	uint64_t off = s->l1_table_offset, end = off + (uint64_t)s->l1_size * 8;
	if (!qc_contested(img, off, end - off))
		return false;
	/* an overlap record on its L1's clusters between a snapshot L1 and
	 * another kind of structure (two L1s: leave_shared_l1) */
	const struct qc_problems *ps = &img->problems;
	uint64_t c0 = off >> img->cluster_bits, c1 = (end - 1) >> img->cluster_bits;
	for (size_t k = 0; k < ps->n; k++) {
		const struct qc_problem *r = &ps->v[k];
		uint64_t c = r->host_cluster != QC_NO_OFFSET ? r->host_cluster
							      : r->loc.offset >> img->cluster_bits;
		if (!qc_sf_is_overlap(r->code) || c < c0 || c > c1)
			continue;
		if ((r->owner == QC_OWN_SNAPSHOT_L1) != (r->other_owner == QC_OWN_SNAPSHOT_L1))
			return true;
	}
	return false;
}

/* Entry i shares its L1 table with another entry and its pointer is not
 * itself impossible: left, as which pointer is wrong is a guess. */
static bool leave_shared_l1(struct fixctx *x, int32_t i, struct qc_snapshot *s)
{
	struct qc_image *img = x->img;
	if (!x->shares || !x->shares[i] || qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
	    qc_sf_has(img, i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) || qc_sf_has(img, i, QC_P_SNAPSHOT_L1_PAST_EOF))
		return false;
	s->fix.verdict = QC_SNAP_LEFT;
	qc_sf_note(&s->fix, "its L1 table at 0x%" PRIx64 " is also another snapshot's: which pointer is wrong is a guess",
		   s->l1_table_offset);
	return true;
}

/* Leaked runs shaped like s's L1 table into found[] (at most two); of two,
 * the one a single flipped bit from the pointer (alignment bits aside)
 * when exactly one is.  The count; *scp gets the scan (NULL if none). */
static unsigned find_l1_candidates(struct fixctx *x, const struct qc_snapshot *s, uint64_t found[2],
				   struct qc_snapscan **scp)
{
	struct qc_snapscan *sc = scan(x);
	*scp = sc;
	unsigned n = sc ? qc_snapscan_find_l1(sc, s->l1_size, found) : 0;
	uint64_t mask = ~(x->img->cluster_size - 1);
	if (n < 2)
		return n;
	unsigned near = 0;
	uint64_t pick = 0;
	for (unsigned k = 0; k < 2; k++)
		if (popcount64((found[k] ^ s->l1_table_offset) & mask & QC_L1E_OFFSET_MASK) <= 1) {
			near++;
			pick = found[k];
		}
	if (near == 1 && qc_snapscan_l1_shaped(sc, pick, s->l1_size)) {
		found[0] = pick;
		return 1;
	}
	return n;
}

/* Entry s's verdict and note from the n candidates found for its L1. */
static void note_l1_verdict(struct qc_snapshot *s, unsigned n, const uint64_t found[2], bool impossible,
			    const struct qc_snapscan *sc)
{
	struct qc_snap_fix *f = &s->fix;
	if (n == 1) {
		f->verdict = QC_SNAP_RECOVERED;
		f->l1_table_offset = found[0];
		qc_sf_note(f, "L1 table found again at 0x%" PRIx64 " (was 0x%" PRIx64 "): the one leaked run whose entries point at L2 tables whose refcounts count this snapshot",
		     found[0], s->l1_table_offset);
	} else if (n >= 2) {
		f->verdict = QC_SNAP_LEFT;
		qc_sf_note(f, "its L1 pointer 0x%" PRIx64 " is bad and two leaked runs have the shape of its L1 table (0x%" PRIx64 ", 0x%" PRIx64 "): not guessed",
		     s->l1_table_offset, found[0], found[1]);
	} else if (impossible && sc) {
		f->verdict = QC_SNAP_DROPPED;
		qc_sf_note(f, "its L1 table is gone: the pointer 0x%" PRIx64 " cannot be right and no leaked cluster run holds a table of its %u entries; its clusters become leaks, freed as leaks are (--salvage-leaks copies their content out first)",
		     s->l1_table_offset, s->l1_size);
	} else {
		f->verdict = QC_SNAP_LEFT;
		qc_sf_note(f, "its L1 pointer 0x%" PRIx64 " is doubtful and no other leaked run has its table's shape%s",
		     s->l1_table_offset, sc ? "" : " (the refcounts could not be read to look)");
	}
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
	bool contested = l1_contested(x, s);
	if (leave_shared_l1(x, i, s))
		return true;
	if (!impossible && !contested) {
		/* only with the one leaked run shaped like its table */
		struct qc_snapscan *sc;
		uint64_t found[2] = { 0, 0 };
		if (!l1_suspect(img, i, s) || find_l1_candidates(x, s, found, &sc) != 1)
			return false;
		note_l1_verdict(s, 1, found, false, sc);
		return true;
	}
	if (qc_sf_decide_l1_too_large(img, i, s))
		return true;
	if (!s->l1_size) {
		/* no L1 at all: only QEMU's alignment rule is broken */
		f->l1_table_offset = 0;
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		qc_sf_note(f, "L1 table offset 0x%" PRIx64 " -> 0 (l1_size is 0)", s->l1_table_offset);
		return true;
	}
	struct qc_snapscan *sc;
	uint64_t found[2] = { 0, 0 };
	unsigned n = find_l1_candidates(x, s, found, &sc);
	if (n != 1 && !impossible && table_only(img, i)) {
		/* Its L1 lies only on the snapshot table.  When the table is
		 * rewritten elsewhere that doubt is gone (a second repair would
		 * keep the pointer): so keep it then; until then, left. */
		if (x->table_moves)
			return false;
		if (x->redo) {
			x->redo[i] = true;
			x->redo_any = true;
		}
	}
	note_l1_verdict(s, n, found, impossible, sc);
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
		/* a pointer that cannot be right names no table to share */
		if (qc_sf_has(img, (int32_t)i, QC_P_SNAPSHOT_L1_OFFSET_UNALIGNED) ||
		    qc_sf_has(img, (int32_t)i, QC_P_SNAPSHOT_L1_OFFSET_INVALID) ||
		    qc_sf_has(img, (int32_t)i, QC_P_SNAPSHOT_L1_PAST_EOF) ||
		    qc_sf_has(img, (int32_t)i, QC_P_SNAPSHOT_L1_TOO_LARGE))
			continue;
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
		qc_sf_note(f, "dropped on request (--drop-snapshot=%s)", drop);
		return;
	}
	if (!s->l1_table_offset && !s->l1_size && !s->id_size && !s->name_size && !s->date_sec &&
	    !s->date_nsec && !s->vm_clock_nsec && !s->vm_state_size32 && !s->extra_data_size) {
		/* a blank entry (its fixed part all zeros): nothing to keep */
		f->verdict = QC_SNAP_DROPPED;
		qc_sf_note(f, "the entry is blank (all zeros): there is no snapshot to keep");
		return;
	}
	if (decide_l1(x, i, s) && f->verdict != QC_SNAP_FIXED && f->verdict != QC_SNAP_RECOVERED)
		return;
	if (!s->id || !s->name) {
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		f->new_name = !s->name;
	}
	qc_sf_relayout(img, (uint32_t)i, s);
	if (qc_sf_has(img, i, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID)) {
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		if (s->id && s->name)
			qc_sf_note(f, "lengths rewritten as the entry's extent implies (extra %u, id %u, name %u)",
			     s->extra_data_size, s->id_size, s->name_size);
	}
	if (s->extra_data_size > QC_MAX_SNAPSHOT_EXTRA ||
	    qc_sf_has(img, i, QC_P_SNAPSHOT_EXTRA_DATA_TOO_LARGE)) {
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		qc_sf_note(f, "extra data rewritten with the 24 bytes QEMU knows");
	}
	/* (a length the parse found again already has its 16 bytes) */
	if (qc_sf_has(img, i, QC_P_SNAPSHOT_EXTRA_DATA_TOO_SMALL) && !(f->relayout && f->extra_size >= 16) &&
	    s->extra_data_size < 16) {
		qc_sf_set_verdict(f, QC_SNAP_FIXED);
		if (qc_sf_size_to_l1(img, f->disk_size) > s->l1_size && s->l1_size)
			f->disk_size = (uint64_t)s->l1_size << qc_l1_shift(img);
		qc_sf_note(f, "extra data %u -> 24 bytes (disk_size %" PRIu64 ")", s->extra_data_size, f->disk_size);
	}
	qc_sf_decide_disk_size(img, i, s);
	qc_sf_decide_l1_size(img, i, s);
	qc_sf_decide_vmstate(img, i, s);
}

/*
 * The codes the snapshot-table repair handles: those whose fixer in the
 * policy table (core/problems/policy.def) is the snapshot table.  It fixes
 * them by rewriting the table, or leaves them with its own reason
 * (snap_plan.why / the entry's fix.what).
 */
bool qc_snapfix_handles(enum qc_code c)
{
	return qc_policy(c)->fixer == QC_FIX_SNAPSHOT_TABLE;
}

bool qc_sf_is_overlap(enum qc_code c)
{
	return c == QC_P_OVERLAP_DATA_COMPRESSED || c == QC_P_OVERLAP_DATA_METADATA ||
	       c == QC_P_OVERLAP_METADATA;
}

/* Entry verdicts need every record of the codes they read. */
static bool records_complete(const struct qc_image *img)
{
	for (int c = 0; c < QC_P_COUNT; c++)
		if ((qc_snapfix_handles((enum qc_code)c) || qc_sf_is_overlap((enum qc_code)c)) &&
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
	/* a scan of its own: the header's table's claims taken back (its
	 * clusters may be a lost snapshot's L1 or L2 table) */
	struct qc_snapscan own;
	qc_snapscan_init_void(&own, img, img->h.snapshots_offset, img->snapshot_table_size);
	struct qc_snapscan *sc = own.ok ? &own : NULL;
	struct qc_snapscan_table t[2];
	unsigned n = sc ? qc_snapscan_find_table(sc, 0, t) : 0;
	qc_snapscan_free(&own);
	if (n == 1 && t[0].count < img->h.nb_snapshots) {
		/* re-linking it would drop the entries nb_snapshots promises
		 * past the ones found (found with 512-byte clusters: a table
		 * of ten re-linked as its first five, exit 0) */
		refuse(sp, c,
		       "the snapshot table is lost and the one leaked table found, at 0x%" PRIx64 ", holds %u entries where nb_snapshots says %u; not re-linked",
		       t[0].offset, t[0].count, img->h.nb_snapshots);
	} else if (n == 1) {
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

/*
 * Who else claims the table's clusters.  False when a structure the header
 * or the refcount table places claims one (header, active L1, refcount
 * table, bitmap directory or table, LUKS header, a refblock shaped like
 * one), or when the overlap records are not all kept.  Else true, with
 * *pointer set when a structure that a pointer inside a table names claims
 * one (an L2 table, a snapshot's L1, a data or VM state cluster, a
 * bitmap's data), and *disproved set when a disproved refblock does.  A "refblock" that a reftable entry names on the table
 * but whose content disproves it (checker/trust.c qc_refblock_disproved:
 * the table read as refcounts disagrees with the walk) is the refcount
 * table's error, not a rival: the rebuild of the refcount structure drops
 * it (doc/repair.md "The refcount table").
 */
static bool claimed_besides(const struct fixctx *x, bool *pointer, bool *disproved)
{
	const struct qc_image *img = x->img;
	const struct qc_problems *ps = &img->problems;
	*pointer = *disproved = false;
	if (ps->per_code[QC_P_OVERLAP_METADATA] > QC_MAX_RECORDS_PER_CODE ||
	    ps->per_code[QC_P_OVERLAP_DATA_METADATA] > QC_MAX_RECORDS_PER_CODE)
		return false;
	for (size_t k = 0; k < ps->n; k++) {
		const struct qc_problem *r = &ps->v[k];
		if (r->code != QC_P_OVERLAP_METADATA && r->code != QC_P_OVERLAP_DATA_METADATA)
			continue;
		enum qc_owner o;
		if (r->owner == QC_OWN_SNAPSHOT_TABLE)
			o = r->other_owner;
		else if (r->other_owner == QC_OWN_SNAPSHOT_TABLE)
			o = r->owner;
		else
			continue;
		if (o == QC_OWN_REFBLOCK && r->host_cluster != QC_NO_OFFSET &&
		    r->host_cluster < (UINT64_MAX >> img->cluster_bits) &&
		    qc_refblock_disproved(img, x->rbstates, r->host_cluster << img->cluster_bits)) {
			*disproved = true;
			continue;
		}
		if (o == QC_OWN_HEADER || o == QC_OWN_L1 || o == QC_OWN_REFTABLE || o == QC_OWN_REFBLOCK ||
		    o == QC_OWN_SNAPSHOT_TABLE || o == QC_OWN_BITMAP_DIR || o == QC_OWN_BITMAP_TABLE ||
		    o == QC_OWN_LUKS || o == QC_OWN_FREE)
			return false;
		*pointer = true;
	}
	return true;
}

/*
 * The table's clusters are claimed besides only by structures that a
 * pointer inside a table names (and, perhaps, by disproved refblocks).
 * Then, when no leaked table was found, the header's pointer is taken as
 * right and the other pointer is left to the table fixers
 * (repair/fix_l1.c drops an L1 entry that names metadata); treating the
 * table as lost instead would make a second repair decide again once
 * that pointer is gone.
 */
static bool claimed_by_pointer(const struct fixctx *x)
{
	bool pointer, disproved;
	return claimed_besides(x, &pointer, &disproved) && pointer;
}

/* The table's clusters are claimed besides only by refblocks their content
 * disproves: the header -> snapshot table chain is the real one, the table
 * is not lost (nothing is searched for among leaks whose refcounts the
 * disproved refblock makes up). */
static bool claimed_by_disproved_refblocks(const struct fixctx *x)
{
	bool pointer, disproved;
	return claimed_besides(x, &pointer, &disproved) && !pointer && disproved;
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

/* The entries as decided so far make the table rewritten elsewhere. */
static bool table_rewritten(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	if (ps->per_code[QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE] || ps->per_code[QC_P_SNAPSHOT_COUNT_TOO_LARGE])
		return true;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		enum qc_snap_verdict v = img->snapshots[i].fix.verdict;
		if (v == QC_SNAP_FIXED || v == QC_SNAP_RECOVERED || v == QC_SNAP_DROPPED)
			return true;
	}
	return false;
}

/* No entries counted: entries behind a zero count are taken only with
 * leaks to explain (re-linked as a tail of the empty table). */
static void decide_zero_count(struct fixctx *x)
{
	struct qc_image *img = x->img;
	struct qc_snap_plan *sp = &img->snapfix;
	uint64_t off = img->h.snapshots_offset;
	if (off && !(off & (img->cluster_size - 1)) && off < img->file_size) {
		find_tail(x);
		if (sp->tail_count) {
			sp->relink = true;
			sp->relink_offset = off;
			sp->relink_count = sp->count = sp->tail_count;
		}
	}
}

/* Some entry has an ID. */
static bool any_id(const struct qc_image *img)
{
	for (uint32_t i = 0; i < img->nsnapshots; i++)
		if (img->snapshots[i].id && img->snapshots[i].id[0])
			return true;
	return false;
}

/* The table is lost: its location impossible, on another structure, or
 * its first entry garbage.  *code gets the code that says so. */
static bool table_is_lost(const struct fixctx *x, enum qc_code *code)
{
	const struct qc_image *img = x->img;
	static const enum qc_code table_lost[] = {
		QC_P_SNAPSHOT_TABLE_OFFSET_INVALID, QC_P_SNAPSHOT_TABLE_OFFSET_UNALIGNED,
		QC_P_SNAPSHOT_TABLE_PAST_EOF,
	};
	const struct qc_problems *ps = &img->problems;
	bool lost = false;
	*code = QC_P_SNAPSHOT_TABLE_OFFSET_INVALID;
	for (size_t k = 0; k < sizeof(table_lost) / sizeof(table_lost[0]); k++)
		if (ps->per_code[table_lost[k]]) {
			lost = true;
			*code = table_lost[k];
		}
	/* a table on another structure, or one whose first entry is garbage;
	 * on a refblock its content disproves, the table is taken as real
	 * only when one of its entries has an ID (QEMU gives every snapshot
	 * one): a refblock "disproved" by a walk that missed a whole snapshot
	 * may be real (found by tests/gap-sweep.py: snapshots_offset on the
	 * refblock, where the entry's L1 was dropped and s1 lost, exit 0) */
	if (!lost && img->snapshot_table_size &&
	    qc_contested(img, img->h.snapshots_offset, img->snapshot_table_size) &&
	    (!claimed_by_disproved_refblocks(x) || !any_id(img))) {
		lost = true;
		*code = QC_P_OVERLAP_METADATA;
	}
	if (!lost && !img->nsnapshots && ps->per_code[QC_P_SNAPSHOT_ENTRY_UNPARSABLE]) {
		lost = true;
		*code = QC_P_SNAPSHOT_ENTRY_UNPARSABLE;
	}
	/* no entry at all where the header says (a blank cluster): rewriting
	 * would drop every snapshot (snapshots_offset onto a zeroed cluster
	 * of a 4 KiB-cluster image with 12 snapshots: nb_snapshots 12 -> 0,
	 * exit 0) */
	if (!lost && !img->nsnapshots && ps->per_code[QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE]) {
		lost = true;
		*code = QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE;
	}
	/* every entry empty (an empty L1 table, no ID, no name): QEMU never writes
	 * such an entry, so the header names a cluster that is no snapshot
	 * table (zeros, or another structure's): rewriting it would drop the
	 * real snapshots, whose table is then a leak to find (found by
	 * tests/gap-sweep.py: snapshots_offset moved one cluster down) */
	bool all_empty = img->nsnapshots > 0;
	for (uint32_t i = 0; i < img->nsnapshots && all_empty; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		all_empty = !s->l1_size && (!s->id || !s->id[0]) &&
			    (!s->name || !s->name[0]);
	}
	if (!lost && all_empty) {
		lost = true;
		*code = QC_P_SNAPSHOT_ID_EMPTY;
	}
	/* entries without an ID or name, then one that starts a cluster:
	 * the header names something below the real table, and the parse
	 * ran into it
	 * (snapshots_offset one cluster below the table of three snapshots:
	 * rewriting dropped the first entries and lost s2 and s3, exit 0) */
	if (!lost && qc_snapscan_resync_start(img) != QC_NO_OFFSET) {
		lost = true;
		*code = QC_P_SNAPSHOT_ID_EMPTY;
	}
	/* a first entry that is garbage (its lengths invalid, no ID, no name:
	 * not QEMU's) and the end of the file before nb_snapshots entries:
	 * the header points into a table (512-byte clusters, snapshots_offset
	 * on the second cluster of a table of ten: the parse took the garbage
	 * and the last two entries, and the repair cut nb_snapshots 10 -> 3,
	 * dropping eight snapshots from the table, exit 2) */
	const struct qc_snapshot *s0 = img->nsnapshots ? &img->snapshots[0] : NULL;
	if (!lost && s0 && ps->per_code[QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE] &&
	    ps->per_code[QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID] && (!s0->id || !s0->id[0]) &&
	    (!s0->name || !s0->name[0])) {
		lost = true;
		*code = QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE;
	}
	return lost;
}

/* The table as a whole: re-linked when lost and found among the leaks,
 * else refused when lost, when entries are lost, or when the records are
 * too many to decide entry by entry. */
static void decide_table(struct fixctx *x)
{
	static const enum qc_code entries_lost[] = {
		QC_P_SNAPSHOT_ENTRY_UNPARSABLE, QC_P_SNAPSHOT_ENTRY_PAST_EOF, QC_P_SNAPSHOT_TABLE_TOO_LARGE,
		QC_P_SNAPSHOT_WITH_DATA_FILE,
	};
	struct qc_image *img = x->img;
	struct qc_snap_plan *sp = &img->snapfix;
	const struct qc_problems *ps = &img->problems;
	enum qc_code lost_code;
	bool lost = table_is_lost(x, &lost_code);
	if (lost) {
		find_table(x, lost_code);
		if (sp->refused && lost_code == QC_P_OVERLAP_METADATA && claimed_by_pointer(x)) {
			/* nothing found elsewhere: take the table where the header says */
			sp->refused = false;
			sp->why[0] = 0;
			lost = false;
		}
	}
	if (!lost) {
		for (size_t k = 0; k < sizeof(entries_lost) / sizeof(entries_lost[0]); k++)
			if (ps->per_code[entries_lost[k]])
				refuse(sp, entries_lost[k],
				       "entries of the snapshot table are lost after a damaged one (nothing shaped like an entry follows it) or cut by the end of the file: with no evidence to place them by, the table stays as it is");
	}
	if (!records_complete(img))
		refuse(sp, QC_P_SNAPSHOT_ENTRY_LENGTHS_INVALID,
		       "too many snapshot findings to decide entry by entry");
}

/* Every entry's verdict: left with the table's reason when the table is
 * refused or re-linked, else decided one by one. */
static void decide_entries(struct fixctx *x)
{
	struct qc_image *img = x->img;
	const struct qc_snap_plan *sp = &img->snapfix;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		struct qc_snapshot *s = &img->snapshots[i];
		memset(&s->fix, 0, sizeof(s->fix));
		if (sp->refused || sp->relink) {
			s->fix.verdict = QC_SNAP_LEFT;
			snprintf(s->fix.what, sizeof(s->fix.what), "%s", sp->refused ? sp->why
				 : "the header points elsewhere: the table found among the leaks replaces this one");
			continue;
		}
		decide_entry(x, (int32_t)i, s);
	}
}

/* When the table moves, the entries in doubt only for lying on it are
 * decided again without that doubt. */
static void redecide_on_move(struct fixctx *x)
{
	struct qc_image *img = x->img;
	if (!x->redo_any || !table_rewritten(img))
		return;
	x->table_moves = true;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		if (!x->redo[i])
			continue;
		memset(&img->snapshots[i].fix, 0, sizeof(img->snapshots[i].fix));
		decide_entry(x, (int32_t)i, &img->snapshots[i]);
	}
}

/* The new count from the kept entries (and any tail found when nothing
 * else changes), and whether the table is rewritten or re-linked. */
static void plan_count(struct fixctx *x)
{
	struct qc_image *img = x->img;
	struct qc_snap_plan *sp = &img->snapfix;
	const struct qc_problems *ps = &img->problems;
	uint32_t kept = 0;
	bool change = ps->per_code[QC_P_SNAPSHOT_COUNT_EXCEEDS_TABLE] ||
		      ps->per_code[QC_P_SNAPSHOT_COUNT_TOO_LARGE];
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		enum qc_snap_verdict v = img->snapshots[i].fix.verdict;
		kept += v != QC_SNAP_DROPPED;
		change |= v == QC_SNAP_FIXED || v == QC_SNAP_RECOVERED || v == QC_SNAP_DROPPED;
	}
	if (!change)
		find_tail(x);
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
}

void qc_pass_snapfix(struct qc_image *img)
{
	struct qc_snap_plan *sp = &img->snapfix;
	memset(sp, 0, sizeof(*sp));
	if (!img->geometry_ok || img->aborted || !img->is_qcow2)
		return;
	sp->decided = true;
	struct fixctx x = { .img = img, .rbstates = qc_refblock_states(img) };
	if (img->h.nb_snapshots == 0) {
		free(x.rbstates);
		decide_zero_count(&x);
		qc_snapscan_free(&x.sc);
		return;
	}
	decide_table(&x);
	if (!sp->refused && !sp->relink) {
		index_problems(img);
		find_shared_l1(&x);
		x.redo = calloc(img->nsnapshots ? img->nsnapshots : 1, sizeof(bool));
	}
	decide_entries(&x);
	if (!sp->refused && !sp->relink && !img->aborted) {
		redecide_on_move(&x);
		qc_sf_assign_ids(img);
		plan_count(&x);
	}
	unindex_problems(img);
	free(x.shares);
	free(x.redo);
	free(x.rbstates);
	qc_snapscan_free(&x.sc);
}

const char *qc_snap_verdict_name(enum qc_snap_verdict v)
{
	static const char *const n[] = { "kept", "fixed", "recovered", "dropped", "left" };
	return (unsigned)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}
