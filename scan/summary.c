/*
 * summary.c - items, summary lines and totals for `scan` (scan.h).
 *
 * Relies on the JSON Lines record fields written by cli/scan_one.c:
 * filename, verdict, exit-code, size, problems[].code, allowed[],
 * check-error.  A record without "verdict" (one `check --output=json`
 * object on one line) is judged from its exit-code and problems.
 */
#include "scan.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jsonread.h"

void qc_scan_item_free(struct qc_scan_item *it)
{
	free(it->path);
	free(it->error);
	it->path = it->error = NULL;
}

void qc_put_escaped_human(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p >= 0x7f || *p == '\\')
			fprintf(f, "\\x%02x", *p);
		else
			fputc(*p, f);
	}
}

static int rank(int code)
{
	switch (code) {
	case 2: return 5;
	case 1: return 4;
	case 63: return 3;
	case 3: return 2;
	case 0: return 1;
	default: return 4; /* anything else: could not check */
	}
}

int qc_scan_aggregate(int so_far, const struct qc_scan_item *it)
{
	if (it->cls == QC_CLASS_NOT_QCOW2)
		return so_far;
	return rank(it->exit_code) > rank(so_far) ? it->exit_code : so_far;
}

void qc_scan_totals_add(struct qc_scan_totals *t, const struct qc_scan_item *it)
{
	t->files++;
	t->bytes += it->size;
	if (it->cls < QC_CLASS_COUNT)
		t->per_class[it->cls]++;
	for (int c = 0; c < QC_P_COUNT; c++) {
		if (it->allowed[c]) {
			t->with_allowed++;
			break;
		}
	}
	t->exit_code = qc_scan_aggregate(t->exit_code, it);
}

static void print_codes(FILE *f, const bool *set)
{
	const char *sep = "";
	for (int c = 0; c < QC_P_COUNT; c++) {
		if (set[c]) {
			fprintf(f, "%s%s", sep, qc_problem_table[c].code);
			sep = ", ";
		}
	}
}

static bool any(const bool *set)
{
	for (int c = 0; c < QC_P_COUNT; c++)
		if (set[c])
			return true;
	return false;
}

void qc_scan_print_line(FILE *f, const struct qc_scan_item *it)
{
	bool codes = any(it->codes), allowed = any(it->allowed);
	if (it->cls == QC_CLASS_CLEAN && !allowed)
		return;
	fprintf(f, "%-11s ", qc_class_name(it->cls));
	qc_put_escaped_human(f, it->path);
	fputs(": ", f);
	if (it->cls == QC_CLASS_NOT_QCOW2) {
		fputs(it->size ? "no qcow2 magic" : "empty file", f);
		fputs(" (not counted)\n", f);
		return;
	}
	if (it->error && (it->cls == QC_CLASS_ERROR || !codes))
		qc_put_escaped_human(f, it->error);
	else if (codes)
		print_codes(f, it->codes);
	else if (it->cls == QC_CLASS_CLEAN)
		fputs("no problem left", f);
	if (allowed) {
		fputs(" [accepted: ", f);
		print_codes(f, it->allowed);
		fputc(']', f);
	}
	fprintf(f, " (exit %d)\n", it->exit_code);
}

void qc_scan_print_totals(FILE *f, const struct qc_scan_totals *t)
{
	fprintf(f, "%" PRIu64 " files, %" PRIu64 " bytes:", t->files, t->bytes);
	for (int c = 0; c < QC_CLASS_COUNT; c++)
		fprintf(f, "%s %" PRIu64 " %s", c ? "," : "", t->per_class[c],
			qc_class_name((enum qc_class)c));
	fprintf(f, "; %" PRIu64 " with problems accepted by policy.\n", t->with_allowed);
	fprintf(f, "Exit status %d.\n", t->exit_code);
}

static bool get_num(const struct qc_jv *o, const char *k, double *out)
{
	const struct qc_jv *v = qc_jv_get(o, k);
	if (!v || v->type != QC_JV_NUM)
		return false;
	*out = v->num;
	return true;
}

/* Codes of an array of strings or of objects with a "code" member. */
static int collect(const struct qc_jv *arr, bool *set, char *err, size_t errlen)
{
	if (!arr)
		return 0;
	if (arr->type != QC_JV_ARR) {
		snprintf(err, errlen, "problems/allowed is not an array");
		return -1;
	}
	for (size_t i = 0; i < arr->n; i++) {
		const struct qc_jv *e = &arr->kids[i];
		if (e->type == QC_JV_OBJ)
			e = qc_jv_get(e, "code");
		if (!e || e->type != QC_JV_STR) {
			snprintf(err, errlen, "a problem without a code");
			return -1;
		}
		enum qc_code c = qc_code_by_name(e->s);
		if (c == QC_P_COUNT) {
			snprintf(err, errlen, "unknown problem code");
			return -1;
		}
		set[c] = true;
	}
	return 0;
}

int qc_scan_item_from_json(struct qc_scan_item *it, const char *line, size_t len, char *err,
			   size_t errlen)
{
	struct qc_jv *doc;
	memset(it, 0, sizeof(*it));
	if (qc_jv_parse(line, len, &doc, err, errlen) < 0)
		return -1;
	int rc = -1;
	const struct qc_jv *fn = qc_jv_get(doc, "filename");
	const struct qc_jv *verdict = qc_jv_get(doc, "verdict");
	const struct qc_jv *cerr = qc_jv_get(doc, "check-error");
	double exit_code, size = 0, warnings = 0;
	bool found[QC_P_COUNT] = { false };
	if (!fn || fn->type != QC_JV_STR || !get_num(doc, "exit-code", &exit_code)) {
		snprintf(err, errlen, "record without filename or exit-code");
		goto out;
	}
	get_num(doc, "size", &size);
	get_num(doc, "warnings", &warnings);
	if (collect(qc_jv_get(doc, "problems"), found, err, errlen) < 0 ||
	    collect(qc_jv_get(doc, "allowed"), it->allowed, err, errlen) < 0)
		goto out;
	for (int c = 0; c < QC_P_COUNT; c++)
		it->codes[c] = found[c] && !it->allowed[c];
	/* numbers from the file: converted only when in range (a double out
	 * of an integer type's range is undefined behaviour in C) */
	if (!(exit_code >= 0 && exit_code <= 255)) {
		snprintf(err, errlen, "exit-code out of range");
		goto out;
	}
	it->exit_code = (int)exit_code;
	it->size = !(size > 0) ? 0 : size >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)size;
	if (verdict && verdict->type == QC_JV_STR) {
		it->cls = qc_class_by_name(verdict->s);
		if (it->cls == QC_CLASS_COUNT) {
			snprintf(err, errlen, "unknown verdict");
			goto out;
		}
	} else {
		switch (it->exit_code) {
		case 0: it->cls = warnings > 0 ? QC_CLASS_WARNING : QC_CLASS_CLEAN; break;
		case 1: it->cls = QC_CLASS_ERROR; break;
		case 2: it->cls = QC_CLASS_CORRUPTION; break;
		case 3: it->cls = QC_CLASS_LEAK; break;
		default:
			it->cls = found[QC_P_IMAGE_NOT_QCOW2] ? QC_CLASS_NOT_QCOW2 : QC_CLASS_UNSUPPORTED;
		}
	}
	it->path = strdup(fn->s);
	if (cerr && cerr->type == QC_JV_STR)
		it->error = strdup(cerr->s);
	if (!it->path || (cerr && cerr->type == QC_JV_STR && !it->error)) {
		qc_scan_item_free(it);
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	qc_jv_free(doc);
	return rc;
}
