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
 * read is then corruption, and the digests are withheld.  A digest that
 * cannot complete (an I/O error, a resource cap) ends the check with exit
 * 1, as a failed read of metadata does.
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
	if (r->rc == 1) {
		/* an I/O error or a resource cap: the check asked for could not
		 * complete, exit 1 as for a failed read of metadata */
		qc_abort(img, "the digest could not be completed: %s", r->error);
		return r->error;
	}
	if ((why = digest_refusal(img)) != NULL)
		return why;
	return r->rc ? r->error : NULL;
}

/* check's own options */
struct check_args {
	struct qc_cli_open *co;
	bool digest;
};

static int check_opt(void *ctx, int c, const char *arg)
{
	struct check_args *ca = ctx;
	(void)arg;
	switch (c) {
	case 'U':
		ca->co->lock = QC_LOCK_SHARE;
		return 0;
	case 'D':
		ca->digest = true;
		return 0;
	default:
		return QC_ARGS_UNKNOWN;
	}
}

/* The report on stdout (human or JSON), with the digests when asked. */
static void print_report(const struct qc_cli_open *co, const struct qc_image *img, const char *path,
			 const struct qc_verdict *verdict, struct check_digest *cd)
{
	struct qc_report_extra x = { .verdict = verdict };
	if (cd) {
		x.json = digest_json_cb;
		x.ctx = cd;
	}
	if (co->out == QC_OUT_JSON) {
		qc_print_json(img, path, &x, stdout);
		return;
	}
	qc_print_human(img, path, &x, stdout);
	qc_print_policy_human(img, verdict, stdout);
	if (cd && cd->refused)
		qc_esc_line(stdout, "Digest: not computed: %s", cd->refused);
	for (uint32_t k = 0; cd && !cd->refused && k < cd->r->n; k++)
		print_digest_line(img, cd->r, &cd->r->layers[k]);
}

int qc_cmd_check(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "deep", no_argument, NULL, QC_OPT_DEEP },
		{ "output", required_argument, NULL, QC_OPT_OUTPUT },
		{ "quiet", no_argument, NULL, QC_OPT_QUIET },
		{ "max-mem", required_argument, NULL, QC_OPT_MAX_MEM },
		{ "force-share", no_argument, NULL, 'U' },
		{ "fail-on", required_argument, NULL, QC_OPT_FAIL_ON },
		{ "allow", required_argument, NULL, QC_OPT_ALLOW },
		{ "digest", no_argument, NULL, 'D' },
		{ "jobs", required_argument, NULL, QC_OPT_JOBS },
		{ "progress", no_argument, NULL, QC_OPT_PROGRESS },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_cli_open co = { .command = "check", .lock = QC_LOCK_READ, .out = QC_OUT_HUMAN };
	struct check_args ca = { .co = &co };
	struct qc_policy policy;
	qc_policy_init(&policy);
	struct qc_args a = { .command = "check", .shortopts = "-qU", .longopts = opts,
			     .own = check_opt, .ctx = &ca, .policy = &policy };
	int code = qc_parse_args(&a, argc, argv);
	if (!code && (a.pos.n != 1 || a.pos.extra))
		code = qc_usage_error("check: expected exactly one IMAGE");
	if (code)
		goto out;
	co.out = a.out;
	co.quiet = a.quiet;
	/* the digest decompresses every compressed cluster anyway: --deep makes
	 * the check verify them first, so a bad stream is a reported problem
	 * (and refuses the digest) rather than a digest error */
	struct qc_options o = { .deep = a.deep || ca.digest, .deep_later = ca.digest,
				.mem_cap = a.mem_cap ? a.mem_cap : qc_default_mem_cap(),
				.jobs = a.jobs ? a.jobs : qc_default_jobs(), .progress = a.progress };
	const char *path = a.pos.v[0];
	struct qc_io *io;
	struct qc_image *img;
	code = qc_cli_open_checked(path, &co, &o, &io, &img);
	if (code)
		goto out;
	struct qc_dg_run r = { .jobs = o.jobs, .progress = o.progress };
	struct check_digest cd = { path, img, &r, NULL };
	if (ca.digest)
		cd.refused = check_digest(io, img, &r);
	struct qc_verdict verdict;
	qc_policy_judge(&policy, img, path, &verdict);
	code = verdict.exit_code;
	if (!co.quiet)
		print_report(&co, img, path, &verdict, ca.digest ? &cd : NULL);
	qc_digest_run_free(&r);
	if (img->aborted)
		qc_esc_line(stderr, "qcow2fsck: check failed: %s", img->abort_reason);
	qc_image_free(img);
	qc_io_close(io);
out:
	qc_policy_free(&policy);
	return code;
}
