/*
 * pool.c - the ordered worker pool (pool.h), with POSIX threads.  One
 * mutex guards the slot ring and the counters; workers wait on `space`
 * when they are `window` ahead, the emitter waits on `done`.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t space, done;
	size_t n, window, res_size;
	size_t next;      /* next job to start */
	size_t emitted;   /* results consumed */
	bool *ready;      /* per slot (index % window) */
	unsigned char *res;
	const struct qc_pool_ops *ops;
	void *ctx;
};

static void *worker(void *arg)
{
	struct pool *p = arg;
	void *local = malloc(p->res_size ? p->res_size : 1);
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->next < p->n && p->next >= p->emitted + p->window)
			pthread_cond_wait(&p->space, &p->mu);
		if (p->next >= p->n)
			break;
		size_t i = p->next++;
		pthread_mutex_unlock(&p->mu);
		/* Without a local buffer the slot itself is written: it is ours
		 * alone until ready is set. */
		void *dst = local ? local : p->res + (i % p->window) * p->res_size;
		memset(dst, 0, p->res_size);
		p->ops->work(p->ctx, i, dst);
		pthread_mutex_lock(&p->mu);
		if (local)
			memcpy(p->res + (i % p->window) * p->res_size, local, p->res_size);
		p->ready[i % p->window] = true;
		pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	free(local);
	return NULL;
}

int qc_pool_run(size_t n, unsigned jobs, size_t window, size_t res_size,
		const struct qc_pool_ops *ops, void *ctx)
{
	if (n == 0)
		return 0;
	if (jobs == 0)
		jobs = 1;
	if (jobs > n)
		jobs = (unsigned)n;
	if (window < jobs)
		window = jobs;
	struct pool p = { .n = n, .window = window, .res_size = res_size, .ops = ops, .ctx = ctx };
	p.ready = calloc(window, sizeof(bool));
	p.res = calloc(window, res_size ? res_size : 1);
	pthread_t *th = calloc(jobs, sizeof(*th));
	if (!p.ready || !p.res || !th) {
		free(p.ready);
		free(p.res);
		free(th);
		return -ENOMEM;
	}
	pthread_mutex_init(&p.mu, NULL);
	pthread_cond_init(&p.space, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p.done, &ca);
	pthread_condattr_destroy(&ca);
	unsigned started = 0;
	int rc = 0;
	for (; started < jobs; started++) {
		int e = pthread_create(&th[started], NULL, worker, &p);
		if (e) {
			if (started == 0)
				rc = -e;
			break;
		}
	}
	if (started > 0) {
		void *out = malloc(res_size ? res_size : 1);
		pthread_mutex_lock(&p.mu);
		while (p.emitted < n) {
			size_t slot = p.emitted % window;
			if (!p.ready[slot]) {
				struct timespec ts;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				ts.tv_nsec += 200 * 1000000L;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&p.done, &p.mu, &ts);
				if (!p.ready[slot] && ops->tick) {
					pthread_mutex_unlock(&p.mu);
					ops->tick(ctx);
					pthread_mutex_lock(&p.mu);
				}
				continue;
			}
			size_t i = p.emitted;
			void *r = p.res + slot * res_size;
			if (out) {
				memcpy(out, r, res_size);
				p.ready[slot] = false;
				p.emitted++;
				pthread_cond_broadcast(&p.space);
				pthread_mutex_unlock(&p.mu);
				ops->emit(ctx, i, out);
			} else {
				/* Emit from the slot; free it afterwards. */
				pthread_mutex_unlock(&p.mu);
				ops->emit(ctx, i, r);
				pthread_mutex_lock(&p.mu);
				p.ready[slot] = false;
				p.emitted++;
				pthread_cond_broadcast(&p.space);
				pthread_mutex_unlock(&p.mu);
			}
			if (ops->tick)
				ops->tick(ctx);
			pthread_mutex_lock(&p.mu);
		}
		pthread_mutex_unlock(&p.mu);
		free(out);
		for (unsigned t = 0; t < started; t++)
			pthread_join(th[t], NULL);
	}
	pthread_cond_destroy(&p.space);
	pthread_cond_destroy(&p.done);
	pthread_mutex_destroy(&p.mu);
	free(p.ready);
	free(p.res);
	free(th);
	return rc;
}
