/*
 * decompress.c - one compressed cluster through zlib or zstd, classified
 * the way QEMU's reader would treat it (see decompress.h).
 *
 * zlib: QEMU inflates with Z_FINISH once and accepts Z_STREAM_END or
 * Z_BUF_ERROR as long as the output is full, so a stream that goes on past
 * the cluster (or whose end marker lies past the input) is still readable:
 * that is QC_DC_INEXACT here, found with a one-byte probe.  libdeflate
 * decides first the streams that are one final dynamic block with a
 * strict header (core/deflate_hdr.c), and only when it fills the cluster:
 * there its answer is zlib's (doc/inflate.md); the own decoder
 * (core/inflate.c), written to give zlib's answer on every stream, decides
 * the rest.  zlib itself decides every stream of a qc_dc_new_zlib_only()
 * context: the reference the differential tests compare with.
 * zstd: QEMU loops ZSTD_decompressStream until the output is full, fails on
 * an error or on a call that makes no progress, and fails when the last
 * call did not return 0 (frame not complete and flushed).
 */
#include "decompress.h"
#include "deflate_hdr.h"
#include "inflate.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_estimateDStreamSize */
#include <zstd.h>
#include <zstd_errors.h>

struct qc_dc {
	int type;
	z_stream z;
	struct libdeflate_decompressor *ld; /* zlib type, unless zlib only */
	struct qc_inflate *inf, *inf2;      /* zlib type, unless zlib only */
	ZSTD_DCtx *zs;
	uint64_t fast;  /* streams libdeflate decided */
	uint64_t own;   /* streams the own decoder (core/inflate.c) decided */
	bool zlib;      /* z holds an inflate stream (zlib only) */
};

struct qc_dc *qc_dc_new(int type)
{
	if (type == 1)
		return qc_dc_new_zlib_only(type);
	if (type != 0)
		return NULL;
	/* no zlib stream: libdeflate and the own decoder decide every stream */
	struct qc_dc *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->type = 0;
	if (!(d->ld = libdeflate_alloc_decompressor()) || !(d->inf = qc_inflate_new()) ||
	    !(d->inf2 = qc_inflate_new())) {
		qc_dc_free(d);
		return NULL;
	}
	return d;
}

uint64_t qc_dc_fast_count(const struct qc_dc *d)
{
	return d->fast;
}

uint64_t qc_dc_own_count(const struct qc_dc *d)
{
	return d->own;
}

struct qc_dc *qc_dc_new_zlib_only(int type)
{
	if (type != 0 && type != 1)
		return NULL;
	struct qc_dc *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->type = type;
	if (type == 0) {
		if (inflateInit2(&d->z, -12) != Z_OK) {
			free(d);
			return NULL;
		}
		d->zlib = true;
	} else {
		d->zs = ZSTD_createDCtx();
		if (!d->zs || ZSTD_isError(ZSTD_DCtx_setParameter(d->zs, ZSTD_d_windowLogMax,
								   QC_DC_ZSTD_WINDOW_LOG_MAX))) {
			ZSTD_freeDCtx(d->zs);
			free(d);
			return NULL;
		}
	}
	return d;
}

size_t qc_dc_mem_bound(int type)
{
	/* a qc_dc_new() context: libdeflate and the own decoder; a zlib-only
	 * one (tests) holds zlib's window (1 << 12 here) and about 7 KiB of
	 * state (zconf.h, "memory requirements") instead: less */
	if (type == 0)
		return sizeof(struct qc_dc) + QC_DC_LIBDEFLATE_MEM + 2 * qc_inflate_mem();
	return sizeof(struct qc_dc) + ZSTD_estimateDStreamSize((size_t)1 << QC_DC_ZSTD_WINDOW_LOG_MAX);
}

void qc_dc_discard(struct qc_dc *d, bool on)
{
	if (d->inf) {
		qc_inflate_discard(d->inf, on);
		qc_inflate_discard(d->inf2, on);
	}
}

void qc_dc_free(struct qc_dc *d)
{
	if (!d)
		return;
	if (d->type == 0) {
		if (d->zlib)
			inflateEnd(&d->z);
		libdeflate_free_decompressor(d->ld);
		qc_inflate_free(d->inf);
		qc_inflate_free(d->inf2);
	}
	else
		ZSTD_freeDCtx(d->zs);
	free(d);
}

/* libdeflate decides only one final dynamic block with a strict header
 * that it decodes to exactly one cluster: zlib's verdict and bytes there
 * are provably the same (doc/inflate.md).  True when it decided. */
static bool by_libdeflate(struct qc_dc *d, const uint8_t *in, size_t inlen, uint8_t *out,
			  size_t outlen, size_t *produced)
{
	size_t got = 0;
	if (d->ld && qc_deflate_one_strict_block(in, inlen) &&
	    libdeflate_deflate_decompress(d->ld, in, inlen, out, outlen, &got) == LIBDEFLATE_SUCCESS &&
	    got == outlen) {
		*produced = outlen;
		d->fast++;
		return true;
	}
	return false;
}

