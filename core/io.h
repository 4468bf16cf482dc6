/*
 * io.h - the I/O backend interface: a file backend (O_RDONLY for check,
 * O_RDWR only for repair and undo) and a memory backend (unit tests, fuzzing).
 *
 * Reads never fail because of the file's length: bytes past the end read as
 * zero and the return value says how many bytes really came from the image.
 * Writes on a read-only backend return -EROFS.
 */
#ifndef QC_IO_H
#define QC_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qc_io;

struct qc_io_ops {
	/* Read up to len bytes at off; returns bytes read (may be short at EOF) or -errno. */
	long long (*pread)(struct qc_io *io, void *buf, size_t len, uint64_t off);
	int (*pwrite)(struct qc_io *io, const void *buf, size_t len, uint64_t off);
	int (*truncate)(struct qc_io *io, uint64_t len);
	int (*sync)(struct qc_io *io);
	void (*close)(struct qc_io *io);
};

struct qc_io {
	const struct qc_io_ops *ops;
	uint64_t size;      /* current length in bytes */
	bool writable;
	/* Fault injection for crash tests: after this many successful writes,
	 * every further write fails with -EIO (0 = never). */
	unsigned long fail_after_writes;
	unsigned long writes_done;
};

/* Open a file; returns 0 or -errno.  Read-only unless writable is set. */
int qc_io_open_file(const char *path, bool writable, struct qc_io **out);
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
int qc_io_write(struct qc_io *io, const void *buf, size_t len, uint64_t off);
int qc_io_truncate(struct qc_io *io, uint64_t len);
int qc_io_sync(struct qc_io *io);
void qc_io_close(struct qc_io *io);
/*
 * Holes of a sparse file (lseek SEEK_DATA/SEEK_HOLE): returns 1 when off
 * lies in a hole, 0 when it lies in data, and sets *end to where that hole
 * or data run ends (UINT64_MAX for a hole reaching past the end of the
 * file).  -ENOTSUP for a backend or file system that cannot tell: the
 * caller then treats everything as data.
 */
int qc_io_extent(struct qc_io *io, uint64_t off, uint64_t *end);

#endif
