/*
 * junit.c - the JUnit XML document (junit.h).  A failure is a file whose
 * exit code under the policy is 2 or 3; an error one that could not be
 * checked (exit 1, or 63 for an unsupported qcow2); a file without the
 * qcow2 magic is skipped.  doc/scan.md "Output" documents this mapping.
 */
#include "junit.h"

#include <inttypes.h>
#include <string.h>

void qc_xml_escaped(FILE *f, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		case '\n': fputs("&#10;", f); break;
		default:
			if (c < 0x20 || c >= 0x7f || c == '\\')
				fprintf(f, "\\x%02x", c);
			else
				fputc(c, f);
		}
	}
}

enum qc_junit_kind qc_junit_kind(const struct qc_scan_item *it)
{
	if (it->cls == QC_CLASS_NOT_QCOW2)
		return QC_JUNIT_SKIPPED;
	if (it->cls == QC_CLASS_ERROR || it->cls == QC_CLASS_UNSUPPORTED)
		return QC_JUNIT_ERROR;
	if (it->exit_code == 2 || it->exit_code == 3)
		return QC_JUNIT_FAILURE;
	return QC_JUNIT_PASS;
}

int qc_junit_begin(struct qc_junit *ju, FILE *out)
{
	memset(ju, 0, sizeof(*ju));
	ju->out = out;
	ju->cases = tmpfile();
	return ju->cases ? 0 : -1;
}

void qc_junit_count(struct qc_junit *ju, const struct qc_scan_item *it, double seconds)
{
	ju->tests++;
	ju->time += seconds;
	switch (qc_junit_kind(it)) {
	case QC_JUNIT_FAILURE: ju->failures++; break;
	case QC_JUNIT_ERROR: ju->errors++; break;
	case QC_JUNIT_SKIPPED: ju->skipped++; break;
	case QC_JUNIT_PASS: break;
	}
}

int qc_junit_end(struct qc_junit *ju, const char *timestamp)
{
	FILE *o = ju->out;
	fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", o);
	fprintf(o, "<testsuites name=\"qcow2fsck scan\" tests=\"%" PRIu64 "\" failures=\"%" PRIu64
		   "\" errors=\"%" PRIu64 "\" skipped=\"%" PRIu64 "\" time=\"%.3f\">\n",
		ju->tests, ju->failures, ju->errors, ju->skipped, ju->time);
	fprintf(o, "  <testsuite name=\"qcow2fsck scan\" tests=\"%" PRIu64 "\" failures=\"%" PRIu64
		   "\" errors=\"%" PRIu64 "\" skipped=\"%" PRIu64 "\" time=\"%.3f\" timestamp=\"%s\">\n",
		ju->tests, ju->failures, ju->errors, ju->skipped, ju->time, timestamp);
	int rc = 0;
	if (fflush(ju->cases) != 0 || fseek(ju->cases, 0, SEEK_SET) != 0) {
		rc = -1;
	} else {
		char buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), ju->cases)) > 0)
			if (fwrite(buf, 1, n, o) != n)
				rc = -1;
		if (ferror(ju->cases))
			rc = -1;
	}
	fputs("  </testsuite>\n</testsuites>\n", o);
	fclose(ju->cases);
	ju->cases = NULL;
	return rc;
}
