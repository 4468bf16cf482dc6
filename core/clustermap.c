/*
 * clustermap.c - paged 16-bit-per-cluster ownership and reference map.
 *
 * Entry layout: bits 0-3 owner, bit 4 active-COPIED, bit 5 active-not-COPIED,
 * bits 6-15 reference count (0..1022 inline; 1023 means "see the overflow
 * hash", which holds the exact count).
 *
 * A page (64 Ki clusters) is 128 blocks of 512 clusters.  A block whose
 * entries are all equal is stored as that one value (uni[b], blk[b] NULL);
 * the first write that would make them differ gives it its 512 entries
 * (materialize).  A run of data clusters claimed whole (qc_cm_add_run)
 * leaves its blocks uniform, so a preallocated 1 TiB image, whose 16 M
 * data clusters lie in runs of 8192 between its L2 tables, keeps about
 * 2.6 MiB of entries where a flat map would zero and write 32 MiB.  A
 * uniform value never has the overflow count: those clusters are in
 * materialized blocks.  Pages are charged to the cap as if flat (128 KiB),
 * so the cap stops a check exactly where it did; what is held is 1.3 KiB
 * per page plus 1 KiB (and malloc's few bytes) per materialized block, at
 * most about 4% above the charge when every block differs.
 */
#include "clustermap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_BITS 16 /* QC_CM_PAGE_CLUSTERS in clustermap.h */
#define PAGE_SIZE_E (1u << PAGE_BITS)
#define BLK_BITS 9 /* QC_CM_BLOCK_CLUSTERS in clustermap.h */
#define BLK_E (1u << BLK_BITS)
#define NBLK (PAGE_SIZE_E >> BLK_BITS)
#define PAGE_CHARGE ((size_t)PAGE_SIZE_E * sizeof(uint16_t)) /* as a flat page */
#define CNT_SHIFT 6
#define CNT_INLINE_MAX 1022u
#define CNT_OVERFLOW 1023u

struct qc_cm_page {
	uint16_t *blk[NBLK]; /* BLK_E entries, or NULL: every entry is uni[b] */
	uint16_t uni[NBLK];
};

static const char *const owner_names[QC_OWN_COUNT] = {
	[QC_OWN_FREE] = "free",
	[QC_OWN_HEADER] = "header",
	[QC_OWN_L1] = "active L1 table",
	[QC_OWN_L2] = "active L2 table",
	[QC_OWN_L2_INACTIVE] = "inactive L2 table",
	[QC_OWN_REFTABLE] = "refcount table",
	[QC_OWN_REFBLOCK] = "refcount block",
	[QC_OWN_SNAPSHOT_TABLE] = "snapshot table",
	[QC_OWN_SNAPSHOT_L1] = "snapshot L1 table",
	[QC_OWN_BITMAP_DIR] = "bitmap directory",
	[QC_OWN_BITMAP_TABLE] = "bitmap table",
	[QC_OWN_BITMAP_DATA] = "bitmap data",
	[QC_OWN_LUKS] = "LUKS header",
	[QC_OWN_DATA] = "guest data",
	[QC_OWN_COMPRESSED] = "compressed data",
	[QC_OWN_VMSTATE] = "vm_state",
};

const char *qc_owner_name(enum qc_owner o)
{
	return (unsigned)o < QC_OWN_COUNT ? owner_names[o] : "?";
}

bool qc_owner_shareable(enum qc_owner o)
{
	switch (o) {
	case QC_OWN_L2:
	case QC_OWN_L2_INACTIVE:
	case QC_OWN_DATA:
	case QC_OWN_COMPRESSED:
	case QC_OWN_VMSTATE:
	case QC_OWN_BITMAP_DATA:
		return true;
	default:
		return false;
	}
}

static void page_free(struct qc_cm_page *p)
{
	if (!p)
		return;
	for (unsigned b = 0; b < NBLK; b++)
		free(p->blk[b]);
	free(p);
}

