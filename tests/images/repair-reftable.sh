#!/bin/sh
# repair-reftable.sh - a damaged refcount table or refblock leads to a
# rebuild of the refcount structure from the walk's references (doc/repair.md
# "The refcount table"), also when the damage makes the refcount structure
# overlap another one: the refcount side of such an overlap is disproved by
# its content (a "refblock" whose stored counts disagree with most of what
# the walk references in its range, a refcount table none of whose
# refblocks is shaped like one), so the overlap does not block the rebuild
# and the other structure is kept as it is.
# Cases: the header's refcount_table_offset 0 (the header itself) or one bit
# flipped onto the active L1 table; a reftable entry onto the active L1, an
# active L2 table, snapshot s1's L1 table, the snapshot table, the refcount
# table itself, another refblock (512-byte clusters: several refblocks), the
# bitmap directory or a bitmap table (the bitmaps kept: QEMU still lists
# them); a reftable entry zeroed (its refblock lost; an entry cannot name the
# header: 0 means "no refblock", and 0x100 names cluster 0 with a bit below
# the alignment set, a reserved-bit entry); a refblock overwritten with zeros
# or random bytes.  Each one: check -> repair ->
# re-check clean for qcow2fsck and qemu-img check, guest content of the
# active layer and of snapshot s1 unchanged, a second repair plans nothing,
# undo restores the damaged bytes.  What `qemu-img check -r all` does to a
# copy is printed beside it; measured with QEMU 7.2: it rebuilds and keeps
# the guest in every case but two: the reftable entry onto the bitmap
# directory (it cannot write the rebuilt structure, "Preventing invalid
# write on metadata", marks the image corrupt, exit 1, still exit 2 for
# `qemu-img check` afterwards), and onto a bitmap table (exit 0).  In both
# the image has lost snapshot s1 afterwards, but `-r all` drops it on that
# fixture even undamaged, so the damage is not the cause.  qcow2fsck keeps
# the bitmaps and s1 in both.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

P=$T/pristine.qcow2
pristine "$P" -c 'write -P 0x77 9M 64k'
guest_save "$P" "$T/ref"
# qemu_guest LABEL: what qemu-img's own repair left the guest (the copy $QIMG)
qemu_guest() {
	_g="$T/qg"; rm -rf "$_g"; guest_save_ "$QIMG" "$_g" 2>/dev/null  # not a fixture: qemu may fail to read its own repair
	_same=yes; for f in "$T"/ref/*.raw; do cmp -s "$f" "$_g/${f##*/}" || _same=no; done
	echo "qemu-img -r all [$1]: guest content (active and snapshots) unchanged: $_same"
}
poke() { python3 "$HERE/../poke.py" "$@"; }
l1=$(poke "$P" header.l1_table_offset)
l2=$(python3 -c 'import sys; print(hex(int(sys.argv[1], 16) & 0x00fffffffffffe00))' "$(poke "$P" 'l1[0]')")
rb=$(python3 -c 'import sys; print(int(sys.argv[1], 16) & ~0x1ff)' "$(poke "$P" 'reftable[0]')")

case_poke hdr-zero header-reftable-on-header header.refcount_table_offset 0
qemu_guest hdr-zero
qsize=$(stat -c %s "$QIMG")
t_name "hdr-zero: qemu-img check -r all grows the file (measured 1 MiB -> 16 MiB); qcow2fsck adds 2 clusters"
echo "refcount_table_offset 0: qemu-img -r all exit $QRRC, file $(stat -c %s "$P") -> $qsize; guest: $(qemu-img compare -f qcow2 -F qcow2 "$P" "$QIMG" 2>&1 | head -1)"
[ "$qsize" -gt $(( $(stat -c %s "$P") + 4 * 65536 )) ] && t_ok || t_fail "qemu-img file size $qsize: update this test"
case_poke hdr-onto-l1 reftable-entry-past-eof header.refcount_table_offset "$l1"
qemu_guest hdr-onto-l1
case_poke entry-onto-l1 overlap-metadata 'reftable[0]' "$l1"
qemu_guest entry-onto-l1
case_poke entry-onto-l2 overlap-metadata 'reftable[0]' "$l2"
qemu_guest entry-onto-l2
case_poke entry-zero refcount-no-refblock 'reftable[0]' 0
qemu_guest entry-zero

# a reftable entry onto the other metadata kinds: the "refblock" read there
# disagrees with the walk (not shaped like one), so the structure the header
# chain places is the real one and the refcount structure is rebuilt
sl1=$(poke "$P" 'snapshot[0].l1_table_offset')
st=$(poke "$P" header.snapshots_offset)
rt=$(poke "$P" header.refcount_table_offset)
case_poke entry-onto-snap-l1 overlap-metadata 'reftable[0]' "$sl1"
qemu_guest entry-onto-snap-l1
case_poke entry-onto-snap-table overlap-metadata 'reftable[0]' "$st"
qemu_guest entry-onto-snap-table
t_name "entry-onto-snap-table: the repaired image still lists snapshot s1"
[ "$(snapshot_names "$I")" = s1 ] && t_ok || t_fail "snapshots: $(snapshot_names "$I" | tr '\n' ' ')"
case_poke entry-onto-reftable overlap-metadata 'reftable[0]' "$rt"
qemu_guest entry-onto-reftable
case_poke entry-onto-header reftable-entry-reserved 'reftable[0]' 0x100
qemu_guest entry-onto-header

