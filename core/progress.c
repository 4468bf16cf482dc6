/*
 * progress.c - the progress line (see progress.h).  Relies only on
 * isatty() and CLOCK_MONOTONIC; never prints when stderr is not a terminal
 * unless --progress asked for plain lines.
 */
#include "progress.h"

#include <inttypes.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL 0.25
#define PLAIN_INTERVAL 5.0

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void human(char *buf, size_t n, double v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	int u = 0;
	while (v >= 1024 && u < 6) {
		v /= 1024;
		u++;
	}
	snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

void qc_progress_start(struct qc_progress *p, FILE *f, bool requested, const char *what,
		       uint64_t total)
{
	*p = (struct qc_progress){ 0 };
	p->f = f;
	p->tty = isatty(fileno(f)) == 1;
	p->on = p->tty || requested;
	p->what = what;
	p->total = total;
	p->t0 = p->last = now();
}

static void print(struct qc_progress *p, double t)
{
	char d[32], tot[32], rate[32], eta[32] = "--";
	double el = t - p->t0, r = el > 0 ? p->done / el : 0;
	human(d, sizeof(d), (double)p->done);
	human(tot, sizeof(tot), (double)p->total);
	human(rate, sizeof(rate), r);
	if (r > 0 && p->total >= p->done) {
		double s = (p->total - p->done) / r + 0.999; /* round up */
		snprintf(eta, sizeof(eta), "%d:%02d:%02d", (int)(s / 3600), (int)(s / 60) % 60,
			 (int)s % 60);
	}
	int pct = p->total ? (int)(p->done * 100.0 / p->total) : 100;
	char files[48] = "";
	if (p->files_on)
		snprintf(files, sizeof(files), " %" PRIu64 "/%" PRIu64 " files,", p->files_done,
			 p->files_total);
	fprintf(p->f, "%s%s:%s %s / %s (%d%%), %s/s, ETA %s%s", p->tty ? "\r" : "", p->what, files,
		d, tot, pct, rate, eta, p->tty ? "\033[K" : "\n");
	fflush(p->f);
	p->printed = true;
}

void qc_progress_count_files(struct qc_progress *p, uint64_t files_total)
{
	p->files_on = true;
	p->files_total = files_total;
}

void qc_progress_files(struct qc_progress *p, uint64_t files_done)
{
	if (p)
		p->files_done = files_done;
}

double qc_progress_elapsed(const struct qc_progress *p)
{
	return now() - p->t0;
}

void qc_progress_set(struct qc_progress *p, uint64_t done)
{
	if (!p || !p->on)
		return;
	p->done = done;
	double t = now();
	if (t - p->last < (p->tty ? TTY_INTERVAL : PLAIN_INTERVAL))
		return;
	p->last = t;
	print(p, t);
}

void qc_progress_end(struct qc_progress *p)
{
	if (!p || !p->on)
		return;
	if (p->tty && p->printed) {
		fputs("\r\033[K", p->f);
		fflush(p->f);
	} else if (!p->tty) {
		p->done = p->total;
		print(p, now());
	}
	p->on = false;
}
