#!/bin/sh
# repair-bits.sh - the dirty and corrupt header bits.  The dirty bit is
# cleared once the refcounts are verified; the corrupt bit only when the
# re-check finds nothing else (a second, conditional journaled write).
# qemu-img check does not report either bit (doc/format.md
# §9.4); measured here: its -r all clears the corrupt bit when its own
# repair succeeds and leaves it when corruption remains, as qcow2fsck does.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

P=$T/pristine.qcow2
pristine "$P"
# a damage the repair cannot settle: the snapshot's L1 entry unaligned onto
# the active layer's L2 table (repair-refuse.sh snap-l1-doubtful)
DOUBTFUL=$(python3 -c 'import sys; print(hex((int(sys.argv[1], 16) & 0x00fffffffffffe00) | 0x8000000000000200))' "$(python3 "$HERE/../poke.py" "$P" 'l1[0]')")
guest_save "$P" "$T/ref"

# Corrupt bit alone: cleared.
I=$T/corrupt.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" header.incompatible_features '|2'
qemu_repair_all "$I" "corrupt bit"
t_name "corrupt bit: qemu-img check -r all clears it as well (measured on 7.2)"
[ "$QRRC" = 0 ] && [ "$(python3 "$HERE/../poke.py" "$QIMG" header.incompatible_features)" = 0x0 ] &&
	t_ok || t_fail "qemu-img -r all exit $QRRC"
repair_case corrupt "$I" "$T/ref" header-corrupt-bit
run_repair "$I" --undo-file="$T/undo.corrupt2"
t_name "corrupt bit: the plan's write is conditional and the bit is clear afterwards"
if [ "$(rjson '[w["conditional"] for w in r["plan"]]')" = "[True]" ] &&
   [ "$(python3 "$HERE/../poke.py" "$I" header.incompatible_features)" = 0x0 ]; then
	t_ok; else t_fail "$(rjson 'r["plan"]')"; fi

# Corrupt bit plus a corruption repair cannot fix (the snapshot's L1 entry
# unaligned onto the active L2 table: doubtful, see repair-refuse.sh):
# the bit stays, nothing is written, exit 2 (the state; nothing changed).
I=$T/corrupt2.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" header.incompatible_features '|2'
python3 "$HERE/../poke.py" "$I" 'snapl1[0][0]' "$DOUBTFUL"
d=$(sha "$I")
qemu_repair_all "$I" "corrupt bit + unaligned L1 entry"
t_name "corrupt bit + unaligned L1 entry: qemu-img -r all keeps the bit too"
[ "$(python3 "$HERE/../poke.py" "$QIMG" header.incompatible_features)" = 0x2 ] && t_ok || t_fail "bit cleared"
run_repair "$I" --undo-file="$T/undo.corrupt3"
t_name "corrupt bit with a doubtful pointer left: bit kept, image unchanged, exit 2 (the state), no journal"
if [ "$RRC" = 2 ] && [ "$(sha "$I")" = "$d" ] && [ ! -e "$T/undo.corrupt3" ] &&
   python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if "l1-entry-unaligned" in {p["code"] for p in r["problems"]} else 1)' "$RJSON"; then
	t_ok; else t_fail "exit $RRC"; fi

# Dirty bit alone (a warning): refcounts verified, bit cleared.
I=$T/dirty.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" header.incompatible_features '|1'
expect_code "$I" header-dirty 0 warning
d=$(sha "$I")
run_repair "$I" --undo-file="$T/undo.dirty"
t_name "dirty bit: cleared after the refcounts were verified"
if [ "$RRC" = 0 ] && [ "$(python3 "$HERE/../poke.py" "$I" header.incompatible_features)" = 0x0 ] &&
   [ "$(rjson '[w["code"] for w in r["plan"]]')" = "['header-dirty']" ]; then
	t_ok; else t_fail "exit $RRC $(rjson 'r["plan"]')"; fi
expect_clean "$I" "dirty: after repair"
expect_qemu "$I" 0 "(dirty: after repair)"
guest_same "$I" "$T/ref" dirty
"$QC" undo "$T/undo.dirty" "$I" >/dev/null
t_name "dirty: undo restores"
[ "$(sha "$I")" = "$d" ] && t_ok || t_fail "differs"

# Dirty bit with --leaks-only: the bit stays (refcounts not all handled).
run_repair "$I" --leaks-only --undo-file="$T/undo.dirty2"
t_name "dirty bit with --leaks-only: kept and listed as left"
if [ "$(sha "$I")" = "$d" ] && [ "$(rjson '[l["code"] for l in r["left"]]')" = "['header-dirty']" ]; then
	t_ok; else t_fail "exit $RRC $(rjson 'r["left"]')"; fi
# Dirty bit with a doubtful pointer: the refcounts cannot be verified, so
# the bit stays (qemu-img -r all, and any read/write open by QEMU, would
# run the destructive implicit repair instead: doc/format.md §9.5, last line).
I=$T/dirty3.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" header.incompatible_features '|1'
python3 "$HERE/../poke.py" "$I" 'snapl1[0][0]' "$DOUBTFUL"
d=$(sha "$I")
run_repair "$I" --undo-file="$T/undo.dirty3"
t_name "dirty bit with a doubtful L1 entry: kept, nothing written, exit 2, reason given"
if [ "$RRC" = 2 ] && [ "$(sha "$I")" = "$d" ] &&
   [ "$(rjson 'any(l["code"]=="header-dirty" and "cannot be verified" in l["reason"] for l in r["left"])')" = True ]; then
	t_ok; else t_fail "exit $RRC $(rjson 'r["left"]')"; fi
t_done
