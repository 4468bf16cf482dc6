/*
 * cas.h - compare-and-swap for planned writes: every write of a plan
 * carries the bytes it replaces as the planner saw them (qc_write.old),
 * the journal refuses to start when the image no longer holds them, and
 * the apply step re-reads every region right before writing it and
 * refuses when the bytes changed since planning.  Together with the image
 * locks this closes the window between plan and write (doc/design.md
 * "Transaction").
 */
#ifndef QC_CAS_H
#define QC_CAS_H

#include "../core/io.h"
#include "plan.h"

/*
 * Record, for every write of p, the len bytes the image behind io holds
 * there now (zeros past the end of the file, as qc_io_read gives them).
 * Called once planning ends (qc_repair_plan does it).  Returns 0, -ENOMEM
 * or the read's -errno.
 */
int qc_plan_record_old(struct qc_plan *p, struct qc_io *io);

/*
 * Does the image hold, at write i's region, the bytes the plan expects
 * there once every earlier write that is applied or has its phase in
 * [first, last] is written?  That is w->old with those earlier writes laid
 * over it (only the header flag writes of phases HEADER and FINAL overlap).
 * Returns 0 when it does, -ESTALE when not (or when no old bytes were
 * recorded), other -errno when the read fails.
 */
int qc_cas_check(struct qc_io *io, const struct qc_plan *p, size_t i, enum qc_phase first,
		 enum qc_phase last);

#endif
