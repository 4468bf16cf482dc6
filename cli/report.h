/*
 * report.h - human and JSON reports of a check (and of the check that
 * follows a repair).  Reads only the model; prints to the given stream.
 */
#ifndef QC_REPORT_H
#define QC_REPORT_H

#include <stdio.h>

#include "../checker/image.h"
#include "../core/json.h"

struct qc_report_extra {
	uint64_t corruptions_fixed, leaks_fixed;
	/* Extra members for the JSON object (the repair plan), or NULL. */
	void (*json)(struct qc_json *j, void *ctx);
	void *ctx;
};

void qc_print_json(const struct qc_image *img, const char *filename,
		   const struct qc_report_extra *x, FILE *f);
void qc_print_human(const struct qc_image *img, const char *filename,
		    const struct qc_report_extra *x, FILE *f);
/* The JSON members shared by check and info: the snapshots array. */
void qc_json_snapshots(struct qc_json *j, const struct qc_image *img);
/* Problems, one line each, repeated codes folded after a few. */
void qc_print_problems_human(const struct qc_image *img, FILE *f);
/* What a repair would do with each snapshot that it would change. */
void qc_print_snapshot_verdicts_human(const struct qc_image *img, FILE *f);

#endif
