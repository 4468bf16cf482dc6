/*
 * discover.h - the list of files a scan checks: PATH operands and
 * --files-from names, directories searched recursively, sorted by path,
 * each file once.  doc/scan.md "Discovery" gives the rules for symlinks.
 */
#ifndef QC_DISCOVER_H
#define QC_DISCOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct qc_scan_file {
	char *path;
	uint64_t size;        /* bytes (st_size; block devices: their size) */
	dev_t dev;
	ino_t ino;
	int err;              /* errno when the name could not be examined, else 0 */
	bool dir_error;       /* err is about reading a directory */
};

struct qc_scan_list {
	struct qc_scan_file *v;
	size_t n, cap;
	uint64_t links_skipped;   /* symlinks met inside directories */
	uint64_t special_skipped; /* sockets, FIFOs, devices met inside directories */
	uint64_t loops_skipped;   /* directories already on the walk's path */
	uint64_t duplicates;      /* names of a file already listed (dropped) */
};

/* Add one operand (file, block device or directory).  Returns 0, or
 * -ENOMEM.  Names that cannot be examined become entries with err set. */
int qc_discover_add(struct qc_scan_list *l, const char *path);
/* Add every name listed in FILE ("-" = stdin), one per line. */
int qc_discover_files_from(struct qc_scan_list *l, const char *file, char *err, size_t errlen);
/* Sort by path and drop later names of the same file. */
void qc_discover_finish(struct qc_scan_list *l);
void qc_discover_free(struct qc_scan_list *l);

/*
 * Shard assignment: out[i] = the shard (0..nshards-1) of file i.  Files
 * are taken by weight (size + 64 KiB) descending, ties by path, each given
 * to the lightest shard so far (ties: lowest index).  The result depends
 * only on the set of (path, size), so every runner computes the same
 * partition.  Returns false on OOM.
 */
bool qc_shard_assign(const struct qc_scan_file *v, size_t n, unsigned nshards, unsigned *out);

#endif
