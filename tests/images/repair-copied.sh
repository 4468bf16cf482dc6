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

# Over-counted clusters (doc/copied.md): one reference, stored refcount 2.
# COPIED set or clear there is part of the leak, not a corruption; the leak
# repair lowers the refcount and sets COPIED in the same plan, also with
# --leaks-only (else it would leave refcount 1 without COPIED).
over_case() { # LABEL FIELD(entry) COPIED-EDIT [repair options]
	I=$T/$1.qcow2
	cp "$P" "$I"
	_cl=$(( $(entry_off "$I" "$2") >> 16 ))
	python3 "$HERE/../poke.py" "$I" "refcount[$_cl]" 2
	[ -n "$3" ] && python3 "$HERE/../poke.py" "$I" "$2" "$3"
	_l=$1; shift 3
	run_check "$I"
	t_name "$_l: a leak (exit 3), no COPIED corruption"
	if [ "$RC" = 3 ] && ! json_codes | grep -q copied; then t_ok; else t_fail "exit $RC, codes $(json_codes | tr '\n' ' ')"; fi
	qemu_check "$I"
	t_name "$_l: qemu-img says leaks, or corrupt for COPIED set on the over-counted cluster"
	if [ "$QRC" = 3 ] || { [ "$QRC" = 2 ] && qemu-img check "$I" 2>&1 | grep -q 'ERROR OFLAG_COPIED'; }; then t_ok; else t_fail "qemu-img exit $QRC"; fi
	repair_case "$_l" "$I" "$T/ref" refcount-leak "$@"
	run_repair "$I" "$@"
	t_name "$_l: COPIED is set after the repair"
	_e=$(python3 "$HERE/../poke.py" "$I" "$ENTRY")
	[ "$(python3 -c 'import sys; print(int(sys.argv[1], 16) >> 63)' "$_e")" = 1 ] && t_ok || t_fail "entry $_e"
}
ENTRY='l2[0][48]'
over_case over-set 'l2[0][48]' ''
over_case over-clear 'l2[0][48]' "^$C"
over_case over-clear-leaks-only 'l2[0][48]' "^$C" --leaks-only
ENTRY='l1[0]'
over_case over-l1-clear 'l1[0]' "^$C"

# --leaks-only with a refcount it may not raise beside the leak: the leak is
# lowered and COPIED set; nothing turns into l2-copied-missing.
I=$T/over-mixed.qcow2
cp "$P" "$I"
_cl=$(( $(entry_off "$I" 'l2[0][48]') >> 16 ))
python3 "$HERE/../poke.py" "$I" "refcount[$_cl]" 2
python3 "$HERE/../poke.py" "$I" 'l2[0][48]' "^$C"
python3 "$HERE/../poke.py" "$I" "refcount[$(( $(entry_off "$I" 'l2[0][16]') >> 16 ))]" 0
run_repair "$I" --leaks-only
run_check "$I"
t_name "over-mixed: --leaks-only lowers the leak, sets COPIED, leaves the zero refcount"
if [ "$RC" = 2 ] && json_codes | grep -qx refcount-zero && ! json_codes | grep -q 'copied\|refcount-leak'; then
	t_ok
else
	t_fail "exit $RC, codes $(json_codes | tr '\n' ' ')"
fi

t_done
