/*
 * deep.c - `check --deep`: decompress every compressed cluster and report
 * the streams QEMU could not read (doc/digest.md "Reading" and
 * core/decompress.h give QEMU's acceptance rules; a plain check, like
 * qemu-img check, never decompresses, so a damaged stream passes while
 * reads and convert fail with EIO).
 *
 * Relies on deepwalk.c for the compressed descriptors of every L1 table
 * (the ones the walk claimed), in batches of at most DEEP_BATCH sorted by
 * host offset, on the header pass for the geometry and compression type,
 * and on core/decompress.c.
 *
 * Each batch is cut into windows of consecutive streams (at most
 * DEEP_WINDOW bytes, holes up to DEEP_GAP read through), so the payload is
 * read in large sequential runs.  opt.jobs threads (the calling thread is
 * one of them) take windows in order, each with its own read buffer and
 * decoder context; failures are collected with the index of their
 * descriptor and reported when the batch is done, sorted by that index, so
 * the report is the same whatever the number of threads (batches come in
 * a fixed order: deepwalk.c).  A thread decompresses the streams of its
 * window two at a time (qc_dc_run2: the zlib decoder interleaves two
 * decodes, which overlaps their table look-ups).
 * Memory, whatever the number of compressed clusters: the batch (DEEP_BATCH
 * descriptors of 32 bytes, 8 MiB) and per thread one window and two
 * clusters; the window shrinks so that all windows together stay within
 * 32 MiB; plus what deepwalk.c holds (16 bytes per followable L1 entry).
 * A window is mapped rather than read when the file allows it (core/io.h
 * qc_io_map: no copy of the payload), and decompressed under a SIGBUS
 * guard (core/mapguard.h): a fault there is an I/O error, as a failed
 * read is.
 */
#include "check.h"
#include "../core/decompress.h"
#include "../core/mapguard.h"
#include "../core/progress.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEEP_WINDOW (16u << 20) /* bytes read at once, at most */
#define DEEP_WINDOWS_TOTAL (32u << 20) /* all threads' windows together */
#define DEEP_GAP (1u << 20)     /* holes up to this size are read through */
#define DEEP_MAX_JOBS 64
/* descriptors per batch: one L2 table of 2 MiB clusters at most holds
 * this many; 8 MiB */
#define DEEP_BATCH ((size_t)1 << 18)

/* The same stream: same offset and length. */
static bool same_stream(const struct qc_compressed_ref *x, const struct qc_compressed_ref *y)
{
	return x->host_offset == y->host_offset && x->length == y->length;
}

/* Bytes of the descriptor's range that lie inside the file. */
static uint64_t clamped_len(const struct qc_image *img, const struct qc_compressed_ref *r)
{
	if (r->host_offset >= img->file_size)
		return 0;
	uint64_t room = img->file_size - r->host_offset;
	return r->length < room ? r->length : room;
}

/* Verdicts the digests found (qc_deep_run()): the streams that did not
 * give exactly one cluster, sorted by (host, len) before use. */
#define KNOWN_MAX 65536

struct known_v {
	uint64_t host, len;
	int res;
	const char *why;
	size_t produced;
};

struct qc_deep_known {
	pthread_mutex_t mu;
	uint64_t guest_end;
	struct known_v *v;
	size_t n, cap;
	bool overflow, sorted;
};

struct qc_deep_known *qc_deep_known_new(uint64_t guest_end)
{
	struct qc_deep_known *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	pthread_mutex_init(&k->mu, NULL);
	k->guest_end = guest_end;
	return k;
}

void qc_deep_known_free(struct qc_deep_known *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->mu);
	free(k->v);
	free(k);
}

bool qc_deep_known_ok(const struct qc_deep_known *k)
{
	return k && !k->overflow;
}

