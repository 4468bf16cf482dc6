/*
 * mapguard.c - the SIGBUS guard of mapped reads (see mapguard.h).
 *
 * Relies on: the handler running on the faulting thread (SIGBUS from a
 * memory access is synchronous), a thread-local pointer to the innermost
 * armed guard, and siglongjmp leaving the handler (SA_NODEFER keeps
 * SIGBUS unblocked, so no mask needs restoring).
 */
#include "mapguard.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

static _Thread_local struct qc_mapguard *current;
static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool installed;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	struct qc_mapguard *g = current;
	if (g && si && si->si_code > 0) { /* a fault, not a kill(2) */
		current = g->outer;
		siglongjmp(g->jb, 1);
	}
	/* not ours: what was there before, then the signal again */
	if (previous.sa_flags & SA_SIGINFO) {
		if (previous.sa_sigaction) {
			previous.sa_sigaction(sig, si, uc);
			return;
		}
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
		return;
	}
	sigaction(SIGBUS, &previous, NULL);
	if (!si || si->si_code <= 0)
		raise(sig);
	/* a fault: returning runs the access again, under the old action */
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	installed = sigaction(SIGBUS, &sa, &previous) == 0;
}

bool qc_mapguard_available(void)
{
	pthread_once(&once, install);
	return installed;
}

bool qc_mapguard_arm(struct qc_mapguard *g)
{
	if (!qc_mapguard_available())
		return false;
	g->outer = current;
	current = g;
	return true;
}

void qc_mapguard_disarm(struct qc_mapguard *g)
{
	current = g->outer;
}
