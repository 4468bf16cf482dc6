/*
 * json_failure.c - the JSON object of a run that produced no check report
 * (the image could not be opened, is in use, is a FIFO, memory ran out
 * before the model existed): the same members as a report, with zero
 * counters, check-errors 1, the exit code, and an "error" object
 * {"code", "message"} (README "Output"), so a script always reads one
 * object per run.
 */
#include "report.h"

void qc_json_error(struct qc_json *j, const char *code, const char *message)
{
	qc_json_obj_begin(j, "error");
	qc_json_str(j, "code", code);
	qc_json_str(j, "message", message);
	qc_json_obj_end(j);
}

void qc_json_failure_members(struct qc_json *j, const char *filename, int exit_code,
			     const char *code, const char *message)
{
	static const char *const zero[] = {
		"corruptions", "leaks", "warnings", "corruptions-fixed", "leaks-fixed",
		"image-end-offset", "total-clusters", "allocated-clusters",
		"fragmented-clusters", "compressed-clusters",
	};
	qc_json_u64(j, "schema", 1);
	qc_json_str(j, "filename", filename);
	qc_json_str(j, "format", "qcow2");
	qc_json_u64(j, "check-errors", 1);
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		qc_json_u64(j, zero[i], 0);
	qc_json_i64(j, "exit-code", exit_code);
	qc_json_bool(j, "walk-complete", false);
	qc_json_str(j, "walk-incomplete-reason", "the image was not checked");
	qc_json_error(j, code, message);
	qc_json_arr_begin(j, "problems");
	qc_json_arr_end(j);
	qc_json_u64(j, "problems-omitted", 0);
	qc_json_arr_begin(j, "snapshots");
	qc_json_arr_end(j);
}

void qc_print_json_failure(const char *filename, int exit_code, const char *code,
			   const char *message, FILE *f)
{
	struct qc_json j;
	qc_json_init(&j, f);
	qc_json_obj_begin(&j, NULL);
	qc_json_failure_members(&j, filename, exit_code, code, message);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}
