/*
 * check.c - the pass runner: runs the passes in order over one image
 * (checker/check.h lists them), stops at the first that aborts or finds
 * the image unsupported, and frees the model.  The helpers the passes
 * share live beside it, one job each: claims.c (ownership claims, overlaps,
 * the EOF rule), contested.c (clusters two owners claim), budget.c
 * (--max-mem), metaread.c (bounded metadata reads), verdict.c (exit code).
 *
 * Relies on each pass honouring the trust flags in struct qc_image: a pass
 * whose input is unusable skips its work, so one damaged structure costs
 * only the checks that depend on it.
 */
#include "check.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void qc_abort(struct qc_image *img, const char *fmt, ...)
{
	if (img->aborted)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(img->abort_reason, sizeof(img->abort_reason), fmt, ap);
	va_end(ap);
	img->aborted = true;
}

static void run_passes(struct qc_image *img)
{
	static void (*const passes[])(struct qc_image *) = {
		qc_pass_header,   qc_pass_extensions, qc_pass_snapshot_table,
		qc_pass_reftable, qc_pass_luks,       qc_pass_bitmaps,
		qc_pass_tables,   qc_pass_vmstate,    qc_pass_refcounts,
		qc_pass_copied,   qc_pass_snapfix,    qc_pass_deep,       qc_pass_stats,
	};
	for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
		passes[i](img);
		if (img->aborted || img->problems.unsupported || !img->is_qcow2)
			break;
	}
}

int qc_check_run(struct qc_io *io, const struct qc_options *opt, struct qc_image **out)
{
	struct qc_image *img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->io = io;
	if (opt)
		img->opt = *opt;
	img->file_size = io->size;
	qc_problems_init(&img->problems);
	img->problems.reserve = qc_budget_hook_problems;
	img->problems.budget_ctx = img;
	run_passes(img);
	qc_settle_contested(img);
	*out = img;
	return 0;
}

void qc_image_free(struct qc_image *img)
{
	if (!img)
		return;
	qc_problems_free(&img->problems);
	qc_cm_free(&img->cmap);
	free(img->contested);
	free(img->header_cluster);
	free(img->ext.features);
	free(img->l1);
	free(img->reftable);
	free(img->refblock_usable);
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		free(img->snapshots[i].id);
		free(img->snapshots[i].name);
	}
	free(img->snapshots);
	free(img);
}
