/*
 * sha256x2.c - two SHA-256 computations interleaved, with the x86 SHA
 * extensions (see sha256x2.h for why).
 *
 * SHA-256 is FIPS 180-4.  The SHA extensions keep the eight working
 * variables in two registers, ABEF and CDGH (most significant lane first);
 * SHA256RNDS2 does two rounds from CDGH, ABEF and the two words W+K,
 * giving the new ABEF, while the old ABEF becomes the new CDGH.  The
 * message schedule is built four words at a time:
 *   W[g] = MSG2(MSG1(W[g-4], W[g-3]) + (W[g-1]:W[g-2] >> 32 bits), W[g-1])
 * for the groups g = 4..15 of a 64-byte block (MSG1 adds sigma0, the
 * shifted pair gives W[t-7], MSG2 adds sigma1).
 *
 * The functions carry a target attribute, so the rest of the program is
 * built for the baseline CPU and this code runs only after
 * qc_sha256x2_ok() has seen the features.  Relies on: GCC or Clang's
 * <immintrin.h> and <cpuid.h> on x86; elsewhere only the "no" answer.
 */
#include "sha256x2.h"

#if defined(__x86_64__) || defined(__i386__)

#include <cpuid.h>
#include <immintrin.h>
#include <string.h>

#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
	0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
	0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
	0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
	0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
	0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
	0xc67178f2,
};

static const uint32_t H0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

bool qc_sha256x2_ok(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return false;
	bool ssse3 = c & (1u << 9), sse41 = c & (1u << 19);
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return ssse3 && sse41 && (b & (1u << 29));
}

/* the big-endian words of a block, per 32-bit lane */
SHA_TARGET static inline __m128i load_be(const uint8_t *p)
{
	const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), swap);
}

/* n 64-byte blocks of each message into the states (ABEF, CDGH) */
SHA_TARGET static void blocks2(__m128i st[4], const uint8_t *pa, const uint8_t *pb, size_t n)
{
	__m128i abef_a = st[0], cdgh_a = st[1], abef_b = st[2], cdgh_b = st[3];
	for (; n; n--, pa += 64, pb += 64) {
		const __m128i in_abef_a = abef_a, in_cdgh_a = cdgh_a;
		const __m128i in_abef_b = abef_b, in_cdgh_b = cdgh_b;
		__m128i wa[4], wb[4];
#pragma GCC unroll 16
		for (int g = 0; g < 16; g++) {
			const int i = g & 3, i1 = (g + 1) & 3, i2 = (g + 2) & 3, i3 = (g + 3) & 3;
			if (g < 4) {
				wa[i] = load_be(pa + 16 * g);
				wb[i] = load_be(pb + 16 * g);
			} else {
				wa[i] = _mm_sha256msg2_epu32(
					_mm_add_epi32(_mm_sha256msg1_epu32(wa[i], wa[i1]),
						      _mm_alignr_epi8(wa[i3], wa[i2], 4)),
					wa[i3]);
				wb[i] = _mm_sha256msg2_epu32(
					_mm_add_epi32(_mm_sha256msg1_epu32(wb[i], wb[i1]),
						      _mm_alignr_epi8(wb[i3], wb[i2], 4)),
					wb[i3]);
			}
			const __m128i k = _mm_loadu_si128((const __m128i *)(K + 4 * g));
			const __m128i ma = _mm_add_epi32(wa[i], k), mb = _mm_add_epi32(wb[i], k);
			/* rounds 4g, 4g+1 then 4g+2, 4g+3 (the high words of m) */
			cdgh_a = _mm_sha256rnds2_epu32(cdgh_a, abef_a, ma);
			cdgh_b = _mm_sha256rnds2_epu32(cdgh_b, abef_b, mb);
			abef_a = _mm_sha256rnds2_epu32(abef_a, cdgh_a, _mm_shuffle_epi32(ma, 0x0e));
			abef_b = _mm_sha256rnds2_epu32(abef_b, cdgh_b, _mm_shuffle_epi32(mb, 0x0e));
		}
		abef_a = _mm_add_epi32(abef_a, in_abef_a);
		cdgh_a = _mm_add_epi32(cdgh_a, in_cdgh_a);
		abef_b = _mm_add_epi32(abef_b, in_abef_b);
		cdgh_b = _mm_add_epi32(cdgh_b, in_cdgh_b);
	}
	st[0] = abef_a;
	st[1] = cdgh_a;
	st[2] = abef_b;
	st[3] = cdgh_b;
}

/* the initial hash value as ABEF, CDGH */
SHA_TARGET static void start(__m128i *abef, __m128i *cdgh)
{
	const __m128i badc = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)H0), 0xb1);
	const __m128i hgfe = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)(H0 + 4)), 0x1b);
	*abef = _mm_alignr_epi8(badc, hgfe, 8);
	*cdgh = _mm_blend_epi16(hgfe, badc, 0xf0);
}

/* ABEF, CDGH as the 32 bytes of the digest */
SHA_TARGET static void finish(__m128i abef, __m128i cdgh, uint8_t out[32])
{
	const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
	const __m128i fe_ba = _mm_shuffle_epi32(abef, 0x1b); /* lanes A B E F */
	const __m128i dc_hg = _mm_shuffle_epi32(cdgh, 0xb1); /* lanes G H C D */
	const __m128i abcd = _mm_blend_epi16(fe_ba, dc_hg, 0xf0);
	const __m128i efgh = _mm_alignr_epi8(dc_hg, fe_ba, 8);
	_mm_storeu_si128((__m128i *)out, _mm_shuffle_epi8(abcd, swap));
	_mm_storeu_si128((__m128i *)(out + 16), _mm_shuffle_epi8(efgh, swap));
}

/* the last len % 64 bytes, the 0x80 byte, zeros and the bit length: 1 or 2 blocks */
static size_t pad(uint8_t out[128], const uint8_t *tail, size_t tlen, size_t len)
{
	memset(out, 0, 128);
	memcpy(out, tail, tlen);
	out[tlen] = 0x80;
	size_t n = tlen + 1 + 8 <= 64 ? 64 : 128;
	uint64_t bits = (uint64_t)len * 8;
	for (int k = 0; k < 8; k++)
		out[n - 1 - k] = (uint8_t)(bits >> (8 * k));
	return n / 64;
}

SHA_TARGET void qc_sha256x2(const uint8_t *a, const uint8_t *b, size_t len, uint8_t oa[32],
			    uint8_t ob[32])
{
	__m128i st[4];
	start(&st[0], &st[1]);
	st[2] = st[0];
	st[3] = st[1];
	const size_t full = len / 64;
	blocks2(st, a, b, full);
	uint8_t ta[128], tb[128];
	const size_t n = pad(ta, a + full * 64, len % 64, len);
	pad(tb, b + full * 64, len % 64, len);
	blocks2(st, ta, tb, n);
	finish(st[0], st[1], oa);
	finish(st[2], st[3], ob);
}

#else

#include <stdlib.h>

bool qc_sha256x2_ok(void)
{
	return false;
}

/* never called: qc_sha256x2_ok() said no */
void qc_sha256x2(const uint8_t *a, const uint8_t *b, size_t len, uint8_t oa[32], uint8_t ob[32])
{
	(void)a;
	(void)b;
	(void)len;
	(void)oa;
	(void)ob;
	abort();
}

#endif
