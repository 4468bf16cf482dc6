#!/bin/sh
# cli-outcomes.sh - every outcome is scriptable (README "Exit codes" and
# "Output"): the JSON "exit-code" equals the process status for check,
# repair and info, on success and on every failure (open failures print an
# object with "error"); files that are not qcow2 (empty, raw, VMDK, QED,
# VDI, VHDX, VPC, qcow v1, made by qemu-img) are reported as not-qcow2 with
# what they are and no corruption; a FIFO or a character device is refused
# without blocking; options may follow IMAGE; sizes take KiB/MiB; every
# subcommand has its own --help; repair -q prints nothing and exits with
# the verdict; a refused repair exits 2 with nothing changed; a backing
# format that names no QEMU driver is reported (QEMU refuses the image).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

sha() { sha256sum "$1" | cut -d' ' -f1; }
jget() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@" 2>&1; }

# json_matches CMD...: runs CMD (stdout JSON) and asserts exit-code == status.
json_matches() {
	"$@" >"$T/o.json" 2>"$T/o.err"; JRC=$?
	_ec=$(jget "$T/o.json" 'j["exit-code"]')
	[ "$_ec" = "$JRC" ]
}

mk "$T/a.qcow2" 64M
fill "$T/a.qcow2"

# --- JSON for every outcome ---------------------------------------------
t_name "check: exit-code equals the status on a clean image (0)"
json_matches "$QC" check --output=json "$T/a.qcow2" && [ $JRC = 0 ] && t_ok || t_fail "status $JRC json $_ec"

t_name "check: a missing file gives a JSON object (open-failed, check-errors 1, exit-code 1)"
if json_matches "$QC" check --output=json "$T/nope.qcow2" && [ $JRC = 1 ] &&
   [ "$(jget "$T/o.json" 'j["error"]["code"], j["check-errors"], j["corruptions"]')" = "('open-failed', 1, 0)" ] &&
   [ "$(wc -l <"$T/o.err")" = 1 ]; then t_ok; else t_fail "status $JRC: $(cat "$T/o.json" "$T/o.err")"; fi

t_name "info: a missing file gives a JSON object with exit-code 1"
json_matches "$QC" info --output=json "$T/nope.qcow2" && [ $JRC = 1 ] && t_ok || t_fail "status $JRC"
t_name "repair: a missing file gives a JSON object with exit-code 1"
json_matches "$QC" repair --output=json "$T/nope.qcow2" && [ $JRC = 1 ] && t_ok || t_fail "status $JRC"
t_name "info: exit-code 0 on a good image"
json_matches "$QC" info --output=json "$T/a.qcow2" && [ $JRC = 0 ] && t_ok || t_fail "status $JRC"

