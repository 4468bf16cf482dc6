/*
 * pool.h - run n jobs on a pool of threads and hand their results back in
 * index order.  Workers take the lowest index not yet started, but never
 * one more than `window` ahead of the next result to emit, so at most
 * window + 1 results (the +1 being emitted) exist at once, whatever n is.
 */
#ifndef QC_POOL_H
#define QC_POOL_H

#include <stddef.h>

struct qc_pool_ops {
	/* In a worker thread: do job i, write its result into res. */
	void (*work)(void *ctx, size_t i, void *res);
	/* In the calling thread, in index order: consume (and free) result i. */
	void (*emit)(void *ctx, size_t i, void *res);
	/* In the calling thread, at least every 200 ms while waiting. */
	void (*tick)(void *ctx);
};

/* Returns 0, or -errno when no thread could be started or memory ran out. */
int qc_pool_run(size_t n, unsigned jobs, size_t window, size_t res_size,
		const struct qc_pool_ops *ops, void *ctx);

#endif
