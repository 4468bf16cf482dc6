/*
 * test_escape.c - the escaper (core/escape.c): UTF-8 decoding, the human
 * forms (UTF-8 and ASCII locales), the JSON form, bounding of long names,
 * and properties over every 1- and 2-byte input and many random ones: no
 * control byte ever comes out, JSON output is valid UTF-8 and ASCII output
 * is ASCII.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/escape.h"
#include "../../core/json.h"

static char out[4096];

static const char *esc(const char *s, size_t n, enum qc_esc_form form)
{
	size_t len = qc_esc_str(out, sizeof(out), s, n, form);
	assert_true(len < sizeof(out));
	assert_int_equal(strlen(out), len);
	return out;
}

#define H(lit) esc(lit, sizeof(lit) - 1, QC_ESC_HUMAN_UTF8)
#define A(lit) esc(lit, sizeof(lit) - 1, QC_ESC_HUMAN_ASCII)
#define J(lit) esc(lit, sizeof(lit) - 1, QC_ESC_JSON)

static void utf8_decode(void **state)
{
	(void)state;
	unsigned long cp;
	assert_int_equal(qc_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
	assert_int_equal(cp, 'A');
	assert_int_equal(qc_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
	assert_int_equal(cp, 0xe9);
	assert_int_equal(qc_utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
	assert_int_equal(cp, 0x20ac);
	assert_int_equal(qc_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
	assert_int_equal(cp, 0x1f600);
	assert_int_equal(qc_utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
	assert_int_equal(cp, 0x10ffff);
	/* invalid: overlong, surrogates, too large, truncated, lone continuation */
	static const char *const bad[] = {
		"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xf0\x80\x80\x80",
		"\xf0\x8f\xbf\xbf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80",
		"\xf5\x80\x80\x80", "\xff", "\xfe", "\x80", "\xbf", "\xc3", "\xe2\x82",
		"\xf0\x9f\x98", "\xc3\x41", "\xe2\x28\xa1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(qc_utf8_decode((const unsigned char *)bad[i], strlen(bad[i]), &cp), 0);
	/* a sequence longer than the bytes left is invalid */
	assert_int_equal(qc_utf8_decode((const unsigned char *)"\xc3\xa9", 1, &cp), 0);
}