int qc_cm_init(struct qc_clustermap *m, uint64_t nclusters, size_t cap_bytes)
{
	memset(m, 0, sizeof(*m));
	m->cap_bytes = cap_bytes;
	uint64_t npages = (nclusters + PAGE_SIZE_E - 1) >> PAGE_BITS;
	/* On failure the map stays empty (no cluster in range), so freeing it
	 * and reading it stay safe. */
	if (npages > SIZE_MAX / sizeof(*m->pages))
		return -EFBIG;
	size_t dir = (size_t)npages * sizeof(*m->pages);
	if (cap_bytes && dir > cap_bytes) {
		m->over_cap = true;
		return -ENOMEM;
	}
	if (npages) {
		m->pages = calloc((size_t)npages, sizeof(*m->pages));
		if (!m->pages)
			return -ENOMEM;
	}
	m->nclusters = nclusters;
	m->npages = npages;
	m->bytes = dir;
	return 0;
}

void qc_cm_free(struct qc_clustermap *m)
{
	for (uint64_t i = 0; i < m->npages; i++)
		page_free(m->pages[i]);
	free(m->pages);
	free(m->ov_keys);
	free(m->ov_vals);
	memset(m, 0, sizeof(*m));
}

static struct qc_cm_page *page_of(const struct qc_clustermap *m, uint64_t c)
{
	return c < m->nclusters ? m->pages[c >> PAGE_BITS] : NULL;
}

/* The entry of cluster c (0 when out of range or never claimed). */
static uint16_t get_e(const struct qc_clustermap *m, uint64_t c)
{
	const struct qc_cm_page *p = page_of(m, c);
	if (!p)
		return 0;
	unsigned i = (unsigned)(c & (PAGE_SIZE_E - 1)), b = i >> BLK_BITS;
	return p->blk[b] ? p->blk[b][i & (BLK_E - 1)] : p->uni[b];
}

static bool charge(struct qc_clustermap *m, size_t n)
{
	uint64_t other = m->outside ? *m->outside : 0;
	if (m->cap_bytes && (other > m->cap_bytes || m->bytes + n > m->cap_bytes - other)) {
		m->over_cap = true;
		return false;
	}
	m->bytes += n;
	return true;
}

/* Give block b of page p its own entries (all the uniform value). */
static bool materialize(struct qc_clustermap *m, struct qc_cm_page *p, unsigned b)
{
	uint16_t *e = malloc(BLK_E * sizeof(*e));
	if (!e) {
		m->over_cap = true;
		return false;
	}
	for (unsigned k = 0; k < BLK_E; k++)
		e[k] = p->uni[b];
	p->blk[b] = e;
	return true;
}

/* The page of c, allocated (and charged) if needed; NULL out of range or
 * when memory cannot be had (over_cap set). */
static struct qc_cm_page *page_alloc(struct qc_clustermap *m, uint64_t c)
{
	if (c >= m->nclusters)
		return NULL;
	struct qc_cm_page **pp = &m->pages[c >> PAGE_BITS];
	if (!*pp) {
		if (!charge(m, PAGE_CHARGE))
			return NULL;
		*pp = calloc(1, sizeof(struct qc_cm_page));
		if (!*pp) {
			m->over_cap = true;
			return NULL;
		}
	}
	return *pp;
}

/* The writable entry of c in an allocated page (its block materialized),
 * or NULL (out of range, page never allocated, or no memory). */
static uint16_t *slot_w(struct qc_clustermap *m, struct qc_cm_page *p, uint64_t c)
{
	if (!p)
		return NULL;
	unsigned i = (unsigned)(c & (PAGE_SIZE_E - 1)), b = i >> BLK_BITS;
	if (!p->blk[b] && !materialize(m, p, b))
		return NULL;
	return &p->blk[b][i & (BLK_E - 1)];
}

static uint16_t *slot_alloc(struct qc_clustermap *m, uint64_t c)
{
	return slot_w(m, page_alloc(m, c), c);
}

static size_t ov_find(const struct qc_clustermap *m, uint64_t c)
{
	size_t mask = m->ov_cap - 1;
	size_t i = (size_t)((c * UINT64_C(0x9e3779b97f4a7c15)) >> 20) & mask;
	while (m->ov_keys[i] != UINT64_MAX && m->ov_keys[i] != c)
		i = (i + 1) & mask;
	return i;
}

