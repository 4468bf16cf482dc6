/*
 * test_walk_diff.c - differential test of the L2 walk (checker/tables.c):
 * with its fast paths off (qc_walk_fast_paths = false: every entry through
 * the entry classifier, data clusters claimed one at a time) the check
 * must build the same model and print the same report as with them on.
 *
 * Compared: every cluster of the cluster map (owner, count, flags, the
 * over-count mark), the statistics, the claimed references per owner, the
 * problem list (code, location, weight, message, owners) and counters,
 * each snapshot's vm_state coverage, the abort state, and the JSON report
 * (cli/report.c) byte for byte.  The fast walk runs twice: on one thread,
 * and with --jobs=3 (its L2 tables read and their entries decoded ahead on
 * helper threads, checker/prefetch.c): both must match the slow walk.
 *
 * Inputs: the fuzz corpus (corpus/, corpus/seeds/, tests/crashers/) and,
 * when set, the files named in $QC_WALK_DIFF_FILES (one per line): the
 * images tests/images/walk-diff.sh makes with qemu-img.  Run from the
 * repository root (make unit).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>

#include "../../checker/check.h"
#include "../../cli/report.h"
#include "../../core/clustermap.h"

static uint8_t *load_file(const char *path, size_t *len)
{
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
	assert_non_null(b);
	*len = n > 0 ? fread(b, 1, (size_t)n, f) : 0;
	fclose(f);
	return b;
}

static void done(struct qc_image *img)
{
	struct qc_io *io = img->io;
	qc_image_free(img);
	qc_io_close(io);
}

static struct qc_image *run(const uint8_t *data, size_t len, bool fast, unsigned jobs)
{
	struct qc_io *io = qc_io_open_memory(data, len, false);
	assert_non_null(io);
	struct qc_options o = { .deep = true, .mem_cap = 256u << 20, .jobs = jobs };
	struct qc_image *img = NULL;
	qc_walk_fast_paths = fast;
	int r = qc_check_run(io, &o, &img);
	qc_walk_fast_paths = true;
	assert_int_equal(r, 0);
	return img;
}

static char *json_of(const struct qc_image *img)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	assert_non_null(f);
	struct qc_report_extra x = { 0 };
	qc_print_json(img, "image", &x, f);
	fclose(f);
	return s;
}

static void same_problems(const char *path, const struct qc_problems *a, const struct qc_problems *b)
{
	if (a->n != b->n)
		fail_msg("%s: %zu problems fast, %zu slow", path, a->n, b->n);
	for (size_t k = 0; k < a->n; k++) {
		const struct qc_problem *x = &a->v[k], *y = &b->v[k];
		if (x->code != y->code || x->loc.offset != y->loc.offset ||
		    x->loc.guest_offset != y->loc.guest_offset || x->loc.guest_length != y->loc.guest_length ||
		    x->loc.snapshot != y->loc.snapshot || x->weight != y->weight ||
		    x->owner != y->owner || x->other_owner != y->other_owner ||
		    strcmp(x->message ? x->message : "", y->message ? y->message : ""))
			fail_msg("%s: problem %zu differs: '%s' / '%s'", path, k, x->message,
				 y->message);
	}
	assert_memory_equal(a->per_code, b->per_code, sizeof(a->per_code));
	assert_int_equal(a->corruptions, b->corruptions);
	assert_int_equal(a->leaks, b->leaks);
	assert_int_equal(a->warnings, b->warnings);
}

static void same_map(const char *path, const struct qc_clustermap *a, const struct qc_clustermap *b)
{
	assert_int_equal(a->nclusters, b->nclusters);
	assert_int_equal(qc_cm_end(a), qc_cm_end(b));
	for (uint64_t c = 0; c < qc_cm_end(a); c++) {
		if (qc_cm_owner(a, c) != qc_cm_owner(b, c) || qc_cm_count(a, c) != qc_cm_count(b, c) ||
		    qc_cm_flags(a, c) != qc_cm_flags(b, c) ||
		    qc_cm_overcounted(a, c) != qc_cm_overcounted(b, c))
			fail_msg("%s: cluster %llu differs (owner %d/%d, count %llu/%llu, flags %u/%u)",
				 path, (unsigned long long)c, qc_cm_owner(a, c), qc_cm_owner(b, c),
				 (unsigned long long)qc_cm_count(a, c),
				 (unsigned long long)qc_cm_count(b, c), qc_cm_flags(a, c),
				 qc_cm_flags(b, c));
	}
}

static void same_model(const char *path, const struct qc_image *a, const struct qc_image *b)
{
	assert_int_equal(a->aborted, b->aborted);
	assert_string_equal(a->abort_reason, b->abort_reason);
	same_problems(path, &a->problems, &b->problems);
	same_map(path, &a->cmap, &b->cmap);
	assert_int_equal(a->stats.total_clusters, b->stats.total_clusters);
	assert_int_equal(a->stats.allocated_clusters, b->stats.allocated_clusters);
	assert_int_equal(a->stats.fragmented_clusters, b->stats.fragmented_clusters);
	assert_int_equal(a->stats.compressed_clusters, b->stats.compressed_clusters);
	assert_int_equal(a->stats.image_end_offset, b->stats.image_end_offset);
	for (int o = 0; o < QC_OWN_COUNT; o++)
		if (a->claimed_refs[o] != b->claimed_refs[o])
			fail_msg("%s: references claimed for owner %d: %llu fast, %llu slow", path, o,
				 (unsigned long long)a->claimed_refs[o],
				 (unsigned long long)b->claimed_refs[o]);
	assert_int_equal(a->nsnapshots, b->nsnapshots);
	for (uint32_t i = 0; i < a->nsnapshots; i++) {
		const struct qc_snapshot *x = &a->snapshots[i], *y = &b->snapshots[i];
		assert_int_equal(x->vm_clusters_mapped, y->vm_clusters_mapped);
		assert_int_equal(x->vm_clusters_past_end, y->vm_clusters_past_end);
		assert_int_equal(x->vm_first_hole, y->vm_first_hole);
		assert_int_equal(x->vm_first_past_end, y->vm_first_past_end);
	}
}

/* The slow walk (one thread) against a fast one on `jobs` threads. */
static void compare_one(const char *path, const uint8_t *data, size_t len,
			const struct qc_image *slow, const char *js, unsigned jobs)
{
	struct qc_image *fast = run(data, len, true, jobs);
	same_model(path, fast, slow);
	char *jf = json_of(fast);
	if (strcmp(jf, js))
		fail_msg("%s: the JSON reports differ (fast walk, %u jobs)", path, jobs);
	free(jf);
	done(fast);
}

