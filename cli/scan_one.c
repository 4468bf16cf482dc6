/*
 * scan_one.c - one file of a scan (scan_one.h).  Every file goes through
 * qc_scan_check_one(), which opens and checks it with the same path as
 * `check` (qc_cli_open_checked_err in open.c), then judges it under the
 * policy (scan/policy.c).  Thread safety relies on the checker keeping all
 * state in its struct qc_image (no static mutable data in core/ or
 * checker/: doc/scan.md "Threads") and on this file using only
 * re-entrant library calls (strerror_r, gmtime_r, open_memstream).
 */
#include "scan_one.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../checker/check.h"
#include "../scan/junit.h"
#include "cli.h"
#include "report.h"

/* Lines of "code: message" in a JUnit failure, beyond which it is cut. */
#define JUNIT_MAX_LINES 100

void qc_scan_timestamp(char *buf, size_t n)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct extra_ctx {
	const char *timestamp;
	double seconds;
	uint64_t size;
	enum qc_class cls;
};

static void extra_json(struct qc_json *j, void *ctx)
{
	const struct extra_ctx *e = ctx;
	qc_json_str(j, "timestamp", e->timestamp);
	qc_json_fixed(j, "duration", e->seconds, 3); /* seconds */
	qc_json_u64(j, "size", e->size);
	qc_json_str(j, "verdict", qc_class_name(e->cls));
}

/* The record of a file that could not be opened or examined. */
static void json_failure(FILE *f, const char *path, const char *code, const char *why,
			 const struct extra_ctx *e, const struct qc_scan_one_opts *o)
{
	struct qc_json j;
	qc_json_init_compact(&j, f);
	qc_json_obj_begin(&j, NULL);
	qc_json_failure_members(&j, path, 1, code ? code : "open-failed", why);
	qc_json_str(&j, "tool-version", QC_VERSION);
	qc_json_bool(&j, "deep", o->check.deep);
	qc_json_null(&j, "backing-file");
	qc_json_str(&j, "fail-on", qc_fail_on_name(o->policy->fail_on));
	qc_json_arr_begin(&j, "allowed");
	qc_json_arr_end(&j);
	qc_json_str(&j, "check-error", why);
	extra_json(&j, (void *)e);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}

static void junit_case(FILE *f, const struct qc_scan_item *it, const struct qc_image *img,
		       double seconds)
{
	fputs("    <testcase classname=\"qcow2fsck.scan\" name=\"", f);
	qc_xml_escaped(f, it->path, strlen(it->path));
	fprintf(f, "\" time=\"%.3f\">\n", seconds);
	enum qc_junit_kind k = qc_junit_kind(it);
	const char *cls = qc_class_name(it->cls);
	if (k == QC_JUNIT_SKIPPED) {
		fprintf(f, "      <skipped message=\"not a qcow2 image (%s)\"/>\n",
			it->size ? "no qcow2 magic" : "empty file");
	} else if (k == QC_JUNIT_ERROR && !img) {
		fprintf(f, "      <error type=\"%s\" message=\"", cls);
		qc_xml_escaped(f, it->error ? it->error : "", it->error ? strlen(it->error) : 0);
		fputs("\"/>\n", f);
	} else if (k != QC_JUNIT_PASS || (img && img->problems.n)) {
		const char *tag = k == QC_JUNIT_FAILURE ? "failure" : k == QC_JUNIT_ERROR ? "error"
											: "system-out";
		if (k == QC_JUNIT_PASS) {
			fprintf(f, "      <%s>", tag);
		} else {
			fprintf(f, "      <%s type=\"%s\" message=\"%s, exit %d", tag, cls, cls,
				it->exit_code);
			if (it->error) {
				fputs(": ", f);
				qc_xml_escaped(f, it->error, strlen(it->error));
			}
			fputs("\">", f);
		}
		const struct qc_problems *ps = &img->problems;
		size_t lines = 0;
		for (size_t i = 0; i < ps->n && lines < JUNIT_MAX_LINES; i++, lines++) {
			const struct qc_problem *p = &ps->v[i];
			const char *code = qc_problem_table[p->code].code;
			qc_xml_escaped(f, code, strlen(code));
			fputs(it->allowed[p->code] ? " (accepted): " : ": ", f);
			qc_xml_escaped(f, p->message, strlen(p->message));
			fputs("&#10;", f);
		}
		uint64_t total = ps->n + ps->omitted;
		if (total > lines)
			fprintf(f, "... and %llu more&#10;", (unsigned long long)(total - lines));
		fprintf(f, "</%s>\n", tag);
	}
	fputs("    </testcase>\n", f);
}

