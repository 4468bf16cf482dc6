/*
 * io.h - the I/O backend interface: a file backend (O_RDONLY for check,
 * O_RDWR only for repair and undo) and a memory backend (unit tests, fuzzing).
 *
 * Reads never fail because of the file's length: bytes past the end read as
 * zero and the return value says how many bytes really came from the image.
 * Writes on a read-only backend return -EROFS.
 *
 * Holes: next_data / next_hole say where the stored bytes are (SEEK_DATA /
 * SEEK_HOLE for files), so that a structure lying in a hole of a sparse
 * file costs nothing to read (checker/tables.c reads L1 tables by
 * extent).  A backend that cannot tell answers "all data".
 */
#ifndef QC_IO_H
#define QC_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"

struct qc_io;
struct qc_io_view;

struct qc_io_ops {
	/* Read up to len bytes at off; returns bytes read (may be short at EOF) or -errno. */
	long long (*pread)(struct qc_io *io, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct qc_io *io, const void *buf, size_t len, uint64_t off);
	int (*truncate)(struct qc_io *io, uint64_t len);
	int (*sync)(struct qc_io *io);
	void (*close)(struct qc_io *io);
	/* The first offset >= off that may hold data: every byte of
	 * [off, result) reads as zero.  size when only zeros follow. */
	uint64_t (*next_data)(struct qc_io *io, uint64_t off);
	/* The first offset >= off where a hole starts (size at the latest). */
	uint64_t (*next_hole)(struct qc_io *io, uint64_t off);
	/* A view of [off, off+len), inside the size (see qc_io_map). */
	int (*map)(struct qc_io *io, uint64_t off, size_t len, struct qc_io_view *v);
};

struct qc_io {
	const struct qc_io_ops *ops;
	uint64_t size;      /* current length in bytes */
	bool writable;
	/* Fault injection for crash tests: after this many successful writes,
	 * every further write fails with -EIO (0 = never). */
	unsigned long fail_after_writes;
	unsigned long writes_done;
	/* Bytes read through qc_io_read*() and qc_io_map() (complexity
	 * tests count them). */
	uint64_t bytes_read;
	/* qc_io_map() answers -ENOTSUP: set from QCOW2FSCK_NO_MMAP at open */
	bool no_map;
};

/* Open a file; returns 0 or -errno.  Read-only unless writable is set.
 * Takes no lock (tools and tests); the command line uses qc_io_open_image. */
int qc_io_open_file(const char *path, bool writable, struct qc_io **out);

struct qc_open_opts {
	bool writable;
	enum qc_lock_mode lock; /* which of QEMU's locks to take (core/lock.h) */
};
struct qc_open_info {
	const char *special; /* set with -EINVAL: the file is "a FIFO", "a socket"... */
	bool in_use;         /* another process holds the image (with -EBUSY, or
				with QC_LOCK_SHARE, which opens anyway) */
	bool locks_unsupported; /* no OFD locks on this file system: none taken */
};
/*
 * Open an image for the command line: refuse anything but a regular file
 * or a block device before a blocking open (stat, open O_NONBLOCK, fstat),
 * then take opt->lock.  Returns 0; -EBUSY when another process holds the
 * image in a conflicting way (nothing left open); -EINVAL with
 * info->special set; or -errno.
 */
int qc_io_open_image(const char *path, const struct qc_open_opts *opt, struct qc_io **out,
		     struct qc_open_info *info);
/* A memory image holding a copy of data. */
struct qc_io *qc_io_open_memory(const void *data, size_t len, bool writable);
/* The bytes of a memory image (NULL for other backends). */
const uint8_t *qc_io_memory_bytes(struct qc_io *io, size_t *len);

/* Read exactly len bytes at off, zero-filling past EOF.
 * Returns the number of bytes that lay inside the file, or -errno. */
long long qc_io_read(struct qc_io *io, void *buf, size_t len, uint64_t off);
/* Read exactly len bytes that must all lie inside the file: 0, -EIO on a
 * short read, or -errno. */
int qc_io_read_full(struct qc_io *io, void *buf, size_t len, uint64_t off);
/*
 * Where the stored bytes are: qc_io_next_data() is the first offset >= off
 * that may hold data (every byte of [off, result) reads as zero; the
 * file's size when only zeros follow), qc_io_next_hole() the first offset
 * >= off where a hole starts (the size at the latest).  A reader that
 * skips [off, next_data) costs what the file stores, not the range's
 * length.  Bounded by the size; never an error ("data here" when unsure).
 */
uint64_t qc_io_next_data(struct qc_io *io, uint64_t off);
uint64_t qc_io_next_hole(struct qc_io *io, uint64_t off);
int qc_io_write(struct qc_io *io, const void *buf, size_t len, uint64_t off);
int qc_io_truncate(struct qc_io *io, uint64_t len);
int qc_io_sync(struct qc_io *io);
void qc_io_close(struct qc_io *io);
/*
 * Mapped reads: a read-only view of stored bytes without a copy into a
 * buffer (the digest and check --deep read gigabytes, and on a machine
 * with little memory bandwidth the kernel's copy costs as much as the
 * hashing).  qc_io_map() gives the bytes of [off, off+len), which must lie
 * inside the file, or -errno and the caller reads with qc_io_read()
 * instead: -ENOTSUP when the backend cannot or mapping is switched off
 * (QCOW2FSCK_NO_MMAP set in the environment, io->no_map), -ERANGE past
 * the end, or mmap's error.  The pages are populated at once
 * (MAP_POPULATE).  A memory backend gives a pointer into its bytes.
 * Every access to v->p must be under a qc_mapguard (core/mapguard.h): a
 * file that shrinks after the mapping, or a device that fails a read,
 * faults (SIGBUS).  Counted in bytes_read.  qc_io_unmap() releases it.
 */
struct qc_io_view {
	const uint8_t *p; /* the bytes of [off, off+len) */
	void *base;       /* what qc_io_unmap() unmaps (NULL: nothing) */
	size_t maplen;
};
int qc_io_map(struct qc_io *io, uint64_t off, size_t len, struct qc_io_view *v);
void qc_io_unmap(struct qc_io_view *v);
/*
 * Holes of a sparse file (lseek SEEK_DATA/SEEK_HOLE): returns 1 when off
 * lies in a hole, 0 when it lies in data, and sets *end to where that hole
 * or data run ends (UINT64_MAX for a hole reaching past the end of the
 * file).  -ENOTSUP for a backend or file system that cannot tell: the
 * caller then treats everything as data.
 */
int qc_io_extent(struct qc_io *io, uint64_t off, uint64_t *end);

#endif
