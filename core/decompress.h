/*
 * decompress.h - decompression of one qcow2 compressed cluster, with the
 * exact acceptance rules QEMU applies when it reads one
 * (block/qcow2-threads.c): zlib is raw deflate with a 4 KiB window
 * (windowBits -12) that must fill the cluster; zstd is one or more frames
 * that must end exactly when the cluster is full.
 *
 * Input and output are caller-owned buffers of known length; nothing here
 * trusts a size found in the stream.  One context is reused for many
 * clusters.
 */
#ifndef QC_DECOMPRESS_H
#define QC_DECOMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum qc_dc_result {
	QC_DC_OK,        /* exactly one cluster: QEMU reads it */
	QC_DC_INEXACT,   /* zlib: cluster full but the stream goes on or lacks its end; QEMU reads it */
	QC_DC_INVALID,   /* the decoder rejected the stream: QEMU fails with EIO */
	QC_DC_SHORT,     /* the stream ended before the cluster was full: EIO */
	QC_DC_LONG,      /* zstd: the frame produces more than a cluster: EIO */
	QC_DC_TRUNCATED, /* the input ran out before the cluster was full: EIO */
	QC_DC_NOMEM,     /* the decoder could not allocate (not the image's fault) */
	QC_DC_WINDOW,    /* zstd: the frame declares a window over QC_DC_ZSTD_WINDOW_LOG_MAX:
			  * not decompressed (QEMU, whose limit is 128 MiB, may read it) */
};

/*
 * The zstd window the decoder accepts, log2: 2 MiB, the largest cluster.
 * QEMU compresses one cluster per frame in a single ZSTD_e_end call, so
 * the frame carries its content size (at most one cluster, 2 MiB) and its
 * window is at most that (SECURITY.md, "Bounded time").  Without this cap a frame
 * that omits its content size could make the decoder reserve 128 MiB.
 */
#define QC_DC_ZSTD_WINDOW_LOG_MAX 21

/* libdeflate's decompressor state (about 12 KiB in libdeflate 1.14; its
 * size is not published, so this bounds it generously). */
#define QC_DC_LIBDEFLATE_MEM 32768

/* The most memory a context of this type (0 zlib, 1 zstd) holds, for the
 * --max-mem budget. */
size_t qc_dc_mem_bound(int type);

struct qc_dc;

/* A context for compression type 0 (zlib) or 1 (zstd); NULL if out of memory
 * or the type is unknown.  For zlib it decodes with libdeflate the streams
 * whose verdict and bytes are provably zlib's (doc/inflate.md), and all
 * others with core/inflate.c, which follows zlib's rules for every stream
 * (doc/inflate.md "The exact decoder"). */
struct qc_dc *qc_dc_new(int type);
/* The same with zlib deciding every deflate stream (the reference the
 * differential tests compare qc_dc_new() against). */
struct qc_dc *qc_dc_new_zlib_only(int type);
/* Streams this context decoded with libdeflate (0 for zstd, zlib only). */
uint64_t qc_dc_fast_count(const struct qc_dc *d);
/* Streams this context decoded with core/inflate.c (0 for zstd, zlib only). */
uint64_t qc_dc_own_count(const struct qc_dc *d);
void qc_dc_free(struct qc_dc *d);
/* The caller never reads the output, only the verdicts and counts
 * (check --deep): the own deflate decoder then skips writing what it
 * can (core/inflate.h qc_inflate_discard); the output buffers' contents
 * are unspecified, the answers the same.  No effect on other decoders. */
void qc_dc_discard(struct qc_dc *d, bool on);

/*
 * Decompress in[0..inlen) into out[0..outlen).  *produced gets the bytes
 * written to out; *why a short static description of a failure (or "").
 */
enum qc_dc_result qc_dc_run(struct qc_dc *d, const uint8_t *in, size_t inlen, uint8_t *out,
			    size_t outlen, size_t *produced, const char **why);

/*
 * Two streams with the answers qc_dc_run() gives for each, into out[0] and
 * out[1], both outlen bytes; a zlib context decodes the two interleaved
 * where both need the own decoder (core/inflate.h, qc_inflate_run2).
 */
void qc_dc_run2(struct qc_dc *d, const uint8_t *in[2], const size_t inlen[2], uint8_t *out[2],
		size_t outlen, enum qc_dc_result res[2], size_t produced[2], const char *why[2]);

#endif
