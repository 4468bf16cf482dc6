/*
 * test_scan.c - the pure parts of `scan`: shard assignment (exact, stable
 * under input order, balanced), verdicts under policies and baselines, the
 * JSON reader, items from JSON Lines records, the aggregate exit code, and
 * the ordered thread pool (results in index order, at most `window` held).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../checker/image.h"
#include "../../scan/discover.h"
#include "../../scan/jsonread.h"
#include "../../scan/policy.h"
#include "../../scan/pool.h"
#include "../../scan/scan.h"

#define NF 300

static void make_files(struct qc_scan_file *v, size_t n, unsigned seed)
{
	uint64_t x = seed;
	for (size_t i = 0; i < n; i++) {
		char name[32];
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		snprintf(name, sizeof(name), "dir/img%03zu", i);
		v[i].path = strdup(name);
		v[i].size = (i % 10 == 0) ? 0 : (x >> 40); /* some empty files */
		v[i].dev = 1;
		v[i].ino = i + 1;
	}
}

static void shards_exact_stable_balanced(void **state)
{
	(void)state;
	struct qc_scan_file v[NF], r[NF];
	unsigned a[NF], b[NF];
	make_files(v, NF, 7);
	for (size_t i = 0; i < NF; i++) {
		r[i] = v[NF - 1 - i];
		r[i].ino = 1000 + i; /* other inodes: the partition must not care */
	}
	uint64_t maxw = 0;
	for (size_t i = 0; i < NF; i++)
		if (v[i].size + 65536 > maxw)
			maxw = v[i].size + 65536;
	for (unsigned n = 1; n <= 7; n++) {
		assert_true(qc_shard_assign(v, NF, n, a));
		assert_true(qc_shard_assign(r, NF, n, b));
		uint64_t load[7] = { 0 };
		for (size_t i = 0; i < NF; i++) {
			assert_true(a[i] < n);
			assert_int_equal(a[i], b[NF - 1 - i]); /* same path, same shard */
			load[a[i]] += v[i].size + 65536;
		}
		uint64_t lo = UINT64_MAX, hi = 0;
		for (unsigned s = 0; s < n; s++) {
			lo = load[s] < lo ? load[s] : lo;
			hi = load[s] > hi ? load[s] : hi;
		}
		assert_true(hi - lo <= maxw);
	}
	assert_false(qc_shard_assign(v, NF, 0, a));
	for (size_t i = 0; i < NF; i++)
		free(v[i].path);
}

static void shards_equal_sizes_spread_by_path(void **state)
{
	(void)state;
	struct qc_scan_file v[8];
	unsigned a[8];
	memset(v, 0, sizeof(v));
	for (int i = 0; i < 8; i++) {
		v[i].path = strdup((char[]){ (char)('a' + i), 0 });
		v[i].size = 0;
	}
	assert_true(qc_shard_assign(v, 8, 4, a));
	/* Ties by path: a..d take shards 0..3, then e..h again 0..3. */
	for (int i = 0; i < 8; i++) {
		assert_int_equal(a[i], (unsigned)(i % 4));
		free(v[i].path);
	}
}

static void class_exit_codes(void **state)
{
	(void)state;
	assert_int_equal(qc_class_exit(QC_CLASS_CLEAN, QC_FAIL_WARNING), 0);
	assert_int_equal(qc_class_exit(QC_CLASS_WARNING, QC_FAIL_CORRUPTION), 0);
	assert_int_equal(qc_class_exit(QC_CLASS_WARNING, QC_FAIL_LEAK), 0);
	assert_int_equal(qc_class_exit(QC_CLASS_WARNING, QC_FAIL_WARNING), 2);
	assert_int_equal(qc_class_exit(QC_CLASS_LEAK, QC_FAIL_CORRUPTION), 3);
	assert_int_equal(qc_class_exit(QC_CLASS_LEAK, QC_FAIL_LEAK), 2);
	assert_int_equal(qc_class_exit(QC_CLASS_LEAK, QC_FAIL_WARNING), 2);
	assert_int_equal(qc_class_exit(QC_CLASS_CORRUPTION, QC_FAIL_CORRUPTION), 2);
	assert_int_equal(qc_class_exit(QC_CLASS_ERROR, QC_FAIL_WARNING), 1);
	assert_int_equal(qc_class_exit(QC_CLASS_UNSUPPORTED, QC_FAIL_CORRUPTION), 63);
	assert_int_equal(qc_class_exit(QC_CLASS_NOT_QCOW2, QC_FAIL_CORRUPTION), 63);
	for (int c = 0; c < QC_CLASS_COUNT; c++)
		assert_int_equal(qc_class_by_name(qc_class_name((enum qc_class)c)), c);
}

