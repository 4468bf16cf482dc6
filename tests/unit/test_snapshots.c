/*
 * test_snapshots.c - the snapshot table and vm_state rules
 * (checker/snapshots.c, checker/vmstate.c) at their boundaries, on crafted
 * in-memory images: nb_snapshots 65536/65537, extra_data_size 1024/1025
 * and 15/16 (v3) or 0 (v2), l1_size 4 Mi/4 Mi+1, date_nsec 10^9-1/10^9,
 * disk_size and l1_size, the 32/64-bit vm_state size rule around 4 GiB,
 * vm_state reach at exactly the L1's end and one byte past, offsets past
 * the largest host offset.  The image tests (tests/images/snap-*.sh) cover
 * real images; these pin the limits those cannot reach cheaply.
 *
 * Layout (64 KiB clusters): 0 header, 1 reftable, 2 refblock, 3 active L1,
 * 4 snapshot table, 5.. one L1 of zeros per snapshot, refcounts to match.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../core/io.h"
#include "../../core/layout.h"
#include "../../core/reader.h"

#define CS UINT64_C(65536)
#define DISK (UINT64_C(64) << 20)
#define NCL 16         /* clusters in the image */
#define AUTO_L1 1      /* l1_off: the entry's own L1 cluster */

struct img {
	uint8_t *p;
	size_t len;
	unsigned version;
	size_t tpos; /* next free byte of the snapshot table */
	uint32_t nb;
};

struct ent {
	uint64_t l1_off;
	uint32_t l1_size;
	const char *id, *name;
	uint32_t date_nsec;
	uint32_t vm32;
	uint32_t extra;   /* extra_data_size */
	uint64_t vm_large, disk_size, icount;
};

static struct img make(unsigned version)
{
	struct img m = { 0 };
	m.version = version;
	m.len = (size_t)(NCL * CS);
	m.p = calloc(1, m.len);
	assert_non_null(m.p);
	uint8_t *h = m.p;
	qc_put_be32(h, QC_MAGIC);
	qc_put_be32(h + 4, version);
	qc_put_be32(h + 20, 16);
	qc_put_be64(h + 24, DISK);
	qc_put_be32(h + 36, 1);
	qc_put_be64(h + 40, 3 * CS);
	qc_put_be64(h + 48, CS);
	qc_put_be32(h + 56, 1);
	qc_put_be64(h + 64, 4 * CS);
	if (version >= 3) {
		qc_put_be32(h + 96, 4);
		qc_put_be32(h + 100, 104);
	}
	qc_put_be64(m.p + CS, 2 * CS);
	for (unsigned c = 0; c < 4; c++)
		qc_put_be16(m.p + 2 * CS + 2 * c, 1);
	m.tpos = (size_t)(4 * CS);
	return m;
}

static struct ent std_ent(const char *id, const char *name)
{
	struct ent e = { AUTO_L1, 1, id, name, 0, 0, 24, 0, DISK, 0 };
	return e;
}

static void add(struct img *m, const struct ent *e)
{
	uint8_t *p = m->p + m->tpos;
	size_t il = strlen(e->id), nl = strlen(e->name);
	uint64_t l1 = e->l1_off;
	if (l1 == AUTO_L1) {
		l1 = (5 + m->nb) * CS;
		assert_true(5 + m->nb < NCL);
		if (e->l1_size * 8 <= CS)
			qc_put_be16(m->p + 2 * CS + 2 * (5 + m->nb), 1);
	}
	qc_put_be16(m->p + 2 * CS + 2 * 4, 1); /* the table */
	qc_put_be64(p, l1);
	qc_put_be32(p + 8, e->l1_size);
	qc_put_be16(p + 12, (uint16_t)il);
	qc_put_be16(p + 14, (uint16_t)nl);
	qc_put_be32(p + 16, 1700000000);
	qc_put_be32(p + 20, e->date_nsec);
	qc_put_be32(p + 32, e->vm32);
	qc_put_be32(p + 36, e->extra);
	uint8_t extra[1100] = { 0 };
	qc_put_be64(extra, e->vm_large);
	qc_put_be64(extra + 8, e->disk_size);
	qc_put_be64(extra + 16, e->icount);
	memcpy(p + 40, extra, e->extra);
	memcpy(p + 40 + e->extra, e->id, il);
	memcpy(p + 40 + e->extra + il, e->name, nl);
	m->tpos += (40 + e->extra + il + nl + 7) & ~(size_t)7;
	assert_true(m->tpos <= 5 * CS); /* one table cluster */
	m->nb++;
	qc_put_be32(m->p + 60, m->nb);
}

