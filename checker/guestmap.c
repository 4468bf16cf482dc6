/*
 * guestmap.c - a layer's guest view as extents (see guestmap.h).
 *
 * Decoding follows the qcow2 specification as doc/digest.md "Reading"
 * restates it: an empty L1 entry or L2 entry reads as zeros (this layer
 * only), the zero flag (standard L2) and zero subclusters (extended L2)
 * read as zeros, compressed clusters are decompressed by the caller, and
 * entries QEMU refuses to read (unaligned data offsets, a subcluster both
 * allocated and zero, allocated subclusters without an offset) are BAD.
 * The caller has run the check, so the L1 table and the geometry are
 * validated; every L2 entry is still decoded defensively, and L2 tables are
 * read through qc_io_read() (bytes past the end of the file read as zeros).
 */
#include "guestmap.h"
#include "../core/layout.h"
#include "../core/reader.h"

#include <errno.h>
#include <string.h>

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* End of L1 entry i's span, saturating. */
static uint64_t span_end(uint64_t i, unsigned shift)
{
	if (shift >= 64 || i + 1 > (UINT64_MAX >> shift))
		return UINT64_MAX;
	return (i + 1) << shift;
}

size_t qc_gm_l2_scratch(const struct qc_layer *L, uint64_t len)
{
	if (!L->img)
		return 1;
	uint64_t n = min64(len / L->img->cluster_size + 1, L->img->l2_entries);
	return (size_t)(n * L->img->l2_entry_size);
}

size_t qc_gm_max_extents(const struct qc_layer *L, uint64_t wlen)
{
	if (!L->img)
		return 1;
	const struct qc_image *img = L->img;
	uint64_t unit = img->extended_l2 ? img->cluster_size / QC_SUBCLUSTERS : img->cluster_size;
	uint64_t span = UINT64_C(1) << qc_l1_shift(img);
	return (size_t)(wlen / unit + wlen / span + 4);
}

struct sink {
	struct qc_gm_extent *ext;
	size_t max, n;
};

static int push(struct sink *s, enum qc_gm_kind kind, uint64_t g, uint64_t len, uint64_t host,
		uint64_t clen, uint64_t cstart)
{
	if (!len)
		return 0;
	if (s->n) {
		struct qc_gm_extent *p = &s->ext[s->n - 1];
		if (p->kind == kind && p->guest + p->len == g &&
		    (kind == QC_GM_ZERO || kind == QC_GM_BAD ||
		     (kind == QC_GM_DATA && p->host + p->len == host))) {
			p->len += len;
			return 0;
		}
	}
	if (s->n == s->max)
		return -1; /* cannot happen: max comes from qc_gm_max_extents() */
	s->ext[s->n++] = (struct qc_gm_extent){ g, len, kind, host, clen, cstart };
	return 0;
}

/* One L2 entry (e, bm) for cluster guest start cg, restricted to [a, b). */
static int map_entry(const struct qc_image *img, struct sink *s, uint64_t e, uint64_t bm,
		     uint64_t cg, uint64_t a, uint64_t b)
{
	const uint64_t cs = img->cluster_size;
	const unsigned cb = img->cluster_bits;
	if (e & QC_OFLAG_COMPRESSED) {
		uint64_t coff = qc_compressed_offset(e, cb);
		uint64_t len = qc_compressed_sectors(e, cb) * 512 - (coff & 511);
		if (coff > QC_MAX_OFFSET || img->data_file)
			return push(s, QC_GM_BAD, a, b - a, 0, 0, 0);
		return push(s, QC_GM_COMPRESSED, a, b - a, coff, len, cg);
	}
	uint64_t off = e & QC_L2E_OFFSET_MASK;
	if (!img->extended_l2) {
		if ((e & QC_OFLAG_ZERO) || !off)
			return push(s, QC_GM_ZERO, a, b - a, 0, 0, 0);
		if (off & (cs - 1))
			return push(s, QC_GM_BAD, a, b - a, 0, 0, 0);
		return push(s, QC_GM_DATA, a, b - a, off + (a - cg), 0, 0);
	}
	/* extended L2: 32 subclusters, allocation bits 0-31, zero bits 32-63 */
	uint64_t sc = cs / QC_SUBCLUSTERS;
	uint32_t alloc = (uint32_t)bm, zero = (uint32_t)(bm >> 32);
	if (!alloc)
		return push(s, QC_GM_ZERO, a, b - a, 0, 0, 0);
	bool bad_off = !off || (off & (cs - 1));
	for (uint64_t x = a; x < b;) {
		unsigned k = (unsigned)((x - cg) / sc);
		uint64_t y = min64(b, cg + (k + 1) * sc);
		int r;
		if (!((alloc >> k) & 1))
			r = push(s, QC_GM_ZERO, x, y - x, 0, 0, 0);
		else if (((zero >> k) & 1) || bad_off)
			r = push(s, QC_GM_BAD, x, y - x, 0, 0, 0);
		else
			r = push(s, QC_GM_DATA, x, y - x, off + (x - cg), 0, 0);
		if (r)
			return r;
		x = y;
	}
	return 0;
}

