/*
 * jsonread.c - the JSON reader (jsonread.h).  Strings: \u00XX escapes up
 * to 0xff decode to that single byte, because core/json.c writes any byte
 * that is not printable ASCII that way (so file names round-trip byte for
 * byte); larger code points decode to UTF-8.
 */
#include "jsonread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JV_MAX_DEPTH 32

struct parser {
	const char *start, *p, *end;
	char *err;
	size_t errlen;
	bool failed;
};

static void fail(struct parser *ps, const char *why)
{
	if (!ps->failed)
		snprintf(ps->err, ps->errlen, "%s at byte %zu", why, (size_t)(ps->p - ps->start));
	ps->failed = true;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse a string at ps->p (which points at '"'). */
static char *parse_string(struct parser *ps, size_t *outlen)
{
	ps->p++;
	size_t cap = 32, n = 0;
	char *s = malloc(cap);
	if (!s) {
		fail(ps, "out of memory");
		return NULL;
	}
	while (ps->p < ps->end && *ps->p != '"') {
		if (n + 4 >= cap) {
			char *ns = realloc(s, cap * 2);
			if (!ns) {
				free(s);
				fail(ps, "out of memory");
				return NULL;
			}
			s = ns;
			cap *= 2;
		}
		unsigned char c = (unsigned char)*ps->p++;
		if (c < 0x20) {
			free(s);
			fail(ps, "control character in string");
			return NULL;
		}
		if (c != '\\') {
			s[n++] = (char)c;
			continue;
		}
		if (ps->p >= ps->end)
			break;
		char e = *ps->p++;
		switch (e) {
		case '"': s[n++] = '"'; break;
		case '\\': s[n++] = '\\'; break;
		case '/': s[n++] = '/'; break;
		case 'b': s[n++] = '\b'; break;
		case 'f': s[n++] = '\f'; break;
		case 'n': s[n++] = '\n'; break;
		case 'r': s[n++] = '\r'; break;
		case 't': s[n++] = '\t'; break;
		case 'u': {
			unsigned cp = 0;
			for (int i = 0; i < 4; i++) {
				int h = ps->p < ps->end ? hexval(*ps->p) : -1;
				if (h < 0) {
					free(s);
					fail(ps, "bad \\u escape");
					return NULL;
				}
				cp = cp * 16 + (unsigned)h;
				ps->p++;
			}
			if (cp <= 0xff) {
				s[n++] = (char)cp;
			} else if (cp <= 0x7ff) {
				s[n++] = (char)(0xc0 | (cp >> 6));
				s[n++] = (char)(0x80 | (cp & 0x3f));
			} else {
				s[n++] = (char)(0xe0 | (cp >> 12));
				s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
				s[n++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			free(s);
			fail(ps, "bad escape");
			return NULL;
		}
	}
	if (ps->p >= ps->end) {
		free(s);
		fail(ps, "unterminated string");
		return NULL;
	}
	ps->p++;
	s[n] = 0;
	*outlen = n;
	return s;
}

static bool parse_value(struct parser *ps, struct qc_jv *v, int depth);

static bool add_kid(struct parser *ps, struct qc_jv *v, size_t *cap, struct qc_jv **kid)
{
	if (v->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct qc_jv *nk = realloc(v->kids, ncap * sizeof(*nk));
		if (!nk) {
			fail(ps, "out of memory");
			return false;
		}
		v->kids = nk;
		*cap = ncap;
	}
	*kid = &v->kids[v->n++];
	memset(*kid, 0, sizeof(**kid));
	return true;
}

static bool parse_container(struct parser *ps, struct qc_jv *v, int depth, bool obj)
{
	char close = obj ? '}' : ']';
	size_t cap = 0;
	v->type = obj ? QC_JV_OBJ : QC_JV_ARR;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close) {
		ps->p++;
		return true;
	}
	for (;;) {
		struct qc_jv *kid;
		char *key = NULL;
		skip_ws(ps);
		if (obj) {
			size_t kl;
			if (ps->p >= ps->end || *ps->p != '"') {
				fail(ps, "expected a member name");
				return false;
			}
			key = parse_string(ps, &kl);
			if (!key)
				return false;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':') {
				free(key);
				fail(ps, "expected ':'");
				return false;
			}
			ps->p++;
		}
		if (!add_kid(ps, v, &cap, &kid)) {
			free(key);
			return false;
		}
		kid->key = key;
		if (!parse_value(ps, kid, depth + 1))
			return false;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close) {
			ps->p++;
			return true;
		}
		fail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		return false;
	}
}

static bool literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
		fail(ps, "unexpected token");
		return false;
	}
	ps->p += n;
	return true;
}

static bool parse_value(struct parser *ps, struct qc_jv *v, int depth)
{
	if (depth > JV_MAX_DEPTH) {
		fail(ps, "nested too deeply");
		return false;
	}
	skip_ws(ps);
	if (ps->p >= ps->end) {
		fail(ps, "unexpected end");
		return false;
	}
	char c = *ps->p;
	if (c == '{' || c == '[')
		return parse_container(ps, v, depth, c == '{');
	if (c == '"') {
		v->type = QC_JV_STR;
		v->s = parse_string(ps, &v->slen);
		return v->s != NULL;
	}
	if (c == 't' || c == 'f') {
		v->type = QC_JV_BOOL;
		v->b = c == 't';
		return literal(ps, c == 't' ? "true" : "false");
	}
	if (c == 'n') {
		v->type = QC_JV_NULL;
		return literal(ps, "null");
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		char buf[64];
		size_t n = 0;
		while (ps->p < ps->end && n < sizeof(buf) - 1 && *ps->p && strchr("+-0123456789.eE", *ps->p))
			buf[n++] = *ps->p++;
		buf[n] = 0;
		char *e;
		v->type = QC_JV_NUM;
		v->num = strtod(buf, &e);
		if (*e) {
			fail(ps, "bad number");
			return false;
		}
		return true;
	}
	fail(ps, "unexpected character");
	return false;
}

static void free_kids(struct qc_jv *v)
{
	for (size_t i = 0; i < v->n; i++)
		free_kids(&v->kids[i]);
	free(v->kids);
	free(v->key);
	free(v->s);
}

void qc_jv_free(struct qc_jv *v)
{
	if (!v)
		return;
	free_kids(v);
	free(v);
}

int qc_jv_parse(const char *text, size_t len, struct qc_jv **out, char *err, size_t errlen)
{
	struct parser ps = { text, text, text + len, err, errlen, false };
	struct qc_jv *v = calloc(1, sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (parse_value(&ps, v, 0)) {
		skip_ws(&ps);
		if (ps.p != ps.end)
			fail(&ps, "trailing bytes");
	}
	if (ps.failed) {
		qc_jv_free(v);
		return -1;
	}
	*out = v;
	return 0;
}

const struct qc_jv *qc_jv_get(const struct qc_jv *obj, const char *key)
{
	if (!obj || obj->type != QC_JV_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->kids[i].key && strcmp(obj->kids[i].key, key) == 0)
			return &obj->kids[i];
	return NULL;
}