static struct qc_io *cur_io;

static struct qc_image *check(struct img *m)
{
	cur_io = qc_io_open_memory(m->p, m->len, false);
	assert_non_null(cur_io);
	struct qc_image *img = NULL;
	assert_int_equal(qc_check_run(cur_io, NULL, &img), 0);
	return img;
}

/* Records of code `name`, optionally only those about snapshot `snap` (-2: any). */
static unsigned count(const struct qc_image *img, const char *name, int snap)
{
	enum qc_code c = qc_code_by_name(name);
	assert_int_not_equal(c, QC_P_COUNT);
	unsigned n = 0;
	for (size_t i = 0; i < img->problems.n; i++)
		if (img->problems.v[i].code == c && (snap == -2 || img->problems.v[i].loc.snapshot == snap))
			n++;
	return n;
}

static void done(struct img *m, struct qc_image *img)
{
	qc_image_free(img);
	qc_io_close(cur_io);
	free(m->p);
}

static void three(struct img *m)
{
	struct ent a = std_ent("1", "a"), b = std_ent("2", "b"), c = std_ent("3", "c");
	add(m, &a);
	add(m, &b);
	add(m, &c);
}

static void test_clean_v3_and_v2(void **state)
{
	(void)state;
	for (unsigned v = 2; v <= 3; v++) {
		struct img m = make(v);
		three(&m);
		struct qc_image *img = check(&m);
		assert_int_equal(img->nsnapshots, 3);
		assert_int_equal(qc_check_exit_code(img), 0);
		assert_string_equal(img->snapshots[2].name, "c");
		assert_true(img->snapshots[1].l1_usable);
		assert_int_equal(img->snapshots[0].vm_first_l1_index, 1);
		done(&m, img);
	}
}

static void test_count_limit(void **state)
{
	(void)state;
	uint32_t counts[] = { 65536, 65537 };
	for (int k = 0; k < 2; k++) {
		struct img m = make(3);
		three(&m);
		qc_put_be32(m.p + 60, counts[k]);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "snapshot-count-too-large", -2), k);
		assert_int_equal(count(img, "snapshot-count-exceeds-table", -2), 1);
		assert_int_equal(img->nsnapshots, 3);
		done(&m, img);
	}
}

static void test_extra_limits(void **state)
{
	(void)state;
	/* 1024 is allowed, 1025 is not; the neighbours survive either way. */
	uint32_t sizes[] = { 1024, 1025 };
	for (int k = 0; k < 2; k++) {
		struct img m = make(3);
		struct ent a = std_ent("1", "a"), b = std_ent("2", "b"), c = std_ent("3", "c");
		b.extra = sizes[k];
		add(&m, &a);
		add(&m, &b);
		add(&m, &c);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "snapshot-extra-data-too-large", -2), k);
		assert_int_equal(img->nsnapshots, 3);
		assert_string_equal(img->snapshots[0].id, "1");
		assert_string_equal(img->snapshots[2].id, "3");
		if (!k)
			assert_string_equal(img->snapshots[1].name, "b");
		done(&m, img);
	}
	/* v3: 16 is enough, 15 is not (disk_size missing); v2: 0 is fine. */
	struct { unsigned v; uint32_t extra; unsigned bad; } cases[] = {
		{ 3, 16, 0 }, { 3, 15, 1 }, { 3, 8, 1 }, { 2, 0, 0 }, { 2, 8, 0 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct img m = make(cases[k].v);
		struct ent a = std_ent("1", "a");
		a.extra = cases[k].extra;
		add(&m, &a);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "snapshot-extra-data-too-small", 0), cases[k].bad);
		assert_int_equal(img->snapshots[0].has_disk_size, cases[k].extra >= 16);
		assert_int_equal(img->snapshots[0].disk_size, DISK);
		done(&m, img);
	}
}

