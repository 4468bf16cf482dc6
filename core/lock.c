/*
 * lock.c - QEMU's image locks (see lock.h and doc/locking.md).
 *
 * Relies on Linux open file description locks: a lock belongs to the open
 * file description, so it lives exactly as long as the descriptor that
 * qc_io keeps, and F_OFD_GETLK never reports our own locks as conflicts.
 * QEMU takes every byte as a shared (read) lock and tests for others by
 * asking whether an exclusive lock would be granted; we do the same.
 */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int ofd(int fd, int cmd, short type, int byte, short *conflict)
{
	struct flock fl;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	int r;
	do
		r = fcntl(fd, cmd, &fl);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		/* EINVAL: kernel without OFD locks; ENOLCK/EOPNOTSUPP: file system */
		if (errno == EINVAL || errno == ENOLCK || errno == EOPNOTSUPP)
			return -EOPNOTSUPP;
		return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
	}
	if (conflict)
		*conflict = fl.l_type;
	return 0;
}

/* 1 when another description holds byte (a write lock would not be granted). */
static int held_by_other(int fd, int byte)
{
	short t = F_UNLCK;
	int r = ofd(fd, F_OFD_GETLK, F_WRLCK, byte, &t);
	return r < 0 ? r : t != F_UNLCK;
}

void qc_lock_perms(enum qc_lock_mode mode, unsigned *perm, unsigned *shared)
{
	switch (mode) {
	case QC_LOCK_NONE:
		*perm = 0;
		*shared = QC_PERM_ALL;
		break;
	case QC_LOCK_READ:
		*perm = QC_PERM_CONSISTENT_READ;
		*shared = QC_PERM_ALL & ~(QC_PERM_WRITE | QC_PERM_RESIZE);
		break;
	case QC_LOCK_SHARE:
		*perm = QC_PERM_CONSISTENT_READ;
		*shared = QC_PERM_ALL;
		break;
	case QC_LOCK_WRITE:
		*perm = QC_PERM_CONSISTENT_READ | QC_PERM_WRITE | QC_PERM_RESIZE;
		*shared = QC_PERM_ALL & ~(QC_PERM_WRITE | QC_PERM_RESIZE);
		break;
	}
}

static void release(int fd)
{
	for (int i = 0; (1u << i) <= QC_PERM_ALL; i++) {
		ofd(fd, F_OFD_SETLK, F_UNLCK, QC_LOCK_PERM_BASE + i, NULL);
		ofd(fd, F_OFD_SETLK, F_UNLCK, QC_LOCK_SHARED_BASE + i, NULL);
	}
}

/* The test half of the protocol: nobody denies a permission we hold, and
 * nobody holds a permission we deny.  0, -EBUSY or -errno. */
static int test_conflicts(int fd, unsigned perm, unsigned shared)
{
	for (int i = 0; (1u << i) <= QC_PERM_ALL; i++) {
		unsigned bit = 1u << i;
		int r = 0;
		if (perm & bit)
			r = held_by_other(fd, QC_LOCK_SHARED_BASE + i);
		if (r == 0 && !(shared & bit))
			r = held_by_other(fd, QC_LOCK_PERM_BASE + i);
		if (r)
			return r > 0 ? -EBUSY : r;
	}
	return 0;
}

int qc_lock_take(int fd, unsigned perm, unsigned shared)
{
	int r = 0;
	for (int i = 0; (1u << i) <= QC_PERM_ALL && r == 0; i++) {
		unsigned bit = 1u << i;
		if (perm & bit)
			r = ofd(fd, F_OFD_SETLK, F_RDLCK, QC_LOCK_PERM_BASE + i, NULL);
		if (r == 0 && !(shared & bit))
			r = ofd(fd, F_OFD_SETLK, F_RDLCK, QC_LOCK_SHARED_BASE + i, NULL);
	}
	if (r == 0)
		r = test_conflicts(fd, perm, shared);
	if (r < 0)
		release(fd);
	return r;
}

int qc_lock_in_use(int fd)
{
	unsigned perm, shared;
	qc_lock_perms(QC_LOCK_READ, &perm, &shared);
	int r = test_conflicts(fd, perm, shared);
	return r == -EBUSY ? 1 : r;
}