void qc_deep_known_note(void *ctx, uint64_t host, uint64_t len, int res, const char *why,
			size_t produced)
{
	struct qc_deep_known *k = ctx;
	pthread_mutex_lock(&k->mu);
	if (k->n == k->cap) {
		size_t ncap = k->cap ? k->cap * 2 : 64;
		struct known_v *nv = ncap <= KNOWN_MAX ? realloc(k->v, ncap * sizeof(*nv)) : NULL;
		if (!nv)
			k->overflow = true;
		else {
			k->v = nv;
			k->cap = ncap;
		}
	}
	if (k->n < k->cap)
		k->v[k->n++] = (struct known_v){ host, len, res, why, produced };
	pthread_mutex_unlock(&k->mu);
}

static int cmp_known(const void *a, const void *b)
{
	const struct known_v *x = a, *y = b;
	if (x->host != y->host)
		return x->host < y->host ? -1 : 1;
	return x->len < y->len ? -1 : x->len > y->len;
}

struct failure {
	size_t k; /* index in the sorted list */
	enum qc_dc_result res;
	const char *why; /* static strings of zlib / zstd / decompress.c */
	size_t produced;
};

struct deep {
	struct qc_image *img;
	struct qc_compressed_ref *refs; /* the batch, sorted by host offset */
	size_t n, next; /* next: first descriptor not yet taken */
	size_t win;
	pthread_mutex_t mu;
	struct failure *fail;
	size_t nfail, fail_cap;
	uint64_t verified, bytes_done, bytes_total;
	bool nomem, ioerr;
	int ioerr_errno; /* 0: a fault under the mapping */
	uint64_t ioerr_off;
	const struct qc_deep_known *known; /* or NULL */
};

/* Did the digests decompress this descriptor's stream? */
static bool covered(const struct deep *d, const struct qc_compressed_ref *r)
{
	return d->known && r->guest_offset != QC_NO_OFFSET && r->guest_offset < d->known->guest_end;
}

/* The digests' verdict on a stream they decompressed (one cluster unless noted). */
static enum qc_dc_result known_verdict(const struct deep *d, const struct qc_compressed_ref *r,
				       const char **why, size_t *produced)
{
	struct known_v key = { r->host_offset, r->length, 0, NULL, 0 };
	const struct known_v *f = d->known->n ? bsearch(&key, d->known->v, d->known->n,
							sizeof(key), cmp_known)
					      : NULL;
	if (!f) {
		*why = "";
		*produced = (size_t)d->img->cluster_size;
		return QC_DC_OK;
	}
	*why = f->why;
	*produced = f->produced;
	return (enum qc_dc_result)f->res;
}

