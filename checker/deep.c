/*
 * deep.c - `check --deep`: decompress every compressed cluster and report
 * the streams QEMU could not read (doc/digest.md "Reading" and
 * core/decompress.h give QEMU's acceptance rules; a plain check, like
 * qemu-img check, never decompresses, so a damaged stream passes while
 * reads and convert fail with EIO).
 *
 * Relies on the table walk (tables.c) having listed every compressed
 * descriptor in img->compressed (only when opt.deep is set), on the header
 * pass for the geometry and compression type, and on core/decompress.c.
 *
 * The list is sorted by host offset and cut into windows of consecutive
 * streams (at most DEEP_WINDOW bytes, holes up to DEEP_GAP read through),
 * so the payload is read once, in large sequential runs.  opt.jobs threads
 * (the calling thread is one of them) take windows in order, each with its
 * own read buffer and decoder context; failures are collected with the
 * index of their descriptor and reported after the threads end, sorted by
 * that index, so the report is the same whatever the number of threads.
 * Memory: 8 bytes per compressed cluster (the sorted index) + per thread
 * one window and one cluster; the window shrinks so that all windows
 * together stay within 32 MiB.
 */
#include "check.h"
#include "../core/decompress.h"
#include "../core/progress.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEEP_WINDOW (16u << 20) /* bytes read at once, at most */
#define DEEP_WINDOWS_TOTAL (32u << 20) /* all threads' windows together */
#define DEEP_GAP (1u << 20)     /* holes up to this size are read through */
#define DEEP_MAX_JOBS 64

static int cmp_ref(const void *a, const void *b)
{
	const struct qc_compressed_ref *x = *(const struct qc_compressed_ref *const *)a;
	const struct qc_compressed_ref *y = *(const struct qc_compressed_ref *const *)b;
	if (x->host_offset != y->host_offset)
		return x->host_offset < y->host_offset ? -1 : 1;
	if (x->length != y->length)
		return x->length < y->length ? -1 : 1;
	return 0;
}

/* Bytes of the descriptor's range that lie inside the file. */
static uint64_t clamped_len(const struct qc_image *img, const struct qc_compressed_ref *r)
{
	if (r->host_offset >= img->file_size)
		return 0;
	uint64_t room = img->file_size - r->host_offset;
	return r->length < room ? r->length : room;
}

struct failure {
	size_t k; /* index in the sorted list */
	enum qc_dc_result res;
	const char *why; /* static strings of zlib / zstd / decompress.c */
	size_t produced;
};

struct deep {
	struct qc_image *img;
	struct qc_compressed_ref **refs;
	size_t n, next; /* next: first descriptor not yet taken */
	size_t win;
	pthread_mutex_t mu;
	struct failure *fail;
	size_t nfail, fail_cap;
	uint64_t verified, bytes_done, bytes_total;
	bool nomem, ioerr;
	uint64_t ioerr_off;
};

struct worker {
	struct deep *d;
	uint8_t *buf, *out;
	struct qc_dc *dc;
	pthread_t t;
	bool started;
	struct qc_progress *pg; /* only the calling thread's worker */
};

static void report(struct qc_image *img, const struct qc_compressed_ref *r, enum qc_dc_result res,
		   const char *why, size_t produced)
{
	struct qc_loc loc = { r->host_offset, r->guest_offset, img->cluster_size, r->snapshot, NULL };
	const char *algo = img->h.compression_type ? "zstd" : "zlib";
	char where[48] = "";
	if (r->snapshot >= 0)
		snprintf(where, sizeof(where), " in snapshot %d", (int)r->snapshot);
	enum qc_code code;
	switch (res) {
	case QC_DC_INEXACT:
		code = QC_P_COMPRESSED_STREAM_INEXACT;
		break;
	case QC_DC_SHORT:
	case QC_DC_LONG:
		code = QC_P_COMPRESSED_STREAM_SIZE;
		break;
	case QC_DC_TRUNCATED:
		code = QC_P_COMPRESSED_STREAM_TRUNCATED;
		break;
	case QC_DC_WINDOW:
		code = QC_P_COMPRESSED_STREAM_WINDOW;
		break;
	default:
		code = QC_P_COMPRESSED_STREAM_INVALID;
		break;
	}
	qc_report(&img->problems, code, loc, 1,
		  "%s cluster at host 0x%llx (%llu bytes) for guest 0x%llx%s: %s (%zu of %llu bytes)",
		  algo, (unsigned long long)r->host_offset, (unsigned long long)r->length,
		  (unsigned long long)r->guest_offset, where, why, produced,
		  (unsigned long long)img->cluster_size);
}