static struct qc_image *image_with(const enum qc_code *codes, size_t n)
{
	struct qc_image *img = calloc(1, sizeof(*img));
	qc_problems_init(&img->problems);
	img->is_qcow2 = true;
	for (size_t i = 0; i < n; i++)
		qc_report(&img->problems, codes[i], QC_LOC(0), 1, "test");
	return img;
}

static void free_image(struct qc_image *img)
{
	qc_problems_free(&img->problems);
	free(img);
}

static void judge_with_allow_and_baseline(void **state)
{
	(void)state;
	const enum qc_code codes[] = { QC_P_REFCOUNT_LEAK, QC_P_HEADER_DIRTY };
	struct qc_image *img = image_with(codes, 2);
	struct qc_policy p;
	struct qc_verdict v;
	qc_policy_init(&p);
	qc_policy_judge(&p, img, "a.qcow2", &v);
	assert_int_equal(v.cls, QC_CLASS_LEAK);
	assert_int_equal(v.exit_code, 3);
	assert_int_equal(v.nallowed, 0);
	char *bad = NULL;
	assert_false(qc_policy_allow_list(&p, "refcount-leak,no-such", &bad));
	assert_string_equal(bad, "no-such");
	free(bad);
	qc_policy_init(&p);
	assert_true(qc_policy_allow_list(&p, "refcount-leak", &bad));
	qc_policy_judge(&p, img, "a.qcow2", &v);
	assert_int_equal(v.cls, QC_CLASS_WARNING);
	assert_int_equal(v.exit_code, 0);
	assert_true(v.allowed[QC_P_REFCOUNT_LEAK]);
	p.fail_on = QC_FAIL_WARNING;
	qc_policy_judge(&p, img, "a.qcow2", &v);
	assert_int_equal(v.exit_code, 2);
	/* Per-path baseline: only for its path. */
	qc_policy_init(&p);
	p.fail_on = QC_FAIL_WARNING;
	assert_true(qc_policy_add(&p, "b.qcow2", QC_P_HEADER_DIRTY));
	assert_true(qc_policy_add(&p, "a.qcow2", QC_P_HEADER_DIRTY));
	assert_true(qc_policy_add(&p, "a.qcow2", QC_P_REFCOUNT_LEAK));
	qc_policy_seal(&p);
	qc_policy_judge(&p, img, "a.qcow2", &v);
	assert_int_equal(v.cls, QC_CLASS_CLEAN);
	assert_int_equal(v.nallowed, 2);
	qc_policy_judge(&p, img, "c.qcow2", &v);
	assert_int_equal(v.exit_code, 2);
	qc_policy_free(&p);
	free_image(img);

	/* Unsupported files stay unsupported whatever is allowed. */
	const enum qc_code nq[] = { QC_P_IMAGE_NOT_QCOW2 };
	img = image_with(nq, 1);
	qc_policy_init(&p);
	assert_true(qc_policy_allow_list(&p, "image-not-qcow2", &bad));
	qc_policy_judge(&p, img, "x", &v);
	assert_int_equal(v.cls, QC_CLASS_NOT_QCOW2);
	assert_int_equal(v.exit_code, 63);
	free_image(img);
}

static void baseline_file(void **state)
{
	(void)state;
	char path[] = "/tmp/qc-test-baseline.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fputs("# known problems\n\n"
	      "dir/with space.qcow2   refcount-leak\n"
	      "* header-dirty\n"
	      "{\"filename\":\"j.qcow2\",\"problems\":[{\"code\":\"refcount-zero\"}],\"allowed\":[]}\n",
	      f);
	fclose(f);
	struct qc_policy p;
	char err[200];
	qc_policy_init(&p);
	assert_int_equal(qc_policy_load_baseline(&p, path, err, sizeof(err)), 0);
	assert_true(p.allow[QC_P_HEADER_DIRTY]);
	const enum qc_code codes[] = { QC_P_REFCOUNT_LEAK, QC_P_REFCOUNT_ZERO };
	struct qc_image *img = image_with(codes, 2);
	struct qc_verdict v;
	qc_policy_judge(&p, img, "dir/with space.qcow2", &v);
	assert_int_equal(v.cls, QC_CLASS_CORRUPTION);
	assert_true(v.allowed[QC_P_REFCOUNT_LEAK]);
	qc_policy_judge(&p, img, "j.qcow2", &v);
	assert_int_equal(v.cls, QC_CLASS_LEAK);
	assert_true(v.allowed[QC_P_REFCOUNT_ZERO]);
	free_image(img);
	qc_policy_free(&p);
	f = fopen(path, "w");
	fputs("a.qcow2 no-such-code\n", f);
	fclose(f);
	qc_policy_init(&p);
	assert_int_equal(qc_policy_load_baseline(&p, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":1: unknown problem code"));
	qc_policy_free(&p);
	unlink(path);
}