# another refblock: 512-byte clusters, so the 16 MiB image has several
P512=$T/p512.qcow2
mk "$P512" 16M cluster_size=512
fill "$P512"
snap "$P512" s1
fixture qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$P512" >/dev/null
guest_save "$P512" "$T/ref512"
rb0=$(poke "$P512" 'reftable[0]')
rb1=$(poke "$P512" 'reftable[1]')
# case_in FIXTURE REFDIR LABEL CODE FIELD VALUE: case_poke on another fixture
case_in() {
	_sp=$P _sr=$T/ref
	P=$1
	rm -rf "$T/ref.keep"; mv "$T/ref" "$T/ref.keep"; cp -r "$2" "$T/ref"
	shift 2
	case_poke "$@"
	qemu_guest "$1"
	rm -rf "$T/ref"; mv "$T/ref.keep" "$_sr"
	P=$_sp
}
case_in "$P512" "$T/ref512" entry0-onto-refblock1 overlap-metadata 'reftable[0]' "$rb1"
case_in "$P512" "$T/ref512" entry1-onto-refblock0 overlap-metadata 'reftable[1]' "$rb0"

# the bitmap directory and a bitmap table: the repair keeps the bitmaps
# (they are not the damaged side), qemu-img -r all cannot open the first
PB=$T/pbitmap.qcow2
mk "$PB" 64M
fixture qemu-img bitmap --add "$PB" b0
fixture qemu-img bitmap --add -g 4096 "$PB" b1
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 10M 1M' "$PB" >/dev/null
snap "$PB" s1
fixture qemu-io -f qcow2 -c 'write -P 0x33 20M 64k' -c 'write -P 0x44 0 4k' "$PB" >/dev/null
guest_save "$PB" "$T/refb"
bdir=$(poke "$PB" 'ext[23852875].data+16')
btbl=$(poke "$PB" 'bitmapdir[0].table_offset')
# measured with QEMU 7.2: `qemu-img check -r all` on this fixture, even
# undamaged, reports the snapshot's clusters as leaked and the header ends
# with no snapshot: s1 is lost whatever the damage, so the lines below
# record it and do not blame the damage for it
cp "$PB" "$T/pb-undamaged.qcow2"
qemu-img check -r all -f qcow2 "$T/pb-undamaged.qcow2" >/dev/null 2>&1
echo "qemu-img -r all [bitmap fixture, undamaged]: exit $?, snapshots after: '$(snapshot_names "$T/pb-undamaged.qcow2" | tr '\n' ' ')'"
bitmaps_of() { qemu-img info --output=json "$1" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(b["name"] for b in d.get("format-specific",{}).get("data",{}).get("bitmaps",[])))'; }
for bc in "entry-onto-bitmap-dir $bdir" "entry-onto-bitmap-table $btbl"; do
	set -- $bc
	case_in "$PB" "$T/refb" "$1" overlap-metadata 'reftable[0]' "$2"
	echo "qemu-img -r all [$1]: bitmaps after: '$(bitmaps_of "$QIMG")', snapshots after: '$(snapshot_names "$QIMG" | tr '\n' ' ')'"
	# repair_case ended with undo: repair again and ask QEMU for the bitmaps
	run_repair "$I" --undo-file="$T/undo3.$1"
	t_name "$1: after the repair QEMU still lists both bitmaps, qemu-img check clean"
	if [ "$RRC" = 0 ] && [ "$(bitmaps_of "$I")" = "b0 b1" ] && qemu-img check -q "$I" >/dev/null 2>&1; then
		t_ok
	else
		t_fail "repair exit $RRC, bitmaps '$(bitmaps_of "$I")'"
	fi
done

# the refblock's content lost: zeros (every count raised in place) or
# random bytes (counts set to the walk's in place)
case_dd() {
	I=$T/$1.qcow2
	cp "$P" "$I"
	dd if="$3" of="$I" bs=65536 seek=$((rb / 65536)) count=1 conv=notrunc 2>/dev/null
	qemu_repair_all "$I" "$1"
	repair_case "$1" "$I" "$T/ref" "$2"
}
case_dd refblock-zeros refcount-zero /dev/zero
qemu_guest refblock-zeros
head -c 65536 /dev/urandom >"$T/random"
case_dd refblock-random refcount-leak "$T/random"
qemu_guest refblock-random

t_done
