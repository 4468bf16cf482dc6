/*
 * test_inflate_guard.c - the deflate fast path (core/deflate_hdr.c and
 * core/decompress.c, doc/inflate.md): streams built bit by bit here that
 * libdeflate accepts and zlib rejects (forbidden symbols in fixed blocks,
 * 287 literal/length codes, an empty distance code, a second block) must
 * get zlib's verdict; strict single-block streams are decided by libdeflate
 * with zlib's bytes; every bit flip and cut of a strict stream's first
 * bytes gets the same answer from both decoders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libdeflate.h>
#include <zlib.h>

#include "../../core/decompress.h"
#include "../../core/deflate_hdr.h"

/* ---- a deflate bit writer (RFC 1951 §3.1.1) ---- */
struct bw {
	uint8_t b[8192];
	size_t pos; /* bits */
};

static void put(struct bw *w, unsigned v, unsigned n) /* LSB first */
{
	for (unsigned i = 0; i < n; i++, w->pos++) {
		assert_true(w->pos / 8 < sizeof(w->b));
		if ((v >> i) & 1)
			w->b[w->pos / 8] |= (uint8_t)(1u << (w->pos % 8));
	}
}

static void putcode(struct bw *w, unsigned code, unsigned len) /* MSB first */
{
	for (unsigned i = len; i-- > 0;)
		put(w, (code >> i) & 1, 1);
}

static size_t bytes(const struct bw *w)
{
	return (w->pos + 7) / 8;
}

/* Canonical codes for lengths[0..n) (RFC 1951 §3.2.2). */
static void canon(const uint8_t *len, unsigned n, unsigned *code)
{
	unsigned count[16] = { 0 }, next[16] = { 0 }, c = 0;
	for (unsigned s = 0; s < n; s++)
		count[len[s]]++;
	count[0] = 0;
	for (unsigned l = 1; l < 16; l++) {
		c = (c + count[l - 1]) << 1;
		next[l] = c;
	}
	for (unsigned s = 0; s < n; s++)
		if (len[s])
			code[s] = next[len[s]]++;
}

/* A dynamic block header: every code length sent as itself with a 4-bit
 * code-length code (symbols 0..15, all of length 4: complete). */
static void dyn_header(struct bw *w, int final, const uint8_t *ll, unsigned nlen, const uint8_t *dl,
		       unsigned ndist)
{
	static const uint8_t order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
					   11, 4, 12, 3, 13, 2, 14, 1, 15 };
	put(w, (unsigned)final, 1);
	put(w, 2, 2);
	put(w, nlen - 257, 5);
	put(w, ndist - 1, 5);
	put(w, 19 - 4, 4);
	for (unsigned i = 0; i < 19; i++)
		put(w, order[i] < 16 ? 4 : 0, 3);
	for (unsigned i = 0; i < nlen; i++)
		putcode(w, ll[i], 4);
	for (unsigned i = 0; i < ndist; i++)
		putcode(w, dl[i], 4);
}

/* ---- the three decoders on one stream ---- */
#define OUTMAX 4096
static uint8_t o_ref[OUTMAX], o_comb[OUTMAX], o_ld[OUTMAX];

struct verdicts {
	enum qc_dc_result ref, comb;
	int libdeflate_full; /* libdeflate alone: success with a full buffer */
	uint64_t fast;       /* decided by libdeflate in the combined decoder */
};

static struct verdicts judge(const uint8_t *in, size_t n, size_t cl)
{
	struct qc_dc *ref = qc_dc_new_zlib_only(0), *comb = qc_dc_new(0);
	struct libdeflate_decompressor *ld = libdeflate_alloc_decompressor();
	assert_non_null(ref);
	assert_non_null(comb);
	assert_non_null(ld);
	struct verdicts v;
	size_t pr, pc, got = 0;
	const char *wr, *wc;
	v.ref = qc_dc_run(ref, in, n, o_ref, cl, &pr, &wr);
	v.comb = qc_dc_run(comb, in, n, o_comb, cl, &pc, &wc);
	v.fast = qc_dc_fast_count(comb);
	/* the combined decoder is zlib, exactly */
	assert_int_equal(v.ref, v.comb);
	assert_int_equal(pr, pc);
	assert_string_equal(wr, wc);
	assert_memory_equal(o_ref, o_comb, pr);
	v.libdeflate_full = libdeflate_deflate_decompress(ld, in, n, o_ld, cl, &got) ==
				    LIBDEFLATE_SUCCESS && got == cl;
	libdeflate_free_decompressor(ld);
	qc_dc_free(ref);
	qc_dc_free(comb);
	return v;
}

/* A literal 'a', then n matches of length 258 at distance 1, for a
 * cluster of 1 + 258 n bytes. */
#define NMATCH 3
#define CL_A (1 + 258 * NMATCH)

/* Fixed block: a length symbol 286 or 287 (forbidden; libdeflate reads
 * 258) or distance code 30 or 31 (forbidden; libdeflate reads 24577+). */
