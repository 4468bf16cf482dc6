/*
 * progress.c - scan progress on stderr (progress.h): files done out of the
 * total, bytes, elapsed time and an ETA from the byte rate so far.
 */
#include "progress.h"

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

void qc_scan_progress_init(struct qc_scan_progress *p, bool forced, uint64_t files, uint64_t bytes)
{
	p->tty = isatty(STDERR_FILENO);
	p->plain = !p->tty && forced;
	p->files = files;
	p->bytes = bytes;
	p->drawn = false;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->last = p->start;
}

double qc_scan_progress_elapsed(const struct qc_scan_progress *p)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return since(&p->start, &now);
}

static void mib(char *buf, size_t n, uint64_t b)
{
	snprintf(buf, n, "%.1f MiB", (double)b / 1048576.0);
}

static void draw(struct qc_scan_progress *p, uint64_t fd, uint64_t bd, double el, bool final)
{
	char a[32], b[32], eta[32] = "";
	mib(a, sizeof(a), bd);
	mib(b, sizeof(b), p->bytes);
	if (!final && bd > 0 && p->bytes > bd && el > 0.5) {
		double left = el * (double)(p->bytes - bd) / (double)bd;
		snprintf(eta, sizeof(eta), ", ETA %um%02us", (unsigned)(left / 60), (unsigned)left % 60);
	}
	fprintf(stderr, "%sscan: %" PRIu64 "/%" PRIu64 " files, %s/%s, %.1fs%s%s", p->tty ? "\r" : "",
		fd, p->files, a, b, el, eta, p->tty ? "\033[K" : "\n");
	fflush(stderr);
	p->drawn = true;
}

void qc_scan_progress_update(struct qc_scan_progress *p, uint64_t files_done, uint64_t bytes_done)
{
	if (!p->tty && !p->plain)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double gap = since(&p->last, &now);
	if (gap < (p->tty ? 0.2 : QC_PROGRESS_PLAIN_SECONDS))
		return;
	p->last = now;
	draw(p, files_done, bytes_done, since(&p->start, &now), false);
}

void qc_scan_progress_end(struct qc_scan_progress *p, uint64_t files_done, uint64_t bytes_done)
{
	if (!p->tty && !p->plain)
		return;
	draw(p, files_done, bytes_done, qc_scan_progress_elapsed(p), true);
	if (p->tty)
		fputc('\n', stderr);
}
