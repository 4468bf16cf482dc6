#!/bin/sh
# repair-crash.sh - crash safety of the apply: a repair that touches every
# phase (new refcount structures past EOF, the header switch, in-place
# COPIED fixes, the dirty bit, the conditional corrupt-bit write) is
# stopped right after write k, for every k, by the test-only build
# build/test/qcow2fsck-faults (QC_FAULTS; tests/faults/faults.c:
# QCOW2FSCK_FAULT_CRASH_AFTER=k exits 99 after the k-th write, no sync, no
# rollback).  Each time, `undo` restores the damaged image byte for byte.
# A write failing after write k (QCOW2FSCK_FAULT_FAIL_AFTER=k, the I/O
# layer's fault injection) is rolled back: exit 1, image unchanged.
# A completed repair re-checks clean.  Also: undo refuses a foreign image,
# a damaged journal and a torn region (which --force restores).  And the
# production binaries carry no fault hook at all.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

QC_FAULTS=${QC_FAULTS:-$(dirname "$QC")/../test/qcow2fsck-faults}
for b in "$QC" "${QC_FAST:-$QC}"; do
	t_name "production binary ${b##*/build/} has no fault hook"
	if ! command -v strings >/dev/null 2>&1; then
		# without binutils: the variable names must not be in the file
		grep -q 'QCOW2FSCK_FAULT\|QCOW2FSCK_TEST' "$b" && t_fail "hook found" || t_ok
	else
		[ -z "$(strings "$b" | grep 'QCOW2FSCK_FAULT\|QCOW2FSCK_TEST\|qc_fault_')" ] && t_ok || t_fail "hook found"
	fi
done
t_name "the test-only build has the fault hook"
if [ -x "$QC_FAULTS" ] && grep -q QCOW2FSCK_FAULT_CRASH_AFTER "$QC_FAULTS"; then t_ok; else
	t_fail "$QC_FAULTS missing: make build/test/qcow2fsck-faults"; t_done; exit 1; fi

P=$T/pristine.qcow2
pristine "$P"
guest_save "$P" "$T/ref"
D=$T/damaged.qcow2
cp "$P" "$D"
python3 "$HERE/../poke.py" "$D" 'reftable[0]' '|1'
python3 "$HERE/../poke.py" "$D" 'l2[0][48]' '^0x8000000000000000'
python3 "$HERE/../poke.py" "$D" header.incompatible_features '|3'
ds=$(sha "$D")
run_repair "$D" --dry-run
n=$(rjson 'len(r["plan"])')
t_name "the plan has writes in every phase"
[ "$(rjson 'sorted({w["phase"] for w in r["plan"]})')" = "['final', 'header', 'in-place', 'new-structures', 'switch']" ] &&
	t_ok || t_fail "phases $(rjson '[w["phase"] for w in r["plan"]]')"
k=1
while [ "$k" -le "$n" ]; do
	I=$T/crash.qcow2
	cp "$D" "$I"
	rm -f "$T/undo.crash"
	QCOW2FSCK_FAULT_CRASH_AFTER=$k "$QC_FAULTS" repair --undo-file="$T/undo.crash" "$I" >/dev/null 2>&1
	rc=$?
	t_name "crash after write $k of $n: exit 99, then undo restores the damaged image"
	if [ "$rc" = 99 ] && "$QC" undo "$T/undo.crash" "$I" >/dev/null 2>"$T/u.err" && [ "$(sha "$I")" = "$ds" ]; then
		t_ok
	else
		t_fail "exit $rc; undo: $(cat "$T/u.err")"
	fi
	k=$((k + 1))
done
# the crash is really after write k: with k = n the repair never returns,
# with k = n + 1 it completes (exit 0)
I=$T/crash.qcow2
cp "$D" "$I"
rm -f "$T/undo.crash"
QCOW2FSCK_FAULT_CRASH_AFTER=$((n + 1)) "$QC_FAULTS" repair --undo-file="$T/undo.crash" "$I" >/dev/null 2>&1
rc=$?
t_name "no crash when the repair has fewer writes than k: exit 0"
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc"

# a write that fails after write k: the repair rolls back from its journal
for k in 1 $((n / 2)) $((n - 1)); do
	[ "$k" -ge 1 ] || continue
	I=$T/fail.qcow2
	cp "$D" "$I"
	rm -f "$T/undo.fail"
	QCOW2FSCK_FAULT_FAIL_AFTER=$k "$QC_FAULTS" repair --undo-file="$T/undo.fail" "$I" >/dev/null 2>"$T/f.err"
	rc=$?
	t_name "write $((k + 1)) of $n fails: exit 1, rolled back, image unchanged"
	if [ "$rc" = 1 ] && grep -q "rolled back" "$T/f.err" && [ "$(sha "$I")" = "$ds" ]; then
		t_ok
	else
		t_fail "exit $rc: $(cat "$T/f.err")"
	fi
done

