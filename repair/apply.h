/*
 * apply.h - applying a journaled plan to an image, phase by phase, with a
 * sync after each phase, and rolling it back from the journal.
 *
 * Crash safety: the journal is complete and fsync'd before the first
 * write, so whatever subset of the writes reached the disk, `undo` finds
 * every region holding its old or its new bytes and restores the rest.
 * The phase order (plan.h) additionally keeps the image usable on its own:
 * new refcount structures are written past the end of the file and synced
 * before the single header write that switches to them.
 *
 * Crash tests use the test-only build build/test/qcow2fsck-faults, whose
 * I/O layer can stop the process after any write (tests/faults/faults.c);
 * this file has no test hook.
 */
#ifndef QC_APPLY_H
#define QC_APPLY_H

#include "../core/io.h"
#include "plan.h"

/*
 * Write every write of the plan whose phase is in [first, last], in plan
 * order (call qc_plan_sort first), syncing at every phase change and at
 * the end.  *done counts successful writes.  Compare-and-swap (cas.h):
 * every region of the range is compared with the bytes the plan expects
 * before the first write, and each again right before it is written; a
 * region that changed since planning stops the apply with -ESTALE (before
 * any write when the first comparison finds it).  Returns 0 or -errno.
 */
int qc_apply_phases(struct qc_io *io, struct qc_plan *p, enum qc_phase first,
		    enum qc_phase last, size_t *done);

#endif
