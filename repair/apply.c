/*
 * apply.c - writing a plan's phases in order (see apply.h).  Relies on the
 * caller having written and fsync'd the journal first (journal.c), and on
 * every write carrying the bytes it replaces (cas.h).
 */
#include "apply.h"
#include "cas.h"

int qc_apply_phases(struct qc_io *io, struct qc_plan *p, enum qc_phase first,
		    enum qc_phase last, size_t *done)
{
	/* a sync between phases, and between rounds (repair.c: round k was
	 * planned on the image as the rounds before leave it) */
	long cur = -1;
	/* compare first: refuse before the first write if any region changed */
	for (size_t i = 0; i < p->n; i++) {
		const struct qc_write *w = &p->w[i];
		if (w->phase < first || w->phase > last)
			continue;
		int r = qc_cas_check(io, p, i, first, last);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		if (w->phase < first || w->phase > last)
			continue;
		/* and again right before the swap */
		int r = qc_cas_check(io, p, i, first, last);
		if (r < 0)
			return r;
		long key = (long)w->round * QC_PH_COUNT + (long)w->phase;
		if (cur >= 0 && key != cur) {
			r = qc_io_sync(io);
			if (r < 0)
				return r;
		}
		cur = key;
		r = qc_io_write(io, w->data, w->len, w->offset);
		if (r < 0)
			return r;
		(*done)++;
		w->applied = true;
	}
	return qc_io_sync(io);
}
