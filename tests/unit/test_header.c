/*
 * test_header.c - the header and extension rules (checker/header.c,
 * checker/extensions.c) on crafted in-memory images, at every boundary:
 * cluster_bits 8/9/21/22, header_length 103/104/105/112/cluster/cluster+8,
 * refcount_order 6/7, l1_size and reftable limits, extension lengths at the
 * area end and one past, backing name limits, feature bits, and a garbage
 * sweep that must never crash or end in exit 1.
 *
 * The crafted image is a consistent qcow2: header cluster, reftable,
 * one refblock (refcounts 1 for the four used clusters), an empty L1.
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

struct img {
	uint8_t *p;
	size_t len;
	unsigned cb;
	uint64_t cs;
	unsigned ext_off; /* next free byte of the extension area */
};

static void set_refcount(struct img *m, unsigned order, uint64_t idx, uint64_t v)
{
	uint8_t *rb = m->p + 2 * m->cs;
	unsigned bits = 1u << order;
	if (bits >= 8) {
		unsigned bytes = bits / 8;
		for (unsigned i = 0; i < bytes; i++)
			rb[idx * bytes + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
	} else {
		uint64_t bit = idx * bits;
		rb[bit / 8] |= (uint8_t)(v << (bit % 8));
	}
}

/* A consistent v3 image: 4 clusters (header, reftable, refblock, L1). */
static struct img make(unsigned cb, unsigned order)
{
	struct img m = { 0 };
	m.cb = cb;
	m.cs = UINT64_C(1) << cb;
	m.len = (size_t)(4 * m.cs);
	m.p = calloc(1, m.len);
	assert_non_null(m.p);
	uint8_t *h = m.p;
	qc_put_be32(h, QC_MAGIC);
	qc_put_be32(h + 4, 3);
	qc_put_be32(h + 20, cb);
	qc_put_be64(h + 24, 32768); /* one L1 entry at any cluster size */
	qc_put_be32(h + 36, 1);
	qc_put_be64(h + 40, 3 * m.cs);
	qc_put_be64(h + 48, m.cs);
	qc_put_be32(h + 56, 1);
	qc_put_be32(h + 96, order);
	qc_put_be32(h + 100, 112);
	qc_put_be64(m.p + m.cs, 2 * m.cs);
	for (unsigned c = 0; c < 4; c++)
		set_refcount(&m, order, c, 1);
	m.ext_off = 112;
	return m;
}

static void add_ext(struct img *m, uint32_t type, uint32_t len, const void *data)
{
	qc_put_be32(m->p + m->ext_off, type);
	qc_put_be32(m->p + m->ext_off + 4, len);
	if (data)
		memcpy(m->p + m->ext_off + 8, data, len);
	m->ext_off += 8 + ((len + 7) & ~7u);
}

struct res {
	int exit;
	uint64_t per_code[QC_P_COUNT];
	char msg[512]; /* message of the first record of `want`, if any */
};

static struct res run(struct img *m, enum qc_code want)
{
	struct res r = { 0 };
	struct qc_io *io = qc_io_open_memory(m->p, m->len, false);
	assert_non_null(io);
	struct qc_options o = { .deep = false, .mem_cap = 0 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(io, &o, &img), 0);
	r.exit = qc_check_exit_code(img);
	memcpy(r.per_code, img->problems.per_code, sizeof(r.per_code));
	for (size_t i = 0; i < img->problems.n; i++)
		if (img->problems.v[i].code == want && img->problems.v[i].message) {
			strncpy(r.msg, img->problems.v[i].message, sizeof(r.msg) - 1);
			break;
		}
	qc_image_free(img);
	qc_io_close(io);
	return r;
}

static void done(struct img *m)
{
	free(m->p);
	m->p = NULL;
}

/* The image has code `c` (and exit status `ex`, unless ex < 0). */
static void expect(struct img *m, enum qc_code c, int ex)
{
	struct res r = run(m, c);
	if (!r.per_code[c])
		fail_msg("expected %s, not reported (exit %d)", qc_problem_table[c].code, r.exit);
	if (ex >= 0 && r.exit != ex) {
		for (unsigned i = 0; i < QC_P_COUNT; i++)
			if (r.per_code[i])
				print_message("  reported %s\n", qc_problem_table[i].code);
		fail_msg("%s: exit %d, expected %d", qc_problem_table[c].code, r.exit, ex);
	}
}

static void expect_not(struct img *m, enum qc_code c)
{
	struct res r = run(m, c);
	if (r.per_code[c])
		fail_msg("%s reported: %s", qc_problem_table[c].code, r.msg);
}

static void expect_clean(struct img *m)
{
	struct res r = run(m, QC_P_COUNT);
	for (unsigned i = 0; i < QC_P_COUNT; i++)
		if (r.per_code[i])
			fail_msg("clean image reports %s", qc_problem_table[i].code);
	assert_int_equal(r.exit, 0);
}

static void clean_images(void **state)
{
	(void)state;
	static const unsigned cbs[] = { 9, 12, 16, 21 };
	for (size_t i = 0; i < sizeof(cbs) / sizeof(cbs[0]); i++)
		for (unsigned order = 0; order <= 6; order++) {
			struct img m = make(cbs[i], order);
			expect_clean(&m);
			done(&m);
		}
}

static void cluster_bits_bounds(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be32(m.p + 20, 8);
	expect(&m, QC_P_HEADER_CLUSTER_BITS_INVALID, 2);
	qc_put_be32(m.p + 20, 22);
	expect(&m, QC_P_HEADER_CLUSTER_BITS_INVALID, 2);
	qc_put_be32(m.p + 20, 0xffffffff);
	expect(&m, QC_P_HEADER_CLUSTER_BITS_INVALID, 2);
	done(&m);
	m = make(9, 4);
	expect_not(&m, QC_P_HEADER_CLUSTER_BITS_INVALID);
	done(&m);
	m = make(21, 4);
	expect_not(&m, QC_P_HEADER_CLUSTER_BITS_INVALID);
	done(&m);
}

static void header_length_bounds(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	static const struct {
		uint32_t hl;
		bool bad;
	} v[] = { { 0, true },   { 72, true },  { 96, true },  { 103, true }, { 104, false },
		  { 105, true }, { 108, true }, { 111, true }, { 112, false }, { 120, false },
		  { 65536, false }, { 65544, true }, { 0xfffffff8, true } };
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		qc_put_be32(m.p + 100, v[i].hl);
		if (v[i].bad)
			expect(&m, QC_P_HEADER_LENGTH_INVALID, 2);
		else
			expect_not(&m, QC_P_HEADER_LENGTH_INVALID);
	}
	/* 104: no compression type byte, zlib implied; 112 and beyond are fine */
	qc_put_be32(m.p + 100, 104);
	expect_clean(&m);
	done(&m);
	/* header_length == cluster size with 512-byte clusters: no extension room */
	m = make(9, 4);
	qc_put_be32(m.p + 100, 512);
	expect_clean(&m);
	qc_put_be32(m.p + 100, 520);
	expect(&m, QC_P_HEADER_LENGTH_INVALID, 2);
	done(&m);
}

