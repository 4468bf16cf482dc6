/*
 * snapscan.c - finding lost snapshot structures among the clusters no
 * live structure claims (doc/repair.md "Snapshot tables", "Finding what
 * was lost").  Used by snapfix.c, only when an entry's L1 pointer or the
 * table's location or count is damaged.
 *
 * Evidence: a cluster QEMU allocated for a snapshot that nothing reaches
 * any more still has its refcount: it is leaked (stored > 0, nothing
 * claims it); an L2 table the lost snapshot shared with others has a
 * stored refcount above what the walk counted (the lost reference).  So:
 *  - an L1 table of n entries is a run of leaked clusters whose non-zero
 *    entries are aligned, in-file L2 pointers with no reserved bits, each
 *    to a cluster whose stored refcount exceeds its computed count, with
 *    at least one such entry;
 *  - a snapshot table is a leaked cluster that starts with entries QEMU
 *    could have written (numeric ID, name, 16..1024 bytes of extra data in
 *    version 3, date_nsec < 10^9) whose L1 tables have that shape.
 * When the table the header names is lost, the walk still counted one
 * reference for each of its clusters: that claim is taken back (the
 * cluster may be a lost snapshot's L1 or L2 table, found by
 * tests/gap-sweep.py: snapshots_offset moved onto s1's L1 table), and a
 * table meeting those clusters is not a table found.
 *
 * Cost: one pass over the refblocks (the stored refcounts, read once),
 * then only the leaked clusters are read, in sorted runs of up to 4 MiB,
 * each candidate examining at most its own L1's bytes.  Memory: the
 * clusters whose stored refcount exceeds the computed one, and the claims
 * taken back (at most 4 Mi), held on --max-mem with the check's model: a
 * search the cap refuses finds nothing (the table or entry is left).
 *
 * Relies on: the walk's computed counts (img->cmap), the reftable and
 * refblock_usable (checker/refcounts.c), the bounded reader.
 */
#include "snapscan.h"
#include "l1read.h"

#include "check.h"
#include "../core/layout.h"
#include "../core/reader.h"
#include "../core/refblock.h" /* qc_rc_get: one accessor for every width */
#include "../core/util.h"

#include <stdlib.h>
#include <string.h>

#define RUN_MAX (4u << 20)

/* Append x to a list of sc, its growth held on --max-mem (sc->mem): false
 * when the cap or memory refuses it (the search then finds nothing). */
static bool push(struct qc_snapscan *sc, uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		uint64_t more = (uint64_t)(nc - *cap) * sizeof(**v);
		if (!qc_mem_reserve(sc->img, more))
			return false;
		uint64_t *nv = realloc(*v, nc * sizeof(**v));
		if (!nv) {
			qc_mem_release(sc->img, more);
			return false;
		}
		sc->mem += more;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = x;
	return true;
}

/* The walk's count for cluster cl, less the claims taken back. */
static uint64_t counted(const struct qc_snapscan *sc, uint64_t cl)
{
	const struct qc_image *img = sc->img;
	uint64_t cm = cl < img->cmap.nclusters ? qc_cm_count(&img->cmap, cl) : 0;
	if (!cm || !sc->nvclaims)
		return cm;
	size_t k = qc_lower_bound_u64(sc->vclaims, sc->nvclaims, cl);
	uint64_t back = 0;
	while (k < sc->nvclaims && sc->vclaims[k] == cl) {
		back++;
		k++;
	}
	return back < cm ? cm - back : 0;
}

#define VCLAIMS_MAX (1u << 22) /* 32 MiB of claims taken back, at most */

/* One claim taken back on each cluster of [off, off + len). */
static bool void_range(struct qc_snapscan *sc, size_t *cap, uint64_t off, uint64_t len)
{
	const struct qc_image *img = sc->img;
	uint64_t last;
	if (!len || !qc_add(off, len - 1, &last))
		return true;
	for (uint64_t c = off >> img->cluster_bits; c <= last >> img->cluster_bits; c++)
		if (sc->nvclaims >= VCLAIMS_MAX || !push(sc, &sc->vclaims, &sc->nvclaims, cap, c))
			return false;
	return true;
}

struct l1range {
	uint64_t off;
	uint32_t n;
};

static int cmp_l1range(const void *a, const void *b)
{
	const struct l1range *x = a, *y = b;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->n < y->n ? -1 : x->n > y->n;
}

struct void_l2 {
	struct qc_snapscan *sc;
	size_t *cap;
	bool ok;
};

