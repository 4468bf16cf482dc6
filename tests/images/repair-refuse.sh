#!/bin/sh
# repair-refuse.sh - repairs that would need a guess are not done: a
# pointer whose target is doubtful (an unaligned L1 entry whose corrected
# target may be its L2 table, in the active L1 or a snapshot's)
# makes the model incomplete, so nothing is freed, no refcount is
# lowered or rebuilt, and the plan says what is left and why.  qemu-img
# check -r all acts on the same images and destroys data (doc/format.md
# §9.5 A: writes over guest data; §9.5 E: frees/raises the
# neighbour; §9.5 K: punches the orphan).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

P=$T/pristine.qcow2
pristine "$P"

refuse_case() { # LABEL FIELD VALUE CODE
	I=$T/$1.qcow2
	cp "$P" "$I"
	python3 "$HERE/../poke.py" "$I" "$2" "$3"
	expect_code "$I" "$4" 2 corruption
	d=$(sha "$I")
	qemu_repair_all "$I" "$1"
	t_name "$1: qemu-img check -r all changes the file and the image is still not clean"
	qemu_check "$QIMG"
	[ "$(sha "$QIMG")" != "$d" ] && [ "$QRRC" != 0 -o "$QRC" != 0 ] && t_ok || t_fail "qemu rc $QRRC/$QRC"
	run_repair "$I" --undo-file="$T/undo.$1"
	t_name "$1: qcow2fsck leaves the doubtful pointer: exit 2 (the state; nothing changed), image identical, the plan says why"
	if [ "$RRC" = 2 ] && [ "$(sha "$I")" = "$d" ] && [ "$(rjson 'len(r["plan"])')" = 0 ] &&
	   [ "$(rjson 'any("walk did not see every reference" in l["reason"] for l in r["left"])')" = True ] &&
	   [ ! -e "$T/undo.$1" ]; then
		t_ok; else t_fail "exit $RRC plan $(rjson 'r["plan"]') left $(rjson 'r["left"]')"; fi
}

# Damage the table repair (doc/repair.md "Repairing damaged pointers")
# cannot settle from evidence; the unaligned and past-EOF entries it does
# settle are in repair-tables-l1.sh and repair-tables-l2.sh.
host=$(entry_off "$P" 'l2[0][48]')
l1=$(python3 "$HERE/../poke.py" "$P" header.l1_table_offset)
hexor() { python3 -c 'import sys; print(hex(int(sys.argv[1], 0) | int(sys.argv[2], 0)))' "$1" "$2"; }
# 2.7 A: an L1 entry 0x200 into an orphaned data cluster: the corrected
# target is an orphan, so it may be this range's L2 table (it is not shaped
# like one): neither restored nor dropped.
refuse_case l1-doubtful 'l1[0]' "$(hexor "$host" 0x200)" l1-entry-unaligned
# The snapshot's L1 entry made unaligned onto the active layer's L2 table
# (refcount 1, counted once): no missing reference proves the snapshot
# shares that table, yet the cluster is an L2 table, so dropping the entry
# would be a guess too (doc/repair.md "Snapshot tables' entries").
refuse_case snap-l1-doubtful 'snapl1[0][0]' "$(hexor "$(entry_off "$P" 'l1[0]')" 0x8000000000000200)" l1-entry-unaligned

# The orphan of the doubtful L1 entry keeps its content and refcount.
t_name "l1-doubtful: the cluster the entry names still holds its data"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]==b"\x66"*65536 else 1)' "$T/l1-doubtful.qcow2" "$host" &&
	t_ok || t_fail "changed"

# (snapshots_offset moved one cluster down, onto s1's L1 table, refused
# here until the lost-table search took back the header table's claim: now
# re-linked, tests/images/repair-snapshots.sh table-below; its refusals,
# no table found and two found, are there too.)

# Dry run in human form prints the plan's "left" lines.
"$QC" repair --dry-run "$T/l1-doubtful.qcow2" >"$T/dry.txt" 2>&1
t_name "human dry run lists what is left and why"
grep -q "^  left: .*walk did not see every reference" "$T/dry.txt" && t_ok || t_fail "$(head -5 "$T/dry.txt")"
t_done