static void text_of(FILE *f, char **buf, size_t *len, char **out, size_t *outlen)
{
	if (fclose(f) != 0) {
		free(*buf);
		*buf = NULL;
		*len = 0;
	}
	*out = *buf;
	*outlen = *len;
}

void qc_scan_check_one(const struct qc_scan_file *f, const struct qc_scan_one_opts *o,
		       struct qc_scan_result *r)
{
	char ts[32], why[1200], eb[128];
	struct qc_scan_item *it = &r->item;
	struct qc_io *io = NULL;
	struct qc_image *img = NULL;
	memset(r, 0, sizeof(*r));
	qc_scan_timestamp(ts, sizeof(ts));
	double t0 = now_s();
	it->path = strdup(f->path);
	it->size = f->size;
	if (!it->path) {
		it->cls = QC_CLASS_ERROR;
		it->exit_code = 1;
		return;
	}
	int rc;
	const char *ecode = "open-failed";
	if (f->err) {
		snprintf(why, sizeof(why), "%s: %s",
			 f->dir_error ? "cannot read directory" :
			 f->err == EINVAL ? "not a regular file or block device" : "cannot examine",
			 f->err == EINVAL ? "skipped" : strerror_r(f->err, eb, sizeof(eb)));
		rc = 1;
	} else {
		/* the locks qemu-img check takes (doc/locking.md): an image a
		 * running QEMU holds for writing is an error record, not checked */
		struct qc_cli_open co = { .command = "scan", .lock = QC_LOCK_READ, .quiet = true };
		rc = qc_cli_open_checked_err(f->path, &co, &o->check, &io, &img, why, sizeof(why),
					     &ecode);
	}
	r->seconds = now_s() - t0;
	struct qc_verdict v;
	if (rc == 0) {
		qc_policy_judge(o->policy, img, f->path, &v);
		it->cls = v.cls;
		it->exit_code = v.exit_code;
		for (int c = 0; c < QC_P_COUNT; c++) {
			it->allowed[c] = v.allowed[c];
			it->codes[c] = img->problems.per_code[c] && !v.allowed[c];
		}
		if (img->aborted)
			it->error = strdup(img->abort_reason);
		else if (img->problems.oom)
			it->error = strdup("out of memory while recording problems");
	} else {
		it->cls = QC_CLASS_ERROR;
		it->exit_code = 1;
		it->error = strdup(why);
	}
	struct extra_ctx e = { ts, r->seconds, f->size, it->cls };
	char *buf = NULL;
	size_t len = 0;
	FILE *m;
	if (o->json && (m = open_memstream(&buf, &len))) {
		if (img) {
			struct qc_report_extra x = { .json = extra_json, .ctx = &e, .verdict = &v, .compact = true };
			qc_print_json(img, f->path, &x, m);
		} else {
			json_failure(m, f->path, ecode, why, &e, o);
		}
		text_of(m, &buf, &len, &r->json, &r->json_len);
	}
	buf = NULL;
	len = 0;
	if (o->junit && (m = open_memstream(&buf, &len))) {
		junit_case(m, it, img, r->seconds);
		text_of(m, &buf, &len, &r->junit, &r->junit_len);
	}
	qc_image_free(img);
	if (io)
		qc_io_close(io);
}

void qc_scan_result_free(struct qc_scan_result *r)
{
	qc_scan_item_free(&r->item);
	free(r->json);
	free(r->junit);
	r->json = r->junit = NULL;
}
