/*
 * cmd_scan.c - `qcow2fsck scan`: check many images in one process for CI
 * gating and archive verification, and `scan --summarize` over JSON Lines
 * reports.  Discovery and sharding: scan/discover.c; threads: scan/pool.c;
 * one file: scan_one.c; verdicts: scan/policy.c; outputs: scan/summary.c,
 * scan/junit.c.  doc/scan.md explains the design.
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../scan/discover.h"
#include "../scan/junit.h"
#include "../scan/pool.h"
#include "../core/progress.h"
#include "cli.h"
#include "scan_one.h"

enum scan_fmt { FMT_HUMAN, FMT_JSONL, FMT_JUNIT };

struct scan_run {
	const struct qc_scan_list *files;
	struct qc_scan_one_opts one;
	FILE *machine;            /* JSON Lines destination, or NULL */
	struct qc_junit *junit;   /* or NULL */
	FILE *human;              /* summary destination, or NULL */
	struct qc_scan_totals totals;
	struct qc_progress progress;
	atomic_uint_fast64_t files_done, bytes_done;
	bool write_failed;
};

static void scan_work(void *ctx, size_t i, void *res)
{
	struct scan_run *s = ctx;
	const struct qc_scan_file *f = &s->files->v[i];
	qc_scan_check_one(f, &s->one, res);
	atomic_fetch_add(&s->files_done, 1);
	atomic_fetch_add(&s->bytes_done, f->size);
}

static void scan_emit(void *ctx, size_t i, void *res)
{
	struct scan_run *s = ctx;
	struct qc_scan_result *r = res;
	(void)i;
	if (s->machine && r->json && fwrite(r->json, 1, r->json_len, s->machine) != r->json_len)
		s->write_failed = true;
	if (s->junit) {
		if (r->junit && fwrite(r->junit, 1, r->junit_len, s->junit->cases) != r->junit_len)
			s->write_failed = true;
		qc_junit_count(s->junit, &r->item, r->seconds);
	}
	if ((s->machine && !r->json) || (s->junit && !r->junit))
		s->write_failed = true; /* out of memory making the record */
	if (s->human)
		qc_scan_print_line(s->human, &r->item);
	qc_scan_totals_add(&s->totals, &r->item);
	qc_scan_result_free(r);
}

static void scan_tick(void *ctx)
{
	struct scan_run *s = ctx;
	qc_progress_files(&s->progress, atomic_load(&s->files_done));
	qc_progress_set(&s->progress, atomic_load(&s->bytes_done));
}

static bool parse_shard(const char *v, unsigned *idx, unsigned *n)
{
	char *end;
	unsigned long a = strtoul(v, &end, 10);
	if (end == v || *end != '/' || v[0] == '-')
		return false;
	const char *b = end + 1;
	unsigned long c = strtoul(b, &end, 10);
	if (end == b || *end || b[0] == '-' || c == 0 || c > 1000000 || a == 0 || a > c)
		return false;
	*idx = (unsigned)a;
	*n = (unsigned)c;
	return true;
}

/* `scan --summarize FILE...`: the summary of JSON Lines reports, in path
 * order whatever the order of the records. */
struct line {
	char *path, *text;
};

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->path, ((const struct line *)b)->path);
}

static int summarize(int nfiles, char **names, bool quiet)
{
	struct qc_scan_totals t = { 0 };
	struct line *v = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;
	char *buf = NULL;
	size_t bcap = 0;
	for (int k = 0; k < nfiles; k++) {
		FILE *f = strcmp(names[k], "-") == 0 ? stdin : fopen(names[k], "r");
		if (!f) {
			perror(names[k]);
			rc = 1;
			goto out;
		}
		ssize_t len;
		unsigned long lineno = 0;
		while ((len = getline(&buf, &bcap, f)) >= 0) {
			lineno++;
			while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
				buf[--len] = 0;
			if (len == 0)
				continue;
			struct qc_scan_item it;
			char why[160];
			if (qc_scan_item_from_json(&it, buf, (size_t)len, why, sizeof(why)) < 0) {
				fprintf(stderr, "qcow2fsck: %s:%lu: %s\n", names[k], lineno, why);
				if (f != stdin)
					fclose(f);
				rc = 1;
				goto out;
			}
			char *text = NULL;
			size_t tl = 0;
			FILE *m = open_memstream(&text, &tl);
			if (m) {
				qc_scan_print_line(m, &it);
				if (fclose(m) != 0) {
					free(text);
					text = NULL;
				}
			}
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct line *nv = realloc(v, ncap * sizeof(*nv));
				if (nv) {
					v = nv;
					cap = ncap;
				}
			}
			if (!text || n == cap) {
				free(text);
				qc_scan_item_free(&it);
				fprintf(stderr, "qcow2fsck: out of memory\n");
				if (f != stdin)
					fclose(f);
				rc = 1;
				goto out;
			}
			qc_scan_totals_add(&t, &it);
			v[n].path = it.path;
			v[n].text = text;
			it.path = NULL;
			qc_scan_item_free(&it);
			n++;
		}
		if (f != stdin)
			fclose(f);
	}
	qsort(v, n, sizeof(*v), cmp_line);
	if (!quiet) {
		for (size_t i = 0; i < n; i++)
			fputs(v[i].text, stdout);
		qc_scan_print_totals(stdout, &t);
	}
	rc = t.exit_code;
