/*
 * test_reader.c - the bounded reader at every boundary, the overflow
 * helpers, and the memory I/O backend.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../core/io.h"
#include "../../core/reader.h"

static const uint8_t bytes[16] = { 0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3,
				   1, 2, 3, 4, 5, 6, 7, 8 };

static void getters_in_bounds(void **state)
{
	(void)state;
	struct qc_view v = qc_view_make(bytes, sizeof(bytes));
	uint8_t b;
	uint16_t s;
	uint32_t w;
	uint64_t q;
	assert_true(qc_get_be32(v, 0, &w));
	assert_int_equal(w, 0x514649fb);
	assert_true(qc_get_be64(v, 8, &q));
	assert_true(q == UINT64_C(0x0102030405060708));
	assert_true(qc_get_be16(v, 14, &s));
	assert_int_equal(s, 0x0708);
	assert_true(qc_get_u8(v, 15, &b));
	assert_int_equal(b, 8);
}

static void getters_fail_past_end(void **state)
{
	(void)state;
	struct qc_view v = qc_view_make(bytes, sizeof(bytes));
	uint8_t b;
	uint16_t s;
	uint32_t w;
	uint64_t q;
	assert_false(qc_get_u8(v, 16, &b));
	assert_false(qc_get_be16(v, 15, &s));
	assert_false(qc_get_be32(v, 13, &w));
	assert_false(qc_get_be64(v, 9, &q));
	assert_false(qc_get_be64(v, UINT64_MAX, &q));
	assert_false(qc_get_be64(v, UINT64_MAX - 3, &q));
	struct qc_view empty = qc_view_make(NULL, 0);
	assert_false(qc_get_u8(empty, 0, &b));
	char buf[4];
	assert_true(qc_get_bytes(v, 16, buf, 0));
	assert_false(qc_get_bytes(v, 14, buf, 4));
}

static void sub_views(void **state)
{
	(void)state;
	struct qc_view v = qc_view_make(bytes, sizeof(bytes)), s;
	assert_true(qc_view_sub(v, 8, 8, &s));
	assert_int_equal(s.len, 8);
	assert_true(qc_view_sub(v, 16, 0, &s));
	assert_false(qc_view_sub(v, 8, 9, &s));
	assert_false(qc_view_sub(v, 17, 0, &s));
	assert_false(qc_view_sub(v, 1, UINT64_MAX, &s));
	assert_true(qc_view_has(v, 0, 16));
	assert_false(qc_view_has(v, UINT64_MAX, 2));
}

static void overflow_helpers(void **state)
{
	(void)state;
	uint64_t r;
	assert_true(qc_add(1, 2, &r));
	assert_true(r == 3);
	assert_false(qc_add(UINT64_MAX, 1, &r));
	assert_true(qc_mul(1u << 31, 1u << 31, &r));
	assert_false(qc_mul(UINT64_C(1) << 32, UINT64_C(1) << 32, &r));
	assert_true(qc_align_up(65537, 65536, &r));
	assert_true(r == 131072);
	assert_false(qc_align_up(UINT64_MAX - 5, 65536, &r));
	assert_true(qc_ranges_overlap(0, 10, 9, 1));
	assert_false(qc_ranges_overlap(0, 10, 10, 1));
	assert_false(qc_ranges_overlap(0, 0, 0, 10));
}

static void put_roundtrip(void **state)
{
	(void)state;
	uint8_t b[8];
	qc_put_be64(b, UINT64_C(0x8000000000050000));
	assert_true(qc_be64_at(b) == UINT64_C(0x8000000000050000));
	qc_put_be32(b, 0xdeadbeef);
	assert_int_equal(qc_be32_at(b), 0xdeadbeef);
	qc_put_be16(b, 0xbeef);
	assert_int_equal(qc_be16_at(b), 0xbeef);
}

static void memory_backend(void **state)
{
	(void)state;
	struct qc_io *io = qc_io_open_memory(bytes, sizeof(bytes), false);
	assert_non_null(io);
	uint8_t buf[32];
	assert_int_equal(qc_io_read(io, buf, 32, 8), 8);
	assert_int_equal(buf[8], 0);
	assert_int_equal(qc_io_read_full(io, buf, 8, 9), -EIO);
	assert_int_equal(qc_io_read_full(io, buf, 8, 8), 0);
	assert_int_equal(qc_io_read(io, buf, 4, UINT64_MAX - 2), 0);
	assert_int_equal(qc_io_write(io, buf, 1, 0), -EROFS);
	qc_io_close(io);

	io = qc_io_open_memory(bytes, sizeof(bytes), true);
	assert_int_equal(qc_io_write(io, "xy", 2, 100), 0);
	assert_true(io->size == 102);
	assert_int_equal(qc_io_truncate(io, 4), 0);
	assert_int_equal(qc_io_read(io, buf, 8, 0), 4);
	io->fail_after_writes = io->writes_done + 1;
	assert_int_equal(qc_io_write(io, "a", 1, 0), 0);
	assert_int_equal(qc_io_write(io, "a", 1, 0), -EIO);
	qc_io_close(io);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(getters_in_bounds),   cmocka_unit_test(getters_fail_past_end),
		cmocka_unit_test(sub_views),           cmocka_unit_test(overflow_helpers),
		cmocka_unit_test(put_roundtrip),       cmocka_unit_test(memory_backend),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
