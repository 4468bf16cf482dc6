/*
 * mapguard.h - reading a mapped file safely: a SIGBUS (the file shrank
 * under the mapping, or the device failed a read) inside a guarded region
 * of this thread jumps back to where the guard was set, instead of killing
 * the process.  Used around code that reads a qc_io_map() view
 * (checker/digest.c, checker/deep.c); see doc/design.md "Mapped reads".
 *
 * Usage, in a function of its own so that nothing the fault path needs is
 * changed after sigsetjmp (C11 7.13.2.1):
 *
 *	struct qc_mapguard g;
 *	if (sigsetjmp(g.jb, 0))
 *		return -EIO;            (a fault: g is no longer armed)
 *	qc_mapguard_arm(&g);
 *	... read the view ...
 *	qc_mapguard_disarm(&g);
 *
 * The handler is installed once per process, with SA_NODEFER, so that
 * jumping out of it leaves SIGBUS unblocked (hence savemask 0).  A SIGBUS
 * outside every guard gets the action that was there before.
 * Guards nest per thread; each thread has its own.
 */
#ifndef QC_MAPGUARD_H
#define QC_MAPGUARD_H

#include <setjmp.h>
#include <stdbool.h>

struct qc_mapguard {
	sigjmp_buf jb;
	struct qc_mapguard *outer;
};

/* Arm g for this thread (installs the handler on first use): false when
 * the handler cannot be installed, and then g is not armed and the caller
 * must not read a mapping. */
bool qc_mapguard_arm(struct qc_mapguard *g);
/* Installs the handler if needed: false when it cannot be (then map nothing). */
bool qc_mapguard_available(void);
void qc_mapguard_disarm(struct qc_mapguard *g);

#endif