/* one claim taken back on each L2 table an L1 run names */
static bool void_l2_run(void *ctx, const uint64_t *ent, uint32_t first, uint32_t n)
{
	(void)first;
	struct void_l2 *v = ctx;
	struct qc_image *img = v->sc->img;
	uint64_t cs = img->cluster_size;
	for (uint32_t k = 0; k < n && v->ok; k++) {
		uint64_t l2 = ent[k] & QC_L1E_OFFSET_MASK;
		if (l2 && !(l2 & (cs - 1)) && !qc_past_eof(img, l2, cs))
			v->ok = void_range(v->sc, v->cap, l2, 1);
	}
	return v->ok;
}

/*
 * The claims the walk made for the header's table and its entries' L1
 * tables (qc_snapscan_init_void); false when they cannot all be listed.
 * Each distinct L1 table is read once, by data extent (l1read.h), as the
 * walk reads it: entries sharing one table cost one read, and a table in a
 * hole costs nothing (limits-resources.sh: 65536 entries on one 32 MiB L1).
 */
static bool void_claims(struct qc_snapscan *sc, uint64_t off, uint64_t len)
{
	struct qc_image *img = sc->img;
	size_t cap = 0;
	if (!void_range(sc, &cap, off, len))
		return false;
	struct l1range *r = img->nsnapshots ? malloc(img->nsnapshots * sizeof(*r)) : NULL;
	size_t nr = 0;
	if (img->nsnapshots && !r)
		return false;
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (!s->l1_usable || !s->l1_size)
			continue;
		if ((uint64_t)s->l1_size * 8 > QC_MAX_L1_SIZE) {
			free(r);
			return false;
		}
		r[nr++] = (struct l1range){ s->l1_table_offset, s->l1_size };
	}
	qsort(r, nr, sizeof(*r), cmp_l1range);
	enum { CHUNK = 4096 };
	uint8_t *chunk = nr ? malloc(CHUNK * 8) : NULL;
	bool ok = !nr || chunk;
	for (size_t i = 0; i < nr && ok; i++) {
		if (i && !cmp_l1range(&r[i], &r[i - 1]))
			continue;
		struct void_l2 v = { sc, &cap, true };
		ok = void_range(sc, &cap, r[i].off, (uint64_t)r[i].n * 8) &&
		     qc_l1_read_extents(img, r[i].off, r[i].n, chunk, CHUNK, void_l2_run, NULL, &v) &&
		     v.ok;
	}
	free(chunk);
	free(r);
	if (!ok)
		return false;
	qsort(sc->vclaims, sc->nvclaims, sizeof(uint64_t), qc_cmp_u64);
	return true;
}

uint64_t qc_snapscan_resync_start(const struct qc_image *img)
{
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (i && s->parsed && !(s->entry_offset & (img->cluster_size - 1)))
			return s->entry_offset;
		if ((s->id && s->id[0]) || (s->name && s->name[0]))
			break;
	}
	return QC_NO_OFFSET;
}

/*
 * Who claims cluster cl: FREE (judge it by its content) when only the
 * voided table did, or when the map records the voided table as its owner.
 * The map keeps one owner per cluster: where the header's bogus table was
 * claimed first, the structure that really holds the cluster is not known
 * (found with 512-byte clusters: snapshots_offset on guest data parsed
 * from there into the real table of ten, whose L2 tables then read as the
 * bogus table's; the table was not found, the garbage entry dropped and
 * snapshot 10 lost, exit 0).
 */
static enum qc_owner owner(const struct qc_snapscan *sc, uint64_t cl)
{
	const struct qc_image *img = sc->img;
	if (cl >= img->cmap.nclusters || !counted(sc, cl))
		return QC_OWN_FREE;
	enum qc_owner o = qc_cm_owner(&img->cmap, cl);
	if (o == QC_OWN_SNAPSHOT_TABLE && sc->void1 && cl >= sc->void0 && cl < sc->void1)
		return QC_OWN_FREE;
	return o;
}

int qc_snapscan_init(struct qc_snapscan *sc, struct qc_image *img)
{
	return qc_snapscan_init_void(sc, img, 0, 0);
}

