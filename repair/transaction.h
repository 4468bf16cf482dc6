/*
 * transaction.h - one repair, start to end (doc/repair.md, doc/design.md
 * "The repair transaction"): check, plan, salvage leaks (opt-in), write
 * and sync the undo journal, apply the plan phase by phase, check again,
 * clear the corrupt bit when that re-check finds nothing else (a second
 * journaled write) and check again; a write or re-check that fails rolls
 * everything back from the journal.
 *
 * `qcow2fsck repair` (cli/cmd_repair.c) and the repair fuzz target
 * (fuzz/fuzz_repair.c) both run this, so the fuzzer tests what users run.
 * Nothing here prints: progress goes to the caller's event callback and
 * the outcome to struct qc_repair_result.
 */
#ifndef QC_TRANSACTION_H
#define QC_TRANSACTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../checker/check.h"
#include "plan.h"
#include "repair.h"

/* Steps the caller hears about, in the order they can happen. */
enum qc_repair_event {
	QC_RE_PLANNED,     /* r->plan is the plan, r->before the check it came from */
	QC_RE_SALVAGED,    /* r->salvaged non-zero leaked clusters were copied out */
	QC_RE_JOURNALED,   /* the undo journal r->journal is on disk */
	QC_RE_FAILED,      /* a write or the re-check failed (r->why): rolling back */
	QC_RE_ROLLED_BACK, /* rollback done: r->rollback_failed, r->rollback_err */
	QC_RE_BIT_STAYS,   /* the corrupt bit stays: the re-check still finds problems */
};

/* How the run ended. */
enum qc_repair_outcome {
	QC_RO_NOT_REPAIRABLE, /* the check could not complete, or not an image to repair */
	QC_RO_REFUSED,        /* nothing written: r->error_code, r->why */
	QC_RO_UNCHANGED,      /* dry run, or nothing to write */
	QC_RO_ROLLED_BACK,    /* written, then restored from the journal (or that failed) */
	QC_RO_REPAIRED,       /* r->after is the check of the repaired image */
};

struct qc_repair_result;

struct qc_repair_run_opts {
	struct qc_options check;       /* the first check's options (drop_snapshot, mem_cap) */
	struct qc_repair_opts plan;    /* leaks_only */
	bool dry_run;                  /* check and plan only */
	const char *salvage_dir;       /* --salvage-leaks, or NULL */
	const char *undo_file;         /* the journal's path, or NULL: beside image_path */
	const char *image_path;        /* for the default journal name */
	void (*event)(void *ctx, enum qc_repair_event ev, const struct qc_repair_result *r);
	void *ctx;
};

struct qc_repair_result {
	enum qc_repair_outcome outcome;
	int exit_code;               /* the command's status (doc/contracts.md) */
	int initial_code;            /* the first check's exit code */
	struct qc_image *before;     /* the first check; freed (NULL) once the journal is written */
	struct qc_image *after;      /* the last re-check (QC_RO_REPAIRED) */
	struct qc_plan plan;
	char *journal;               /* the journal kept on disk, or NULL */
	bool journal_removed;        /* nothing applied, so the journal was removed */
	long salvaged;               /* clusters salvaged, -1 without salvage */
	size_t writes;               /* writes applied (before any rollback) */
	uint64_t corruptions_fixed, leaks_fixed;
	int plan_errno;              /* qc_repair_plan()'s error (-ENOTRECOVERABLE: writes overlap) */
	const char *error_code;      /* JSON "error" code when refused or rolled back */
	char why[640];               /* its message */
	bool rollback_failed;
	char rollback_err[512];
};

/*
 * Repair the image behind io (opened for writing unless dry_run).  img is
 * the first check of io with o->check, taken over by the run, or NULL: the
 * run checks.  Fills *r (free it with qc_repair_result_free); returns
 * r->exit_code.
 */
int qc_repair_run(struct qc_io *io, struct qc_image *img, const struct qc_repair_run_opts *o,
		  struct qc_repair_result *r);
void qc_repair_result_free(struct qc_repair_result *r);

#endif
