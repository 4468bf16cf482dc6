/*
 * image.h - the model one check builds: header, geometry, extensions,
 * snapshot entries, the in-memory tables, the ownership map and the
 * problems found.  Passes (the files in checker/) fill it in order; the report
 * writers and the repair planner read it.
 *
 * Trust flags say which parts later passes may rely on: a pass whose
 * input was found unusable skips its work instead of guessing.
 */
#ifndef QC_IMAGE_H
#define QC_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/clustermap.h"
#include "../core/entry.h"
#include "../core/io.h"
#include "../core/problems.h"

struct qc_header {
	uint32_t magic;
	uint32_t version;
	uint64_t backing_file_offset;
	uint32_t backing_file_size;
	uint32_t cluster_bits;
	uint64_t size;
	uint32_t crypt_method;
	uint32_t l1_size;
	uint64_t l1_table_offset;
	uint64_t refcount_table_offset;
	uint32_t refcount_table_clusters;
	uint32_t nb_snapshots;
	uint64_t snapshots_offset;
	uint64_t incompatible_features;
	uint64_t compatible_features;
	uint64_t autoclear_features;
	uint32_t refcount_order;
	uint32_t header_length;
	uint8_t compression_type;
};

struct qc_feature_name {
	uint8_t type; /* 0 incompatible, 1 compatible, 2 autoclear */
	uint8_t bit;
	char name[47];
};

/* One header extension as found in the area (for info and duplicates). */
struct qc_ext_entry {
	uint32_t type;
	uint32_t length;   /* data bytes, without the 8-byte type/length header */
	uint64_t offset;   /* host offset of the type field */
};

#define QC_EXT_LIST_MAX 64 /* entries kept in qc_extensions.list */

struct qc_extensions {
	bool walked;       /* the area was walked (cluster size and header_length usable) */
	uint64_t area_start, area_end; /* [header_length, backing offset or cluster) */
	struct qc_ext_entry list[QC_EXT_LIST_MAX];
	unsigned nlist;    /* entries kept in list */
	unsigned ntotal;   /* extensions seen (may exceed nlist) */
	bool has_backing_format;
	char backing_format[17];
	bool has_feature_table;
	struct qc_feature_name *features;
	size_t nfeatures;
	bool has_bitmaps, bitmaps_valid;
	uint32_t nb_bitmaps;
	uint64_t bitmap_dir_size, bitmap_dir_offset;
	bool has_crypto, crypto_valid;
	uint64_t crypto_offset, crypto_length;
	bool has_data_file;
	char data_file[1024];
	unsigned nunknown; /* unknown extension types seen */
};

/*
 * What a repair would do with one snapshot entry (checker/snapfix.c
 * decides, repair/snaptable.c writes it; doc/repair.md "Snapshot tables").
 */
enum qc_snap_verdict {
	QC_SNAP_KEPT,      /* copied as it is */
	QC_SNAP_FIXED,     /* kept, some fields corrected from evidence */
	QC_SNAP_RECOVERED, /* kept, its lost L1 table found again */
	QC_SNAP_DROPPED,   /* removed: what it names is gone (or --drop-snapshot) */
	QC_SNAP_LEFT,      /* needs a fix the repair does not make (see the plan) */
};

struct qc_snap_fix {
	enum qc_snap_verdict verdict;
	char new_id[24];          /* "" = keep the ID */
	bool new_name;            /* the name was lost: "lost-<new id>" */
	uint64_t l1_table_offset; /* the values the rewritten entry holds */
	uint32_t l1_size;
	uint64_t disk_size;
	uint64_t vm_state_size;
	bool vm_dropped;          /* a VM state was there and is dropped */
	bool relayout;            /* the entry's bytes really hold extra, id, name of
				   * these sizes (found from the bytes, see snapfix.c) */
	uint32_t extra_size;
	uint16_t id_size, name_size;
	char rec_id[72];          /* the ID a relayout found (relayout only) */
	char what[320];           /* what changes, or why dropped / left */
};

