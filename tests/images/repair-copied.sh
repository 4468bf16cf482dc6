#!/bin/sh
# repair-copied.sh - OFLAG_COPIED in the active L1 and L2 tables, both
# directions (only bit 63 changes), and L2 entries that are 0 + COPIED
# (qemu-img treats them as unallocated and never reports them, doc/format.md
# §9.4).  qemu-img check -r all fixes COPIED too (§9.3
# check_oflag_copied) but rewrites the whole L2 table.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# P: data in the snapshot and in the active layer (written after the
# snapshot, so the active L2 was copied and its new clusters are exclusive).
P=$T/pristine.qcow2
pristine "$P"
guest_save "$P" "$T/ref"
# S: snapshot taken last, so the active L2 is shared with it.
S=$T/shared.qcow2
mk "$S" 16M
fill "$S"
snap "$S" s1
guest_save "$S" "$T/ref-s"

case_poke() { # LABEL BASE REF CODE FIELD VALUE
	I=$T/$1.qcow2
	cp "$2" "$I"
	before=$(python3 "$HERE/../poke.py" "$I" "$5")
	python3 "$HERE/../poke.py" "$I" "$5" "$6"
	qemu_repair_all "$I" "$1"
	t_name "$1: qemu-img check -r all fixes it too"
	[ "$QRRC" = 0 ] && t_ok || t_fail "qemu-img -r all exit $QRRC"
	repair_case "$1" "$I" "$3" "$4"
	run_repair "$I" --undo-file="$T/undo.$1.again"
	t_name "$1: only bit 63 changed: the entry is back to 0x${before#0x}"
	[ "$(python3 "$HERE/../poke.py" "$I" "$5")" = "$before" ] && t_ok || t_fail "entry $(python3 "$HERE/../poke.py" "$I" "$5")"
}
C=0x8000000000000000
case_poke l1-missing "$P" "$T/ref" l1-copied-missing 'l1[0]' "^$C"
case_poke l1-spurious "$S" "$T/ref-s" l1-copied-spurious 'l1[0]' "|$C"
case_poke l2-missing "$P" "$T/ref" l2-copied-missing 'l2[0][48]' "^$C"
case_poke l2-spurious "$P" "$T/ref" l2-copied-spurious 'l2[0][0]' "|$C"

t_done
