/*
 * dcdiff.c - differential test of core/decompress.c's deflate path: the
 * combined decoder (libdeflate for the streams doc/inflate.md proves safe,
 * the own decoder core/inflate.c for the rest) and the own decoder alone,
 * each against zlib alone, QEMU's decoder, on every compressed stream of
 * the given images and on variants of each stream: padded, truncated and
 * bit-flipped.  Verdict, the byte count, the reason and the bytes must be
 * the same on every one.  Each variant is also decoded next to the
 * unmodified stream by qc_inflate_run2(), which interleaves two decodes,
 * and so again by two contexts that only count (qc_inflate_discard, as
 * check --deep decodes): the same verdict, count and reason.
 *
 * Usage: dcdiff [-f FLIPS] [-s SEED] [-b BATCH] [-t] FILE...
 *   A FILE that checks as a zlib qcow2 image gives its compressed streams
 *   (--deep's batches, checker/deepwalk.c, of at most BATCH descriptors,
 *   one stream per host offset in a batch); any other file (fuzz corpus
 *   inputs, raw streams) is one stream of its first 4 MiB, into 64 KiB.
 *   -f: bit-flipped variants per stream (default 8); -t: also time zlib
 *   alone against the combined decoder, the own decoder and libdeflate
 *   alone (whose answer is not zlib's: timing only) on the unmodified
 *   streams.
 * Prints a line of counts and one of batches; exits 1 on any difference.
 * Also counts how often libdeflate alone would have disagreed with zlib
 * (the cases the guard exists for).
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../checker/check.h"
#include "../core/decompress.h"
#include "../core/inflate.h"
#include "../core/io.h"

static struct qc_dc *ref, *comb;
static struct qc_inflate *own, *own2;
static struct qc_inflate *cnt, *cnt2; /* counting only: qc_inflate_discard */
/* the unmodified stream of the variants being compared, and zlib's answer
 * on it: qc_inflate_run2() decodes each variant next to it */
static const uint8_t *asis_in;
static size_t asis_n, asis_p;
static enum qc_dc_result asis_r;
static const char *asis_w;
static uint8_t *out_asis, *out_x1;
static unsigned long long n_pairs;
static struct libdeflate_decompressor *ld;
static uint8_t *out_ref, *out_comb, *var;
static unsigned long long n_streams, n_variants, n_fast, n_own, n_diff, n_raw_diff, n_ok;

static void diff_note(const char *file, uint64_t off, const char *what, const char *who,
		      enum qc_dc_result rr, size_t pr, const char *wr, enum qc_dc_result rc,
		      size_t pc, const char *wc)
{
	if (n_diff++ < 10)
		fprintf(stderr, "DIFF %s @0x%llx %s: zlib %d %zu '%s', %s %d %zu '%s'\n", file,
			(unsigned long long)off, what, rr, pr, wr, who, rc, pc, wc);
}