static bool ov_grow(struct qc_clustermap *m)
{
	size_t ncap = m->ov_cap ? m->ov_cap * 2 : 256;
	if (!charge(m, ncap * 16))
		return false;
	uint64_t *k = malloc(ncap * sizeof(*k)), *v = malloc(ncap * sizeof(*v));
	if (!k || !v) {
		free(k);
		free(v);
		m->over_cap = true;
		return false;
	}
	memset(k, 0xff, ncap * sizeof(*k));
	uint64_t *ok = m->ov_keys, *ovv = m->ov_vals;
	size_t ocap = m->ov_cap;
	m->ov_keys = k;
	m->ov_vals = v;
	m->ov_cap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		if (ok[i] == UINT64_MAX)
			continue;
		size_t j = ov_find(m, ok[i]);
		m->ov_keys[j] = ok[i];
		m->ov_vals[j] = ovv[i];
	}
	if (ocap)
		m->bytes -= ocap * 16;
	free(ok);
	free(ovv);
	return true;
}

static uint64_t ov_get(const struct qc_clustermap *m, uint64_t c)
{
	if (!m->ov_cap)
		return CNT_OVERFLOW;
	size_t i = ov_find(m, c);
	return m->ov_keys[i] == c ? m->ov_vals[i] : CNT_OVERFLOW;
}

static bool ov_set(struct qc_clustermap *m, uint64_t c, uint64_t v)
{
	if ((m->ov_used + 1) * 2 > m->ov_cap && !ov_grow(m))
		return false;
	size_t i = ov_find(m, c);
	if (m->ov_keys[i] != c) {
		m->ov_keys[i] = c;
		m->ov_used++;
	}
	m->ov_vals[i] = v;
	return true;
}

enum qc_owner qc_cm_owner(const struct qc_clustermap *m, uint64_t c)
{
	return (enum qc_owner)(get_e(m, c) & 0xf);
}

uint64_t qc_cm_count(const struct qc_clustermap *m, uint64_t c)
{
	unsigned n = get_e(m, c) >> CNT_SHIFT;
	return n == CNT_OVERFLOW ? ov_get(m, c) : n;
}

unsigned qc_cm_flags(const struct qc_clustermap *m, uint64_t c)
{
	return get_e(m, c) & (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED);
}

bool qc_cm_overcounted(const struct qc_clustermap *m, uint64_t c)
{
	return qc_cm_flags(m, c) == QC_CM_OVERCOUNTED && qc_cm_count(m, c) == 1;
}

bool qc_cm_add(struct qc_clustermap *m, uint64_t c, enum qc_owner o, uint64_t nref,
	       enum qc_owner *prev)
{
	uint16_t *s = slot_alloc(m, c);
	if (!s) {
		if (prev)
			*prev = QC_OWN_FREE;
		return false;
	}
	enum qc_owner p = (enum qc_owner)(*s & 0xf);
	if (prev)
		*prev = p;
	unsigned lo = *s & 0x3f;
	if (p == QC_OWN_FREE || (p == QC_OWN_L2_INACTIVE && o == QC_OWN_L2))
		lo = (lo & ~0xfu) | (unsigned)o;
	unsigned n = *s >> CNT_SHIFT;
	uint64_t cur = n == CNT_OVERFLOW ? ov_get(m, c) : n;
	uint64_t next = cur + nref < cur ? UINT64_MAX : cur + nref;
	if (next > CNT_INLINE_MAX) {
		if (!ov_set(m, c, next))
			return false;
		n = CNT_OVERFLOW;
	} else {
		n = (unsigned)next;
	}
	*s = (uint16_t)((n << CNT_SHIFT) | lo);
	return true;
}

void qc_cm_sub(struct qc_clustermap *m, uint64_t c, uint64_t nref)
{
	if (!nref || !(get_e(m, c) >> CNT_SHIFT))
		return; /* nothing changes: the block may stay uniform */
	uint16_t *s = slot_w(m, page_of(m, c), c);
	if (!s)
		return;
	unsigned n = *s >> CNT_SHIFT;
	uint64_t cur = n == CNT_OVERFLOW ? ov_get(m, c) : n;
	uint64_t next = cur > nref ? cur - nref : 0;
	if (next > CNT_INLINE_MAX) {
		size_t i = ov_find(m, c);
		m->ov_vals[i] = next; /* the key exists: cur came from it */
		return;
	}
	*s = (uint16_t)(((unsigned)next << CNT_SHIFT) | (*s & ((1u << CNT_SHIFT) - 1)));
}

