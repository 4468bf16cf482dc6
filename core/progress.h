/*
 * progress.h - progress on stderr for long reads (check --deep, digest).
 *
 * On a terminal: one line rewritten in place, at most 4 times a second,
 * with bytes done / total, the rate and an ETA.  With --progress and no
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
	double t0, last;
};

/* Start reporting `what` (a short static label) over total units of bytes.
 * requested: --progress was given.  f: stderr normally. */
void qc_progress_start(struct qc_progress *p, FILE *f, bool requested, const char *what,
		       uint64_t total);
/* Set the bytes done so far (prints when the interval has passed). */
void qc_progress_set(struct qc_progress *p, uint64_t done);
/* Finish: clears the terminal line; with --progress and no terminal, prints
 * a last plain line (always, so a short run still logs one). */
void qc_progress_end(struct qc_progress *p);

#endif
