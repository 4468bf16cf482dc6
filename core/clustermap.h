/*
 * clustermap.h - the typed ownership map: for every host cluster, who owns
 * it (enum qc_owner), how many references the walk counted, and whether an
 * active L2 entry referenced it with or without OFLAG_COPIED.
 *
 * Memory: charged 2 bytes per cluster, in pages of 64 Ki clusters
 * allocated only where a cluster is claimed, plus 16 bytes per cluster
 * referenced more than 1022 times.  So the cost is proportional to the
 * host clusters actually referenced, whatever the file's apparent size.  A
 * byte cap turns further growth into a failure the caller reports (exit
 * 1).  Held: a block of 512 clusters whose entries are all equal (a run of
 * data clusters claimed whole) is one value, so a page holds 1.3 KiB plus
 * 1 KiB per block that is not (clustermap.c).
 */
#ifndef QC_CLUSTERMAP_H
#define QC_CLUSTERMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qc_owner {
	QC_OWN_FREE = 0,
	QC_OWN_HEADER,
	QC_OWN_L1,          /* active L1 table */
	QC_OWN_L2,          /* L2 referenced by the active L1 (maybe by snapshots too) */
	QC_OWN_L2_INACTIVE, /* L2 referenced only by snapshot L1 tables */
	QC_OWN_REFTABLE,
	QC_OWN_REFBLOCK,
	QC_OWN_SNAPSHOT_TABLE,
	QC_OWN_SNAPSHOT_L1,
	QC_OWN_BITMAP_DIR,
	QC_OWN_BITMAP_TABLE,
	QC_OWN_BITMAP_DATA,
	QC_OWN_LUKS,
	QC_OWN_DATA,
	QC_OWN_COMPRESSED,
	QC_OWN_VMSTATE,
	QC_OWN_COUNT
};

/* Human/JSON name of an owner type ("active L2 table", ...). */
const char *qc_owner_name(enum qc_owner o);
/* True for types that several references may share (guest data, L2 tables). */
bool qc_owner_shareable(enum qc_owner o);

#define QC_CM_ACTIVE_COPIED 0x10u
#define QC_CM_ACTIVE_NOCOPIED 0x20u
/*
 * Both flags on a cluster with exactly one reference: the walk alone can
 * never leave that (one reference sets one flag), so checker/refcounts.c
 * uses it to record "the stored refcount is above 1" (an over-count, a
 * leak).  COPIED on such a cluster is part of the leak, not a separate
 * corruption (doc/copied.md); qc_cm_overcounted() reads the mark.
 */
#define QC_CM_OVERCOUNTED (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED)

struct qc_cm_page;

struct qc_clustermap {
	uint64_t nclusters;        /* index space: clusters [0, nclusters) */
	struct qc_cm_page **pages; /* nclusters / 65536 page pointers, lazily filled */
	uint64_t npages;
	/* exact counts for clusters past the inline limit */
	uint64_t *ov_keys, *ov_vals;
	size_t ov_cap, ov_used;
	size_t bytes;              /* memory in use */
	size_t cap_bytes;          /* 0 = no cap */
	const uint64_t *outside;   /* bytes held elsewhere under the same cap (or NULL) */
	bool over_cap;             /* set once an allocation was refused */
};

/* 0 or -ENOMEM / -EFBIG (the page directory itself is over the cap). */
int qc_cm_init(struct qc_clustermap *m, uint64_t nclusters, size_t cap_bytes);
void qc_cm_free(struct qc_clustermap *m);

/* Owner of a cluster (FREE when never claimed or out of range). */
enum qc_owner qc_cm_owner(const struct qc_clustermap *m, uint64_t cluster);
/* Reference count the walk computed. */
uint64_t qc_cm_count(const struct qc_clustermap *m, uint64_t cluster);
/* Flags (QC_CM_ACTIVE_*) of a cluster. */
unsigned qc_cm_flags(const struct qc_clustermap *m, uint64_t cluster);
/* One reference found, stored refcount above 1 (QC_CM_OVERCOUNTED). */
bool qc_cm_overcounted(const struct qc_clustermap *m, uint64_t cluster);

/*
 * Add nref references of type `o` to a cluster.  *prev receives the owner
 * it had before (FREE if none).  The stored owner becomes `o` when the
 * cluster was free, and L2_INACTIVE is upgraded to L2; otherwise the first
 * owner stays.  Returns false when memory could not be had (over_cap set).
 */
