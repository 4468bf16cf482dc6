/*
 * snaplast.c - the lengths of a damaged LAST snapshot entry, measured
 * against the end of the table (doc/repair.md "Snapshot tables").
 *
 * An entry in the middle of the table is measured against the next entry
 * (snapshots.c resynchronises on it).  The last one has nothing after it:
 * its end is the table's end, and what follows it in its cluster is what
 * was there before QEMU wrote the table (zeros in a fresh cluster).  So a
 * layout fits when:
 *  - it differs from the declared one in ONE length (one damaged field);
 *  - its extra data is a size QEMU has written: 16 bytes (QEMU 1.1 to 5.1:
 *    vm_state_size_large, disk_size), 24 (5.2 on: icount too), or none in
 *    a version 2 image (before 1.1);
 *  - its ID is one QEMU makes (the highest numeric ID + 1, printed as a
 *    decimal number: digits, no leading zero, at most 20 of them);
 *  - its name is valid UTF-8 without NUL or other control characters;
 *  - only zero bytes follow its name up to the end of the cluster the
 *    name ends in (or of the file: past it everything reads as zeros).
 * The name's end is then its last byte before the zeros, so each model
 * (extra, ID or name length changed) gives at most a handful of layouts;
 * exactly one must fit over all models, else nothing is guessed.
 *
 * Relies on: nothing but the bytes it is given (the caller reads them
 * through the bounded reader); cost: a few passes over at most one entry
 * and one cluster.
 */
#include "snaplast.h"

#include <stdio.h>
#include <string.h>

#define FIXED 40u
#define MAX_ID_DIGITS 20u /* an unsigned 64-bit number in decimal */
#define MAX_CAND 4u

int qc_snap_id_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > MAX_ID_DIGITS || p[0] == '0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

int qc_snap_name_ok(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return 0;
			i++;
			continue;
		}
		size_t len;
		uint32_t cp, min;
		if ((c & 0xe0) == 0xc0) {
			len = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		/* overlong forms, UTF-16 surrogates, past U+10FFFF */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += len;
	}
	return 1;
}

struct fitctx {
	const uint8_t *e;
	size_t n;
	uint64_t off, cs;
	struct qc_snap_lens cand[MAX_CAND];
	unsigned ncand;
	unsigned total; /* candidates found, counted past MAX_CAND */
};

static int extra_known(unsigned version, uint32_t x)
{
	return x == 16 || x == 24 || (version < 3 && x == 0);
}

/* Does the layout (x, k, m) hold a QEMU ID and name, with only zeros
 * after it to the end of its cluster? */
static int fits(const struct fitctx *c, uint64_t x, uint64_t k, uint64_t m)
{
	if (k > 65535 || m > 65535)
		return 0;
	uint64_t used = FIXED + x + k + m;
	if (used > c->n)
		return 0;
	uint64_t end = c->off + used;
	uint64_t tail = (end + c->cs - 1) / c->cs * c->cs - c->off;
	if (tail > c->n)
		return 0; /* the rest of its cluster cannot be read */
	const uint8_t *s = c->e + FIXED + x;
	if (!qc_snap_id_ok(s, (size_t)k) || !qc_snap_name_ok(s + k, (size_t)m))
		return 0;
	for (uint64_t i = used; i < tail; i++)
		if (c->e[i])
			return 0;
	return 1;
}

static void add(struct fitctx *c, uint64_t x, uint64_t k, uint64_t m)
{
	for (unsigned i = 0; i < c->ncand; i++)
		if (c->cand[i].extra == x && c->cand[i].id == k && c->cand[i].name == m)
			return;
	c->total++;
	if (c->ncand < MAX_CAND)
		c->cand[c->ncand++] = (struct qc_snap_lens){ (uint32_t)x, (uint32_t)k, (uint32_t)m };
}

static void try_layout(struct fitctx *c, uint64_t x, uint64_t k, uint64_t m)
{
	if (fits(c, x, k, m))
		add(c, x, k, m);
}

/* The name length changed: the name runs to the first NUL after its
 * start, or stops at a cluster boundary before it (what follows in the
 * next cluster may belong to something else). */
static void name_model(struct fitctx *c, const struct qc_snap_lens *d)
{
	uint64_t start = FIXED + (uint64_t)d->extra + d->id;
	if (start > c->n)
		return;
	uint64_t stop = c->n - start > 65536 ? start + 65536 : c->n;
	const uint8_t *z = memchr(c->e + start, 0, (size_t)(stop - start));
	if (z) {
		uint64_t m = (uint64_t)(z - (c->e + start));
		if (m != d->name)
			try_layout(c, d->extra, d->id, m);
		stop = start + m;
	}
	/* every cluster boundary strictly inside [start, stop) */
	uint64_t b = (c->off + start) / c->cs * c->cs + c->cs;
	for (; b < c->off + stop; b += c->cs) {
		uint64_t m = b - c->off - start;
		if (m != d->name)
			try_layout(c, d->extra, d->id, m);
	}
}

enum qc_snaplast_result qc_snaplast_fit(const uint8_t *e, size_t n, uint64_t off, uint64_t cs,
					unsigned version, const struct qc_snap_lens *decl,
					struct qc_snap_lens *out, struct qc_snap_lens *other,
					char *why, size_t whylen)
{
	struct fitctx c = { .e = e, .n = n, .off = off, .cs = cs ? cs : 512 };
	static const uint32_t sizes[] = { 0, 16, 24 };
	/* the extra data length changed */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		if (extra_known(version, sizes[i]) && sizes[i] != decl->extra)
			try_layout(&c, sizes[i], decl->id, decl->name);
	if (extra_known(version, decl->extra)) {
		/* the ID length changed */
		for (uint32_t k = 1; k <= MAX_ID_DIGITS; k++)
			if (k != decl->id)
				try_layout(&c, decl->extra, k, decl->name);
		name_model(&c, decl);
	}
	if (c.total == 1) {
		*out = c.cand[0];
		return QC_SNAPLAST_ONE;
	}
	if (c.total == 0) {
		snprintf(why, whylen,
			 "no layout QEMU writes (extra data of 16 or 24 bytes, a numeric ID, a UTF-8 name) with one length changed ends there with zeros after it");
		return QC_SNAPLAST_NONE;
	}
	*out = c.cand[0];
	*other = c.cand[1];
	snprintf(why, whylen,
		 "%u layouts with one length changed end there with zeros after them (extra %u, id %u, name %u and extra %u, id %u, name %u): not guessed",
		 c.total, c.cand[0].extra, c.cand[0].id, c.cand[0].name, c.cand[1].extra, c.cand[1].id,
		 c.cand[1].name);
	return QC_SNAPLAST_MANY;
}
