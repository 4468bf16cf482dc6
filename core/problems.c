/*
 * problems.c - the problem table and the problem list (see problems.h).
 */
#include "problems.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct qc_problem_info qc_problem_table[QC_P_COUNT] = {
#define QC_PROBLEM(id, code, sev, flags, structure, summary) \
	[QC_P_##id] = { code, QC_SEV_##sev, flags, structure, summary },
#include "problems/all.def"
#undef QC_PROBLEM
};

const char *qc_severity_name(enum qc_severity s)
{
	switch (s) {
	case QC_SEV_CORRUPTION:
		return "corruption";
	case QC_SEV_LEAK:
		return "leak";
	case QC_SEV_WARNING:
		return "warning";
	}
	return "?";
}

void qc_problems_init(struct qc_problems *ps)
{
	memset(ps, 0, sizeof(*ps));
}

void qc_problems_free(struct qc_problems *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i].message);
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

/* Take n bytes of the budget for the list (always, without one). */
static bool take(struct qc_problems *ps, uint64_t n)
{
	if (ps->reserve && !ps->reserve(ps->budget_ctx, n)) {
		ps->over_cap = true;
		return false;
	}
	ps->bytes += n;
	return true;
}

void qc_vreport(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
		const char *fmt, va_list ap)
{
	const struct qc_problem_info *pi = &qc_problem_table[code];
	if (weight == 0)
		weight = 1;
	switch (pi->severity) {
	case QC_SEV_CORRUPTION:
		ps->corruptions += weight;
		break;
	case QC_SEV_LEAK:
		ps->leaks += weight;
		break;
	case QC_SEV_WARNING:
		ps->warnings += weight;
		break;
	}
	if (pi->flags & QC_PF_UNSUPPORTED)
		ps->unsupported = true;
	if (ps->per_code[code]++ >= QC_MAX_RECORDS_PER_CODE) {
		ps->omitted++;
		return;
	}
	if (ps->over_cap)
		return;
	if (ps->n == ps->cap) {
		size_t ncap = ps->cap ? ps->cap * 2 : 64;
		if (!take(ps, (ncap - ps->cap) * sizeof(struct qc_problem)))
			return;
		struct qc_problem *nv = realloc(ps->v, ncap * sizeof(*nv));
		if (!nv) {
			ps->oom = true;
			return;
		}
		ps->v = nv;
		ps->cap = ncap;
	}
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!take(ps, strlen(buf) + 1))
		return;
	struct qc_problem *p = &ps->v[ps->n];
	p->code = code;
	p->loc = loc;
	p->weight = weight;
	p->message = strdup(buf);
	if (!p->message) {
		ps->oom = true;
		return;
	}
	ps->n++;
}

void qc_report(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	qc_vreport(ps, code, loc, weight, fmt, ap);
	va_end(ap);
}

enum qc_code qc_code_by_name(const char *name)
{
	for (int i = 0; i < QC_P_COUNT; i++)
		if (strcmp(qc_problem_table[i].code, name) == 0)
			return (enum qc_code)i;
	return QC_P_COUNT;
}
