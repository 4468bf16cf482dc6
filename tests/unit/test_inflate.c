/*
 * test_inflate.c - the own deflate decoder (core/inflate.c) on streams
 * written bit by bit for each rule of doc/inflate.md "The exact decoder":
 * every case asserts the verdict and reason zlib gives (so the case is the
 * one it names) and that the own decoder, alone and paired with another
 * stream (qc_inflate_run2), gives the same verdict, reason, byte count and
 * bytes as zlib (a qc_dc_new_zlib_only() context), and so do contexts that
 * only count (qc_inflate_discard, check --deep's), alone and paired, but
 * for the bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/decompress.h"
#include "../../core/inflate.h"

/* ---- a bit writer (RFC 1951 3.1.1: LSB first; Huffman codes MSB first) */
struct bw {
	uint8_t b[16384];
	size_t bits;
};

static void put(struct bw *w, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, w->bits++) {
		if ((w->bits & 7) == 0)
			w->b[w->bits >> 3] = 0;
		w->b[w->bits >> 3] |= (uint8_t)(((v >> i) & 1) << (w->bits & 7));
	}
}

static void put_code(struct bw *w, uint32_t code, unsigned len)
{
	for (unsigned i = len; i-- > 0;)
		put(w, (code >> i) & 1, 1);
}

static size_t nbytes(const struct bw *w)
{
	return (w->bits + 7) / 8;
}

/* a final dynamic block's header start: HLIT, HDIST, HCLEN as given */
static void dyn_start(struct bw *w, unsigned hlit, unsigned hdist, unsigned hclen)
{
	memset(w, 0, sizeof(*w));
	put(w, 1, 1);
	put(w, 2, 2);
	put(w, hlit, 5);
	put(w, hdist, 5);
	put(w, hclen, 4);
}

/* canonical codes of lens[0..n) (RFC 1951 3.2.2) */
static void canon(const uint8_t *lens, unsigned n, uint32_t *codes)
{
	unsigned count[16] = { 0 }, next[16];
	for (unsigned s = 0; s < n; s++)
		count[lens[s]]++;
	count[0] = 0;
	unsigned code = 0;
	for (unsigned l = 1; l < 16; l++) {
		code = (code + count[l - 1]) << 1;
		next[l] = code;
	}
	for (unsigned s = 0; s < n; s++)
		if (lens[s])
			codes[s] = next[lens[s]]++;
}

/* fixed codes (RFC 1951 3.2.6) */
static void fixed_lit(struct bw *w, unsigned sym)
{
	if (sym < 144)
		put_code(w, 0x30 + sym, 8);
	else if (sym < 256)
		put_code(w, 0x190 + sym - 144, 9);
	else if (sym < 280)
		put_code(w, sym - 256, 7);
	else
		put_code(w, 0xc0 + sym - 280, 8);
}

/* ---- the comparison */
static struct qc_dc *zref;
static struct qc_inflate *own, *own2;
static struct qc_inflate *cnt, *cnt2; /* counting only (qc_inflate_discard) */
static uint8_t out_ref[65536], out_own[65536], out_b[65536];

/* a second stream for the pairs: 3000 literals in a fixed block */
static struct bw other;

static enum qc_dc_result check_stream(const uint8_t *in, size_t n, size_t cap, const char **why)
{
	size_t pr, po;
	const char *wr, *wo;
	enum qc_dc_result rr = qc_dc_run(zref, in, n, out_ref, cap, &pr, &wr);
	enum qc_dc_result ro = qc_inflate_run(own, in, n, out_own, cap, &po, &wo);
	assert_int_equal(ro, rr);
	assert_int_equal(po, pr);
	assert_string_equal(wo, wr);
	assert_memory_equal(out_own, out_ref, pr);
	/* paired with another stream, in both slots */
	for (int slot = 0; slot < 2; slot++) {
		struct qc_inflate *f[2] = { own, own2 };
		const uint8_t *ii[2] = { in, other.b };
		size_t il[2] = { n, nbytes(&other) }, ol[2] = { cap, 3000 };
		uint8_t *oo[2] = { out_own, out_b };
		if (slot) {
			ii[0] = other.b, ii[1] = in;
			il[0] = nbytes(&other), il[1] = n;
			ol[0] = 3000, ol[1] = cap;
			oo[0] = out_b, oo[1] = out_own;
		}
		enum qc_dc_result res[2];
		size_t p[2];
		const char *w[2];
		qc_inflate_run2(f, ii, il, oo, ol, res, p, w);
		assert_int_equal(res[slot], rr);
		assert_int_equal(p[slot], pr);
		assert_string_equal(w[slot], wr);
		assert_memory_equal(out_own, out_ref, pr);
		assert_int_equal(res[1 - slot], QC_DC_OK);
		/* counting only (check --deep): the same verdicts and counts */
		struct qc_inflate *c[2] = { cnt, cnt2 };
		qc_inflate_run2(c, ii, il, oo, ol, res, p, w);
		assert_int_equal(res[slot], rr);
		assert_int_equal(p[slot], pr);
		assert_string_equal(w[slot], wr);
		assert_int_equal(res[1 - slot], QC_DC_OK);
	}
	size_t pc;
	const char *wc;
	assert_int_equal(qc_inflate_run(cnt, in, n, out_own, cap, &pc, &wc), rr);
	assert_int_equal(pc, pr);
	assert_string_equal(wc, wr);
	*why = wr;
	return rr;
}

