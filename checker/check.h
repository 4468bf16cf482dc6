/*
 * check.h - running a check, and the helpers every pass uses.
 *
 * qc_check_open() builds the model of an image (checker/image.h) by running
 * the passes in order (check.c).  Passes record findings with qc_report()
 * and ownership with qc_claim(); they never print and never write.
 */
#ifndef QC_CHECK_H
#define QC_CHECK_H

#include "image.h"

/*
 * Check the image behind io.  Returns 0 and *out when the model was built
 * (even if the image is garbage: see img->problems, img->aborted), or
 * -ENOMEM when not even the model could be allocated.  io stays owned by
 * the caller.
 */
int qc_check_run(struct qc_io *io, const struct qc_options *opt, struct qc_image **out);
void qc_image_free(struct qc_image *img);

/* Exit code of a finished check: 0, 1, 2, 3 or 63 (doc/contracts.md §2). */
int qc_check_exit_code(const struct qc_image *img);

/* Mark the check as not completable (exit 1) with a reason. */
void qc_abort(struct qc_image *img, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * True when [off, off+len) reaches past the end of the file by a whole
 * cluster or more (QEMU's rule: up to one cluster of overhang is tolerated,
 * because the last compressed cluster may end past EOF), or starts at or
 * past the end of the file (stricter than QEMU: nothing of it is stored).
 */
bool qc_past_eof(const struct qc_image *img, uint64_t off, uint64_t len);

/*
 * Claim [off, off+len) for owner `o`, adding nref references to every
 * cluster it touches.  Reports an overlap (naming both owners) when a
 * cluster already belongs to an owner it may not be shared with; `loc`
 * says where the claim comes from (offset of the pointer, guest range,
 * snapshot).  The caller has checked qc_past_eof() and reported its own
 * problem if so; clusters past the map are ignored.
 * Returns false only when memory ran out (the check is then aborted).
 */
bool qc_claim(struct qc_image *img, uint64_t off, uint64_t len, enum qc_owner o, uint64_t nref,
	      struct qc_loc loc);

/*
 * Contested clusters: those two structures claim that may not share them.
 * qc_claim() notes every cluster it reports an overlap on; a pass that
 * reports an overlap itself notes the range with qc_note_contested().
 * qc_contested() (valid once the check has ended) says whether any
 * cluster of [off, off+len) is contested; true when the list overflowed.
 */
void qc_note_contested(struct qc_image *img, uint64_t off, uint64_t len);
bool qc_contested(const struct qc_image *img, uint64_t off, uint64_t len);
/* Sort and de-duplicate the contested list (the pass runner, once, after
 * the passes). */
void qc_settle_contested(struct qc_image *img);

/*
 * The memory budget (--max-mem, opt.mem_cap): the cluster map and every
 * allocation whose size comes from the image share it.  qc_mem_reserve()
 * takes n bytes of it, false when that would pass the cap (the caller then
 * aborts the check: exit 1); qc_mem_release() gives them back when the
 * allocation is freed.  Fixed working buffers (a few MiB, whatever the
 * image) are not counted.
 */
bool qc_mem_reserve(struct qc_image *img, uint64_t n);
void qc_mem_release(struct qc_image *img, uint64_t n);
/*
 * Allocate n bytes (zeroed) of the budget, or abort the check naming
 * `what` ("memory cap reached: ..." or "out of memory: ...") and return
 * NULL.  qc_budget_realloc() grows a block from old to n bytes the same
 * way (the old block stays valid on failure).  qc_budget_free() frees a
 * block and gives its n bytes back.
 */
void *qc_budget_alloc(struct qc_image *img, uint64_t n, const char *what);
void *qc_budget_realloc(struct qc_image *img, void *p, uint64_t old, uint64_t n, const char *what);
/* qc_grow() (core/util.h) under the budget: room for element n of an
 * array of *cap elements of elem bytes, doubling (first elements the first
 * time); NULL after aborting the check, p still valid. */
void *qc_budget_grow(struct qc_image *img, void *p, size_t *cap, size_t n, size_t elem,
		     size_t first, const char *what);
void qc_budget_free(struct qc_image *img, void *p, uint64_t n);

/*
 * Budget hooks for what is built beside the passes on the same budget:
 * the problem list (core/problems.h) and the repair plan (repair/plan.h).
 * ctx is the image.  A refusal ends the run: the check is aborted with
 * "memory cap reached: ..." (exit 1).
 */
bool qc_budget_hook_problems(void *img, uint64_t n);
bool qc_budget_hook_plan(void *img, uint64_t n);
void qc_budget_hook_release(void *img, uint64_t n);

/* Read len bytes of metadata at off into a new buffer (all inside the file
 * or NULL with *err = -EIO, or other -errno).  len is reserved from the
 * memory budget; free the buffer with qc_free_meta(). */
void *qc_read_meta(struct qc_image *img, uint64_t off, size_t len, int *err);
void qc_free_meta(struct qc_image *img, void *buf, size_t len);

/* Passes, in the order check.c runs them. Each documents its contract. */
/* What a file that is not qcow2 is: "empty file", "VMDK", "raw or unknown"... (sniff.c) */
const char *qc_sniff_format(struct qc_io *io, uint64_t file_size);

void qc_pass_header(struct qc_image *img);      /* header.c */
void qc_pass_extensions(struct qc_image *img);  /* extensions.c */
void qc_pass_snapshot_table(struct qc_image *img); /* snapshots.c */
void qc_pass_reftable(struct qc_image *img);    /* refcounts.c: reftable + refblock claims */
void qc_pass_luks(struct qc_image *img);        /* luks.c */
void qc_pass_bitmaps(struct qc_image *img);     /* bitmaps.c */
void qc_pass_tables(struct qc_image *img);      /* tables.c: active + snapshot L1/L2 walk */
/* Test hook: false makes tables.c take every L2 entry through the entry
 * classifier and claim data clusters one at a time (no fast paths), and
 * refcounts.c compare every cluster from a copy of the map (not its
 * entries in place); the model and report must not change
 * (tests/unit/test_walk_diff.c). */
extern bool qc_walk_fast_paths;
void qc_pass_vmstate(struct qc_image *img);     /* vmstate.c */
void qc_pass_refcounts(struct qc_image *img);   /* refcounts.c: stored vs computed */
void qc_pass_copied(struct qc_image *img);      /* copied.c: OFLAG_COPIED */
void qc_pass_deep(struct qc_image *img);        /* deep.c: decompression (--deep) */

/*
 * deepwalk.c: the compressed descriptors of every L1 table (the ones the
 * walk claimed), handed to fn in batches of at most batch_max, each sorted
 * by host offset; the batches come in a fixed order (by L2 table offset),
 * so the sequence depends only on the image and batch_max.  fn returns
 * false to stop.  Runs after the tables pass.  Returns false when it
 * stopped (fn, or the check aborted: I/O error, memory).  Memory held:
 * qc_compressed_batch_mem() (reserved from the budget) plus 16 bytes per
 * followable L1 entry, whatever the number of compressed clusters.
 */
/*
 * --deep's pass run by the caller (opt.deep_later, check --digest): known,
 * when not NULL, holds the verdicts of the streams the digests of every
 * layer decompressed (qc_deep_known_note() gets those that did not give
 * exactly one cluster): a descriptor whose guest offset is below its
 * guest_end was read by those digests, so its verdict is taken from there
 * instead of decompressing it again; the others are verified as usual.
 * The report, its order and the counts are what qc_pass_deep() gives.
 */
struct qc_deep_known;
struct qc_deep_known *qc_deep_known_new(uint64_t guest_end);
/* A qc_lr_observer (checker/layer_read.h): thread-safe. */
void qc_deep_known_note(void *known, uint64_t host, uint64_t len, int res, const char *why,
			size_t produced);
/* False when it could not keep every verdict (then it must not be used). */
bool qc_deep_known_ok(const struct qc_deep_known *k);
void qc_deep_known_free(struct qc_deep_known *k);
void qc_deep_run(struct qc_image *img, struct qc_deep_known *known);

typedef bool (*qc_batch_fn)(void *ctx, struct qc_compressed_ref *refs, size_t n);
bool qc_compressed_batches(struct qc_image *img, size_t batch_max, qc_batch_fn fn, void *ctx);
uint64_t qc_compressed_batch_mem(const struct qc_image *img, size_t batch_max);
void qc_pass_stats(struct qc_image *img);       /* stats.c */
void qc_pass_snapfix(struct qc_image *img);     /* snapfix.c: what a repair does per snapshot */

/* snapfix.c: does the snapshot-table repair handle a code (its fixer in the
 * policy table), and
 * the name of a verdict ("kept", "fixed", "recovered", "dropped", "left"). */
bool qc_snapfix_handles(enum qc_code c);
const char *qc_snap_verdict_name(enum qc_snap_verdict v);

#endif
