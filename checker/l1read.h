/*
 * l1read.h - read an L1 table by data extent of the file.
 *
 * Entries that lie in a hole of a sparse file, or past its end, are zeros:
 * they need no check, so they are neither read nor handed on, and an L1
 * table in a hole costs nothing (SECURITY.md, "Bounded time").  Used by the
 * table walk (tables.c) and --deep's own walk (deepwalk.c).  Relies on
 * qc_io_next_data / qc_io_next_hole (SEEK_DATA / SEEK_HOLE, core/io.h).
 */
#ifndef QC_L1READ_H
#define QC_L1READ_H

#include "check.h"

/* Entries [first, first + n) of the table, decoded to host order. */
typedef bool (*qc_l1_run_fn)(void *ctx, const uint64_t *ent, uint32_t first, uint32_t n);
/* Entries [from, to) lie in a hole (or past the end): all zero. */
typedef void (*qc_l1_gap_fn)(void *ctx, uint32_t from, uint32_t to);

/* The table at off of size entries (validated by the caller), in order;
 * chunk holds chunk_entries entries (8 bytes each) and bounds each read.
 * gap may be NULL.  False on an I/O error (the image is aborted) or when
 * run returns false. */
bool qc_l1_read_extents(struct qc_image *img, uint64_t off, uint32_t size, uint8_t *chunk,
			uint32_t chunk_entries, qc_l1_run_fn run, qc_l1_gap_fn gap, void *ctx);

#endif