static void test_l1_limits(void **state)
{
	(void)state;
	struct { uint64_t off; uint32_t size; const char *code; bool usable; } cases[] = {
		{ 5 * CS, 4u << 20, NULL, false },  /* at the limit, but past EOF */
		{ 5 * CS, (4u << 20) + 1, "snapshot-l1-too-large", false },
		{ 5 * CS + 512, 1, "snapshot-l1-offset-unaligned", false },
		{ 64 * CS, 1, "snapshot-l1-past-eof", false },
		{ 0, 1, "snapshot-l1-offset-invalid", false },
		{ UINT64_C(1) << 56, 1, "snapshot-l1-offset-invalid", false },
		{ AUTO_L1, 0, "snapshot-l1-too-small", true },  /* nothing to walk */
		{ 0, 0, NULL, true },  /* no L1 table at all: an empty snapshot, reads as zeros */
		{ 5 * CS + 512, 0, "snapshot-l1-offset-unaligned", true },
		{ AUTO_L1, 1, NULL, true },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct img m = make(3);
		struct ent a = std_ent("1", "a");
		a.l1_off = cases[k].off;
		a.l1_size = cases[k].size;
		add(&m, &a);
		struct qc_image *img = check(&m);
		if (cases[k].code)
			assert_int_equal(count(img, cases[k].code, 0), 1);
		if (k == 0)
			assert_int_equal(count(img, "snapshot-l1-too-large", 0), 0);
		if (cases[k].size == 0 && cases[k].off == 0)
			assert_int_equal(count(img, "snapshot-l1-too-small", 0), 0);
		assert_int_equal(img->snapshots[0].l1_usable, cases[k].usable);
		done(&m, img);
	}
}

static void test_disk_size_and_dates(void **state)
{
	(void)state;
	/* l1_size 1 maps 512 MiB at 64 KiB clusters: exactly that is fine. */
	uint64_t sizes[] = { UINT64_C(512) << 20, (UINT64_C(512) << 20) + 512, 0x123 };
	const char *codes[] = { NULL, "snapshot-l1-too-small", "snapshot-disk-size-unaligned" };
	for (int k = 0; k < 3; k++) {
		struct img m = make(3);
		struct ent a = std_ent("1", "a");
		a.disk_size = sizes[k];
		add(&m, &a);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "snapshot-l1-too-small", 0), k == 1);
		if (codes[k])
			assert_int_equal(count(img, codes[k], 0), 1);
		done(&m, img);
	}
	uint32_t ns[] = { 999999999, 1000000000 };
	for (int k = 0; k < 2; k++) {
		struct img m = make(3);
		struct ent a = std_ent("1", "a");
		a.date_nsec = ns[k];
		add(&m, &a);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "snapshot-date-nsec-invalid", 0), k);
		assert_int_equal(qc_check_exit_code(img), 0); /* a warning only */
		done(&m, img);
	}
}

static void test_ids(void **state)
{
	(void)state;
	struct img m = make(3);
	struct ent a = std_ent("1", "x"), b = std_ent("1", "x"), c = std_ent("", "c"),
		   d = std_ent("4", "x");
	add(&m, &a);
	add(&m, &b);
	add(&m, &c);
	add(&m, &d);
	struct qc_image *img = check(&m);
	assert_int_equal(count(img, "snapshot-id-duplicate", 1), 1);
	assert_int_equal(count(img, "snapshot-id-duplicate", 0), 0);
	assert_int_equal(count(img, "snapshot-id-empty", 2), 1);
	assert_int_equal(count(img, "snapshot-name-duplicate", -2), 2);
	assert_int_equal(count(img, "snapshot-name-duplicate", 0), 0);
	done(&m, img);
}

