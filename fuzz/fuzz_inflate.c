/*
 * fuzz_inflate.c - fuzz target "inflate": the own deflate decoder
 * (core/inflate.c) and the combined decoder qcow2fsck uses (libdeflate
 * where doc/inflate.md proves it safe, the own decoder elsewhere), each
 * against zlib alone, the way QEMU reads a zlib cluster.
 *
 * Input: two bytes giving the output size (1 + big-endian u16 % 65536:
 * 1 to 65536 bytes, which covers QEMU's 512-byte to 64 KiB clusters and
 * the windows around 4 KiB), then the raw deflate stream (at most 1 MiB).
 * Oracle (a violation calls abort()): for every input both decoders return
 * zlib's verdict, the same reason, the same byte count and the same bytes;
 * and so does qc_inflate_run2(), which interleaves two decodes, on the
 * stream next to its last two thirds (a second, different stream), and
 * two contexts that only count (check --deep's decode) on that pair, but
 * for the bytes.
 * Seeds: corpus/seeds/inflate-*.bin (streams of QEMU's zlib settings over
 * text, random bytes, zero runs and code, in fixed, dynamic and stored
 * blocks).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/decompress.h"
#include "../core/inflate.h"
#include "fuzz.h"

#define MAX_STREAM (1u << 20)
#define MAX_OUT 65536u

static struct qc_dc *ref, *comb;
static struct qc_inflate *own, *own2;
static struct qc_inflate *cnt, *cnt2; /* counting only: qc_inflate_discard */
static uint8_t *out_ref, *out_x, *out_ref2, *out_x2;

static void same(const char *who, enum qc_dc_result rr, size_t pr, const char *wr,
		 enum qc_dc_result rx, size_t px, const char *wx, const uint8_t *bytes_ref,
		 const uint8_t *bytes_x)
{
	if (rr == rx && pr == px && strcmp(wr, wx) == 0 && memcmp(bytes_ref, bytes_x, pr) == 0)
		return;
	fprintf(stderr, "fuzz_inflate: zlib %d %zu '%s', %s %d %zu '%s'\n", rr, pr, wr, who, rx, px,
		wx);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!ref) {
		ref = qc_dc_new_zlib_only(0);
		comb = qc_dc_new(0);
		own = qc_inflate_new();
		own2 = qc_inflate_new();
		cnt = qc_inflate_new();
		cnt2 = qc_inflate_new();
		out_ref = malloc(MAX_OUT);
		out_x = malloc(MAX_OUT);
		out_ref2 = malloc(MAX_OUT);
		out_x2 = malloc(MAX_OUT);
		if (!ref || !comb || !own || !own2 || !cnt || !cnt2 || !out_ref || !out_x || !out_ref2 || !out_x2)
			abort();
		qc_inflate_discard(cnt, true);
		qc_inflate_discard(cnt2, true);
	}
	size_t outlen = 1 + (((size_t)data[0] << 8 | data[1]) % MAX_OUT);
	const uint8_t *in = data + 2;
	size_t inlen = size - 2 > MAX_STREAM ? MAX_STREAM : size - 2;
	size_t pr = 0, px = 0;
	const char *wr = "", *wx = "";
	enum qc_dc_result rr = qc_dc_run(ref, in, inlen, out_ref, outlen, &pr, &wr);
	enum qc_dc_result rx = qc_inflate_run(own, in, inlen, out_x, outlen, &px, &wx);
	same("own decoder", rr, pr, wr, rx, px, wx, out_ref, out_x);
	rx = qc_dc_run(comb, in, inlen, out_x, outlen, &px, &wx);
	same("combined", rr, pr, wr, rx, px, wx, out_ref, out_x);
	/* the pair: this stream and its last two thirds */
	const uint8_t *in2 = in + inlen / 3;
	size_t inlen2 = inlen - inlen / 3, pr2 = 0;
	const char *wr2 = "";
	enum qc_dc_result rr2 = qc_dc_run(ref, in2, inlen2, out_ref2, outlen, &pr2, &wr2);
	struct qc_inflate *ff[2] = { own, own2 };
	const uint8_t *ii[2] = { in, in2 };
	const size_t il[2] = { inlen, inlen2 }, ol[2] = { outlen, outlen };
	uint8_t *oo[2] = { out_x, out_x2 };
	enum qc_dc_result res[2];
	size_t p[2];
	const char *w[2];
	qc_inflate_run2(ff, ii, il, oo, ol, res, p, w);
	same("own decoder, paired", rr, pr, wr, res[0], p[0], w[0], out_ref, out_x);
	same("own decoder, paired (second)", rr2, pr2, wr2, res[1], p[1], w[1], out_ref2, out_x2);
	/* counting only (check --deep): the same answers, bytes not compared */
	struct qc_inflate *cc[2] = { cnt, cnt2 };
	qc_inflate_run2(cc, ii, il, oo, ol, res, p, w);
	same("counting decoder, paired", rr, pr, wr, res[0], p[0], w[0], out_ref, out_ref);
	same("counting decoder, paired (second)", rr2, pr2, wr2, res[1], p[1], w[1], out_ref2,
	     out_ref2);
	return 0;
}