int qc_snapscan_init_void(struct qc_snapscan *sc, struct qc_image *img, uint64_t voff, uint64_t vlen)
{
	memset(sc, 0, sizeof(*sc));
	sc->img = img;
	sc->allow = QC_NO_OFFSET;
	uint64_t last;
	if (vlen && qc_add(voff, vlen - 1, &last)) {
		sc->void0 = voff >> img->cluster_bits;
		sc->void1 = (last >> img->cluster_bits) + 1;
		sc->allow = qc_snapscan_resync_start(img);
		if (!void_claims(sc, voff, vlen))
			return -1;
	}
	if (!img->reftable_ok || !img->reftable || !img->refblock_usable)
		return -1;
	size_t cs = (size_t)img->cluster_size;
	uint8_t *rb = malloc(cs);
	if (!rb)
		return -1;
	uint64_t per = (uint64_t)1 << img->refblock_bits;
	uint64_t file_clusters = (img->file_size + cs - 1) >> img->cluster_bits;
	size_t ecap = 0, lcap = 0;
	int r = 0;
	for (uint64_t i = 0; i < img->reftable_entries && !r; i++) {
		uint64_t off = img->reftable[i] & QC_REFT_OFFSET_MASK;
		if (!img->refblock_usable[i] || !off)
			continue;
		if (qc_io_read(img->io, rb, cs, off) < 0) {
			r = -1;
			break;
		}
		sc->refblocks_read++;
		for (uint64_t k = 0; k < per && !r; k++) {
			uint64_t cl = i * per + k;
			if (cl >= file_clusters)
				break;
			uint64_t st = qc_rc_get(rb, img->h.refcount_order, k);
			if (!st)
				continue;
			uint64_t cm = counted(sc, cl);
			if (st <= cm)
				continue;
			if (!push(sc, &sc->excess, &sc->nexcess, &ecap, cl) ||
			    (!cm && !push(sc, &sc->leaked, &sc->nleaked, &lcap, cl)))
				r = -1;
		}
	}
	free(rb);
	sc->ok = r == 0;
	return r;
}

void qc_snapscan_free(struct qc_snapscan *sc)
{
	if (sc->img)
		qc_mem_release(sc->img, sc->mem);
	free(sc->l2buf);
	free(sc->excess);
	free(sc->leaked);
	free(sc->vclaims);
	memset(sc, 0, sizeof(*sc));
}

static bool in(const uint64_t *v, size_t n, uint64_t x)
{
	size_t lo = qc_lower_bound_u64(v, n, x);
	return lo < n && v[lo] == x;
}

bool qc_snapscan_leaked(const struct qc_snapscan *sc, uint64_t off, uint64_t len)
{
	const struct qc_image *img = sc->img;
	if (!len)
		len = 1;
	uint64_t last;
	if (!qc_add(off, len - 1, &last))
		return false;
	for (uint64_t c = off >> img->cluster_bits; c <= last >> img->cluster_bits; c++)
		if (!in(sc->leaked, sc->nleaked, c))
			return false;
	return true;
}

/*
 * Does the cluster at off look like an L2 table: every entry zero, a
 * compressed descriptor, or an aligned in-file data pointer without
 * reserved bits, and at least one not zero?
 */
static bool l2_shaped(struct qc_snapscan *sc, uint64_t off)
{
	const struct qc_image *img = sc->img;
	size_t cs = (size_t)img->cluster_size;
	if (!sc->l2buf && !(sc->l2buf = malloc(cs)))
		return false;
	if (qc_io_read(img->io, sc->l2buf, cs, off) < 0)
		return false;
	sc->clusters_read++;
	bool any = false;
	for (size_t j = 0; j < cs; j += img->l2_entry_size) {
		uint64_t e = qc_be64_at(sc->l2buf + j), d = e & QC_L2E_OFFSET_MASK;
		sc->entries_examined++;
		if (!e || (e & QC_OFLAG_COMPRESSED)) {
			any |= e != 0;
			continue;
		}
		if ((e & QC_L2E_STD_RESERVED_MASK) || (d & (cs - 1)) || (d && qc_past_eof(img, d, cs)))
			return false;
		any = true;
	}
	return any;
}

/*
 * Do the n entries at e look like a lost snapshot's L1 table?  Cheap
 * tests first (every entry), then the targets nothing claims are read.
 */