struct worker {
	struct deep *d;
	uint8_t *buf, *out, *out2;
	/* the window's bytes: host offset src_off is at src (buf or a view) */
	const uint8_t *src;
	uint64_t src_off;
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
	struct qc_compressed_ref *refs = d->refs;
	if (d->next >= d->n || d->nomem || d->ioerr)
		return false;
	size_t a = d->next, b = a + 1;
	uint64_t lo = refs[a].host_offset, hi = lo + clamped_len(d->img, &refs[a]);
	/* a descriptor covers at most two clusters (4 MiB), so it fits */
	while (b < d->n) {
		uint64_t s = refs[b].host_offset, e = s + clamped_len(d->img, &refs[b]);
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

/* run_window() decompresses refs[k] of window [i, j) when this is true */
static bool needs_decode(const struct deep *d, size_t i, size_t k)
{
	const struct qc_compressed_ref *refs = d->refs;
	return clamped_len(d->img, &refs[k]) > 0 && (k == i || !same_stream(&refs[k - 1], &refs[k])) &&
	       !covered(d, &refs[k]);
}

/*
 * Stream k of window [i, j): with the next stream of the window that needs
 * decompressing, two at once (qc_dc_run2: the zlib decoder interleaves
 * them); that one's answer goes to *ak and the ahead_* outputs.
 */
static enum qc_dc_result decode(struct worker *w, size_t i, size_t k, size_t j, size_t *ak, enum qc_dc_result *ares, const char **awhy,
				size_t *aproduced, const char **why, size_t *produced)
{
	struct deep *d = w->d;
	const struct qc_compressed_ref *refs = d->refs;
	size_t cs = (size_t)d->img->cluster_size, k2 = k + 1;
	while (k2 < j && !needs_decode(d, i, k2))
		k2++;
	const uint8_t *in0 = w->src + (refs[k].host_offset - w->src_off);
	size_t len0 = (size_t)clamped_len(d->img, &refs[k]);
	if (k2 >= j)
		return qc_dc_run(w->dc, in0, len0, w->out, cs, produced, why);
	const uint8_t *in[2] = { in0, w->src + (refs[k2].host_offset - w->src_off) };
	const size_t inlen[2] = { len0, (size_t)clamped_len(d->img, &refs[k2]) };
	uint8_t *out[2] = { w->out, w->out2 };
	enum qc_dc_result res[2];
	size_t pr[2];
	const char *wh[2];
	qc_dc_run2(w->dc, in, inlen, out, cs, res, pr, wh);
	*ak = k2;
	*ares = res[1];
	*awhy = wh[1];
	*aproduced = pr[1];
	*why = wh[0];
	*produced = pr[0];
	return res[0];
}

/* A window's read failed at off: errno err, or 0 for a fault under the
 * mapping (core/mapguard.h).  The lowest offset is the one reported. */
static void io_error(struct deep *d, uint64_t off, int err)
{
	pthread_mutex_lock(&d->mu);
	if (!d->ioerr || off < d->ioerr_off) {
		d->ioerr_off = off;
		d->ioerr_errno = err;
	}
	d->ioerr = true;
	pthread_mutex_unlock(&d->mu);
}

static void decode_window(struct worker *w, size_t i, size_t j, uint64_t base, uint64_t end)
{
	struct deep *d = w->d;
	struct qc_image *img = d->img;
	struct qc_compressed_ref *refs = d->refs;
	enum qc_dc_result res = QC_DC_OK;
	const char *why = "";
	size_t produced = 0;
	uint64_t verified = 0;
	bool nomem = false;
	/* the stream decode() decoded next to the one it was asked for */
	size_t ahead_k = SIZE_MAX, ahead_produced = 0;
	enum qc_dc_result ahead_res = QC_DC_OK;
	const char *ahead_why = "";
	for (size_t k = i; k < j && !nomem; k++) {
		const struct qc_compressed_ref *r = &refs[k];
		uint64_t len = clamped_len(img, r);
		if (len == 0)
			continue; /* past EOF: the walk reports it */
		/* the same stream seen again (another guest offset): same verdict */
		if (k == i || !same_stream(&refs[k - 1], &refs[k])) {
			if (covered(d, r))
				res = known_verdict(d, r, &why, &produced);
			else if (k == ahead_k)
				res = ahead_res, why = ahead_why, produced = ahead_produced;
			else
				res = decode(w, i, k, j, &ahead_k, &ahead_res, &ahead_why,
					     &ahead_produced, &why, &produced);
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

/* decode_window() on a mapped window: false when reading it faulted */
static bool decode_mapped(struct worker *w, size_t i, size_t j, uint64_t base, uint64_t end)
{
	struct qc_mapguard g;
	if (sigsetjmp(g.jb, 0))
		return false;
	if (!qc_mapguard_arm(&g))
		return false;
	decode_window(w, i, j, base, end);
	qc_mapguard_disarm(&g);
	return true;
}

/*
 * Window [i, j): only the span of the streams the digests did not
 * decompress is read (all of the window without them), mapped when it
 * can be, else into buf.  False when it could not be read: the check
 * then stops (a fault leaves this worker's decoder context mid-stream).
 */
static bool run_window(struct worker *w, size_t i, size_t j, uint64_t base, uint64_t end)
{
	struct deep *d = w->d;
	struct qc_image *img = d->img;
	struct qc_compressed_ref *refs = d->refs;
	uint64_t lo = UINT64_MAX, hi = 0;
	for (size_t k = i; k < j; k++) {
		if (covered(d, &refs[k]))
			continue;
		uint64_t s = refs[k].host_offset, e = s + clamped_len(img, &refs[k]);
		lo = s < lo ? s : lo;
		hi = e > hi ? e : hi;
	}
	struct qc_io_view v;
	if (lo < hi && qc_mapguard_available() && qc_io_map(img->io, lo, (size_t)(hi - lo), &v) == 0) {
		w->src = v.p;
		w->src_off = lo;
		bool ok = decode_mapped(w, i, j, base, end);
		qc_io_unmap(&v);
		if (!ok)
			io_error(d, lo, 0);
		return ok;
	}
	long long r = lo < hi ? qc_io_read(img->io, w->buf + (lo - base), (size_t)(hi - lo), lo) : 0;
	if (r < 0) {
		io_error(d, lo, (int)-r);
		return false;
	}
	w->src = w->buf;
	w->src_off = base;
	decode_window(w, i, j, base, end);
	return true;
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
		if (!got || !run_window(w, i, j, base, end))
			break;
	}
	return NULL;
}

static int cmp_failure(const void *a, const void *b)
{
	const struct failure *x = a, *y = b;
	return x->k < y->k ? -1 : x->k > y->k;
}

struct deep_run {
	struct deep d;
	struct worker w[DEEP_MAX_JOBS];
	unsigned jobs;
	struct qc_progress pg;
	uint64_t verified;
	bool failed; /* nomem or I/O error: the check is aborted */
};

/* Verify one batch on the threads, then report its failures in order. */
static bool run_batch(void *ctx, struct qc_compressed_ref *refs, size_t n)
{
	struct deep_run *R = ctx;
	struct deep *d = &R->d;
	struct qc_image *img = d->img;
	d->refs = refs;
	d->n = n;
	d->next = 0;
	d->nfail = 0;
	d->verified = 0;
	for (unsigned t = 1; t < R->jobs; t++)
		R->w[t].started = pthread_create(&R->w[t].t, NULL, worker_main, &R->w[t]) == 0;
	worker_main(&R->w[0]);
	for (unsigned t = 1; t < R->jobs; t++)
		if (R->w[t].started)
			pthread_join(R->w[t].t, NULL);
	if (d->nomem) {
		qc_abort(img, "out of memory in the decompressor");
		R->failed = true;
		return false;
	}
	if (d->ioerr) {
		qc_abort(img, "I/O error reading compressed data at 0x%llx: %s", (unsigned long long)d->ioerr_off,
			 d->ioerr_errno ? strerror(d->ioerr_errno)
					: "the image file shrank, or its device failed a read, while it was being read");
		R->failed = true;
		return false;
	}
	if (d->nfail)
		qsort(d->fail, d->nfail, sizeof(*d->fail), cmp_failure);
	for (size_t k = 0; k < d->nfail; k++)
		report(img, &refs[d->fail[k].k], d->fail[k].res, d->fail[k].why, d->fail[k].produced);
	R->verified += d->verified;
	return true;
}

/* Bytes the descriptors cover (for the progress line's total). */
static bool add_bytes(void *ctx, struct qc_compressed_ref *refs, size_t n)
{
	struct deep_run *R = ctx;
	for (size_t k = 0; k < n; k++)
		R->d.bytes_total += clamped_len(R->d.img, &refs[k]);
	return true;
}

void qc_pass_deep(struct qc_image *img)
{
	if (!img->opt.deep_later)
		qc_deep_run(img, NULL);
}

void qc_deep_run(struct qc_image *img, struct qc_deep_known *known)
{
	/* with an external data file compressed clusters are invalid (the walk
	 * reports them) and their bytes are not in this file; no compressed
	 * cluster claimed: nothing to verify */
	if (!img->opt.deep || !img->is_qcow2 || !img->geometry_ok || img->aborted ||
	    img->problems.unsupported || img->h.compression_type > 1 || img->data_file ||
	    !img->claimed_refs[QC_OWN_COMPRESSED])
		return;
	struct deep_run *R = calloc(1, sizeof(*R));
	if (!R) {
		qc_abort(img, "out of memory for --deep");
		return;
	}
	unsigned jobs = img->opt.jobs < 1 ? 1 : img->opt.jobs;
	if (jobs > DEEP_MAX_JOBS)
		jobs = DEEP_MAX_JOBS;
	R->jobs = jobs;
	struct deep *d = &R->d;
	d->img = img;
	if (qc_deep_known_ok(known)) {
		if (known->n && !known->sorted)
			qsort(known->v, known->n, sizeof(*known->v), cmp_known);
		known->sorted = true;
		d->known = known;
	}
	d->win = DEEP_WINDOW;
	if (d->win > DEEP_WINDOWS_TOTAL / jobs)
		d->win = DEEP_WINDOWS_TOTAL / jobs;
	if (d->win < 2 * img->cluster_size)
		d->win = (size_t)(2 * img->cluster_size); /* one descriptor always fits */
	if (img->file_size < d->win)
		d->win = (size_t)img->file_size;
	/* per thread the read window, two clusters of output and the decoder
	 * (its zstd window is capped: core/decompress.h); the batch is
	 * reserved by deepwalk.c */
	uint64_t budget = jobs * ((uint64_t)d->win + 2 * img->cluster_size +
				  qc_dc_mem_bound(img->h.compression_type));
	if (!qc_mem_reserve(img, budget)) {
		qc_abort(img, "memory cap reached: --deep needs %llu bytes more than --max-mem leaves",
			 (unsigned long long)budget);
		free(R);
		return;
	}
	bool ok = true;
	for (unsigned t = 0; t < jobs && ok; t++) {
		R->w[t].d = d;
		R->w[t].buf = malloc(d->win ? d->win : 1);
		/* zeroed: the decoders below only count, yet copy matches */
		R->w[t].out = calloc(1, (size_t)img->cluster_size);
		R->w[t].out2 = calloc(1, (size_t)img->cluster_size);
		R->w[t].dc = qc_dc_new(img->h.compression_type);
		if (R->w[t].dc)
			qc_dc_discard(R->w[t].dc, true);
		ok = R->w[t].buf && R->w[t].out && R->w[t].out2 && R->w[t].dc;
	}
	if (!ok) {
		qc_abort(img, "out of memory for --deep");
		goto out;
	}
	pthread_mutex_init(&d->mu, NULL);
	qc_progress_start(&R->pg, stderr, img->opt.progress, "deep", 0);
	/* the total needs a pass over the L2 tables: only when it is shown */
	/* every descriptor adds at least one reference to a compressed claim,
	 * so a small image gets a small batch */
	size_t batch = DEEP_BATCH;
	if (img->claimed_refs[QC_OWN_COMPRESSED] < batch)
		batch = (size_t)img->claimed_refs[QC_OWN_COMPRESSED];
	if (R->pg.on && qc_compressed_batches(img, batch, add_bytes, R))
		R->pg.total = d->bytes_total;
	R->w[0].pg = &R->pg;
	if (!img->aborted && qc_compressed_batches(img, batch, run_batch, R) && !R->failed)
		img->deep_verified[img->h.compression_type] = R->verified;
	qc_progress_end(&R->pg);
	pthread_mutex_destroy(&d->mu);
out:
	for (unsigned t = 0; t < jobs; t++) {
		qc_dc_free(R->w[t].dc);
		free(R->w[t].out);
		free(R->w[t].out2);
		free(R->w[t].buf);
	}
	free(d->fail);
	qc_mem_release(img, budget);
	free(R);
}
