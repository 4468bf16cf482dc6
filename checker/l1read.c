/*
 * l1read.c - an L1 table read by data extent (l1read.h).
 */
#include "l1read.h"

#include "../core/reader.h"

bool qc_l1_read_extents(struct qc_image *img, uint64_t off, uint32_t size, uint8_t *chunk,
			uint32_t chunk_entries, qc_l1_run_fn run, qc_l1_gap_fn gap, void *ctx)
{
	uint64_t end = off + (uint64_t)size * 8;
	uint64_t *ent = (uint64_t *)(void *)chunk;
	uint32_t at = 0; /* entries [0, at) are done */
	while (at < size) {
		uint64_t d = qc_io_next_data(img->io, off + (uint64_t)at * 8);
		uint32_t a = d >= end || d >= img->io->size ? size : (uint32_t)((d - off) / 8);
		if (a < at)
			a = at;
		if (a > at && gap)
			gap(ctx, at, a);
		if (a >= size)
			break;
		uint64_t h = qc_io_next_hole(img->io, off + (uint64_t)a * 8);
		uint32_t b = h >= end ? size : (uint32_t)((h - off + 7) / 8);
		if (b <= a)
			b = a + 1;
		for (uint32_t c = a; c < b;) {
			uint32_t n = b - c < chunk_entries ? b - c : chunk_entries;
			if (qc_io_read(img->io, chunk, (size_t)n * 8, off + (uint64_t)c * 8) < 0) {
				qc_abort(img, "I/O error reading the L1 table at 0x%llx",
					 (unsigned long long)off);
				return false;
			}
			for (uint32_t k = 0; k < n; k++)
				ent[k] = qc_be64_at(chunk + 8 * (size_t)k);
			if (!run(ctx, ent, c, n))
				return false;
			c += n;
		}
		at = b;
	}
	return true;
}