out:
	for (size_t i = 0; i < n; i++) {
		free(v[i].path);
		free(v[i].text);
	}
	free(v);
	free(buf);
	return rc;
}

static unsigned ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* scan's own options */
struct scan_args {
	unsigned jobs, shard_i, shard_n;
	enum scan_fmt fmt;
	const char *report, *files_from, *baseline;
	bool summarize, shard;
};

static int scan_opt(void *ctx, int c, const char *arg)
{
	struct scan_args *sa = ctx;
	switch (c) {
	case 'j': {
		char *end;
		unsigned long v = strtoul(arg, &end, 10);
		if (end == arg || *end || arg[0] == '-' || v == 0 || v > 1024)
			return qc_usage_error("--jobs must be 1..1024, not '%s'", arg);
		sa->jobs = (unsigned)v;
		return 0;
	}
	case 'o':
		if (strcmp(arg, "human") == 0)
			sa->fmt = FMT_HUMAN;
		else if (strcmp(arg, "jsonl") == 0)
			sa->fmt = FMT_JSONL;
		else if (strcmp(arg, "junit") == 0)
			sa->fmt = FMT_JUNIT;
		else
			return qc_usage_error("--output must be human, jsonl or junit, not '%s'", arg);
		return 0;
	case 'S':
		if (!parse_shard(arg, &sa->shard_i, &sa->shard_n))
			return qc_usage_error("--shard must be I/N with 1 <= I <= N, not '%s'", arg);
		sa->shard = true;
		return 0;
	case 'r': sa->report = arg; return 0;
	case 'B': sa->baseline = arg; return 0;
	case 'f': sa->files_from = arg; return 0;
	case 'z': sa->summarize = true; return 0;
	default: return QC_ARGS_UNKNOWN;
	}
}

/* Keep in list only the files of shard sa->shard_i of sa->shard_n: false
 * when memory runs out. */
static bool keep_shard(struct qc_scan_list *list, const struct scan_args *sa)
{
	unsigned *which = malloc((list->n ? list->n : 1) * sizeof(*which));
	if (!which || !qc_shard_assign(list->v, list->n, sa->shard_n, which)) {
		free(which);
		return false;
	}
	size_t k = 0;
	for (size_t i = 0; i < list->n; i++) {
		if (which[i] == sa->shard_i - 1)
			list->v[k++] = list->v[i];
		else
			free(list->v[i].path);
	}
	list->n = k;
	free(which);
	return true;
}

/* The files to check: under the npaths PATHs, then those --files-from
 * names, only this --shard's part.  0, or the exit code (1) with the reason
 * printed and list freed. */
static int scan_list(struct qc_scan_list *list, const struct scan_args *sa, int npaths,
		     char **paths)
{
	char err[1300];
	int rc = 0;
	for (int k = 0; k < npaths && rc == 0; k++)
		if (qc_discover_add(list, paths[k]) < 0)
			rc = -1;
	if (rc == 0 && sa->files_from &&
	    qc_discover_files_from(list, sa->files_from, err, sizeof(err)) < 0) {
		fprintf(stderr, "qcow2fsck: %s\n", err);
		qc_discover_free(list);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "qcow2fsck: out of memory listing files\n");
		qc_discover_free(list);
		return 1;
	}
	qc_discover_finish(list);
	if (sa->shard && !keep_shard(list, sa)) {
		fprintf(stderr, "qcow2fsck: out of memory assigning shards\n");
		qc_discover_free(list);
		return 1;
	}
	if (list->links_skipped || list->special_skipped || list->loops_skipped)
		fprintf(stderr,
			"qcow2fsck: scan: not followed: %llu symlinks, %llu special files, %llu directory loops\n",
			(unsigned long long)list->links_skipped, (unsigned long long)list->special_skipped,
			(unsigned long long)list->loops_skipped);
	return 0;
}

/* Where the results go (--output, --report): 0, or 1 with the reason
 * printed and nothing left open. */
static int scan_outputs(struct scan_run *s, const struct scan_args *sa, bool quiet, FILE **rep,
			struct qc_junit *ju)
{
	*rep = NULL;
	if (sa->report) {
		*rep = fopen(sa->report, "w");
		if (!*rep) {
			fprintf(stderr, "qcow2fsck: cannot write --report '%s': %m\n", sa->report);
			return 1;
		}
	}
	FILE *mdest = *rep ? *rep : stdout;
	s->one.json = sa->fmt == FMT_JSONL || (*rep && sa->fmt == FMT_HUMAN);
	s->one.junit = sa->fmt == FMT_JUNIT;
	s->machine = s->one.json ? mdest : NULL;
	if (s->one.junit) {
		if (qc_junit_begin(ju, mdest) < 0) {
			fprintf(stderr, "qcow2fsck: cannot create a temporary file for JUnit: %m\n");
			if (*rep)
				fclose(*rep);
			return 1;
		}
		s->junit = ju;
	}
	s->human = !quiet && (*rep || sa->fmt == FMT_HUMAN) ? stdout : NULL;
	return 0;
}