static void padding(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	m.p[111] = 1;
	expect(&m, QC_P_HEADER_PADDING_NONZERO, 0);
	m.p[111] = 0;
	m.p[105] = 0x80;
	expect(&m, QC_P_HEADER_PADDING_NONZERO, 0);
	done(&m);
}

static void refcount_order_bounds(void **state)
{
	(void)state;
	struct img m = make(16, 6);
	expect_not(&m, QC_P_HEADER_REFCOUNT_ORDER_INVALID);
	qc_put_be32(m.p + 96, 7);
	expect(&m, QC_P_HEADER_REFCOUNT_ORDER_INVALID, 2);
	qc_put_be32(m.p + 96, 0xffffffff);
	expect(&m, QC_P_HEADER_REFCOUNT_ORDER_INVALID, 2);
	done(&m);
}

static void version_and_magic(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	static const uint32_t bad[] = { 0, 4, 0xffffffff };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		qc_put_be32(m.p + 4, bad[i]);
		expect(&m, QC_P_HEADER_VERSION_UNSUPPORTED, 63);
	}
	/* version 1 is qcow, a different format: not-qcow2, not corruption */
	qc_put_be32(m.p + 4, 1);
	expect(&m, QC_P_IMAGE_NOT_QCOW2, 63);
	qc_put_be32(m.p + 4, 3);
	m.p[3] ^= 1;
	expect(&m, QC_P_IMAGE_NOT_QCOW2, 63);
	m.p[3] ^= 1;
	/* files too short for the header they declare */
	size_t full = m.len;
	m.len = 3;
	expect(&m, QC_P_IMAGE_NOT_QCOW2, 63);
	m.len = 103;
	expect(&m, QC_P_IMAGE_TRUNCATED_HEADER, 2);
	qc_put_be32(m.p + 4, 2);
	m.len = 71;
	expect(&m, QC_P_IMAGE_TRUNCATED_HEADER, 2);
	m.len = 0;
	expect(&m, QC_P_IMAGE_NOT_QCOW2, 63);
	m.len = full;
	done(&m);
}

