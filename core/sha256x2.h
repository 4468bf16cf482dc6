/*
 * sha256x2.h - the SHA-256 of two messages of the same length at once,
 * with the x86 SHA extensions (SHA-NI), their rounds interleaved.
 *
 * One SHA-256 is a chain of dependent rounds: the SHA instructions wait on
 * each other's results and leave the unit idle part of the time.  Two
 * independent messages fill those gaps, so a pair costs much less than
 * two (measured on this project's AMD EPYC: 2.6-2.7 GB/s per core against
 * libcrypto's 1.6-1.7 GB/s).  The tree digest's leaves are independent
 * 64 KiB blocks (doc/digest.md), hence the pairs.
 *
 * Relies on: nothing but the CPU; qc_sha256x2_ok() says whether it can
 * run here (x86 with SHA, SSSE3 and SSE4.1).  Elsewhere it answers false
 * and callers hash with libcrypto, which gives the same bytes.
 */
#ifndef QC_SHA256X2_H
#define QC_SHA256X2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether qc_sha256x2() can run on this CPU (asks the CPU; call once). */
bool qc_sha256x2_ok(void);

/*
 * oa = SHA-256(a[0..len)), ob = SHA-256(b[0..len)).  Any len; a and b may
 * be unaligned.  Only when qc_sha256x2_ok().
 */
void qc_sha256x2(const uint8_t *a, const uint8_t *b, size_t len, uint8_t oa[32],
		 uint8_t ob[32]);

#endif