/* Under d->mu: note a failure (false when memory ran out). */
static bool add_failure(struct deep *d, struct failure f)
{
	if (d->nfail == d->fail_cap) {
		size_t ncap = d->fail_cap ? d->fail_cap * 2 : 64;
		struct failure *nf = realloc(d->fail, ncap * sizeof(*nf));
		if (!nf)
			return false;
		d->fail = nf;
		d->fail_cap = ncap;
	}
	d->fail[d->nfail++] = f;
	return true;
}

/* Under d->mu: take the next window [*i, *j); false when none is left. */
static bool take_window(struct deep *d, size_t *i, size_t *j, uint64_t *base, uint64_t *end)
{
	struct qc_compressed_ref **refs = d->refs;
	if (d->next >= d->n || d->nomem || d->ioerr)
		return false;
	size_t a = d->next, b = a + 1;
	uint64_t lo = refs[a]->host_offset, hi = lo + clamped_len(d->img, refs[a]);
	/* a descriptor covers at most two clusters (4 MiB), so it fits */
	while (b < d->n) {
		uint64_t s = refs[b]->host_offset, e = s + clamped_len(d->img, refs[b]);
		if (e - lo > d->win || s > hi + DEEP_GAP)
			break;
		if (e > hi)
			hi = e;
		b++;
	}
	d->next = b;
	*i = a;
	*j = b;
	*base = lo;
	*end = hi;
	return true;
}

static void run_window(struct worker *w, size_t i, size_t j, uint64_t base, uint64_t end)
{
	struct deep *d = w->d;
	struct qc_image *img = d->img;
	struct qc_compressed_ref **refs = d->refs;
	if (end > base && qc_io_read(img->io, w->buf, (size_t)(end - base), base) < 0) {
		pthread_mutex_lock(&d->mu);
		if (!d->ioerr || base < d->ioerr_off)
			d->ioerr_off = base;
		d->ioerr = true;
		pthread_mutex_unlock(&d->mu);
		return;
	}
	enum qc_dc_result res = QC_DC_OK;
	const char *why = "";
	size_t produced = 0;
	uint64_t verified = 0;
	bool nomem = false;
	for (size_t k = i; k < j && !nomem; k++) {
		const struct qc_compressed_ref *r = refs[k];
		uint64_t len = clamped_len(img, r);
		if (len == 0)
			continue; /* past EOF: the walk reports it */
		/* the same stream seen again (another guest offset): same verdict */
		if (k == i || cmp_ref(&refs[k - 1], &refs[k]) != 0) {
			res = qc_dc_run(w->dc, w->buf + (r->host_offset - base), (size_t)len, w->out,
					(size_t)img->cluster_size, &produced, &why);
			if (res == QC_DC_NOMEM) {
				nomem = true;
				break;
			}
		}
		verified++;
		if (res != QC_DC_OK) {
			pthread_mutex_lock(&d->mu);
			nomem = !add_failure(d, (struct failure){ k, res, why, produced });
			pthread_mutex_unlock(&d->mu);
		}
	}
	pthread_mutex_lock(&d->mu);
	d->verified += verified;
	d->bytes_done += end - base;
	d->nomem |= nomem;
	pthread_mutex_unlock(&d->mu);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct deep *d = w->d;
	for (;;) {
		size_t i, j;
		uint64_t base, end, done;
		pthread_mutex_lock(&d->mu);
		bool got = take_window(d, &i, &j, &base, &end);
		done = d->bytes_done;
		pthread_mutex_unlock(&d->mu);
		if (w->pg)
			qc_progress_set(w->pg, done);
		if (!got)
			break;
		run_window(w, i, j, base, end);
	}
	return NULL;
}

static int cmp_failure(const void *a, const void *b)
{
	const struct failure *x = a, *y = b;
	return x->k < y->k ? -1 : x->k > y->k;
}

/* Each thread's read window: DEEP_WINDOW, shared out of
 * DEEP_WINDOWS_TOTAL, never under two clusters (one descriptor always
 * fits) nor over the file. */
static size_t window_size(const struct qc_image *img, unsigned jobs)
{
	size_t win = DEEP_WINDOW;
	if (win > DEEP_WINDOWS_TOTAL / jobs)
		win = DEEP_WINDOWS_TOTAL / jobs;
	if (win < 2 * img->cluster_size)
		win = (size_t)(2 * img->cluster_size);
	if (img->file_size < win)
		win = (size_t)img->file_size;
	return win;
}