static void version2(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be32(m.p + 4, 2);
	memset(m.p + 72, 0, 40); /* v2 header ends at 72: the rest is extension area */
	expect_clean(&m);
	/* v2 extensions start right after the 72-byte header */
	m.ext_off = 72;
	add_ext(&m, 0x12345678, 4, "abcd");
	expect(&m, QC_P_EXT_UNKNOWN, 0);
	done(&m);
}

static void l1_limits(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be32(m.p + 36, 0);
	expect(&m, QC_P_HEADER_L1_TOO_SMALL, 2);
	qc_put_be64(m.p + 24, 0); /* size 0 needs no L1 entry */
	expect_not(&m, QC_P_HEADER_L1_TOO_SMALL);
	qc_put_be64(m.p + 24, 32768);
	qc_put_be32(m.p + 36, QC_MAX_L1_SIZE / 8);
	expect_not(&m, QC_P_HEADER_L1_TOO_LARGE);
	qc_put_be32(m.p + 36, QC_MAX_L1_SIZE / 8 + 1);
	expect(&m, QC_P_HEADER_L1_TOO_LARGE, 2);
	qc_put_be32(m.p + 36, 1);
	qc_put_be64(m.p + 40, 3 * m.cs + 8);
	expect(&m, QC_P_HEADER_L1_OFFSET_UNALIGNED, 2);
	qc_put_be64(m.p + 40, 5 * m.cs); /* a whole cluster past EOF */
	expect(&m, QC_P_HEADER_L1_PAST_EOF, 2);
	qc_put_be64(m.p + 40, UINT64_C(0xffffffffffff0000));
	expect(&m, QC_P_HEADER_L1_PAST_EOF, 2);
	done(&m);
	/* virtual size whose L1 index exceeds INT32_MAX */
	m = make(9, 4);
	qc_put_be64(m.p + 24, (UINT64_C(1) << 31) * 512 * 64);
	expect(&m, QC_P_HEADER_SIZE_TOO_LARGE, 2);
	qc_put_be64(m.p + 24, UINT64_MAX);
	expect(&m, QC_P_HEADER_SIZE_TOO_LARGE, 2);
	done(&m);
}

