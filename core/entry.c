/*
 * entry.c - the L1/L2 entry classifier (see entry.h).  Relies on the masks
 * of core/layout.h.
 */
#include "entry.h"

#include "layout.h"

struct qc_entry qc_l1e_classify(uint64_t e, const struct qc_entry_geom *g)
{
	struct qc_entry c = { QC_ENTRY_UNALLOCATED, 0, 0, (e & QC_OFLAG_COPIED) != 0, false, 0 };
	uint64_t off = e & QC_L1E_OFFSET_MASK;
	if (e & QC_L1E_RESERVED_MASK)
		c.reasons |= QC_ER_RESERVED;
	if (!e)
		return c;
	if (!off) {
		c.reasons |= QC_ER_NO_OFFSET;
		return c;
	}
	c.kind = QC_ENTRY_NORMAL;
	c.offset = off;
	c.length = UINT64_C(1) << g->cluster_bits;
	if (off & (c.length - 1))
		c.reasons |= QC_ER_UNALIGNED;
	return c;
}

static struct qc_entry compressed(uint64_t e, uint64_t bitmap, const struct qc_entry_geom *g)
{
	struct qc_entry c = { QC_ENTRY_COMPRESSED, 0, 0, (e & QC_OFLAG_COPIED) != 0, false, 0 };
	c.offset = qc_compressed_offset(e, g->cluster_bits);
	c.length = qc_compressed_sectors(e, g->cluster_bits) * 512 - (c.offset & 511);
	if (c.copied)
		c.reasons |= QC_ER_COMPRESSED_COPIED;
	if (g->data_file) {
		/* nothing else about it matters: it is never read */
		c.reasons |= QC_ER_COMPRESSED_DATA_FILE;
		return c;
	}
	if (g->extended_l2 && bitmap)
		c.reasons |= QC_ER_COMPRESSED_BITMAP;
	if (c.offset > QC_MAX_OFFSET)
		c.reasons |= QC_ER_COMPRESSED_TOO_LARGE;
	return c;
}

struct qc_entry qc_l2e_classify(uint64_t e, uint64_t bitmap, const struct qc_entry_geom *g)
{
	if (e & QC_OFLAG_COMPRESSED)
		return compressed(e, bitmap, g);
	struct qc_entry c = { QC_ENTRY_UNALLOCATED, 0, 0, (e & QC_OFLAG_COPIED) != 0, false, 0 };
	if (e & QC_L2E_STD_RESERVED_MASK)
		c.reasons |= QC_ER_RESERVED;
	if (g->extended_l2) {
		if (e & QC_OFLAG_ZERO)
			c.reasons |= QC_ER_EXTL2_BIT0;
	} else if (e & QC_OFLAG_ZERO) {
		c.zero = true;
		if (g->v2)
			c.reasons |= QC_ER_ZERO_V2;
	}
	uint64_t off = e & QC_L2E_OFFSET_MASK;
	/* with a data file, COPIED alone maps guest offset == host offset 0 */
	bool normal = off != 0 || (g->data_file && c.copied && !c.zero);
	if (!normal) {
		c.kind = c.zero ? QC_ENTRY_ZERO : QC_ENTRY_UNALLOCATED;
		if (!c.zero && c.copied && !g->data_file)
			c.reasons |= QC_ER_COPIED_NO_OFFSET;
		if (g->extended_l2 && (bitmap & QC_L2_BITMAP_ALL_ALLOC))
			c.reasons |= QC_ER_SUB_ALLOC_UNALLOCATED;
		return c;
	}
	c.kind = QC_ENTRY_NORMAL;
	c.offset = off;
	c.length = UINT64_C(1) << g->cluster_bits;
	if (g->extended_l2 && ((bitmap >> 32) & bitmap))
		c.reasons |= QC_ER_SUB_ALLOC_AND_ZERO;
	if (off & (c.length - 1))
		c.reasons |= QC_ER_DATA_UNALIGNED;
	return c;
}