bool qc_cm_set_flags(struct qc_clustermap *m, uint64_t c, unsigned flags)
{
	flags &= QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED;
	if (c < m->nclusters && m->pages[c >> PAGE_BITS] && (get_e(m, c) | flags) == get_e(m, c))
		return true; /* already set: the block may stay uniform */
	uint16_t *s = slot_alloc(m, c);
	if (!s)
		return false;
	*s |= (uint16_t)flags;
	return true;
}

void qc_cm_retype(struct qc_clustermap *m, uint64_t c, enum qc_owner o)
{
	if (!page_of(m, c) || (get_e(m, c) & 0xfu) == (unsigned)o)
		return;
	uint16_t *s = slot_w(m, page_of(m, c), c);
	if (s)
		*s = (uint16_t)((*s & ~0xfu) | (unsigned)o);
}

void qc_cm_foreach(const struct qc_clustermap *m, qc_cm_visit_fn fn, void *ctx)
{
	for (uint64_t pi = 0; pi < m->npages; pi++) {
		const struct qc_cm_page *p = m->pages[pi];
		if (!p)
			continue;
		for (unsigned i = 0; i < PAGE_SIZE_E; i++) {
			unsigned b = i >> BLK_BITS;
			if (!p->blk[b] && !p->uni[b]) {
				i |= BLK_E - 1; /* a free block: the next one */
				continue;
			}
			uint16_t e = p->blk[b] ? p->blk[b][i & (BLK_E - 1)] : p->uni[b];
			if (!e)
				continue;
			uint64_t c = (pi << PAGE_BITS) | i;
			fn(ctx, c, (enum qc_owner)(e & 0xf), qc_cm_count(m, c),
			   e & (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED));
		}
	}
}

uint64_t qc_cm_next_mapped(const struct qc_clustermap *m, uint64_t from)
{
	for (uint64_t pi = from >> PAGE_BITS; pi < m->npages; pi++) {
		if (m->pages[pi]) {
			uint64_t first = pi << PAGE_BITS;
			uint64_t c = from > first ? from : first;
			return c < m->nclusters ? c : m->nclusters;
		}
	}
	return m->nclusters;
}

uint64_t qc_cm_end(const struct qc_clustermap *m)
{
	for (uint64_t pi = m->npages; pi-- > 0;) {
		const struct qc_cm_page *p = m->pages[pi];
		if (!p)
			continue;
		for (unsigned b = NBLK; b-- > 0;) {
			uint64_t base = (pi << PAGE_BITS) | ((uint64_t)b << BLK_BITS);
			if (!p->blk[b]) {
				if (p->uni[b])
					return base + BLK_E;
				continue;
			}
			for (unsigned k = BLK_E; k-- > 0;)
				if (p->blk[b][k])
					return base + k + 1;
		}
	}
	return 0;
}

/* Entries checked at once by qc_cm_add_run's branch-free test. */
#define RUN_BLOCK 64u