static void reftable_limits(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be32(m.p + 56, 0);
	expect(&m, QC_P_HEADER_REFTABLE_EMPTY, 2);
	qc_put_be32(m.p + 56, QC_MAX_REFTABLE_SIZE >> 16);
	expect_not(&m, QC_P_HEADER_REFTABLE_TOO_LARGE);
	qc_put_be32(m.p + 56, (QC_MAX_REFTABLE_SIZE >> 16) + 1);
	expect(&m, QC_P_HEADER_REFTABLE_TOO_LARGE, 2);
	qc_put_be32(m.p + 56, 0xffffffff);
	expect(&m, QC_P_HEADER_REFTABLE_TOO_LARGE, 2);
	qc_put_be32(m.p + 56, 1);
	qc_put_be64(m.p + 48, m.cs + 512);
	expect(&m, QC_P_HEADER_REFTABLE_OFFSET_UNALIGNED, 2);
	qc_put_be64(m.p + 48, 6 * m.cs);
	expect(&m, QC_P_HEADER_REFTABLE_PAST_EOF, 2);
	qc_put_be64(m.p + 48, 0);
	expect(&m, QC_P_HEADER_REFTABLE_ON_HEADER, 2);
	expect_not(&m, QC_P_OVERLAP_METADATA);
	done(&m);
}

static void features(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 72, QC_INCOMPAT_DIRTY);
	expect(&m, QC_P_HEADER_DIRTY, 0);
	qc_put_be64(m.p + 72, QC_INCOMPAT_CORRUPT);
	expect(&m, QC_P_HEADER_CORRUPT_BIT, 2);
	qc_put_be64(m.p + 72, 0);
	qc_put_be64(m.p + 80, UINT64_C(1) << 1);
	expect(&m, QC_P_HEADER_COMPAT_UNKNOWN, 0);
	qc_put_be64(m.p + 80, QC_COMPAT_LAZY_REFCOUNTS);
	expect_clean(&m);
	qc_put_be64(m.p + 80, 0);
	qc_put_be64(m.p + 88, UINT64_C(1) << 63);
	expect(&m, QC_P_HEADER_AUTOCLEAR_UNKNOWN, 0);
	qc_put_be64(m.p + 88, QC_AUTOCLEAR_DATA_RAW);
	expect(&m, QC_P_HEADER_DATA_RAW_WITHOUT_DATA_FILE, 2);
	qc_put_be64(m.p + 88, 0);
	/* extended L2 needs 16 KiB clusters */
	qc_put_be64(m.p + 72, QC_INCOMPAT_EXTL2);
	expect_not(&m, QC_P_HEADER_EXTL2_CLUSTER_TOO_SMALL);
	done(&m);
	m = make(13, 4);
	qc_put_be64(m.p + 72, QC_INCOMPAT_EXTL2);
	expect(&m, QC_P_HEADER_EXTL2_CLUSTER_TOO_SMALL, 2);
	done(&m);
	m = make(14, 4);
	qc_put_be64(m.p + 72, QC_INCOMPAT_EXTL2);
	expect_clean(&m);
	done(&m);
}

static void incompat_unknown_named(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 72, (UINT64_C(1) << 5) | (UINT64_C(1) << 40));
	struct res r = run(&m, QC_P_HEADER_INCOMPAT_UNKNOWN);
	assert_int_equal(r.exit, 63);
	assert_true(r.per_code[QC_P_HEADER_INCOMPAT_UNKNOWN] == 1);
	assert_non_null(strstr(r.msg, "bit 5"));
	assert_non_null(strstr(r.msg, "bit 40"));
	/* with a feature-name table naming bit 5 */
	uint8_t tab[96] = { 0 };
	tab[0] = 0;
	tab[1] = 5;
	memcpy(tab + 2, "shiny new thing", 15);
	tab[48] = 1; /* a compat entry for bit 5 must not be used for incompat */
	tab[49] = 40;
	memcpy(tab + 50, "wrong type", 10);
	add_ext(&m, QC_EXT_FEATURE_TABLE, sizeof(tab), tab);
	r = run(&m, QC_P_HEADER_INCOMPAT_UNKNOWN);
	assert_int_equal(r.exit, 63);
	assert_non_null(strstr(r.msg, "bit 5 \"shiny new thing\""));
	assert_null(strstr(r.msg, "wrong type"));
	/* names for unknown autoclear bits come from the same table */
	qc_put_be64(m.p + 72, 0);
	tab[48] = 2;
	memcpy(m.p + 120, tab, sizeof(tab));
	qc_put_be64(m.p + 88, UINT64_C(1) << 40);
	r = run(&m, QC_P_HEADER_AUTOCLEAR_UNKNOWN);
	assert_int_equal(r.exit, 0);
	assert_non_null(strstr(r.msg, "wrong type"));
	done(&m);
}

