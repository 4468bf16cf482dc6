/*
 * cmd_repair.c - `qcow2fsck repair` and `qcow2fsck undo`.
 *
 * repair: parse the options, open the image (QEMU's locks) and run the
 * repair transaction (repair/transaction.h: check, plan, salvage, journal,
 * apply, re-check, corrupt bit, re-check, rollback), printing its steps as
 * it reports them and the report at the end.  Exits with the
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
#include "../repair/journal.h"
#include "../repair/transaction.h"
#include "cli.h"
#include "report.h"

/* What the command's callbacks need. */
struct repair_cli {
	const struct qc_cli_open *co;
	const char *path;
	const char *salvage_dir;
	bool dry_run;
};

struct repair_json {
	const struct repair_cli *c;
	const struct qc_repair_result *r;
};

static void repair_json_cb(struct qc_json *j, void *ctx)
{
	const struct repair_json *rj = ctx;
	const struct qc_repair_result *r = rj->r;
	qc_json_bool(j, "dry-run", rj->c->dry_run);
	qc_json_i64(j, "initial-exit-code", r->initial_code);
	if (r->journal)
		qc_json_str(j, "undo-file", r->journal);
	else
		qc_json_null(j, "undo-file");
	if (r->salvaged >= 0)
		qc_json_i64(j, "leaks-salvaged", r->salvaged);
	qc_plan_json(j, &r->plan);
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

/* The transaction's steps, told as they happen (repair/transaction.h). */
static void on_event(void *ctx, enum qc_repair_event ev, const struct qc_repair_result *r)
{
	const struct repair_cli *c = ctx;
	const struct qc_cli_open *co = c->co;
	switch (ev) {
	case QC_RE_PLANNED:
		if (co->out == QC_OUT_HUMAN && !co->quiet)
			qc_plan_print_human(&r->plan, stdout);
		break;
	case QC_RE_SALVAGED:
		say(co, "Salvaged %ld non-zero leaked cluster(s) into %s\n", r->salvaged,
		    c->salvage_dir);
		break;
	case QC_RE_JOURNALED:
		say(co, "Undo journal: %s (restore with: qcow2fsck undo %s %s)\n", r->journal,
		    r->journal, c->path);
		break;
	case QC_RE_FAILED:
		qc_esc_line(stderr, "qcow2fsck: %s", r->why);
		break;
	case QC_RE_ROLLED_BACK:
		if (r->rollback_failed)
			qc_esc_line(stderr, "qcow2fsck: ROLLBACK FAILED: %s; keep %s and run 'qcow2fsck undo %s %s'",
				    r->rollback_err, r->journal, r->journal, c->path);
		else
			fprintf(stderr, "qcow2fsck: rolled back; the image is unchanged\n");
		break;
	case QC_RE_BIT_STAYS:
		say(co, "The corrupt bit stays: the re-check still finds problems.\n");
		break;
	}
}

/* The report of a run: the model's (after the repair, or of the first
 * check when nothing was written), or, once the first check's model was
 * freed and no re-check stands, the JSON failure object.  A refused or
 * rolled-back run carries its error (exit 1). */
static void report(const struct repair_cli *c, const struct qc_repair_result *r)
{
	const struct qc_cli_open *co = c->co;
	struct repair_json rj = { .c = c, .r = r };
	struct qc_report_extra x = { .json = repair_json_cb, .ctx = &rj };
	const struct qc_image *img = r->outcome == QC_RO_REPAIRED ? r->after : r->before;
	if (r->outcome == QC_RO_REFUSED || r->outcome == QC_RO_ROLLED_BACK) {
		x.exit_override = true;
		x.exit_code = r->exit_code;
		x.error_code = r->error_code;
		x.error_message = r->why;
	}
	x.corruptions_fixed = r->corruptions_fixed;
	x.leaks_fixed = r->leaks_fixed;
	if (co->quiet)
		return;
	if (!img) {
		if (co->out == QC_OUT_JSON)
			qc_print_json_failure(c->path, r->exit_code, r->error_code, r->why, stdout);
	} else if (co->out == QC_OUT_JSON) {
		qc_print_json(img, c->path, &x, stdout);
	} else {
		qc_print_human(img, c->path, &x, stdout);
	}
}

/* Lines on stderr/stdout after the run, then the report. */
static void finish(const struct repair_cli *c, const struct qc_repair_result *r)
{
	switch (r->outcome) {
	case QC_RO_NOT_REPAIRABLE:
		report(c, r);
		qc_esc_line(stderr, "qcow2fsck: %s", r->why);
		return;
	case QC_RO_REFUSED:
		qc_esc_line(stderr, "qcow2fsck: %s", r->why);
		break;
	case QC_RO_UNCHANGED:
		if (!c->dry_run && r->exit_code != 0)
			say(c->co, "Nothing was changed: the repair refuses or cannot fix what was found.\n");
		break;
	case QC_RO_REPAIRED:
		if (r->journal_removed)
			say(c->co, "Nothing was changed (undo journal removed).\n");
		break;
	case QC_RO_ROLLED_BACK:
		break;
	}
	report(c, r);
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
	struct qc_repair_run_opts ro = { .check = { .deep = false, .mem_cap = qc_default_mem_cap() } };
	struct qc_positional pos = { .n = 0 };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-q", opts, NULL)) != -1) {
		switch (c) {
		case 1: qc_add_positional(&pos, optarg); break;
		case 'n': ro.dry_run = true; break;
		case 'l': ro.plan.leaks_only = true; break;
		case 'u': ro.undo_file = optarg; break;
		case 's': ro.salvage_dir = optarg; break;
		case 'q': co.quiet = true; break;
		case 'D':
			if (!*optarg)
				return qc_usage_error("--drop-snapshot needs an ID or a name");
			ro.check.drop_snapshot = optarg;
			break;
		case 'o':
			if (!qc_parse_output(optarg, &co.out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case 'm':
			if (!qc_parse_size(optarg, &ro.check.mem_cap) || ro.check.mem_cap == 0)
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
	co.writable = !ro.dry_run;
	co.lock = ro.dry_run ? QC_LOCK_READ : QC_LOCK_WRITE;
	struct qc_io *io;
	struct qc_image *img = NULL;
	int code = qc_cli_open_checked(path, &co, &ro.check, &io, &img);
	if (code)
		return code;
	struct repair_cli rc = { .co = &co, .path = path, .salvage_dir = ro.salvage_dir,
				 .dry_run = ro.dry_run };
	ro.image_path = path;
	ro.event = on_event;
	ro.ctx = &rc;
	struct qc_repair_result r;
	code = qc_repair_run(io, img, &ro, &r);
	finish(&rc, &r);
	qc_repair_result_free(&r);
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
