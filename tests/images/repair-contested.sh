#!/bin/sh
# repair-contested.sh - a table that shares its cluster with another
# structure is never edited in place: the bytes belong to both, so any
# edit would also change the other one (found by fuzz/fuzz_repair.c, run
# R5: an active L1 table at offset 0 had its entry 9 zeroed, which zeroed
# the header's incompatible features).  Also: every COPIED problem the
# planner could not reach is listed in the plan's "left" with a reason.
#
# Each case: the check reports the overlap and the problem inside the
# shared cluster; the repair plans no write into that cluster, lists the
# problem as left, leaves the shared bytes and the guest content as they
# were, and undo restores the file byte for byte.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

C=0x8000000000000000

# bytes IMG OFF LEN: sha256 of a byte range.
bytes() { python3 -c 'import hashlib,sys; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); print(hashlib.sha256(f.read(int(sys.argv[3]))).hexdigest())' "$@"; }

# contested_case LABEL IMG CLUSTER_OFF REFDIR CODE OVERLAP: the assertions above.
# CODE is the problem inside the shared cluster; OVERLAP the overlap code;
# REFDIR the guest content saved from the damaged image, or - when QEMU
# cannot read the damaged image (then the file is compared as a whole).
contested_case() {
	_l=$1 _i=$2 _off=$3 _ref=$4 _code=$5 _ov=$6
	run_check "$_i"
	t_name "$_l: check reports $_ov and $_code (exit 2)"
	_c=$(json_codes)
	if [ "$RC" = 2 ] && printf '%s\n' "$_c" | grep -qx "$_ov" && printf '%s\n' "$_c" | grep -qx "$_code"; then
		t_ok; else t_fail "exit $RC, codes $(printf '%s' "$_c" | tr '\n' ' ')"; fi
	_d=$(sha "$_i")
	_b=$(bytes "$_i" "$_off" 65536)
	qemu_repair_all "$_i" "$_l"
	run_repair "$_i" --undo-file="$T/undo.$_l"
	t_name "$_l: no planned write lands in the shared cluster at $_off"
	_in=$(rjson "[p['offset'] for p in r['plan'] if p['offset'] < $_off + 65536 and p['offset'] + p['length'] > $_off]")
	[ "$_in" = "[]" ] && t_ok || t_fail "writes at $_in"
	t_name "$_l: $_code is listed as left, with a reason"
	[ "$(rjson "any(l['code'] == '$_code' and l['reason'] for l in r['left'])")" = True ] &&
		t_ok || t_fail "left: $(rjson "[l['code'] for l in r['left']]")"
	t_name "$_l: repair does not claim success (exit 2: corruption left)"
	[ "$RRC" = 2 ] && t_ok || t_fail "exit $RRC"
	t_name "$_l: the shared cluster is unchanged"
	[ "$(bytes "$_i" "$_off" 65536)" = "$_b" ] && t_ok || t_fail "changed"
	[ "$_ref" = - ] || guest_same "$_i" "$_ref" "$_l"
	t_name "$_l: undo (when anything was written) restores the damaged image byte for byte"
	if [ ! -e "$T/undo.$_l" ]; then
		[ "$(sha "$_i")" = "$_d" ] && t_ok || t_fail "image changed without an undo file"
	elif "$QC" undo "$T/undo.$_l" "$_i" >/dev/null 2>"$T/undo.err" && [ "$(sha "$_i")" = "$_d" ]; then
		t_ok
	else
		t_fail "undo: $(cat "$T/undo.err")"
	fi
	t_name "$_l: a second repair plans the same (nothing new appears)"
	cp "$_i" "$T/again.qcow2"
	run_repair "$T/again.qcow2" --dry-run
	_p1=$(rjson "sorted(p['code'] for p in r['plan'])")
	"$QC" repair --dry-run --output=json "$_i" >"$T/dry2.json" 2>/dev/null
	[ "$_p1" = "$(python3 -c 'import json,sys; print(sorted(p["code"] for p in json.load(open(sys.argv[1]))["plan"]))' "$T/dry2.json")" ] &&
		t_ok || t_fail "plans differ"
}

