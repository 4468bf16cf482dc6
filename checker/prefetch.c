/*
 * prefetch.c - read a pass's sorted metadata runs ahead on helper threads
 * (prefetch.h).  Run number s always goes to slot s % nslots; a helper
 * takes run s only once the consumer has released run s - nslots, and the
 * consumer waits for slot s % nslots to hold run s, ready; while it waits
 * it takes and fills the next untaken run itself when a slot is free (so
 * with --jobs=2 both cores read and decode).  The runs are
 * described by the pass's `next` under the lock, so they come in order;
 * only the reads and `prep` run concurrently, on different slots.
 */
#include "prefetch.h"

#include <pthread.h>
#include <stdlib.h>

#define NO_SEQ UINT64_MAX

struct qc_prefetch {
	struct qc_io *io;
	qc_pf_next_fn next;
	qc_pf_prep_fn prep;
	void *ctx;
	unsigned nslots, nthreads;
	struct qc_pf_slot slots[QC_PF_SLOTS_MAX];
	pthread_t threads[QC_PF_SLOTS_MAX];
	pthread_mutex_t mu;
	pthread_cond_t ready_cv, space_cv;
	uint64_t taken;     /* runs handed out by next() */
	uint64_t consumed;  /* runs released by the consumer */
	uint64_t total;     /* run count once next() said "no more", else NO_SEQ */
	bool stop;
};

bool qc_pf_add(struct qc_pf_run *run, uint64_t off, size_t len, size_t bufmax)
{
	if (run->next) {
		struct qc_pf_extent *e = &run->ext[run->next - 1];
		if (off >= e->off && off - e->off <= e->len && len <= e->len - (off - e->off))
			return true; /* inside the last extent */
		if (len > bufmax - run->len)
			return false;
		if (off == e->off + e->len) {
			e->len += len;
			run->len += len;
			return true;
		}
		if (run->next == QC_PF_EXTENTS_MAX)
			return false;
	} else if (len > bufmax) {
		return false;
	}
	run->ext[run->next++] = (struct qc_pf_extent){ off, len };
	run->len += len;
	return true;
}

size_t qc_pf_at(const struct qc_pf_run *run, uint64_t off)
{
	size_t pos = 0;
	for (unsigned i = 0; i < run->next; i++) {
		if (off >= run->ext[i].off && off - run->ext[i].off < run->ext[i].len)
			return pos + (size_t)(off - run->ext[i].off);
		pos += run->ext[i].len;
	}
	return pos; /* not in the run: the caller's bug */
}

/* Read run into slot, extent by extent, and prepare it (no lock held). */
static void fill(struct qc_prefetch *p, struct qc_pf_slot *s)
{
	size_t pos = 0;
	s->err = 0;
	for (unsigned i = 0; i < s->run.next; i++) {
		const struct qc_pf_extent *e = &s->run.ext[i];
		long long n = qc_io_read(p->io, s->buf + pos, e->len, e->off);
		if (n < 0) {
			s->err = (int)n;
			s->err_off = e->off;
			return;
		}
		pos += e->len;
	}
	if (p->prep)
		p->prep(p->ctx, &s->run, s->buf, s->aux);
}

/* Under the lock: hand out the next run to a slot, false at the end. */
static bool take(struct qc_prefetch *p, struct qc_pf_slot **out)
{
	struct qc_pf_run run;
	run.next = 0;
	run.len = 0;
	if (p->total != NO_SEQ || !p->next(p->ctx, &run)) {
		p->total = p->taken;
		return false;
	}
	struct qc_pf_slot *s = &p->slots[p->taken % p->nslots];
	s->run = run;
	s->seq = p->taken++;
	s->ready = false;
	*out = s;
	return true;
}

