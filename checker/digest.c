/*
 * digest.c - the tree digest and the flat SHA-256 of one layer's guest
 * view (format: doc/digest.md).
 *
 * The guest view is cut into chunks of 64 MiB.  The main thread walks the
 * layer's L1 table in order: a chunk (or a run of chunks) whose L1 entries
 * are all empty becomes a zero run at once, without reading anything;
 * every other chunk goes into a ring of 2 x jobs + 2 slots that jobs - 1
 * worker threads and the main thread itself (while it waits for the
 * oldest chunk) take in order.  A chunk that turns out to hold no stored
 * byte is fed as a zero run too.  A worker maps its chunk (guestmap.c) in windows
 * of 4 MiB, reads the data (holes of a sparse file read as zeros without
 * reading: SEEK_DATA), decompresses compressed clusters, and hashes each
 * 64 KiB block (full stored blocks two at a time where the CPU has the SHA
 * extensions: core/sha256x2.c); a block with no stored byte gets the
 * precomputed hash of the zero block.  The main thread feeds the leaf hashes to the root
 * SHA-256 strictly in guest order.  Memory: per worker one window, one
 * cluster, two clusters of compressed input and small tables, whatever the
 * image size.  --flat is one thread (SHA-256 is sequential) and feeds a
 * zero buffer for zero runs: its cost is the virtual size.
 *
 * Relies on: the check having validated the geometry and the L1 table the
 * layer carries; layer_read.c for the bytes of each window (and which
 * 64 KiB blocks hold stored bytes).
 */
#include "digest.h"
#include "../core/mapguard.h"
#include "../core/sha256x2.h"
#include "layer_read.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK QC_DIGEST_BLOCK
#define WIN QC_LR_WIN
#define CHUNK (UINT64_C(64) << 20)
#define HPC (CHUNK / BLOCK)      /* leaf hashes per chunk */
#define MAX_JOBS 64
#define ZERO_BUF (1u << 20)

_Static_assert(QC_DIGEST_BLOCK == QC_LR_BLOCK, "one block size");

struct shared {
	const struct qc_layer *L;
	bool force;
	qc_lr_observer observe;
	void *observe_ctx;
	EVP_MD *sha;
	bool pairs;                   /* full stored blocks hashed two at a time */
	uint8_t zh[32], zh_short[32]; /* H(zero block), H(last short zero block) */
};

struct wctx {
	const struct shared *sh;
	struct qc_lr *lr;
	EVP_MD_CTX *md;
};

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static bool sha256(EVP_MD_CTX *c, const EVP_MD *sha, const void *p, size_t n, uint8_t out[32])
{
	return EVP_DigestInit_ex(c, sha, NULL) && EVP_DigestUpdate(c, p, n) &&
	       EVP_DigestFinal_ex(c, out, NULL);
}

static void wctx_free(struct wctx *w)
{
	if (!w)
		return;
	qc_lr_free(w->lr);
	EVP_MD_CTX_free(w->md);
	free(w);
}

static struct wctx *wctx_new(const struct shared *sh)
{
	struct wctx *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->sh = sh;
	w->lr = qc_lr_new(sh->L, sh->force, CHUNK);
	if (w->lr) {
		w->lr->observe = sh->observe;
		w->lr->observe_ctx = sh->observe_ctx;
	}
	w->md = EVP_MD_CTX_new();
	if (!w->lr || !w->md) {
		wctx_free(w);
		return NULL;
	}
	return w;
}

/*
 * The blocks of the window just filled, [0, wlen): their leaf hashes into
 * out (tree, root NULL) or the bytes into root (flat, zero the zero
 * block).  Mapped blocks are read here, so under the guard: a SIGBUS is
 * the file shrinking or failing under the mapping, an I/O error.
 */
