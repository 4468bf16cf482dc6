#!/bin/sh
# limits-complexity.sh - bounded time end to end (SECURITY.md, "Bounded
# time"): each case is an input on which an old algorithm took minutes and
# the current one takes well under a second.  The bound is counted, not
# timed (costs below; a loaded machine stretches wall-clock time, not these):
# one run of the plain build ($QC_FAST) takes under 3 s of CPU time (the
# old algorithms took 140 s to minutes; the current ones' figures are
# printed) and reads at most 4 x the allocated file size + 1 MiB of the
# image (16 x for repair, see costs; the old hole walk read 32 GiB of
# zeros).  The sanitizer runs have a hang guard only (timeout 600).  The counts asserted (writes in the
# plan, the verdicts) are exact.  The unit tests (tests/unit/test_bounded.c)
# count the same paths' work deterministically.
#  - repair --dry-run of 2600 refblocks with alternating leaks past EOF
#    (tests/mkslow.py leaky, 1.3 MiB): the old printer counted earlier
#    writes for every write (332800 writes, over 140 s); now one write per
#    refblock, printed in linear time;
#  - the repair itself, its re-check and undo of that image;
#  - --max-mem counts the repair plan and the problem records (exit 1 with
#    "memory cap reached", nothing changed);
#  - images truncated to 4 TiB (64 Mi clusters of 64 KiB, 8 Gi of 512
#    bytes, of apparent size): the old refcount compare visited every one;
#  - 1000 snapshots whose 32 MiB L1 tables lie in holes of a sparse file
#    (tests/mkslow.py holes): the old walk read 32 GiB of zeros.
# QEMU cannot judge the leaks past the end of the file (its check compares
# refcounts only up to the end of the file): it calls "leaky" clean, as it
# does after the repair; both are asserted.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../repair-lib.sh"
MK="python3 $(dirname "$0")/../mkslow.py"
FAST=${QC_FAST:-$QC}

# costs: work_bounded (lib.sh): under 3 s of CPU time, at most READX
# (default 4) x the image's allocated size + 1 MiB read.  A repair reads
# more: its check, the plan's reads, the old bytes for the undo journal and
# its re-check (about 7 x on "leaky"): READX=16 there, still far below a
# rescan per write (2600 writes).
costs() { work_bounded "$@"; }

$MK leaky "$T/leaky.qcow2" 2600
cp "$T/leaky.qcow2" "$T/leaky.orig"

t_name "leaky: qemu-img check cannot see leaks past EOF (clean)"
qemu_check "$T/leaky.qcow2"; [ "$QRC" = 0 ] && t_ok || t_fail "qemu-img exit $QRC"

t_name "leaky: check reports the 332800 leaks past EOF (exit 3)"
timeout 600 "$QC" check --output=json "$T/leaky.qcow2" >"$T/c.json" 2>"$T/err"; rc=$?
JSON=$T/c.json
[ "$rc" = 3 ] && [ "$(json_get leaks)" = 332800 ] && t_ok || t_fail "exit $rc $(cat "$T/err")"
costs "leaky: check" "$T/leaky.qcow2" "$FAST" check --output=json "$T/leaky.qcow2"

t_name "leaky: repair --dry-run finishes and prints a folded plan"
timeout 600 "$QC" repair --dry-run "$T/leaky.qcow2" >"$T/plan" 2>"$T/err"; rc=$?
[ "$rc" = 3 ] && grep -q "^Repair plan: 2600 write(s):" "$T/plan" &&
	grep -q "\.\.\. and 2580 more refcount-leak-past-eof write(s)" "$T/plan" && t_ok ||
	t_fail "exit $rc: $(head -3 "$T/plan") $(cat "$T/err")"
# a dry run plans in rounds (doc/repair.md "Planning rounds"): each later
# round checks the image once more, at most 5 checks in all (about 5 x the
# image read here, with the plan's reads): READX=8
READX=8 costs "leaky: repair --dry-run" "$T/leaky.qcow2" "$FAST" repair --dry-run "$T/leaky.qcow2"
READX=8 costs "leaky: repair --dry-run --output=json" "$T/leaky.qcow2" "$FAST" repair --dry-run --output=json "$T/leaky.qcow2"

t_name "leaky: one refcount write per refblock (JSON plan)"
timeout 600 "$QC" repair --dry-run --output=json "$T/leaky.qcow2" >"$T/p.json" 2>"$T/err"
n=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["plan"]; print(len(p), len({w["code"] for w in p}))' "$T/p.json")
[ "$n" = "2600 1" ] && t_ok || t_fail "writes, codes: $n"

# --max-mem covers the plan: the check of "leaky" fits in 1 MiB, its plan
# (2600 writes of 510 bytes) does not; 3 MiB holds both
t_name "leaky: --max-mem=1M: check completes, the repair plan passes the cap (exit 1, nothing changed)"
cp "$T/leaky.qcow2" "$T/cap.qcow2"
"$QC" check --max-mem=1M "$T/cap.qcow2" >/dev/null 2>&1; rc1=$?
"$QC" repair --max-mem=1M "$T/cap.qcow2" >/dev/null 2>"$T/err"; rc2=$?
[ "$rc1" = 3 ] && [ "$rc2" = 1 ] && grep -q "memory cap reached: the repair plan" "$T/err" &&
	cmp -s "$T/cap.qcow2" "$T/leaky.orig" && [ ! -e "$T/cap.qcow2.qcow2fsck-undo" ] && t_ok ||
	t_fail "check $rc1, repair $rc2: $(cat "$T/err")"
t_name "leaky: --max-mem=3M: the repair fits"
"$QC" repair --dry-run --max-mem=3M "$T/cap.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 3 ] && t_ok || t_fail "exit $rc: $(cat "$T/err")"
rm -f "$T/cap.qcow2"

