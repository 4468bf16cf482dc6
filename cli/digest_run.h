/*
 * digest_run.h - digesting the layers of a checked image (or a raw file)
 * for `qcow2fsck digest` and `check --digest`, and writing the results.
 * The format and the rules (which layers, what is refused) are in
 * doc/digest.md.
 */
#ifndef QC_DIGEST_RUN_H
#define QC_DIGEST_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "../checker/image.h"
#include "../checker/layer_read.h"
#include "../core/json.h"

struct qc_dg_layer {
	int32_t snapshot;   /* -1: the active layer */
	uint64_t size;      /* virtual size */
	uint8_t md[32];
	uint64_t unreadable; /* bytes read as zeros under --force */
};

struct qc_dg_run {
	/* in */
	bool flat, force, all, progress;
	unsigned jobs;
	const char *snapshot; /* ID or NAME, or NULL */
	qc_lr_observer observe; /* or NULL: see checker/layer_read.h */
	void *observe_ctx;
	/* out */
	struct qc_dg_layer *layers;
	uint32_t n;
	int rc;            /* 0 done, 1 could not complete, 2 unreadable data */
	char error[320];
};

/* Default --jobs: the number of online CPUs (at least 1). */
unsigned qc_default_jobs(void);
/* Parse --jobs=N (1..64). */
bool qc_parse_jobs(const char *v, unsigned *out);

/*
 * Digest the selected layers of img (checked; NULL: io is a raw file).
 * Sets r->rc and r->error; the caller decides about corruption before.
 */
void qc_digest_run(struct qc_io *io, const struct qc_image *img, struct qc_dg_run *r);
void qc_digest_run_free(struct qc_dg_run *r);

/* The "digests" array members (one object per layer). */
void qc_digest_json_layers(struct qc_json *j, const char *path, const struct qc_image *img,
			   const struct qc_dg_run *r);
/* The algorithm's name: "tree-v1" or "flat-sha256". */
const char *qc_digest_algorithm(const struct qc_dg_run *r);

#endif
