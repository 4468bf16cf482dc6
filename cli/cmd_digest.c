/*
 * cmd_digest.c - `qcow2fsck digest`: check the image (read-only), refuse
 * corruption unless --force, then print the content digest of each
 * selected layer like sha256sum (`HEX  NAME`, `HEX  NAME@SNAPSHOT`) or as
 * JSON.  `digest --raw FILE` digests a raw file the same way.  The format
 * and the refusals are documented in doc/digest.md.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "../checker/check.h"
#include "../core/layout.h"
#include "../core/escape.h"
#include "../core/io.h"
#include "cli.h"
#include "../checker/digest.h"
#include "digest_run.h"

static void print_human(const char *path, const struct qc_image *img, const struct qc_dg_run *r,
			uint64_t corruptions)
{
	for (uint32_t k = 0; k < r->n; k++) {
		const struct qc_dg_layer *d = &r->layers[k];
		char hex[65];
		qc_digest_hex(d->md, hex);
		printf("%s  ", hex);
		qc_esc_human(stdout, path);
		if (d->snapshot >= 0) {
			const struct qc_snapshot *s = &img->snapshots[d->snapshot];
			putchar('@');
			qc_esc_human_name(stdout, s->name ? s->name : "");
		}
		if (corruptions || d->unreadable)
			printf("  [forced: %llu corruptions, %llu bytes unreadable read as zeros]",
			       (unsigned long long)corruptions, (unsigned long long)d->unreadable);
		putchar('\n');
	}
}

static void print_json(const char *path, const struct qc_image *img, const struct qc_dg_run *r,
		       int code, const char *why)
{
	struct qc_json j;
	qc_json_init(&j, stdout);
	qc_json_obj_begin(&j, NULL);
	qc_json_u64(&j, "schema", 1);
	qc_json_str(&j, "filename", path);
	qc_json_str(&j, "format", img ? "qcow2" : "raw");
	qc_json_str(&j, "algorithm", qc_digest_algorithm(r));
	qc_json_i64(&j, "exit-code", code);
	if (img) {
		qc_json_u64(&j, "corruptions", img->problems.corruptions);
		qc_json_u64(&j, "leaks", img->problems.leaks);
		qc_json_u64(&j, "warnings", img->problems.warnings);
		qc_json_bool(&j, "forced", r->force && img->problems.corruptions);
		if (img->has_backing_file) {
			qc_json_str(&j, "backing-file", img->backing_file);
			qc_json_bool(&j, "backing-file-included", false);
			qc_json_str(&j, "note",
				    "the digest covers this layer only: clusters it does not allocate read as "
				    "zeros; the backing file was not opened");
		} else {
			qc_json_null(&j, "backing-file");
		}
	}
	if (why)
		qc_json_str(&j, "error", why);
	qc_json_arr_begin(&j, "digests");
	if (!why)
		qc_digest_json_layers(&j, path, img, r);
	qc_json_arr_end(&j);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}

/* Why guest data of this image cannot be read at all, or NULL. */
static const char *unreadable_image(const struct qc_image *img)
{
	if (img->h.crypt_method != QC_CRYPT_NONE)
		return "the image is encrypted: guest data cannot be read without the key";
	if (img->data_file)
		return "guest data lives in an external data file, which is never opened";
	return NULL;
}

static int finish(const char *path, const struct qc_image *img, struct qc_dg_run *r,
		  enum qc_output out, bool quiet, int code, const char *why)
{
	if (why)
		qc_esc_line(stderr, "qcow2fsck: digest of '%s' refused: %s", path, why);
	if (!quiet) {
		if (out == QC_OUT_JSON)
			print_json(path, img, r, code, why);
		else if (!why)
			print_human(path, img, r, img ? img->problems.corruptions : 0);
	}
	return code;
}

/* digest --raw FILE: the raw file's digest, nothing checked. */
static int digest_raw(const char *path, struct qc_dg_run *r, enum qc_output out, bool quiet)
{
	struct qc_open_opts oo = { .writable = false, .lock = QC_LOCK_READ };
	struct qc_open_info info;
	struct qc_io *io;
	int e = qc_io_open_image(path, &oo, &io, &info);
	if (e < 0) {
		qc_esc_line(stderr, "qcow2fsck: cannot open '%s': %s", path,
			    e == -EBUSY ? "in use by another process" :
			    e == -EINVAL && info.special ? info.special : strerror(-e));
		return 1;
	}
	qc_digest_run(io, NULL, r);
	if (r->rc)
		qc_esc_line(stderr, "qcow2fsck: digest of '%s' failed: %s", path, r->error);
	int code = finish(path, NULL, r, out, quiet, r->rc ? 1 : 0, r->rc ? r->error : NULL);
	qc_digest_run_free(r);
	qc_io_close(io);
	return code;
}

