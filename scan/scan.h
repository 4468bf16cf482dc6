/*
 * scan.h - what `qcow2fsck scan` knows about one file after checking it
 * (an item), and the summary and totals made from items.  An item comes
 * either from a check (cli/scan_one.c) or from a JSON Lines record
 * (`scan --summarize`), and both give the same summary line, so a summary
 * re-made from merged shard reports equals the direct one.
 */
#ifndef QC_SCAN_H
#define QC_SCAN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/problems.h"
#include "policy.h"

struct qc_scan_item {
	char *path;
	enum qc_class cls;
	int exit_code;            /* the file's code under the policy */
	uint64_t size;            /* bytes, as discovered */
	bool codes[QC_P_COUNT];   /* codes found and not accepted */
	bool allowed[QC_P_COUNT]; /* codes found and accepted by the policy */
	char *error;              /* why the file could not be checked, or NULL */
};

struct qc_scan_totals {
	uint64_t files, bytes;
	uint64_t per_class[QC_CLASS_COUNT];
	uint64_t with_allowed;    /* files with problems the policy accepted */
	int exit_code;            /* aggregate so far */
};

void qc_scan_item_free(struct qc_scan_item *it);
/* Fill an item from one JSON Lines record; -1 with a reason on bad input. */
int qc_scan_item_from_json(struct qc_scan_item *it, const char *line, size_t len, char *err,
			   size_t errlen);

/* Aggregate exit code: 2 (corruption or a class made to fail) over 1 (could
 * not check) over 63 (unsupported) over 3 (leaks) over 0.  Files without
 * the qcow2 magic are listed but do not count. */
int qc_scan_aggregate(int so_far, const struct qc_scan_item *it);
void qc_scan_totals_add(struct qc_scan_totals *t, const struct qc_scan_item *it);
/* One line for a file that is not clean (or had problems accepted);
 * nothing for a clean file.  Untrusted bytes of names are escaped. */
void qc_scan_print_line(FILE *f, const struct qc_scan_item *it);
void qc_scan_print_totals(FILE *f, const struct qc_scan_totals *t);
/* Print s with bytes outside printable ASCII (and backslash) as \xNN. */
void qc_put_escaped_human(FILE *f, const char *s);

#endif
