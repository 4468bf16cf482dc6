/*
 * report.c - the check report for people and for machines (doc/contracts.md
 * §4): qemu-img check's counters under their QEMU names, plus schema,
 * problems and snapshots.
 */
#include "report.h"

#include <inttypes.h>
#include <string.h>

#include "../checker/check.h"
#include "../checker/trust.h"
#include "../core/escape.h"
#include "cli.h"

/* Human output folds a code after this many lines. */
#define HUMAN_PER_CODE 5

static uint64_t count_checks_errors(const struct qc_image *img)
{
	return (img->aborted || img->problems.oom) ? 1 : 0;
}

static void json_problem(struct qc_json *j, const struct qc_problem *p)
{
	const struct qc_problem_info *pi = &qc_problem_table[p->code];
	qc_json_obj_begin(j, NULL);
	qc_json_str(j, "code", pi->code);
	qc_json_str(j, "severity", qc_severity_name(pi->severity));
	qc_json_str(j, "structure", pi->structure);
	if (p->loc.offset != QC_NO_OFFSET)
		qc_json_u64(j, "offset", p->loc.offset);
	else
		qc_json_null(j, "offset");
	qc_json_str(j, "message", p->message);
	if (p->loc.guest_offset != QC_NO_OFFSET)
		qc_json_u64(j, "guest-offset", p->loc.guest_offset);
	if (p->loc.guest_length)
		qc_json_u64(j, "guest-length", p->loc.guest_length);
	if (p->loc.snapshot >= 0)
		qc_json_i64(j, "snapshot", p->loc.snapshot);
	if (p->loc.other)
		qc_json_str(j, "other-structure", p->loc.other);
	if (p->weight > 1)
		qc_json_u64(j, "count", p->weight);
	qc_json_obj_end(j);
}

void qc_json_snapshots(struct qc_json *j, const struct qc_image *img)
{
	qc_json_arr_begin(j, "snapshots");
	for (uint32_t i = 0; i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		qc_json_obj_begin(j, NULL);
		qc_json_u64(j, "index", i);
		qc_json_str(j, "id", s->id ? s->id : "");
		qc_json_str(j, "name", s->name ? s->name : "");
		qc_json_u64(j, "entry-offset", s->entry_offset);
		qc_json_u64(j, "l1-table-offset", s->l1_table_offset);
		qc_json_u64(j, "l1-size", s->l1_size);
		qc_json_u64(j, "disk-size", s->disk_size);
		qc_json_u64(j, "vm-state-size", s->vm_state_size);
		qc_json_u64(j, "extra-data-size", s->extra_data_size);
		qc_json_u64(j, "date-sec", s->date_sec);
		qc_json_u64(j, "date-nsec", s->date_nsec);
		qc_json_u64(j, "vm-clock-nsec", s->vm_clock_nsec);
		if (s->has_icount)
			qc_json_u64(j, "icount", s->icount);
		if (img->snapfix.decided) {
			qc_json_str(j, "repair", qc_snap_verdict_name(s->fix.verdict));
			if (s->fix.what[0])
				qc_json_str(j, "repair-detail", s->fix.what);
			if (s->fix.new_id[0])
				qc_json_str(j, "repair-new-id", s->fix.new_id);
		}
		qc_json_arr_begin(j, "problems");
		enum qc_code codes[QC_P_COUNT];
		size_t nc = qc_snapshot_codes(&img->problems, (int32_t)i, codes);
		for (size_t k = 0; k < nc; k++)
			qc_json_str(j, NULL, qc_problem_table[codes[k]].code);
		qc_json_arr_end(j);
		qc_json_obj_end(j);
	}
	qc_json_arr_end(j);
	const struct qc_snap_plan *sp = &img->snapfix;
	if (sp->decided) {
		qc_json_obj_begin(j, "snapshot-table-repair");
		qc_json_str(j, "action", sp->refused ? "left" : sp->relink ? "relink"
					 : sp->rewrite ? "rewrite" : "none");
		if (sp->why[0])
			qc_json_str(j, "detail", sp->why);
		qc_json_obj_end(j);
	}
}