/* digest IMAGE: check it (read-only, with the locks qemu-img check takes:
 * doc/locking.md), refuse what the check says cannot be digested, else
 * digest the selected layers. */
static int digest_image(const char *path, struct qc_dg_run *r, const struct qc_cli_open *co,
			const struct qc_options *o)
{
	struct qc_io *io;
	struct qc_image *img;
	int code = qc_cli_open_checked(path, co, o, &io, &img);
	if (code)
		return code;
	code = qc_check_exit_code(img);
	char why[400];
	const char *refuse = NULL;
	if (code == 63) {
		refuse = "not a qcow2 image qcow2fsck can read (see qcow2fsck check)";
	} else if (code == 1) {
		snprintf(why, sizeof(why), "the check could not complete: %s",
			 img->aborted ? img->abort_reason : "out of memory");
		refuse = why;
	} else if ((refuse = unreadable_image(img))) {
		code = 1;
	} else if (code == 2 && !r->force) {
		snprintf(why, sizeof(why),
			 "the check found %llu corruptions (see qcow2fsck check; --force digests anyway)",
			 (unsigned long long)img->problems.corruptions);
		refuse = why;
	} else {
		/* leaks and warnings leave guest data intact; --force goes on over corruption */
		code = code == 2 ? 2 : 0;
		qc_digest_run(io, img, r);
		if (r->rc) {
			snprintf(why, sizeof(why), "%s", r->error);
			refuse = why;
			code = r->rc;
		}
	}
	code = finish(path, img, r, co->out, co->quiet, code, refuse);
	qc_digest_run_free(r);
	qc_image_free(img);
	qc_io_close(io);
	return code;
}

/* digest's own options */
struct digest_args {
	struct qc_dg_run *r;
	bool raw;
};

static int digest_opt(void *ctx, int c, const char *arg)
{
	struct digest_args *da = ctx;
	switch (c) {
	case 's': da->r->snapshot = arg; return 0;
	case 'a': da->r->all = true; return 0;
	case 'f': da->r->flat = true; return 0;
	case 'F': da->r->force = true; return 0;
	case 'r': da->raw = true; return 0;
	default: return QC_ARGS_UNKNOWN;
	}
}

int qc_cmd_digest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "flat", no_argument, NULL, 'f' },
		{ "force", no_argument, NULL, 'F' },
		{ "raw", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, QC_OPT_OUTPUT },
		{ "quiet", no_argument, NULL, QC_OPT_QUIET },
		{ "jobs", required_argument, NULL, QC_OPT_JOBS },
		{ "progress", no_argument, NULL, QC_OPT_PROGRESS },
		{ "max-mem", required_argument, NULL, QC_OPT_MAX_MEM },
		{ NULL, 0, NULL, 0 },
	};
	struct qc_dg_run r = { .jobs = 0 };
	struct digest_args da = { .r = &r };
	struct qc_args a = { .command = "digest", .shortopts = "-q", .longopts = opts,
			     .own = digest_opt, .ctx = &da };
	int code = qc_parse_args(&a, argc, argv);
	if (code)
		return code;
	if (a.pos.n != 1 || a.pos.extra)
		return qc_usage_error("digest: expected exactly one %s", da.raw ? "FILE" : "IMAGE");
	if (r.snapshot && r.all)
		return qc_usage_error("digest: --snapshot and --all exclude each other");
	if (da.raw && (r.snapshot || r.all || r.force))
		return qc_usage_error("digest --raw takes only --flat, --output, --jobs, --progress");
	r.jobs = a.jobs ? a.jobs : qc_default_jobs();
	r.progress = a.progress;
	if (da.raw)
		return digest_raw(a.pos.v[0], &r, a.out, a.quiet);
	struct qc_cli_open co = { .command = "digest", .lock = QC_LOCK_READ, .out = a.out,
				  .quiet = a.quiet };
	struct qc_options o = { .deep = false,
				.mem_cap = a.mem_cap ? a.mem_cap : qc_default_mem_cap(),
				.jobs = r.jobs }; /* the check's walk reads ahead on them too */
	return digest_image(a.pos.v[0], &r, &co, &o);
}