static void compression(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	m.p[104] = 1;
	expect(&m, QC_P_HEADER_COMPRESSION_TYPE_MISMATCH, 2);
	qc_put_be64(m.p + 72, QC_INCOMPAT_COMPRESSION);
	expect_clean(&m);
	m.p[104] = 0;
	expect(&m, QC_P_HEADER_COMPRESSION_TYPE_MISMATCH, 2);
	m.p[104] = 2;
	expect(&m, QC_P_HEADER_COMPRESSION_TYPE_INVALID, 2);
	/* header_length 104: the type byte is not part of the header (zlib) */
	m.p[104] = 1;
	qc_put_be32(m.p + 100, 104);
	expect(&m, QC_P_HEADER_COMPRESSION_TYPE_MISMATCH, 2);
	done(&m);
}

static void crypt_method(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be32(m.p + 32, 1);
	expect(&m, QC_P_HEADER_CRYPT_AES, 0);
	qc_put_be32(m.p + 32, 3);
	expect(&m, QC_P_HEADER_CRYPT_METHOD_INVALID, 2);
	qc_put_be32(m.p + 32, 2);
	expect(&m, QC_P_EXT_CRYPTO_MISSING, 2);
	done(&m);
}

static void backing_name(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	/* a name that ends exactly at the cluster end */
	qc_put_be64(m.p + 8, m.cs - 10);
	qc_put_be32(m.p + 16, 10);
	memcpy(m.p + m.cs - 10, "base.qcow2", 10);
	expect_clean(&m);
	qc_put_be32(m.p + 16, 11);
	expect(&m, QC_P_HEADER_BACKING_NAME_INVALID, 2);
	qc_put_be64(m.p + 8, 4096);
	qc_put_be32(m.p + 16, 1023);
	expect_not(&m, QC_P_HEADER_BACKING_NAME_INVALID);
	qc_put_be32(m.p + 16, 1024);
	expect(&m, QC_P_HEADER_BACKING_NAME_INVALID, 2);
	qc_put_be32(m.p + 16, 4);
	qc_put_be64(m.p + 8, m.cs + 1);
	expect(&m, QC_P_HEADER_BACKING_OFFSET_INVALID, 2);
	qc_put_be64(m.p + 8, 104); /* inside the 112-byte header */
	expect(&m, QC_P_HEADER_BACKING_OFFSET_INVALID, 2);
	qc_put_be64(m.p + 8, 112);
	expect_not(&m, QC_P_HEADER_BACKING_OFFSET_INVALID);
	done(&m);
}

