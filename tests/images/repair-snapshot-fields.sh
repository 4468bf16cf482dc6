#!/bin/sh
# repair-snapshot-fields.sh - one damaged field of a snapshot table entry
# (doc/repair.md "Snapshot tables"), above all on the LAST entry, which has
# no next entry to resynchronise on: its lengths are measured against the
# table's end (checker/snaplast.c).  Real images with one, two and three
# snapshots made with qemu-img and qemu-io, one with VM state (savevm), and
# one of 4 KiB clusters (an l1_size that runs the table past the end of the
# file);
# each damage made by tests/poke.py on a copy.  Each case:
#   check reports it -> repair exits 0 -> both checkers clean ->
#   `qemu-img snapshot -l` shows the same IDs and names as before the
#   damage -> every snapshot (qemu-img convert -l snapshot.name=) and the
#   active layer read as before -> a second repair plans nothing -> undo
#   restores the damaged bytes.
# Side by side, `qemu-img check -r all` runs on a copy: what it does and
# what `qemu-img snapshot -l` then shows are printed, never asserted
# (QEMU ends "clean" with the snapshot's ID and name mangled).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# ids_names IMG: "ID NAME" per snapshot, as qemu-img lists them.
ids_names() { qemu-img snapshot -l "$1" 2>/dev/null | awk 'NR > 2 && NF >= 2 { print $1, $2 }'; }

# make_fixture IMG N: 16 MiB, data, N snapshots snap1..snapN of different content.
make_fixture() {
	mk "$1" 16M
	fill "$1"
	k=1
	while [ $k -le "$2" ]; do
		snap "$1" snap$k
		qemu-io -f qcow2 -c "write -P 0x3$k ${k}M 512k" "$1" >/dev/null
		k=$((k + 1))
	done
}

O=$T/one.qcow2
W=$T/two.qcow2
A=$T/three.qcow2
make_fixture "$O" 1
make_fixture "$W" 2
make_fixture "$A" 3
for f in one two three; do guest_save "$T/$f.qcow2" "$T/ref-$f"; expect_clean "$T/$f.qcow2" "fixture $f"; done
# VM state (-M none: a small state of its own clusters), on the only entry.
V=$T/vm.qcow2
mk "$V" 16M
fill "$V"
savevm "$V" vm1
HAVE_VM=1
if [ "$(snapshot_names "$V")" != vm1 ]; then
	echo "repair-snapshot-fields.sh: SKIP VM state cases: fixture failure (savevm did not make vm1)" >&2
	HAVE_VM=0
else
	guest_save "$V" "$T/ref-vm"
	expect_clean "$V" "fixture vm"
fi

# qemu_side IMG LABEL: what `qemu-img check -r all` does to a copy, and
# what `qemu-img snapshot -l` then lists (printed, not asserted).
qemu_side() {
	qemu_repair_all "$1" "$2"
	echo "qemu-img snapshot -l after qemu's -r all [$2]: $(qemu-img snapshot -l "$QIMG" 2>&1 | tail -n +3 | tr -s ' ' | sed 's/^/[/; s/$/]/' | tr '\n' ' ')"
	rm -f "$QIMG"
}

