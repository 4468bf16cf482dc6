/*
 * layer_read.h - reading a layer's guest view window by window (for the
 * digests): each window of up to QC_LR_WIN bytes is mapped (guestmap.h),
 * its stored bytes read or decompressed into buf, and `touched` says which
 * 64 KiB blocks hold stored bytes; untouched blocks are zeros and are not
 * written (the caller hashes them as zeros without reading buf).
 * A block that one run of stored bytes covers whole is not copied: it is
 * read where the file is mapped (core/io.h qc_io_map), and qc_lr_block()
 * gives where each block's bytes are.  Those bytes must be read under a
 * qc_mapguard (core/mapguard.h); the views last until the next fill.
 * One reader per thread: it keeps its decoder context, its L2 slice and
 * the last decompressed cluster.
 */
#ifndef QC_LAYER_READ_H
#define QC_LAYER_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/io.h"
#include "guestmap.h"

#define QC_LR_BLOCK 65536u
#define QC_LR_WIN (UINT64_C(4) << 20)
#define QC_LR_VIEWS 64u /* mapped runs per window, at most */

struct qc_dc;

typedef void (*qc_lr_observer)(void *ctx, uint64_t host, uint64_t len, int res, const char *why,
			       size_t produced);

struct qc_lr {
	const struct qc_layer *L;
	bool force;              /* unreadable bytes read as zeros instead of failing */
	bool no_map;             /* read everything into buf (no SIGBUS guard) */
	/* Told every compressed stream that does not decompress to exactly
	 * one cluster (res: enum qc_dc_result), when set; may be called from
	 * several readers at once. */
	qc_lr_observer observe;
	void *observe_ctx;
	uint8_t *buf;            /* QC_LR_WIN bytes */
	uint8_t touched[QC_LR_WIN / QC_LR_BLOCK];
	/* where a block's bytes are mapped, when not in buf (qc_lr_block) */
	const uint8_t *direct[QC_LR_WIN / QC_LR_BLOCK];
	uint64_t unreadable;     /* bytes read as zeros under force */
	char msg[256];           /* why qc_lr_fill() failed */
	/* private */
	uint8_t *cin, *cout;
	struct qc_gm_l2cache l2;
	struct qc_gm_extent *ext;
	size_t maxext;
	struct qc_dc *dc;
	bool cached;
	uint64_t cached_cstart;
	bool no_holes;
	int hole_kind; /* -1 none cached, 0 data, 1 hole */
	uint64_t hole_a, hole_b;
	struct qc_io_view views[QC_LR_VIEWS];
	unsigned nviews;
};

/* A reader whose L2 read-ahead covers up to ra_max bytes; NULL if out of memory. */
struct qc_lr *qc_lr_new(const struct qc_layer *L, bool force, uint64_t ra_max);
void qc_lr_free(struct qc_lr *w);
/*
 * Read window [g, g+wlen) (g a multiple of QC_LR_WIN, wlen <= QC_LR_WIN),
 * reading L2 entries ahead up to ra_end.  Returns 0, 1 (I/O error, out of
 * memory) or 2 (guest data QEMU cannot read, without force); w->msg says why.
 */
int qc_lr_fill(struct qc_lr *w, uint64_t g, uint64_t wlen, uint64_t ra_end);
/* The bytes of block b of the window: mapped (read them under a
 * qc_mapguard) or in buf. */
static inline const uint8_t *qc_lr_block(const struct qc_lr *w, uint64_t b)
{
	return w->direct[b] ? w->direct[b] : w->buf + b * QC_LR_BLOCK;
}
/* Release the window's views (the next fill and qc_lr_free do it too). */
void qc_lr_unmap(struct qc_lr *w);

#endif
