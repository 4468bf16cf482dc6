/*
 * test_sha256x2.c - the paired SHA-256 (core/sha256x2.c) against
 * libcrypto: FIPS 180-4's "abc" and empty-message answers; every length
 * from 0 to 1100 bytes (each padding case: tail shorter than 56 bytes,
 * 56 to 63, whole blocks), with the two messages different and at odd
 * addresses; the 64 KiB block of the tree digest and lengths around it;
 * two equal messages; a message of zeros.  On a CPU without the SHA
 * extensions the tests are skipped (the digest then uses libcrypto alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "../../core/sha256x2.h"

static void ref(const uint8_t *p, size_t n, uint8_t out[32])
{
	unsigned len = 0;
	assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
}

static uint8_t *noise(size_t n, uint32_t seed)
{
	uint8_t *b = malloc(n);
	assert_non_null(b);
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
	return b;
}

static void both_agree(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint8_t oa[32], ob[32], ra[32], rb[32];
	qc_sha256x2(a, b, len, oa, ob);
	ref(a, len, ra);
	ref(b, len, rb);
	assert_memory_equal(oa, ra, 32);
	assert_memory_equal(ob, rb, 32);
}

static void known_answers(void **state)
{
	(void)state;
	if (!qc_sha256x2_ok())
		skip();
	static const uint8_t abc_md[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
		0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
		0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
	};
	static const uint8_t empty_md[32] = {
		0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
		0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
		0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
	};
	uint8_t oa[32], ob[32];
	qc_sha256x2((const uint8_t *)"abc", (const uint8_t *)"abc", 3, oa, ob);
	assert_memory_equal(oa, abc_md, 32);
	assert_memory_equal(ob, abc_md, 32);
	qc_sha256x2((const uint8_t *)"", (const uint8_t *)"", 0, oa, ob);
	assert_memory_equal(oa, empty_md, 32);
	assert_memory_equal(ob, empty_md, 32);
}

static void every_short_length(void **state)
{
	(void)state;
	if (!qc_sha256x2_ok())
		skip();
	uint8_t *a = noise(1200, 1), *b = noise(1200, 2);
	for (size_t len = 0; len <= 1100; len++)
		both_agree(a + 1 + len % 7, b + 3 + len % 5, len);
	free(a);
	free(b);
}

static void tree_blocks(void **state)
{
	(void)state;
	if (!qc_sha256x2_ok())
		skip();
	const size_t blk = 65536;
	uint8_t *a = noise(3 * blk, 3), *b = noise(3 * blk, 4);
	const size_t lens[] = { blk, blk - 1, blk + 1, blk - 55, blk - 56, 2 * blk, 3 * blk - 9 };
	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		both_agree(a, b, lens[k]);
		both_agree(a + 5, b + 63, lens[k] - 64);
	}
	/* the same message twice, and a zero block beside data */
	both_agree(a, a, blk);
	memset(b, 0, blk);
	both_agree(a, b, blk);
	both_agree(b, a, blk);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(known_answers),
		cmocka_unit_test(every_short_length),
		cmocka_unit_test(tree_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