void qc_print_json(const struct qc_image *img, const char *filename,
		   const struct qc_report_extra *x, FILE *f)
{
	struct qc_json j;
	const struct qc_problems *ps = &img->problems;
	if (x && x->compact)
		qc_json_init_compact(&j, f);
	else
		qc_json_init(&j, f);
	qc_json_obj_begin(&j, NULL);
	qc_json_u64(&j, "schema", 1);
	qc_json_str(&j, "filename", filename);
	qc_json_str(&j, "format", "qcow2");
	qc_json_u64(&j, "check-errors", count_checks_errors(img) + (x && x->error_code ? 1 : 0));
	qc_json_u64(&j, "corruptions", ps->corruptions);
	qc_json_u64(&j, "leaks", ps->leaks);
	qc_json_u64(&j, "warnings", ps->warnings);
	qc_json_u64(&j, "corruptions-fixed", x ? x->corruptions_fixed : 0);
	qc_json_u64(&j, "leaks-fixed", x ? x->leaks_fixed : 0);
	qc_json_u64(&j, "image-end-offset", img->stats.image_end_offset);
	qc_json_u64(&j, "total-clusters", img->stats.total_clusters);
	qc_json_u64(&j, "allocated-clusters", img->stats.allocated_clusters);
	qc_json_u64(&j, "fragmented-clusters", img->stats.fragmented_clusters);
	qc_json_u64(&j, "compressed-clusters", img->stats.compressed_clusters);
	qc_json_i64(&j, "exit-code", x && x->exit_override ? x->exit_code
				     : x && x->verdict ? x->verdict->exit_code : qc_check_exit_code(img));
	qc_json_tool_fields(&j, img);
	if (x && x->verdict)
		qc_json_policy_fields(&j, x->verdict);
	const char *why = NULL;
	bool complete = qc_walk_complete(img, &why);
	qc_json_bool(&j, "walk-complete", complete);
	if (!complete)
		qc_json_str(&j, "walk-incomplete-reason", why ? why : "unknown");
	if (img->aborted)
		qc_json_str(&j, "check-error", img->abort_reason);
	if (img->not_qcow2)
		qc_json_str(&j, "not-qcow2", img->not_qcow2);
	if (x && x->error_code)
		qc_json_error(&j, x->error_code, x->error_message ? x->error_message : "");
	qc_json_arr_begin(&j, "problems");
	for (size_t i = 0; i < ps->n; i++)
		json_problem(&j, &ps->v[i]);
	qc_json_arr_end(&j);
	qc_json_u64(&j, "problems-omitted", ps->omitted);
	qc_json_snapshots(&j, img);
	if (x && x->json)
		x->json(&j, x->ctx);
	qc_json_obj_end(&j);
	qc_json_end(&j);
}

void qc_json_tool_fields(struct qc_json *j, const struct qc_image *img)
{
	qc_json_str(j, "tool-version", QC_VERSION);
	qc_json_bool(j, "deep", img->opt.deep);
	if (img->opt.deep) {
		/* compressed clusters decompressed, per algorithm */
		qc_json_obj_begin(j, "deep-verified");
		qc_json_u64(j, "zlib", img->deep_verified[0]);
		qc_json_u64(j, "zstd", img->deep_verified[1]);
		qc_json_obj_end(j);
	}
	if (img->has_backing_file)
		qc_json_strn(j, "backing-file", img->backing_file, img->h.backing_file_size);
	else
		qc_json_null(j, "backing-file");
}

void qc_json_policy_fields(struct qc_json *j, const struct qc_verdict *v)
{
	qc_json_str(j, "fail-on", qc_fail_on_name(v->fail_on));
	qc_json_arr_begin(j, "allowed");
	for (int c = 0; c < QC_P_COUNT; c++)
		if (v->allowed[c])
			qc_json_str(j, NULL, qc_problem_table[c].code);
	qc_json_arr_end(j);
}

void qc_print_policy_human(const struct qc_image *img, const struct qc_verdict *v, FILE *f)
{
	if (v->nallowed) {
		fputs("Accepted by policy (not counted in the verdict):", f);
		for (int c = 0; c < QC_P_COUNT; c++)
			if (v->allowed[c])
				fprintf(f, " %s", qc_problem_table[c].code);
		fputc('\n', f);
	}
	if (v->exit_code != qc_check_exit_code(img))
		fprintf(f, "Verdict under --fail-on=%s: %s, exit %d.\n", qc_fail_on_name(v->fail_on),
			qc_class_name(v->cls), v->exit_code);
}

void qc_print_problems_human(const struct qc_image *img, FILE *f)
{
	const struct qc_problems *ps = &img->problems;
	uint64_t shown[QC_P_COUNT] = { 0 };
	for (size_t i = 0; i < ps->n; i++) {
		const struct qc_problem *p = &ps->v[i];
		const struct qc_problem_info *pi = &qc_problem_table[p->code];
		if (shown[p->code]++ >= HUMAN_PER_CODE)
			continue;
		fprintf(f, "%-10s %s: ", qc_severity_name(pi->severity), pi->code);
		qc_esc_human(f, p->message);
		if (p->loc.snapshot >= 0 && p->loc.snapshot < (int32_t)img->nsnapshots &&
		    img->snapshots[p->loc.snapshot].id) {
			fprintf(f, " [snapshot %d, id '", p->loc.snapshot);
			qc_esc_human_name(f, img->snapshots[p->loc.snapshot].id);
			fputs("']", f);
		}
		fputc('\n', f);
	}
	for (int c = 0; c < QC_P_COUNT; c++)
		if (ps->per_code[c] > HUMAN_PER_CODE)
			fprintf(f, "%-10s %s: ... and %" PRIu64 " more\n",
				qc_severity_name(qc_problem_table[c].severity), qc_problem_table[c].code,
				ps->per_code[c] - HUMAN_PER_CODE);
}