# field_case LABEL FIXTURE REF CODE POKE...: the full cycle on a copy of
# FIXTURE damaged by the POKE field/value pairs.
field_case() {
	_l=$1 _f=$2 _ref=$3 _code=$4; shift 4
	I=$T/$_l.qcow2
	cp "$_f" "$I"
	while [ $# -ge 2 ]; do $POKE "$I" "$1" "$2"; shift 2; done
	qemu_side "$I" "$_l"
	run_check "$I"
	t_name "$_l: check reports $_code"
	json_codes | grep -qx "$_code" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ') (exit $RC)"
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$_l"
	t_name "$_l: repair exits 0"
	[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC: $(rjson 'r["left"]' 2>&1)"
	expect_clean "$I" "$_l: after repair"
	expect_qemu "$I" 0 "($_l: after repair)"
	t_name "$_l: qemu-img snapshot -l shows the IDs and names of before the damage"
	_want=$(ids_names "$_f" | tr '\n' ' ')
	_got=$(ids_names "$I" | tr '\n' ' ')
	[ "$_want" = "$_got" ] && t_ok || t_fail "listed: $_got; want $_want"
	guest_same "$I" "$_ref" "$_l"
	_r=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo2.$_l"
	t_name "$_l: a second repair plans nothing and writes nothing"
	if [ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$_r" ] &&
	   [ ! -e "$T/undo2.$_l" ]; then t_ok; else t_fail "exit $RRC, plan $(rjson 'len(r["plan"])')"; fi
	t_name "$_l: undo restores the damaged image byte for byte"
	if "$QC" undo "$T/undo.$_l" "$I" >/dev/null 2>"$T/undo.err" && [ "$(sha "$I")" = "$_d" ]; then
		t_ok
	else
		t_fail "undo: $(cat "$T/undo.err")"
	fi
	rm -f "$I"
}

# --- the last entry's lengths (nothing follows to resynchronise on) -----------
# extra_data_size past 1024 (QEMU refuses the image) or short of the entry.
for m in ^0x8000 0xffffffff -0x10000 +0x10000; do
	field_case "one-extra$m" "$O" "$T/ref-one" snapshot-entry-lengths-invalid 'snapshot[0].extra_data_size' "$m"
done
field_case one-extra-8 "$O" "$T/ref-one" snapshot-extra-data-too-small 'snapshot[0].extra_data_size' 8
# The ID or name length: the strings then run over other clusters, or
# into the zeros after the entry.
for fl in id_str_size name_size; do
	for m in 0xffff +1 +0x100; do
		field_case "one-$fl$m" "$O" "$T/ref-one" snapshot-entry-lengths-invalid "snapshot[0].$fl" "$m"
	done
done
# The last of two and of three entries.
field_case two-extra "$W" "$T/ref-two" snapshot-entry-lengths-invalid 'snapshot[1].extra_data_size' 0xffffffff
field_case two-name "$W" "$T/ref-two" snapshot-entry-lengths-invalid 'snapshot[1].name_size' 0xffff
field_case three-id "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[2].id_str_size' 0xffff
field_case three-extra "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[2].extra_data_size' ^0x8000
# A middle entry (resynchronised on the next one, for comparison).
field_case three-mid-name "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[1].name_size' 0xffff

# --- l1_size past the format's limit: from disk_size and the L1's clusters -----
for m in 0xffffffff -0x10000 ^0x80000000; do
	field_case "one-l1size$m" "$O" "$T/ref-one" snapshot-l1-too-large 'snapshot[0].l1_size' "$m"
done
field_case three-l1size "$A" "$T/ref-three" snapshot-l1-too-large 'snapshot[1].l1_size' 0xffffffff

# --- l1_size within the limit but running the table past the end of the
# file (4 KiB clusters: 32 entries needed, 32800 or 65568 claimed): the
# table of the needed entries is inside the file and holds them, so the
# size is the damaged field.  The repair dropped the snapshot as "gone"
# (found by tests/gap-sweep.py: LOST).
F4=$T/four-k.qcow2
mk "$F4" 64M cluster_size=4096
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 256k' -c 'write -P 0x22 8M 64k' -c 'write -c -P 0x33 20M 16k' "$F4" >/dev/null
snap "$F4" s1
fixture qemu-io -f qcow2 -c 'write -P 0x44 0 8k' -c 'write -P 0x55 30M 32k' "$F4" >/dev/null
snap "$F4" s2
fixture qemu-io -f qcow2 -c 'write -P 0x66 40M 4k' "$F4" >/dev/null
guest_save "$F4" "$T/ref-4k"
expect_clean "$F4" "fixture 4k"
for m in ^0x8000 +0x10000; do
	field_case "4k-l1size-eof$m" "$F4" "$T/ref-4k" snapshot-l1-past-eof 'snapshot[0].l1_size' "$m"
	field_case "4k-last-l1size-eof$m" "$F4" "$T/ref-4k" snapshot-l1-past-eof 'snapshot[1].l1_size' "$m"
done

if [ $HAVE_VM = 1 ]; then
	field_case vm-extra "$V" "$T/ref-vm" snapshot-entry-lengths-invalid 'snapshot[0].extra_data_size' 0xffffffff
	field_case vm-name "$V" "$T/ref-vm" snapshot-entry-lengths-invalid 'snapshot[0].name_size' 0xffff
	# the L1 holds the disk's entries and the VM state's after them
	field_case vm-l1size "$V" "$T/ref-vm" snapshot-l1-too-large 'snapshot[0].l1_size' 0xffffffff
	t_name "vm-l1size: the repaired l1_size covers the VM state"
	cp "$V" "$T/vm-l1.qcow2"
	$POKE "$T/vm-l1.qcow2" 'snapshot[0].l1_size' 0xffffffff
	"$QC" repair "$T/vm-l1.qcow2" >/dev/null 2>&1
	[ "$($POKE "$T/vm-l1.qcow2" 'snapshot[0].l1_size')" = "$($POKE "$V" 'snapshot[0].l1_size')" ] && t_ok ||
		t_fail "l1_size $($POKE "$T/vm-l1.qcow2" 'snapshot[0].l1_size'), was $($POKE "$V" 'snapshot[0].l1_size')"
	rm -f "$T/vm-l1.qcow2"
fi

# --- disk_size QEMU cannot have written, or short of the snapshot's data ---------
# QEMU 7.2 reads such a snapshot as disk_size bytes, and `qemu-img snapshot
# -a` resizes the active disk to it (or fails: not a multiple of 512).
# qemu_apply IMG LABEL: what applying snapshot 1 does to a copy (printed).
qemu_apply() {
	cp "$1" "$T/apply.qcow2"
	qemu-img snapshot -a snap1 "$T/apply.qcow2" >"$T/apply.out" 2>&1
	_e=$?
	_o=$(head -1 "$T/apply.out")
	echo "qemu-img snapshot -a snap1 on the damaged image [$2]: exit $_e ${_o:+($_o) }virtual size $(qemu-img info --output=json "$T/apply.qcow2" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])' 2>/dev/null)"
	rm -f "$T/apply.qcow2"
}
cp "$O" "$T/d.qcow2"; $POKE "$T/d.qcow2" 'snapshot[0].disk_size' ^0x1; qemu_apply "$T/d.qcow2" disk-unaligned
cp "$O" "$T/d.qcow2"; $POKE "$T/d.qcow2" 'snapshot[0].disk_size' 0; qemu_apply "$T/d.qcow2" disk-zero
rm -f "$T/d.qcow2"
field_case one-disk-unaligned "$O" "$T/ref-one" snapshot-disk-size-unaligned 'snapshot[0].disk_size' ^0x1
field_case one-disk-low-bits "$O" "$T/ref-one" snapshot-disk-size-unaligned 'snapshot[0].disk_size' ^0x1ff
field_case one-disk-zero "$O" "$T/ref-one" vmstate-past-end 'snapshot[0].disk_size' 0
field_case three-disk-zero "$A" "$T/ref-three" vmstate-past-end 'snapshot[1].disk_size' ^0x1000000

# --- an L1 pointer moved onto another structure ----------------------------------
# Aligned and inside the file, so nothing proves it wrong by itself; but it
# names the snapshot table, or a data cluster whose "entries" are not L2
# pointers, and the one leaked run shaped like the snapshot's L1 table
# (its L2 tables' refcounts still count it) is the real table.
field_case one-l1ptr-on-table "$O" "$T/ref-one" overlap-metadata 'snapshot[0].l1_table_offset' +0x10000
field_case one-l1ptr-on-data "$O" "$T/ref-one" l1-entry-reserved 'snapshot[0].l1_table_offset' -0x10000
field_case three-l1ptr-mid "$A" "$T/ref-three" l1-entry-reserved 'snapshot[1].l1_table_offset' +0x20000
field_case three-l1ptr-last "$A" "$T/ref-three" l1-entry-reserved 'snapshot[2].l1_table_offset' -0x10000

# --- no guess: stale bytes after the last entry --------------------------------
# The table's cluster holds a non-zero byte after the entry (a reused
# cluster): no end to measure against, so the entry stays unparsable, the
# check says why, and the repair frees none of the snapshot's clusters.
S=$T/stale.qcow2
cp "$O" "$S"
so=$($POKE "$O" header.snapshots_offset)
$POKE "$S" "u8@$((so + 200))" 0x41
$POKE "$S" 'snapshot[0].extra_data_size' ^0x8000
l1=$($POKE "$O" 'snapshot[0].l1_table_offset')
cs=$((1 << $($POKE "$O" header.cluster_bits)))
run_check "$S"
t_name "stale: the last entry stays unparsable and the check says why"
python3 - "$JSON" <<'PY' 2>"$T/st.err" && t_ok || t_fail "$(tail -1 "$T/st.err")"
import json, sys
p = [x for x in json.load(open(sys.argv[1]))["problems"] if x["code"] == "snapshot-entry-unparsable"]
assert p and "measured against the table's end" in p[0]["message"] and "zeros after it" in p[0]["message"], p
PY
run_repair "$S" --undo-file="$T/undo.stale"
t_name "stale: repair leaves the table (exit 2) and keeps the snapshot's L1 cluster counted"
[ "$RRC" = 2 ] && [ "$($POKE "$S" "refcount[$((l1 / cs))]")" = 0x1 ] && t_ok ||
	t_fail "exit $RRC, refcount of the L1 cluster $($POKE "$S" "refcount[$((l1 / cs))]")"
t_name "stale: restoring the field brings the snapshot back as it was"
$POKE "$S" 'snapshot[0].extra_data_size' 24
$POKE "$S" "u8@$((so + 200))" 0
guest_same "$S" "$T/ref-one" stale

# --- fields QEMU does not check: left alone ------------------------------------
# date and vm_clock say when the snapshot was taken; no rule of the format
# or of QEMU reads them, so nothing proves a value wrong.
for fl in date_sec vm_clock_nsec; do
	D=$T/$fl.qcow2
	cp "$O" "$D"
	$POKE "$D" "snapshot[0].$fl" 0x12345
	t_name "$fl changed: not a finding, the repair writes nothing"
	s0=$(sha "$D")
	"$QC" check -q "$D"; c=$?
	"$QC" repair -q "$D" >/dev/null 2>&1
	[ $c = 0 ] && [ "$(sha "$D")" = "$s0" ] && t_ok || t_fail "check exit $c, or the image changed"
done

t_done