static void test_vmstate_sizes(void **state)
{
	(void)state;
	const uint64_t span = UINT64_C(512) << 20; /* one L1 entry */
	struct { uint32_t l1; uint64_t large; uint32_t vm32; unsigned beyond, mismatch; } cases[] = {
		{ 2, span, 0x20000000, 0, 0 },           /* exactly the reach */
		{ 2, span + 1, 0x20000001, 1, 0 },       /* one byte past */
		{ 1, 1, 1, 1, 0 },                        /* no room at all */
		{ 10, UINT64_C(0x100000000), 0, 0, 0 },   /* > 4 GiB: 32-bit field 0 */
		{ 10, UINT64_C(0xffffffff), 0xffffffff, 0, 0 },
		{ 10, UINT64_C(0xffffffff), 0, 0, 1 },   /* fits 32 bits but written 0 */
		{ 10, UINT64_C(0x100000000), 5, 0, 1 },
		{ 3, UINT64_C(1) << 40, 0, 1, 0 },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct img m = make(3);
		struct ent a = std_ent("1", "a");
		a.l1_size = cases[k].l1;
		a.vm_large = cases[k].large;
		a.vm32 = cases[k].vm32;
		add(&m, &a);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, "vmstate-beyond-l1", 0), cases[k].beyond);
		assert_int_equal(count(img, "vmstate-size-mismatch", 0), cases[k].mismatch);
		done(&m, img);
	}
}

static void test_table_location(void **state)
{
	(void)state;
	struct { uint64_t off; const char *code; } cases[] = {
		{ 4 * CS + 8, "snapshot-table-offset-unaligned" },
		{ 0, "snapshot-table-offset-invalid" },
		{ UINT64_C(1) << 56, "snapshot-table-offset-invalid" },
		{ NCL * CS, "snapshot-table-past-eof" },
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct img m = make(3);
		three(&m);
		qc_put_be64(m.p + 64, cases[k].off);
		struct qc_image *img = check(&m);
		assert_int_equal(count(img, cases[k].code, -2), 1);
		assert_int_equal(img->nsnapshots, 0);
		assert_int_equal(qc_check_exit_code(img), 2);
		done(&m, img);
	}
	/* No snapshots: QEMU's rule (aligned, not beyond 2^63 - 1), nothing else. */
	struct { uint64_t off; const char *code; } empty[] = {
		{ 12345, "snapshot-table-offset-unaligned" },
		{ UINT64_C(1) << 63, "snapshot-table-offset-invalid" },
		{ 0, NULL },
		{ NCL * CS, NULL },
		{ (UINT64_C(1) << 63) - CS, NULL },
	};
	for (size_t k = 0; k < sizeof(empty) / sizeof(empty[0]); k++) {
		struct img m = make(3);
		qc_put_be64(m.p + 64, empty[k].off);
		struct qc_image *img = check(&m);
		if (empty[k].code)
			assert_int_equal(count(img, empty[k].code, -2), 1);
		assert_int_equal(qc_check_exit_code(img), empty[k].code ? 2 : 0);
		done(&m, img);
	}
}

/* Garbage in the table never crashes, never ends in exit 1, and keeps the
 * entries before it. */
static void test_garbage(void **state)
{
	(void)state;
	uint32_t seed = 12345;
	for (int it = 0; it < 200; it++) {
		struct img m = make(3);
		three(&m);
		size_t at = (size_t)(4 * CS + 72 * 2);
		for (size_t i = 0; i < 64; i++) {
			seed = seed * 1103515245u + 12345u;
			if ((seed >> 16) % 3)
				m.p[at + i] = (uint8_t)(seed >> 8);
		}
		struct qc_image *img = check(&m);
		int rc = qc_check_exit_code(img);
		assert_true(rc == 0 || rc == 2 || rc == 3);
		assert_true(img->nsnapshots >= 2);
		assert_string_equal(img->snapshots[1].name, "b");
		done(&m, img);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_v3_and_v2),
		cmocka_unit_test(test_count_limit),
		cmocka_unit_test(test_extra_limits),
		cmocka_unit_test(test_l1_limits),
		cmocka_unit_test(test_disk_size_and_dates),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_vmstate_sizes),
		cmocka_unit_test(test_table_location),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
