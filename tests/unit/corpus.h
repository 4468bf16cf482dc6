/*
 * corpus.h - helpers the repair unit tests share (included, not linked:
 * each test is one file): load a corpus image into memory, damage
 * corpus/demo-leaks.qcow2 so that a repair plan has writes in every phase,
 * and run a check on a memory image.  Run the tests from the repository
 * root (make unit).  Needs <cmocka.h> and the checker headers first.
 */
#ifndef QC_TEST_CORPUS_H
#define QC_TEST_CORPUS_H

#include <stdio.h>
#include <stdlib.h>

#include "../../checker/check.h"
#include "../../core/reader.h"

static inline uint8_t *load(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	uint8_t *b = malloc(*len);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

static inline struct qc_image *check(struct qc_io *io)
{
	struct qc_options o = { 0 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(io, &o, &img), 0);
	return img;
}

/* demo-leaks (a snapshot, a leaked cluster) with a reftable entry with a
 * reserved bit (a rebuild), OFLAG_COPIED flipped in active L1[0], and the
 * dirty and corrupt bits: a plan with writes in every phase. */
static inline uint8_t *damaged(size_t *len)
{
	uint8_t *b = load("corpus/demo-leaks.qcow2", len);
	uint64_t rt = qc_be64_at(b + 48), l1 = qc_be64_at(b + 40);
	b[rt + 7] |= 1; /* reftable[0]: reserved bit 0 */
	b[l1] ^= 0x80;  /* active L1[0]: flip OFLAG_COPIED */
	b[79] |= 3;     /* dirty + corrupt */
	return b;
}

#endif