static int hash_window(struct wctx *w, uint64_t wlen, uint8_t *out, EVP_MD_CTX *root,
		       const uint8_t *zero)
{
	const struct shared *sh = w->sh;
	const struct qc_lr *lr = w->lr;
	uint64_t held = UINT64_MAX; /* a full stored block waiting for its pair */
	for (uint64_t b = 0; b * BLOCK < wlen; b++) {
		uint64_t blen = min64(BLOCK, wlen - b * BLOCK);
		bool ok = true;
		if (root) {
			ok = EVP_DigestUpdate(root, lr->touched[b] ? qc_lr_block(lr, b) : zero,
					      (size_t)blen);
		} else if (lr->touched[b] && blen == BLOCK && sh->pairs) {
			if (held == UINT64_MAX) {
				held = b;
				continue;
			}
			qc_sha256x2(qc_lr_block(lr, held), qc_lr_block(lr, b), BLOCK,
				    out + held * 32, out + b * 32);
			held = UINT64_MAX;
		} else if (lr->touched[b]) {
			ok = sha256(w->md, sh->sha, qc_lr_block(lr, b), (size_t)blen, out + b * 32);
		} else {
			memcpy(out + b * 32, blen == BLOCK ? sh->zh : sh->zh_short, 32);
		}
		if (!ok) {
			snprintf(w->lr->msg, sizeof(w->lr->msg), "SHA-256 failed");
			return 1;
		}
	}
	if (held != UINT64_MAX &&
	    !sha256(w->md, sh->sha, qc_lr_block(lr, held), BLOCK, out + held * 32)) {
		snprintf(w->lr->msg, sizeof(w->lr->msg), "SHA-256 failed");
		return 1;
	}
	return 0;
}

static int hash_window_guarded(struct wctx *w, uint64_t g, uint64_t wlen, uint8_t *out,
			       EVP_MD_CTX *root, const uint8_t *zero)
{
	struct qc_mapguard guard;
	if (sigsetjmp(guard.jb, 0)) {
		qc_lr_unmap(w->lr);
		snprintf(w->lr->msg, sizeof(w->lr->msg),
			 "I/O error reading the data of guest offset 0x%llx: the image file shrank, or its device failed a read, while it was being read",
			 (unsigned long long)g);
		return 1;
	}
	if (!qc_mapguard_arm(&guard)) {
		snprintf(w->lr->msg, sizeof(w->lr->msg), "cannot guard the mapped reads");
		return 1;
	}
	int r = hash_window(w, wlen, out, root, zero);
	qc_mapguard_disarm(&guard);
	return r;
}

/* Leaf hashes of [g0, g1) into out (32 bytes per block).  *zero is set
 * when no block holds a stored byte: out is then left unwritten. */
static int hash_range(struct wctx *w, uint64_t g0, uint64_t g1, uint8_t *out, bool *zero)
{
	const struct shared *sh = w->sh;
	bool data = false; /* a window with data was seen */
	for (uint64_t g = g0; g < g1; g += WIN) {
		uint64_t wlen = min64(WIN, g1 - g);
		int r = qc_lr_fill(w->lr, g, wlen, g1);
		if (r)
			return r;
		bool any = false;
		for (uint64_t b = 0; b * BLOCK < wlen && !any; b++)
			any = w->lr->touched[b];
		if (!any && !data)
			continue; /* leading windows without data: written below if needed */
		for (uint64_t z = g0; !data && z < g; z += BLOCK) /* catch up on the skipped windows */
			memcpy(out + (z - g0) / BLOCK * 32, sh->zh, 32);
		data = true;
		r = hash_window_guarded(w, g, wlen, out + (g - g0) / BLOCK * 32, NULL, NULL);
		if (r)
			return r;
	}
	*zero = !data;
	return 0;
}

/* ---- the ring of chunks (tree digest) ---- */

struct item {
	uint64_t g0, g1;
	bool zero, done;
	int err;
	char msg[256];
	uint8_t *hashes; /* HPC x 32 bytes */
};

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv_work, cv_done;
	struct item *ring;
	uint64_t nring, head, tail, take;
	bool stop, all_produced;
};

struct worker {
	struct pool *p;
	struct wctx *w;
	pthread_t t;
	bool started;
};

/* Under p->mu: take the next chunk not yet taken and hash it (the lock is
 * dropped meanwhile).  False when there is none. */