bool qc_cm_add(struct qc_clustermap *m, uint64_t cluster, enum qc_owner o, uint64_t nref,
	       enum qc_owner *prev);
bool qc_cm_set_flags(struct qc_clustermap *m, uint64_t cluster, unsigned flags);
/* Take nref references away (a repair planner dropping a pointer the walk
 * counted); the owner stays.  Saturates at 0. */
void qc_cm_sub(struct qc_clustermap *m, uint64_t cluster, uint64_t nref);
/* Replace the owner type of an already claimed cluster. */
void qc_cm_retype(struct qc_clustermap *m, uint64_t cluster, enum qc_owner o);

/*
 * Fast paths for the table walk and the refcount compare (tables.c,
 * refcounts.c, copied.c).  qc_cm_add_run adds nref references of owner `o`
 * and `flags` to the clusters [first, first+n) for as long as each one is
 * free or already owned by `o`, and returns how many it did: the caller
 * hands the cluster that stopped it to qc_claim (overlap report) and goes
 * on.  A return below n with over_cap set means memory ran out.
 * qc_cm_get_run copies n counts (and flags, if non-NULL) from `first`;
 * clusters never claimed or out of range read as 0.
 */
uint64_t qc_cm_add_run(struct qc_clustermap *m, uint64_t first, uint64_t n, enum qc_owner o,
		       uint64_t nref, unsigned flags);
void qc_cm_get_run(const struct qc_clustermap *m, uint64_t first, size_t n, uint64_t *counts,
		   uint8_t *flags);

/*
 * The raw 16-bit entries of clusters [first, first+n) when they lie in one
 * block (QC_CM_BLOCK_CLUSTERS, aligned) of an allocated page of the map,
 * else NULL (a page never allocated holds only free clusters with count 0;
 * a range across blocks or past the map: use qc_cm_get_run).  A block
 * whose entries are all equal is one value in the map: the n entries are
 * then written to scratch (n entries), which is returned.  For the
 * refcount compare, which reads them in place:
 * QC_CM_E_COUNT is the count unless it equals QC_CM_E_COUNT_BIG (the exact
 * count is then in the overflow table: ask qc_cm_count or qc_cm_get_run),
 * QC_CM_E_FLAGS the QC_CM_ACTIVE_* flags.
 */
const uint16_t *qc_cm_entries(const struct qc_clustermap *m, uint64_t first, size_t n,
			      uint16_t *scratch);
/* True when [first, first+n) lies in one block of an allocated page whose
 * entries are all one value, *value (never the overflow count): what
 * qc_cm_entries would copy, without the copy. */
bool qc_cm_uniform(const struct qc_clustermap *m, uint64_t first, size_t n, uint16_t *value);
/* Clusters per block of the map (clustermap.c). */
#define QC_CM_BLOCK_CLUSTERS 512u
#define QC_CM_E_COUNT(e) ((unsigned)(e) >> 6)
#define QC_CM_E_COUNT_BIG 1023u
#define QC_CM_E_FLAGS(e) ((unsigned)(e) & (QC_CM_ACTIVE_COPIED | QC_CM_ACTIVE_NOCOPIED))

/* Iterate allocated pages: calls fn for every cluster with count > 0 or an owner. */
typedef void (*qc_cm_visit_fn)(void *ctx, uint64_t cluster, enum qc_owner o, uint64_t count,
			       unsigned flags);
void qc_cm_foreach(const struct qc_clustermap *m, qc_cm_visit_fn fn, void *ctx);
/*
 * The first cluster >= from that lies in an allocated page of the map (so
 * may have an owner or a count), or nclusters when none does.  Clusters in
 * between are free with count 0.  A caller walking upwards with it costs
 * one step per page of the map, plus the mapped clusters it visits.
 */
uint64_t qc_cm_next_mapped(const struct qc_clustermap *m, uint64_t from);
/* Clusters per page of the map (a page is allocated whole). */
#define QC_CM_PAGE_CLUSTERS (UINT64_C(1) << 16)
/* Highest claimed cluster + 1 (0 if none). */
uint64_t qc_cm_end(const struct qc_clustermap *m);

#endif
