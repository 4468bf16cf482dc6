/*
 * deflate_hdr.h - reads the header of the first block of a raw deflate
 * stream (RFC 1951 §3.2.3, §3.2.7) and says whether the stream is one
 * final dynamic-Huffman block whose header zlib accepts and whose two
 * codes are complete.  core/decompress.c lets libdeflate decide only such
 * streams; doc/inflate.md gives the proof that libdeflate and zlib then
 * return the same verdict and the same bytes, and why every other stream
 * goes to zlib.
 */
#ifndef QC_DEFLATE_HDR_H
#define QC_DEFLATE_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when in[0..len) starts with a block that has BFINAL = 1 and
 * BTYPE = 2 (dynamic Huffman), HLIT + 257 <= 286 and HDIST + 1 <= 30
 * symbols, a complete code-length code, code lengths whose repeats stay
 * within the HLIT + HDIST lengths (a repeat of the previous length never
 * first), a literal/length code that is complete and codes symbol 256, and
 * a complete distance code.  False for anything else, including a header
 * cut short by the end of the input.  Reads at most the header's bits.
 */
bool qc_deflate_one_strict_block(const uint8_t *in, size_t len);

#endif
