/*
 * policy.c - verdicts under --fail-on, --allow and --baseline (policy.h).
 *
 * Relies on the problem table for each code's severity and on
 * qc_problems.per_code counting every occurrence (kept or not), so a code
 * is judged by whether it occurred at all, never by matching messages.
 */
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/image.h"
#include "jsonread.h"

void qc_policy_init(struct qc_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->fail_on = QC_FAIL_CORRUPTION;
}

void qc_policy_free(struct qc_policy *p)
{
	for (size_t i = 0; i < p->nbl; i++)
		free(p->bl[i].path);
	free(p->bl);
	p->bl = NULL;
	p->nbl = p->capbl = 0;
}

bool qc_policy_parse_fail_on(const char *v, enum qc_fail_on *out)
{
	if (strcmp(v, "corruption") == 0)
		*out = QC_FAIL_CORRUPTION;
	else if (strcmp(v, "leak") == 0)
		*out = QC_FAIL_LEAK;
	else if (strcmp(v, "warning") == 0)
		*out = QC_FAIL_WARNING;
	else
		return false;
	return true;
}

const char *qc_fail_on_name(enum qc_fail_on f)
{
	return f == QC_FAIL_WARNING ? "warning" : f == QC_FAIL_LEAK ? "leak" : "corruption";
}

static const char *const class_names[QC_CLASS_COUNT] = {
	"clean", "warning", "leak", "corruption", "error", "unsupported", "not-qcow2",
};

const char *qc_class_name(enum qc_class c)
{
	return c < QC_CLASS_COUNT ? class_names[c] : "?";
}

enum qc_class qc_class_by_name(const char *name)
{
	for (int i = 0; i < QC_CLASS_COUNT; i++)
		if (strcmp(class_names[i], name) == 0)
			return (enum qc_class)i;
	return QC_CLASS_COUNT;
}

int qc_class_exit(enum qc_class c, enum qc_fail_on f)
{
	switch (c) {
	case QC_CLASS_CLEAN:
		return 0;
	case QC_CLASS_WARNING:
		return f == QC_FAIL_WARNING ? 2 : 0;
	case QC_CLASS_LEAK:
		return f == QC_FAIL_CORRUPTION ? 3 : 2;
	case QC_CLASS_CORRUPTION:
		return 2;
	case QC_CLASS_ERROR:
		return 1;
	default:
		return 63;
	}
}

bool qc_policy_add(struct qc_policy *p, const char *path, enum qc_code code)
{
	if (strcmp(path, "*") == 0) {
		p->allow[code] = true;
		return true;
	}
	if (p->nbl == p->capbl) {
		size_t ncap = p->capbl ? p->capbl * 2 : 64;
		struct qc_baseline_entry *n = realloc(p->bl, ncap * sizeof(*n));
		if (!n)
			return false;
		p->bl = n;
		p->capbl = ncap;
	}
	char *s = strdup(path);
	if (!s)
		return false;
	p->bl[p->nbl].path = s;
	p->bl[p->nbl].code = code;
	p->nbl++;
	return true;
}

bool qc_policy_allow_list(struct qc_policy *p, const char *list, char **bad)
{
	char *copy = strdup(list), *save = NULL;
	*bad = NULL;
	if (!copy)
		return false;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum qc_code c = qc_code_by_name(tok);
		if (c == QC_P_COUNT) {
			*bad = strdup(tok);
			free(copy);
			return false;
		}
		p->allow[c] = true;
	}
	free(copy);
	return true;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct qc_baseline_entry *x = a, *y = b;
	int r = strcmp(x->path, y->path);
	return r ? r : (x->code > y->code) - (x->code < y->code);
}

void qc_policy_seal(struct qc_policy *p)
{
	if (p->nbl > 1)
		qsort(p->bl, p->nbl, sizeof(*p->bl), cmp_entry);
}

