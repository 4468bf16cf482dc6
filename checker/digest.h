/*
 * digest.h - content digests of a layer's guest view (doc/digest.md):
 * the tree digest "tree-v1" (parallel over --jobs threads) and the flat
 * SHA-256 of the raw byte stream.
 */
#ifndef QC_DIGEST_H
#define QC_DIGEST_H

#include <stdbool.h>
#include <stdint.h>

#include "guestmap.h"
#include "layer_read.h"
#include "../core/progress.h"

#define QC_DIGEST_BLOCK 65536u /* bytes per tree leaf */
#define QC_DIGEST_TAG "qcow2fsck-digest-v1"

struct qc_digest_opts {
	bool flat;       /* plain SHA-256 of the byte stream instead of tree-v1 */
	bool force;      /* read unreadable clusters as zeros instead of failing */
	unsigned jobs;   /* hashing threads (tree only), >= 1 */
	struct qc_progress *progress; /* or NULL */
	uint64_t progress_base; /* bytes done before this layer (several layers) */
	qc_lr_observer observe; /* or NULL: told of every stream that does not
				 * decompress to one cluster (layer_read.h) */
	void *observe_ctx;
};

struct qc_digest_result {
	uint8_t md[32];
	uint64_t unreadable_bytes; /* guest bytes read as zeros under force */
	char error[256];           /* why it failed (return value != 0) */
};

/*
 * Digest layer L.  Returns 0 (res->md set), 1 when it could not complete
 * (I/O error, out of memory), or 2 when guest data cannot be read (an
 * entry QEMU refuses, a stream that does not decompress) and opts->force
 * is not set.  res->error says why.
 */
int qc_digest_layer(const struct qc_layer *L, const struct qc_digest_opts *o,
		    struct qc_digest_result *res);

/* Lower-case hex of a 32-byte digest into out[65]. */
void qc_digest_hex(const uint8_t md[32], char out[65]);

#endif
