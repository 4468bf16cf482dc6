/*
 * test_digest.c - checker/digest.c over raw layers in memory, against the
 * tree-v1 and flat definitions (doc/digest.md) computed here directly
 * with libcrypto: sizes with and without a short last block, zero runs,
 * the empty layer, 1 and several threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "../../checker/digest.h"

static void sha(const void *p, size_t n, uint8_t out[32])
{
	unsigned len = 32;
	assert_true(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL));
}

/* tree-v1 by its definition */
static void tree_ref(const uint8_t *d, uint64_t S, uint8_t out[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	assert_non_null(c);
	assert_true(EVP_DigestInit_ex(c, EVP_sha256(), NULL));
	uint8_t head[28] = "qcow2fsck-digest-v1";
	for (int k = 0; k < 8; k++)
		head[20 + k] = (uint8_t)(S >> (56 - 8 * k));
	assert_true(EVP_DigestUpdate(c, head, sizeof(head)));
	for (uint64_t g = 0; g < S; g += 65536) {
		uint8_t h[32];
		sha(d + g, (size_t)(S - g < 65536 ? S - g : 65536), h);
		assert_true(EVP_DigestUpdate(c, h, 32));
	}
	assert_true(EVP_DigestFinal_ex(c, out, NULL));
	EVP_MD_CTX_free(c);
}

static void one(const uint8_t *d, uint64_t S)
{
	struct qc_io *io = qc_io_open_memory(d, (size_t)S, false);
	assert_non_null(io);
	struct qc_layer L = { io, NULL, NULL, 0, S };
	uint8_t want[32], flat[32];
	tree_ref(d, S, want);
	sha(d, (size_t)S, flat);
	for (unsigned jobs = 1; jobs <= 3; jobs++) {
		struct qc_digest_opts o = { false, false, jobs, NULL, 0, NULL, NULL };
		struct qc_digest_result r;
		assert_int_equal(qc_digest_layer(&L, &o, &r), 0);
		assert_memory_equal(r.md, want, 32);
		o.flat = true;
		assert_int_equal(qc_digest_layer(&L, &o, &r), 0);
		assert_memory_equal(r.md, flat, 32);
	}
	qc_io_close(io);
}

static void raw_layers(void **state)
{
	(void)state;
	const uint64_t sizes[] = { 0, 1, 65535, 65536, 65537, (4 << 20) + 512,
				   (64 << 20) + 65536 * 3 + 100 };
	uint64_t max = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1];
	uint8_t *d = calloc(1, (size_t)max);
	assert_non_null(d);
	uint32_t x = 1;
	for (uint64_t i = 0; i < max; i++) {
		/* data with long zero runs in between */
		if ((i >> 20) % 3 == 1)
			continue;
		x = x * 1664525 + 1013904223;
		d[i] = (uint8_t)(x >> 24);
	}
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++)
		one(d, sizes[k]);
	free(d);
}

static void hex(void **state)
{
	(void)state;
	uint8_t md[32];
	for (int k = 0; k < 32; k++)
		md[k] = (uint8_t)(k * 17);
	char out[65];
	qc_digest_hex(md, out);
	assert_string_equal(out, "00112233445566778899aabbccddeeff102132435465768798a9bacbdcedfe0f");
	assert_int_equal(strlen(out), 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(raw_layers),
		cmocka_unit_test(hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
