#!/bin/sh
# repair-flags.sh - entry flags qemu-img cannot repair: OFLAG_COPIED on a
# compressed entry, an active L1 entry that is only flags, and L2 entries
# that are 0 + COPIED (qemu-img treats them as unallocated and never
# reports them, doc/format.md §9.4).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# P: data in the snapshot and in the active layer (written after the
# snapshot, so the active L2 was copied and its new clusters are exclusive).
P=$T/pristine.qcow2
pristine "$P"
guest_save "$P" "$T/ref"

C=0x8000000000000000
# COPIED on a compressed entry: qemu-img -r all "fixes" it only in memory
# and still exits 2 (doc/format.md §9.3); qcow2fsck clears it.
I=$T/comp.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" 'l2[0][128]' '|0x8000000000000000'
qemu_repair_all "$I" compressed-copied
qemu_check "$QIMG"
t_name "compressed+COPIED: qemu-img -r all leaves it (exit 2 afterwards)"
[ "$QRC" = 2 ] && t_ok || t_fail "qemu-img check after -r all: $QRC"
repair_case comp "$I" "$T/ref" compressed-copied

# An active L1 entry that is only flags (offset 0): qemu-img parses the
# header as an L2 table, and -r all then marks the image corrupt (§9.5 J).
# The range is unallocated either way; qcow2fsck sets the entry to 0.
# (The 16M image has one L1 entry; a 1G one has a second, unused entry.)
Q=$T/big.qcow2
mk "$Q" 1G
fill "$Q"
guest_save "$Q" "$T/ref-big"
I=$T/l1zero.qcow2
cp "$Q" "$I"
python3 "$HERE/../poke.py" "$I" 'l1[1]' "$C"
qemu_repair_all "$I" l1-no-offset
t_name "L1 entry 0+COPIED: qemu-img -r all fails and marks the image corrupt (§9.5 J)"
[ "$QRRC" != 0 ] && [ "$(python3 "$HERE/../poke.py" "$QIMG" header.incompatible_features)" = 0x2 ] &&
	t_ok || t_fail "qemu exit $QRRC"
repair_case l1zero "$I" "$T/ref-big" l1-entry-no-offset

# 0 + COPIED in an unallocated L2 entry: a warning; repaired to 0.
I=$T/zero.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" 'l2[0][100]' "$C"
expect_code "$I" l2-copied-no-offset 0 warning
d=$(sha "$I")
run_repair "$I" --undo-file="$T/undo.zero"
t_name "0+COPIED: repaired to 0, the plan names the code and the guest range"
if [ "$RRC" = 0 ] && [ "$(python3 "$HERE/../poke.py" "$I" 'l2[0][100]')" = 0x0 ] &&
   [ "$(rjson '[(w["code"], w["guest-offset"]) for w in r["plan"]]')" = "[('l2-copied-no-offset', $((100 * 65536)))]" ]; then
	t_ok; else t_fail "exit $RRC plan $(rjson 'r["plan"]')"; fi
expect_clean "$I" "0+COPIED after repair"
run_check "$I"
t_name "0+COPIED: no warning left"
[ "$(json_get warnings)" = 0 ] && t_ok || t_fail "warnings $(json_codes)"
guest_same "$I" "$T/ref" "0+COPIED"
"$QC" undo "$T/undo.zero" "$I" >/dev/null
t_name "0+COPIED: undo restores"
[ "$(sha "$I")" = "$d" ] && t_ok || t_fail "differs"
t_done
