/*
 * overlay.c - the planned-writes view of an image (see overlay.h).  Each
 * read costs one read of the base plus a pass over the overlaid writes
 * (a snapshot-table rewrite plans a handful).
 */
#include "overlay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct span {
	uint64_t off;
	size_t len;
	const uint8_t *data;
};

struct overlay_io {
	struct qc_io io;
	struct qc_io *base;
	struct span *w;
	size_t n;
};

static long long ov_pread(struct qc_io *io, void *buf, size_t len, uint64_t off)
{
	struct overlay_io *o = (struct overlay_io *)io;
	if (off >= io->size)
		return 0;
	if (len > io->size - off)
		len = (size_t)(io->size - off);
	long long r = qc_io_read(o->base, buf, len, off);
	if (r < 0)
		return r;
	for (size_t i = 0; i < o->n; i++) {
		const struct span *s = &o->w[i];
		uint64_t a = s->off > off ? s->off : off;
		uint64_t e1 = s->off + s->len, e2 = off + len;
		uint64_t b = e1 < e2 ? e1 : e2;
		if (a < b)
			memcpy((uint8_t *)buf + (a - off), s->data + (a - s->off), (size_t)(b - a));
	}
	return (long long)len;
}

static int ov_pwrite(struct qc_io *io, const void *buf, size_t len, uint64_t off)
{
	(void)io, (void)buf, (void)len, (void)off;
	return -EROFS;
}

static int ov_truncate(struct qc_io *io, uint64_t len)
{
	(void)io, (void)len;
	return -EROFS;
}

static int ov_sync(struct qc_io *io)
{
	(void)io;
	return 0;
}

static void ov_close(struct qc_io *io)
{
	struct overlay_io *o = (struct overlay_io *)io;
	free(o->w);
	free(o);
}

/* Holes are not tracked: every byte may hold data (always a safe answer). */
static uint64_t ov_next_data(struct qc_io *io, uint64_t off)
{
	return off < io->size ? off : io->size;
}

static uint64_t ov_next_hole(struct qc_io *io, uint64_t off)
{
	(void)off;
	return io->size;
}

/* no map: a view of the base would miss the overlay's bytes */
static const struct qc_io_ops ov_ops = { ov_pread,     ov_pwrite,    ov_truncate, ov_sync,
					 ov_close,     ov_next_data, ov_next_hole, NULL };

struct qc_io *qc_io_overlay(struct qc_io *base, const struct qc_plan *p, size_t n)
{
	struct overlay_io *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->w = calloc(n ? n : 1, sizeof(*o->w));
	if (!o->w) {
		free(o);
		return NULL;
	}
	o->base = base;
	o->io.ops = &ov_ops;
	o->io.size = base->size;
	for (size_t i = 0; i < n && i < p->n; i++) {
		const struct qc_write *w = &p->w[i];
		if (w->phase == QC_PH_FINAL)
			continue;
		o->w[o->n++] = (struct span){ w->offset, w->len, w->data };
		if (w->offset + w->len > o->io.size)
			o->io.size = w->offset + w->len;
	}
	return &o->io;
}