static void human_utf8(void **state)
{
	(void)state;
	assert_string_equal(H("plain name"), "plain name");
	assert_string_equal(H("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
	assert_string_equal(H("\x1b[2J"), "\\x1b[2J");
	assert_string_equal(H("a\nb\rc\td\\e"), "a\\nb\\rc\\td\\\\e");
	assert_string_equal(H("\x7f\x01\x1f"), "\\x7f\\x01\\x1f");
	assert_string_equal(H("\"q\""), "\"q\"");
	/* valid UTF-8 stays, C1 and invisible format controls do not */
	assert_string_equal(H("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
			    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_string_equal(H("\xc2\x9b" "2J"), "\\u009b2J");
	assert_string_equal(H("\xc2\x85"), "\\u0085");
	assert_string_equal(H("a\xe2\x80\xae" "b"), "a\\u202eb");
	assert_string_equal(H("\xe2\x80\xa8\xe2\x81\xa6\xef\xbb\xbf"), "\\u2028\\u2066\\ufeff");
	/* invalid UTF-8: every byte as \xHH */
	assert_string_equal(H("\xff\xfe"), "\\xff\\xfe");
	assert_string_equal(H("x\xe2\x82"), "x\\xe2\\x82");
	assert_string_equal(H("\xc0\x80"), "\\xc0\\x80");
	assert_string_equal(H("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	/* a NUL inside counted bytes */
	assert_string_equal(esc("a\0b", 3, QC_ESC_HUMAN_UTF8), "a\\x00b");
}

static void human_ascii(void **state)
{
	(void)state;
	assert_string_equal(A("caf\xc3\xa9"), "caf\\u00e9");
	assert_string_equal(A("\xf0\x9f\x98\x80"), "\\U0001f600");
	assert_string_equal(A("\xc2\x9b"), "\\u009b");
	assert_string_equal(A("\xff"), "\\xff");
	assert_string_equal(A("\x1b[2J\n"), "\\x1b[2J\\n");
}

static void json_form(void **state)
{
	(void)state;
	assert_string_equal(J("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
	assert_string_equal(J("\x1b]0;t\x07"), "\\u001b]0;t\\u0007");
	assert_string_equal(J("a\nb\rc\td\be\ff"), "a\\nb\\rc\\td\\be\\ff");
	assert_string_equal(J("\x7f"), "\\u007f");
	assert_string_equal(J("caf\xc3\xa9 \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xf0\x9f\x98\x80");
	assert_string_equal(J("\xc2\x9b"), "\\u009b");
	assert_string_equal(J("\xe2\x80\xae"), "\\u202e");
	/* invalid bytes: one U+FFFD each */
	assert_string_equal(J("a\xff" "b"), "a\\ufffdb");
	assert_string_equal(J("\xe2\x82"), "\\ufffd\\ufffd");
	assert_string_equal(J("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");
	assert_string_equal(esc("\0", 1, QC_ESC_JSON), "\\u0000");
}

/* Check an escaped output: no control byte; JSON valid UTF-8; ASCII form ASCII. */
static void check_output(const char *o, enum qc_esc_form form)
{
	const unsigned char *p = (const unsigned char *)o;
	size_t n = strlen(o);
	for (size_t i = 0; i < n;) {
		unsigned long cp;
		size_t len = qc_utf8_decode(p + i, n - i, &cp);
		assert_true(len > 0); /* every form emits valid UTF-8 */
		assert_true(cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp <= 0x9f));
		if (form == QC_ESC_HUMAN_ASCII)
			assert_true(cp < 0x80);
		i += len;
	}
}

static void properties(void **state)
{
	(void)state;
	static const enum qc_esc_form forms[] = { QC_ESC_HUMAN_UTF8, QC_ESC_HUMAN_ASCII,
						  QC_ESC_JSON };
	char in[8];
	for (size_t f = 0; f < 3; f++) {
		for (unsigned a = 0; a < 256; a++) {
			in[0] = (char)a;
			check_output(esc(in, 1, forms[f]), forms[f]);
			for (unsigned b = 0; b < 256; b++) {
				in[1] = (char)b;
				check_output(esc(in, 2, forms[f]), forms[f]);
			}
		}
		uint32_t x = 12345;
		for (int k = 0; k < 200000; k++) {
			size_t n = 3 + k % 6;
			for (size_t i = 0; i < n; i++) {
				x = x * 1103515245u + 12345u;
				/* bias towards bytes that start or continue UTF-8 */
				unsigned r = (x >> 16) & 0xff;
				in[i] = (char)(r < 64 ? 0x80 | (r & 0x3f) : r < 96 ? 0xc0 | (r & 0x3f) : r);
			}
			check_output(esc(in, n, forms[f]), forms[f]);
		}
	}
}

static void str_truncates(void **state)
{
	(void)state;
	char small[6];
	size_t len = qc_esc_str(small, sizeof(small), "\x1b\x1b", 2, QC_ESC_HUMAN_UTF8);
	assert_int_equal(len, 8);
	assert_string_equal(small, "\\x1b\\");
	assert_int_equal(qc_esc_str(NULL, 0, "ab", 2, QC_ESC_JSON), 2);
}

static void bound(void **state)
{
	(void)state;
	char b[QC_ESC_BOUND_SIZE];
	const char *shortname = "snap\x1b[2J";
	assert_ptr_equal(qc_esc_bound(b, shortname), shortname); /* raw, untouched */

	/* a 64 KiB name: cut, with an ellipsis and its length */
	size_t n = 65535;
	char *big = malloc(n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	big[n] = 0;
	const char *r = qc_esc_bound(b, big);
	assert_ptr_equal(r, b);
	assert_true(strlen(r) < QC_ESC_BOUND_SIZE);
	assert_memory_equal(r, big, QC_ESC_NAME_MAX - 3);
	assert_string_equal(r + QC_ESC_NAME_MAX - 3, "... (65535 bytes)");

	/* the cut never splits a UTF-8 sequence */
	for (size_t i = 0; i + 3 <= n; i += 3)
		memcpy(big + i, "\xe2\x82\xac", 3);
	big[n - n % 3] = 0;
	r = qc_esc_bound(b, big);
	const char *dots = strstr(r, "... (");
	assert_non_null(dots);
	assert_int_equal((size_t)(dots - r) % 3, 0);
	for (const char *p = r; p < dots; p += 3)
		assert_memory_equal(p, "\xe2\x82\xac", 3);
	free(big);

	/* counted bytes: copied and terminated; a NUL ends the text and is noted */
	assert_string_equal(qc_esc_bound_n(b, "bitmapXYZ", 6), "bitmap");
	assert_string_equal(qc_esc_bound_n(b, "ab\0cd", 5), "ab... (5 bytes)");
}

static void line_and_json(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	qc_esc_line(f, "cannot open '%s': %s", "a\x1b]0;x\x07\nb", "No such file");
	struct qc_json j;
	qc_json_init(&j, f);
	qc_json_obj_begin(&j, NULL);
	qc_json_str(&j, "na\x1bme", "\xc3\xa9\xff\n");
	qc_json_obj_end(&j);
	fclose(f);
	assert_string_equal(buf, "cannot open 'a\\x1b]0;x\\x07\\nb': No such file\n"
				 "{\n  \"na\\u001bme\": \"\xc3\xa9\\ufffd\\n\"\n}");
	free(buf);

	/* a line longer than the internal buffer is printed whole */
	char *big = malloc(5000);
	assert_non_null(big);
	memset(big, '\x1b', 4999);
	big[4999] = 0;
	buf = NULL;
	f = open_memstream(&buf, &len);
	qc_esc_line(f, "%s", big);
	fclose(f);
	assert_int_equal(len, 4999 * 4 + 1);
	free(buf);
	free(big);
}

int main(void)
{
	/* qc_esc_line uses the locale's form: make it UTF-8 for this test */
	setenv("LC_ALL", "C.UTF-8", 1);
	assert_int_equal(qc_esc_human_form(), QC_ESC_HUMAN_UTF8);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(utf8_decode),  cmocka_unit_test(human_utf8),
		cmocka_unit_test(human_ascii),  cmocka_unit_test(json_form),
		cmocka_unit_test(properties),   cmocka_unit_test(str_truncates),
		cmocka_unit_test(bound),        cmocka_unit_test(line_and_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
