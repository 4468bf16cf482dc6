/*
 * guestmap.h - one layer's guest view as a list of extents: which bytes of
 * guest range [g, g+len) come from which host bytes, which read as zeros,
 * which come from a compressed cluster, and which cannot be read.
 *
 * A layer is the active L1 table or one snapshot's L1 table of a checked
 * qcow2 image (img != NULL), or a raw file (img == NULL: guest = host).
 * Only this layer is mapped: unallocated clusters read as zeros, a backing
 * file is never opened (doc/digest.md "Layers").  Used by digest.c; the
 * decoding rules are the qcow2 specification's (doc/digest.md "Reading").
 */
#ifndef QC_GUESTMAP_H
#define QC_GUESTMAP_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

struct qc_layer {
	struct qc_io *io;
	const struct qc_image *img; /* NULL for a raw file */
	const uint64_t *l1;         /* host-endian L1 entries (qcow2 only) */
	uint64_t l1_size;
	uint64_t size;              /* virtual size: the guest view is [0, size) */
};

enum qc_gm_kind {
	QC_GM_ZERO,       /* reads as zeros (unallocated, zero flag, zero subcluster) */
	QC_GM_DATA,       /* host bytes [host, host+len) of the image file */
	QC_GM_COMPRESSED, /* part of the compressed cluster at guest cstart */
	QC_GM_BAD,        /* an entry QEMU cannot read (the check reports it) */
};

struct qc_gm_extent {
	uint64_t guest, len;
	enum qc_gm_kind kind;
	uint64_t host;   /* DATA: host offset; COMPRESSED: stream offset */
	uint64_t clen;   /* COMPRESSED: descriptor length in bytes */
	uint64_t cstart; /* COMPRESSED: guest offset of the cluster's first byte */
};

/*
 * A slice of one L2 table kept between calls: a worker maps its chunk
 * window by window, and reads the L2 entries of the whole chunk at once.
 * buf holds qc_gm_l2_scratch(L, chunk) bytes; set valid = false first.
 */
struct qc_gm_l2cache {
	uint8_t *buf;
	bool valid;
	uint64_t l2off, j0, j1; /* entries [j0, j1) of the table at l2off */
};

/* Bytes of L2 entries that cover guest ranges of up to len bytes. */
size_t qc_gm_l2_scratch(const struct qc_layer *L, uint64_t len);
/* Most extents qc_gm_map() returns for a window of wlen bytes. */
size_t qc_gm_max_extents(const struct qc_layer *L, uint64_t wlen);

/*
 * Map [g, g+len) into extents in guest order, merging neighbours of one
 * kind (DATA only when host-contiguous).  L2 entries missing from the
 * cache are read for [g, ra_end) at once (ra_end >= g + len, and
 * ra_end - g at most the length the cache was sized for).  Returns 0, or
 * -errno on a read error.
 */
int qc_gm_map(const struct qc_layer *L, uint64_t g, uint64_t len, uint64_t ra_end,
	      struct qc_gm_l2cache *c, struct qc_gm_extent *ext, size_t max, size_t *n);

/* True when every L1 entry covering [g, g+len) is empty (reads as zeros). */
bool qc_gm_l1_empty(const struct qc_layer *L, uint64_t g, uint64_t len);

#endif