static int setup(void **state)
{
	(void)state;
	zref = qc_dc_new_zlib_only(0);
	own = qc_inflate_new();
	own2 = qc_inflate_new();
	cnt = qc_inflate_new();
	cnt2 = qc_inflate_new();
	if (cnt && cnt2) {
		qc_inflate_discard(cnt, true);
		qc_inflate_discard(cnt2, true);
	}
	memset(&other, 0, sizeof(other));
	put(&other, 1, 1);
	put(&other, 1, 2);
	for (int i = 0; i < 3000; i++)
		fixed_lit(&other, 'a' + i % 26);
	fixed_lit(&other, 256);
	return zref && own && own2 && cnt && cnt2 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	qc_dc_free(zref);
	qc_inflate_free(own);
	qc_inflate_free(own2);
	qc_inflate_free(cnt);
	qc_inflate_free(cnt2);
	return 0;
}

/* n literals 'x' in a final fixed block, then `tail` */
static void fixed_literals(struct bw *w, unsigned n)
{
	memset(w, 0, sizeof(*w));
	put(w, 1, 1);
	put(w, 1, 2);
	for (unsigned i = 0; i < n; i++)
		fixed_lit(w, 'x' + (i % 3));
}

/* a match: length symbol 257 (3 bytes), distance code d (5 bits) + extra */
static void fixed_match(struct bw *w, unsigned dcode, unsigned extra, unsigned ebits)
{
	fixed_lit(w, 257);
	put_code(w, dcode, 5);
	put(w, extra, ebits);
}

