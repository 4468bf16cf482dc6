/*
 * faults.c - TEST-ONLY fault injection, linked only into
 * build/test/qcow2fsck-faults (see faults.h).  Reads two variables:
 *
 *   QCOW2FSCK_FAULT_CRASH_AFTER=k  right after the k-th successful write to
 *       an image opened for writing, _exit(99): no sync, no rollback, no
 *       cleanup, as if the process had been killed (a simulated crash).
 *   QCOW2FSCK_FAULT_FAIL_AFTER=k   the I/O layer's own fault injection
 *       (core/io.h fail_after_writes): every write after the k-th fails
 *       with EIO, so the repair's rollback runs.
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
