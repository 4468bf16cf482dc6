/*
 * json.c - streaming JSON writer (see json.h).  key == NULL inside arrays.
 * Strings go through the one escaper, core/escape.c.
 */
#include "json.h"

#include "escape.h"

#include <inttypes.h>
#include <string.h>

void qc_json_init(struct qc_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

void qc_json_init_compact(struct qc_json *j, FILE *f)
{
	qc_json_init(j, f);
	j->compact = true;
}

static void indent(struct qc_json *j)
{
	if (j->compact)
		return;
	fputc('\n', j->f);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

static void put_escaped(FILE *f, const char *s, size_t n)
{
	fputc('"', f);
	qc_esc_write(f, s, n, QC_ESC_JSON);
	fputc('"', f);
}

static void prefix(struct qc_json *j, const char *key)
{
	if (j->depth > 0) {
		if (j->need_comma[j->depth])
			fputc(',', j->f);
		indent(j);
	}
	j->need_comma[j->depth] = true;
	if (key) {
		put_escaped(j->f, key, strlen(key));
		fputs(j->compact ? ":" : ": ", j->f);
	}
}

static void open(struct qc_json *j, const char *key, char c)
{
	prefix(j, key);
	fputc(c, j->f);
	if (j->depth < 63)
		j->depth++;
	j->need_comma[j->depth] = false;
}

static void close_(struct qc_json *j, char c)
{
	bool had = j->need_comma[j->depth];
	if (j->depth > 0)
		j->depth--;
	if (had)
		indent(j);
	fputc(c, j->f);
}

void qc_json_obj_begin(struct qc_json *j, const char *key) { open(j, key, '{'); }
void qc_json_obj_end(struct qc_json *j) { close_(j, '}'); }
void qc_json_arr_begin(struct qc_json *j, const char *key) { open(j, key, '['); }
void qc_json_arr_end(struct qc_json *j) { close_(j, ']'); }

void qc_json_strn(struct qc_json *j, const char *key, const char *s, size_t n)
{
	prefix(j, key);
	put_escaped(j->f, s, n);
}

void qc_json_str(struct qc_json *j, const char *key, const char *s)
{
	qc_json_strn(j, key, s, strlen(s));
}

void qc_json_u64(struct qc_json *j, const char *key, uint64_t v)
{
	prefix(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void qc_json_i64(struct qc_json *j, const char *key, int64_t v)
{
	prefix(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void qc_json_bool(struct qc_json *j, const char *key, bool v)
{
	prefix(j, key);
	fputs(v ? "true" : "false", j->f);
}

void qc_json_null(struct qc_json *j, const char *key)
{
	prefix(j, key);
	fputs("null", j->f);
}

void qc_json_fixed(struct qc_json *j, const char *key, double v, int decimals)
{
	prefix(j, key);
	if (!(v == v) || v > 1e300 || v < -1e300)
		v = 0; /* JSON has no NaN or infinity */
	fprintf(j->f, "%.*f", decimals < 0 ? 0 : decimals > 9 ? 9 : decimals, v);
}

void qc_json_end(struct qc_json *j)
{
	fputc('\n', j->f);
}
