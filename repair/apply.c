/*
 * apply.c - writing a plan's phases in order (see apply.h).  Relies on the
 * caller having written and fsync'd the journal first (journal.c).
 */
#include "apply.h"

int qc_apply_phases(struct qc_io *io, struct qc_plan *p, enum qc_phase first,
		    enum qc_phase last, size_t *done)
{
	int cur = -1;
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		if (w->phase < first || w->phase > last)
			continue;
		if (cur >= 0 && (int)w->phase != cur) {
			int r = qc_io_sync(io);
			if (r < 0)
				return r;
		}
		cur = (int)w->phase;
		int r = qc_io_write(io, w->data, w->len, w->offset);
		if (r < 0)
			return r;
		(*done)++;
		w->applied = true;
	}
	return qc_io_sync(io);
}
