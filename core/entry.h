/*
 * entry.h - decoding and classifying one L1 or L2 table entry, in one
 * place for the checker's walk (checker/tables.c), the COPIED check
 * (checker/copied.c) and the COPIED repair (repair/copied.c).
 *
 * The classifier says what an entry IS (its kind, offset, flags) and every
 * rule of the format it breaks (reasons); it knows nothing about the file
 * (past-EOF tests need the file size and stay with the caller) nor about
 * policy (whether a finding is reported, followed or repaired).  The rules
 * are the qcow2 specification's (docs/interop/qcow2.txt "Cluster mapping",
 * "Extended L2 Entries"); doc/design.md "Entry classifier" lists them.
 */
#ifndef QC_ENTRY_H
#define QC_ENTRY_H

#include <stdbool.h>
#include <stdint.h>

/* What the classifier needs of the image. */
struct qc_entry_geom {
	unsigned cluster_bits;
	bool v2;           /* version 2: no zero flag */
	bool extended_l2;  /* 16-byte L2 entries with a subcluster bitmap */
	bool data_file;    /* external data file: data offsets are in that file */
};

enum qc_entry_kind {
	QC_ENTRY_UNALLOCATED, /* nothing referenced: L1 entry 0 (or flags only), L2
			       * entry without offset (reads from the backing file or,
			       * extended L2, as its bitmap says) */
	QC_ENTRY_ZERO,        /* standard L2 zero flag without offset: reads as zeros */
	QC_ENTRY_NORMAL,      /* references a cluster: the L2 table (L1 entry), or a
			       * data cluster (L2 entry; with the zero flag set it is
			       * zero-alloc and reads as zeros) */
	QC_ENTRY_COMPRESSED,  /* L2: a compressed cluster descriptor */
};

/* Reasons: each rule the entry breaks.  Listed in the order the checker
 * reports them for one entry. */
#define QC_ER_RESERVED         (1u << 0)  /* reserved bits set */
#define QC_ER_NO_OFFSET        (1u << 1)  /* L1: flags but no L2 offset (not followed) */
#define QC_ER_UNALIGNED        (1u << 2)  /* L1: L2 offset not cluster aligned (not followed) */
#define QC_ER_EXTL2_BIT0       (1u << 3)  /* extended L2: descriptor bit 0 set */
#define QC_ER_ZERO_V2          (1u << 4)  /* zero flag in a version 2 image */
#define QC_ER_COPIED_NO_OFFSET (1u << 5)  /* L2: exactly COPIED, offset 0, no data file */
#define QC_ER_SUB_ALLOC_UNALLOCATED (1u << 6) /* extended L2 unallocated with allocation bits */
#define QC_ER_SUB_ALLOC_AND_ZERO (1u << 7)  /* extended L2: a subcluster allocated and zero */
#define QC_ER_DATA_UNALIGNED   (1u << 8)  /* L2: data offset not cluster aligned (not followed) */
#define QC_ER_COMPRESSED_COPIED (1u << 9) /* compressed with OFLAG_COPIED */
#define QC_ER_COMPRESSED_DATA_FILE (1u << 10) /* compressed with an external data file (not followed) */
#define QC_ER_COMPRESSED_BITMAP (1u << 11) /* compressed, extended L2 bitmap not zero */
#define QC_ER_COMPRESSED_TOO_LARGE (1u << 12) /* compressed offset has bits 56+ (not followed) */

/* Reasons that forbid following the pointer at all. */
#define QC_ER_UNFOLLOWABLE (QC_ER_NO_OFFSET | QC_ER_UNALIGNED | QC_ER_DATA_UNALIGNED | \
			    QC_ER_COMPRESSED_DATA_FILE | QC_ER_COMPRESSED_TOO_LARGE)

struct qc_entry {
	enum qc_entry_kind kind;
	uint64_t offset;  /* host offset referenced (NORMAL, COMPRESSED), else 0 */
	uint64_t length;  /* bytes referenced: a cluster, or what a compressed
			   * descriptor covers; 0 when nothing is */
	bool copied;      /* OFLAG_COPIED (bit 63) */
	bool zero;        /* standard L2 zero flag (ZERO, or NORMAL zero-alloc) */
	unsigned reasons; /* QC_ER_* */
};

/* True when the entry references something that may be followed (NORMAL
 * or COMPRESSED without an unfollowable reason); the caller still checks
 * that it lies inside the file. */
static inline bool qc_entry_followable(const struct qc_entry *c)
{
	return (c->kind == QC_ENTRY_NORMAL || c->kind == QC_ENTRY_COMPRESSED) &&
	       !(c->reasons & QC_ER_UNFOLLOWABLE);
}

struct qc_entry qc_l1e_classify(uint64_t e, const struct qc_entry_geom *g);
/* bitmap: the subcluster bitmap of an extended L2 entry (0 otherwise). */
struct qc_entry qc_l2e_classify(uint64_t e, uint64_t bitmap, const struct qc_entry_geom *g);

#endif
