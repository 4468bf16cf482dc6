/*
 * problems.h - the problem table (stable codes, severity, structure,
 * summary) and the list of problems a check found.
 *
 * The table lives in core/problems/<structure>.def, one X-macro line per
 * problem, each file sorted by code and the files included in name order,
 * so the whole table is sorted; tests/unit/test_problems.c enforces it.
 * Findings never go to stdout directly: passes record them here and the
 * report writers (report.c) print them.
 */
#ifndef QC_PROBLEMS_H
#define QC_PROBLEMS_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clustermap.h"

enum qc_severity {
	QC_SEV_CORRUPTION,
	QC_SEV_LEAK,
	QC_SEV_WARNING,
	QC_SEV_NOT_QCOW2, /* the file is another format: counted as none of the three */
};

/* Problem flags. */
#define QC_PF_UNSUPPORTED 1u /* not qcow2 / unsupported: exit 63 */

enum qc_code {
#define QC_PROBLEM(id, code, sev, flags, structure, summary) QC_P_##id,
#include "problems/all.def"
#undef QC_PROBLEM
	QC_P_COUNT
};

struct qc_problem_info {
	const char *code;
	enum qc_severity severity;
	unsigned flags;
	const char *structure;
	const char *summary;
};

extern const struct qc_problem_info qc_problem_table[QC_P_COUNT];

const char *qc_severity_name(enum qc_severity s);

#define QC_NO_OFFSET UINT64_MAX

/* Where a problem is: all fields optional. */
struct qc_loc {
	uint64_t offset;       /* host offset of the faulty field/structure */
	uint64_t guest_offset; /* first guest byte at stake */
	uint64_t guest_length; /* length of the guest range at stake (0 = unknown) */
	int32_t snapshot;      /* snapshot index, -1 for none */
	const char *other;     /* the other structure of an overlap (static string) */
};

#define QC_LOC(off) ((struct qc_loc){ (off), QC_NO_OFFSET, 0, -1, NULL })

struct qc_problem {
	enum qc_code code;
	struct qc_loc loc;
	uint64_t weight; /* clusters or incidents this record stands for */
	char *message;
	/* overlap-* records (qc_report_overlap): the structure whose claim
	 * found the clash and the one already there; QC_OWN_FREE otherwise */
	enum qc_owner owner, other_owner;
	/* overlap-* records of one host cluster (checker/check.c): its index,
	 * so a planner can tell which contested cluster a fixed record frees;
	 * QC_NO_OFFSET otherwise (a range overlap, or any other code) */
	uint64_t host_cluster;
	/* set by a repair planner that planned this record's fix and brought
	 * the model to the repaired state (repair/fix.h); never by a check */
	bool fixed;
};

struct qc_problems {
	struct qc_problem *v;
	size_t n, cap;
	uint64_t per_code[QC_P_COUNT]; /* occurrences, records kept or not */
	uint64_t corruptions, leaks, warnings;
	uint64_t omitted;              /* records not kept (per-code cap) */
	bool unsupported;
	bool oom;
	/* The memory budget (--max-mem) the records draw on, when set: every
	 * byte of the list (array and messages) is first taken with
	 * reserve(budget_ctx, n); a refusal drops the record and sets
	 * over_cap (the owner then ends the run: exit 1).  bytes is what the
	 * list holds. */
	bool (*reserve)(void *budget_ctx, uint64_t n);
	void *budget_ctx;
	uint64_t bytes;
	bool over_cap;
};

/* Records kept per code; further occurrences are counted only. */
#define QC_MAX_RECORDS_PER_CODE 1000

void qc_problems_init(struct qc_problems *ps);
void qc_problems_free(struct qc_problems *ps);

/*
 * Record a problem; the message is a printf format. weight >= 1.  The
 * message is kept raw: pass every untrusted string (a name from the image)
 * through qc_esc_bound() (core/escape.h); the report writers escape the
 * whole message for their format when they print it.
 */
void qc_report(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
	       const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void qc_vreport(struct qc_problems *ps, enum qc_code code, struct qc_loc loc, uint64_t weight,
		const char *fmt, va_list ap);

/*
 * Record an overlap between two structures: like qc_report(), and the
 * record keeps both owners as data (loc.other is set to other's name), so
 * later decisions never parse the message.
 */
void qc_report_overlap(struct qc_problems *ps, enum qc_code code, struct qc_loc loc,
		       enum qc_owner owner, enum qc_owner other, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/*
 * The distinct codes of the records kept against snapshot snap, in the
 * order first recorded, into out (room for QC_P_COUNT); returns how many.
 */
size_t qc_snapshot_codes(const struct qc_problems *ps, int32_t snap, enum qc_code *out);

/* Look a code up by name: QC_P_COUNT if unknown. */
enum qc_code qc_code_by_name(const char *name);

#endif
