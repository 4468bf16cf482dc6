/*
 * inflate.h - qcow2fsck's own raw deflate decoder (RFC 1951), written to
 * give, for every input, the answer QEMU's single zlib call gives: the
 * verdict, the reason and the bytes of core/decompress.c's zlib path
 * (doc/inflate.md "The exact decoder").  It decodes pairs of short
 * literal codes with one table look-up, which is where zlib and libdeflate
 * spend their time on data that compresses little.
 *
 * Relies on: nothing but the caller's buffers.  A dynamic block's tables
 * (about 27 KiB) live in the context, which is reused for many streams;
 * the fixed codes' tables are built once and shared; nothing is allocated
 * per stream.  Bytes of the output buffer past *produced are
 * unspecified (the copy loops may write up to 16 bytes past a match while
 * the buffer has room).
 */
#ifndef QC_INFLATE_H
#define QC_INFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decompress.h"

struct qc_inflate;

struct qc_inflate *qc_inflate_new(void);
void qc_inflate_free(struct qc_inflate *f);

/* The context's size, for the --max-mem budget. */
size_t qc_inflate_mem(void);

/*
 * Decode in[0..inlen) into out[0..outlen) as QEMU reads a zlib cluster
 * (inflateInit2 with windowBits -12, one inflate(Z_FINISH) call) and
 * classify it as decompress.h's run does for zlib: QC_DC_OK, QC_DC_INEXACT,
 * QC_DC_INVALID, QC_DC_SHORT or QC_DC_TRUNCATED, with zlib's reason string
 * in *why and the bytes written before the verdict in *produced.
 * outlen must be at least 1.
 */
enum qc_dc_result qc_inflate_run(struct qc_inflate *f, const uint8_t *in, size_t inlen,
				 uint8_t *out, size_t outlen, size_t *produced, const char **why);

/*
 * For a caller that never reads the output (check --deep needs only the
 * verdict and the count: deflate's decoding never depends on the bytes
 * it wrote): the fast loop then writes nothing, the output buffer's
 * contents are unspecified (it must still be outlen bytes; initialise it
 * once, as the careful decoder copies matches from it), and the verdict,
 * the reason and *produced are the same.
 */
void qc_inflate_discard(struct qc_inflate *f, bool on);

/*
 * Two streams at once, each with its own context, with the answers
 * qc_inflate_run() gives for each: the fast loops of the two run
 * interleaved, so that the processor overlaps their table look-ups.
 */
void qc_inflate_run2(struct qc_inflate *f[2], const uint8_t *in[2], const size_t inlen[2],
		     uint8_t *out[2], const size_t outlen[2], enum qc_dc_result res[2],
		     size_t produced[2], const char *why[2]);

#endif
