/*
 * progress.h - progress on stderr for long runs (check --deep, digest, scan).
 *
 * On a terminal: one line rewritten in place, at most 4 times a second,
 * with bytes done / total, the rate and an ETA (and, for scan, files done
 * / total).  With --progress and no
 * terminal: a plain line every 5 seconds (for CI logs).  Otherwise nothing.
 * Single-threaded: only the thread that owns the struct calls these.
 */
#ifndef QC_PROGRESS_H
#define QC_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct qc_progress {
	bool on, tty, printed;
	FILE *f;
	const char *what;
	uint64_t total, done;
	bool files_on;                   /* count files too (qc_progress_files) */
	uint64_t files_total, files_done;
	double t0, last;
};

/* Start reporting `what` (a short static label) over total units of bytes.
 * requested: --progress was given.  f: stderr normally. */
void qc_progress_start(struct qc_progress *p, FILE *f, bool requested, const char *what,
		       uint64_t total);
/* Also show files done out of files_total (scan); call after start. */
void qc_progress_count_files(struct qc_progress *p, uint64_t files_total);
/* Set the files done so far; the next qc_progress_set prints it. */
void qc_progress_files(struct qc_progress *p, uint64_t files_done);
/* Set the bytes done so far (prints when the interval has passed). */
void qc_progress_set(struct qc_progress *p, uint64_t done);
/* Finish: clears the terminal line; with --progress and no terminal, prints
 * a last plain line (always, so a short run still logs one). */
void qc_progress_end(struct qc_progress *p);
/* Seconds since qc_progress_start. */
double qc_progress_elapsed(const struct qc_progress *p);

#endif