I=$T/full.qcow2
cp "$D" "$I"
run_repair "$I" --undo-file="$T/undo.full"
t_name "the completed repair: exit 0, every write applied"
[ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = "$n" ] && t_ok || t_fail "exit $RRC"
expect_clean "$I" "completed repair"
expect_qemu "$I" 0 "(completed repair)"
guest_same "$I" "$T/ref" "completed repair"
t_name "both header bits are clear"
[ "$(python3 "$HERE/../poke.py" "$I" header.incompatible_features)" = 0x0 ] && t_ok || t_fail "bits left"

# A region torn by a crash in the middle of its write (neither its old
# nor its new bytes: one byte of an in-place edit changed): undo refuses
# it and says --force; undo --force restores the damaged image exactly,
# the witness ranges (header cluster, tables) still binding the journal.
toff=$(rjson '[w["offset"] for w in r["plan"] if w["phase"] == "in-place"][0]')
cp "$I" "$T/torn.qcow2"
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0x55]))' "$T/torn.qcow2" "$toff"
tsum=$(sha "$T/torn.qcow2")
"$QC" undo "$T/undo.full" "$T/torn.qcow2" >/dev/null 2>"$T/u.err"
rc=$?
t_name "undo refuses a torn region (exit 1, image unchanged) and points to --force"
[ "$rc" = 1 ] && [ "$(sha "$T/torn.qcow2")" = "$tsum" ] && grep -q -- "--force" "$T/u.err" && t_ok ||
	t_fail "exit $rc: $(cat "$T/u.err")"
"$QC" undo --force "$T/undo.full" "$T/torn.qcow2" >"$T/u.out" 2>"$T/u.err"
rc=$?
t_name "undo --force restores the damaged image byte for byte and names the torn region"
[ "$rc" = 0 ] && [ "$(sha "$T/torn.qcow2")" = "$ds" ] && grep -q "torn region" "$T/u.out" && t_ok ||
	t_fail "exit $rc: $(cat "$T/u.err")"

# undo refuses an image it was not written for (the pristine image, and a
# repaired image whose header changed since), and leaves it alone.
cp "$P" "$T/other.qcow2"
os=$(sha "$T/other.qcow2")
"$QC" undo "$T/undo.full" "$T/other.qcow2" >/dev/null 2>"$T/u.err"
rc=$?
t_name "undo refuses a foreign image (exit 1, clear message, image unchanged)"
if [ "$rc" = 1 ] && [ "$(sha "$T/other.qcow2")" = "$os" ] && grep -q "not written for" "$T/u.err"; then
	t_ok; else t_fail "exit $rc: $(cat "$T/u.err")"; fi
cp "$I" "$T/changed.qcow2"
python3 "$HERE/../poke.py" "$T/changed.qcow2" header.l1_size +1
cs=$(sha "$T/changed.qcow2")
"$QC" undo "$T/undo.full" "$T/changed.qcow2" >/dev/null 2>"$T/u.err"
rc=$?
t_name "undo refuses the repaired image once its header changed"
[ "$rc" = 1 ] && [ "$(sha "$T/changed.qcow2")" = "$cs" ] && t_ok || t_fail "exit $rc"

# undo refuses a damaged journal.
cp "$T/undo.full" "$T/undo.bad"
python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$T/undo.bad"
rs=$(sha "$I")
"$QC" undo "$T/undo.bad" "$I" >/dev/null 2>"$T/u.err"
rc=$?
t_name "undo refuses a damaged journal (exit 1, image unchanged)"
if [ "$rc" = 1 ] && [ "$(sha "$I")" = "$rs" ] && grep -q "damaged undo journal" "$T/u.err"; then
	t_ok; else t_fail "exit $rc: $(cat "$T/u.err")"; fi
head -c 200 "$T/undo.full" >"$T/undo.short"
"$QC" undo "$T/undo.short" "$I" >/dev/null 2>"$T/u.err"
rc=$?
t_name "undo refuses a truncated journal"
[ "$rc" = 1 ] && [ "$(sha "$I")" = "$rs" ] && t_ok || t_fail "$(cat "$T/u.err")"

# undo --dry-run writes nothing; then the real undo.
"$QC" undo --dry-run "$T/undo.full" "$I" >/dev/null 2>&1
rc=$?
t_name "undo --dry-run writes nothing"
[ "$rc" = 0 ] && [ "$(sha "$I")" = "$rs" ] && t_ok || t_fail "changed"
"$QC" undo "$T/undo.full" "$I" >/dev/null 2>&1
t_name "undo of the completed repair restores the damaged image"
[ "$(sha "$I")" = "$ds" ] && t_ok || t_fail "differs"

# An existing journal is never overwritten: repair refuses to start.
echo keep >"$T/undo.exists"
"$QC" repair --undo-file="$T/undo.exists" "$I" >/dev/null 2>"$T/u.err"
rc=$?
t_name "repair with an existing --undo-file: exit 1, nothing written, journal kept"
[ "$rc" = 1 ] && [ "$(sha "$I")" = "$ds" ] && [ "$(cat "$T/undo.exists")" = keep ] && t_ok || t_fail "exit $rc"
t_done
