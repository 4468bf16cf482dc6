/*
 * test_mapguard.c - mapped reads (core/io.c qc_io_map) and their SIGBUS
 * guard (core/mapguard.c): a memory backend's view is its bytes; a file's
 * view, at an offset that is not page aligned, has the file's bytes and is
 * counted in bytes_read; a range past the end, an empty one, an overlay-
 * like backend without map and QCOW2FSCK_NO_MMAP are refused so that the
 * caller reads instead; a file truncated under its mapping faults, the
 * guard catches it, and the guard works again afterwards (SIGBUS is not
 * left blocked), nested guards unwind to the inner one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../core/io.h"
#include "../../core/mapguard.h"

#define FILE_LEN (256u * 1024)

static char path[64];

static int make_file(void **state)
{
	(void)state;
	if (path[0])
		unlink(path); /* a test made it again: the old one goes */
	snprintf(path, sizeof(path), "/tmp/qc-mapguard-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	uint8_t *b = malloc(FILE_LEN);
	for (size_t i = 0; i < FILE_LEN; i++)
		b[i] = (uint8_t)(i * 7 + i / 4096);
	ssize_t n = write(fd, b, FILE_LEN);
	free(b);
	close(fd);
	return n == FILE_LEN ? 0 : -1;
}

static int remove_file(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void memory_view_is_its_bytes(void **state)
{
	(void)state;
	uint8_t data[1000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	struct qc_io *io = qc_io_open_memory(data, sizeof(data), false);
	struct qc_io_view v;
	assert_int_equal(qc_io_map(io, 100, 900, &v), 0);
	assert_memory_equal(v.p, data + 100, 900);
	assert_int_equal(io->bytes_read, 900);
	qc_io_unmap(&v);
	assert_null(v.p);
	assert_int_equal(qc_io_map(io, 100, 901, &v), -ERANGE);
	assert_int_equal(qc_io_map(io, 1000, 1, &v), -ERANGE);
	assert_int_equal(qc_io_map(io, UINT64_MAX, 2, &v), -ERANGE);
	assert_int_equal(qc_io_map(io, 0, 0, &v), -ERANGE);
	assert_int_equal(io->bytes_read, 900);
	qc_io_close(io);
}

static void file_view_has_the_file_bytes(void **state)
{
	(void)state;
	unsetenv("QCOW2FSCK_NO_MMAP");
	struct qc_io *io;
	assert_int_equal(qc_io_open_file(path, false, &io), 0);
	uint8_t *want = malloc(70000);
	assert_int_equal(qc_io_read_full(io, want, 70000, 12345), 0);
	uint64_t before = io->bytes_read;
	struct qc_io_view v;
	assert_int_equal(qc_io_map(io, 12345, 70000, &v), 0);
	assert_memory_equal(v.p, want, 70000);
	assert_int_equal(io->bytes_read - before, 70000);
	qc_io_unmap(&v);
	assert_int_equal(qc_io_map(io, FILE_LEN - 10, 11, &v), -ERANGE);
	uint8_t tail[10];
	assert_int_equal(qc_io_read_full(io, tail, 10, FILE_LEN - 10), 0);
	assert_int_equal(qc_io_map(io, FILE_LEN - 10, 10, &v), 0);
	assert_memory_equal(v.p, tail, 10);
	qc_io_unmap(&v);
	free(want);
	qc_io_close(io);
}

static void no_mmap_switches_it_off(void **state)
{
	(void)state;
	setenv("QCOW2FSCK_NO_MMAP", "1", 1);
	struct qc_io *io;
	assert_int_equal(qc_io_open_file(path, false, &io), 0);
	struct qc_io_view v;
	assert_int_equal(qc_io_map(io, 0, 4096, &v), -ENOTSUP);
	qc_io_close(io);
	setenv("QCOW2FSCK_NO_MMAP", "0", 1); /* "0" leaves it on */
	assert_int_equal(qc_io_open_file(path, false, &io), 0);
	assert_int_equal(qc_io_map(io, 0, 4096, &v), 0);
	qc_io_unmap(&v);
	qc_io_close(io);
	unsetenv("QCOW2FSCK_NO_MMAP");
}

/* The sum of len bytes at p, under a guard: -1 when the read faulted. */
static long guarded_sum(const volatile uint8_t *p, size_t len)
{
	struct qc_mapguard g;
	if (sigsetjmp(g.jb, 0))
		return -1;
	if (!qc_mapguard_arm(&g))
		return -2;
	long s = 0;
	for (size_t i = 0; i < len; i += 512)
		s += p[i];
	qc_mapguard_disarm(&g);
	return s;
}

static int inner_then_outer(const volatile uint8_t *bad, const volatile uint8_t *good, long *sum)
{
	struct qc_mapguard outer;
	if (sigsetjmp(outer.jb, 0))
		return -1; /* the outer guard must not be the one that catches */
	if (!qc_mapguard_arm(&outer))
		return -2;
	long r = guarded_sum(bad, 4096); /* faults inside the inner guard */
	*sum = guarded_sum(good, 4096);
	qc_mapguard_disarm(&outer);
	return (int)r;
}

static void a_shrunk_file_faults_under_the_guard(void **state)
{
	(void)state;
	assert_true(qc_mapguard_available());
	struct qc_io *io;
	assert_int_equal(qc_io_open_file(path, false, &io), 0);
	struct qc_io_view v;
	assert_int_equal(qc_io_map(io, 0, FILE_LEN, &v), 0);
	long whole = guarded_sum(v.p, FILE_LEN);
	assert_true(whole > 0);
	/* another descriptor shrinks the file to 64 KiB under the mapping */
	assert_int_equal(truncate(path, 65536), 0);
	assert_int_equal(guarded_sum(v.p + 131072, 4096), -1);
	assert_int_equal(guarded_sum(v.p + 131072, 4096), -1); /* again: not blocked */
	assert_true(guarded_sum(v.p, 65536) >= 0);            /* what is left reads */
	long sum = -5;
	assert_int_equal(inner_then_outer(v.p + 200000, v.p, &sum), -1);
	assert_true(sum >= 0);
	qc_io_unmap(&v);
	qc_io_close(io);
	/* restore the file for other tests */
	assert_int_equal(make_file(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(memory_view_is_its_bytes),
		cmocka_unit_test(file_view_has_the_file_bytes),
		cmocka_unit_test(no_mmap_switches_it_off),
		cmocka_unit_test(a_shrunk_file_faults_under_the_guard),
	};
	return cmocka_run_group_tests(tests, make_file, remove_file);
}