/* the variant and the unmodified stream through qc_inflate_run2() */
static void compare_pair(const char *file, uint64_t off, const char *what, const uint8_t *in,
			 size_t n, size_t cl, enum qc_dc_result rr, size_t pr, const char *wr)
{
	struct qc_inflate *ff[2] = { own, own2 };
	const uint8_t *ii[2] = { in, asis_in };
	const size_t il[2] = { n, asis_n }, ol[2] = { cl, cl };
	uint8_t *oo[2] = { out_comb, out_x1 };
	enum qc_dc_result res[2];
	size_t p[2];
	const char *w[2];
	qc_inflate_run2(ff, ii, il, oo, ol, res, p, w);
	n_pairs++;
	if (res[0] != rr || p[0] != pr || strcmp(w[0], wr) != 0 || memcmp(out_ref, out_comb, pr) != 0)
		diff_note(file, off, what, "own decoder, paired", rr, pr, wr, res[0], p[0], w[0]);
	if (res[1] != asis_r || p[1] != asis_p || strcmp(w[1], asis_w) != 0 ||
	    memcmp(out_asis, out_x1, asis_p) != 0)
		diff_note(file, off, "as is, paired", "own decoder, paired", asis_r, asis_p, asis_w,
			  res[1], p[1], w[1]);
	/* check --deep's decode, which only counts: the same answers but the bytes */
	struct qc_inflate *cc[2] = { cnt, cnt2 };
	qc_inflate_run2(cc, ii, il, oo, ol, res, p, w);
	if (res[0] != rr || p[0] != pr || strcmp(w[0], wr) != 0)
		diff_note(file, off, what, "counting decoder, paired", rr, pr, wr, res[0], p[0], w[0]);
	if (res[1] != asis_r || p[1] != asis_p || strcmp(w[1], asis_w) != 0)
		diff_note(file, off, "as is, paired", "counting decoder, paired", asis_r, asis_p,
			  asis_w, res[1], p[1], w[1]);
}
static double t_ref, t_comb, t_own, t_ld;
static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void compare(const char *file, uint64_t off, const char *what, const uint8_t *in, size_t n,
		    size_t cl)
{
	size_t pr = 0, pc = 0;
	const char *wr = "", *wc = "";
	uint64_t f0 = qc_dc_fast_count(comb), o0 = qc_dc_own_count(comb);
	enum qc_dc_result rr = qc_dc_run(ref, in, n, out_ref, cl, &pr, &wr);
	enum qc_dc_result rc = qc_dc_run(comb, in, n, out_comb, cl, &pc, &wc);
	n_variants++;
	n_fast += qc_dc_fast_count(comb) - f0;
	n_own += qc_dc_own_count(comb) - o0;
	n_ok += rr == QC_DC_OK;
	if (rr != rc || pr != pc || strcmp(wr, wc) != 0 || memcmp(out_ref, out_comb, pr) != 0)
		diff_note(file, off, what, "combined", rr, pr, wr, rc, pc, wc);
	rc = qc_inflate_run(own, in, n, out_comb, cl, &pc, &wc);
	if (rr != rc || pr != pc || strcmp(wr, wc) != 0 || memcmp(out_ref, out_comb, pr) != 0)
		diff_note(file, off, what, "own decoder", rr, pr, wr, rc, pc, wc);
	if (in == asis_in && n == asis_n) {
		asis_r = rr;
		asis_p = pr;
		asis_w = wr;
		memcpy(out_asis, out_ref, pr);
	} else {
		compare_pair(file, off, what, in, n, cl, rr, pr, wr);
	}
	/* libdeflate alone: a full cluster where zlib does not give QC_DC_OK
	 * with the same bytes */
	size_t got = 0;
	if (libdeflate_deflate_decompress(ld, in, n, out_comb, cl, &got) == LIBDEFLATE_SUCCESS &&
	    got == cl && (rr != QC_DC_OK || memcmp(out_ref, out_comb, cl) != 0))
		n_raw_diff++;
}