static void ext_area_bounds(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	/* an unknown extension that fills the area exactly, then one byte more */
	qc_put_be32(m.p + 112, 0x11223344);
	qc_put_be32(m.p + 116, (uint32_t)(m.cs - 120));
	expect(&m, QC_P_EXT_UNKNOWN, 0);
	expect_not(&m, QC_P_EXT_TOO_LARGE);
	qc_put_be32(m.p + 116, (uint32_t)(m.cs - 119));
	expect(&m, QC_P_EXT_TOO_LARGE, 2);
	qc_put_be32(m.p + 116, 0xffffffff);
	expect(&m, QC_P_EXT_TOO_LARGE, 2);
	/* the area ends at the backing file name */
	qc_put_be32(m.p + 116, 8);
	qc_put_be64(m.p + 8, 128);
	qc_put_be32(m.p + 16, 4);
	expect_not(&m, QC_P_EXT_TOO_LARGE);
	qc_put_be32(m.p + 116, 9);
	expect(&m, QC_P_EXT_TOO_LARGE, 2);
	/* fewer than 8 bytes left for an extension header */
	memset(m.p + 112, 0, 16);
	qc_put_be64(m.p + 8, 116);
	expect_not(&m, QC_P_EXT_HEADER_TRUNCATED);
	m.p[113] = 7;
	expect(&m, QC_P_EXT_HEADER_TRUNCATED, 2);
	/* an end marker whose length runs past the area: QEMU checks the length first */
	qc_put_be64(m.p + 8, 0);
	memset(m.p + 112, 0, 16);
	qc_put_be32(m.p + 116, (uint32_t)(m.cs - 120));
	expect_not(&m, QC_P_EXT_TOO_LARGE);
	qc_put_be32(m.p + 116, (uint32_t)(m.cs - 119));
	expect(&m, QC_P_EXT_TOO_LARGE, 2);
	done(&m);
}

static void ext_backing_format(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 8, 4096);
	qc_put_be32(m.p + 16, 4);
	memcpy(m.p + 4096, "base", 4);
	/* the longest driver name QEMU has: 15 bytes, the limit */
	add_ext(&m, QC_EXT_BACKING_FORMAT, 15, "snapshot-access");
	expect_clean(&m);
	/* a name that is no driver: QEMU's open fails ("Unknown driver") */
	memcpy(m.p + 120, "qcow2qcow2qcow2", 15);
	expect(&m, QC_P_EXT_BACKING_FORMAT_UNKNOWN, 2);
	qc_put_be32(m.p + 116, 16);
	expect(&m, QC_P_EXT_BACKING_FORMAT_TOO_LONG, 2);
	qc_put_be32(m.p + 116, 5);
	memset(m.p + 125, 0, 16); /* the rest of the old name would read as an extension */
	qc_put_be64(m.p + 8, 0);
	expect(&m, QC_P_EXT_BACKING_FORMAT_WITHOUT_BACKING, 0);
	/* without a backing file the name is never used: not "unknown" */
	expect_not(&m, QC_P_EXT_BACKING_FORMAT_UNKNOWN);
	done(&m);
}

static void ext_feature_table(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	uint8_t tab[48 * 3] = { 0 };
	tab[0] = 0, tab[1] = 0, memcpy(tab + 2, "dirty bit", 9);
	tab[48] = 2, tab[49] = 63, memcpy(tab + 50, "top", 3);
	tab[96] = 1, tab[97] = 0, memset(tab + 98, 'x', 46); /* 46 chars, no NUL: fine */
	add_ext(&m, QC_EXT_FEATURE_TABLE, sizeof(tab), tab);
	expect_clean(&m);
	m.p[120 + 48] = 3;
	expect(&m, QC_P_EXT_FEATURE_TABLE_ENTRY_INVALID, 2);
	m.p[120 + 48] = 2;
	m.p[120 + 49] = 64;
	expect(&m, QC_P_EXT_FEATURE_TABLE_ENTRY_INVALID, 2);
	m.p[120 + 49] = 63;
	qc_put_be32(m.p + 116, 47);
	expect(&m, QC_P_EXT_FEATURE_TABLE_LENGTH_INVALID, 2);
	qc_put_be32(m.p + 116, 49);
	expect(&m, QC_P_EXT_FEATURE_TABLE_LENGTH_INVALID, 2);
	qc_put_be32(m.p + 116, 0);
	expect_not(&m, QC_P_EXT_FEATURE_TABLE_LENGTH_INVALID);
	done(&m);
}

static void put_bitmaps(struct img *m, uint32_t nb, uint32_t res, uint64_t size, uint64_t off)
{
	uint8_t b[24];
	qc_put_be32(b, nb);
	qc_put_be32(b + 4, res);
	qc_put_be64(b + 8, size);
	qc_put_be64(b + 16, off);
	m->ext_off = 112;
	add_ext(m, QC_EXT_BITMAPS, 24, b);
}