static void *helper(void *arg)
{
	struct qc_prefetch *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->total == NO_SEQ && p->taken - p->consumed >= p->nslots)
			pthread_cond_wait(&p->space_cv, &p->mu);
		struct qc_pf_slot *s;
		if (p->stop || !take(p, &s)) {
			pthread_cond_broadcast(&p->ready_cv);
			break;
		}
		pthread_mutex_unlock(&p->mu);
		fill(p, s);
		pthread_mutex_lock(&p->mu);
		s->ready = true;
		pthread_cond_broadcast(&p->ready_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct qc_prefetch *qc_pf_start(struct qc_io *io, unsigned jobs, size_t bufmax, size_t auxsize,
				qc_pf_next_fn next, qc_pf_prep_fn prep, void *ctx)
{
	struct qc_prefetch *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->io = io;
	p->next = next;
	p->prep = prep;
	p->ctx = ctx;
	p->total = NO_SEQ;
	/* one slot more than threads, so that a helper rarely waits for the
	 * consumer to free one */
	p->nslots = jobs <= 1 ? 1 : jobs + 1 > QC_PF_SLOTS_MAX ? QC_PF_SLOTS_MAX : jobs + 1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->ready_cv, NULL);
	pthread_cond_init(&p->space_cv, NULL);
	for (unsigned i = 0; i < p->nslots; i++) {
		p->slots[i].seq = NO_SEQ;
		p->slots[i].buf = malloc(bufmax ? bufmax : 1);
		p->slots[i].aux = auxsize ? malloc(auxsize) : NULL;
		if (!p->slots[i].buf || (auxsize && !p->slots[i].aux)) {
			p->nslots = i + 1;
			qc_pf_stop(p);
			return NULL;
		}
	}
	unsigned want = jobs > QC_PF_SLOTS_MAX ? QC_PF_SLOTS_MAX - 1 : jobs - 1;
	for (unsigned i = 0; jobs > 1 && i < want; i++) {
		if (pthread_create(&p->threads[i], NULL, helper, p) != 0)
			break;
		p->nthreads++;
	}
	return p;
}

struct qc_pf_slot *qc_pf_get(struct qc_prefetch *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t want = p->consumed;
	struct qc_pf_slot *s = &p->slots[want % p->nslots];
	if (!p->nthreads) {
		/* no helper: read it here */
		struct qc_pf_slot *t = NULL;
		bool got = take(p, &t);
		pthread_mutex_unlock(&p->mu);
		if (!got)
			return NULL;
		fill(p, t);
		t->ready = true;
		return t;
	}
	while (!(s->seq == want && s->ready) && !(p->total != NO_SEQ && want >= p->total)) {
		/* rather than wait, read (and prepare) the next run nobody
		 * has taken, if a slot is free: the helpers alone are the
		 * bottleneck when the consumer's work is the lighter part */
		struct qc_pf_slot *t = NULL;
		if (!p->stop && p->taken - p->consumed < p->nslots && take(p, &t)) {
			pthread_mutex_unlock(&p->mu);
			fill(p, t);
			pthread_mutex_lock(&p->mu);
			t->ready = true;
			continue;
		}
		pthread_cond_wait(&p->ready_cv, &p->mu);
	}
	bool have = s->seq == want && s->ready;
	pthread_mutex_unlock(&p->mu);
	return have ? s : NULL;
}

void qc_pf_release(struct qc_prefetch *p)
{
	pthread_mutex_lock(&p->mu);
	p->slots[p->consumed % p->nslots].ready = false;
	p->consumed++;
	pthread_cond_broadcast(&p->space_cv);
	pthread_mutex_unlock(&p->mu);
}

void qc_pf_stop(struct qc_prefetch *p)
{
	if (!p)
		return;
	if (p->nthreads) {
		pthread_mutex_lock(&p->mu);
		p->stop = true;
		pthread_cond_broadcast(&p->space_cv);
		pthread_mutex_unlock(&p->mu);
		for (unsigned i = 0; i < p->nthreads; i++)
			pthread_join(p->threads[i], NULL);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->ready_cv);
	pthread_cond_destroy(&p->space_cv);
	for (unsigned i = 0; i < p->nslots; i++) {
		free(p->slots[i].buf);
		free(p->slots[i].aux);
	}
	free(p);
}
