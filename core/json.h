/*
 * json.h - a small streaming JSON writer (objects, arrays, escaped strings,
 * unsigned and signed integers, booleans).  Strings from the image are
 * untrusted bytes: they go through core/escape.h (QC_ESC_JSON), so valid
 * UTF-8 stays UTF-8, controls are escaped, invalid bytes become U+FFFD, and
 * the output is always valid JSON.
 */
#ifndef QC_JSON_H
#define QC_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct qc_json {
	FILE *f;
	int depth;
	bool need_comma[64];
	bool compact; /* one line, no spaces (JSON Lines) */
};

void qc_json_init(struct qc_json *j, FILE *f);
/* The same writer, compact: the whole document on one line. */
void qc_json_init_compact(struct qc_json *j, FILE *f);
void qc_json_obj_begin(struct qc_json *j, const char *key);
void qc_json_obj_end(struct qc_json *j);
void qc_json_arr_begin(struct qc_json *j, const char *key);
void qc_json_arr_end(struct qc_json *j);
void qc_json_str(struct qc_json *j, const char *key, const char *s);
void qc_json_strn(struct qc_json *j, const char *key, const char *s, size_t n);
void qc_json_u64(struct qc_json *j, const char *key, uint64_t v);
void qc_json_i64(struct qc_json *j, const char *key, int64_t v);
void qc_json_bool(struct qc_json *j, const char *key, bool v);
void qc_json_null(struct qc_json *j, const char *key);
/* A number with a fixed count of decimals (0..9), e.g. seconds. */
void qc_json_fixed(struct qc_json *j, const char *key, double v, int decimals);
/* Finish the document with a newline. */
void qc_json_end(struct qc_json *j);

#endif