void qc_print_snapshot_verdicts_human(const struct qc_image *img, FILE *f)
{
	bool any = false;
	uint32_t shown = 0, more = 0;
	for (uint32_t i = 0; img->snapfix.decided && i < img->nsnapshots; i++) {
		const struct qc_snapshot *s = &img->snapshots[i];
		if (s->fix.verdict == QC_SNAP_KEPT)
			continue;
		if (!any)
			fprintf(f, "What a repair would do with these snapshots:\n");
		any = true;
		if (shown++ >= HUMAN_PER_CODE) {
			more++;
			continue;
		}
		/* names from the image, escaped and cut (core/escape.h) */
		fprintf(f, "  snapshot %u (ID '", i);
		qc_esc_human_name(f, s->id ? s->id : "?");
		fputs("', name '", f);
		qc_esc_human_name(f, s->name ? s->name : "?");
		qc_esc_line(f, "'): %s%s%s", qc_snap_verdict_name(s->fix.verdict),
			    s->fix.what[0] ? ": " : "", s->fix.what);
	}
	if (more)
		fprintf(f, "  ... and %u more (see the JSON report or info)\n", more);
	const struct qc_snap_plan *sp = &img->snapfix;
	if (sp->why[0] && (sp->rewrite || sp->relink || sp->refused)) {
		if (!any)
			fprintf(f, "What a repair would do with the snapshot table:\n");
		qc_esc_line(f, "  snapshot table: %s%s", sp->refused ? "left as it is: " : "", sp->why);
	}
}

void qc_print_human(const struct qc_image *img, const char *filename,
		    const struct qc_report_extra *x, FILE *f)
{
	const struct qc_problems *ps = &img->problems;
	const struct qc_stats *st = &img->stats;
	(void)filename;
	qc_print_problems_human(img, f);
	if (ps->n)
		fputc('\n', f);
	qc_print_snapshot_verdicts_human(img, f);
	if (x && (x->corruptions_fixed || x->leaks_fixed))
		fprintf(f, "Repaired: %" PRIu64 " corruptions, %" PRIu64 " leaked clusters.\n",
			x->corruptions_fixed, x->leaks_fixed);
	if (img->not_qcow2)
		fprintf(f, "This is not a qcow2 image (found: %s).\n", img->not_qcow2);
	else if (ps->unsupported)
		fprintf(f, "This is not a qcow2 image qcow2fsck can check.\n");
	else if (!ps->corruptions && !ps->leaks && !img->aborted)
		fprintf(f, "No errors were found on the image.\n");
	if (ps->corruptions && !ps->unsupported)
		fprintf(f, "%" PRIu64 " errors were found on the image.\n"
			   "Data may be corrupted, or further writes to the image may corrupt it.\n",
			ps->corruptions);
	const char *why = NULL;
	if (ps->leaks && !qc_walk_complete(img, &why)) {
		fprintf(f, "%" PRIu64 " leaked clusters were found on the image, but the check could not\n",
			ps->leaks);
		qc_esc_line(f, "follow every reference (%s): some of them may be in use.",
			    why ? why : "unknown");
	}
	else if (ps->leaks)
		fprintf(f, "%" PRIu64 " leaked clusters were found on the image.\n"
			   "This means waste of disk space, but no harm to data.\n",
			ps->leaks);
	if (ps->warnings)
		fprintf(f, "%" PRIu64 " warnings.\n", ps->warnings);
	if (img->aborted)
		qc_esc_line(f, "The check could not complete: %s", img->abort_reason);
	if (st->total_clusters && st->allocated_clusters)
		fprintf(f, "%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% compressed clusters\n",
			st->allocated_clusters, st->total_clusters,
			st->allocated_clusters * 100.0 / st->total_clusters,
			st->fragmented_clusters * 100.0 / st->allocated_clusters,
			st->compressed_clusters * 100.0 / st->allocated_clusters);
	if (st->image_end_offset)
		fprintf(f, "Image end offset: %" PRIu64 "\n", st->image_end_offset);
	if (img->opt.deep && img->is_qcow2 && !img->aborted && !ps->unsupported)
		fprintf(f, "Deep check: %" PRIu64 " zlib and %" PRIu64 " zstd compressed clusters decompressed.\n",
			img->deep_verified[0], img->deep_verified[1]);
}