# 1. The active L1 table moved onto the header (l1_table_offset 0) of a
# lazy_refcounts image: L1 entry 10 is the compatible-features field
# (value 1: flags without an L2 offset).  Zeroing that "entry" would turn
# lazy refcounts off.  qemu-img check (doc/format.md §9.3) reports reserved bits and a
# reference past EOF, never that the L1 is the header.  The header-field
# planner restores l1_table_offset to the one leaked table shaped like the
# L1 (doc/repair.md "Header fields"), so no edit lands in the header's
# fields as L1 entries: the header write changes l1_table_offset alone.
I=$T/l1-on-header.qcow2
mk "$I" 16G lazy_refcounts=on
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 1M' "$I" >/dev/null
cp "$I" "$T/l1-on-header.orig.qcow2"
l1=$($POKE "$I" header.l1_table_offset)
$POKE "$I" header.l1_table_offset 0
run_check "$I"
t_name "l1-on-header: check reports overlap-metadata and l1-entry-no-offset (exit 2)"
_c=$(json_codes)
if [ "$RC" = 2 ] && printf '%s\n' "$_c" | grep -qx overlap-metadata && printf '%s\n' "$_c" | grep -qx l1-entry-no-offset; then
	t_ok; else t_fail "exit $RC, codes $(printf '%s' "$_c" | tr '\n' ' ')"; fi
_d=$(sha "$I")
qemu_repair_all "$I" l1-on-header
run_repair "$I" --undo-file="$T/undo.l1-on-header"
t_name "l1-on-header: the only write in the header cluster is l1_table_offset (bytes 40..47)"
[ "$(rjson "all(p['offset'] >= 40 and p['offset'] + p['length'] <= 48 for p in r['plan'] if p['offset'] < 65536)")" = True ] &&
	t_ok || t_fail "$(rjson "[(p['offset'], p['length']) for p in r['plan']]")"
t_name "l1-on-header: repair exits 0, l1_table_offset restored to $l1"
[ "$RRC" = 0 ] && [ "$($POKE "$I" header.l1_table_offset)" = "$l1" ] && t_ok || t_fail "exit $RRC, $($POKE "$I" header.l1_table_offset)"
expect_clean "$I" "l1-on-header: after repair"
expect_qemu "$I" 0 "(l1-on-header: after repair)"
t_name "l1-on-header: guest content unchanged (qemu-img compare with the undamaged image)"
qemu-img compare -q "$T/l1-on-header.orig.qcow2" "$I" && t_ok || t_fail "differs"
t_name "l1-on-header: the compatible features field keeps lazy_refcounts"
[ "$($POKE "$I" header.compatible_features)" = 0x1 ] && t_ok || t_fail "$($POKE "$I" header.compatible_features)"
t_name "l1-on-header: undo restores the damaged image byte for byte"
"$QC" undo "$T/undo.l1-on-header" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$_d" ] && t_ok || t_fail "undo"

# 2. A data pointer in the second active L2 table aimed at the first L2
# table (which the walk claimed first, as an L2 table): that cluster is now
# also "guest data" of guest 512M+320K.  The header -> L1 -> L2 chain owns
# the table, so the data pointer is the wrong one: the table repair drops
# it (the guest cluster reads zeros, doc/repair.md "Repairing damaged
# pointers"), the cluster is no longer contested, and the COPIED-only
# entry inside the table is then cleared as in a plain image.  qemu-img
# check -r all clears COPIED on the pointer and on the L1 entry and exits
# 0: the guest keeps reading (and writing) the L2 table as its data.
P=$T/two-l2.qcow2
mk "$P" 1G
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 512M 64k' "$P" >/dev/null
l2a=$(entry_off "$P" 'l1[0]')
at=$((l2a + 7 * 8))
I=$T/plain.qcow2
cp "$P" "$I"
$POKE "$I" 'l2[0][7]' "$C"
run_repair "$I" --dry-run
t_name "two-l2 control: without the second pointer the entry at $at is cleared"
[ "$(rjson "[(p['code'], p['offset']) for p in r['plan']]")" = "[('l2-copied-no-offset', $at)]" ] &&
	t_ok || t_fail "$(rjson "r['plan']")"
