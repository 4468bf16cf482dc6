/*
 * cmd_repair.c - `qcow2fsck repair` and `qcow2fsck undo`.
 *
 * repair: check, plan (repair/), print the plan; unless --dry-run: salvage
 * leaks (opt-in), write and fsync the undo journal, apply the plan phase
 * by phase, check again, clear the corrupt bit if that re-check finds
 * nothing else (a second journaled write), check again; exit with the
 * final check's code: the state after the repair (0, 2 or 3; problems it
 * refuses or cannot fix leave 2 with nothing changed).  Exit 1 only when it
 * could not run (lock, open, plan, journal, memory) or rolled back (a write
 * failed, or the check after writing could not complete): nothing changed.
 * Takes QEMU's write locks (doc/locking.md); a dry run takes check's.
 * undo: verify a journal against an image and restore it byte for byte.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checker/check.h"
#include "../core/escape.h"
#include "../repair/apply.h"
#include "../repair/journal.h"
#include "../repair/repair.h"
#include "cli.h"
#include "report.h"

struct repair_json {
	const struct qc_plan *plan;
	const char *journal;
	int initial_code;
	bool dry_run;
	long salvaged;
};

static void repair_json_cb(struct qc_json *j, void *ctx)
{
	const struct repair_json *r = ctx;
	qc_json_bool(j, "dry-run", r->dry_run);
	qc_json_i64(j, "initial-exit-code", r->initial_code);
	if (r->journal)
		qc_json_str(j, "undo-file", r->journal);
	else
		qc_json_null(j, "undo-file");
	if (r->salvaged >= 0)
		qc_json_i64(j, "leaks-salvaged", r->salvaged);
	qc_plan_json(j, r->plan);
}

static bool only_corrupt_bit_left(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	return !img->aborted && !ps->oom && !ps->unsupported && !ps->leaks &&
	       ps->corruptions == ps->per_code[QC_P_HEADER_CORRUPT_BIT];
}

/* Did --drop-snapshot name an entry the repair will drop? */
static bool qc_cli_drop_matched(const struct qc_image *img)
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

