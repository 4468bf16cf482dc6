/*
 * problems.c - the problem table and the problem list (see problems.h).
 */
#include "problems.h"
#include "util.h"

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
	case QC_SEV_NOT_QCOW2:
		return "not-qcow2";
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

static void record(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
		   enum qc_owner owner, enum qc_owner other, const char *fmt, va_list ap)
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
	case QC_SEV_NOT_QCOW2:
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
		size_t ncap;
		if (!qc_grow_cap(ps->cap, ps->n, sizeof(struct qc_problem), 64, &ncap)) {
			ps->oom = true;
			return;
		}
		if (!take(ps, (ncap - ps->cap) * sizeof(struct qc_problem)))
			return;
	}
	struct qc_problem *nv = qc_grow(ps->v, &ps->cap, ps->n, sizeof(*nv), 64);
	if (!nv) {
		ps->oom = true;
		return;
	}
	ps->v = nv;
	char buf[1024];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!take(ps, strlen(buf) + 1))
		return;
	struct qc_problem *p = &ps->v[ps->n];
	p->code = code;
	p->loc = loc;
	p->weight = weight;
	p->owner = owner;
	p->other_owner = other;
	p->host_cluster = QC_NO_OFFSET;
	p->fixed = false;
	p->message = strdup(buf);
	if (!p->message) {
		ps->oom = true;
		return;
	}
	ps->n++;
}

void qc_vreport(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
		const char *fmt, va_list ap)
{
	record(ps, code, loc, weight, QC_OWN_FREE, QC_OWN_FREE, fmt, ap);
}

void qc_report_overlap(struct qc_problems *ps, enum qc_code code, struct qc_loc loc,
		       enum qc_owner owner, enum qc_owner other, const char *fmt, ...)
{
	loc.other = qc_owner_name(other);
	va_list ap;
	va_start(ap, fmt);
	record(ps, code, loc, 1, owner, other, fmt, ap);
	va_end(ap);
}

void qc_report(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
	       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	qc_vreport(ps, code, loc, weight, fmt, ap);
	va_end(ap);
}

size_t qc_snapshot_codes(const struct qc_problems *ps, int32_t snap, enum qc_code *out)
{
	bool seen[QC_P_COUNT] = { false };
	size_t n = 0;
	for (size_t k = 0; k < ps->n; k++) {
		enum qc_code c = ps->v[k].code;
		if (ps->v[k].loc.snapshot != snap || seen[c])
			continue;
		seen[c] = true;
		out[n++] = c;
	}
	return n;
}

enum qc_code qc_code_by_name(const char *name)
{
	for (int i = 0; i < QC_P_COUNT; i++)
		if (strcmp(qc_problem_table[i].code, name) == 0)
			return (enum qc_code)i;
	return QC_P_COUNT;
}