/* One snapshot table entry as parsed (fields are raw unless noted). */
struct qc_snapshot {
	uint64_t entry_offset; /* host offset of the entry */
	uint64_t entry_size;   /* bytes, including padding */
	uint64_t l1_table_offset;
	uint32_t l1_size;
	uint16_t id_size, name_size;
	char *id, *name;       /* NUL-terminated copies (may contain odd bytes) */
	uint32_t date_sec, date_nsec;
	uint64_t vm_clock_nsec;
	uint32_t vm_state_size32;
	uint32_t extra_data_size;
	bool has_vm_state_size_large, has_disk_size, has_icount;
	uint64_t vm_state_size_large, disk_size_raw, icount;
	/* Derived */
	uint64_t vm_state_size; /* effective (large when present) */
	uint64_t disk_size;     /* effective (header size when absent) */
	bool parsed;            /* the entry could be read at all */
	bool l1_usable;         /* its L1 may be walked */
	/* Filled by the table walk for the vm_state pass */
	uint64_t vm_first_l1_index;    /* first L1 index holding vm_state */
	uint64_t vm_clusters_mapped;   /* clusters mapped inside [0, vm_state_size) */
	uint64_t vm_clusters_expected; /* ceil(vm_state_size / cluster) */
	uint64_t vm_clusters_past_end; /* clusters mapped past the vm_state end */
	uint64_t vm_first_hole;        /* vm_state-relative offset of the first hole, or QC_NO_OFFSET */
	uint64_t vm_first_past_end;    /* guest offset of the first cluster past the end, or QC_NO_OFFSET */
	struct qc_snap_fix fix;        /* checker/snapfix.c */
};

/* The snapshot table as a repair would rewrite it (checker/snapfix.c). */
struct qc_snap_plan {
	bool decided;      /* snapfix ran */
	bool rewrite;      /* the table needs rewriting */
	bool refused;      /* a rewrite is needed but not safe: see why */
	uint32_t count;    /* entries the new table holds */
	char why[240];     /* refusal reason, or what the table-level fix is */
	int why_code;      /* problem code the refusal is filed under (enum qc_code) */
	bool relink;       /* only the header changes: the table at relink_offset,
			    * relink_count entries (a lost table found, or entries
			    * past nb_snapshots) */
	uint64_t relink_offset;
	uint32_t relink_count;
	uint64_t tail_offset;  /* entries found past the counted ones, copied */
	uint64_t tail_bytes;   /* as they are after the rewritten entries */
	uint32_t tail_count;
	/* During snapfix.c only (NULL otherwise): the problem records of
	 * snapshot i are v[by_snap[k]] for k in [by_snap_start[i], [i+1]). */
	uint32_t *by_snap_start, *by_snap;
};

/* One compressed cluster descriptor, for --deep: deepwalk.c hands them to
 * deep.c in bounded batches.  Duplicates (shared L2 tables) appear once. */
struct qc_compressed_ref {
	uint64_t host_offset; /* first byte of the compressed stream */
	uint64_t length;      /* bytes the descriptor covers (nb_csectors*512 - offset%512) */
	uint64_t guest_offset;
	int32_t snapshot;     /* -1 when reached from the active L1 */
};

struct qc_stats {
	uint64_t total_clusters;
	uint64_t allocated_clusters;
	uint64_t fragmented_clusters;
	uint64_t compressed_clusters;
	uint64_t image_end_offset;
};

struct qc_options {
	bool deep;            /* decompress every compressed cluster */
	const char *drop_snapshot; /* repair --drop-snapshot=ID|NAME (snapfix.c) */
	size_t mem_cap;       /* bytes; 0 = no cap */
	unsigned jobs;        /* threads for --deep (0 or 1: one) */
	bool progress;        /* --progress: plain progress lines without a terminal */
	bool deep_later;      /* with deep: the check leaves --deep's pass to the caller,
			       * who runs qc_deep_run() (check --digest: after the digests,
			       * whose reads verify the clusters they decompress) */
};

/* Bits of qc_image.refblock_usable[] */
#define QC_RB_USABLE 1
#define QC_RB_PROVED 2

struct qc_image {
	struct qc_io *io;
	struct qc_options opt;
	uint64_t file_size;
	struct qc_problems problems;

