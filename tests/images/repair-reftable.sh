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
# flipped onto the active L1 table; a reftable entry onto the active L1 or an
# active L2 table; a reftable entry zeroed (its refblock lost); a refblock
# overwritten with zeros or random bytes.  Each one: check -> repair ->
# re-check clean for qcow2fsck and qemu-img check, guest content of the
# active layer and of snapshot s1 unchanged, a second repair plans nothing,
# undo restores the damaged bytes.  What `qemu-img check -r all` does to a
# copy is printed beside it.
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
