/*
 * cmd_repair.c - `qcow2fsck repair` and `qcow2fsck undo`.
 *
 * repair: check, plan (repair/), print the plan; unless --dry-run: salvage
 * leaks (opt-in), write and fsync the undo journal, apply the plan phase
 * by phase, check again, clear the corrupt bit if that re-check finds
 * nothing else (a second journaled write), check again; exit with the
 * final check's code.  Exit 1 when the image had problems and nothing was
 * changed, or when a failed apply was rolled back.
 * undo: verify a journal against an image and restore it byte for byte.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checker/check.h"
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

int qc_cmd_repair(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "leaks-only", no_argument, NULL, 'l' },
		{ "undo-file", required_argument, NULL, 'u' },
		{ "salvage-leaks", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "max-mem", required_argument, NULL, 'm' },
		{ "drop-snapshot", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	enum qc_output out = QC_OUT_HUMAN;
	bool dry_run = false;
	struct qc_repair_opts ro = { .leaks_only = false };
	const char *undo_file = NULL, *salvage = NULL;
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry_run = true; break;
		case 'l': ro.leaks_only = true; break;
		case 'u': undo_file = optarg; break;
		case 's': salvage = optarg; break;
		case 'D':
			if (!*optarg)
				return qc_usage_error("--drop-snapshot needs an ID or a name");
			o.drop_snapshot = optarg;
			break;
		case 'o':
			if (!qc_parse_output(optarg, &out))
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
	if (optind != argc - 1)
		return qc_usage_error("repair: expected exactly one IMAGE");
	const char *path = argv[optind];
	FILE *msg = out == QC_OUT_JSON ? stderr : stdout;

	struct qc_io *io;
	struct qc_image *img = NULL, *after = NULL;
	if (qc_cli_open_checked(path, !dry_run, &o, &io, &img))
		return 1;
	struct qc_plan plan;
	char *journal = NULL;
	char err[512] = "";
	int r, code;
	struct repair_json rj = { .plan = &plan, .dry_run = dry_run, .salvaged = -1 };
	qc_plan_init(&plan, io->size);
	rj.initial_code = qc_check_exit_code(img);
	if (img->aborted || img->problems.unsupported || !img->is_qcow2) {
		if (out == QC_OUT_JSON)
			qc_print_json(img, path, NULL, stdout);
		else
			qc_print_human(img, path, NULL, stdout);
		fprintf(stderr, "qcow2fsck: repair: nothing done: %s\n",
			img->aborted ? img->abort_reason : "not an image qcow2fsck can repair");
		code = rj.initial_code ? rj.initial_code : 1;
		goto done;
	}
	if (o.drop_snapshot && !qc_cli_drop_matched(img)) {
		fprintf(stderr, "qcow2fsck: repair: nothing changed: no snapshot the repair can drop has ID or name '%s'\n",
			o.drop_snapshot);
		code = 1;
		goto done;
	}
	r = qc_repair_plan(img, &ro, &plan);
	o.drop_snapshot = NULL; /* the re-checks judge the image as it is */
	if (r == -ENOTRECOVERABLE) {
		fprintf(stderr, "qcow2fsck: repair: nothing changed: two planned writes overlap (a bug in qcow2fsck; please report it with the image's metadata)\n");
		code = 1;
		goto done;
	}
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: repair: planning failed: %s\n", strerror(-r));
		code = 1;
		goto done;
	}
	if (out == QC_OUT_HUMAN)
		qc_plan_print_human(&plan, stdout);
	if (dry_run || plan.n == 0) {
		struct qc_report_extra x = { 0, 0, repair_json_cb, &rj };
		if (out == QC_OUT_JSON)
			qc_print_json(img, path, &x, stdout);
		else
			qc_print_human(img, path, &x, stdout);
		code = rj.initial_code;
		if (!dry_run && code != 0) {
			fprintf(msg, "Nothing was changed.\n");
			code = 1;
		}
		goto done;
	}
	if (salvage) {
		long n = qc_salvage_leaks(img, &plan, salvage, err, sizeof(err));
		if (n < 0) {
			fprintf(stderr, "qcow2fsck: repair: salvage failed, nothing changed: %s\n", err);
			code = 1;
			goto done;
		}
		rj.salvaged = n;
		fprintf(msg, "Salvaged %ld non-zero leaked cluster(s) into %s\n", n, salvage);
	}
	journal = undo_file ? strdup(undo_file) : qc_journal_default_path(path);
	if (!journal) {
		fprintf(stderr, "qcow2fsck: repair: no free undo journal name beside '%s'\n", path);
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
		fprintf(stderr, "qcow2fsck: repair: nothing changed: %s\n", err);
		free(journal);
		journal = NULL;
		code = 1;
		goto done;
	}
	rj.journal = journal;
	fprintf(msg, "Undo journal: %s (restore with: qcow2fsck undo %s %s)\n", journal, journal, path);
	size_t done_writes = 0;
	r = qc_apply_phases(io, &plan, QC_PH_NEW, QC_PH_HEADER, &done_writes);
	if (r == 0) {
		if (qc_check_run(io, &o, &after) < 0) {
			fprintf(stderr, "qcow2fsck: out of memory\n");
			code = 1;
			goto done;
		}
		if (qc_plan_unconditional(&plan) < plan.n && only_corrupt_bit_left(after)) {
			r = qc_apply_phases(io, &plan, QC_PH_FINAL, QC_PH_FINAL, &done_writes);
			qc_image_free(after);
			after = NULL;
			if (r == 0 && qc_check_run(io, &o, &after) < 0) {
				fprintf(stderr, "qcow2fsck: out of memory\n");
				code = 1;
				goto done;
			}
		} else if (qc_plan_unconditional(&plan) < plan.n) {
			fprintf(msg, "The corrupt bit stays set: the re-check still finds problems.\n");
		}
	}
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: repair: write failed after %zu write(s): %s; rolling back\n",
			done_writes, strerror(-r));
		io->fail_after_writes = 0;
		int u = qc_journal_undo(journal, io, 0, NULL, err, sizeof(err));
		if (u < 0)
			fprintf(stderr, "qcow2fsck: ROLLBACK FAILED: %s; keep %s and run 'qcow2fsck undo %s %s'\n",
				err, journal, journal, path);
		else
			fprintf(stderr, "qcow2fsck: rolled back; the image is unchanged\n");
		code = 1;
		goto done;
	}
	if (done_writes == 0) {
		/* only a conditional write was planned and it did not apply */
		unlink(journal);
		rj.journal = NULL;
		fprintf(msg, "Nothing was changed (undo journal removed).\n");
	}
	struct qc_report_extra x = {
		minus(img->problems.corruptions, after->problems.corruptions),
		minus(img->problems.leaks, after->problems.leaks), repair_json_cb, &rj,
	};
	if (out == QC_OUT_JSON)
		qc_print_json(after, path, &x, stdout);
	else
		qc_print_human(after, path, &x, stdout);
	code = qc_check_exit_code(after);
	if (done_writes == 0 && code != 0)
		code = 1;
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
	bool dry_run = false;
	unsigned flags = 0;
	int c;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'n')
			flags |= QC_UNDO_DRY_RUN;
		else if (c == 'f')
			flags |= QC_UNDO_FORCE;
		else
			return qc_usage_error("undo: unknown option '%s'", argv[optind - 1]);
	}
	dry_run = (flags & QC_UNDO_DRY_RUN) != 0;
	if (optind != argc - 2)
		return qc_usage_error("undo: expected UNDO-FILE IMAGE");
	const char *journal = argv[optind], *path = argv[optind + 1];
	struct qc_io *io;
	int r = qc_io_open_file(path, !dry_run, &io);
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: cannot open '%s': %s\n", path, strerror(-r));
		return 1;
	}
	char err[512] = "";
	r = qc_journal_undo(journal, io, flags, stdout, err, sizeof(err));
	qc_io_close(io);
	if (r < 0) {
		fprintf(stderr, "qcow2fsck: undo: %s%s\n", err,
			r == -EINVAL || r == -ESTALE ? "; the image was not changed" : "");
		return 1;
	}
	printf("%s\n", dry_run ? "Dry run: nothing was written." : "The image was restored.");
	return 0;
}
