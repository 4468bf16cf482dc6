/*
 * reader.h - the bounded reader: the only way code looks at image bytes.
 *
 * A view is a pointer and a length.  Getters decode big-endian integers and
 * fail (return false) instead of reading past the end; the arithmetic
 * helpers report overflow instead of wrapping.  Nothing here allocates.
 */
#ifndef QC_READER_H
#define QC_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qc_view {
	const uint8_t *p;
	size_t len;
};

static inline struct qc_view qc_view_make(const void *p, size_t len)
{
	struct qc_view v = { (const uint8_t *)p, len };
	return v;
}

/* Sub-view [off, off+len); false if it does not fit. */
bool qc_view_sub(struct qc_view v, uint64_t off, uint64_t len, struct qc_view *out);
/* True when [off, off+len) lies inside the view. */
bool qc_view_has(struct qc_view v, uint64_t off, uint64_t len);

bool qc_get_u8(struct qc_view v, uint64_t off, uint8_t *out);
bool qc_get_be16(struct qc_view v, uint64_t off, uint16_t *out);
bool qc_get_be32(struct qc_view v, uint64_t off, uint32_t *out);
bool qc_get_be64(struct qc_view v, uint64_t off, uint64_t *out);
/* Copy len bytes out of the view. */
bool qc_get_bytes(struct qc_view v, uint64_t off, void *dst, size_t len);

/* Unchecked decoders for buffers whose bounds the caller has already proven. */
static inline uint64_t qc_be64_at(const uint8_t *p)
{
	return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
	       ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
	       ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

static inline uint32_t qc_be32_at(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint16_t qc_be16_at(const uint8_t *p)
{
	return (uint16_t)(((unsigned)p[0] << 8) | p[1]);
}

static inline void qc_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline void qc_put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void qc_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Overflow-checked arithmetic: false on overflow, *r unspecified then. */
static inline bool qc_add(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_add_overflow(a, b, r);
}

static inline bool qc_mul(uint64_t a, uint64_t b, uint64_t *r)
{
	return !__builtin_mul_overflow(a, b, r);
}

/* Round up to a power-of-two alignment; false on overflow. */
static inline bool qc_align_up(uint64_t v, uint64_t align, uint64_t *r)
{
	uint64_t t;
	if (!qc_add(v, align - 1, &t))
		return false;
	*r = t & ~(align - 1);
	return true;
}

/* True when [a, a+alen) and [b, b+blen) intersect (lengths may be 0). */
static inline bool qc_ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	if (alen == 0 || blen == 0)
		return false;
	return a < b + blen && b < a + alen;
}

#endif