/* One input: the slow walk, the fast walk on one thread and the fast walk
 * with its tables read and decoded ahead on helper threads (prefetch.c)
 * agree.  Returns false if it is not a file. */
static bool compare(const char *path)
{
	size_t len;
	uint8_t *data = load_file(path, &len);
	if (!data)
		return false;
	struct qc_image *slow = run(data, len, false, 1);
	char *js = json_of(slow);
	compare_one(path, data, len, slow, js, 1);
	compare_one(path, data, len, slow, js, 3);
	free(js);
	done(slow);
	free(data);
	return true;
}

static bool skip_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] == '.' || (l > 3 && (!strcmp(n + l - 3, ".sh") || !strcmp(n + l - 3, ".md"))) ||
	       (l > 4 && !strcmp(n + l - 4, ".txt"));
}

static unsigned compare_dir(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	unsigned n = 0;
	struct dirent *e;
	char p[1024];
	while ((e = readdir(d)) != NULL) {
		if (skip_name(e->d_name))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		n += compare(p);
	}
	closedir(d);
	return n;
}

static void corpus_agrees(void **state)
{
	(void)state;
	unsigned n = compare_dir("corpus") + compare_dir("corpus/seeds") +
		     compare_dir("tests/crashers");
	/* the corpus holds dozens of images: an empty walk would prove nothing */
	assert_true(n >= 40);
}

static void named_files_agree(void **state)
{
	(void)state;
	const char *list = getenv("QC_WALK_DIFF_FILES");
	if (!list || !*list)
		skip();
	unsigned n = 0;
	char *copy = strdup(list), *save = NULL;
	assert_non_null(copy);
	for (char *f = strtok_r(copy, "\n", &save); f; f = strtok_r(NULL, "\n", &save)) {
		if (!compare(f))
			fail_msg("cannot read '%s'", f);
		n++;
	}
	free(copy);
	assert_true(n > 0);
}

/* The corpus exercises the fast paths: the clean demo image has runs of
 * contiguous data clusters (more allocated clusters than fragments), which
 * the fast path takes as runs and the slow walk one by one. */
static void corpus_has_data_runs(void **state)
{
	(void)state;
	size_t len;
	uint8_t *data = load_file("corpus/demo-clean.qcow2", &len);
	assert_non_null(data);
	struct qc_image *img = run(data, len, false, 1);
	assert_true(img->stats.allocated_clusters > img->stats.fragmented_clusters + 1);
	done(img);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_agrees),
		cmocka_unit_test(named_files_agree),
		cmocka_unit_test(corpus_has_data_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