static void fixed_verdicts(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	/* exact: literals then the end of block */
	fixed_literals(&w, 600);
	fixed_lit(&w, 256);
	assert_int_equal(check_stream(w.b, nbytes(&w), 600, &why), QC_DC_OK);
	/* one more byte wanted: the stream ends early */
	assert_int_equal(check_stream(w.b, nbytes(&w), 601, &why), QC_DC_SHORT);
	/* cut: the input ends before the cluster is full */
	assert_int_equal(check_stream(w.b, nbytes(&w) / 2, 600, &why), QC_DC_TRUNCATED);
	/* full with a literal to come: readable, not exact */
	assert_int_equal(check_stream(w.b, nbytes(&w), 599, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream continues past the cluster");
	/* full, then the input ends inside the end-of-block code */
	fixed_literals(&w, 600);
	assert_int_equal(check_stream(w.b, nbytes(&w), 600, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream has no end marker within the descriptor");
	/* the fixed code's symbols 286 and 287, distance codes 30 and 31 */
	for (unsigned sym = 286; sym <= 287; sym++) {
		fixed_literals(&w, 10);
		fixed_lit(&w, sym);
		assert_int_equal(check_stream(w.b, nbytes(&w), 100, &why), QC_DC_INVALID);
		assert_string_equal(why, "invalid literal/length code");
		/* the same after the cluster is full: still an error */
		assert_int_equal(check_stream(w.b, nbytes(&w), 10, &why), QC_DC_INVALID);
	}
	for (unsigned dc = 30; dc <= 31; dc++) {
		fixed_literals(&w, 10);
		fixed_match(&w, dc, 0, 0);
		assert_int_equal(check_stream(w.b, nbytes(&w), 100, &why), QC_DC_INVALID);
		assert_string_equal(why, "invalid distance code");
	}
	/* a distance before the start of the output */
	fixed_literals(&w, 10);
	fixed_match(&w, 4, 0, 1); /* distance 5 */
	fixed_match(&w, 8, 6, 3); /* distance 17 + 6 = 23 > 13 */
	assert_int_equal(check_stream(w.b, nbytes(&w), 100, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid distance too far back");
	/* ...not looked at when the cluster is already full */
	assert_int_equal(check_stream(w.b, nbytes(&w), 13, &why), QC_DC_INEXACT);
}

/* zlib's second call checks a pending match against its 4 KiB window */
static void pending_match_window(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	fixed_literals(&w, 5000);
	fixed_match(&w, 24, 0, 11); /* distance 4097 */
	fixed_lit(&w, 256);
	assert_int_equal(check_stream(w.b, nbytes(&w), 5000, &why), QC_DC_INEXACT);
	assert_string_equal(why, "invalid distance too far back");
	assert_int_equal(check_stream(w.b, nbytes(&w), 5003, &why), QC_DC_OK);
	fixed_literals(&w, 5000);
	fixed_match(&w, 23, 0, 10); /* distance 3073 */
	fixed_lit(&w, 256);
	assert_int_equal(check_stream(w.b, nbytes(&w), 5000, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream continues past the cluster");
	/* a match cut by the end of the cluster, then pending */
	assert_int_equal(check_stream(w.b, nbytes(&w), 5001, &why), QC_DC_INEXACT);
	/* a cluster smaller than the window: the window holds the cluster
	 * only, so a pending distance past it (769 > 600) is refused */
	fixed_literals(&w, 600);
	fixed_match(&w, 18, 0, 7); /* distance 513 */
	fixed_lit(&w, 256);
	assert_int_equal(check_stream(w.b, nbytes(&w), 600, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream continues past the cluster");
	fixed_literals(&w, 600);
	fixed_match(&w, 19, 0, 8); /* distance 769 */
	fixed_lit(&w, 256);
	assert_int_equal(check_stream(w.b, nbytes(&w), 600, &why), QC_DC_INEXACT);
	assert_string_equal(why, "invalid distance too far back");
}

static void stored_blocks(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	memset(&w, 0, sizeof(w));
	put(&w, 1, 1);
	put(&w, 0, 2);
	w.bits = 8;
	put(&w, 10, 16);
	put(&w, 0xffff ^ 10, 16);
	for (int i = 0; i < 10; i++)
		put(&w, 'a' + i, 8);
	assert_int_equal(check_stream(w.b, nbytes(&w), 10, &why), QC_DC_OK);
	assert_int_equal(check_stream(w.b, nbytes(&w), 5, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream continues past the cluster");
	assert_int_equal(check_stream(w.b, nbytes(&w) - 5, 5, &why), QC_DC_INEXACT);
	assert_string_equal(why, "the deflate stream has no end marker within the descriptor");
	assert_int_equal(check_stream(w.b, nbytes(&w) - 5, 8, &why), QC_DC_TRUNCATED);
	w.b[3] ^= 1; /* NLEN no longer LEN's complement */
	assert_int_equal(check_stream(w.b, nbytes(&w), 10, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid stored block lengths");
	/* block type 3 */
	memset(&w, 0, sizeof(w));
	put(&w, 1, 1);
	put(&w, 3, 2);
	put(&w, 0, 8);
	assert_int_equal(check_stream(w.b, nbytes(&w), 10, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid block type");
}

/*
 * A dynamic block whose literal/length code is lens[0..nlen) and distance
 * code dlens[0..ndist), sent with a code-length code of 2-bit codes for
 * 0, 1, 2, 3 and runs of zeros as symbol 18.
 */
static void dynamic_header(struct bw *w, const uint8_t *lens, unsigned nlen, const uint8_t *dlens,
			   unsigned ndist)
{
	static const uint8_t order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
					   11, 4,  12, 3, 13, 2, 14, 1, 15 };
	uint8_t cl[19] = { 0 };
	cl[0] = cl[1] = cl[2] = cl[18] = 2;
	uint32_t clc[19];
	canon(cl, 19, clc);
	put(w, nlen - 257, 5);
	put(w, ndist - 1, 5);
	put(w, 18 - 4, 4); /* 18 code lengths: up to order[17] = 1 */
	for (int i = 0; i < 18; i++)
		put(w, cl[order[i]], 3);
	uint8_t all[320];
	memcpy(all, lens, nlen);
	memcpy(all + nlen, dlens, ndist);
	for (unsigned i = 0; i < nlen + ndist;) {
		unsigned run = 0;
		while (i + run < nlen + ndist && all[i + run] == 0 && run < 138)
			run++;
		if (run >= 11) {
			put_code(w, clc[18], 2);
			put(w, run - 11, 7);
			i += run;
			continue;
		}
		assert_true(all[i] <= 2);
		put_code(w, clc[all[i]], 2);
		i++;
	}
}

/* a code of 'A' (1 bit), 256 and 257 (2 bits); the distance code given */
static void dynamic_ab(struct bw *w, const uint8_t *dlens, unsigned ndist, uint32_t *lcodes)
{
	uint8_t lens[258] = { 0 };
	lens['A'] = 1;
	lens[256] = 2;
	lens[257] = 2;
	memset(w, 0, sizeof(*w));
	put(w, 1, 1);
	put(w, 2, 2);
	dynamic_header(w, lens, 258, dlens, ndist);
	canon(lens, 258, lcodes);
}

static void dynamic_codes(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	uint32_t lc[258];
	/* a distance code of one 1-bit code: bit 0 is distance 1, bit 1 no code */
	uint8_t d1[1] = { 1 };
	dynamic_ab(&w, d1, 1, lc);
	put_code(&w, lc['A'], 1);
	put_code(&w, lc[257], 2);
	put(&w, 0, 1); /* distance 1 */
	put_code(&w, lc[256], 2);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_OK);
	dynamic_ab(&w, d1, 1, lc);
	put_code(&w, lc['A'], 1);
	put_code(&w, lc[257], 2);
	put(&w, 1, 1);
	put_code(&w, lc[256], 2);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid distance code");
	/* no distance code at all: fine until a match uses it */
	uint8_t d0[1] = { 0 };
	dynamic_ab(&w, d0, 1, lc);
	put_code(&w, lc['A'], 1);
	put_code(&w, lc[256], 2);
	assert_int_equal(check_stream(w.b, nbytes(&w), 1, &why), QC_DC_OK);
	dynamic_ab(&w, d0, 1, lc);
	put_code(&w, lc['A'], 1);
	put_code(&w, lc[257], 2);
	put(&w, 0, 1);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid distance code");
	/* two distance codes of one bit and a third: over-subscribed */
	uint8_t d3[3] = { 1, 1, 1 };
	dynamic_ab(&w, d3, 3, lc);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid distances set");
	/* a literal/length code without 256 */
	uint8_t lens[258] = { 0 };
	lens['A'] = 1;
	lens['B'] = 1;
	memset(&w, 0, sizeof(w));
	put(&w, 1, 1);
	put(&w, 2, 2);
	dynamic_header(&w, lens, 258, d1, 1);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid code -- missing end-of-block");
	/* an incomplete literal/length code of more than one bit */
	lens['B'] = 2;
	lens[256] = 0;
	lens[256] = 2;
	lens['C'] = 0;
	lens['A'] = 2;
	memset(&w, 0, sizeof(w));
	put(&w, 1, 1);
	put(&w, 2, 2);
	dynamic_header(&w, lens, 258, d1, 1);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid literal/lengths set");
}

static void dynamic_header_rules(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	/* HLIT 30 (287 symbols), HDIST 30 (31 symbols): too many */
	for (int k = 0; k < 2; k++) {
		dyn_start(&w, k ? 0 : 30, k ? 30 : 0, 0);
		put(&w, 0, 32);
		assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
		assert_string_equal(why, "too many length or distance symbols");
	}
	/* an empty code-length code: zlib reads every length as 0, one bit
	 * each, then finds no end-of-block code; cut before, it needs input */
	dyn_start(&w, 0, 0, 0);
	put(&w, 0, 12);
	for (int i = 0; i < 258; i++)
		put(&w, 1, 1);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid code -- missing end-of-block");
	assert_int_equal(check_stream(w.b, 20, 4, &why), QC_DC_TRUNCATED);
	/* an incomplete code-length code (one code of one bit) */
	dyn_start(&w, 0, 0, 0);
	put(&w, 1, 3);
	put(&w, 0, 9);
	put(&w, 0, 32);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid code lengths set");
	/* a repeat of the previous length as the first length */
	dyn_start(&w, 0, 0, 0); /* 4 lengths: 16, 17, 18, 0 */
	put(&w, 1, 3);
	put(&w, 0, 3);
	put(&w, 0, 3);
	put(&w, 1, 3); /* codes: 0 -> '0', 16 -> '1' */
	put_code(&w, 1, 1);
	put(&w, 0, 2);
	put(&w, 0, 32);
	assert_int_equal(check_stream(w.b, nbytes(&w), 4, &why), QC_DC_INVALID);
	assert_string_equal(why, "invalid bit length repeat");
}

/* streams zlib writes, cut at every byte and with every bit of the
 * header region flipped: no difference */
static void zlib_streams_cut_and_flipped(void **state)
{
	(void)state;
	struct bw w;
	const char *why;
	fixed_literals(&w, 700);
	fixed_match(&w, 10, 5, 4);
	fixed_lit(&w, 256);
	size_t n = nbytes(&w);
	for (size_t cut = 0; cut <= n; cut++)
		check_stream(w.b, cut, 703, &why);
	for (size_t bit = 0; bit < n * 8; bit++) {
		w.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		check_stream(w.b, n, 703, &why);
		w.b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixed_verdicts),
		cmocka_unit_test(pending_match_window),
		cmocka_unit_test(stored_blocks),
		cmocka_unit_test(dynamic_codes),
		cmocka_unit_test(dynamic_header_rules),
		cmocka_unit_test(zlib_streams_cut_and_flipped),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
