/*
 * util.h - small generic helpers every layer shares: sorting,
 * de-duplicating and searching u64 arrays, testing a buffer for zeros, and growing an
 * array by doubling.  No qcow2 knowledge here.
 */
#ifndef QC_UTIL_H
#define QC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* qsort comparator for uint64_t. */
int qc_cmp_u64(const void *a, const void *b);

/* Sort v[0..n) and drop repeats; returns the new length. */
size_t qc_sort_unique_u64(uint64_t *v, size_t n);

/* In v[0..n) sorted ascending: the first index whose value is at least x,
 * or n when every value is below x.  O(log n). */
size_t qc_lower_bound_u64(const uint64_t *v, size_t n, uint64_t x);

/* True when all n bytes at p are zero (true for n == 0). */
bool qc_all_zero(const void *p, size_t n);

/*
 * Room for element n of an array v of *cap elements of elem bytes: v
 * itself when n < *cap, else v reallocated to twice the capacity (first
 * elements the first time) with *cap updated.  NULL when memory runs out
 * or the size would overflow; v is then still valid and *cap unchanged.
 * Use:  T *nv = qc_grow(a->v, &a->cap, a->n, sizeof(*nv), 16);
 *       if (!nv) { ...oom... } a->v = nv;
 */
void *qc_grow(void *v, size_t *cap, size_t n, size_t elem, size_t first);

/* The capacity qc_grow() would move to (first, doubled until above n),
 * without allocating: false when elements of elem bytes would overflow. */
bool qc_grow_cap(size_t cap, size_t n, size_t elem, size_t first, size_t *ncap);

#endif
