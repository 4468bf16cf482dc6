/*
 * plan.h - a repair plan: the exact list of byte writes a repair will make
 * (offset, new bytes, the problem each one fixes, the guest range at stake,
 * a before/after summary), grouped in phases that fix the write order, plus
 * the problems the planner deliberately leaves alone and why.
 *
 * Planners (the other files in repair/) only add to a plan; apply.c journals and writes it.
 * Nothing here touches the image.
 */
#ifndef QC_PLAN_H
#define QC_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../core/json.h"
#include "../core/problems.h"

/*
 * Phases, applied in this order with a sync between them, so that a crash
 * leaves either the old or the new structures reachable (and the journal
 * restores both cases):
 *   NEW      structures written where nothing is stored (past EOF)
 *   SWITCH   the one header write that makes them live
 *   INPLACE  edits of live tables (refblock entries, L1/L2 flags)
 *   HEADER   header flag bits (dirty) once the rest is done
 *   FINAL    conditional: applied only when the re-check finds nothing
 *            left but the corrupt bit (the corrupt bit itself)
 */
enum qc_phase { QC_PH_NEW, QC_PH_SWITCH, QC_PH_INPLACE, QC_PH_HEADER, QC_PH_FINAL, QC_PH_COUNT };

struct qc_write {
	uint64_t offset;
	uint8_t *data;          /* new bytes (owned) */
	size_t len;
	uint8_t *old;           /* len bytes it replaces, as planned (owned; zeros past
				 * the end of the file): the compare of the
				 * compare-and-swap (cas.h); NULL until recorded */
	enum qc_phase phase;
	enum qc_code code;      /* problem this fixes (QC_P_REFCOUNT_LEAK, ...) */
	uint64_t guest_offset;  /* QC_NO_OFFSET when no guest range is at stake */
	uint64_t guest_length;
	char summary[160];      /* "refcount of cluster 0x50000: 2 -> 1", ... */
	unsigned round;         /* the planning round (qc_repair_plan): round k was
				 * planned on the image as rounds < k leave it */
	bool applied;           /* set by qc_apply_phases once written */
};

/* A problem the plan does not fix, with the reason. */
struct qc_left {
	enum qc_code code;
	uint64_t offset;
	char reason[200];
};

#define QC_PLAN_MAX_COVERED 16

struct qc_plan {
	struct qc_write *w;
	size_t n, cap;
	struct qc_left *left;
	size_t nleft, leftcap;
	uint64_t end_after;     /* file length once every write is applied */
	uint64_t *freed;        /* clusters whose refcount the plan takes to 0 */
	size_t nfreed, freedcap;
	/* codes a write fixes besides the one it is named after (a refblock
	 * write fixes leaks and low counts at once): see qc_plan_fixes() */
	enum qc_code covered[QC_PLAN_MAX_COVERED];
	size_t ncovered;
	bool oom;
	/* The memory budget (--max-mem) the plan draws on, when set
	 * (qc_plan_set_budget): every array and every write's bytes are first
	 * taken with reserve(budget_ctx, n); a refusal sets oom and over_cap.
	 * bytes is what the plan holds. */
	bool (*reserve)(void *budget_ctx, uint64_t n);
	void (*release)(void *budget_ctx, uint64_t n);
	void *budget_ctx;
	uint64_t bytes;
	bool over_cap;
	unsigned round;         /* the round writes added now belong to */
	unsigned rounds;        /* rounds merged into this plan (qc_plan_merge_round) */
};

/* Planning rounds at most (repair.c): each is a whole check of the image. */
#define QC_PLAN_MAX_ROUNDS 5

void qc_plan_init(struct qc_plan *p, uint64_t file_size);
void qc_plan_free(struct qc_plan *p);
/*
 * Draw the plan's memory from a budget from now on (what it holds already
 * is taken first: false when that is refused).  reserve = NULL detaches
 * it: the plan keeps its bytes but no longer reports them (qc_repair_plan
 * detaches the image's budget before it returns: the image may be freed
 * before the plan).
 */
bool qc_plan_set_budget(struct qc_plan *p, bool (*reserve)(void *, uint64_t),
			void (*release)(void *, uint64_t), void *ctx);
/* Free one write's bytes (a planner dropping it) and give them back. */
void qc_plan_drop_data(struct qc_plan *p, struct qc_write *w);

/* Add one write (data copied).  Returns the new write or NULL on OOM. */
struct qc_write *qc_plan_add(struct qc_plan *p, enum qc_phase ph, uint64_t off, const void *data,
			     size_t len, enum qc_code code, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/*
 * Add writes for the bytes that differ between old and new (both len bytes
 * at off): one write per run of changed bytes, runs closer than 16 bytes
 * merged.  Returns the number of writes added, or -1 on OOM.
 */
int qc_plan_diff(struct qc_plan *p, enum qc_phase ph, uint64_t off, const uint8_t *old,
		 const uint8_t *new, size_t len, enum qc_code code, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));

/* Note that some write of the plan also fixes findings of `code`. */
void qc_plan_cover(struct qc_plan *p, enum qc_code code);
/* Does some write of the plan fix findings of `code` (named after it or
 * covering it)?  O(n) once per code. */
bool qc_plan_fixes(const struct qc_plan *p, enum qc_code code);

/* Note a cluster the plan frees (for --salvage-leaks). */
void qc_plan_freed(struct qc_plan *p, uint64_t cluster);

void qc_plan_leave(struct qc_plan *p, enum qc_code code, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Stable sort by round, then phase (planners may add in any order). */
void qc_plan_sort(struct qc_plan *p);

/*
 * Append the writes of q (a later round, planned on the image as p's
 * unconditional writes leave it) to p, and make q's verdicts p's: p's
 * conditional (FINAL) writes and "left" entries are replaced by q's, its
 * freed clusters and covered codes added.  q is emptied (free it still).
 * Returns 0, -ENOMEM, or 1 when a write of q overlaps a write of p with
 * other bytes (nothing merged: the journal keeps one old copy per byte and
 * recognises a region by the bytes of its own write, journal.h).
 */
int qc_plan_merge_round(struct qc_plan *p, struct qc_plan *q);
/*
 * 1 when two planned writes overlap (other than the header flag writes of
 * phases HEADER and FINAL, which rewrite the same field on purpose), with
 * *at = the later one's offset; 0 when none do; -1 on OOM.  Planners edit
 * disjoint structures, so an overlap is a planner bug: a write on behalf
 * of one structure landing in another.
 */
int qc_plan_conflict(const struct qc_plan *p, uint64_t *at);
/* Number of writes in phases < QC_PH_FINAL. */
size_t qc_plan_unconditional(const struct qc_plan *p);

void qc_plan_print_human(const struct qc_plan *p, FILE *f);
/* Members "plan" (array of writes) and "left" (array) of the JSON report. */
void qc_plan_json(struct qc_json *j, const struct qc_plan *p);

const char *qc_phase_name(enum qc_phase ph);

#endif
