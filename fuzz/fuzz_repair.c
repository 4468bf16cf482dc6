/*
 * fuzz_repair.c - fuzz target "repair": the repair engine (repair/) on a
 * writable in-memory image, asserting its contract (doc/contracts.md §6),
 * not only the absence of crashes:
 *   0. no two planned writes overlap (qc_plan_conflict());
 *   1. a repair that leaves nothing unfixed (no "left" entry) and applies
 *      cleanly must re-check clean (exit 0);
 *   2. a second repair of the repaired image must plan nothing;
 *   3. undo with the journal must restore the input byte for byte.
 * The flow mirrors cli/cmd_repair.c: check, plan, journal, apply phases
 * NEW..HEADER, re-check, apply FINAL (the corrupt bit) only when that
 * re-check finds nothing else.  The journal is a file in /dev/shm (or
 * $TMPDIR) unique to the process, removed after every input.  A violated
 * invariant calls abort(), which every engine reports as a crash.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../checker/check.h"
#include "../repair/apply.h"
#include "../repair/journal.h"
#include "../repair/repair.h"
#include "fuzz.h"

static char journal[256];

static void set_journal_path(void)
{
	if (journal[0])
		return;
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(journal, sizeof(journal), "%s/qc-fuzz-repair-%ld.undo", dir ? dir : "/tmp",
		 (long)getpid());
}

static bool only_corrupt_bit_left(const struct qc_image *img)
{
	const struct qc_problems *ps = &img->problems;
	return !img->aborted && !ps->oom && !ps->unsupported && !ps->leaks &&
	       ps->corruptions == ps->per_code[QC_P_HEADER_CORRUPT_BIT];
}

static struct qc_image *check(struct qc_io *io)
{
	struct qc_options o = { .deep = false, .mem_cap = QC_FUZZ_MEM_CAP };
	struct qc_image *img = NULL;
	if (qc_check_run(io, &o, &img) < 0)
		return NULL;
	return img;
}

/* Plan a repair of the image behind io; false if it cannot be planned. */
static bool plan(struct qc_io *io, struct qc_image **imgp, struct qc_plan *p)
{
	struct qc_repair_opts ro = { .leaks_only = false };
	qc_plan_init(p, io->size);
	*imgp = check(io);
	if (!*imgp || (*imgp)->aborted || (*imgp)->problems.unsupported || !(*imgp)->is_qcow2)
		return false;
	int r = qc_repair_plan(*imgp, &ro, p);
	/* 0: planned writes never overlap (one structure's edit landing in another) */
	if (r == -ENOTRECOVERABLE) {
		fprintf(stderr, "fuzz_repair: two planned writes overlap\n");
		abort();
	}
	return r == 0 && !p->oom;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	set_journal_path();
	struct qc_io *io = qc_io_open_memory(data, size, true);
	if (!io)
		return 0;
	struct qc_image *img = NULL, *after = NULL, *img2 = NULL;
	struct qc_plan p, p2;
	bool have_p2 = false;
	char err[512];
	if (!plan(io, &img, &p) || p.n == 0)
		goto out;
	unlink(journal);
	size_t hashed = (size_t)(img->cluster_size < io->size ? img->cluster_size : io->size);
	struct qc_witness wit = { 0, hashed };
	if (qc_journal_write(journal, io, &p, &wit, 1, err, sizeof(err)) < 0)
		goto out;
	size_t done = 0;
	if (qc_apply_phases(io, &p, QC_PH_NEW, QC_PH_HEADER, &done) < 0)
		abort(); /* the memory backend cannot fail a write */
	after = check(io);
	if (!after)
		goto undo;
	if (qc_plan_unconditional(&p) < p.n && only_corrupt_bit_left(after)) {
		if (qc_apply_phases(io, &p, QC_PH_FINAL, QC_PH_FINAL, &done) < 0)
			abort();
		qc_image_free(after);
		after = check(io);
		if (!after)
			goto undo;
	}
	/* 1: a complete repair re-checks clean */
	if (p.nleft == 0 && !after->aborted && qc_check_exit_code(after) != 0) {
		fprintf(stderr, "fuzz_repair: repair left nothing but the re-check exits %d\n",
			qc_check_exit_code(after));
		abort();
	}
	/* 2: a second repair plans nothing (but the conditional corrupt-bit
	 * write, planned again while problems remain) */
	have_p2 = true;
	if (plan(io, &img2, &p2) && qc_plan_unconditional(&p2) > 0) {
		fprintf(stderr, "fuzz_repair: second repair plans %zu writes\n", p2.n);
		abort();
	}
undo:
	/* 3: undo restores the input byte for byte */
	if (qc_journal_undo(journal, io, 0, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_repair: undo refused: %s\n", err);
		abort();
	}
	size_t len;
	const uint8_t *now = qc_io_memory_bytes(io, &len);
	if (len != size || (size && memcmp(now, data, size))) {
		fprintf(stderr, "fuzz_repair: undo left %zu bytes, differing from the %zu input bytes\n",
			len, size);
		abort();
	}
out:
	unlink(journal);
	if (have_p2)
		qc_plan_free(&p2);
	qc_image_free(img2);
	qc_image_free(after);
	qc_image_free(img);
	qc_plan_free(&p);
	qc_io_close(io);
	return 0;
}
