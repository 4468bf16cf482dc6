/*
 * header_fields.h - what the header-field planners share (doc/repair.md
 * "Header fields"): the header bytes as they will be, the note of each
 * change, the test of an L1 entry that lost its reference, and a trial
 * check of the image with candidate header bytes laid over it.
 *
 * header_fields.c runs them and plans the one header write; header_l1.c
 * restores l1_size and l1_table_offset; header_refcount.c restores
 * refcount_order; header_cluster_bits.c restores cluster_bits;
 * header_trial.c checks a candidate.
 */
#ifndef QC_HEADER_FIELDS_H
#define QC_HEADER_FIELDS_H

#include <stdbool.h>
#include <stdint.h>

#include "fix.h"
#include "../core/layout.h"

struct hf {
	struct qc_image *img;
	struct qc_plan *p;
	uint8_t hdr[QC_HDR_HEADER_LENGTH + 4]; /* the header fields as they will be */
	bool changed;
	enum qc_code code;                     /* of the first change */
	char what[3][48];                      /* summary of each change */
	unsigned nwhat;
	bool eio;
};

void qc_hf_note(struct hf *h, enum qc_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* l1_size too small or too large, l1_table_offset damaged (header_l1.c). */
void qc_hf_l1_size(struct hf *h);
void qc_hf_l1_offset(struct hf *h, enum qc_code code);
/* refcount_order invalid or valid but wrong (header_refcount.c). */
void qc_hf_refcount_order(struct hf *h);
/* Is refcount_order provably wrong although it is valid?  (the trigger of
 * qc_hf_refcount_order when the checker found no invalid order) */
bool qc_hf_refcount_order_suspect(const struct qc_image *img);

/* Every usable refblock of model m shaped like one (QC_RB_PROVED: it
 * agrees with the walk), at least one usable (header_refcount.c). */
bool qc_hf_refblocks_proved(const struct qc_image *m);
/* Codes that say a stored refcount is below what the walk counts. */
bool qc_hf_counts_below(const struct qc_problems *ps);

/* cluster_bits invalid, or valid but misplacing the header's tables
 * (header_cluster_bits.c). */
bool qc_hf_cluster_bits_suspect(const struct qc_image *img);
void qc_hf_cluster_bits(struct hf *h);

/*
 * A check of the image with the first `len` header bytes replaced by
 * hdr (a read-only overlay: nothing is written).  Returns the model (the
 * caller frees it with qc_hf_trial_free), or NULL when it could not be
 * built (*eio set on a read error or when memory ran out).
 */
struct qc_hf_trial;
struct qc_hf_trial *qc_hf_trial_run(struct qc_image *img, const uint8_t *hdr, size_t len,
				    bool *eio);
struct qc_image *qc_hf_trial_model(struct qc_hf_trial *t);
void qc_hf_trial_free(struct qc_hf_trial *t);
/* A trial with the 32-bit header field at byte `at` set to v: whether
 * agrees() accepts its model (false, *eio set, when there is none). */
bool qc_hf_try_be32(struct hf *h, size_t at, uint32_t v, bool (*agrees)(const struct qc_image *m),
		    bool *eio);

#endif
