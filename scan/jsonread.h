/*
 * jsonread.h - a small JSON reader for the records this tool writes
 * (`scan --output=jsonl`): used by --baseline and --summarize.  Builds a
 * tree; depth, and therefore recursion, is bounded.
 */
#ifndef QC_JSONREAD_H
#define QC_JSONREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qc_jv_type { QC_JV_NULL, QC_JV_BOOL, QC_JV_NUM, QC_JV_STR, QC_JV_ARR, QC_JV_OBJ };

struct qc_jv {
	enum qc_jv_type type;
	char *key;            /* member name inside an object, else NULL */
	char *s;              /* QC_JV_STR: decoded, NUL-terminated */
	size_t slen;
	double num;           /* QC_JV_NUM */
	bool b;               /* QC_JV_BOOL */
	struct qc_jv *kids;   /* QC_JV_ARR / QC_JV_OBJ */
	size_t n;
};

/* Parse exactly one JSON value from text[0..len) (surrounding whitespace
 * allowed).  0 and *out, or -1 with a reason in err. */
int qc_jv_parse(const char *text, size_t len, struct qc_jv **out, char *err, size_t errlen);
/* Member of an object, or NULL. */
const struct qc_jv *qc_jv_get(const struct qc_jv *obj, const char *key);
void qc_jv_free(struct qc_jv *v);

#endif
