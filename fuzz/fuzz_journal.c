/*
 * fuzz_journal.c - fuzz target "journal": the undo journal's parser and
 * verifier (repair/journal.h, version 1 and 2 with the summary section),
 * as `qcow2fsck undo [--dry-run]` runs them, on an in-memory image.
 *
 * Input: one mode byte, a u32 big-endian image length L, then L bytes of
 * image (at most 1 MiB; fewer when the input is shorter), then the
 * journal's bytes (written to a per-process file in /dev/shm, since undo
 * reads a path).  With bit 0 of the mode set, every checksum the journal's
 * layout places (header, each region, the summary, the trailer's chain) is
 * recomputed first, so that mutations reach the rules behind the
 * checksums (lengths, bounds, the summary's lines, the image binding)
 * instead of stopping at the first SHA-256.
 * Oracles (a violation calls abort()):
 *   1. a dry run writes nothing;
 *   2. the real undo accepts exactly what the dry run accepted (same
 *      return code: the memory backend cannot fail a write), and a refused
 *      undo leaves the image byte for byte;
 *   3. an accepted undo is idempotent: a second undo of the restored image
 *      is accepted and changes nothing.
 * A seed (an image with its repair's journal) is corpus/seeds/journal-*.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/io.h"
#include "../repair/journal.h"
#include "fuzz.h"

#define MAX_IMAGE (1u << 20)

static char path[256];

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_journal: %s\n", what);
	abort();
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void sha(const uint8_t *d, size_t n, uint8_t *out)
{
	unsigned int l = 0;
	if (EVP_Digest(d, n, out, &l, EVP_sha256(), NULL) != 1)
		fail("sha256");
}

/* Recompute the checksums where journal.h's layout puts them, as far as
 * the lengths found allow (a layout that runs off the end stops there). */
static void reseal(uint8_t *j, size_t len)
{
	enum { MAXREG = 4096 };
	static uint8_t chain[(MAXREG + 2) * 32];
	if (len < 40)
		return;
	uint32_t nwit = be32(j + 12);
	if (nwit > QC_JOURNAL_MAX_WITNESSES)
		return;
	size_t at = 40 + (size_t)nwit * 48;
	if (at + 32 > len)
		return;
	sha(j, at, j + at);
	memcpy(chain, j + at, 32);
	size_t nc = 1;
	at += 32;
	uint32_t n = be32(j + 32);
	for (uint32_t i = 0; i < n && i < MAXREG; i++) {
		if (at + 56 > len)
			return;
		size_t reclen = 56 + (size_t)be32(j + at + 20);
		if (reclen > len || at + reclen + 32 > len)
			return;
		sha(j + at, reclen, j + at + reclen);
		memcpy(chain + nc++ * 32, j + at + reclen, 32);
		at += reclen + 32;
	}
	if (be32(j + 8) >= 2 && at + 16 <= len) {
		size_t tl = be32(j + at + 8);
		if (tl <= len && at + 16 + tl + 32 <= len) {
			sha(j + at, 16 + tl, j + at + 16 + tl);
			memcpy(chain + nc++ * 32, j + at + 16 + tl, 32);
			at += 16 + tl + 32;
		}
	}
	if (at + 48 <= len)
		sha(chain, nc * 32, j + at + 16);
}

static bool same(struct qc_io *io, const uint8_t *data, size_t len)
{
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	return n == len && (len == 0 || memcmp(b, data, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 5)
		return 0;
	bool do_reseal = data[0] & 1;
	data++;
	size--;
	if (!path[0]) {
		const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
		snprintf(path, sizeof(path), "%s/qc-fuzz-journal-%ld.undo", dir ? dir : "/tmp",
			 (long)getpid());
	}
	size_t ilen = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
	if (ilen > MAX_IMAGE)
		ilen = MAX_IMAGE;
	if (ilen > size - 4)
		ilen = size - 4;
	const uint8_t *img = data + 4, *jr = img + ilen;
	size_t jlen = size - 4 - ilen;
	uint8_t *jc = malloc(jlen ? jlen : 1);
	if (!jc)
		return 0;
	memcpy(jc, jr, jlen);
	if (do_reseal)
		reseal(jc, jlen);
	FILE *f = fopen(path, "wb");
	if (!f) {
		free(jc);
		return 0;
	}
	bool ok = fwrite(jc, 1, jlen, f) == jlen;
	free(jc);
	if (fclose(f) != 0 || !ok) {
		unlink(path);
		return 0;
	}
	FILE *log = fopen("/dev/null", "w");
	char err[512];
	struct qc_io *io = qc_io_open_memory(img, ilen, true);
	if (!io)
		fail("cannot open the memory image");
	int dry = qc_journal_undo(path, io, QC_UNDO_DRY_RUN, log, err, sizeof(err));
	if (!same(io, img, ilen))
		fail("a dry run changed the image");
	int real = qc_journal_undo(path, io, 0, log, err, sizeof(err));
	if (real != dry)
		fail("undo and its dry run disagree");
	if (real < 0 && !same(io, img, ilen))
		fail("a refused undo changed the image");
	if (real == 0) {
		size_t n;
		const uint8_t *b = qc_io_memory_bytes(io, &n);
		uint8_t *once = malloc(n ? n : 1);
		if (!once)
			fail("out of memory");
		memcpy(once, b, n);
		if (qc_journal_undo(path, io, 0, log, err, sizeof(err)) != 0)
			fail("a second undo of the restored image was refused");
		if (!same(io, once, n))
			fail("a second undo changed the restored image");
		free(once);
	}
	qc_io_close(io);
	if (log)
		fclose(log);
	unlink(path);
	return 0;
}
