/*
 * util.c - the generic helpers of util.h.
 */
#include "util.h"

#include <stdlib.h>

int qc_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

size_t qc_sort_unique_u64(uint64_t *v, size_t n)
{
	if (n < 2)
		return n;
	qsort(v, n, sizeof(uint64_t), qc_cmp_u64);
	size_t u = 0;
	for (size_t k = 0; k < n; k++)
		if (!u || v[u - 1] != v[k])
			v[u++] = v[k];
	return u;
}

size_t qc_lower_bound_u64(const uint64_t *v, size_t n, uint64_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool qc_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

bool qc_grow_cap(size_t cap, size_t n, size_t elem, size_t first, size_t *ncap)
{
	size_t c = cap ? cap : first ? first : 1;
	while (c <= n) {
		if (c > SIZE_MAX / 2)
			return false;
		c *= 2;
	}
	if (!elem || c > SIZE_MAX / elem)
		return false;
	*ncap = c;
	return true;
}

void *qc_grow(void *v, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return v;
	size_t ncap;
	if (!qc_grow_cap(*cap, n, elem, first, &ncap))
		return NULL;
	void *nv = realloc(v, ncap * elem);
	if (!nv)
		return NULL;
	*cap = ncap;
	return nv;
}
