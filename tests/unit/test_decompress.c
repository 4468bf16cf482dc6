/*
 * test_decompress.c - core/decompress.c against streams made here with
 * zlib and zstd: exact clusters, sector padding, short, long, truncated,
 * damaged and wrong-window streams, multi-frame zstd, the zstd window cap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zlib.h>
#include <zstd.h>

#include "../../core/decompress.h"

#define CL 65536

static uint8_t src[2 * CL], cbuf[4 * CL], out[CL];

/* Compressible but not trivial: runs of pseudo-random bytes. */
static void make_src(void)
{
	uint32_t x = 12345;
	for (size_t i = 0; i < sizeof(src); i++) {
		if (i % 16 == 0)
			x = x * 1103515245 + 12345;
		src[i] = (uint8_t)(x >> 16);
	}
}

static size_t deflate_raw(const uint8_t *in, size_t n, uint8_t *dst, size_t cap, int wbits)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, wbits, 9, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)n;
	z.next_out = dst;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t len = cap - z.avail_out;
	deflateEnd(&z);
	return len;
}

static enum qc_dc_result run(int type, const uint8_t *in, size_t n)
{
	struct qc_dc *d = qc_dc_new(type);
	assert_non_null(d);
	size_t produced;
	const char *why;
	enum qc_dc_result r = qc_dc_run(d, in, n, out, CL, &produced, &why);
	assert_non_null(why);
	if (r == QC_DC_OK)
		assert_int_equal(produced, CL);
	qc_dc_free(d);
	return r;
}

static void zlib_exact(void **state)
{
	(void)state;
	make_src();
	size_t n = deflate_raw(src, CL, cbuf, sizeof(cbuf), -12);
	assert_int_equal(run(0, cbuf, n), QC_DC_OK);
	assert_memory_equal(out, src, CL);
	/* sector padding after the stream, as the descriptor covers whole sectors */
	memset(cbuf + n, 0xaa, 511);
	assert_int_equal(run(0, cbuf, n + 511), QC_DC_OK);
}

static void zlib_short_long_truncated(void **state)
{
	(void)state;
	make_src();
	size_t n = deflate_raw(src, CL / 2, cbuf, sizeof(cbuf), -12);
	assert_int_equal(run(0, cbuf, n), QC_DC_SHORT);
	n = deflate_raw(src, CL + 100, cbuf, sizeof(cbuf), -12);
	assert_int_equal(run(0, cbuf, n), QC_DC_INEXACT); /* QEMU reads it truncated */
	n = deflate_raw(src, CL, cbuf, sizeof(cbuf), -12);
	assert_int_equal(run(0, cbuf, n / 2), QC_DC_TRUNCATED);
	assert_int_equal(run(0, cbuf, 0), QC_DC_TRUNCATED);
}

static void zlib_damaged(void **state)
{
	(void)state;
	make_src();
	size_t n = deflate_raw(src, CL, cbuf, sizeof(cbuf), -12);
	memset(cbuf + n / 3, 0xff, 64);
	enum qc_dc_result r = run(0, cbuf, n);
	assert_true(r == QC_DC_INVALID || r == QC_DC_SHORT || r == QC_DC_TRUNCATED);
	/* block type 3 is invalid in deflate */
	uint8_t bad[16] = { 0x07 };
	assert_int_equal(run(0, bad, sizeof(bad)), QC_DC_INVALID);
}

static void zlib_wide_window(void **state)
{
	(void)state;
	/* 8 KiB of noise repeated: matches 8 KiB back, beyond QEMU's 4 KiB window */
	uint32_t x = 7;
	for (size_t i = 0; i < 8192; i++) {
		x = x * 1664525 + 1013904223;
		src[i] = (uint8_t)(x >> 24);
	}
	for (size_t i = 8192; i < CL; i++)
		src[i] = src[i - 8192];
	/* zlib decodes in one shot into the whole output buffer, so (for QEMU
	 * too) distances beyond the declared window still resolve: readable */
	size_t n = deflate_raw(src, CL, cbuf, sizeof(cbuf), -15);
	assert_int_equal(run(0, cbuf, n), QC_DC_OK);
	assert_memory_equal(out, src, CL);
}