/* The sorted index of the descriptors and each worker's buffers and
 * decoder; false (aborted) when memory fails. */
static bool prepare(struct deep *d, struct worker *w, unsigned jobs)
{
	struct qc_image *img = d->img;
	d->refs = calloc(d->n, sizeof(*d->refs));
	bool ok = d->refs != NULL;
	for (unsigned t = 0; t < jobs && ok; t++) {
		w[t].d = d;
		w[t].buf = malloc(d->win ? d->win : 1);
		w[t].out = malloc((size_t)img->cluster_size);
		w[t].dc = qc_dc_new(img->h.compression_type);
		ok = w[t].buf && w[t].out && w[t].dc;
	}
	if (!ok) {
		qc_abort(img, "out of memory for --deep");
		return false;
	}
	for (size_t k = 0; k < d->n; k++) {
		d->refs[k] = &img->compressed[k];
		d->bytes_total += clamped_len(img, &img->compressed[k]);
	}
	qsort(d->refs, d->n, sizeof(*d->refs), cmp_ref);
	return true;
}

/* Decompress everything: this thread and jobs - 1 more. */
static void run_workers(struct deep *d, struct worker *w, unsigned jobs)
{
	struct qc_progress pg;
	qc_progress_start(&pg, stderr, d->img->opt.progress, "deep", d->bytes_total);
	w[0].pg = &pg;
	pthread_mutex_init(&d->mu, NULL);
	for (unsigned t = 1; t < jobs; t++)
		w[t].started = pthread_create(&w[t].t, NULL, worker_main, &w[t]) == 0;
	worker_main(&w[0]);
	for (unsigned t = 1; t < jobs; t++)
		if (w[t].started)
			pthread_join(w[t].t, NULL);
	pthread_mutex_destroy(&d->mu);
	qc_progress_end(&pg);
}

/* The failures, reported in image order, or why the pass could not end. */
static void conclude(struct deep *d)
{
	struct qc_image *img = d->img;
	if (d->nomem) {
		qc_abort(img, "out of memory in the decompressor");
	} else if (d->ioerr) {
		qc_abort(img, "cannot read compressed data at 0x%llx", (unsigned long long)d->ioerr_off);
	} else {
		if (d->nfail)
			qsort(d->fail, d->nfail, sizeof(*d->fail), cmp_failure);
		for (size_t k = 0; k < d->nfail; k++)
			report(img, d->refs[d->fail[k].k], d->fail[k].res, d->fail[k].why,
			       d->fail[k].produced);
		img->deep_verified[img->h.compression_type] = d->verified;
	}
}

void qc_pass_deep(struct qc_image *img)
{
	/* with an external data file compressed clusters are invalid (the walk
	 * reports them) and their bytes are not in this file */
	if (!img->opt.deep || !img->geometry_ok || img->ncompressed == 0 ||
	    img->h.compression_type > 1 || img->data_file)
		return;
	unsigned jobs = img->opt.jobs < 1 ? 1 : img->opt.jobs;
	if (jobs > DEEP_MAX_JOBS)
		jobs = DEEP_MAX_JOBS;
	size_t n = img->ncompressed;
	struct deep d = { .img = img, .n = n, .win = window_size(img, jobs) };
	/* the sorted index, and per thread the read window, one cluster of
	 * output and the decoder (its zstd window is capped: core/decompress.h) */
	uint64_t budget = (uint64_t)n * sizeof(struct qc_compressed_ref *) +
			  jobs * ((uint64_t)d.win + img->cluster_size +
				  qc_dc_mem_bound(img->h.compression_type));
	if (!qc_mem_reserve(img, budget)) {
		qc_abort(img, "memory cap reached: --deep needs %llu bytes more than --max-mem leaves",
			 (unsigned long long)budget);
		return;
	}
	struct worker w[DEEP_MAX_JOBS];
	memset(w, 0, sizeof(w));
	if (prepare(&d, w, jobs)) {
		run_workers(&d, w, jobs);
		conclude(&d);
	}
	for (unsigned t = 0; t < jobs; t++) {
		qc_dc_free(w[t].dc);
		free(w[t].out);
		free(w[t].buf);
	}
	free(d.fail);
	free(d.refs);
	qc_mem_release(img, budget);
}