static bool l1_entries_shaped(struct qc_snapscan *sc, const uint8_t *e, uint64_t n)
{
	const struct qc_image *img = sc->img;
	uint64_t cs = img->cluster_size;
	bool any = false;
	for (uint64_t k = 0; k < n; k++) {
		sc->entries_examined++;
		uint64_t v = qc_be64_at(e + k * 8), off = v & QC_L1E_OFFSET_MASK;
		if (!v)
			continue;
		if ((v & QC_L1E_RESERVED_MASK) || !off || (off & (cs - 1)) || qc_past_eof(img, off, cs) ||
		    !in(sc->excess, sc->nexcess, off >> img->cluster_bits))
			return false;
		/* a target some structure claims must be an L2 table (an L2
		 * table posing as an L1 points at data clusters) */
		enum qc_owner o = owner(sc, off >> img->cluster_bits);
		if (o != QC_OWN_FREE && o != QC_OWN_L2 && o != QC_OWN_L2_INACTIVE)
			return false;
		any = true;
	}
	if (!any)
		return false;
	for (uint64_t k = 0; k < n; k++) {
		uint64_t off = qc_be64_at(e + k * 8) & QC_L1E_OFFSET_MASK;
		if (off && owner(sc, off >> img->cluster_bits) == QC_OWN_FREE && !l2_shaped(sc, off))
			return false;
	}
	return true;
}

bool qc_snapscan_l1_shaped(struct qc_snapscan *sc, uint64_t off, uint32_t n)
{
	const struct qc_image *img = sc->img;
	if (!sc->ok || !n || (off & (img->cluster_size - 1)) || (uint64_t)n * 8 > QC_MAX_L1_SIZE ||
	    qc_past_eof(img, off, (uint64_t)n * 8) || !qc_snapscan_leaked(sc, off, (uint64_t)n * 8))
		return false;
	uint8_t *b = malloc((size_t)n * 8);
	bool ok = b && qc_io_read(img->io, b, (size_t)n * 8, off) >= 0 &&
		  l1_entries_shaped(sc, b, n);
	free(b);
	return ok;
}

/*
 * Visit every leaked cluster that starts a run of `need` leaked bytes, with
 * those bytes (read in sorted runs of up to RUN_MAX).  visit returns false
 * to stop.
 */
static void each_leaked(struct qc_snapscan *sc, uint64_t need,
			bool (*visit)(struct qc_snapscan *, uint64_t, const uint8_t *, void *), void *ctx)
{
	const struct qc_image *img = sc->img;
	uint64_t cs = img->cluster_size;
	uint64_t ncl = (need + cs - 1) / cs;
	if (!ncl)
		ncl = 1;
	size_t bufmax = RUN_MAX > ncl * cs ? RUN_MAX : (size_t)(ncl * cs);
	uint8_t *buf = malloc(bufmax);
	if (!buf)
		return;
	for (size_t a = 0; a < sc->nleaked;) {
		/* a run of consecutive leaked clusters [a, b) */
		size_t b = a + 1;
		while (b < sc->nleaked && sc->leaked[b] == sc->leaked[b - 1] + 1)
			b++;
		/* every start s in [a, b - ncl] has ncl leaked clusters after it */
		for (size_t s = a; s + ncl <= b;) {
			size_t fit = bufmax / cs;       /* clusters per read */
			size_t m = b - s < fit ? b - s : fit;
			uint64_t off = sc->leaked[s] << img->cluster_bits;
			/* the file may end inside its last cluster: zeros past it */
			if (qc_io_read(img->io, buf, (size_t)(m * cs), off) < 0) {
				free(buf);
				return;
			}
			sc->clusters_read += m;
			size_t starts = m >= ncl ? m - ncl + 1 : 0;
			for (size_t k = 0; k < starts; k++)
				if (!visit(sc, off + k * cs, buf + k * cs, ctx)) {
					free(buf);
					return;
				}
			if (!starts)
				break;
			s += starts;
		}
		a = b;
	}
	free(buf);
}

struct l1_find {
	uint32_t n;
	uint64_t found[2];
	unsigned nfound;
};

static bool visit_l1(struct qc_snapscan *sc, uint64_t off, const uint8_t *p, void *vctx)
{
	struct l1_find *f = vctx;
	if (l1_entries_shaped(sc, p, f->n)) {
		if (f->nfound < 2)
			f->found[f->nfound] = off;
		f->nfound++;
	}
	return f->nfound < 2;
}

unsigned qc_snapscan_find_l1(struct qc_snapscan *sc, uint32_t n, uint64_t found[2])
{
	struct l1_find f = { .n = n };
	if (!sc->ok || !n || (uint64_t)n * 8 > QC_MAX_L1_SIZE)
		return 0;
	each_leaked(sc, (uint64_t)n * 8, visit_l1, &f);
	found[0] = f.found[0];
	found[1] = f.found[1];
	return f.nfound > 2 ? 2 : f.nfound;
}

