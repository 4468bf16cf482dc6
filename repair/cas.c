/*
 * cas.c - the old bytes of planned writes, and the check that the image
 * still holds them (see cas.h).  Relies on the plan being sorted (the
 * order writes are applied in) and on qc_io_read zero-filling past EOF.
 */
#include "cas.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int qc_plan_record_old(struct qc_plan *p, struct qc_io *io)
{
	for (size_t i = 0; i < p->n; i++) {
		struct qc_write *w = &p->w[i];
		free(w->old);
		w->old = malloc(w->len ? w->len : 1);
		if (!w->old)
			return -ENOMEM;
		long long got = qc_io_read(io, w->old, w->len, w->offset);
		if (got < 0)
			return (int)got;
	}
	return 0;
}

static bool in_range(const struct qc_write *w, enum qc_phase first, enum qc_phase last)
{
	return w->phase >= first && w->phase <= last;
}

int qc_cas_check(struct qc_io *io, const struct qc_plan *p, size_t i, enum qc_phase first,
		 enum qc_phase last)
{
	const struct qc_write *w = &p->w[i];
	if (!w->old)
		return -ESTALE;
	uint8_t *now = malloc(w->len ? w->len : 1);
	if (!now)
		return -ENOMEM;
	long long got = qc_io_read(io, now, w->len, w->offset);
	int r = got < 0 ? (int)got : 0;
	if (r == 0 && memcmp(now, w->old, w->len)) {
		/* rare (the corrupt bit after the dirty bit): lay the earlier
		 * overlapping writes over the old bytes and compare again */
		uint8_t *want = malloc(w->len ? w->len : 1);
		if (!want) {
			free(now);
			return -ENOMEM;
		}
		memcpy(want, w->old, w->len);
		uint64_t end = w->offset + w->len;
		for (size_t j = 0; j < i; j++) {
			const struct qc_write *e = &p->w[j];
			if (!e->applied && !in_range(e, first, last))
				continue;
			uint64_t s0 = e->offset > w->offset ? e->offset : w->offset;
			uint64_t e0 = e->offset + e->len < end ? e->offset + e->len : end;
			if (s0 < e0)
				memcpy(want + (s0 - w->offset), e->data + (s0 - e->offset), (size_t)(e0 - s0));
		}
		r = memcmp(now, want, w->len) ? -ESTALE : 0;
		free(want);
	}
	free(now);
	return r;
}