static void zstd_cases(void **state)
{
	(void)state;
	make_src();
	size_t n = ZSTD_compress(cbuf, sizeof(cbuf), src, CL, 3);
	assert_false(ZSTD_isError(n));
	assert_int_equal(run(1, cbuf, n), QC_DC_OK);
	assert_memory_equal(out, src, CL);
	memset(cbuf + n, 0, 300);
	assert_int_equal(run(1, cbuf, n + 300), QC_DC_OK);
	assert_int_equal(run(1, cbuf, n / 2), QC_DC_TRUNCATED);
	/* two frames of half a cluster each: QEMU accepts several frames */
	size_t a = ZSTD_compress(cbuf, sizeof(cbuf), src, CL / 2, 3);
	size_t b = ZSTD_compress(cbuf + a, sizeof(cbuf) - a, src + CL / 2, CL / 2, 3);
	assert_int_equal(run(1, cbuf, a + b), QC_DC_OK);
	assert_memory_equal(out, src, CL);
	/* one half frame followed by zero padding: short */
	assert_int_equal(run(1, cbuf, a), QC_DC_SHORT);
	memset(cbuf + a, 0, 512);
	assert_int_equal(run(1, cbuf, a + 512), QC_DC_SHORT);
	n = ZSTD_compress(cbuf, sizeof(cbuf), src, CL + 1000, 3);
	assert_int_equal(run(1, cbuf, n), QC_DC_LONG);
	memset(cbuf, 0x5a, 64);
	assert_int_equal(run(1, cbuf, 64), QC_DC_INVALID);
	/* a damaged frame header; (damage inside literals may decode to wrong
	 * bytes of the right size: without a checksum nobody can tell) */
	n = ZSTD_compress(cbuf, sizeof(cbuf), src, CL, 3);
	cbuf[0] ^= 0xff;
	assert_int_equal(run(1, cbuf, n), QC_DC_INVALID);
}

/*
 * The zstd window cap (core/decompress.h): a frame written the way QEMU
 * writes one (one ZSTD_e_end call: content size in the header) of the
 * largest cluster, 2 MiB, decodes; a frame without its content size that
 * declares a 128 MiB window is not decompressed (QC_DC_WINDOW), so the
 * decoder never reserves more than qc_dc_mem_bound(), a few MiB.
 */
static void zstd_window_cap(void **state)
{
	(void)state;
	enum { BIG = 2 << 20 };
	uint8_t *big = malloc(BIG), *dst = malloc(BIG + 4096), *res = malloc(BIG);
	assert_non_null(big);
	assert_non_null(dst);
	assert_non_null(res);
	for (size_t i = 0; i < BIG; i++)
		big[i] = (uint8_t)((i * 2654435761u) >> 13);
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	ZSTD_outBuffer ob = { dst, BIG + 4096, 0 };
	ZSTD_inBuffer ib = { big, BIG, 0 };
	assert_int_equal(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end), 0);
	struct qc_dc *d = qc_dc_new(1);
	assert_non_null(d);
	size_t produced;
	const char *why;
	assert_int_equal(qc_dc_run(d, dst, ob.pos, res, BIG, &produced, &why), QC_DC_OK);
	assert_memory_equal(res, big, BIG);
	/* the same data, content size omitted, window 2^27 */
	ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 27)));
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
	ob.pos = 0;
	ib.pos = 0;
	ib.size = CL;
	size_t r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_continue);
	assert_false(ZSTD_isError(r));
	while ((r = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end)) != 0)
		assert_false(ZSTD_isError(r));
	assert_int_equal(qc_dc_run(d, dst, ob.pos, res, CL, &produced, &why), QC_DC_WINDOW);
	assert_true(qc_dc_mem_bound(1) < (4u << 20));
	/* zlib: libdeflate's state and the own decoder's two contexts */
	assert_true(qc_dc_mem_bound(0) < (128u << 10));
	qc_dc_free(d);
	ZSTD_freeCCtx(c);
	free(big);
	free(dst);
	free(res);
}

static void bad_type(void **state)
{
	(void)state;
	assert_null(qc_dc_new(2));
	assert_null(qc_dc_new(-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zlib_exact),        cmocka_unit_test(zlib_short_long_truncated),
		cmocka_unit_test(zlib_damaged),      cmocka_unit_test(zlib_wide_window),
		cmocka_unit_test(zstd_cases),        cmocka_unit_test(bad_type),
		cmocka_unit_test(zstd_window_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
