/*
 * escape.c - the escaper for human and JSON output (see escape.h for the
 * rules).  Relies on nothing but the C library; reads the locale from the
 * environment instead of calling setlocale(), so no global state changes.
 */
#include "escape.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

size_t qc_utf8_decode(const unsigned char *s, size_t n, unsigned long *cp)
{
	if (n == 0)
		return 0;
	unsigned char c = s[0];
	size_t len;
	unsigned long v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0; /* continuation byte, overlong lead 0xc0/0xc1, or 0xf5.. */
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Code points no output shows raw: C1 controls and invisible format controls. */
static bool dangerous(unsigned long cp)
{
	return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
	       (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

/* Output goes to a FILE or into a bounded buffer (counting all of it). */
struct sink {
	FILE *f;
	char *buf;
	size_t size, len;
};

static void put(struct sink *k, const char *p, size_t n)
{
	if (k->f) {
		fwrite(p, 1, n, k->f);
	} else if (k->size) {
		size_t room = k->len < k->size - 1 ? k->size - 1 - k->len : 0;
		memcpy(k->buf + k->len, p, n < room ? n : room);
	}
	k->len += n;
}

static void putfmt(struct sink *k, const char *fmt, unsigned long v)
{
	char t[16];
	int n = snprintf(t, sizeof(t), fmt, v);
	put(k, t, (size_t)n);
}

static void escape(struct sink *k, const char *str, size_t n, enum qc_esc_form form)
{
	const unsigned char *s = (const unsigned char *)str;
	bool json = form == QC_ESC_JSON;
	size_t i = 0;
	while (i < n) {
		/* a run of bytes that pass unchanged */
		size_t run = i;
		while (run < n && s[run] >= 0x20 && s[run] < 0x7f && s[run] != '\\' &&
		       !(json && s[run] == '"'))
			run++;
		if (run > i) {
			put(k, (const char *)s + i, run - i);
			i = run;
			continue;
		}
		unsigned char c = s[i];
		if (c == '\\' || (json && c == '"')) {
			char e[2] = { '\\', (char)c };
			put(k, e, 2);
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			const char *sh = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" :
					 json && c == '\b' ? "\\b" : json && c == '\f' ? "\\f" : NULL;
			if (sh)
				put(k, sh, 2);
			else
				putfmt(k, json ? "\\u%04lx" : "\\x%02lx", c);
			i++;
			continue;
		}
		unsigned long cp;
		size_t len = qc_utf8_decode(s + i, n - i, &cp);
		if (len == 0) {
			if (json)
				put(k, "\\ufffd", 6);
			else
				putfmt(k, "\\x%02lx", c);
			i++;
			continue;
		}
		if (dangerous(cp) || form == QC_ESC_HUMAN_ASCII)
			putfmt(k, cp > 0xffff ? "\\U%08lx" : "\\u%04lx", cp); /* JSON: cp <= 0xffff */
		else
			put(k, (const char *)s + i, len);
		i += len;
	}
}

void qc_esc_write(FILE *f, const char *s, size_t n, enum qc_esc_form form)
{
	struct sink k = { .f = f };
	escape(&k, s, n, form);
}

size_t qc_esc_str(char *dst, size_t size, const char *s, size_t n, enum qc_esc_form form)
{
	struct sink k = { .buf = dst, .size = size };
	escape(&k, s, n, form);
	if (size)
		dst[k.len < size ? k.len : size - 1] = 0;
	return k.len;
}

static bool names_utf8(const char *v)
{
	for (; v && *v; v++)
		if (strncasecmp(v, "utf-8", 5) == 0 || strncasecmp(v, "utf8", 4) == 0)
			return true;
	return false;
}

enum qc_esc_form qc_esc_human_form(void)
{
	static int cached = -1;
	if (cached < 0) {
		const char *v = NULL;
		const char *vars[] = { "LC_ALL", "LC_CTYPE", "LANG" };
		for (size_t i = 0; i < 3 && !v; i++) {
			v = getenv(vars[i]);
			if (v && !*v)
				v = NULL;
		}
		cached = names_utf8(v) ? QC_ESC_HUMAN_UTF8 : QC_ESC_HUMAN_ASCII;
	}
	return (enum qc_esc_form)cached;
}

void qc_esc_human(FILE *f, const char *s)
{
	qc_esc_write(f, s, strlen(s), qc_esc_human_form());
}

void qc_esc_human_name(FILE *f, const char *s)
{
	char b[QC_ESC_BOUND_SIZE];
	qc_esc_human(f, qc_esc_bound(b, s));
}

void qc_esc_line(FILE *f, const char *fmt, ...)
{
	char small[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	char *p = small;
	if (n < 0) {
		n = 0;
		small[0] = 0;
	} else if ((size_t)n >= sizeof(small)) {
		char *big = malloc((size_t)n + 1);
		if (big) {
			va_start(ap, fmt);
			vsnprintf(big, (size_t)n + 1, fmt, ap);
			va_end(ap);
			p = big;
		} else {
			n = (int)sizeof(small) - 1; /* print what fits */
		}
	}
	qc_esc_write(f, p, (size_t)n, qc_esc_human_form());
	fputc('\n', f);
	if (p != small)
		free(p);
}

const char *qc_esc_bound_n(char buf[QC_ESC_BOUND_SIZE], const char *s, size_t n)
{
	const char *nul = memchr(s, 0, n);
	size_t keep = nul ? (size_t)(nul - s) : n;
	if (!nul && n <= QC_ESC_NAME_MAX) {
		memcpy(buf, s, n);
		buf[n] = 0;
		return buf;
	}
	size_t cut = keep < QC_ESC_NAME_MAX - 3 ? keep : QC_ESC_NAME_MAX - 3;
	/* do not split a UTF-8 sequence: back off over continuation bytes */
	if (cut < keep)
		for (int k = 0; k < 3 && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80; k++)
			cut--;
	memcpy(buf, s, cut);
	snprintf(buf + cut, QC_ESC_BOUND_SIZE - cut, "... (%zu bytes)", n);
	return buf;
}

const char *qc_esc_bound(char buf[QC_ESC_BOUND_SIZE], const char *s)
{
	size_t n = strlen(s);
	return n <= QC_ESC_NAME_MAX ? s : qc_esc_bound_n(buf, s, n);
}
