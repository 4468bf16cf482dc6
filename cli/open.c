/*
 * open.c - how a subcommand opens its image (cli.h): QEMU's image locks
 * (doc/locking.md), the check, and the one-line (and JSON) report of a
 * failure (doc/contracts.md §1).
 */
#include "cli.h"
#include "../checker/check.h"
#include "../core/escape.h"
#include "../core/io.h"
#include "../core/problems.h"
#include "report.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The one-line message and the JSON "error" code of a failed open. */
static void open_failure(const char *path, int r, const struct qc_open_info *info,
			 const struct qc_cli_open *co, char *msg, size_t len, const char **code)
{
	char err[160];
	if (r == -EBUSY && co->lock == QC_LOCK_WRITE) {
		snprintf(msg, len, "%s: in use by another process (%s never writes to an image in use; "
			 "nothing changed)", path, co->command);
		*code = "image-in-use";
	} else if (r == -EBUSY && co->lock == QC_LOCK_SHARE) {
		/* even -U needs consistent reads: QEMU refuses this case too */
		snprintf(msg, len, "%s: in use by another process that does not let others read "
			 "it consistently (refused even with -U, as qemu-img refuses it)", path);
		*code = "image-in-use";
	} else if (r == -EBUSY) {
		snprintf(msg, len, "%s: in use by another process (use -U to %s it anyway)", path,
			 co->command);
		*code = "image-in-use";
	} else if (r == -EINVAL && info->special) {
		snprintf(msg, len, "%s: %s, not an image file: refused without opening it", path,
			 info->special);
		*code = "not-a-file";
	} else {
		snprintf(msg, len, "cannot open '%s'%s: %s", path, co->writable ? " for writing" : "",
			 strerror_r(-r, err, sizeof(err)));
		*code = "open-failed";
	}
}

int qc_cli_open_checked_err(const char *path, const struct qc_cli_open *co,
			    const struct qc_options *o, struct qc_io **io, struct qc_image **img,
			    char *why, size_t whylen, const char **code)
{
	struct qc_open_opts oo = { .writable = co->writable, .lock = co->lock };
	struct qc_open_info info;
	*io = NULL;
	*img = NULL;
	*code = NULL;
	int r = qc_io_open_image(path, &oo, io, &info);
	if (r < 0) {
		open_failure(path, r, &info, co, why, whylen, code);
		return 1;
	}
	if (info.locks_unsupported && co->lock == QC_LOCK_WRITE && !co->quiet)
		qc_esc_line(stderr, "qcow2fsck: warning: %s: the file system has no OFD locks; "
			    "QEMU's image locks cannot be checked", path);
	if (qc_check_run(*io, o, img) < 0) {
		qc_io_close(*io);
		*io = NULL;
		snprintf(why, whylen, "out of memory");
		*code = "out-of-memory";
		return 1;
	}
	if (info.in_use)
		qc_report(&(*img)->problems, QC_P_IMAGE_IN_USE, QC_LOC(QC_NO_OFFSET), 1,
			  "another process holds the image (QEMU's locks); opened with -U, so what it "
			  "writes meanwhile may show as problems that are not on disk");
	return 0;
}

int qc_cli_open_checked(const char *path, const struct qc_cli_open *co, const struct qc_options *o,
			struct qc_io **io, struct qc_image **img)
{
	char why[PATH_MAX + 256];
	const char *code = NULL;
	int r = qc_cli_open_checked_err(path, co, o, io, img, why, sizeof(why), &code);
	return r ? qc_cli_fail(co, path, 1, code, why) : 0;
}

int qc_cli_fail(const struct qc_cli_open *co, const char *path, int exit_code, const char *code,
		const char *msg)
{
	qc_esc_line(stderr, "qcow2fsck: %s", msg);
	if (co->out == QC_OUT_JSON && !co->quiet)
		qc_print_json_failure(path, exit_code, code, msg, stdout);
	return exit_code;
}