static void ext_bitmaps(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 88, QC_AUTOCLEAR_BITMAPS);
	put_bitmaps(&m, 1, 0, 64, 2 * m.cs);
	expect_not(&m, QC_P_EXT_BITMAPS_COUNT_INVALID);
	put_bitmaps(&m, 0, 0, 64, 2 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_COUNT_INVALID, 2);
	put_bitmaps(&m, 65535, 0, 64, 2 * m.cs);
	expect_not(&m, QC_P_EXT_BITMAPS_COUNT_INVALID);
	put_bitmaps(&m, 65536, 0, 64, 2 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_COUNT_INVALID, 2);
	put_bitmaps(&m, 1, 1, 64, 2 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_RESERVED_NONZERO, 2);
	put_bitmaps(&m, 1, 0, 0, 2 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_DIR_SIZE_INVALID, 2);
	put_bitmaps(&m, 1, 0, QC_MAX_BITMAP_DIR_SIZE, 2 * m.cs);
	expect_not(&m, QC_P_EXT_BITMAPS_DIR_SIZE_INVALID);
	put_bitmaps(&m, 1, 0, QC_MAX_BITMAP_DIR_SIZE + 1ull, 2 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_DIR_SIZE_INVALID, 2);
	put_bitmaps(&m, 1, 0, 64, 2 * m.cs + 8);
	expect(&m, QC_P_EXT_BITMAPS_DIR_OFFSET_UNALIGNED, 2);
	put_bitmaps(&m, 1, 0, 64, 5 * m.cs);
	expect(&m, QC_P_EXT_BITMAPS_DIR_PAST_EOF, 2);
	put_bitmaps(&m, 1, 0, 64, 0);
	expect(&m, QC_P_EXT_BITMAPS_DIR_PAST_EOF, 2);
	/* length must be exactly 24 */
	qc_put_be32(m.p + 116, 23);
	expect(&m, QC_P_EXT_BITMAPS_LENGTH_INVALID, 2);
	qc_put_be32(m.p + 116, 32);
	expect(&m, QC_P_EXT_BITMAPS_LENGTH_INVALID, 2);
	/* autoclear bit 0 clear: QEMU ignores the bitmaps (warning only) */
	qc_put_be32(m.p + 116, 24);
	qc_put_be64(m.p + 88, 0);
	put_bitmaps(&m, 0, 7, 0, 3);
	expect(&m, QC_P_EXT_BITMAPS_AUTOCLEAR_CLEAR, 0);
	expect_not(&m, QC_P_EXT_BITMAPS_COUNT_INVALID);
	done(&m);
}

static void put_crypto(struct img *m, uint32_t len, uint64_t off, uint64_t size)
{
	uint8_t b[24] = { 0 };
	qc_put_be64(b, off);
	qc_put_be64(b + 8, size);
	m->ext_off = 112;
	add_ext(m, QC_EXT_CRYPTO, len, b);
}

static void ext_crypto(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	put_crypto(&m, 16, 2 * m.cs, m.cs);
	expect(&m, QC_P_EXT_CRYPTO_WITHOUT_LUKS, 2);
	qc_put_be32(m.p + 32, 2);
	put_crypto(&m, 15, 2 * m.cs, m.cs);
	expect(&m, QC_P_EXT_CRYPTO_LENGTH_INVALID, 2);
	put_crypto(&m, 24, 2 * m.cs, m.cs);
	expect(&m, QC_P_EXT_CRYPTO_LENGTH_INVALID, 2);
	put_crypto(&m, 16, 2 * m.cs + 512, m.cs);
	expect(&m, QC_P_EXT_CRYPTO_OFFSET_UNALIGNED, 2);
	put_crypto(&m, 16, 4 * m.cs, m.cs);
	expect(&m, QC_P_EXT_CRYPTO_RANGE_INVALID, 2);
	put_crypto(&m, 16, 2 * m.cs, 0);
	expect(&m, QC_P_EXT_CRYPTO_RANGE_INVALID, 2);
	put_crypto(&m, 16, 2 * m.cs, UINT64_MAX);
	expect(&m, QC_P_EXT_CRYPTO_RANGE_INVALID, 2);
	/* a valid pointer to an area without a LUKS header */
	put_crypto(&m, 16, 3 * m.cs, m.cs);
	expect_not(&m, QC_P_EXT_CRYPTO_RANGE_INVALID);
	expect(&m, QC_P_LUKS_MAGIC_INVALID, 2);
	done(&m);
}

