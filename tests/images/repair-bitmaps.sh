#!/bin/sh
# repair-bitmaps.sh - a damaged persistent-bitmap extension, directory or
# bitmap table (doc/repair.md "Bitmaps"): the repair clears autoclear bit 0,
# so the bitmaps are dropped and no guest pointer is touched; the plan says
# the next backup must be a full one.  The bitmap clusters are then leaks:
# the refcount planner lowers them in the same repair (the file keeps their
# bytes; --salvage-leaks copies them out first), because with the bit clear
# QEMU ignores the extension too and `qemu-img check` would report every
# one of them as leaked (measured below on the repaired image: it ends
# clean only because they were lowered).
# Each case: check -> repair -> re-check clean (one warning,
# ext-bitmaps-autoclear-clear) for qcow2fsck and qemu-img check, guest
# content of the active layer and snapshot s1 unchanged, a second repair
# plans nothing, undo restores the damaged bytes.  `qemu-img check -r all`
# on the same copy is printed: it cannot open most of these images.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

P=$T/pristine.qcow2
mk "$P" 64M
fixture qemu-img bitmap --add "$P" b0
fixture qemu-img bitmap --add -g 4096 "$P" b1
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 10M 1M' "$P" >/dev/null
snap "$P" s1
fixture qemu-io -f qcow2 -c 'write -P 0x33 20M 64k' -c 'write -P 0x44 0 4k' "$P" >/dev/null
guest_save "$P" "$T/ref"
poke() { python3 "$HERE/../poke.py" "$@"; }
T0=$(poke "$P" 'bitmapdir[0].table_offset')
EXT=23852875

# bitmap_case LABEL CODE FIELD VALUE: case_poke plus the bitmap assertions
bitmap_case() {
	case_poke "$1" "$2" "$3" "$4"
	t_name "$1: qemu-img check -r all did not repair it (measured: exit 1, cannot open)"
	echo "qemu-img -r all [$1]: exit $QRRC"
	[ "$QRRC" != 0 ] && t_ok || t_fail "qemu-img -r all exit 0: update this test"
	# the dry run's plan ($T/dry.json, written by repair_case)
	t_name "$1: the plan clears autoclear bit 0 and says the next backup must be full"
	if [ "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print([w["offset"] for w in r["plan"] if "next backup must be a full one" in w["summary"]])' "$T/dry.json")" = "[88]" ]; then
		t_ok
	else
		t_fail "plan: $(cat "$T/dry.json")"
	fi
	# repair_case ended with undo: repair again and ask QEMU
	run_repair "$I" --undo-file="$T/undo3.$1"
	t_name "$1: after the repair QEMU lists no bitmap"
	if [ "$RRC" = 0 ] && qemu-img info --output=json "$I" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(1 if d.get("format-specific",{}).get("data",{}).get("bitmaps") else 0)'; then
		t_ok
	else
		t_fail "repair exit $RRC, or qemu-img info still lists bitmaps"
	fi
}

bitmap_case tbl-unaligned bitmap-table-offset-invalid 'bitmapdir[0].table_offset' '+0x200'
bitmap_case flags-reserved bitmap-flags-reserved 'bitmapdir[1].flags' '|4'
bitmap_case ext-count ext-bitmaps-count-invalid "ext[$EXT].data32+0" 0
bitmap_case dir-unaligned ext-bitmaps-dir-offset-unaligned "ext[$EXT].data+16" '+0x200'
bitmap_case ent-unaligned bitmap-entry-unaligned "u64@$T0" '+0x200'

# why the bitmap clusters are lowered: the same damage with only the
# autoclear bit cleared (what the repair writes first) leaves them leaked
# for qemu-img check (exit 3)
L=$T/leaky.qcow2
cp "$P" "$L"
poke "$L" 'bitmapdir[0].table_offset' '+0x200'
poke "$L" header.autoclear_features '&0xfffffffffffffffe'
t_name "autoclear bit cleared alone: qemu-img check counts the bitmap clusters as leaks (exit 3)"
expect_qemu "$L" 3 "(bitmap clusters leaked)"

# --salvage-leaks copies the bitmap clusters out before they are lowered
I=$T/salvage.qcow2
cp "$P" "$I"
poke "$I" 'bitmapdir[0].table_offset' '+0x200'
rm -rf "$T/salv"; mkdir "$T/salv"
run_repair "$I" --salvage-leaks="$T/salv" --undo-file="$T/undo.salvage"
t_name "--salvage-leaks: the lowered bitmap clusters are copied out"
n=$(ls "$T/salv" | wc -l)
[ "$RRC" = 0 ] && [ "$n" -ge 1 ] && t_ok || t_fail "exit $RRC, $n file(s)"

t_done
