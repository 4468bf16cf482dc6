/*
 * policy.h - the repair policy of each problem code, as data (in the
 * manner of e2fsck's problem table): whether a finding may hide a
 * reference from the walk, which planner fixes it, whether it forces a
 * refcount rebuild, and what the plan says when it is left.
 *
 * The table is core/problems/policy.def, keyed by problem ID; every
 * decision the checker's trust rule (checker/trust.c) and the planners
 * (repair/) make about a code is a lookup here, never a match on the
 * code's name or a message.  doc/design.md "Policy table" explains it.
 */
#ifndef QC_POLICY_H
#define QC_POLICY_H

#include <stdbool.h>

#include "problems.h"

/* Does a finding hide references from the walk? */
enum qc_hides {
	QC_HIDES_NO,
	QC_HIDES_YES,
	/* l1-entry-reserved: hides none when every record is on an active L1
	 * entry that also has no L2 offset (nothing to follow; the COPIED
	 * planner zeroes the entry) */
	QC_HIDES_UNLESS_DROPPED,
	/* overlap-metadata: hides none when every record is a refblock
	 * claimed twice (two reftable entries naming one cluster: a rebuild
	 * fixes that), or has the refcount structure on one side and that
	 * side is disproved by its content (checker/trust.c); any other
	 * overlap leaves a doubt which pointer is wrong */
	QC_HIDES_UNLESS_REFCOUNT_WRONG,
	/* snapshot-table-offset-*: hides none when nb_snapshots is 0 (an
	 * empty table has nothing to walk, whatever its offset) */
	QC_HIDES_UNLESS_EMPTY,
};

/* The planner that repairs a code. */
enum qc_fixer {
	QC_FIX_NONE,        /* not repaired by this version */
	QC_FIX_REFCOUNTS,   /* repair/refcounts.c: stored counts edited in place (or rebuilt) */
	QC_FIX_REBUILD,     /* repair/refcounts.c: the refcount structure rebuilt */
	QC_FIX_COPIED,      /* repair/copied.c: OFLAG_COPIED and flag-only L1 entries */
	QC_FIX_HEADER_BITS, /* repair/repair.c: the dirty and corrupt bits */
	QC_FIX_SNAPSHOT_TABLE, /* repair/snaptable.c: the table rewritten from its entries as
	                        * checker/snapfix.c decided, or an empty table's offset set to 0 */
	QC_FIX_L1,          /* repair/fix_l1.c: damaged active L1 entries restored or dropped */
	QC_FIX_L2,          /* repair/fix_l2.c: damaged active L2 entries restored or dropped */
	QC_FIX_BITMAPS,     /* repair/bitmaps.c: a damaged bitmap extension or directory:
	                     * autoclear bit 0 cleared (bitmaps dropped, guest data kept) */
	QC_FIX_HEADER_FIELDS, /* repair/header_fields.c: l1_size, l1_table_offset, header_length,
	                       * refcount_order restored from evidence */
	QC_FIX_COUNT
};

/* What the plan says about a code no planner wrote or left itself. */
#define QC_LEFT_NOT_REPAIRED "not repaired by this version (see doc/repair.md for the header fields and pointers it repairs)"
#define QC_LEFT_HEADER_FIELD "the header field could not be restored from evidence (see above)"
#define QC_LEFT_BITMAPS "the bitmaps were not dropped (see above)"
#define QC_LEFT_BITMAPS_IGNORED "the bitmaps are already dropped (QEMU ignores the extension); the extension stays in the header until QEMU's next write open removes it"
#define QC_LEFT_SNAPSHOT_TABLE "the snapshot-table repair could not fix it (see the snapshot verdicts)"
#define QC_LEFT_POINTER "a pointer whose target is doubtful: dropping or redirecting it would be a guess"
#define QC_LEFT_COPIED "the COPIED planner did not edit the table holding the entry: the table's pointer is doubtful or another structure claims its cluster"
#define QC_LEFT_REFCOUNTS "refcounts cannot be fixed safely while other problems remain (see above)"
#define QC_LEFT_GUEST_DATA "guest data that does not decompress: nothing in the image can rebuild it; the descriptor and its clusters are kept as they are"
#define QC_LEFT_HEADER_BITS "the header bits change only with a full repair whose refcounts are all verified (not with --leaks-only)"

struct qc_policy {
	bool listed;        /* the code has a line in policy.def */
	bool warning_line;  /* ... and it is a QC_POLICY_WARNING line */
	enum qc_hides hides;
	enum qc_fixer fixer;
	bool needs_rebuild;
	const char *left;
};

/* The policy of a code: its line; for a warning without one, the default
 * (hides nothing, no fixer, QC_LEFT_NOT_REPAIRED); for any other code
 * without one (a table bug the unit test catches), hides references. */
const struct qc_policy *qc_policy(enum qc_code c);

/* Name of a fixer ("refcounts", "copied", ...), for the design doc and tests. */
const char *qc_fixer_name(enum qc_fixer f);

#endif
