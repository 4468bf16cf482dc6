/*
 * policy.c - the repair policy table (see policy.h), compiled from
 * core/problems/policy.def.
 */
#include "policy.h"

static const struct qc_policy table[QC_P_COUNT] = {
#define QC_POLICY(id, hides, fixer, rebuild, left) \
	[QC_P_##id] = { true, false, QC_HIDES_##hides, QC_FIX_##fixer, (rebuild) != 0, left },
#define QC_POLICY_WARNING(id, fixer, left) \
	[QC_P_##id] = { true, true, QC_HIDES_NO, QC_FIX_##fixer, false, left },
#include "problems/policy.def"
#undef QC_POLICY
#undef QC_POLICY_WARNING
};

/* A code without a line: a warning hides nothing; anything else (which
 * tests/unit/test_policy.c forbids) is taken to hide references. */
static const struct qc_policy unlisted_warning = {
	false, false, QC_HIDES_NO, QC_FIX_NONE, false, QC_LEFT_NOT_REPAIRED,
};
static const struct qc_policy unlisted_other = {
	false, false, QC_HIDES_YES, QC_FIX_NONE, false, QC_LEFT_NOT_REPAIRED,
};

const struct qc_policy *qc_policy(enum qc_code c)
{
	if ((int)c < 0 || c >= QC_P_COUNT)
		return &unlisted_other;
	if (!table[c].listed)
		return qc_problem_table[c].severity == QC_SEV_WARNING ? &unlisted_warning
								       : &unlisted_other;
	return &table[c];
}

const char *qc_fixer_name(enum qc_fixer f)
{
	static const char *const names[QC_FIX_COUNT] = {
		"none", "refcounts", "rebuild", "copied", "header-bits", "snapshot-table", "l1", "l2", "bitmaps", "header-fields",
	};
	return (int)f >= 0 && f < QC_FIX_COUNT ? names[f] : "?";
}
