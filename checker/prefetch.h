/*
 * prefetch.h - a pass's metadata read ahead, in order, on helper threads.
 *
 * The pass (tables.c: L2 tables; refcounts.c: refcount blocks) describes
 * its sorted runs one at a time through `next` and consumes them in that
 * same order through qc_pf_get / qc_pf_release.  A run is up to
 * QC_PF_EXTENTS_MAX extents of the file, at most bufmax bytes in all
 * (qc_pf_add builds them from the sorted items; contiguous clusters merge
 * into one extent), read back to back into one buffer: tables scattered
 * through the file (one L2 table per 512 MiB in a preallocated image)
 * travel several to a hand-over, where one hand-over per table cost the
 * consumer a sleep and a wake-up each (0.099 s -> 0.065 s for the check of
 * the 1 TiB bench image).  With jobs > 1, up to jobs - 1 helper threads
 * read the following runs meanwhile (and run `prep` on each, a pure
 * function of the bytes: tables.c decodes the entries there); with
 * jobs = 1 everything happens in the caller's thread when it asks.
 * Either way the consumer sees the same runs with the same bytes in the
 * same order, so what the pass reports cannot depend on the threads'
 * timing.
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
#define QC_PF_EXTENTS_MAX 16u

struct qc_pf_extent {
	uint64_t off;  /* file offset */
	size_t len;    /* bytes */
};

struct qc_pf_run {
	struct qc_pf_extent ext[QC_PF_EXTENTS_MAX]; /* sorted, disjoint */
	unsigned next; /* extents in use */
	size_t len;    /* their total bytes, at most bufmax */
	size_t a, b;   /* the caller's: the run covers its items [a, b) */
};

struct qc_pf_slot {
	struct qc_pf_run run;
	uint8_t *buf;  /* the run's extents, back to back (zeros past EOF) */
	void *aux;     /* what prep left */
	int err;       /* 0, or the -errno of the first extent whose read failed
			* (prep was not run; the extents before it were read) */
	uint64_t err_off; /* that extent's file offset */
	/* owned by prefetch.c */
	uint64_t seq;
	bool ready;
};

/*
 * Add the item [off, off+len) (items come sorted by offset) to run, which
 * starts empty (next = 0, len = 0): nothing when it lies inside the last
 * extent (an item several references share), the last extent grows when
 * the item follows it, else a new extent.  False, with run unchanged,
 * when that would take the run past bufmax bytes or QC_PF_EXTENTS_MAX
 * extents (the item then starts the next run); an empty run takes any
 * item of at most bufmax bytes.
 */
bool qc_pf_add(struct qc_pf_run *run, uint64_t off, size_t len, size_t bufmax);
/* The position in the slot's buffer of file offset off, which lies in one
 * of run's extents. */
size_t qc_pf_at(const struct qc_pf_run *run, uint64_t off);

/* Called under the prefetcher's lock, one call at a time, in run order:
 * fill *run (empty: no extent) with the next run through qc_pf_add and
 * set its a and b, or return false when there is none. */
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
