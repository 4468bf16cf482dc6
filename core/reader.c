/*
 * reader.c - bounded, big-endian access to untrusted bytes (see reader.h).
 */
#include "reader.h"

#include <string.h>

bool qc_view_has(struct qc_view v, uint64_t off, uint64_t len)
{
	return off <= v.len && len <= v.len - off;
}

bool qc_view_sub(struct qc_view v, uint64_t off, uint64_t len, struct qc_view *out)
{
	if (!qc_view_has(v, off, len))
		return false;
	out->p = v.p + off;
	out->len = (size_t)len;
	return true;
}

bool qc_get_u8(struct qc_view v, uint64_t off, uint8_t *out)
{
	if (!qc_view_has(v, off, 1))
		return false;
	*out = v.p[off];
	return true;
}

bool qc_get_be16(struct qc_view v, uint64_t off, uint16_t *out)
{
	if (!qc_view_has(v, off, 2))
		return false;
	*out = qc_be16_at(v.p + off);
	return true;
}

bool qc_get_be32(struct qc_view v, uint64_t off, uint32_t *out)
{
	if (!qc_view_has(v, off, 4))
		return false;
	*out = qc_be32_at(v.p + off);
	return true;
}

bool qc_get_be64(struct qc_view v, uint64_t off, uint64_t *out)
{
	if (!qc_view_has(v, off, 8))
		return false;
	*out = qc_be64_at(v.p + off);
	return true;
}

bool qc_get_bytes(struct qc_view v, uint64_t off, void *dst, size_t len)
{
	if (!qc_view_has(v, off, len))
		return false;
	if (len)
		memcpy(dst, v.p + off, len);
	return true;
}
