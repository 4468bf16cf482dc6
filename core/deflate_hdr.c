/*
 * deflate_hdr.c - the first block header of a raw deflate stream, checked
 * strictly (see deflate_hdr.h; RFC 1951 §3.1.1 for the bit order, §3.2.2
 * for canonical codes, §3.2.7 for the dynamic header).  Every read is
 * bounded by the input length; nothing is allocated.
 */
#include "deflate_hdr.h"

#include <string.h>

struct bits {
	const uint8_t *p;
	size_t len;   /* bytes */
	size_t pos;   /* bits consumed */
};

/* n bits (n <= 16), least significant first; false past the end. */
static bool get(struct bits *b, unsigned n, unsigned *v)
{
	if (b->len > SIZE_MAX / 8 || b->pos + n > b->len * 8)
		return false;
	unsigned r = 0;
	for (unsigned i = 0; i < n; i++, b->pos++)
		r |= (unsigned)((b->p[b->pos >> 3] >> (b->pos & 7)) & 1) << i;
	*v = r;
	return true;
}

/* A canonical code: counts per length and the symbols in code order. */
struct code {
	uint16_t count[16];
	uint16_t sym[320];
};

/*
 * Build from lengths[0..n) (each 0..15).  Returns 1 when the code is
 * complete (the Kraft sum is exactly 1), 0 otherwise (over-subscribed,
 * incomplete or empty).
 */
static int build(struct code *c, const uint8_t *lengths, unsigned n)
{
	uint16_t offs[16];
	memset(c->count, 0, sizeof(c->count));
	for (unsigned s = 0; s < n; s++)
		c->count[lengths[s]]++;
	if (c->count[0] == n)
		return 0;
	long left = 1;
	for (unsigned l = 1; l < 16; l++) {
		left = left * 2 - c->count[l];
		if (left < 0)
			return 0;
	}
	if (left != 0)
		return 0;
	offs[1] = 0;
	for (unsigned l = 1; l < 15; l++)
		offs[l + 1] = (uint16_t)(offs[l] + c->count[l]);
	for (unsigned s = 0; s < n; s++)
		if (lengths[s])
			c->sym[offs[lengths[s]]++] = (uint16_t)s;
	return 1;
}

/* One symbol of complete code c, bit by bit (codes are sent MSB first). */
static bool decode(struct bits *b, const struct code *c, unsigned *sym)
{
	unsigned code = 0, first = 0, index = 0;
	for (unsigned l = 1; l < 16; l++) {
		unsigned bit;
		if (!get(b, 1, &bit))
			return false;
		code |= bit;
		unsigned count = c->count[l];
		if (code < first + count) {
			*sym = c->sym[index + (code - first)];
			return true;
		}
		index += count;
		first = (first + count) << 1;
		code <<= 1;
	}
	return false; /* cannot happen with a complete code */
}

bool qc_deflate_one_strict_block(const uint8_t *in, size_t len)
{
	static const uint8_t order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
					   11, 4, 12, 3, 13, 2, 14, 1, 15 };
	struct bits b = { in, len, 0 };
	unsigned final, type, hlit, hdist, hclen, v;
	if (!get(&b, 1, &final) || !get(&b, 2, &type) || final != 1 || type != 2)
		return false;
	if (!get(&b, 5, &hlit) || !get(&b, 5, &hdist) || !get(&b, 4, &hclen))
		return false;
	unsigned nlen = hlit + 257, ndist = hdist + 1, ncode = hclen + 4;
	if (nlen > 286 || ndist > 30)
		return false;
	uint8_t lengths[320];
	memset(lengths, 0, sizeof(lengths));
	for (unsigned i = 0; i < ncode; i++) {
		if (!get(&b, 3, &v))
			return false;
		lengths[order[i]] = (uint8_t)v;
	}
	struct code c;
	if (!build(&c, lengths, 19))
		return false;
	unsigned n = 0;
	while (n < nlen + ndist) {
		unsigned sym, rep, fill = 0;
		if (!decode(&b, &c, &sym))
			return false;
		if (sym < 16) {
			lengths[n++] = (uint8_t)sym;
			continue;
		}
		if (sym == 16) {
			if (n == 0 || !get(&b, 2, &v))
				return false;
			fill = lengths[n - 1];
			rep = 3 + v;
		} else if (sym == 17) {
			if (!get(&b, 3, &v))
				return false;
			rep = 3 + v;
		} else {
			if (!get(&b, 7, &v))
				return false;
			rep = 11 + v;
		}
		if (rep > nlen + ndist - n)
			return false;
		while (rep--)
			lengths[n++] = (uint8_t)fill;
	}
	if (lengths[256] == 0)
		return false;
	if (!build(&c, lengths, nlen))
		return false;
	return build(&c, lengths + nlen, ndist) == 1;
}
