/*
 * fuzz_journal.c - fuzz target "journal": the undo journal's parser and
 * verifier (repair/journal.h, version 1 and 2 with the summary section),
 * as `qcow2fsck undo [--dry-run]` runs them, on an in-memory image.
 *
 * Input: u32 big-endian image length L, then L bytes of image (at most
 * 1 MiB; fewer when the input is shorter), then the journal's bytes
 * (written to a per-process file in /dev/shm, since undo reads a path).
 * Oracles (a violation calls abort()):
 *   1. a dry run writes nothing;
 *   2. the real undo accepts exactly what the dry run accepted (same
 *      return code: the memory backend cannot fail a write), and a refused
 *      undo leaves the image byte for byte;
 *   3. an accepted undo is idempotent: a second undo of the restored image
 *      is accepted and changes nothing.
 * A seed (an image with its repair's journal) is corpus/seeds/journal-*.
 */
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

static bool same(struct qc_io *io, const uint8_t *data, size_t len)
{
	size_t n;
	const uint8_t *b = qc_io_memory_bytes(io, &n);
	return n == len && (len == 0 || memcmp(b, data, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
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
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	bool ok = fwrite(jr, 1, jlen, f) == jlen;
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
