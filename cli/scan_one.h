/*
 * scan_one.h - check one file for `scan` and make everything the outputs
 * need from it: the summary item, the JSON Lines record and the JUnit
 * test case.  Safe to call from several threads at once.
 */
#ifndef QC_SCAN_ONE_H
#define QC_SCAN_ONE_H

#include <stdbool.h>
#include <stddef.h>

#include "../checker/image.h"
#include "../scan/discover.h"
#include "../scan/scan.h"

struct qc_scan_one_opts {
	struct qc_options check;        /* --deep, per-image memory cap */
	const struct qc_policy *policy;
	bool json, junit;               /* which texts to make */
};

struct qc_scan_result {
	struct qc_scan_item item;
	char *json;                     /* one compact record and '\n', or NULL */
	size_t json_len;
	char *junit;                    /* one <testcase> element, or NULL */
	size_t junit_len;
	double seconds;
};

void qc_scan_check_one(const struct qc_scan_file *f, const struct qc_scan_one_opts *o,
		       struct qc_scan_result *r);
void qc_scan_result_free(struct qc_scan_result *r);
/* Current UTC time as ISO 8601 ("2026-01-31T12:00:00Z"). */
void qc_scan_timestamp(char *buf, size_t n);

#endif