static void json_reader(void **state)
{
	(void)state;
	struct qc_jv *v;
	char err[100];
	const char *doc = " {\"a\": [1, -2.5e1, true, false, null], \"s\": \"x\\u00e9\\u20ac\\n\\\"\", \"o\": {}} ";
	assert_int_equal(qc_jv_parse(doc, strlen(doc), &v, err, sizeof(err)), 0);
	const struct qc_jv *a = qc_jv_get(v, "a");
	assert_non_null(a);
	assert_int_equal(a->type, QC_JV_ARR);
	assert_int_equal(a->n, 5);
	assert_true(a->kids[1].num == -25.0);
	assert_true(a->kids[2].b);
	assert_int_equal(a->kids[4].type, QC_JV_NULL);
	const struct qc_jv *s = qc_jv_get(v, "s");
	assert_memory_equal(s->s, "x\xe9\xe2\x82\xac\n\"", 7);
	assert_null(qc_jv_get(v, "missing"));
	qc_jv_free(v);
	static const char *const bad[] = {
		"", "{", "{\"a\" 1}", "[1,]", "\"abc", "{} x", "[tru]", "\"\\q\"", "\"\\u12\"",
		"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(qc_jv_parse(bad[i], strlen(bad[i]), &v, err, sizeof(err)), -1);
	/* A NUL byte is never part of a number. */
	assert_int_equal(qc_jv_parse("1\0\0", 3, &v, err, sizeof(err)), -1);
}

/* Damaged reports (--baseline, --summarize read files people hand in):
 * every strict prefix of a record is refused, and random byte damage never
 * reads out of bounds (the sanitizer build runs this too). */
static void json_reader_damaged_input(void **state)
{
	(void)state;
	const char *rec = "{\"schema\":1,\"filename\":\"d/\\u00ffa b\",\"exit-code\":2,\"verdict\":\"corruption\","
			  "\"size\":65536,\"problems\":[{\"code\":\"refcount-zero\",\"offset\":null,"
			  "\"message\":\"x \\\"y\\\" \\n\"}],\"allowed\":[\"refcount-leak\"],\"deep\":false}";
	size_t n = strlen(rec);
	struct qc_jv *v;
	struct qc_scan_item it;
	char err[100];
	assert_int_equal(qc_jv_parse(rec, n, &v, err, sizeof(err)), 0);
	qc_jv_free(v);
	assert_int_equal(qc_scan_item_from_json(&it, rec, n, err, sizeof(err)), 0);
	assert_string_equal(it.path, "d/\xff" "a b");
	assert_int_equal(it.cls, QC_CLASS_CORRUPTION);
	qc_scan_item_free(&it);
	for (size_t k = 0; k < n; k++) {
		char *cut = malloc(k ? k : 1); /* exact size: ASan sees any overread */
		memcpy(cut, rec, k);
		assert_int_equal(qc_jv_parse(cut, k, &v, err, sizeof(err)), -1);
		free(cut);
	}
	uint64_t x = 12345;
	unsigned ok = 0;
	for (int round = 0; round < 20000; round++) {
		char *m = malloc(n);
		memcpy(m, rec, n);
		for (int e = 0; e < 1 + round % 4; e++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			m[(x >> 33) % n] = (char)(x >> 17);
		}
		int r = qc_jv_parse(m, n, &v, err, sizeof(err));
		assert_true(r == 0 || r == -1);
		if (r == 0) {
			ok++;
			qc_jv_free(v);
		}
		r = qc_scan_item_from_json(&it, m, n, err, sizeof(err));
		assert_true(r == 0 || r == -1);
		if (r == 0)
			qc_scan_item_free(&it);
		free(m);
	}
	assert_true(ok < 20000); /* the damage did reach the parser */
}

static void items_and_aggregate(void **state)
{
	(void)state;
	struct qc_scan_item it;
	char err[100];
	const char *rec = "{\"filename\":\"a\\u0001b\",\"exit-code\":0,\"verdict\":\"clean\",\"size\":5,"
			  "\"problems\":[{\"code\":\"refcount-leak\"}],\"allowed\":[\"refcount-leak\"]}";
	assert_int_equal(qc_scan_item_from_json(&it, rec, strlen(rec), err, sizeof(err)), 0);
	assert_string_equal(it.path, "a\001b");
	assert_int_equal(it.cls, QC_CLASS_CLEAN);
	assert_true(it.allowed[QC_P_REFCOUNT_LEAK]);
	assert_false(it.codes[QC_P_REFCOUNT_LEAK]);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	qc_scan_print_line(m, &it);
	fclose(m);
	assert_string_equal(buf, "clean       a\\x01b: no problem left [accepted: refcount-leak] (exit 0)\n");
	free(buf);
	qc_scan_item_free(&it);
	/* A record of `check --output=json` (no verdict) is judged from its code. */
	const char *chk = "{\"filename\":\"c\",\"exit-code\":63,\"problems\":[{\"code\":\"image-not-qcow2\"}]}";
	assert_int_equal(qc_scan_item_from_json(&it, chk, strlen(chk), err, sizeof(err)), 0);
	assert_int_equal(it.cls, QC_CLASS_NOT_QCOW2);
	qc_scan_item_free(&it);
	const char *unk = "{\"filename\":\"c\",\"exit-code\":2,\"problems\":[{\"code\":\"no-such\"}]}";
	assert_int_equal(qc_scan_item_from_json(&it, unk, strlen(unk), err, sizeof(err)), -1);

	struct qc_scan_item x = { 0 };
	int agg = 0;
	x.cls = QC_CLASS_NOT_QCOW2; x.exit_code = 63;
	agg = qc_scan_aggregate(agg, &x);
	assert_int_equal(agg, 0);
	x.cls = QC_CLASS_LEAK; x.exit_code = 3;
	agg = qc_scan_aggregate(agg, &x);
	assert_int_equal(agg, 3);
	x.cls = QC_CLASS_UNSUPPORTED; x.exit_code = 63;
	agg = qc_scan_aggregate(agg, &x);
	assert_int_equal(agg, 63);
	x.cls = QC_CLASS_ERROR; x.exit_code = 1;
	agg = qc_scan_aggregate(agg, &x);
	assert_int_equal(agg, 1);
	x.cls = QC_CLASS_CORRUPTION; x.exit_code = 2;
	agg = qc_scan_aggregate(agg, &x);
	assert_int_equal(agg, 2);
	x.cls = QC_CLASS_ERROR; x.exit_code = 1;
	assert_int_equal(qc_scan_aggregate(agg, &x), 2);
}

struct pool_ctx {
	atomic_int held;     /* results made and not yet emitted */
	atomic_int max_held;
	size_t next_emit;
	bool in_order;
};

static void pool_work(void *ctx, size_t i, void *res)
{
	struct pool_ctx *c = ctx;
	int h = atomic_fetch_add(&c->held, 1) + 1;
	int m = atomic_load(&c->max_held);
	while (h > m && !atomic_compare_exchange_weak(&c->max_held, &m, h))
		;
	if (i % 7 == 0)
		usleep(200); /* finish out of order */
	*(size_t *)res = i * 3 + 1;
}

static void pool_emit(void *ctx, size_t i, void *res)
{
	struct pool_ctx *c = ctx;
	if (i != c->next_emit || *(size_t *)res != i * 3 + 1)
		c->in_order = false;
	c->next_emit++;
	atomic_fetch_sub(&c->held, 1);
}

static void pool_in_order_bounded(void **state)
{
	(void)state;
	struct pool_ctx c = { .in_order = true };
	static const struct qc_pool_ops ops = { pool_work, pool_emit, NULL };
	assert_int_equal(qc_pool_run(2000, 4, 6, sizeof(size_t), &ops, &c), 0);
	assert_true(c.in_order);
	assert_int_equal(c.next_emit, 2000);
	/* window slots, plus the result the emitter is consuming */
	assert_true(atomic_load(&c.max_held) <= 7);
	assert_int_equal(qc_pool_run(0, 4, 6, sizeof(size_t), &ops, &c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shards_exact_stable_balanced),
		cmocka_unit_test(shards_equal_sizes_spread_by_path),
		cmocka_unit_test(class_exit_codes),
		cmocka_unit_test(judge_with_allow_and_baseline),
		cmocka_unit_test(baseline_file),
		cmocka_unit_test(json_reader),
		cmocka_unit_test(json_reader_damaged_input),
		cmocka_unit_test(items_and_aggregate),
		cmocka_unit_test(pool_in_order_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
