/*
 * test_lock.c - QEMU's locking protocol between two open file descriptions
 * of one file in this process (OFD locks conflict between descriptions
 * exactly as between processes): readers share, a writer excludes readers
 * that do not share writing and other writers, -U (share everything) only
 * sees a writer, and closing a descriptor releases its locks.
 * tests/images/locks.sh checks the same against real QEMU processes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../core/lock.h"

static char path[] = "/tmp/qc-test-lock.XXXXXX";

static int take(int fd, enum qc_lock_mode m)
{
	unsigned perm, shared;
	qc_lock_perms(m, &perm, &shared);
	return qc_lock_take(fd, perm, shared);
}

static int openf(void)
{
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	return fd;
}

static void protocol(void **state)
{
	(void)state;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	int a = openf(), b = openf(), c = openf();
	if (take(a, QC_LOCK_READ) == -EOPNOTSUPP) {
		unlink(path);
		skip(); /* no OFD locks on /tmp's file system */
	}
	/* two readers (qemu-img check and qcow2fsck check) share */
	assert_int_equal(take(b, QC_LOCK_READ), 0);
	assert_int_equal(qc_lock_in_use(c), 0);
	/* a writer is refused while a reader denies writing */
	assert_int_equal(take(c, QC_LOCK_WRITE), -EBUSY);
	close(a);
	close(b);
	a = openf();
	b = openf();
	/* the refused writer left nothing locked: a writer now gets in */
	assert_int_equal(take(c, QC_LOCK_WRITE), 0);
	assert_int_equal(qc_lock_in_use(a), 1);
	assert_int_equal(take(a, QC_LOCK_READ), -EBUSY);
	assert_int_equal(take(b, QC_LOCK_WRITE), -EBUSY);
	/* -U: shares everything, so it opens, and still sees the writer */
	assert_int_equal(take(a, QC_LOCK_SHARE), 0);
	assert_int_equal(qc_lock_in_use(a), 1);
	close(c);
	assert_int_equal(qc_lock_in_use(a), 0);
	assert_int_equal(take(b, QC_LOCK_WRITE), 0);
	close(a);
	close(b);
	/* a holder that denies consistent reads (byte 200) stops even -U, as
	 * it stops qemu-img -U */
	a = openf();
	b = openf();
	assert_int_equal(qc_lock_take(a, 0, QC_PERM_ALL & ~QC_PERM_CONSISTENT_READ), 0);
	assert_int_equal(take(b, QC_LOCK_SHARE), -EBUSY);
	assert_int_equal(qc_lock_in_use(b), 1);
	close(a);
	close(b);
	unlink(path);
}

static void perms_match_qemu(void **state)
{
	(void)state;
	unsigned p, s;
	qc_lock_perms(QC_LOCK_READ, &p, &s);
	assert_int_equal(p, QC_PERM_CONSISTENT_READ);
	assert_int_equal(s, QC_PERM_CONSISTENT_READ | QC_PERM_WRITE_UNCHANGED);
	qc_lock_perms(QC_LOCK_WRITE, &p, &s);
	assert_int_equal(p, QC_PERM_CONSISTENT_READ | QC_PERM_WRITE | QC_PERM_RESIZE);
	assert_int_equal(s, QC_PERM_CONSISTENT_READ | QC_PERM_WRITE_UNCHANGED);
	qc_lock_perms(QC_LOCK_SHARE, &p, &s);
	assert_int_equal(p, QC_PERM_CONSISTENT_READ);
	assert_int_equal(s, QC_PERM_ALL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(protocol),
		cmocka_unit_test(perms_match_qemu),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