int qc_gm_map(const struct qc_layer *L, uint64_t g, uint64_t len, uint64_t ra_end,
	      struct qc_gm_l2cache *c, struct qc_gm_extent *ext, size_t max, size_t *n)
{
	struct sink s = { ext, max, 0 };
	uint64_t end = g + len;
	*n = 0;
	if (!L->img) {
		int r = push(&s, QC_GM_DATA, g, len, g, 0, 0);
		*n = s.n;
		return r ? -EOVERFLOW : 0;
	}
	const struct qc_image *img = L->img;
	const unsigned cb = img->cluster_bits, shift = qc_l1_shift(img);
	const unsigned es = img->l2_entry_size;
	while (g < end) {
		uint64_t i = g >> shift;
		uint64_t e_end = min64(end, span_end(i, shift));
		uint64_t l1e = i < L->l1_size ? L->l1[i] : 0;
		uint64_t l2off = l1e & QC_L1E_OFFSET_MASK;
		int r = 0;
		if (!l2off) {
			r = push(&s, QC_GM_ZERO, g, e_end - g, 0, 0, 0);
		} else if (l2off & (img->cluster_size - 1)) {
			r = push(&s, QC_GM_BAD, g, e_end - g, 0, 0, 0);
		} else {
			uint64_t mask = img->l2_entries - 1;
			uint64_t j0 = (g >> cb) & mask, j1 = ((e_end - 1) >> cb) & mask;
			if (!c->valid || c->l2off != l2off || j0 < c->j0 || j1 >= c->j1) {
				/* read ahead to ra_end, within this L2 table */
				uint64_t ra = min64(ra_end, span_end(i, shift));
				uint64_t ja = ra > e_end ? ((ra - 1) >> cb) & mask : j1;
				size_t bytes = (size_t)((ja - j0 + 1) * es);
				c->valid = false;
				long long got = qc_io_read(img->io, c->buf, bytes, l2off + j0 * es);
				if (got < 0)
					return (int)got;
				c->valid = true;
				c->l2off = l2off;
				c->j0 = j0;
				c->j1 = ja + 1;
			}
			const uint64_t cs = img->cluster_size;
			for (uint64_t j = j0; j <= j1 && !r; j++) {
				const uint8_t *p = c->buf + (j - c->j0) * es;
				uint64_t cg = ((g >> cb) + (j - j0)) << cb;
				uint64_t a = cg > g ? cg : g, b = min64(e_end, cg + cs);
				uint64_t e = qc_be64_at(p);
				r = map_entry(img, &s, e, es == 16 ? qc_be64_at(p + 8) : 0, cg, a, b);
				if (es != 8 || (e & (QC_OFLAG_COMPRESSED | QC_OFLAG_ZERO)) ||
				    !(e & QC_L2E_OFFSET_MASK) || (e & QC_L2E_OFFSET_MASK & (cs - 1)))
					continue;
				/* a run of host-contiguous data clusters: one extent */
				uint64_t k = 0;
				uint64_t off = e & QC_L2E_OFFSET_MASK;
				while (j + k < j1 && off + (k + 2) * cs <= QC_MAX_OFFSET + 1 &&
				       qc_be64_at(p + 8 * (k + 1)) == e + (k + 1) * cs)
					k++;
				if (k) {
					uint64_t ra = cg + cs, rb = min64(e_end, cg + (k + 1) * cs);
					r = push(&s, QC_GM_DATA, ra, rb - ra, off + cs, 0, 0);
					j += k;
				}
			}
		}
		if (r)
			return -EOVERFLOW;
		g = e_end;
	}
	*n = s.n;
	return 0;
}

bool qc_gm_l1_empty(const struct qc_layer *L, uint64_t g, uint64_t len)
{
	if (!L->img)
		return false;
	if (!len)
		return true;
	unsigned shift = qc_l1_shift(L->img);
	uint64_t i0 = g >> shift, i1 = (g + len - 1) >> shift;
	for (uint64_t i = i0; i <= i1 && i < L->l1_size; i++)
		if (L->l1[i] & QC_L1E_OFFSET_MASK)
			return false;
	return true;
}