static void fixed_forbidden(void **state)
{
	(void)state;
	for (unsigned sym = 286; sym <= 287; sym++) {
		struct bw w = { 0 };
		put(&w, 1, 1);
		put(&w, 1, 2);
		putcode(&w, 0x30 + 'a', 8);
		for (int k = 0; k < NMATCH; k++) {
			putcode(&w, 0xc0 + (sym - 280), 8);
			putcode(&w, 0, 5);
		}
		putcode(&w, 0, 7);
		assert_false(qc_deflate_one_strict_block(w.b, bytes(&w)));
		struct verdicts v = judge(w.b, bytes(&w), CL_A);
		assert_true(v.libdeflate_full);
		assert_int_equal(v.ref, QC_DC_INVALID);
		assert_int_equal(v.fast, 0);
	}
	/* distance code 30: 24577 back, from 24577 + 1 bytes of 'a' */
	struct bw w = { 0 };
	put(&w, 1, 1);
	put(&w, 1, 2);
	for (int k = 0; k < 2; k++)
		putcode(&w, 0x30 + 'a', 8);
	size_t done = 2;
	while (done + 258 <= 24578) {
		putcode(&w, 0xc5, 8); /* 285: length 258 */
		putcode(&w, 0, 5);    /* distance 1 */
		done += 258;
	}
	while (done < 24578) {
		putcode(&w, 0x30 + 'a', 8);
		done++;
	}
	putcode(&w, 0x00 + 1, 7); /* 257: length 3 */
	putcode(&w, 30, 5);
	put(&w, 0, 13);           /* distance 24577 */
	putcode(&w, 0, 7);
	size_t cl = done + 3;
	assert_true(cl <= 24581);
	static uint8_t big_ref[32768], big_comb[32768];
	struct qc_dc *ref = qc_dc_new_zlib_only(0), *comb = qc_dc_new(0);
	size_t pr, pc;
	const char *wr, *wc;
	enum qc_dc_result rr = qc_dc_run(ref, w.b, bytes(&w), big_ref, cl, &pr, &wr);
	enum qc_dc_result rc = qc_dc_run(comb, w.b, bytes(&w), big_comb, cl, &pc, &wc);
	assert_int_equal(rr, QC_DC_INVALID);
	assert_int_equal(rc, rr);
	assert_int_equal(pr, pc);
	assert_string_equal(wr, wc);
	struct libdeflate_decompressor *ld = libdeflate_alloc_decompressor();
	size_t got = 0;
	assert_int_equal(libdeflate_deflate_decompress(ld, w.b, bytes(&w), big_comb, cl, &got),
			 LIBDEFLATE_SUCCESS);
	assert_int_equal(got, cl);
	libdeflate_free_decompressor(ld);
	qc_dc_free(ref);
	qc_dc_free(comb);
}

/* Dynamic final block: 'a' (length 1), end of block and a length symbol
 * (length 2 each); distance code: two codes of length 1. */
static size_t dyn_stream(struct bw *w, unsigned nlen, unsigned lensym, unsigned ndist,
			 int empty_dist)
{
	uint8_t ll[288] = { 0 }, dl[32] = { 0 };
	unsigned lc[288] = { 0 }, dc[32] = { 0 };
	ll['a'] = 1;
	ll[256] = 2;
	ll[lensym] = 2;
	if (!empty_dist)
		dl[0] = dl[1] = 1;
	dyn_header(w, 1, ll, nlen, dl, ndist);
	canon(ll, nlen, lc);
	canon(dl, ndist, dc);
	putcode(w, lc['a'], 1);
	for (int k = 0; k < NMATCH; k++) {
		putcode(w, lc[lensym], 2);
		putcode(w, empty_dist ? 0 : dc[0], 1);
	}
	putcode(w, lc[256], 2);
	return bytes(w);
}

static void dynamic_forbidden(void **state)
{
	(void)state;
	/* 287 literal/length codes, symbol 286 used: zlib "too many length or
	 * distance symbols", libdeflate length 258 */
	struct bw w = { 0 };
	size_t n = dyn_stream(&w, 287, 286, 2, 0);
	assert_false(qc_deflate_one_strict_block(w.b, n));
	struct verdicts v = judge(w.b, n, CL_A);
	assert_true(v.libdeflate_full);
	assert_int_equal(v.ref, QC_DC_INVALID);
	assert_int_equal(v.fast, 0);
	/* 31 distance codes declared */
	memset(&w, 0, sizeof(w));
	n = dyn_stream(&w, 286, 285, 31, 0);
	assert_false(qc_deflate_one_strict_block(w.b, n));
	v = judge(w.b, n, CL_A);
	assert_true(v.libdeflate_full);
	assert_int_equal(v.ref, QC_DC_INVALID);
	/* an empty distance code used by a match: zlib "invalid distance
	 * code", libdeflate distance 1 */
	memset(&w, 0, sizeof(w));
	n = dyn_stream(&w, 286, 285, 1, 1);
	assert_false(qc_deflate_one_strict_block(w.b, n));
	v = judge(w.b, n, CL_A);
	assert_true(v.libdeflate_full);
	assert_int_equal(v.ref, QC_DC_INVALID);
	assert_int_equal(v.fast, 0);
}

