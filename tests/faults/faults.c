/*
 * faults.c - TEST-ONLY fault injection, linked only into
 * build/test/qcow2fsck-faults (see faults.h).  Reads four variables:
 *
 *   QCOW2FSCK_FAULT_CRASH_AFTER=k  right after the k-th successful write to
 *       an image opened for writing, _exit(99): no sync, no rollback, no
 *       cleanup, as if the process had been killed (a simulated crash).
 *   QCOW2FSCK_FAULT_FAIL_AFTER=k   the I/O layer's own fault injection
 *       (core/io.h fail_after_writes): every write after the k-th fails
 *       with EIO, so the repair's rollback runs.
 *   QCOW2FSCK_FAULT_EIO=PATH:OFFSET  every read of the image PATH (the
 *       path as given on the command line) whose range covers byte OFFSET
 *       (decimal or 0x hex) fails with EIO, as a bad sector would: in
 *       whichever thread reads it (the check's read-ahead helpers, the
 *       digest's workers), after any number of good reads.
 *   QCOW2FSCK_FAULT_SHRINK_ON_MAP=PATH  after the first mapped read of
 *       an image of at least 1 MiB (qc_io_map), truncate PATH (the image)
 *       to the mapped range's first byte, as another process shrinking
 *       the file would: reading the mapping then faults (SIGBUS), which
 *       core/mapguard.c must turn into an I/O error.
 *
 * Relies on core/io.c counting successful writes in io->writes_done.
 */
#include "faults.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/io.h"

static unsigned long crash_after;

static unsigned long env_count(const char *name)
{
	const char *v = getenv(name);
	if (!v || !*v)
		return 0;
	char *end;
	unsigned long k = strtoul(v, &end, 10);
	return *end ? 0 : k;
}

void qc_fault_attach(struct qc_io *io)
{
	crash_after = env_count("QCOW2FSCK_FAULT_CRASH_AFTER");
	unsigned long fail = env_count("QCOW2FSCK_FAULT_FAIL_AFTER");
	if (fail)
		io->fail_after_writes = fail;
}

void qc_fault_after_write(struct qc_io *io)
{
	if (crash_after && io->writes_done >= crash_after)
		_exit(QC_FAULT_CRASH_EXIT);
}

void qc_fault_after_map(struct qc_io *io, uint64_t off, uint64_t len)
{
	static bool done;
	const char *path = getenv("QCOW2FSCK_FAULT_SHRINK_ON_MAP");
	(void)len;
	if (done || !path || !*path || io->size < (1u << 20))
		return;
	done = true;
	if (truncate(path, (off_t)off) != 0)
		_exit(98);
}

/* the image whose reads fail at eio_at (set at open, before any thread) */
static const struct qc_io *eio_io;
static uint64_t eio_at;

void qc_fault_open(const struct qc_io *io, const char *path)
{
	const char *v = getenv("QCOW2FSCK_FAULT_EIO");
	const char *colon = v ? strrchr(v, ':') : NULL;
	if (!colon || (size_t)(colon - v) != strlen(path) || strncmp(v, path, strlen(path)) != 0)
		return;
	char *end;
	unsigned long long at = strtoull(colon + 1, &end, 0);
	if (colon[1] && !*end) {
		eio_io = io;
		eio_at = at;
	}
}

bool qc_fault_read_fails(const struct qc_io *io, uint64_t off, uint64_t len)
{
	return io == eio_io && off <= eio_at && eio_at - off < len;
}