static void one_stream(const char *file, uint64_t off, const uint8_t *s, size_t n, size_t cl,
		       unsigned flips)
{
	n_streams++;
	asis_in = s;
	asis_n = n;
	compare(file, off, "as is", s, n, cl);
	/* padded: what follows in the descriptor's last sector */
	for (int k = 0; k < 2; k++) {
		memcpy(var, s, n);
		memset(var + n, k ? 0xff : 0, 512);
		compare(file, off, k ? "padded 0xff" : "padded 0x00", var, n + 512, cl);
	}
	/* truncated */
	for (unsigned k = 1; k <= 8 && n; k++) {
		size_t m = k == 8 ? n - 1 : n * k / 8;
		compare(file, off, "truncated", s, m, cl);
	}
	/* bit flips: half in the first 64 bytes (the first block's header),
	 * half anywhere */
	for (unsigned k = 0; k < flips && n; k++) {
		memcpy(var, s, n);
		size_t span = (k & 1) || n < 64 ? n : 64;
		size_t bit = (size_t)(next_rand() % (span * 8));
		var[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		compare(file, off, "bit flip", var, n, cl);
	}
}

static void timing(const uint8_t *s, size_t n, size_t cl)
{
	size_t p;
	const char *w;
	double a = now();
	qc_dc_run(ref, s, n, out_ref, cl, &p, &w);
	double b = now();
	qc_dc_run(comb, s, n, out_comb, cl, &p, &w);
	double c = now();
	qc_inflate_run(own, s, n, out_comb, cl, &p, &w);
	double e = now();
	libdeflate_deflate_decompress(ld, s, n, out_comb, cl, &p);
	t_ref += b - a;
	t_comb += c - b;
	t_own += e - c;
	t_ld += now() - e;
}

struct file_ctx {
	const char *path;
	struct qc_io *io;
	size_t cl;
	unsigned flips;
	int timed;
	uint8_t *s;
};

static unsigned long long n_batches, batch_peak, n_desc;

static bool batch(void *ctx, struct qc_compressed_ref *refs, size_t n)
{
	struct file_ctx *f = ctx;
	n_batches++;
	n_desc += n;
	if (n > batch_peak)
		batch_peak = n;
	for (size_t k = 0; k < n; k++) {
		const struct qc_compressed_ref *r = &refs[k];
		if (k && r->host_offset == refs[k - 1].host_offset)
			continue;
		size_t len = r->length < 2 * f->cl ? (size_t)r->length : 2 * f->cl;
		long long got = qc_io_read(f->io, f->s, len, r->host_offset);
		if (got <= 0)
			continue;
		one_stream(f->path, r->host_offset, f->s, (size_t)got, f->cl, f->flips);
		if (f->timed)
			timing(f->s, (size_t)got, f->cl);
	}
	return true;
}

static int one_file(const char *path, unsigned flips, int timed, size_t batch_max)
{
	struct qc_io *io;
	if (qc_io_open_file(path, false, &io) != 0) {
		fprintf(stderr, "dcdiff: cannot open %s\n", path);
		return 1;
	}
	struct qc_options o = { 0 };
	o.jobs = 1;
	struct qc_image *img = NULL;
	int rc = qc_check_run(io, &o, &img);
	if (rc == 0 && img && img->is_qcow2 && img->geometry_ok && !img->aborted &&
	    img->h.compression_type == 0 && img->cluster_size <= (2u << 20) &&
	    img->claimed_refs[QC_OWN_COMPRESSED]) {
		struct file_ctx f = { path, io, (size_t)img->cluster_size, flips, timed,
				      malloc(2 * (size_t)img->cluster_size) };
		if (f.s)
			qc_compressed_batches(img, batch_max, batch, &f);
		free(f.s);
	} else {
		size_t cap = 4u << 20;
		uint8_t *s = malloc(cap);
		long long got = s ? qc_io_read(io, s, cap, 0) : -1;
		if (got > 0)
			one_stream(path, 0, s, (size_t)got, 65536, flips);
		free(s);
	}
	qc_image_free(img);
	qc_io_close(io);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned flips = 8;
	size_t batch_max = (size_t)1 << 18;
	int timed = 0, i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-f") && i + 1 < argc)
			flips = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			rng = strtoull(argv[++i], NULL, 10) | 1;
		else if (!strcmp(argv[i], "-b") && i + 1 < argc)
			batch_max = (size_t)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-t"))
			timed = 1;
		else {
			fprintf(stderr, "usage: dcdiff [-f FLIPS] [-s SEED] [-b BATCH] [-t] FILE...\n");
			return 2;
		}
	}
	ref = qc_dc_new_zlib_only(0);
	comb = qc_dc_new(0);
	own = qc_inflate_new();
	own2 = qc_inflate_new();
	cnt = qc_inflate_new();
	cnt2 = qc_inflate_new();
	if (cnt && cnt2) {
		qc_inflate_discard(cnt, true);
		qc_inflate_discard(cnt2, true);
	}
	out_asis = malloc(2u << 20);
	out_x1 = malloc(2u << 20);
	ld = libdeflate_alloc_decompressor();
	out_ref = malloc(2u << 20);
	out_comb = malloc(2u << 20);
	var = malloc((4u << 20) + 512);
	if (!ref || !comb || !own || !own2 || !cnt || !cnt2 || !out_asis || !out_x1 || !ld || !out_ref || !out_comb || !var) {
		fprintf(stderr, "dcdiff: out of memory\n");
		return 2;
	}
	int bad = 0;
	for (; i < argc; i++)
		bad |= one_file(argv[i], flips, timed, batch_max);
	printf("dcdiff: %llu streams, %llu variants, %llu zlib-readable, %llu decided by libdeflate, "
	       "%llu by the own decoder, %llu pairs, %llu differences, %llu where libdeflate alone would "
	       "differ\n",
	       n_streams, n_variants, n_ok, n_fast, n_own, n_pairs, n_diff, n_raw_diff);
	printf("dcdiff: %llu descriptors in %llu batches of at most %zu, largest %llu\n", n_desc,
	       n_batches, batch_max, batch_peak);
	if (timed)
		printf("dcdiff: unmodified streams: zlib alone %.3f s, combined %.3f s (%.2fx), own decoder "
		       "alone %.3f s (%.2fx), libdeflate alone %.3f s (%.2fx)\n",
		       t_ref, t_comb, t_comb > 0 ? t_ref / t_comb : 0.0, t_own,
		       t_own > 0 ? t_ref / t_own : 0.0, t_ld, t_ld > 0 ? t_ref / t_ld : 0.0);
	qc_dc_free(ref);
	qc_dc_free(comb);
	qc_inflate_free(own);
	qc_inflate_free(own2);
	qc_inflate_free(cnt);
	qc_inflate_free(cnt2);
	free(out_asis);
	free(out_x1);
	libdeflate_free_decompressor(ld);
	free(out_ref);
	free(out_comb);
	free(var);
	return bad ? 2 : n_diff ? 1 : 0;
}