uint64_t qc_cm_add_run(struct qc_clustermap *m, uint64_t first, uint64_t n, enum qc_owner o,
		       uint64_t nref, unsigned flags)
{
	flags &= QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED;
	if (nref > CNT_INLINE_MAX)
		return 0; /* every cluster would take the slow path */
	const unsigned add = (unsigned)nref, lim = CNT_INLINE_MAX - add;
	const unsigned set = flags | (unsigned)o;
	uint64_t done = 0;
	while (done < n) {
		uint64_t c = first + done;
		struct qc_cm_page *p = page_alloc(m, c);
		if (!p)
			return done;
		/* the rest of this block */
		unsigned at = (unsigned)(c & (PAGE_SIZE_E - 1)), bi = at >> BLK_BITS;
		unsigned bo = at & (BLK_E - 1);
		uint64_t room = BLK_E - bo;
		if (room > n - done)
			room = n - done;
		if (!p->blk[bi]) {
			unsigned e = p->uni[bi], own = e & 0xf, cnt = e >> CNT_SHIFT;
			if ((own != QC_OWN_FREE && own != (unsigned)o) || cnt > lim)
				return done; /* every entry of the block: slow path */
			if (room == BLK_E) {
				/* the whole block: it stays uniform */
				p->uni[bi] = (uint16_t)(((cnt + add) << CNT_SHIFT) | (e & 0x30u) | set);
				done += room;
				continue;
			}
			if (!materialize(m, p, bi))
				return done;
		}
		uint16_t *s = p->blk[bi] + bo;
		uint64_t i = 0;
		/* groups that all take the fast path, tested without a branch
		 * per entry (so the compiler can vectorise both loops) */
		for (; i + RUN_BLOCK <= room; i += RUN_BLOCK) {
			uint16_t *b = s + i;
			unsigned bad = 0;
			for (unsigned k = 0; k < RUN_BLOCK; k++) {
				unsigned e = b[k], own = e & 0xf;
				bad |= ((own != QC_OWN_FREE) & (own != (unsigned)o)) |
				       ((e >> CNT_SHIFT) > lim);
			}
			if (bad)
				break;
			for (unsigned k = 0; k < RUN_BLOCK; k++)
				b[k] = (uint16_t)((b[k] + (add << CNT_SHIFT)) | set);
		}
		for (; i < room; i++) {
			unsigned e = s[i], own = e & 0xf, cnt = e >> CNT_SHIFT;
			if ((own != QC_OWN_FREE && own != (unsigned)o) || cnt > lim)
				return done + i; /* another owner or a big count: slow path */
			s[i] = (uint16_t)(((cnt + add) << CNT_SHIFT) | (e & 0x30u) | set);
		}
		done += room;
	}
	return done;
}

bool qc_cm_uniform(const struct qc_clustermap *m, uint64_t first, size_t n, uint16_t *value)
{
	if (!n || first >= m->nclusters || n > BLK_E || (first & (BLK_E - 1)) + n > BLK_E)
		return false;
	const struct qc_cm_page *p = m->pages[first >> PAGE_BITS];
	unsigned b = (unsigned)(first & (PAGE_SIZE_E - 1)) >> BLK_BITS;
	if (!p || p->blk[b])
		return false;
	*value = p->uni[b];
	return true;
}

const uint16_t *qc_cm_entries(const struct qc_clustermap *m, uint64_t first, size_t n,
			      uint16_t *scratch)
{
	if (!n || first >= m->nclusters || n > BLK_E || (first & (BLK_E - 1)) + n > BLK_E)
		return NULL;
	const struct qc_cm_page *p = m->pages[first >> PAGE_BITS];
	if (!p)
		return NULL;
	unsigned at = (unsigned)(first & (PAGE_SIZE_E - 1)), b = at >> BLK_BITS;
	if (p->blk[b])
		return p->blk[b] + (at & (BLK_E - 1));
	for (size_t k = 0; k < n; k++)
		scratch[k] = p->uni[b];
	return scratch;
}

void qc_cm_get_run(const struct qc_clustermap *m, uint64_t first, size_t n, uint64_t *counts,
		   uint8_t *flags)
{
	size_t i = 0;
	while (i < n) {
		uint64_t c = first + i;
		uint64_t room = BLK_E - (c & (BLK_E - 1));
		if (room > n - i)
			room = n - i;
		const struct qc_cm_page *p = page_of(m, c);
		if (c + room > m->nclusters && c < m->nclusters)
			room = m->nclusters - c;
		unsigned at = (unsigned)(c & (PAGE_SIZE_E - 1)), b = at >> BLK_BITS;
		if (!p || !p->blk[b]) {
			uint16_t u = p ? p->uni[b] : 0; /* never the overflow count */
			for (size_t k = 0; k < room; k++)
				counts[i + k] = (unsigned)u >> CNT_SHIFT;
			if (flags)
				memset(flags + i, u & (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED),
				       (size_t)room);
		} else {
			const uint16_t *e = p->blk[b] + (at & (BLK_E - 1));
			unsigned ov = 0;
			for (size_t k = 0; k < room; k++) {
				unsigned cnt = e[k] >> CNT_SHIFT;
				counts[i + k] = cnt;
				ov |= cnt == CNT_OVERFLOW;
			}
			if (ov)
				for (size_t k = 0; k < room; k++)
					if (counts[i + k] == CNT_OVERFLOW)
						counts[i + k] = ov_get(m, c + k);
			if (flags)
				for (size_t k = 0; k < room; k++)
					flags[i + k] = (uint8_t)(e[k] & (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED));
		}
		i += (size_t)room;
	}
}
