/*
 * progress.h - scan progress on stderr: a redrawn line on a terminal, or
 * (with --progress, when stderr is not a terminal) a plain line every few
 * seconds so CI watchdogs see life.  Nothing otherwise.
 */
#ifndef QC_PROGRESS_H
#define QC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define QC_PROGRESS_PLAIN_SECONDS 5

struct qc_scan_progress {
	bool tty, plain;
	uint64_t files, bytes;           /* totals */
	struct timespec start, last;
	bool drawn;
};

/* forced: --progress was given. */
void qc_scan_progress_init(struct qc_scan_progress *p, bool forced, uint64_t files, uint64_t bytes);
void qc_scan_progress_update(struct qc_scan_progress *p, uint64_t files_done, uint64_t bytes_done);
void qc_scan_progress_end(struct qc_scan_progress *p, uint64_t files_done, uint64_t bytes_done);
/* Seconds since init. */
double qc_scan_progress_elapsed(const struct qc_scan_progress *p);

#endif