/* Informational lines: on stdout (stderr with JSON), none with -q. */
static void say(const struct qc_cli_open *co, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(const struct qc_cli_open *co, const char *fmt, ...)
{
	if (co->quiet)
		return;
	char buf[PATH_MAX * 3 + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	size_t n = strlen(buf);
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0; /* qc_esc_line ends the line itself */
	qc_esc_line(co->out == QC_OUT_JSON ? stderr : stdout, "%s", buf);
}

/* The report of a run; a non-NULL error makes the status exit_code (the
 * JSON says so in "exit-code" and "error"). */
static void report(const struct qc_cli_open *co, const struct qc_image *img, const char *path,
		   struct qc_report_extra *x, int exit_code, const char *error_code,
		   const char *error_message)
{
	if (error_code) {
		x->exit_override = true;
		x->exit_code = exit_code;
		x->error_code = error_code;
		x->error_message = error_message;
	}
	if (co->quiet)
		return;
	if (co->out == QC_OUT_JSON)
		qc_print_json(img, path, x, stdout);
	else
		qc_print_human(img, path, x, stdout);
}

/* A failure after the first check's model was freed (to leave --max-mem to
 * the re-check): the JSON failure object (the stderr line is printed by the
 * caller). */
static void fail_report(const struct qc_cli_open *co, const char *path, const char *error_code,
			const char *why)
{
	if (!co->quiet && co->out == QC_OUT_JSON)
		qc_print_json_failure(path, 1, error_code, why, stdout);
}

/* Undo what was applied; 0 when the image is back to its old bytes. */
static int roll_back(const char *journal, struct qc_io *io, const char *path)
{
	char err[512] = "";
	io->fail_after_writes = 0;
	int u = qc_journal_undo(journal, io, 0, NULL, err, sizeof(err));
	if (u < 0)
		qc_esc_line(stderr, "qcow2fsck: ROLLBACK FAILED: %s; keep %s and run 'qcow2fsck undo %s %s'",
			    err, journal, journal, path);
	else
		fprintf(stderr, "qcow2fsck: rolled back; the image is unchanged\n");
	return u;
}

/* Run the check again after writing; false when it could not complete (the
 * caller rolls back: a repair whose result cannot be judged is undone). */
static bool recheck(struct qc_io *io, const struct qc_options *o, struct qc_image **after,
		    char *why, size_t len)
{
	qc_image_free(*after);
	*after = NULL;
	if (qc_check_run(io, o, after) < 0) {
		snprintf(why, len, "out of memory");
		return false;
	}
	if ((*after)->aborted || (*after)->problems.oom) {
		snprintf(why, len, "%s", (*after)->aborted ? (*after)->abort_reason : "out of memory");
		return false;
	}
	return true;
}

int qc_cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "leaks-only", no_argument, NULL, 'l' },
		{ "undo-file", required_argument, NULL, 'u' },
		{ "salvage-leaks", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "max-mem", required_argument, NULL, 'm' },
		{ "drop-snapshot", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_cli_open co = { .command = "repair", .out = QC_OUT_HUMAN };
	bool dry_run = false;
	struct qc_repair_opts ro = { .leaks_only = false };
	const char *undo_file = NULL, *salvage = NULL;
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	struct qc_positional pos = { .n = 0 };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-q", opts, NULL)) != -1) {
		switch (c) {
		case 1: qc_add_positional(&pos, optarg); break;
		case 'n': dry_run = true; break;
		case 'l': ro.leaks_only = true; break;
		case 'u': undo_file = optarg; break;
		case 's': salvage = optarg; break;
		case 'q': co.quiet = true; break;
		case 'D':
			if (!*optarg)
				return qc_usage_error("--drop-snapshot needs an ID or a name");
			o.drop_snapshot = optarg;
			break;
		case 'o':
			if (!qc_parse_output(optarg, &co.out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case 'm':
			if (!qc_parse_size(optarg, &o.mem_cap) || o.mem_cap == 0)
				return qc_usage_error("invalid --max-mem '%s'", optarg);
			break;
		default:
			return qc_usage_error("repair: unknown option '%s'", argv[optind - 1]);
		}
	}
	qc_rest_positional(&pos, argc, argv);
	if (pos.n != 1 || pos.extra)
		return qc_usage_error("repair: expected exactly one IMAGE");
	const char *path = pos.v[0];
	/* a dry run writes nothing and locks as check does; a repair takes the
	 * write locks (doc/locking.md) */
	co.writable = !dry_run;
	co.lock = dry_run ? QC_LOCK_READ : QC_LOCK_WRITE;

	struct qc_io *io;
	struct qc_image *img = NULL, *after = NULL;
	int code = qc_cli_open_checked(path, &co, &o, &io, &img);
	if (code)
		return code;
	struct qc_plan plan;
	char *journal = NULL;
	char err[512] = "", why[600];
	int r;
	struct repair_json rj = { .plan = &plan, .dry_run = dry_run, .salvaged = -1 };
	struct qc_report_extra x = { .json = repair_json_cb, .ctx = &rj };
	qc_plan_init(&plan, io->size);
	rj.initial_code = qc_check_exit_code(img);
	if (img->aborted || img->problems.unsupported || !img->is_qcow2) {
		/* could not check (1), or not an image to repair (63): the check's verdict */
		report(&co, img, path, &x, 0, NULL, NULL);
		qc_esc_line(stderr, "qcow2fsck: repair: nothing done: %s",
			img->aborted ? img->abort_reason : "not an image qcow2fsck can repair");
		code = rj.initial_code ? rj.initial_code : 1;
		goto done;
	}
	if (o.drop_snapshot && !qc_cli_drop_matched(img)) {
		snprintf(why, sizeof(why),
			 "repair: nothing changed: no snapshot the repair can drop has ID or name '%.400s'",
			 o.drop_snapshot);
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		report(&co, img, path, &x, 1, "plan-failed", why);
		code = 1;
		goto done;
	}
	r = qc_repair_plan(img, &ro, &plan);
	o.drop_snapshot = NULL; /* the re-checks judge the image as it is */
	if (r < 0) {
		if (r == -ENOTRECOVERABLE)
			snprintf(why, sizeof(why), "repair: nothing changed: two planned writes overlap "
				 "(a bug in qcow2fsck; please report it with the image's metadata)");
		else
			snprintf(why, sizeof(why), "repair: planning failed, nothing changed: %s",
				 img->aborted ? img->abort_reason : strerror(-r));
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		report(&co, img, path, &x, 1, "plan-failed", why);
		code = 1;
		goto done;
	}
	if (co.out == QC_OUT_HUMAN && !co.quiet)
		qc_plan_print_human(&plan, stdout);
	if (dry_run || plan.n == 0) {
		/* nothing written: the state after is the state before, so problems
		 * the plan refuses or cannot fix leave 2 (or 3) */
		report(&co, img, path, &x, 0, NULL, NULL);
		code = rj.initial_code;
		if (!dry_run && code != 0)
			say(&co, "Nothing was changed: the repair refuses or cannot fix what was found.\n");
		goto done;
	}
	if (salvage) {
		long n = qc_salvage_leaks(img, &plan, salvage, err, sizeof(err));
		if (n < 0) {
			snprintf(why, sizeof(why), "repair: salvage failed, nothing changed: %s", err);
			qc_esc_line(stderr, "qcow2fsck: %s", why);
			report(&co, img, path, &x, 1, "salvage-failed", why);
			code = 1;
			goto done;
		}
		rj.salvaged = n;
		say(&co, "Salvaged %ld non-zero leaked cluster(s) into %s\n", n, salvage);
	}
	journal = undo_file ? strdup(undo_file) : qc_journal_default_path(path);
	if (!journal) {
		snprintf(why, sizeof(why), "repair: no free undo journal name beside '%s', nothing changed",
			 path);
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		report(&co, img, path, &x, 1, "journal-failed", why);
		code = 1;
		goto done;
	}
	/* what identifies the image: its header cluster, reftable and active L1 */
	struct qc_witness wit[3] = { { 0, img->cluster_size } };
	size_t nwit = 1;
	if (img->reftable_ok)
		wit[nwit++] = (struct qc_witness){ img->h.refcount_table_offset,
						   (uint64_t)img->h.refcount_table_clusters << img->cluster_bits };
	if (img->l1_ok)
		wit[nwit++] = (struct qc_witness){ img->h.l1_table_offset, (uint64_t)img->h.l1_size * 8 };
	r = qc_journal_write(journal, io, &plan, wit, nwit, err, sizeof(err));
	if (r < 0) {
		snprintf(why, sizeof(why), "repair: nothing changed: %s", err);
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		free(journal);
		journal = NULL;
		report(&co, img, path, &x, 1, "journal-failed", why);
		code = 1;
		goto done;
	}
	rj.journal = journal;
	say(&co, "Undo journal: %s (restore with: qcow2fsck undo %s %s)\n", journal, journal, path);
	/* The re-check shares --max-mem with the plan it verifies; the first
	 * check's model is no longer needed, so it goes first (a failure from
	 * here on is reported without it: fail_report). */
	uint64_t corruptions0 = img->problems.corruptions, leaks0 = img->problems.leaks;
	qc_image_free(img);
	img = NULL;
	if (o.mem_cap)
		o.mem_cap = plan.bytes < o.mem_cap ? o.mem_cap - (size_t)plan.bytes : 1;
	size_t done_writes = 0;
	const char *fail_code = NULL;
	r = qc_apply_phases(io, &plan, QC_PH_NEW, QC_PH_HEADER, &done_writes);
	if (r == -ESTALE && done_writes == 0) {
		/* compare-and-swap refused before the first write */
		snprintf(why, sizeof(why), "repair: nothing changed: the image changed since the "
			 "repair was planned");
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		unlink(journal);
		rj.journal = NULL;
		fail_report(&co, path, "image-changed", why);
		code = 1;
		goto done;
	}
	if (r < 0) {
		snprintf(why, sizeof(why), "repair: write failed after %zu write(s): %s; rolling back",
			 done_writes, r == -ESTALE ? "the image changed since the repair was planned" : strerror(-r));
		fail_code = "write-failed";
	} else if (!recheck(io, &o, &after, err, sizeof(err))) {
		snprintf(why, sizeof(why), "repair: the check after writing could not complete (%s); "
			 "rolling back", err);
		fail_code = "recheck-failed";
	} else if (qc_plan_unconditional(&plan) < plan.n && only_corrupt_bit_left(after)) {
		r = qc_apply_phases(io, &plan, QC_PH_FINAL, QC_PH_FINAL, &done_writes);
		if (r < 0) {
			snprintf(why, sizeof(why), "repair: write failed after %zu write(s): %s; rolling back",
				 done_writes, r == -ESTALE ? "the image changed since the repair was planned" : strerror(-r));
			fail_code = "write-failed";
		} else if (!recheck(io, &o, &after, err, sizeof(err))) {
			snprintf(why, sizeof(why), "repair: the check after writing could not complete "
				 "(%s); rolling back", err);
			fail_code = "recheck-failed";
		}
	} else if (qc_plan_unconditional(&plan) < plan.n) {
		say(&co, "The corrupt bit stays set: the re-check still finds problems.\n");
	}
	if (fail_code) {
		qc_esc_line(stderr, "qcow2fsck: %s", why);
		if (roll_back(journal, io, path) < 0)
			fail_code = "rollback-failed";
		fail_report(&co, path, fail_code, why);
		code = 1;
		goto done;
	}
	if (done_writes == 0) {
		/* only a conditional write was planned and it did not apply */
		unlink(journal);
		rj.journal = NULL;
		say(&co, "Nothing was changed (undo journal removed).\n");
	}
	x.corruptions_fixed = minus(corruptions0, after->problems.corruptions);
	x.leaks_fixed = minus(leaks0, after->problems.leaks);
	report(&co, after, path, &x, 0, NULL, NULL);
	/* the state after the repair: 0, 2 or 3 */
	code = qc_check_exit_code(after);
done:
	qc_plan_free(&plan);
	qc_image_free(img);
	qc_image_free(after);
	free(journal);
	qc_io_close(io);
	return code;
}

int qc_cmd_undo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned flags = 0;
	struct qc_positional pos = { .n = 0 };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-", opts, NULL)) != -1) {
		if (c == 1)
			qc_add_positional(&pos, optarg);
		else if (c == 'n')
			flags |= QC_UNDO_DRY_RUN;
		else if (c == 'f')
			flags |= QC_UNDO_FORCE;
		else
			return qc_usage_error("undo: unknown option '%s'", argv[optind - 1]);
	}
	qc_rest_positional(&pos, argc, argv);
	bool dry_run = (flags & QC_UNDO_DRY_RUN) != 0;
	if (pos.n != 2 || pos.extra)
		return qc_usage_error("undo: expected UNDO-FILE IMAGE");
	const char *journal = pos.v[0], *path = pos.v[1];
	/* undo writes: QEMU's write locks, an image in use is refused */
	struct qc_open_opts oo = { .writable = !dry_run,
				   .lock = dry_run ? QC_LOCK_READ : QC_LOCK_WRITE };
	struct qc_open_info info;
	struct qc_io *io;
	int r = qc_io_open_image(path, &oo, &io, &info);
	if (r == -EBUSY) {
		qc_esc_line(stderr, "qcow2fsck: %s: in use by another process (undo never writes to an "
			    "image in use; nothing changed)", path);
		return 1;
	}
	if (r == -EINVAL && info.special) {
		qc_esc_line(stderr, "qcow2fsck: %s: %s, not an image file: refused without opening it",
			    path, info.special);
		return 1;
	}
	if (r < 0) {
		qc_esc_line(stderr, "qcow2fsck: cannot open '%s': %s", path, strerror(-r));
		return 1;
	}
	char err[512] = "";
	r = qc_journal_undo(journal, io, flags, stdout, err, sizeof(err));
	qc_io_close(io);
	if (r < 0) {
		qc_esc_line(stderr, "qcow2fsck: undo: %s%s", err,
			r == -EINVAL || r == -ESTALE ? "; the image was not changed" : "");
		return 1;
	}
	printf("%s\n", dry_run ? "Dry run: nothing was written." : "The image was restored.");
	return 0;
}
