/*
 * test_json.c - the JSON writer (core/json.c): exact output for nesting
 * (objects in arrays in objects, empty ones, pretty and compact forms, the
 * deepest nesting it supports), numbers (the extremes of u64 and i64,
 * fixed decimals, no NaN or infinity), and escaping of keys and values
 * (quotes, backslashes, every control byte, invalid UTF-8, NUL inside a
 * counted string).  The escaper's own forms are tested in test_escape.c;
 * here each output is also checked to be valid JSON by a small parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/json.h"

struct out {
	char *s;
	size_t n;
	FILE *f;
	struct qc_json j;
};

static void begin(struct out *o, bool compact)
{
	o->s = NULL;
	o->n = 0;
	o->f = open_memstream(&o->s, &o->n);
	assert_non_null(o->f);
	if (compact)
		qc_json_init_compact(&o->j, o->f);
	else
		qc_json_init(&o->j, o->f);
}

static char *finish(struct out *o)
{
	fclose(o->f);
	return o->s;
}

/* A strict JSON validator (RFC 8259 grammar, no extensions). */
static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	return p;
}

static const char *value(const char *p, int depth);

static const char *string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 5;
				continue;
			}
			if (!*p || !strchr("\"\\/bfnrt", *p))
				return NULL;
		}
		p++;
	}
	return p + 1;
}

static const char *number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *members(const char *p, char close, int depth)
{
	p = ws(p);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			p = string(ws(p));
			if (!p || *(p = ws(p)) != ':')
				return NULL;
			p++;
		}
		p = value(p, depth + 1);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *value(const char *p, int depth)
{
	p = ws(p);
	if (depth > 200)
		return NULL;
	if (*p == '{')
		return members(p + 1, '}', depth);
	if (*p == '[')
		return members(p + 1, ']', depth);
	if (*p == '"')
		return string(p);
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	return number(p);
}

static void assert_valid(const char *s)
{
	const char *e = value(s, 0);
	if (!e || *ws(e))
		fail_msg("not valid JSON: %s", s);
}

static void nesting_pretty(void **state)
{
	(void)state;
	struct out o;
	begin(&o, false);
	qc_json_obj_begin(&o.j, NULL);
	qc_json_str(&o.j, "a", "x");
	qc_json_arr_begin(&o.j, "list");
	qc_json_obj_begin(&o.j, NULL);
	qc_json_u64(&o.j, "n", 1);
	qc_json_obj_end(&o.j);
	qc_json_obj_begin(&o.j, NULL);
	qc_json_obj_end(&o.j);
	qc_json_arr_begin(&o.j, NULL);
	qc_json_arr_end(&o.j);
	qc_json_arr_end(&o.j);
	qc_json_null(&o.j, "z");
	qc_json_obj_end(&o.j);
	qc_json_end(&o.j);
	char *s = finish(&o);
	assert_string_equal(s, "{\n"
			       "  \"a\": \"x\",\n"
			       "  \"list\": [\n"
			       "    {\n"
			       "      \"n\": 1\n"
			       "    },\n"
			       "    {},\n"
			       "    []\n"
			       "  ],\n"
			       "  \"z\": null\n"
			       "}\n");
	assert_valid(s);
	free(s);
}

static void nesting_compact(void **state)
{
	(void)state;
	struct out o;
	begin(&o, true);
	qc_json_obj_begin(&o.j, NULL);
	qc_json_arr_begin(&o.j, "v");
	qc_json_u64(&o.j, NULL, 1);
	qc_json_bool(&o.j, NULL, true);
	qc_json_bool(&o.j, NULL, false);
	qc_json_obj_begin(&o.j, NULL);
	qc_json_str(&o.j, "k", "");
	qc_json_obj_end(&o.j);
	qc_json_arr_end(&o.j);
	qc_json_obj_begin(&o.j, "e");
	qc_json_obj_end(&o.j);
	qc_json_obj_end(&o.j);
	qc_json_end(&o.j);
	char *s = finish(&o);
	assert_string_equal(s, "{\"v\":[1,true,false,{\"k\":\"\"}],\"e\":{}}\n");
	assert_valid(s);
	free(s);
}

/* The writer tracks commas for 63 levels: a document that deep, with two
 * members at every level, is valid in both forms. */