static bool run_one(struct worker *wk)
{
	struct pool *p = wk->p;
	while (p->take < p->tail && p->ring[p->take % p->nring].zero)
		p->take++;
	if (p->stop || p->take == p->tail)
		return false;
	struct item *it = &p->ring[p->take % p->nring];
	p->take++;
	pthread_mutex_unlock(&p->mu);
	wk->w->lr->msg[0] = 0;
	bool zero = false;
	int r = hash_range(wk->w, it->g0, it->g1, it->hashes, &zero);
	pthread_mutex_lock(&p->mu);
	it->err = r;
	it->zero = zero; /* then fed as a zero run */
	if (r)
		memcpy(it->msg, wk->w->lr->msg, sizeof(it->msg));
	it->done = true;
	pthread_cond_signal(&p->cv_done); /* only the main thread waits on it */
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct pool *p = wk->p;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		if (run_one(wk))
			continue;
		if (p->all_produced)
			break;
		pthread_cond_wait(&p->cv_work, &p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* End of the zero run starting at chunk-aligned g, or g when [g, g+CHUNK) holds data. */
static uint64_t zero_run_end(const struct qc_layer *L, uint64_t g)
{
	uint64_t S = L->size;
	if (!L->img || !qc_gm_l1_empty(L, g, min64(CHUNK, S - g)))
		return g;
	unsigned shift = qc_l1_shift(L->img);
	if ((UINT64_C(1) << shift) >= CHUNK) {
		uint64_t j = (g >> shift) + 1;
		while (j < L->l1_size && !(L->l1[j] & UINT64_C(0x00fffffffffffe00)))
			j++;
		if (j >= L->l1_size || j > (S - 1) >> shift)
			return S;
		return j << shift;
	}
	uint64_t end = g + min64(CHUNK, S - g);
	while (end < S && qc_gm_l1_empty(L, end, min64(CHUNK, S - end)))
		end += min64(CHUNK, S - end);
	return end;
}

static bool feed_zero_hashes(EVP_MD_CTX *c, const struct shared *sh, const uint8_t *rep,
			     uint64_t g0, uint64_t g1)
{
	uint64_t nfull = g1 / BLOCK - g0 / BLOCK; /* g0 is block aligned */
	while (nfull) {
		uint64_t k = min64(nfull, HPC);
		if (!EVP_DigestUpdate(c, rep, (size_t)k * 32))
			return false;
		nfull -= k;
	}
	if (g1 % BLOCK)
		return EVP_DigestUpdate(c, sh->zh_short, 32);
	return true;
}

/* The ring of p, the zero-block hash row rep and each worker's context;
 * false when memory fails (what was had is freed by tree_free). */
static bool tree_alloc(struct pool *p, struct worker *wk, unsigned jobs,
		       const struct shared *sh, uint8_t **rep)
{
	*rep = malloc(HPC * 32);
	p->ring = calloc(p->nring, sizeof(*p->ring));
	if (!*rep || !p->ring)
		return false;
	for (uint64_t k = 0; k < HPC; k++)
		memcpy(*rep + k * 32, sh->zh, 32);
	for (uint64_t k = 0; k < p->nring; k++)
		if (!(p->ring[k].hashes = malloc(HPC * 32)))
			return false;
	for (unsigned k = 0; k < jobs; k++) {
		wk[k].p = p;
		if (!(wk[k].w = wctx_new(sh)))
			return false;
	}
	return true;
}

static void tree_free(struct pool *p, struct worker *wk, unsigned jobs, uint8_t *rep)
{
	for (unsigned k = 0; k < jobs; k++)
		wctx_free(wk[k].w);
	if (p->ring)
		for (uint64_t k = 0; k < p->nring; k++)
			free(p->ring[k].hashes);
	free(p->ring);
	free(rep);
}

/* Queue chunks from guest offset *g on while the ring has room: a zero run
 * as one item that needs no work, else up to CHUNK bytes for the workers.
 * Called with p->mu held. */
static void fill_ring(const struct qc_layer *L, struct pool *p, uint64_t *g)
{
	uint64_t S = L->size;
	while (p->tail - p->head < p->nring && *g < S) {
		struct item *it = &p->ring[p->tail % p->nring];
		uint64_t z = zero_run_end(L, *g);
		it->g0 = *g;
		it->zero = z > *g;
		it->g1 = it->zero ? z : min64(S, *g + CHUNK);
		it->done = it->zero;
		it->err = 0;
		*g = it->g1;
		p->tail++;
		if (!it->zero)
			pthread_cond_signal(&p->cv_work);
	}
}

/* Feed one finished item's block hashes to the root, in order: 0 or the
 * run's error code (res->error says why). */
static int consume(const struct item *it, EVP_MD_CTX *root, const struct shared *sh,
		   const uint8_t *rep, struct qc_digest_result *res)
{
	if (it->err) {
		memcpy(res->error, it->msg, sizeof(res->error));
		return it->err;
	}
	if (it->zero ? !feed_zero_hashes(root, sh, rep, it->g0, it->g1)
		     : !EVP_DigestUpdate(root, it->hashes,
					 (size_t)((it->g1 - it->g0 + BLOCK - 1) / BLOCK) * 32)) {
		snprintf(res->error, sizeof(res->error), "SHA-256 failed");
		return 1;
	}
	return 0;
}

/* The producer and in-order consumer (this thread also hashes, as
 * wk[0]); returns 0 or the first error. */
static int tree_run(const struct qc_layer *L, const struct qc_digest_opts *o, struct pool *p,
		    struct worker *wk, const struct shared *sh, const uint8_t *rep,
		    EVP_MD_CTX *root, struct qc_digest_result *res)
{
	int rc = 0;
	uint64_t g = 0;
	pthread_mutex_lock(&p->mu);
	while (!rc) {
		fill_ring(L, p, &g);
		if (p->head == p->tail)
			break;
		struct item *it = &p->ring[p->head % p->nring];
		while (!it->done)
			if (!run_one(&wk[0]))
				pthread_cond_wait(&p->cv_done, &p->mu);
		pthread_mutex_unlock(&p->mu);
		rc = consume(it, root, sh, rep, res);
		qc_progress_set(o->progress, o->progress_base + it->g1);
		pthread_mutex_lock(&p->mu);
		p->head++;
	}
	p->stop = rc != 0;
	p->all_produced = true;
	pthread_cond_broadcast(&p->cv_work);
	pthread_mutex_unlock(&p->mu);
	return rc;
}

static int tree(const struct qc_layer *L, const struct qc_digest_opts *o, struct shared *sh,
		EVP_MD_CTX *root, struct qc_digest_result *res)
{
	unsigned jobs = o->jobs < 1 ? 1 : o->jobs > MAX_JOBS ? MAX_JOBS : o->jobs;
	struct pool p = { .nring = 2 * (uint64_t)jobs + 2 };
	struct worker wk[MAX_JOBS];
	memset(wk, 0, sizeof(wk));
	uint8_t *rep = NULL;
	int rc = 1;
	if (tree_alloc(&p, wk, jobs, sh, &rep)) {
		pthread_mutex_init(&p.mu, NULL);
		pthread_cond_init(&p.cv_work, NULL);
		pthread_cond_init(&p.cv_done, NULL);
		/* the calling thread hashes too (wk[0]); jobs - 1 more threads */
		for (unsigned k = 1; k < jobs; k++)
			wk[k].started = pthread_create(&wk[k].t, NULL, worker_main, &wk[k]) == 0;
		rc = tree_run(L, o, &p, wk, sh, rep, root, res);
		for (unsigned k = 1; k < jobs; k++)
			if (wk[k].started)
				pthread_join(wk[k].t, NULL);
		for (unsigned k = 0; k < jobs; k++)
			res->unreadable_bytes += wk[k].w->lr->unreadable;
		pthread_cond_destroy(&p.cv_work);
		pthread_cond_destroy(&p.cv_done);
		pthread_mutex_destroy(&p.mu);
	}
	if (rc == 1 && !res->error[0])
		snprintf(res->error, sizeof(res->error), "out of memory");
	tree_free(&p, wk, jobs, rep);
	return rc;
}

static int flat(const struct qc_layer *L, const struct qc_digest_opts *o, struct shared *sh,
		EVP_MD_CTX *root, struct qc_digest_result *res)
{
	struct wctx *w = wctx_new(sh);
	uint8_t *zero = calloc(1, ZERO_BUF);
	int rc = 0;
	if (!w || !zero) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		rc = 1;
		goto out;
	}
	uint64_t S = L->size;
	for (uint64_t g = 0; g < S && !rc;) {
		uint64_t z = zero_run_end(L, g);
		if (z > g) {
			for (; g < z && !rc; g += min64(ZERO_BUF, z - g)) {
				if (!EVP_DigestUpdate(root, zero, (size_t)min64(ZERO_BUF, z - g)))
					rc = 1;
				qc_progress_set(o->progress, o->progress_base + g);
			}
			continue;
		}
		uint64_t cend = min64(S, g + CHUNK);
		for (; g < cend && !rc; g += WIN) {
			uint64_t wlen = min64(WIN, cend - g);
			rc = qc_lr_fill(w->lr, g, wlen, cend);
			if (!rc)
				rc = hash_window_guarded(w, g, wlen, NULL, root, zero);
		}
		g = cend;
		qc_progress_set(o->progress, o->progress_base + g);
	}
	if (rc)
		memcpy(res->error, w->lr->msg[0] ? w->lr->msg : "SHA-256 failed", sizeof(res->error));
	res->unreadable_bytes += w->lr->unreadable;
out:
	wctx_free(w);
	free(zero);
	return rc;
}

int qc_digest_layer(const struct qc_layer *L, const struct qc_digest_opts *o,
		    struct qc_digest_result *res)
{
	memset(res, 0, sizeof(*res));
	struct shared sh = { .L = L, .force = o->force, .observe = o->observe,
			     .observe_ctx = o->observe_ctx };
	const char *np = getenv("QCOW2FSCK_NO_SHA_PAIRS");
	sh.pairs = !(np && *np && strcmp(np, "0")) && qc_sha256x2_ok();
	EVP_MD_CTX *root = EVP_MD_CTX_new();
	sh.sha = EVP_MD_fetch(NULL, "SHA256", NULL);
	int rc = 1;
	if (!root || !sh.sha || !EVP_DigestInit_ex(root, sh.sha, NULL)) {
		snprintf(res->error, sizeof(res->error), "cannot set up SHA-256 (libcrypto)");
		goto out;
	}
	uint8_t *zero = calloc(1, BLOCK);
	bool ok = zero && sha256(root, sh.sha, zero, BLOCK, sh.zh) &&
		  sha256(root, sh.sha, zero, L->size % BLOCK, sh.zh_short) &&
		  EVP_DigestInit_ex(root, sh.sha, NULL);
	free(zero);
	if (!ok) {
		snprintf(res->error, sizeof(res->error), "cannot set up SHA-256 (libcrypto)");
		goto out;
	}
	if (!o->flat) {
		uint8_t head[sizeof(QC_DIGEST_TAG) + 8]; /* the tag, its NUL, be64(S) */
		memcpy(head, QC_DIGEST_TAG, sizeof(QC_DIGEST_TAG));
		for (int k = 0; k < 8; k++)
			head[sizeof(QC_DIGEST_TAG) + k] = (uint8_t)(L->size >> (56 - 8 * k));
		if (!EVP_DigestUpdate(root, head, sizeof(head))) {
			snprintf(res->error, sizeof(res->error), "SHA-256 failed");
			goto out;
		}
		rc = tree(L, o, &sh, root, res);
	} else {
		rc = flat(L, o, &sh, root, res);
	}
	if (!rc && !EVP_DigestFinal_ex(root, res->md, NULL)) {
		snprintf(res->error, sizeof(res->error), "SHA-256 failed");
		rc = 1;
	}
out:
	EVP_MD_free(sh.sha);
	EVP_MD_CTX_free(root);
	return rc;
}

void qc_digest_hex(const uint8_t md[32], char out[65])
{
	static const char hex[] = "0123456789abcdef";
	for (int k = 0; k < 32; k++) {
		out[2 * k] = hex[md[k] >> 4];
		out[2 * k + 1] = hex[md[k] & 15];
	}
	out[64] = 0;
}
