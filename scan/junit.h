/*
 * junit.h - JUnit XML for `scan --output=junit`: one testsuite, one
 * testcase per file.  Test cases are spooled to a temporary file so the
 * counts can head the document with memory independent of the file count.
 * tests/junit.xsd is the schema the output is validated against.
 */
#ifndef QC_JUNIT_H
#define QC_JUNIT_H

#include <stdint.h>
#include <stdio.h>

#include "scan.h"

struct qc_junit {
	FILE *out;      /* the final document */
	FILE *cases;    /* spooled test cases */
	uint64_t tests, failures, errors, skipped;
	double time;
};

int qc_junit_begin(struct qc_junit *ju, FILE *out);
/* Count a case (its XML fragment is already written by the caller). */
void qc_junit_count(struct qc_junit *ju, const struct qc_scan_item *it, double seconds);
/* Write the document: header with counts, the cases, the footer. 0 or -1. */
int qc_junit_end(struct qc_junit *ju, const char *timestamp);

/* The <testcase> element a file gets; problems: "code: message" lines. */
enum qc_junit_kind { QC_JUNIT_PASS, QC_JUNIT_FAILURE, QC_JUNIT_ERROR, QC_JUNIT_SKIPPED };
enum qc_junit_kind qc_junit_kind(const struct qc_scan_item *it);
/* XML text with markup characters as entities and every byte outside
 * printable ASCII as the text \xNN, so any name gives well-formed XML. */
void qc_xml_escaped(FILE *f, const char *s, size_t n);

#endif
