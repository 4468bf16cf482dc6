#!/bin/sh
# repair-refuse.sh - repairs that would need a guess are not done: a
# pointer whose target is doubtful (unaligned L1 or L2 entry, entry past
# EOF) makes the model incomplete, so nothing is freed, no refcount is
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

# §9.5 E: L2 entry pointing 0x200 into its data cluster; the original
# cluster is now orphaned, but it may be what the entry meant.
refuse_case l2-unaligned 'l2[0][48]' '+0x200' l2-entry-unaligned
# §9.5 A: one bit (bit 9) in an L1 entry: the L2 is "at" an unaligned offset.
refuse_case l1-unaligned 'l1[0]' '|0x200' l1-entry-unaligned
# An L2 entry pointing past the end of the file.
refuse_case l2-past-eof 'l2[0][48]' '0x8000000040000000' l2-data-past-eof

# The orphan of §9.5 E keeps its content and refcount with qcow2fsck.
host=$(entry_off "$P" 'l2[0][48]')
t_name "l2-unaligned: the cluster the entry used to point to still holds its data"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]==b"\x66"*65536 else 1)' "$T/l2-unaligned.qcow2" "$host" &&
	t_ok || t_fail "changed"

# Dry run in human form prints the plan's "left" lines.
"$QC" repair --dry-run "$T/l1-unaligned.qcow2" >"$T/dry.txt" 2>&1
t_name "human dry run lists what is left and why"
grep -q "^  left: .*walk did not see every reference" "$T/dry.txt" && t_ok || t_fail "$(head -5 "$T/dry.txt")"
t_done