# --- not qcow2 ----------------------------------------------------------
# not_qcow2 FILE WHAT: exit 63, severity not-qcow2, corruptions 0, "not-qcow2": WHAT.
not_qcow2() {
	t_name "not qcow2: ${1##*/} is '$2', exit 63, no corruption"
	if json_matches "$QC" check --output=json "$1" && [ $JRC = 63 ] &&
	   [ "$(jget "$T/o.json" 'j["corruptions"], j["leaks"], j["not-qcow2"], [p["severity"] for p in j["problems"]]')" = "(0, 0, '$2', ['not-qcow2'])" ]; then
		t_ok; else t_fail "status $JRC: $(jget "$T/o.json" 'j["not-qcow2"], j["problems"]')"; fi
	t_name "not qcow2: the human report of ${1##*/} says what it is"
	"$QC" check "$1" 2>/dev/null | grep -qF "(found: $2)" && t_ok || t_fail "$("$QC" check "$1" 2>&1)"
	t_name "not qcow2: info --output=json on ${1##*/}: an object, exit-code 63"
	json_matches "$QC" info --output=json "$1" && [ $JRC = 63 ] &&
		[ "$(jget "$T/o.json" 'j["error"]["code"]')" = not-qcow2 ] && t_ok || t_fail "status $JRC"
	t_name "not qcow2: repair leaves ${1##*/} alone, exit 63 = exit-code"
	_s=$(sha "$1")
	json_matches "$QC" repair --output=json "$1" && [ $JRC = 63 ] && [ "$(sha "$1")" = "$_s" ] &&
		t_ok || t_fail "status $JRC"
}
: >"$T/empty.img"
not_qcow2 "$T/empty.img" "empty file"
head -c 1048576 /dev/zero >"$T/raw.img"
not_qcow2 "$T/raw.img" "raw or unknown"
# made by qemu-img create (fixture_try: retried; a format it cannot make is
# a fixture failure and its cases are skipped)
for f in vmdk:VMDK qed:QED vdi:VDI vhdx:VHDX vpc:"VHD (VPC)" qcow:"qcow (version 1)"; do
	fmt=${f%%:*} what=${f#*:}
	fixture_try qemu-img create -q -f "$fmt" "$T/x.$fmt" 16M && not_qcow2 "$T/x.$fmt" "$what"
done

# --- files that must not be opened blocking ----------------------------
mkfifo "$T/fifo"
t_name "a FIFO is refused at once (no blocking open), exit 1 = exit-code, error not-a-file"
if json_matches timeout 120 "$QC" check --output=json "$T/fifo" && [ $JRC = 1 ] &&
   [ "$(jget "$T/o.json" 'j["error"]["code"]')" = not-a-file ] && grep -q "FIFO" "$T/o.err"; then
	t_ok; else t_fail "status $JRC: $(cat "$T/o.err")"; fi
# (timeout 120: a guard only, an open that blocks on the FIFO never
# returns; it is not a time limit, so a loaded machine cannot fail it)
for c in info repair; do
	t_name "$c refuses a FIFO at once"
	timeout 120 "$QC" $c "$T/fifo" >/dev/null 2>&1; rc=$?
	[ $rc = 1 ] && t_ok || t_fail "exit $rc"
done
t_name "undo refuses a FIFO at once"
timeout 120 "$QC" undo "$T/nope.undo" "$T/fifo" >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && t_ok || t_fail "exit $rc"
t_name "a character device (/dev/null) is refused, exit 1"
timeout 120 "$QC" check /dev/null >/dev/null 2>"$T/err"; rc=$?
[ $rc = 1 ] && grep -q "character device" "$T/err" && t_ok || t_fail "exit $rc: $(cat "$T/err")"
t_name "a directory is refused, exit 1"
"$QC" check "$T" >/dev/null 2>&1; rc=$?
[ $rc = 1 ] && t_ok || t_fail "exit $rc"

# --- command line -------------------------------------------------------
t_name "options after IMAGE: check IMAGE --output=json -q"
out=$("$QC" check "$T/a.qcow2" --output=json -q); rc=$?
[ $rc = 0 ] && [ -z "$out" ] && t_ok || t_fail "exit $rc"
t_name "options after IMAGE: check IMAGE --output=json prints JSON"
"$QC" check "$T/a.qcow2" --output=json | python3 -c 'import json,sys; json.load(sys.stdin)' && t_ok || t_fail "not JSON"
t_name "options after IMAGE: info IMAGE --output=json"
"$QC" info "$T/a.qcow2" --output=json | python3 -c 'import json,sys; json.load(sys.stdin)' && t_ok || t_fail "not JSON"
t_name "options after IMAGE: repair IMAGE --dry-run writes nothing"
s=$(sha "$T/a.qcow2")
"$QC" repair "$T/a.qcow2" --dry-run >/dev/null 2>&1; rc=$?
[ $rc = 0 ] && [ "$(sha "$T/a.qcow2")" = "$s" ] && t_ok || t_fail "exit $rc"
t_name "an IMAGE after -- may start with a dash"
cp "$T/a.qcow2" "$T/-dash.qcow2"
(cd "$T" && "$QC" check -q -- -dash.qcow2); rc=$?
[ $rc = 0 ] && t_ok || t_fail "exit $rc"
t_name "two IMAGEs are a usage error (64)"
"$QC" check "$T/a.qcow2" "$T/a.qcow2" >/dev/null 2>&1; rc=$?
[ $rc = 64 ] && t_ok || t_fail "exit $rc"
for s in 64M 64MiB 1G 1GiB 16777216 16384K 16384KiB 1T 1TiB; do
	t_name "--max-mem=$s is accepted"
	"$QC" check -q --max-mem=$s "$T/a.qcow2"; rc=$?
	[ $rc = 0 ] && t_ok || t_fail "exit $rc"
done
for s in 64MB 64Mi 64iB 1.5G -1M 0 M; do
	t_name "--max-mem=$s is a usage error"
	"$QC" check -q --max-mem=$s "$T/a.qcow2" 2>/dev/null; rc=$?
	[ $rc = 64 ] && t_ok || t_fail "exit $rc"
done
for c in check repair undo info; do
	t_name "$c --help: its own usage"
	"$QC" $c --help >"$T/h" 2>&1; rc=$?
	others=$(grep -c "qcow2fsck \(check\|repair\|undo\|info\) " "$T/h")
	[ $rc = 0 ] && grep -q "qcow2fsck $c " "$T/h" && [ "$others" = 1 ] && t_ok ||
		t_fail "exit $rc, $others usage lines"
	t_name "$c IMAGE --help (after the operand) prints the same"
	"$QC" $c x --help | cmp -s - "$T/h" && t_ok || t_fail "differs"
done

# --- repair outcomes ----------------------------------------------------
# a leak: repair -q prints nothing and exits 0 (the state after)
cp "$T/a.qcow2" "$T/leak.qcow2"
$POKE "$T/leak.qcow2" 'l2[0][0]' 0 >/dev/null
t_name "repair -q on a leak: nothing on stdout, exit 0, qemu-img check clean"
out=$("$QC" repair -q --undo-file="$T/leak.undo" "$T/leak.qcow2"); rc=$?
qemu-img check "$T/leak.qcow2" >/dev/null 2>&1; q=$?
[ $rc = 0 ] && [ -z "$out" ] && [ $q = 0 ] && t_ok || t_fail "exit $rc, qemu $q, out: $out"
t_name "repair --output=json after a repair: exit-code 0 = status"
cp "$T/a.qcow2" "$T/leak2.qcow2"
$POKE "$T/leak2.qcow2" 'l2[0][0]' 0 >/dev/null
json_matches "$QC" repair --output=json --undo-file="$T/leak2.undo" "$T/leak2.qcow2" && [ $JRC = 0 ] &&
	[ "$(jget "$T/o.json" 'j["leaks-fixed"] > 0')" = True ] && t_ok || t_fail "status $JRC"
# an existing journal: could not run, exit 1, JSON error journal-failed
cp "$T/a.qcow2" "$T/leak3.qcow2"
$POKE "$T/leak3.qcow2" 'l2[0][0]' 0 >/dev/null
echo keep >"$T/leak3.undo"
s=$(sha "$T/leak3.qcow2")
t_name "repair that cannot write its journal: exit 1 = exit-code, error journal-failed, nothing changed"
json_matches "$QC" repair --output=json --undo-file="$T/leak3.undo" "$T/leak3.qcow2" && [ $JRC = 1 ] &&
	[ "$(jget "$T/o.json" 'j["error"]["code"], j["check-errors"]')" = "('journal-failed', 1)" ] &&
	[ "$(sha "$T/leak3.qcow2")" = "$s" ] && t_ok || t_fail "status $JRC: $(cat "$T/o.json")"
t_name "repair -q with the same failure: nothing on stdout, exit 1"
out=$("$QC" repair -q --undo-file="$T/leak3.undo" "$T/leak3.qcow2" 2>/dev/null); rc=$?
[ $rc = 1 ] && [ -z "$out" ] && t_ok || t_fail "exit $rc"
# corruption the repair refuses (an L1 entry 0x200 into the orphaned data
# cluster of guest 0: that cluster may be the real L2 table, so the entry is
# neither restored nor dropped): exit 2, nothing changed, no journal, JSON agrees
cp "$T/a.qcow2" "$T/refuse.qcow2"
_d0=$(python3 -c 'import sys; print(hex((int(sys.argv[1], 16) & 0x00fffffffffffe00) | 0x200))' "$($POKE "$T/a.qcow2" 'l2[0][0]')")
$POKE "$T/refuse.qcow2" 'l1[0]' "$_d0" >/dev/null
s=$(sha "$T/refuse.qcow2")
t_name "a refused repair exits 2 (= exit-code) with nothing changed and no journal"
json_matches "$QC" repair --output=json --undo-file="$T/refuse.undo" "$T/refuse.qcow2" && [ $JRC = 2 ] &&
	[ "$(sha "$T/refuse.qcow2")" = "$s" ] && [ ! -e "$T/refuse.undo" ] && t_ok || t_fail "status $JRC"
t_name "repair -q on it: nothing on stdout, exit 2"
out=$("$QC" repair -q --undo-file="$T/refuse.undo" "$T/refuse.qcow2" 2>/dev/null); rc=$?
[ $rc = 2 ] && [ -z "$out" ] && [ "$(sha "$T/refuse.qcow2")" = "$s" ] && t_ok || t_fail "exit $rc"

# A check after writing that cannot complete rolls the repair back: exit 1,
# error recheck-failed, the image byte for byte as before.  The memory cap
# is counted in requested bytes (deterministic), so the smallest cap the
# damaged image's check and repair plan fit in is found by bisection (a dry
# run plans under the same cap); the re-check then gets that cap minus what
# the plan holds, which the repaired image's check does not fit in.
cp "$T/a.qcow2" "$T/rb.qcow2"
$POKE "$T/rb.qcow2" header.refcount_table_offset 0x40000000 >/dev/null
lo=1 hi=67108864
while [ $((hi - lo)) -gt 1 ]; do
	mid=$(((lo + hi) / 2))
	"${QC_FAST:-$QC}" repair --dry-run -q --max-mem=$mid "$T/rb.qcow2" 2>/dev/null
	if [ $? = 1 ]; then lo=$mid; else hi=$mid; fi
done
s=$(sha "$T/rb.qcow2")
json_matches "$QC" repair --output=json --max-mem=$hi --undo-file="$T/rb.undo" "$T/rb.qcow2"
if [ $JRC = 0 ]; then
	echo "fixture failure: the repaired image fits in --max-mem=$hi too; rollback case skipped" >&2
else
	t_name "a re-check that hits the memory cap rolls the repair back: exit 1 = exit-code, image unchanged"
	[ $JRC = 1 ] && [ "$(jget "$T/o.json" 'j["error"]["code"]')" = recheck-failed ] &&
		[ "$(sha "$T/rb.qcow2")" = "$s" ] && grep -q "rolled back" "$T/o.err" && t_ok ||
		t_fail "status $JRC: $(cat "$T/o.err")"
fi

# --- backing format -----------------------------------------------------
fixture qemu-img create -q -f raw "$T/base.raw" 64M
fixture qemu-img create -q -f qcow2 -b "$T/base.raw" -F raw "$T/ov.qcow2"
t_name "a backing format QEMU knows (raw) is not reported"
run_check "$T/ov.qcow2"
[ "$RC" = 0 ] && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"
cp "$T/ov.qcow2" "$T/badfmt.qcow2"
off=$($POKE "$T/badfmt.qcow2" --addr 'ext[0xe2792aca].data+0' | cut -d' ' -f1)
printf 'rax' | dd of="$T/badfmt.qcow2" bs=1 seek="$off" conv=notrunc 2>/dev/null
expect_code "$T/badfmt.qcow2" ext-backing-format-unknown 2 corruption
t_name "qemu-img refuses the image with the unknown backing format (Unknown driver)"
qemu-img check "$T/badfmt.qcow2" >/dev/null 2>"$T/err"; q=$?
[ $q = 1 ] && grep -q "Unknown driver 'rax'" "$T/err" && t_ok || t_fail "qemu-img exit $q: $(cat "$T/err")"
t_name "repair refuses it: exit 2, nothing changed"
s=$(sha "$T/badfmt.qcow2")
"$QC" repair --undo-file="$T/badfmt.undo" "$T/badfmt.qcow2" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && [ "$(sha "$T/badfmt.qcow2")" = "$s" ] && t_ok || t_fail "exit $rc"
t_done
