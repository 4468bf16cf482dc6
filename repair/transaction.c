/*
 * transaction.c - one repair, start to end (transaction.h): check, plan,
 * salvage, journal, apply, re-check, the corrupt bit, re-check, rollback.
 *
 * Relies on the checker (qc_check_run), the planners (qc_repair_plan), the
 * journal (journal.h: complete and synced before the first write) and the
 * phased, compare-and-swap apply (apply.h).  The exit codes are those of
 * doc/contracts.md: the final check's verdict after a repair (0, 2 or 3),
 * 1 when the repair could not run or was rolled back.  Prints nothing.
 */
#include "transaction.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "journal.h"

struct run {
	struct qc_io *io;
	const struct qc_repair_run_opts *o;
	struct qc_repair_result *r;
	struct qc_options recheck; /* the re-checks: no --drop-snapshot, --max-mem less the plan */
};

static void event(const struct run *t, enum qc_repair_event ev)
{
	if (t->o->event)
		t->o->event(t->o->ctx, ev, t->r);
}

static void set_why(struct qc_repair_result *r, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_why(struct qc_repair_result *r, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->error_code = code;
}

/* Nothing written: the run ends with exit code 1 and the reason. */
static int refuse(struct qc_repair_result *r)
{
	r->outcome = QC_RO_REFUSED;
	return r->exit_code = 1;
}

static bool only_corrupt_bit_left(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	return !img->aborted && !ps->oom && !ps->unsupported && !ps->leaks &&
	       ps->corruptions == ps->per_code[QC_P_HEADER_CORRUPT_BIT];
}

/* Did --drop-snapshot name an entry the repair will drop? */
static bool drop_matched(const struct qc_image *img)
{
	if (!img->snapfix.decided || img->snapfix.refused || !img->snapfix.rewrite)
		return false;
	for (uint32_t i = 0; i < img->nsnapshots; i++)
		if (img->snapshots[i].fix.verdict == QC_SNAP_DROPPED)
			return true;
	return false;
}

static uint64_t minus(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* Check and plan; 0 when there is a plan to carry out (possibly empty),
 * else the run's exit code with r filled. */
static int check_and_plan(struct run *t)
{
	struct qc_repair_result *r = t->r;
	const struct qc_repair_run_opts *o = t->o;
	if (!r->before && qc_check_run(t->io, &o->check, &r->before) < 0) {
		set_why(r, "out-of-memory", "out of memory");
		return refuse(r);
	}
	struct qc_image *img = r->before;
	r->initial_code = qc_check_exit_code(img);
	if (img->aborted || img->problems.unsupported || !img->is_qcow2) {
		/* could not check (1), or not an image to repair (63) */
		r->outcome = QC_RO_NOT_REPAIRABLE;
		snprintf(r->why, sizeof(r->why), "repair: nothing done: %s",
			 img->aborted ? img->abort_reason : "not an image qcow2fsck can repair");
		return r->exit_code = r->initial_code ? r->initial_code : 1;
	}
	if (o->check.drop_snapshot && !drop_matched(img)) {
		set_why(r, "plan-failed",
			"repair: nothing changed: no snapshot the repair can drop has ID or name '%.400s'",
			o->check.drop_snapshot);
		return refuse(r);
	}
	int e = r->plan_errno = qc_repair_plan(img, &o->plan, &r->plan);
	if (e == -ENOTRECOVERABLE) {
		set_why(r, "plan-failed", "repair: nothing changed: two planned writes overlap "
			"(a bug in qcow2fsck; please report it with the image's metadata)");
		return refuse(r);
	}
	if (e < 0) {
		set_why(r, "plan-failed", "repair: planning failed, nothing changed: %s",
			img->aborted ? img->abort_reason : strerror(-e));
		return refuse(r);
	}
	event(t, QC_RE_PLANNED);
	if (o->dry_run || r->plan.n == 0) {
		/* nothing written: the state after is the state before, so
		 * problems the plan refuses or cannot fix leave 2 (or 3) */
		r->outcome = QC_RO_UNCHANGED;
		return r->exit_code = r->initial_code;
	}
	return 0;
}

/* Salvage (opt-in) and the undo journal; 0, or the run's exit code. */
static int salvage_and_journal(struct run *t)
{
	struct qc_repair_result *r = t->r;
	struct qc_image *img = r->before;
	char err[512] = "";
	if (t->o->salvage_dir) {
		long n = qc_salvage_leaks(img, &r->plan, t->o->salvage_dir, err, sizeof(err));
		if (n < 0) {
			set_why(r, "salvage-failed", "repair: salvage failed, nothing changed: %s", err);
			return refuse(r);
		}
		r->salvaged = n;
		event(t, QC_RE_SALVAGED);
	}
	r->journal = t->o->undo_file ? strdup(t->o->undo_file)
				     : qc_journal_default_path(t->o->image_path);
	if (!r->journal) {
		set_why(r, "journal-failed",
			"repair: no free undo journal name beside '%.500s', nothing changed",
			t->o->image_path ? t->o->image_path : "the image");
		return refuse(r);
	}
	/* what identifies the image: its header cluster, reftable and active L1 */
	struct qc_witness wit[3] = { { 0, img->cluster_size } };
	size_t nwit = 1;
	if (img->reftable_ok)
		wit[nwit++] = (struct qc_witness){ img->h.refcount_table_offset,
						   (uint64_t)img->h.refcount_table_clusters << img->cluster_bits };
	if (img->l1_ok)
		wit[nwit++] = (struct qc_witness){ img->h.l1_table_offset, (uint64_t)img->h.l1_size * 8 };
	if (qc_journal_write(r->journal, t->io, &r->plan, wit, nwit, err, sizeof(err)) < 0) {
		set_why(r, "journal-failed", "repair: nothing changed: %s", err);
		free(r->journal);
		r->journal = NULL;
		return refuse(r);
	}
	event(t, QC_RE_JOURNALED);
	return 0;
}

static void write_failed(struct qc_repair_result *r, int e)
{
	set_why(r, "write-failed", "repair: write failed after %zu write(s): %s; rolling back",
		r->writes, e == -ESTALE ? "the image changed since the repair was planned" : strerror(-e));
}

/* Run the check again after writing; false (r->why set) when it could
 * not complete: a repair whose result cannot be judged is undone. */
static bool recheck(struct run *t)
{
	struct qc_repair_result *r = t->r;
	const char *err = NULL;
	qc_image_free(r->after);
	r->after = NULL;
	if (qc_check_run(t->io, &t->recheck, &r->after) < 0)
		err = "out of memory";
	else if (r->after->aborted || r->after->problems.oom)
		err = r->after->aborted ? r->after->abort_reason : "out of memory";
	if (err)
		set_why(r, "recheck-failed", "repair: the check after writing could not complete "
			"(%.500s); rolling back", err);
	return !err;
}

/* Apply, re-check, the corrupt bit, re-check: false when the run must
 * roll back (r->why set), or refuse (r->outcome set: nothing written). */
static bool apply_and_recheck(struct run *t)
{
	struct qc_repair_result *r = t->r;
	struct qc_plan *p = &r->plan;
	int e = qc_apply_phases(t->io, p, QC_PH_NEW, QC_PH_HEADER, &r->writes);
	if (e == -ESTALE && r->writes == 0) {
		/* compare-and-swap refused before the first write */
		set_why(r, "image-changed", "repair: nothing changed: the image changed since the "
			"repair was planned");
		unlink(r->journal);
		free(r->journal);
		r->journal = NULL;
		refuse(r);
		return false;
	}
	if (e < 0) {
		write_failed(r, e);
		return false;
	}
	if (!recheck(t))
		return false;
	if (qc_plan_unconditional(p) == p->n)
		return true;
	if (!only_corrupt_bit_left(r->after)) {
		event(t, QC_RE_BIT_STAYS);
		return true;
	}
	e = qc_apply_phases(t->io, p, QC_PH_FINAL, QC_PH_FINAL, &r->writes);
	if (e < 0) {
		write_failed(r, e);
		return false;
	}
	return recheck(t);
}

/* Undo what was applied from the journal. */
static void roll_back(struct run *t)
{
	struct qc_repair_result *r = t->r;
	event(t, QC_RE_FAILED);
	t->io->fail_after_writes = 0;
	if (qc_journal_undo(r->journal, t->io, 0, NULL, r->rollback_err,
			    sizeof(r->rollback_err)) < 0) {
		r->rollback_failed = true;
		r->error_code = "rollback-failed";
	}
	event(t, QC_RE_ROLLED_BACK);
	qc_image_free(r->after);
	r->after = NULL;
	r->outcome = QC_RO_ROLLED_BACK;
	r->exit_code = 1;
}

int qc_repair_run(struct qc_io *io, struct qc_image *img, const struct qc_repair_run_opts *o,
		  struct qc_repair_result *r)
{
	memset(r, 0, sizeof(*r));
	r->before = img;
	r->salvaged = -1;
	qc_plan_init(&r->plan, io->size);
	struct run t = { .io = io, .o = o, .r = r, .recheck = o->check };
	t.recheck.drop_snapshot = NULL; /* the re-checks judge the image as it is */
	int code = check_and_plan(&t);
	if (code || r->outcome == QC_RO_UNCHANGED)
		return code;
	code = salvage_and_journal(&t);
	if (code)
		return code;
	/* The re-check shares --max-mem with the plan it verifies; the first
	 * check's model is no longer needed, so it goes first. */
	uint64_t corruptions0 = r->before->problems.corruptions, leaks0 = r->before->problems.leaks;
	qc_image_free(r->before);
	r->before = NULL;
	if (t.recheck.mem_cap)
		t.recheck.mem_cap = r->plan.bytes < t.recheck.mem_cap
					    ? t.recheck.mem_cap - (size_t)r->plan.bytes : 1;
	if (!apply_and_recheck(&t)) {
		if (r->outcome != QC_RO_REFUSED)
			roll_back(&t);
		return r->exit_code;
	}
	if (r->writes == 0) {
		/* only a conditional write was planned and it did not apply */
		unlink(r->journal);
		free(r->journal);
		r->journal = NULL;
		r->journal_removed = true;
	}
	r->corruptions_fixed = minus(corruptions0, r->after->problems.corruptions);
	r->leaks_fixed = minus(leaks0, r->after->problems.leaks);
	r->outcome = QC_RO_REPAIRED;
	/* the state after the repair: 0, 2 or 3 */
	return r->exit_code = qc_check_exit_code(r->after);
}

void qc_repair_result_free(struct qc_repair_result *r)
{
	qc_plan_free(&r->plan);
	qc_image_free(r->before);
	qc_image_free(r->after);
	free(r->journal);
	memset(r, 0, sizeof(*r));
}