# --max-mem covers the problem records: 20000 refblocks past the end give
# 1000 kept records (the per-code cap), about 200 KiB; 500 KiB holds the
# tables but not the records as well
$MK leaky "$T/lk20k.qcow2" 20000
t_name "20000 leaky refblocks: --max-mem=500K ends the check on the problem records (exit 1)"
"$QC" check --max-mem=500K "$T/lk20k.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "memory cap reached: the problem records" "$T/err" && t_ok ||
	t_fail "exit $rc: $(cat "$T/err")"
t_name "20000 leaky refblocks: --max-mem=1M holds them (exit 3)"
"$QC" check --max-mem=1M "$T/lk20k.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 3 ] && t_ok || t_fail "exit $rc: $(cat "$T/err")"
rm -f "$T/lk20k.qcow2"

# repair and undo measured on a fresh copy of "leaky" each time (W_PREP)
W_PREP='cp "$T/leaky.orig" "$T/m.qcow2"; rm -f "$T/m.undo"' READX=16
costs "leaky: repair" "$T/m.qcow2" "$FAST" repair --undo-file="$T/m.undo" "$T/m.qcow2"
W_PREP="$W_PREP"'; "$FAST" repair --undo-file="$T/m.undo" "$T/m.qcow2" >/dev/null 2>&1'
costs "leaky: undo" "$T/m.qcow2" "$FAST" undo "$T/m.undo" "$T/m.qcow2"
W_PREP="" READX=4
rm -f "$T/m.qcow2" "$T/m.undo"

t_name "leaky: repair, re-check clean, qemu-img clean"
timeout 600 "$QC" repair "$T/leaky.qcow2" >"$T/out" 2>"$T/err"; rc=$?
qemu_check "$T/leaky.qcow2"
"$QC" check -q "$T/leaky.qcow2" >/dev/null 2>&1; rc2=$?
[ "$rc" = 0 ] && [ "$rc2" = 0 ] && [ "$QRC" = 0 ] && t_ok || t_fail "repair $rc, re-check $rc2, qemu $QRC: $(cat "$T/err")"

t_name "leaky: undo restores the bytes"
timeout 600 "$QC" undo "$T/leaky.qcow2.qcow2fsck-undo" "$T/leaky.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 0 ] && cmp -s "$T/leaky.qcow2" "$T/leaky.orig" && t_ok || t_fail "exit $rc: $(cat "$T/err")"

# 4 TiB of apparent size: 64 Mi clusters of 64 KiB (qemu-img judges it
# clean), 8 Gi clusters of 512 bytes (qemu-img cannot check it: its
# refcount array for 8 Gi clusters fails with "File too large"; the image
# is the same kind, so our verdict must be clean too)
fixture qemu-img create -q -f qcow2 "$T/t4.qcow2" 1M
fixture qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$T/t4.qcow2" >/dev/null
truncate -s 4T "$T/t4.qcow2"
t_name "4 TiB apparent size, 64 KiB clusters: check finishes, same verdict as qemu-img"
timeout 600 "$QC" check "$T/t4.qcow2" >"$T/out" 2>"$T/err"; rc=$?
qemu_check "$T/t4.qcow2"
[ "$rc" = 0 ] && [ "$QRC" = 0 ] && t_ok || t_fail "exit $rc, qemu $QRC: $(cat "$T/err")"
costs "4 TiB apparent size, 64 KiB clusters" "$T/t4.qcow2" "$FAST" check "$T/t4.qcow2"
fixture qemu-img create -q -f qcow2 -o cluster_size=512 "$T/t4s.qcow2" 1M
fixture qemu-io -f qcow2 -c 'write -P 0x33 0 64k' "$T/t4s.qcow2" >/dev/null
truncate -s 4T "$T/t4s.qcow2"
t_name "4 TiB apparent size, 512-byte clusters: check finishes clean"
timeout 600 "$QC" check "$T/t4s.qcow2" >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc: $(cat "$T/err")"
costs "4 TiB apparent size, 512-byte clusters" "$T/t4s.qcow2" "$FAST" check "$T/t4s.qcow2"

# The shape is clean by QEMU's judgement (checked on 8 snapshots: qemu-img
# reads every L1 table whole, 32 GiB for 1000, which takes minutes)
$MK holes "$T/holes8.qcow2" 8
t_name "8 snapshot L1 tables in holes: clean for qcow2fsck and qemu-img"
timeout 600 "$QC" check "$T/holes8.qcow2" >"$T/out" 2>"$T/err"; rc=$?
qemu_check "$T/holes8.qcow2"
[ "$rc" = 0 ] && [ "$QRC" = 0 ] && t_ok || t_fail "exit $rc, qemu $QRC: $(cat "$T/err")"
rm -f "$T/holes8.qcow2"

$MK holes "$T/holes.qcow2" 1000
t_name "1000 snapshot L1 tables in holes: check finishes clean"
timeout 600 "$QC" check "$T/holes.qcow2" >"$T/out" 2>"$T/err"; rc=$?
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc: $(cat "$T/err")"
costs "1000 snapshot L1 tables in holes: check" "$T/holes.qcow2" "$FAST" check "$T/holes.qcow2"

timeout 600 "$QC" info --output=json "$T/holes.qcow2" >"$T/i.json" 2>"$T/err"; rc=$?
n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["snapshots"]))' "$T/i.json" 2>/dev/null)
[ "$rc" = 0 ] && [ "$n" = 1000 ] && t_ok || t_fail "exit $rc, $n snapshots: $(cat "$T/err")"
costs "1000 snapshot L1 tables in holes: info" "$T/holes.qcow2" "$FAST" info --output=json "$T/holes.qcow2"

t_done
