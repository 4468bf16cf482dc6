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
	/* When the run's exit status is not the check's verdict (a repair that
	 * could not run or was rolled back): the status, and the JSON "error"
	 * {"code", "message"} (counted in check-errors). */
	bool exit_override;
	int exit_code;
	const char *error_code, *error_message;
};

void qc_print_json(const struct qc_image *img, const char *filename,
		   const struct qc_report_extra *x, FILE *f);
void qc_print_human(const struct qc_image *img, const char *filename,
		    const struct qc_report_extra *x, FILE *f);
/* The JSON object of a run that has no report (json_failure.c). */
void qc_print_json_failure(const char *filename, int exit_code, const char *code,
			   const char *message, FILE *f);
/* The "error" member: {"code", "message"}. */
void qc_json_error(struct qc_json *j, const char *code, const char *message);
/* The JSON members shared by check and info: the snapshots array. */
void qc_json_snapshots(struct qc_json *j, const struct qc_image *img);
/* Problems, one line each, repeated codes folded after a few. */
void qc_print_problems_human(const struct qc_image *img, FILE *f);

#endif