static enum qc_dc_result run_zlib(struct qc_dc *d, const uint8_t *in, size_t inlen, uint8_t *out,
				  size_t outlen, size_t *produced, const char **why)
{
	z_stream *z = &d->z;
	if (by_libdeflate(d, in, inlen, out, outlen, produced))
		return QC_DC_OK;
	/* every other stream: the own decoder, which gives zlib's answer
	 * (doc/inflate.md "The exact decoder"), unless zlib is asked for */
	if (d->inf) {
		d->own++;
		return qc_inflate_run(d->inf, in, inlen, out, outlen, produced, why);
	}
	if (inflateReset2(z, -12) != Z_OK)
		return QC_DC_NOMEM;
	if (inlen > UINT32_MAX || outlen > UINT32_MAX) {
		*why = "sizes beyond zlib's range";
		return QC_DC_INVALID;
	}
	z->next_in = (Bytef *)(uintptr_t)in;
	z->avail_in = (uInt)inlen;
	z->next_out = out;
	z->avail_out = (uInt)outlen;
	int r = inflate(z, Z_FINISH);
	*produced = outlen - z->avail_out;
	if (r == Z_MEM_ERROR)
		return QC_DC_NOMEM;
	if (r == Z_STREAM_END) {
		if (z->avail_out == 0)
			return QC_DC_OK;
		*why = "the deflate stream ends early";
		return QC_DC_SHORT;
	}
	if (r != Z_BUF_ERROR && r != Z_OK) {
		*why = z->msg ? z->msg : "invalid deflate data";
		return QC_DC_INVALID;
	}
	if (z->avail_out != 0) {
		*why = "the deflate stream needs more input";
		return QC_DC_TRUNCATED;
	}
	/* Cluster full: does the stream end right here? */
	uint8_t probe;
	z->next_out = &probe;
	z->avail_out = 1;
	r = inflate(z, Z_FINISH);
	if (r == Z_STREAM_END && z->avail_out == 1)
		return QC_DC_OK;
	if (z->avail_out == 0)
		*why = "the deflate stream continues past the cluster";
	else if (r == Z_BUF_ERROR)
		*why = "the deflate stream has no end marker within the descriptor";
	else
		*why = z->msg ? z->msg : "invalid deflate data after the cluster";
	return QC_DC_INEXACT;
}

static enum qc_dc_result run_zstd(struct qc_dc *d, const uint8_t *in, size_t inlen, uint8_t *out,
				  size_t outlen, size_t *produced, const char **why)
{
	ZSTD_DCtx_reset(d->zs, ZSTD_reset_session_only);
	ZSTD_inBuffer ib = { in, inlen, 0 };
	ZSTD_outBuffer ob = { out, outlen, 0 };
	size_t ret = 1;
	bool frame_done = false; /* the previous call completed a frame */
	*produced = 0;
	while (ob.pos < ob.size) {
		size_t last = ib.pos + ob.pos;
		ret = ZSTD_decompressStream(d->zs, &ob, &ib);
		*produced = ob.pos;
		if (ZSTD_isError(ret)) {
			if (ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation)
				return QC_DC_NOMEM;
			if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge) {
				*why = "the zstd frame declares a window larger than a cluster needs";
				return QC_DC_WINDOW;
			}
			if (frame_done) {
				*why = "the zstd frame ends before the cluster is full";
				return QC_DC_SHORT;
			}
			*why = ZSTD_getErrorName(ret);
			return QC_DC_INVALID;
		}
		if (ib.pos + ob.pos == last) {
			if (frame_done) {
				*why = "the zstd frame ends before the cluster is full";
				return QC_DC_SHORT;
			}
			*why = "the zstd frame needs more input";
			return QC_DC_TRUNCATED;
		}
		frame_done = ret == 0;
	}
	if (ret == 0)
		return QC_DC_OK;
	/* Cluster full but the frame is not complete: QEMU fails.  Why? */
	uint8_t probe;
	ZSTD_outBuffer pb = { &probe, 1, 0 };
	size_t last = ib.pos;
	size_t r2 = ZSTD_decompressStream(d->zs, &pb, &ib);
	if (!ZSTD_isError(r2) && pb.pos == 1) {
		*why = "the zstd frame produces more than one cluster";
		return QC_DC_LONG;
	}
	if (!ZSTD_isError(r2) && ib.pos == last && r2 != 0) {
		*why = "the zstd frame needs more input";
		return QC_DC_TRUNCATED;
	}
	*why = ZSTD_isError(r2) ? ZSTD_getErrorName(r2) : "the zstd frame is not complete when the cluster is full";
	return QC_DC_INVALID;
}

enum qc_dc_result qc_dc_run(struct qc_dc *d, const uint8_t *in, size_t inlen, uint8_t *out,
			    size_t outlen, size_t *produced, const char **why)
{
	*why = "";
	*produced = 0;
	if (d->type == 0)
		return run_zlib(d, in, inlen, out, outlen, produced, why);
	return run_zstd(d, in, inlen, out, outlen, produced, why);
}

void qc_dc_run2(struct qc_dc *d, const uint8_t *in[2], const size_t inlen[2], uint8_t *out[2],
		size_t outlen, enum qc_dc_result res[2], size_t produced[2], const char *why[2])
{
	if (!d->inf) {
		for (int i = 0; i < 2; i++)
			res[i] = qc_dc_run(d, in[i], inlen[i], out[i], outlen, &produced[i], &why[i]);
		return;
	}
	bool left[2];
	for (int i = 0; i < 2; i++) {
		why[i] = "";
		produced[i] = 0;
		left[i] = !by_libdeflate(d, in[i], inlen[i], out[i], outlen, &produced[i]);
		res[i] = QC_DC_OK;
	}
	if (left[0] && left[1]) {
		struct qc_inflate *f[2] = { d->inf, d->inf2 };
		const size_t ol[2] = { outlen, outlen };
		d->own += 2;
		qc_inflate_run2(f, in, inlen, out, ol, res, produced, why);
		return;
	}
	for (int i = 0; i < 2; i++) {
		if (left[i]) {
			d->own++;
			res[i] = qc_inflate_run(d->inf, in[i], inlen[i], out[i], outlen, &produced[i],
						&why[i]);
		}
	}
}
