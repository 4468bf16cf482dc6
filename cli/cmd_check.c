/*
 * cmd_check.c - `qcow2fsck check`: open the image read-only with the locks
 * `qemu-img check` takes (doc/locking.md), run the check, print the
 * report, exit with qemu-img check's codes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../checker/check.h"
#include "../checker/digest.h"
#include "../core/escape.h"
#include "cli.h"
#include "digest_run.h"
#include "report.h"
#include "../scan/policy.h"

struct check_digest {
	const char *path;
	const struct qc_image *img;
	struct qc_dg_run *r;
	const char *refused;
};

static void digest_json_cb(struct qc_json *j, void *ctx)
{
	const struct check_digest *d = ctx;
	qc_json_str(j, "digest-algorithm", qc_digest_algorithm(d->r));
	if (d->refused)
		qc_json_str(j, "digest-error", d->refused);
	qc_json_arr_begin(j, "digests");
	if (!d->refused)
		qc_digest_json_layers(j, d->path, d->img, d->r);
	qc_json_arr_end(j);
}

static void print_digest_line(const struct qc_image *img, const struct qc_dg_run *r,
			      const struct qc_dg_layer *d)
{
	char hex[65];
	qc_digest_hex(d->md, hex);
	printf("Digest (%s): %s  ", qc_digest_algorithm(r), hex);
	if (d->snapshot < 0) {
		printf("active layer\n");
		return;
	}
	const struct qc_snapshot *s = &img->snapshots[d->snapshot];
	printf("snapshot ID '");
	qc_esc_human_name(stdout, s->id ? s->id : "");
	printf("' name '");
	qc_esc_human_name(stdout, s->name ? s->name : "");
	printf("'\n");
}

/* Why the digests cannot be given, from the check's result; or NULL. */
static const char *digest_refusal(const struct qc_image *img)
{
	int code = qc_check_exit_code(img);
	if (code == 63 || code == 1)
		return "the check did not complete";
	if (code == 2)
		return "the check found corruption (qcow2fsck digest --force digests anyway)";
	if (img->h.crypt_method)
		return "the image is encrypted: guest data cannot be read without the key";
	if (img->data_file)
		return "guest data lives in an external data file, which is never opened";
	return NULL;
}

/*
 * check --digest: the digests of every layer, unless the image cannot give
 * them, and --deep's pass, so that one read serves both (doc/digest.md):
 * the check ran without --deep's pass (opt.deep_later); the digests read
 * every layer, reading an unreadable stream as zeros and noting its
 * verdict; --deep then takes the verdict of every stream they decompressed
 * from those notes and decompresses only the rest (past the virtual size,
 * vm_state), reporting exactly what it reports alone.  A stream QEMU cannot
 * read is then corruption, and the digests are withheld.
 */
static const char *check_digest(struct qc_io *io, struct qc_image *img, struct qc_dg_run *r)
{
	const char *why = digest_refusal(img);
	struct qc_deep_known *known = NULL;
	if (!why) {
		known = qc_deep_known_new(img->h.size);
		r->all = true;
		r->force = true;
		r->observe = known ? qc_deep_known_note : NULL;
		r->observe_ctx = known;
		qc_digest_run(io, img, r);
	}
	qc_deep_run(img, why || r->rc ? NULL : known);
	if (!why && !r->rc && !digest_refusal(img))
		for (uint32_t k = 0; k < r->n; k++)
			if (r->layers[k].unreadable) {
				/* a stream --deep only warns about (a zstd window it does
				 * not open) that the digest could not read either */
				snprintf(r->error, sizeof(r->error),
					 "a compressed cluster cannot be read (see the problems)");
				r->rc = 2;
				break;
			}
	qc_deep_known_free(known);
	if (why)
		return why;
	if ((why = digest_refusal(img)) != NULL)
		return why;
	return r->rc ? r->error : NULL;
}

int qc_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "deep", no_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "max-mem", required_argument, NULL, 'm' },
		{ "force-share", no_argument, NULL, 'U' },
		{ "fail-on", required_argument, NULL, 'F' },
		{ "allow", required_argument, NULL, 'A' },
		{ "digest", no_argument, NULL, 'D' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "progress", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_cli_open co = { .command = "check", .lock = QC_LOCK_READ, .out = QC_OUT_HUMAN };
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap(),
				.jobs = qc_default_jobs() };
	bool digest = false;
	struct qc_positional pos = { .n = 0 };
	struct qc_policy policy;
	int perr;
	int c;
	qc_policy_init(&policy);
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-qU", opts, NULL)) != -1) {
		switch (c) {
		case 1:
			qc_add_positional(&pos, optarg);
			break;
		case 'd':
			o.deep = true;
			break;
		case 'o':
			if (!qc_parse_output(optarg, &co.out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case 'q':
			co.quiet = true;
			break;
		case 'U':
			co.lock = QC_LOCK_SHARE;
			break;
		case 'm':
			if (!qc_parse_size(optarg, &o.mem_cap) || o.mem_cap == 0)
				return qc_usage_error("invalid --max-mem '%s'", optarg);
			break;
		case 'F':
		case 'A':
			if ((perr = qc_cli_policy_opt(&policy, (char)c, optarg)))
				return perr;
			break;
		case 'D':
			digest = true;
			break;
		case 'j':
			if (!qc_parse_jobs(optarg, &o.jobs))
				return qc_usage_error("--jobs must be a number from 1 to 64, not '%s'", optarg);
			break;
		case 'p':
			o.progress = true;
			break;
		default:
			return qc_usage_error("check: unknown option '%s'", argv[optind - 1]);
		}
	}
	qc_rest_positional(&pos, argc, argv);
	if (pos.n != 1 || pos.extra)
		return qc_usage_error("check: expected exactly one IMAGE");
	/* the digest decompresses every compressed cluster anyway: --deep makes
	 * the check verify them first, so a bad stream is a reported problem
	 * (and refuses the digest) rather than a digest error */
	if (digest) {
		o.deep = true;
		o.deep_later = true;
	}
	const char *path = pos.v[0];
	struct qc_io *io;
	struct qc_image *img;
	int code = qc_cli_open_checked(path, &co, &o, &io, &img);
	if (code)
		return code;
	struct qc_dg_run r = { .jobs = o.jobs, .progress = o.progress };
	struct check_digest cd = { path, img, &r, NULL };
	if (digest)
		cd.refused = check_digest(io, img, &r);
	struct qc_verdict verdict;
	qc_policy_judge(&policy, img, path, &verdict);
	code = verdict.exit_code;
	struct qc_report_extra x = { .verdict = &verdict };
	if (digest) {
		x.json = digest_json_cb;
		x.ctx = &cd;
	}
	if (!co.quiet) {
		if (co.out == QC_OUT_JSON) {
			qc_print_json(img, path, &x, stdout);
		} else {
			qc_print_human(img, path, &x, stdout);
			qc_print_policy_human(img, &verdict, stdout);
			if (digest && cd.refused)
				qc_esc_line(stdout, "Digest: not computed: %s", cd.refused);
			for (uint32_t k = 0; digest && !cd.refused && k < r.n; k++)
				print_digest_line(img, &r, &r.layers[k]);
		}
	}
	qc_digest_run_free(&r);
	if (img->aborted)
		qc_esc_line(stderr, "qcow2fsck: check failed: %s", img->abort_reason);
	qc_image_free(img);
	qc_io_close(io);
	return code;
}