/* A valid dynamic block that is not final, then a fixed block with the
 * forbidden symbol 286: only the first header is strict. */
static void second_block(void **state)
{
	(void)state;
	struct bw w = { 0 };
	uint8_t ll[286] = { 0 }, dl[2] = { 1, 1 };
	unsigned lc[286] = { 0 };
	ll['a'] = 1;
	ll[256] = 2;
	ll[285] = 2;
	dyn_header(&w, 0, ll, 286, dl, 2);
	canon(ll, 286, lc);
	putcode(&w, lc['a'], 1);
	putcode(&w, lc[256], 2);
	put(&w, 1, 1);
	put(&w, 1, 2);
	for (int k = 0; k < NMATCH; k++) {
		putcode(&w, 0xc0 + 6, 8);
		putcode(&w, 0, 5);
	}
	putcode(&w, 0, 7);
	assert_false(qc_deflate_one_strict_block(w.b, bytes(&w)));
	struct verdicts v = judge(w.b, bytes(&w), CL_A);
	assert_true(v.libdeflate_full);
	assert_int_equal(v.ref, QC_DC_INVALID);
	assert_int_equal(v.fast, 0);
}

/* The strict stream itself, and every bit flip and cut of it. */
static void strict_and_variants(void **state)
{
	(void)state;
	struct bw w = { 0 };
	size_t n = dyn_stream(&w, 286, 285, 2, 0);
	assert_true(qc_deflate_one_strict_block(w.b, n));
	struct verdicts v = judge(w.b, n, CL_A);
	assert_int_equal(v.ref, QC_DC_OK);
	assert_int_equal(v.fast, 1);
	assert_true(v.libdeflate_full);
	assert_int_equal(o_comb[0], 'a');
	assert_int_equal(o_comb[CL_A - 1], 'a');
	/* cut anywhere: the header check reads only what is there */
	for (size_t m = 0; m < n; m++) {
		(void)qc_deflate_one_strict_block(w.b, m);
		judge(w.b, m, CL_A);
	}
	unsigned fast = 0, flips = 0;
	for (size_t bit = 0; bit < n * 8; bit++) {
		uint8_t c[sizeof(w.b)];
		memcpy(c, w.b, n);
		c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		v = judge(c, n, CL_A);
		fast += (unsigned)v.fast;
		flips++;
	}
	assert_int_equal(flips, n * 8);
	/* the flips that leave a strict header and a full cluster are few */
	assert_true(fast < flips);
}

/* Streams zlib makes: one block of compressible data is decided by
 * libdeflate; several blocks, fixed-Huffman and stored blocks by zlib. */
static void zlib_made(void **state)
{
	(void)state;
	static uint8_t src[65536], cbuf[140000], out1[65536], out2[65536];
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)("the quick brown fox jumps "[i % 26] + (i / 4096) % 3);
	const int strategies[] = { Z_DEFAULT_STRATEGY, Z_FIXED, Z_HUFFMAN_ONLY };
	const int levels[] = { 6, 6, 0 };
	for (int s = 0; s < 3; s++) {
		z_stream z;
		memset(&z, 0, sizeof(z));
		assert_int_equal(deflateInit2(&z, levels[s], Z_DEFLATED, -12, 9,
					      s == 2 ? Z_DEFAULT_STRATEGY : strategies[s]),
				 Z_OK);
		z.next_in = src;
		z.avail_in = sizeof(src);
		z.next_out = cbuf;
		z.avail_out = sizeof(cbuf);
		assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
		size_t n = sizeof(cbuf) - z.avail_out;
		deflateEnd(&z);
		struct qc_dc *ref = qc_dc_new_zlib_only(0), *comb = qc_dc_new(0);
		size_t p1, p2;
		const char *w1, *w2;
		assert_int_equal(qc_dc_run(ref, cbuf, n, out1, sizeof(out1), &p1, &w1), QC_DC_OK);
		assert_int_equal(qc_dc_run(comb, cbuf, n, out2, sizeof(out2), &p2, &w2), QC_DC_OK);
		assert_memory_equal(out1, src, sizeof(src));
		assert_memory_equal(out2, src, sizeof(src));
		/* default: one dynamic block; Z_FIXED: fixed; level 0: stored */
		assert_int_equal(qc_dc_fast_count(comb), s == 0 ? 1 : 0);
		assert_int_equal(qc_deflate_one_strict_block(cbuf, n), s == 0);
		qc_dc_free(ref);
		qc_dc_free(comb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixed_forbidden),     cmocka_unit_test(dynamic_forbidden),
		cmocka_unit_test(second_block),        cmocka_unit_test(strict_and_variants),
		cmocka_unit_test(zlib_made),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