/* Bytes of one plausible entry at p (avail bytes), or 0. */
static uint64_t entry_at(struct qc_snapscan *sc, const uint8_t *p, uint64_t avail)
{
	const struct qc_image *img = sc->img;
	if (avail < 40)
		return 0;
	uint64_t l1 = qc_be64_at(p);
	uint32_t l1n = qc_be32_at(p + 8);
	uint16_t ids = qc_be16_at(p + 12), nms = qc_be16_at(p + 14);
	uint32_t nsec = qc_be32_at(p + 20), extra = qc_be32_at(p + 36);
	if (extra > QC_MAX_SNAPSHOT_EXTRA || (img->h.version >= 3 && extra < 16) || nsec >= 1000000000u ||
	    !ids || ids > 64 || (uint64_t)l1n * 8 > QC_MAX_L1_SIZE)
		return 0;
	uint64_t used = 40 + (uint64_t)extra + ids + nms;
	if (used > avail)
		return 0;
	const uint8_t *id = p + 40 + extra;
	for (unsigned k = 0; k < ids; k++)
		if (id[k] < '0' || id[k] > '9')
			return 0;
	for (unsigned k = 0; k < nms; k++)
		if (id[ids + k] < 0x20 || id[ids + k] == 0x7f)
			return 0;
	if (l1n && !qc_snapscan_l1_shaped(sc, l1, l1n))
		return 0;
	return (used + 7) & ~UINT64_C(7);
}

uint32_t qc_snapscan_entries(struct qc_snapscan *sc, const uint8_t *p, uint64_t avail, uint32_t max,
			     uint64_t *bytes, uint64_t *l1_clusters)
{
	uint64_t cs = sc->img->cluster_size;
	uint32_t n = 0;
	uint64_t pos = 0;
	*l1_clusters = 0;
	while (n < max && pos < avail) {
		uint64_t e = entry_at(sc, p + pos, avail - pos);
		if (!e)
			break;
		*l1_clusters += ((uint64_t)qc_be32_at(p + pos + 8) * 8 + cs - 1) / cs;
		pos += e;
		n++;
	}
	*bytes = pos;
	return n;
}

struct table_find {
	uint32_t want;
	struct qc_snapscan_table best[2]; /* best, and the runner-up with the same score */
	unsigned nbest;
	uint64_t score;
};

static bool visit_table(struct qc_snapscan *sc, uint64_t off, const uint8_t *p, void *vctx)
{
	struct table_find *t = vctx;
	const struct qc_image *img = sc->img;
	uint64_t cs = img->cluster_size;
	/* entries may run into the next leaked clusters: read what the table needs */
	uint64_t avail = cs;
	uint8_t *big = NULL;
	uint64_t bytes, l1c;
	uint32_t n = qc_snapscan_entries(sc, p, avail, t->want, &bytes, &l1c);
	if (n && n < t->want && bytes + 40 > avail) {
		uint64_t len = QC_MAX_SNAPSHOTS_SIZE < img->file_size - off ? QC_MAX_SNAPSHOTS_SIZE
									    : img->file_size - off;
		uint64_t run = cs;
		while (run < len && qc_snapscan_leaked(sc, off + run, 1))
			run += cs;
		if (run > cs && (big = malloc((size_t)run)) && qc_io_read(img->io, big, (size_t)run, off) >= 0)
			n = qc_snapscan_entries(sc, big, run, t->want, &bytes, &l1c);
	}
	free(big);
	/* the voided table is the one the header names: not a table found
	 * when it starts among its clusters, unless it starts where the
	 * header's parse ran into a real table.  One that starts below them
	 * and runs into them is the real table the header points into (found
	 * with 512-byte clusters: snapshots_offset on the second cluster of a
	 * table of ten) */
	if (!n || (sc->void1 && off != sc->allow && off >> img->cluster_bits >= sc->void0 &&
		   off >> img->cluster_bits < sc->void1))
		return true;
	/* leaked clusters explained: the table's and its entries' L1 tables */
	uint64_t score = (bytes + cs - 1) / cs + l1c;
	struct qc_snapscan_table c = { off, n, bytes, score };
	if (score > t->score) {
		t->score = score;
		t->best[0] = c;
		t->nbest = 1;
	} else if (score == t->score && t->nbest < 2) {
		t->best[1] = c;
		t->nbest = 2;
	}
	return true;
}

unsigned qc_snapscan_find_table(struct qc_snapscan *sc, uint32_t want,
				struct qc_snapscan_table best[2])
{
	struct table_find t = { .want = want ? want : QC_MAX_SNAPSHOTS };
	if (!sc->ok)
		return 0;
	each_leaked(sc, 1, visit_table, &t);
	best[0] = t.best[0];
	best[1] = t.best[1];
	return t.nbest;
}
