/*
 * snaplast.h - the lengths of a damaged last snapshot entry, measured
 * against the end of the table (snaplast.c has the rules).
 */
#ifndef QC_SNAPLAST_H
#define QC_SNAPLAST_H

#include <stddef.h>
#include <stdint.h>

/* One entry layout: extra data, ID and name lengths. */
struct qc_snap_lens {
	uint32_t extra;
	uint32_t id;
	uint32_t name;
};

enum qc_snaplast_result {
	QC_SNAPLAST_NONE, /* no layout QEMU writes fits */
	QC_SNAPLAST_ONE,  /* exactly one: *out */
	QC_SNAPLAST_MANY, /* several: out and *other are two of them */
};

/*
 * The entry's bytes from its start: e[0..n) (bytes past the end of the
 * file read as zeros, as QEMU reads them; n may stop short of the
 * largest entry); it lies at file offset off in an image of cluster size
 * cs and format version `version`.  decl: the lengths the entry declares.
 * Tries every layout that differs from decl in ONE length and is one QEMU
 * writes (see snaplast.c) and that ends the table: only zeros follow it to
 * the end of its cluster.  why: a short reason when not exactly one fits.
 */
enum qc_snaplast_result qc_snaplast_fit(const uint8_t *e, size_t n, uint64_t off, uint64_t cs,
					unsigned version, const struct qc_snap_lens *decl,
					struct qc_snap_lens *out, struct qc_snap_lens *other,
					char *why, size_t whylen);

/* Is p[0..n) valid UTF-8 with no control character (below 0x20, 0x7f)? */
int qc_snap_name_ok(const uint8_t *p, size_t n);

/* Is p[0..n) an ID as QEMU makes them: 1 to 20 decimal digits, no
 * leading zero? */
int qc_snap_id_ok(const uint8_t *p, size_t n);

#endif