static void ext_data_file(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 72, QC_INCOMPAT_DATA_FILE);
	expect(&m, QC_P_EXT_DATA_FILE_MISSING, 0);
	add_ext(&m, QC_EXT_DATA_FILE, 8, "data.raw");
	expect_clean(&m);
	qc_put_be64(m.p + 72, 0);
	expect(&m, QC_P_EXT_DATA_FILE_WITHOUT_FEATURE, 0);
	qc_put_be64(m.p + 72, QC_INCOMPAT_DATA_FILE);
	qc_put_be32(m.p + 116, 1023);
	expect_not(&m, QC_P_EXT_DATA_FILE_NAME_TOO_LONG);
	qc_put_be32(m.p + 116, 1024);
	expect(&m, QC_P_EXT_DATA_FILE_NAME_TOO_LONG, 2);
	done(&m);
}

static void ext_duplicate(void **state)
{
	(void)state;
	struct img m = make(16, 4);
	qc_put_be64(m.p + 8, 4096);
	qc_put_be32(m.p + 16, 4);
	memcpy(m.p + 4096, "base", 4);
	add_ext(&m, QC_EXT_BACKING_FORMAT, 3, "raw");
	add_ext(&m, QC_EXT_BACKING_FORMAT, 5, "qcow2");
	expect(&m, QC_P_EXT_DUPLICATE, 2);
	done(&m);
}

/* Garbage after a valid magic and version: never a crash, never exit 1. */
static void garbage_sweep(void **state)
{
	(void)state;
	uint32_t seed = 12345;
	for (int it = 0; it < 300; it++) {
		struct img m = make(12, 4);
		for (unsigned i = 8; i < 4096; i++) {
			seed = seed * 1103515245u + 12345u;
			if (i < 112 || (seed >> 28) == 0)
				m.p[i] = (uint8_t)(seed >> 16);
		}
		if (it % 3 == 0)
			qc_put_be32(m.p + 20, 12); /* keep the cluster size sometimes */
		if (it % 5 == 0)
			qc_put_be64(m.p + 72, 0);
		struct res r = run(&m, QC_P_COUNT);
		assert_true(r.exit == 0 || r.exit == 2 || r.exit == 3 || r.exit == 63);
		done(&m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(clean_images),
		cmocka_unit_test(cluster_bits_bounds),
		cmocka_unit_test(header_length_bounds),
		cmocka_unit_test(padding),
		cmocka_unit_test(refcount_order_bounds),
		cmocka_unit_test(version_and_magic),
		cmocka_unit_test(version2),
		cmocka_unit_test(l1_limits),
		cmocka_unit_test(reftable_limits),
		cmocka_unit_test(features),
		cmocka_unit_test(incompat_unknown_named),
		cmocka_unit_test(compression),
		cmocka_unit_test(crypt_method),
		cmocka_unit_test(backing_name),
		cmocka_unit_test(ext_area_bounds),
		cmocka_unit_test(ext_backing_format),
		cmocka_unit_test(ext_feature_table),
		cmocka_unit_test(ext_bitmaps),
		cmocka_unit_test(ext_crypto),
		cmocka_unit_test(ext_data_file),
		cmocka_unit_test(ext_duplicate),
		cmocka_unit_test(garbage_sweep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
