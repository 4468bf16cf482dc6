/*
 * fuzz_repair.c - fuzz target "repair": the repair transaction users run
 * (repair/transaction.h, the same qc_repair_run() as `qcow2fsck repair
 * --salvage-leaks`) on a writable in-memory image, asserting its contract
 * (doc/contracts.md §6), not only the absence of crashes:
 *   0. no two planned writes overlap (the plan fails with -ENOTRECOVERABLE);
 *   1. a repair that leaves nothing unfixed (no "left" entry) and applies
 *      cleanly must re-check clean (exit 0);
 *   2. a second repair of the repaired image must plan nothing (but the
 *      conditional corrupt-bit write);
 *   3. undo with the journal restores the input byte for byte; a run that
 *      rolled back, refused or wrote nothing left the input as it was;
 *   4. a rollback never fails (the memory backend cannot fail a write).
 * The journal and the salvage directory live in /dev/shm (or $TMPDIR),
 * unique to the process, emptied after every input.  A violated invariant
 * calls abort(), which every engine reports as a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../repair/journal.h"
#include "../repair/transaction.h"
#include "fuzz.h"

static char journal[256], salvage[256];

static void set_paths(void)
{
	if (journal[0])
		return;
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
	snprintf(journal, sizeof(journal), "%s/qc-fuzz-repair-%ld.undo", dir ? dir : "/tmp",
		 (long)getpid());
	snprintf(salvage, sizeof(salvage), "%s/qc-fuzz-repair-%ld.salvage", dir ? dir : "/tmp",
		 (long)getpid());
}

/* Remove the salvaged cluster files (and the directory). */
static void clear_salvage(void)
{
	DIR *d = opendir(salvage);
	if (!d)
		return;
	struct dirent *e;
	char p[600];
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", salvage, e->d_name);
		unlink(p);
	}
	closedir(d);
	rmdir(salvage);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz_repair: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

static void same_as_input(struct qc_io *io, const uint8_t *data, size_t size, const char *when)
{
	size_t len;
	const uint8_t *now = qc_io_memory_bytes(io, &len);
	if (len != size || (size && memcmp(now, data, size)))
		fail("%s: the image differs from the input (%zu bytes now, %zu before)", when, len,
		     size);
}

/* 2: the repaired image, repaired again (a dry run), plans nothing. */
static void second_repair(struct qc_io *io)
{
	struct qc_repair_run_opts o = { .check = { .mem_cap = QC_FUZZ_MEM_CAP }, .dry_run = true };
	struct qc_repair_result r;
	qc_repair_run(io, NULL, &o, &r);
	if (r.plan_errno == -ENOTRECOVERABLE)
		fail("second repair: two planned writes overlap");
	if (r.outcome == QC_RO_UNCHANGED && !r.plan.oom && qc_plan_unconditional(&r.plan) > 0)
		fail("second repair plans %zu writes", r.plan.n);
	qc_repair_result_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	set_paths();
	struct qc_io *io = qc_io_open_memory(data, size, true);
	if (!io)
		return 0;
	unlink(journal);
	clear_salvage();
	struct qc_repair_run_opts o = {
		.check = { .deep = false, .mem_cap = QC_FUZZ_MEM_CAP },
		.salvage_dir = salvage,
		.undo_file = journal,
	};
	struct qc_repair_result r;
	qc_repair_run(io, NULL, &o, &r);
	/* 0: planned writes never overlap (one structure's edit landing in another) */
	if (r.plan_errno == -ENOTRECOVERABLE)
		fail("two planned writes overlap");
	/* 4: the memory backend cannot fail, so neither can the rollback */
	if (r.outcome == QC_RO_ROLLED_BACK && r.rollback_failed)
		fail("rollback failed: %s", r.rollback_err);
	if (r.outcome == QC_RO_REPAIRED) {
		/* 1: a complete repair re-checks clean */
		if (r.plan.nleft == 0 && r.exit_code != 0)
			fail("repair left nothing but the re-check exits %d", r.exit_code);
		second_repair(io);
	}
	/* 3: undo restores the input; anything else wrote nothing or undid it */
	if (r.outcome == QC_RO_REPAIRED && r.journal) {
		char err[512];
		if (qc_journal_undo(journal, io, 0, NULL, err, sizeof(err)) < 0)
			fail("undo refused: %s", err);
		same_as_input(io, data, size, "after undo");
	} else {
		same_as_input(io, data, size, "without a repair to undo");
	}
	unlink(journal);
	clear_salvage();
	qc_repair_result_free(&r);
	qc_io_close(io);
	return 0;
}
