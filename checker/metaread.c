/*
 * metaread.c - bounded metadata reads: a structure's bytes read whole into
 * memory charged to the check's budget (budget.c).
 */
#include "check.h"

#include <errno.h>
#include <stdlib.h>

void *qc_read_meta(struct qc_image *img, uint64_t off, size_t len, int *err)
{
	if (!qc_mem_reserve(img, len)) {
		*err = -ENOMEM;
		return NULL;
	}
	void *buf = malloc(len ? len : 1);
	if (!buf) {
		qc_mem_release(img, len);
		*err = -ENOMEM;
		return NULL;
	}
	int r = qc_io_read_full(img->io, buf, len, off);
	if (r < 0) {
		qc_free_meta(img, buf, len);
		*err = r;
		return NULL;
	}
	*err = 0;
	return buf;
}

void qc_free_meta(struct qc_image *img, void *buf, size_t len)
{
	free(buf);
	qc_mem_release(img, len);
}
