/*
 * header_trial.c - a check of the image as a candidate header would leave
 * it (doc/repair.md "Header fields"): the candidate bytes go into a plan of
 * one write, the plan is laid over the image read-only (repair/overlay.c)
 * and the whole check runs on that view.  The header planners judge a
 * candidate field by what this check finds.  Nothing is written.
 *
 * Relies on qc_check_run (checker/check.h) and the overlay; the memory
 * cap left for the trial is what --max-mem leaves after the model.
 */
#include "header_fields.h"

#include <stdlib.h>
#include <string.h>

#include "overlay.h"
#include "../checker/check.h"
#include "../core/reader.h"

struct qc_hf_trial {
	struct qc_plan plan;
	struct qc_io *io;
	struct qc_image *model;
};

struct qc_hf_trial *qc_hf_trial_run(struct qc_image *img, const uint8_t *hdr, size_t len,
				    bool *eio)
{
	struct qc_hf_trial *t = calloc(1, sizeof(*t));
	if (!t) {
		*eio = true;
		return NULL;
	}
	qc_plan_init(&t->plan, img->file_size);
	if (!qc_plan_add(&t->plan, QC_PH_SWITCH, 0, hdr, len, QC_P_HEADER_L1_PAST_EOF, "trial"))
		goto fail;
	t->io = qc_io_overlay(img->io, &t->plan, t->plan.n);
	if (!t->io)
		goto fail;
	struct qc_options opt = img->opt;
	opt.drop_snapshot = NULL;
	opt.deep = false;
	uint64_t used = img->cmap.bytes + img->mem_held;
	if (opt.mem_cap)
		opt.mem_cap = used < opt.mem_cap ? opt.mem_cap - (size_t)used : 1;
	if (qc_check_run(t->io, &opt, &t->model) < 0 || !t->model || t->model->aborted)
		goto fail;
	return t;
fail:
	*eio = true;
	qc_hf_trial_free(t);
	return NULL;
}

struct qc_image *qc_hf_trial_model(struct qc_hf_trial *t)
{
	return t->model;
}

void qc_hf_trial_free(struct qc_hf_trial *t)
{
	if (!t)
		return;
	qc_image_free(t->model);
	if (t->io)
		qc_io_close(t->io);
	qc_plan_free(&t->plan);
	free(t);
}

bool qc_hf_try_be32(struct hf *h, size_t at, uint32_t v, bool (*agrees)(const struct qc_image *m),
		    bool *eio)
{
	uint8_t hdr[sizeof(h->hdr)];
	memcpy(hdr, h->hdr, sizeof(hdr));
	qc_put_be32(hdr + at, v);
	struct qc_hf_trial *t = qc_hf_trial_run(h->img, hdr, sizeof(hdr), eio);
	if (!t)
		return false;
	bool ok = agrees(qc_hf_trial_model(t));
	qc_hf_trial_free(t);
	return ok;
}