static void nesting_deepest(void **state)
{
	(void)state;
	for (int compact = 0; compact < 2; compact++) {
		struct out o;
		begin(&o, compact);
		qc_json_obj_begin(&o.j, NULL);
		for (int d = 1; d < 63; d++) {
			qc_json_u64(&o.j, "before", (uint64_t)d);
			qc_json_obj_begin(&o.j, "in");
		}
		qc_json_u64(&o.j, "leaf", 0);
		for (int d = 1; d < 63; d++) {
			qc_json_obj_end(&o.j);
			qc_json_u64(&o.j, "after", (uint64_t)d);
		}
		qc_json_obj_end(&o.j);
		qc_json_end(&o.j);
		char *s = finish(&o);
		assert_valid(s);
		assert_int_equal(o.j.depth, 0);
		free(s);
	}
}

static void numbers(void **state)
{
	(void)state;
	struct out o;
	begin(&o, true);
	qc_json_arr_begin(&o.j, NULL);
	qc_json_u64(&o.j, NULL, 0);
	qc_json_u64(&o.j, NULL, UINT64_MAX);
	qc_json_i64(&o.j, NULL, INT64_MIN);
	qc_json_i64(&o.j, NULL, INT64_MAX);
	qc_json_i64(&o.j, NULL, -1);
	qc_json_fixed(&o.j, NULL, 1.5, 3);
	qc_json_fixed(&o.j, NULL, -0.25, 2);
	qc_json_fixed(&o.j, NULL, 2.0, 0);
	qc_json_fixed(&o.j, NULL, 0.123456789123, 20); /* at most 9 decimals */
	qc_json_fixed(&o.j, NULL, 7.0, -3);             /* none below 0 */
	qc_json_fixed(&o.j, NULL, 0.0 / 0.0, 2);       /* NaN: not JSON, written as 0 */
	qc_json_fixed(&o.j, NULL, 1e308 * 10, 1);      /* infinity: 0 too */
	qc_json_arr_end(&o.j);
	qc_json_end(&o.j);
	char *s = finish(&o);
	assert_string_equal(s, "[0,18446744073709551615,-9223372036854775808,9223372036854775807,"
			       "-1,1.500,-0.25,2,0.123456789,7,0.00,0.0]\n");
	assert_valid(s);
	free(s);
}

static void escaping(void **state)
{
	(void)state;
	struct out o;
	begin(&o, true);
	qc_json_obj_begin(&o.j, NULL);
	qc_json_str(&o.j, "q\"k\\", "a\"b\\c/d");
	qc_json_str(&o.j, "ctl", "\x01\x1f\x7f\n\t\r\b\f");
	qc_json_str(&o.j, "utf8", "caf\xc3\xa9");
	qc_json_str(&o.j, "bad", "\xff\xfe");
	qc_json_strn(&o.j, "nul", "a\0b", 3);
	qc_json_obj_end(&o.j);
	qc_json_end(&o.j);
	char *s = finish(&o);
	assert_string_equal(s, "{\"q\\\"k\\\\\":\"a\\\"b\\\\c/d\","
			       "\"ctl\":\"\\u0001\\u001f\\u007f\\n\\t\\r\\b\\f\","
			       "\"utf8\":\"caf\xc3\xa9\","
			       "\"bad\":\"\\ufffd\\ufffd\","
			       "\"nul\":\"a\\u0000b\"}\n");
	assert_valid(s);
	free(s);
}

/* Every byte value, alone, as a key and as a value: always valid JSON. */
static void every_byte(void **state)
{
	(void)state;
	for (int c = 0; c < 256; c++) {
		struct out o;
		char b[2] = { (char)c, 0 };
		begin(&o, c & 1);
		qc_json_obj_begin(&o.j, NULL);
		qc_json_strn(&o.j, b, b, 1);
		qc_json_obj_end(&o.j);
		qc_json_end(&o.j);
		char *s = finish(&o);
		assert_valid(s);
		free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(nesting_pretty), cmocka_unit_test(nesting_compact),
		cmocka_unit_test(nesting_deepest), cmocka_unit_test(numbers),
		cmocka_unit_test(escaping),       cmocka_unit_test(every_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