I=$T/data-on-l2.qcow2
cp "$P" "$I"
$POKE "$I" 'l2[0][7]' "$C"
$POKE "$I" 'l2[1][5]' "$l2a"
$POKE "$I" 'l2[1][5]' "|$C"
guest_save "$I" "$T/ref-l2"
expect_code "$I" overlap-data-metadata 2 corruption
d=$(sha "$I")
qemu_repair_all "$I" data-on-l2
run_repair "$I" --undo-file="$T/undo.data-on-l2"
t_name "data-on-l2: the data pointer is dropped and the COPIED-only entry cleared; exit 0"
[ "$RRC" = 0 ] && [ "$(rjson "sorted(p['code'] for p in r['plan'])")" = "['l2-copied-no-offset', 'overlap-data-metadata']" ] &&
	t_ok || t_fail "exit $RRC plan $(rjson "r['plan']") left $(rjson "r['left']")"
expect_clean "$I" "data-on-l2: after repair"
expect_qemu "$I" 0 "(data-on-l2: after repair)"
t_name "data-on-l2: only guest 512M+320K changed, and it reads zeros (it read the L2 table)"
raw "$I" "$T/data-on-l2.raw"
python3 "$HERE/../cmp-clusters.py" "$T/ref-l2/active.raw" "$T/data-on-l2.raw" 65536 0x20050000:0x10000 >/dev/null &&
	t_ok || t_fail "guest content"
t_name "data-on-l2: undo restores the damaged image byte for byte"
"$QC" undo "$T/undo.data-on-l2" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$d" ] && t_ok || t_fail undo

# 3. A refcount table entry naming the active L2 table (refblock and L2
# share a cluster) while an L2 entry carries a spurious COPIED flag.  In
# round 1 the COPIED planner does not edit a table another structure
# claims: the "refblock" is disproved by its content and the refcount
# structure is rebuilt past the end of the file.  Round 2 plans on the
# image as that rebuild leaves it (doc/repair.md "Planning rounds"): the L2
# table is the L1 chain's alone, so the flag is cleared there.  (Before
# planning rounds the flag was left, exit 2, for a second repair.)
P=$T/pristine.qcow2
pristine "$P"
I=$T/refblock-on-l2.qcow2
cp "$P" "$I"
l2a=$(entry_off "$P" 'l1[0]')
$POKE "$I" 'l2[0][0]' "|$C"
$POKE "$I" 'reftable[1]' "$l2a"
guest_save "$I" "$T/ref-rb"
qemu_repair_all "$I" refblock-on-l2
repair_case refblock-on-l2 "$I" "$T/ref-rb" overlap-metadata
t_name "refblock-on-l2: the L2 table is edited only in round 2, after the rebuild of round 1"
cp "$P" "$T/rb2.qcow2"
$POKE "$T/rb2.qcow2" 'l2[0][0]' "|$C"
$POKE "$T/rb2.qcow2" 'reftable[1]' "$l2a"
run_repair "$T/rb2.qcow2" --dry-run
[ "$(rjson "sorted({p['round'] for p in r['plan'] if $l2a <= p['offset'] < $l2a + 65536})")" = "[2]" ] &&
	[ "$(rjson "any(p['round'] == 1 and p['phase'] == 'switch' for p in r['plan'])")" = True ] &&
	t_ok || t_fail "$(rjson "[(p['round'], p['phase'], p['offset']) for p in r['plan']]")"

# 4. The snapshot's L1 table pointer aimed at the active L2 table.
I=$T/snapl1-on-l2.qcow2
cp "$P" "$I"
$POKE "$I" 'l2[0][0]' "|$C"
$POKE "$I" 'snapshot[0].l1_table_offset' "$l2a"
fixture raw "$I" "$T/active-only.raw"
mkdir -p "$T/ref-sn" && mv "$T/active-only.raw" "$T/ref-sn/active.raw"
run_repair "$I" --dry-run
t_name "snapl1-on-l2: COPIED problems in the active L2 are listed as left"
[ "$(rjson "{'l2-copied-spurious', 'l1-copied-spurious'} <= {l['code'] for l in r['left']}")" = True ] &&
	t_ok || t_fail "$(rjson "[l['code'] for l in r['left']]")"
t_name "snapl1-on-l2: no planned write lands in the active L2 table"
[ "$(rjson "[p['offset'] for p in r['plan'] if $l2a <= p['offset'] < $l2a + 65536]")" = "[]" ] && t_ok || t_fail "writes"

t_done
