/*
 * lock.h - QEMU's image locking protocol (doc/locking.md): open file
 * description byte-range locks on one byte per block permission at
 * 100+bit ("I hold this permission") and at 200+bit ("I do not let anyone
 * else hold it").  Linux F_OFD_SETLK / F_OFD_GETLK only.
 */
#ifndef QC_LOCK_H
#define QC_LOCK_H

#include <stdbool.h>

/* QEMU's block permission bits (bit numbers are the lock byte offsets). */
#define QC_PERM_CONSISTENT_READ 0x1u
#define QC_PERM_WRITE 0x2u
#define QC_PERM_WRITE_UNCHANGED 0x4u
#define QC_PERM_RESIZE 0x8u
#define QC_PERM_ALL 0xfu

#define QC_LOCK_PERM_BASE 100
#define QC_LOCK_SHARED_BASE 200

/* What an open of the image asks for. */
enum qc_lock_mode {
	QC_LOCK_NONE,  /* take no lock, test nothing */
	QC_LOCK_READ,  /* as `qemu-img check`: read, share all but write and resize */
	QC_LOCK_SHARE, /* as `qemu-img check -U`: read, share everything */
	QC_LOCK_WRITE, /* as `qemu-img check -r`: read, write, resize; share neither */
};

/* The permissions and the shared permissions of a mode. */
void qc_lock_perms(enum qc_lock_mode mode, unsigned *perm, unsigned *shared);

/*
 * Lock the bytes of perm and of the permissions not in shared on fd, then
 * test that no other open file description holds a byte that conflicts
 * (QEMU's order: lock first, then test, so that two openers cannot both
 * pass).  Returns 0; -EBUSY on a conflict (the bytes taken are released);
 * -EOPNOTSUPP when the file system or kernel has no OFD locks (nothing is
 * locked); or -errno.
 */
int qc_lock_take(int fd, unsigned perm, unsigned shared);

/*
 * Whether another open file description holds the image in a way that
 * `qemu-img check` (mode QC_LOCK_READ) would refuse: it holds write or
 * resize permission, or it does not share consistent reads.  Returns 1,
 * 0, or -errno (-EOPNOTSUPP: no OFD locks here).
 */
int qc_lock_in_use(int fd);

#endif