/* First per-path entry for path, or nbl. */
static size_t bl_first(const struct qc_policy *p, const char *path)
{
	size_t lo = 0, hi = p->nbl;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(p->bl[mid].path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* One JSON Lines record of a previous scan: accept its codes for its file. */
static int baseline_json(struct qc_policy *p, const char *line, size_t len, char *err,
			 size_t errlen)
{
	struct qc_jv *doc = NULL;
	char why[128];
	if (qc_jv_parse(line, len, &doc, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "invalid JSON record: %s", why);
		return -1;
	}
	const struct qc_jv *fn = qc_jv_get(doc, "filename");
	const struct qc_jv *probs = qc_jv_get(doc, "problems");
	if (!fn || fn->type != QC_JV_STR || (probs && probs->type != QC_JV_ARR)) {
		qc_jv_free(doc);
		snprintf(err, errlen, "record without a filename string");
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; probs && i < probs->n && rc == 0; i++) {
		const struct qc_jv *code = qc_jv_get(&probs->kids[i], "code");
		if (!code || code->type != QC_JV_STR)
			continue;
		enum qc_code c = qc_code_by_name(code->s);
		if (c == QC_P_COUNT) {
			snprintf(err, errlen, "unknown problem code in record");
			rc = -1;
		} else if (!qc_policy_add(p, fn->s, c)) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
		}
	}
	qc_jv_free(doc);
	return rc;
}

int qc_policy_load_baseline(struct qc_policy *p, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	if (!f) {
		snprintf(err, errlen, "cannot open baseline '%s': %s", file, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int rc = 0;
	char why[160];
	while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		if (*s == '{') {
			if (baseline_json(p, s, strlen(s), why, sizeof(why)) < 0) {
				snprintf(err, errlen, "%s:%lu: %s", file, lineno, why);
				rc = -1;
			}
			continue;
		}
		char *end = s + strlen(s);
		while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = 0;
		char *sp = end;
		while (sp > s && sp[-1] != ' ' && sp[-1] != '\t')
			sp--;
		char *code = sp;
		while (sp > s && (sp[-1] == ' ' || sp[-1] == '\t'))
			sp--;
		if (sp == s) {
			snprintf(err, errlen, "%s:%lu: expected \"PATH CODE\" or \"* CODE\"", file, lineno);
			rc = -1;
			continue;
		}
		*sp = 0;
		enum qc_code c = qc_code_by_name(code);
		if (c == QC_P_COUNT) {
			snprintf(err, errlen, "%s:%lu: unknown problem code '%.60s'", file, lineno, code);
			rc = -1;
		} else if (!qc_policy_add(p, s, c)) {
			snprintf(err, errlen, "out of memory");
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "cannot read baseline '%s'", file);
		rc = -1;
	}
	free(line);
	fclose(f);
	qc_policy_seal(p);
	return rc;
}

void qc_policy_judge(const struct qc_policy *p, const struct qc_image *img, const char *path,
		     struct qc_verdict *v)
{
	const struct qc_problems *ps = &img->problems;
	memset(v, 0, sizeof(*v));
	bool accept[QC_P_COUNT];
	memcpy(accept, p->allow, sizeof(accept));
	for (size_t i = bl_first(p, path); i < p->nbl && strcmp(p->bl[i].path, path) == 0; i++)
		accept[p->bl[i].code] = true;
	bool corr = false, leak = false, warn = false;
	for (int c = 0; c < QC_P_COUNT; c++) {
		if (!ps->per_code[c])
			continue;
		if (accept[c] && !(qc_problem_table[c].flags & QC_PF_UNSUPPORTED)) {
			v->allowed[c] = true;
			v->nallowed++;
			continue;
		}
		switch (qc_problem_table[c].severity) {
		case QC_SEV_CORRUPTION: corr = true; break;
		case QC_SEV_LEAK: leak = true; break;
		case QC_SEV_WARNING: warn = true; break;
		case QC_SEV_NOT_QCOW2: break; /* its own class, below */
		}
	}
	if (img->not_qcow2 || ps->per_code[QC_P_IMAGE_NOT_QCOW2])
		v->cls = QC_CLASS_NOT_QCOW2;
	else if (ps->unsupported)
		v->cls = QC_CLASS_UNSUPPORTED;
	else if (img->aborted || ps->oom)
		v->cls = QC_CLASS_ERROR;
	else if (corr)
		v->cls = QC_CLASS_CORRUPTION;
	else if (leak)
		v->cls = QC_CLASS_LEAK;
	else if (warn)
		v->cls = QC_CLASS_WARNING;
	else
		v->cls = QC_CLASS_CLEAN;
	v->fail_on = p->fail_on;
	v->exit_code = qc_class_exit(v->cls, p->fail_on);
}
