/*
 * report.h - human and JSON reports of a check (and of the check that
 * follows a repair).  Reads only the model; prints to the given stream.
 */
#ifndef QC_REPORT_H
#define QC_REPORT_H

#include <stdio.h>

#include "../checker/image.h"
#include "../core/json.h"
#include "../scan/policy.h"

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
	/* The verdict under --fail-on/--allow/--baseline (scan/policy.h), or
	 * NULL: then exit-code is the plain check's. */
	const struct qc_verdict *verdict;
	/* One line, no spaces (scan's JSON Lines). */
	bool compact;
};

void qc_print_json(const struct qc_image *img, const char *filename,
		   const struct qc_report_extra *x, FILE *f);
void qc_print_human(const struct qc_image *img, const char *filename,
		    const struct qc_report_extra *x, FILE *f);
/* The JSON object of a run that has no report (json_failure.c). */
void qc_print_json_failure(const char *filename, int exit_code, const char *code,
			   const char *message, FILE *f);
/* Its members, for a caller that adds its own (scan's records). */
void qc_json_failure_members(struct qc_json *j, const char *filename, int exit_code,
			     const char *code, const char *message);
/* The "error" member: {"code", "message"}. */
void qc_json_error(struct qc_json *j, const char *code, const char *message);
/* The JSON members shared by check and info: the snapshots array. */
void qc_json_snapshots(struct qc_json *j, const struct qc_image *img);
/* Problems, one line each, repeated codes folded after a few. */
void qc_print_problems_human(const struct qc_image *img, FILE *f);
/* The JSON members every check report carries besides the counters:
 * tool-version, deep, backing-file (the name, never opened). */
void qc_json_tool_fields(struct qc_json *j, const struct qc_image *img);
/* The policy's members: fail-on and allowed (codes found and accepted). */
void qc_json_policy_fields(struct qc_json *j, const struct qc_verdict *v);
/* Human line(s) saying what the policy accepted or made fail; nothing
 * when the policy changed nothing. */
void qc_print_policy_human(const struct qc_image *img, const struct qc_verdict *v, FILE *f);
/* What a repair would do with each snapshot that it would change. */
void qc_print_snapshot_verdicts_human(const struct qc_image *img, FILE *f);

#endif