/* Check every file of list on sa->jobs threads, writing the outputs as
 * they come in path order: the exit code. */
static int scan_files(const struct qc_scan_list *list, const struct scan_args *sa,
		      const struct qc_args *a, const struct qc_options *check,
		      const struct qc_policy *policy)
{
	struct scan_run *s = calloc(1, sizeof(*s));
	FILE *rep;
	struct qc_junit ju;
	if (!s)
		return 1;
	s->files = list;
	s->one.check = *check;
	s->one.policy = policy;
	if (scan_outputs(s, sa, a->quiet, &rep, &ju)) {
		free(s);
		return 1;
	}
	uint64_t total_bytes = 0;
	for (size_t i = 0; i < list->n; i++)
		total_bytes += list->v[i].size;
	char ts[32];
	qc_scan_timestamp(ts, sizeof(ts));
	qc_progress_start(&s->progress, stderr, a->progress, "scan", total_bytes);
	qc_progress_count_files(&s->progress, list->n);
	static const struct qc_pool_ops ops = { scan_work, scan_emit, scan_tick };
	int pr = qc_pool_run(list->n, sa->jobs, 4 * (size_t)sa->jobs + 4, sizeof(struct qc_scan_result),
			     &ops, s);
	qc_progress_files(&s->progress, atomic_load(&s->files_done));
	qc_progress_end(&s->progress);
	int code = s->totals.exit_code;
	if (pr < 0) {
		fprintf(stderr, "qcow2fsck: cannot start the scan threads\n");
		code = 1;
	}
	if (s->junit && qc_junit_end(&ju, ts) < 0)
		s->write_failed = true;
	if (s->human)
		qc_scan_print_totals(s->human, &s->totals);
	if (fflush(stdout) != 0 || ferror(stdout))
		s->write_failed = true;
	if (rep && fclose(rep) != 0)
		s->write_failed = true;
	if (s->write_failed) {
		fprintf(stderr, "qcow2fsck: scan: writing the report failed\n");
		if (code == 0 || code == 3)
			code = 1;
	}
	free(s);
	return code;
}

int qc_cmd_scan(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "report", required_argument, NULL, 'r' },
		{ "fail-on", required_argument, NULL, QC_OPT_FAIL_ON },
		{ "allow", required_argument, NULL, QC_OPT_ALLOW },
		{ "baseline", required_argument, NULL, 'B' },
		{ "shard", required_argument, NULL, 'S' },
		{ "files-from", required_argument, NULL, 'f' },
		{ "deep", no_argument, NULL, QC_OPT_DEEP },
		{ "progress", no_argument, NULL, QC_OPT_PROGRESS },
		{ "max-mem", required_argument, NULL, QC_OPT_MAX_MEM },
		{ "quiet", no_argument, NULL, QC_OPT_QUIET },
		{ "summarize", no_argument, NULL, 'z' },
		{ NULL, 0, NULL, 0 },
	};
	struct scan_args sa = { .shard_i = 1, .shard_n = 1, .fmt = FMT_HUMAN };
	struct qc_policy policy;
	qc_policy_init(&policy);
	struct qc_args a = { .command = "scan", .shortopts = "q", .longopts = opts,
			     .own = scan_opt, .ctx = &sa, .policy = &policy };
	int code = qc_parse_args(&a, argc, argv);
	if (code)
		return code;
	if (sa.summarize) {
		if (a.next >= argc)
			return qc_usage_error("scan --summarize: expected FILE.jsonl...");
		return summarize(argc - a.next, argv + a.next, a.quiet);
	}
	if (a.next >= argc && !sa.files_from)
		return qc_usage_error("scan: expected PATH... or --files-from");
	if (sa.jobs == 0)
		sa.jobs = ncpus();
	/* Each image gets its share of the default cap, so jobs images at
	 * once stay within it; --max-mem sets the per-image cap itself. */
	struct qc_options check = { .deep = a.deep,
				    .mem_cap = a.mem_cap ? a.mem_cap : qc_default_mem_cap() / sa.jobs };
	char err[1300];
	if (sa.baseline && qc_policy_load_baseline(&policy, sa.baseline, err, sizeof(err)) < 0) {
		fprintf(stderr, "qcow2fsck: %s\n", err);
		qc_policy_free(&policy);
		return QC_EXIT_USAGE;
	}
	struct qc_scan_list list = { 0 };
	code = scan_list(&list, &sa, argc - a.next, argv + a.next);
	if (code == 0) {
		code = scan_files(&list, &sa, &a, &check, &policy);
		qc_discover_free(&list);
	}
	qc_policy_free(&policy);
	return code;
}
