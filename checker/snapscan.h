/*
 * snapscan.h - finding lost snapshot L1 tables and snapshot tables among
 * the leaked clusters (snapscan.c has the evidence rules and the cost).
 */
#ifndef QC_SNAPSCAN_H
#define QC_SNAPSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "image.h"

struct qc_snapscan {
	struct qc_image *img;
	bool ok;                /* the stored refcounts were read */
	uint64_t *excess;       /* clusters whose stored refcount exceeds the computed one, sorted */
	size_t nexcess;
	uint64_t *leaked;       /* of those, the ones nothing claims, sorted */
	size_t nleaked;
	uint8_t *l2buf;         /* one cluster, for L2 shape tests */
	/* clusters [void0, void1): the lost table the header names; a table
	 * found may meet them only by starting at allow (qc_snapscan_init_void) */
	uint64_t void0, void1, allow;
	uint64_t *vclaims;      /* claims taken back, one element each, sorted */
	size_t nvclaims;
	uint64_t mem;           /* bytes of the three lists held on --max-mem */
	/* work done, for the complexity test */
	uint64_t refblocks_read, clusters_read, entries_examined;
};

/* Read the stored refcounts once.  0, or -1 (no usable refcount
 * structure, I/O error or out of memory: sc->ok false, nothing is found). */
int qc_snapscan_init(struct qc_snapscan *sc, struct qc_image *img);
/*
 * The same for a search whose header table is lost: what the walk counted
 * because of the table the header names, [off, off + len), is taken back:
 * one reference for each of its clusters (snapshots.c's claim) and, for
 * each of its entries whose L1 table was walked, one for each of that
 * L1's clusters and one for each L2 table an entry of it names
 * (tables.c).  A cluster only those claims held is leaked again.  No table
 * found may meet [off, off + len) unless it starts where an entry of the
 * header's table starts a cluster with only ID-less entries before it (the
 * header's parse ran from garbage into the real table).
 */
int qc_snapscan_init_void(struct qc_snapscan *sc, struct qc_image *img, uint64_t off, uint64_t len);
void qc_snapscan_free(struct qc_snapscan *sc);

/* Where the header's table runs into another: the first entry after the
 * first that starts a cluster, every entry before it without an ID (QEMU
 * gives every snapshot one) and without a name.  QC_NO_OFFSET when there
 * is none. */
uint64_t qc_snapscan_resync_start(const struct qc_image *img);

/* Is every cluster of [off, off+len) leaked? */
bool qc_snapscan_leaked(const struct qc_snapscan *sc, uint64_t off, uint64_t len);
/* Does [off, off + n*8) hold a lost snapshot L1 table (snapscan.c)? */
bool qc_snapscan_l1_shaped(struct qc_snapscan *sc, uint64_t off, uint32_t n);
/* The leaked runs that hold a lost L1 table of n entries: how many (0, 1,
 * or 2 meaning "two or more"), the first two in found[]. */
unsigned qc_snapscan_find_l1(struct qc_snapscan *sc, uint32_t n, uint64_t found[2]);

/* Plausible entries at p (avail bytes), at most max, each with a lost or
 * empty L1: how many, *bytes they span (padded), *l1_clusters their L1s hold. */
uint32_t qc_snapscan_entries(struct qc_snapscan *sc, const uint8_t *p, uint64_t avail, uint32_t max,
			     uint64_t *bytes, uint64_t *l1_clusters);

struct qc_snapscan_table {
	uint64_t offset;
	uint32_t count;
	uint64_t bytes;
	uint64_t score;   /* leaked clusters it explains: its own and its L1 tables' */
};
/* The leaked cluster that starts the snapshot table explaining the most
 * leaked clusters (want entries at most, 0 = any): how many candidates
 * share the best score (0, 1, 2 = a tie), in best[]. */
unsigned qc_snapscan_find_table(struct qc_snapscan *sc, uint32_t want,
				struct qc_snapscan_table best[2]);

#endif
