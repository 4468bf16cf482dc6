/*
 * prefetch.h - a pass's metadata read ahead, in order, on helper threads.
 *
 * The pass (tables.c: L2 tables; refcounts.c: refcount blocks) describes
 * its sorted runs one at a time through `next` and consumes them in that
 * same order through qc_pf_get / qc_pf_release.  With jobs > 1, up to
 * jobs - 1 helper threads read the following runs meanwhile (and run
 * `prep` on each, a pure function of the bytes: tables.c decodes the
 * entries there); with jobs = 1 everything happens in the caller's thread
 * when it asks.  Either way the consumer sees the same runs with the same
 * bytes in the same order, so what the pass reports cannot depend on the
 * threads' timing.
 *
 * Memory: one slot with jobs = 1, else min(jobs + 1, QC_PF_SLOTS_MAX)
 * slots, each a read buffer of bufmax bytes plus auxsize bytes for prep;
 * fixed whatever the image.
 */
#ifndef QC_PREFETCH_H
#define QC_PREFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/io.h"

#define QC_PF_SLOTS_MAX 4u

struct qc_pf_run {
	uint64_t off;  /* file offset of the run */
	size_t len;    /* bytes, at most bufmax */
	size_t a, b;   /* the caller's: the run covers its items [a, b) */
};

struct qc_pf_slot {
	struct qc_pf_run run;
	uint8_t *buf;  /* run.len bytes read at run.off (zeros past EOF) */
	void *aux;     /* what prep left */
	int err;       /* 0, or the read's -errno (prep was not run) */
	/* owned by prefetch.c */
	uint64_t seq;
	bool ready;
};

/* Called under the prefetcher's lock, one call at a time, in run order:
 * fill *run with the next run, or return false when there is none. */
typedef bool (*qc_pf_next_fn)(void *ctx, struct qc_pf_run *run);
/* Called on the slot after a successful read, possibly in several threads
 * at once (on different slots): must only read ctx. */
typedef void (*qc_pf_prep_fn)(const void *ctx, const struct qc_pf_run *run, const uint8_t *buf,
			      void *aux);

struct qc_prefetch;

/* NULL when the buffers could not be had.  Helper threads that cannot be
 * started are done without (jobs = 1 in the end is always possible). */
struct qc_prefetch *qc_pf_start(struct qc_io *io, unsigned jobs, size_t bufmax, size_t auxsize,
				qc_pf_next_fn next, qc_pf_prep_fn prep, void *ctx);
/* The next run in order (read, prepared), or NULL after the last. */
struct qc_pf_slot *qc_pf_get(struct qc_prefetch *p);
/* The slot qc_pf_get returned is no longer used. */
void qc_pf_release(struct qc_prefetch *p);
/* Stop (even before the last run), join the helpers, free everything. */
void qc_pf_stop(struct qc_prefetch *p);

#endif