	/* Header and geometry (valid when geometry_ok). */
	struct qc_header h;
	bool is_qcow2;       /* magic matched and version supported */
	const char *not_qcow2; /* when the file is not qcow2: what it is (static string) */
	bool geometry_ok;    /* cluster_bits, refcount_order and sizes usable */
	bool l1_ok;          /* active L1 offset/size usable */
	bool reftable_ok;    /* reftable offset/size usable */
	bool snapshot_table_ok;
	unsigned cluster_bits;
	uint64_t cluster_size;
	bool extended_l2;
	bool data_file;      /* external data file (incompat bit 2) */
	unsigned l2_entry_size;  /* 8 or 16 */
	unsigned l2_bits;        /* log2(entries per L2) */
	uint64_t l2_entries;
	unsigned refcount_bits;
	uint64_t refcount_max;
	unsigned refblock_bits;  /* log2(entries per refblock) */
	uint64_t l1_vm_state_index; /* size_to_l1(size) */
	uint8_t *header_cluster; /* first cluster (or less at EOF) */
	size_t header_cluster_len;
	char backing_file[1024];
	bool has_backing_file;

	struct qc_extensions ext;

	/* In-memory tables (NULL when unusable). */
	uint64_t *l1;            /* active L1, host-endian */
	uint64_t *reftable;      /* host-endian */
	uint64_t reftable_entries;
	/* Per reftable entry: QC_RB_USABLE when its refblock may be read
	 * (aligned, no reserved bits, inside the file), plus QC_RB_PROVED when
	 * its content is shaped like a refblock: most clusters of its range
	 * that the walk references have exactly that stored count (set by the
	 * compare pass; doc/repair.md "The refcount table").  refcounts.c
	 * fills it. */
	uint8_t *refblock_usable;
	/* What the walk added to the computed counts for the refcount
	 * structure itself (refcounts.c records it where it claims): a
	 * rebuild subtracts exactly this from the counts of the old reftable
	 * and refblocks (repair/refcounts.c, doc/design.md "The model"). */
	struct qc_self_claims {
		uint64_t reftable_off, reftable_bytes; /* range claimed; 0 bytes: none */
		uint64_t reftable_nref;  /* references added to each of its clusters */
		uint64_t refblock_nref;  /* references added to the cluster of every
					  * entry with refblock_usable[i] set */
		uint64_t refblocks;      /* entries claimed that way */
	} self_claims;
	/* References qc_claim() added per owner type, over all claims (clusters
	 * past the map are not added and not counted): what lets a test and the
	 * rebuild see that self_claims is the whole of the refcount structure's
	 * claims. */
	uint64_t claimed_refs[QC_OWN_COUNT];

	struct qc_snapshot *snapshots;
	uint32_t nsnapshots;     /* entries parsed (<= nb_snapshots) */
	uint64_t snapshot_table_size; /* bytes spanned by the parsed entries */
	struct qc_snap_plan snapfix;  /* checker/snapfix.c */

	/* deep.c: compressed clusters decompressed, per compression type
	 * (0 zlib, 1 zstd); a stream shared by several clusters counts for each */
	uint64_t deep_verified[2];

	struct qc_clustermap cmap;
	/* Bytes of the --max-mem budget held outside the cluster map (tables,
	 * lists, read buffers sized by the image); qc_mem_reserve() in budget.c.
	 * The map and these share opt.mem_cap. */
	uint64_t mem_held;
	/* Host clusters claimed by two structures that may not share them
	 * (every overlap-* finding), sorted and deduplicated once the check
	 * ends.  Past QC_MAX_CONTESTED the list stops growing and
	 * contested_overflow says it is incomplete.  The repair never edits a
	 * table in place inside such a cluster: the write would change the
	 * other structure too. */
	uint64_t *contested;
	size_t ncontested, contested_cap;
	bool contested_overflow;
	/* refcounts.c: clusters whose active-COPIED flags (tables.c) disagree
	 * with their computed count; copied.c's prefilter, valid if scanned */
	uint64_t copied_suspects;
	bool copied_scanned;
	/* refcounts.c: clusters looked at outside the usable refblocks (the
	 * allocated pages of the map only; complexity tests count them) */
	uint64_t refcount_uncovered_scanned;
	struct qc_stats stats;
	bool aborted;            /* check could not complete: exit 1 */
	char abort_reason[256];
};

#define QC_MAX_CONTESTED 65536

/* What the entry classifier (core/entry.h) needs of the image. */
static inline struct qc_entry_geom qc_entry_geom_of(const struct qc_image *img)
{
	return (struct qc_entry_geom){ img->cluster_bits, img->h.version < 3, img->extended_l2,
				       img->data_file };
}

/* Size of one L1 entry's guest span, log2. */
static inline unsigned qc_l1_shift(const struct qc_image *img)
{
	return img->cluster_bits + img->l2_bits;
}

#endif
