/*
 * refblock.h - reading and writing one refcount entry in a refblock
 * buffer, for every width qcow2 allows (refcount_order 0..6: 1 to 64
 * bits).  Entries of 8 bits and more are big-endian; sub-byte entries are
 * packed from the least significant bit of each byte (as QEMU stores them,
 * doc/design.md).  Static inline so the checker's compare loop, which
 * calls it with a constant order, compiles to one tight loop per width.
 * The caller bounds idx by the refblock's entry count.
 */
#ifndef QC_REFBLOCK_H
#define QC_REFBLOCK_H

#include <stdint.h>

#include "reader.h"

static inline uint64_t qc_rc_get(const uint8_t *b, unsigned order, uint64_t j)
{
	switch (order) {
	case 0:
		return (b[j >> 3] >> (j & 7)) & 1;
	case 1:
		return (b[j >> 2] >> (2 * (j & 3))) & 3;
	case 2:
		return (b[j >> 1] >> (4 * (j & 1))) & 15;
	case 3:
		return b[j];
	case 4:
		return qc_be16_at(b + 2 * j);
	case 5:
		return qc_be32_at(b + 4 * j);
	default:
		return qc_be64_at(b + 8 * j);
	}
}

/* Store v (truncated to the entry's width) as entry j. */
static inline void qc_rc_set(uint8_t *b, unsigned order, uint64_t j, uint64_t v)
{
	switch (order) {
	case 3:
		b[j] = (uint8_t)v;
		return;
	case 4:
		qc_put_be16(b + 2 * j, (uint16_t)v);
		return;
	case 5:
		qc_put_be32(b + 4 * j, (uint32_t)v);
		return;
	case 6:
		qc_put_be64(b + 8 * j, v);
		return;
	default: {
		/* sub-byte widths: 1 << order bits, LSB first */
		unsigned bits = 1u << order;
		uint64_t byte = j >> (3 - order);
		unsigned shift = (unsigned)(j & ((8u >> order) - 1)) << order;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		b[byte] = (uint8_t)((b[byte] & ~mask) | ((v << shift) & mask));
	}
	}
}

#endif
