/*
 * journal.h - the undo journal: before a repair writes anything, the old
 * bytes of every region it will write and the old file length go to a
 * file, which is fsync'd (file and directory) before the first write.
 * `qcow2fsck undo` replays it to restore the image byte for byte.
 *
 * Format (all integers big-endian; SHA-256 through libcrypto EVP):
 *   header   "QCFSCKU1", u32 version=2, u32 nwitness, u64 old_size,
 *            u64 new_size, u32 nregions, u32 0                 = 40 bytes
 *            nwitness x { u64 offset, u64 length, sha256(those image
 *            bytes before the repair) }   (the header cluster, the old
 *            reftable, the active L1: what identifies the image)
 *            sha256(everything above)
 *   region   u32 "QCUR", u32 flags (1 = conditional write), u64 offset,
 *            u32 length, u32 old_length (bytes that lay inside the old
 *            file), sha256(new bytes), old bytes[old_length],
 *            sha256(the record so far)                 (one per plan write)
 *   summary  u32 "QCUS", u32 nlines, u32 text_length, u32 0, text,
 *            sha256(the section so far)             (version 2 only)
 *            text: nlines lines, each ending in '\n', at most
 *            QC_JOURNAL_MAX_SUMMARY_LINE bytes, no other control byte:
 *            per plan write, in plan order, the plan's own line
 *            "[phase] write 0xOFFSET +LENGTH  CODE: SUMMARY (guest 0xG+0xL)"
 *            (the guest range only when one is at stake; a clone's kept
 *            range is in its SUMMARY); at most QC_JOURNAL_MAX_SUMMARY bytes,
 *            writes without a guest range only within half of that, and a
 *            last line counting the writes left out
 *   trailer  "QCUEND01", u32 nregions, u32 0,
 *            sha256(header sha || every region sha || summary sha)
 *                                  (version 1: no summary sha) = 48 bytes
 *
 * Version 1 journals (no summary section) are still read and undone.
 * `undo --dry-run` prints the summary.
 *
 * Binding: undo accepts an image only when (1) its length lies between the
 * old length and the length after the repair, (2) every region holds
 * either its old bytes or the new bytes of a write to that same range
 * (so an image stopped after any write k is recognised), and (3) every
 * witness range, with the old bytes of the regions put back, hashes to
 * the recorded pre-repair hash.  A journal with any bad checksum, a short
 * tail or an unknown version is refused as damaged.
 */
#ifndef QC_JOURNAL_H
#define QC_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "../core/io.h"
#include "plan.h"

#define QC_JOURNAL_MAGIC "QCFSCKU1"
#define QC_JOURNAL_VERSION 2
/* Bounds of the summary section (version 2). */
#define QC_JOURNAL_MAX_SUMMARY (UINT32_C(8) << 20)
#define QC_JOURNAL_MAX_SUMMARY_LINE 512
#define QC_JOURNAL_MAX_WITNESSES 16
/* Bounds undo trusts a journal with (a refcount table is at most 8 MiB,
 * an L1 table 32 MiB): larger regions or witnesses mean a damaged file. */
#define QC_JOURNAL_MAX_REGION (UINT64_C(16) << 20)
#define QC_JOURNAL_MAX_WITNESS (UINT64_C(64) << 20)

/* An image range whose pre-repair bytes bind the journal to the image. */
struct qc_witness {
	uint64_t offset, length;
};

/*
 * Write the journal of plan p for the image behind io (its current bytes
 * are the "old" bytes) to path, which must not exist yet.  wit: ranges
 * whose bytes bind the journal to the image (clipped to the file).
 * Every write must carry the old bytes the planner saw (qc_write.old,
 * cas.h): when the image no longer holds them, or none were recorded,
 * nothing is written and -ESTALE returned.
 * Returns 0, or -errno with a message in err.
 */
int qc_journal_write(const char *path, struct qc_io *io, const struct qc_plan *p,
		     const struct qc_witness *wit, size_t nwit, char *err, size_t errlen);

/* Flags of qc_journal_undo(). */
#define QC_UNDO_DRY_RUN 1u /* verify and list, write nothing */
#define QC_UNDO_FORCE 2u   /* accept regions torn by a crash mid-write (rule 2 above); the
			    * length and witness rules (1, 3) still bind the image */

/*
 * Verify the journal at path against the image behind io and, unless
 * QC_UNDO_DRY_RUN, restore every region's old bytes and the old file
 * length, then sync.  Progress lines go to log (may be NULL); with
 * QC_UNDO_DRY_RUN the journal's summary of the repair's writes first.  Returns 0
 * on success, -EINVAL for a damaged journal, -ESTALE for an image the
 * journal was not written for (or a torn region without QC_UNDO_FORCE),
 * other -errno for I/O errors; err says which.
 */
int qc_journal_undo(const char *path, struct qc_io *io, unsigned flags, FILE *log, char *err,
		    size_t errlen);

/* Comparisons undo's region matching has made in this process (binary
 * search steps and overlap checks): complexity tests bound it. */
extern unsigned long long qc_journal_match_steps;

/* Pick the default journal path for an image: IMAGE.qcow2fsck-undo, or
 * IMAGE.qcow2fsck-undo.N for the first N that does not exist.  Returns a
 * malloc'd string or NULL. */
char *qc_journal_default_path(const char *image);

#endif
