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

int qc_cmd_digest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "snapshot", required_argument, NULL, 's' },
		{ "all", no_argument, NULL, 'a' },
		{ "flat", no_argument, NULL, 'f' },
		{ "force", no_argument, NULL, 'F' },
		{ "raw", no_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "progress", no_argument, NULL, 'p' },
		{ "max-mem", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	enum qc_output out = QC_OUT_HUMAN;
	bool quiet = false, raw = false;
	struct qc_dg_run r = { .jobs = qc_default_jobs() };
	struct qc_options o = { .deep = false, .mem_cap = qc_default_mem_cap() };
	struct qc_positional pos = { .n = 0 };
	int c;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "-q", opts, NULL)) != -1) {
		switch (c) {
		case 1: qc_add_positional(&pos, optarg); break;
		case 's': r.snapshot = optarg; break;
		case 'a': r.all = true; break;
		case 'f': r.flat = true; break;
		case 'F': r.force = true; break;
		case 'r': raw = true; break;
		case 'q': quiet = true; break;
		case 'p': r.progress = true; break;
		case 'o':
			if (!qc_parse_output(optarg, &out))
				return qc_usage_error("--output must be human or json, not '%s'", optarg);
			break;
		case 'j':
			if (!qc_parse_jobs(optarg, &r.jobs))
				return qc_usage_error("--jobs must be a number from 1 to 64, not '%s'", optarg);
			break;
		case 'm':
			if (!qc_parse_size(optarg, &o.mem_cap) || o.mem_cap == 0)
				return qc_usage_error("invalid --max-mem '%s'", optarg);
			break;
		default:
			return qc_usage_error("digest: unknown option '%s'", argv[optind - 1]);
		}
	}
	qc_rest_positional(&pos, argc, argv);
	if (pos.n != 1 || pos.extra)
		return qc_usage_error("digest: expected exactly one %s", raw ? "FILE" : "IMAGE");
	if (r.snapshot && r.all)
		return qc_usage_error("digest: --snapshot and --all exclude each other");
	if (raw && (r.snapshot || r.all || r.force))
		return qc_usage_error("digest --raw takes only --flat, --output, --jobs, --progress");
	const char *path = pos.v[0];
	/* read-only, with the locks qemu-img check takes (doc/locking.md) */
	struct qc_cli_open co = { .command = "digest", .lock = QC_LOCK_READ, .out = out,
				  .quiet = quiet };
	struct qc_io *io;
	int code;
	if (raw) {
		struct qc_open_opts oo = { .writable = false, .lock = QC_LOCK_READ };
		struct qc_open_info info;
		int e = qc_io_open_image(path, &oo, &io, &info);
		if (e < 0) {
			qc_esc_line(stderr, "qcow2fsck: cannot open '%s': %s", path,
				    e == -EBUSY ? "in use by another process" :
				    e == -EINVAL && info.special ? info.special : strerror(-e));
			return 1;
		}
		qc_digest_run(io, NULL, &r);
		if (r.rc)
			qc_esc_line(stderr, "qcow2fsck: digest of '%s' failed: %s", path, r.error);
		code = finish(path, NULL, &r, out, quiet, r.rc ? 1 : 0, r.rc ? r.error : NULL);
		qc_digest_run_free(&r);
		qc_io_close(io);
		return code;
	}
	struct qc_image *img;
	o.jobs = r.jobs; /* the check's walk reads ahead on them too */
	code = qc_cli_open_checked(path, &co, &o, &io, &img);
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
	} else if (code == 2 && !r.force) {
		snprintf(why, sizeof(why),
			 "the check found %llu corruptions (see qcow2fsck check; --force digests anyway)",
			 (unsigned long long)img->problems.corruptions);
		refuse = why;
	} else {
		/* leaks and warnings leave guest data intact; --force goes on over corruption */
		code = code == 2 ? 2 : 0;
		qc_digest_run(io, img, &r);
		if (r.rc) {
			snprintf(why, sizeof(why), "%s", r.error);
			refuse = why;
			code = r.rc;
		}
	}
	code = finish(path, img, &r, out, quiet, code, refuse);
	qc_digest_run_free(&r);
	qc_image_free(img);
	qc_io_close(io);
	return code;
}
