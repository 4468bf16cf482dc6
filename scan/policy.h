/*
 * policy.h - the verdict of one checked image under a policy: --fail-on
 * (the lowest class that fails), --allow (codes accepted everywhere) and
 * --baseline (codes accepted per path or everywhere).  Used by `check` and
 * `scan`; doc/scan.md "Policy" says what each setting does to the exit code.
 */
#ifndef QC_POLICY_H
#define QC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/problems.h"

struct qc_image;

enum qc_fail_on { QC_FAIL_CORRUPTION, QC_FAIL_LEAK, QC_FAIL_WARNING };

/* Class of one image, worst first in the order the summary counts them. */
enum qc_class {
	QC_CLASS_CLEAN,
	QC_CLASS_WARNING,
	QC_CLASS_LEAK,
	QC_CLASS_CORRUPTION,
	QC_CLASS_ERROR,       /* the check could not complete (exit 1) */
	QC_CLASS_UNSUPPORTED, /* qcow2, but a version or feature not supported (63) */
	QC_CLASS_NOT_QCOW2,   /* no qcow2 magic (63 for check; scan lists it) */
	QC_CLASS_COUNT
};

struct qc_baseline_entry {
	char *path;
	enum qc_code code;
};

struct qc_policy {
	enum qc_fail_on fail_on;
	bool allow[QC_P_COUNT];           /* --allow and "* CODE" baseline lines */
	struct qc_baseline_entry *bl;     /* per-path baseline, sorted by path */
	size_t nbl, capbl;
};

struct qc_verdict {
	enum qc_class cls;
	int exit_code;                    /* under the policy */
	enum qc_fail_on fail_on;          /* the policy's setting */
	bool allowed[QC_P_COUNT];         /* codes found and accepted */
	size_t nallowed;
};

void qc_policy_init(struct qc_policy *p);
void qc_policy_free(struct qc_policy *p);
bool qc_policy_parse_fail_on(const char *v, enum qc_fail_on *out);
const char *qc_fail_on_name(enum qc_fail_on f);
/* Add the codes of "a,b,c" to the global allow list.  On an unknown code
 * returns false and points *bad at it (inside a copy the caller frees). */
bool qc_policy_allow_list(struct qc_policy *p, const char *list, char **bad);
/*
 * Load a baseline file: lines "PATH CODE" (PATH may hold spaces: the code
 * is the last word), "* CODE" for every path, '#' comments and blank lines;
 * or JSON Lines written by `scan --output=jsonl` (every code of each
 * record is accepted for its filename).  Returns 0, or -1 with a message.
 */
int qc_policy_load_baseline(struct qc_policy *p, const char *file, char *err, size_t errlen);
/* Add one accepted (path, code); path "*" means everywhere.  False on OOM. */
bool qc_policy_add(struct qc_policy *p, const char *path, enum qc_code code);
/* Sort the per-path entries; call once after loading, before judging. */
void qc_policy_seal(struct qc_policy *p);

/* The verdict for a finished check of `path`. */
void qc_policy_judge(const struct qc_policy *p, const struct qc_image *img, const char *path,
		     struct qc_verdict *v);
/* Exit code of a class under a fail-on setting (check's codes). */
int qc_class_exit(enum qc_class c, enum qc_fail_on f);
const char *qc_class_name(enum qc_class c);
/* QC_CLASS_COUNT when unknown. */
enum qc_class qc_class_by_name(const char *name);

#endif
