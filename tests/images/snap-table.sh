#!/bin/sh
# snap-table.sh - the snapshot table on a real image with hundreds of
# snapshots (snap-base.inc): clean, then the fields of one entry (its L1
# table, disk_size, dates, ID, name), the data-file rule and the table's
# place in the ownership map, damaged one at a time.  Each damage must give
# its code and verdict and cost only the damaged entry: the other entries
# keep their IDs, names and L1 tables and have no problems of their own.
# Differential with qemu-img check where QEMU can judge; where it is blind
# or cannot check at all the comment says so (doc/format.md
# §9.3 "Snapshots", §9.4, §9.5 G) and its actual behaviour is asserted.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/snap-base.inc"
# info lists every snapshot for people, with its date and its own problem codes.
damage infodup "snapshot[$S].id" "str:$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshots"][3]["id"])' "$T/clean.json")"
"$QC" info "$D" >"$T/info.txt" 2>&1
t_name "info lists all $N snapshots with dates"
[ "$(grep -c '^  [0-9]\+ \+[0-9]\{4\}-[0-9][0-9]-[0-9][0-9] ' "$T/info.txt")" = "$N" ] && t_ok || t_fail "$(head -c 300 "$T/info.txt")"
t_name "info shows the damaged snapshot's code under it"
grep -A1 "^  $S " "$T/info.txt" | grep -q 'problems: snapshot-id-duplicate' && t_ok || t_fail "no code under entry $S"
t_name "info shows no codes for the others"
[ "$(grep -c 'problems:' "$T/info.txt")" = 1 ] && t_ok || t_fail "$(grep -c 'problems:' "$T/info.txt") problem lines"

# --- the snapshot's L1 table -------------------------------------------------
# Unaligned (§9.5 G): QEMU reports it too and turns the snapshot's clusters
# into leaks; both say corruption.
damage l1unal "snapshot[$S].l1_table_offset" +0x200
expect_code "$D" snapshot-l1-offset-unaligned 2 corruption
snapcheck $S snapshot-l1-offset-unaligned
expect_same_verdict_as_qemu "$D"

# Past EOF: QEMU only says "exceeding the end of the file" and counts leaks.
damage l1eof "snapshot[$S].l1_table_offset" 0x7fff0000
expect_code "$D" snapshot-l1-past-eof 2 corruption
snapcheck $S snapshot-l1-past-eof
qemu_says "$D" 2 "exceeding the end of the file"

# Offset 0: QEMU parses the header as the snapshot's L1 (§9.4); we refuse.
damage l1zero "snapshot[$S].l1_table_offset" 0
expect_code "$D" snapshot-l1-offset-invalid 2 corruption
snapcheck $S snapshot-l1-offset-invalid
qemu_says "$D" 2 "reserved bits set"

# l1_size above 4 Mi entries: both report it.
damage l1big "snapshot[$S].l1_size" 0x500000
expect_code "$D" snapshot-l1-too-large 2 corruption
snapcheck $S snapshot-l1-too-large
qemu_says "$D" 2 "L1 table is too large"

# l1_size 0 for a 64 MiB disk: QEMU is blind to l1_size vs disk_size (§9.4)
# and only counts the snapshot's clusters as leaks (exit 3).
damage l1small "snapshot[$S].l1_size" 0
expect_code "$D" snapshot-l1-too-small 2 corruption
snapcheck $S snapshot-l1-too-small
qemu_says "$D" 3 "Leaked cluster"

# --- disk_size, dates ---------------------------------------------------------
# disk_size 16 TiB with l1_size 1: QEMU does not check disk_size (§9.4): "No errors".
damage disk "snapshot[$S].disk_size" 0x100000000000
expect_code "$D" snapshot-l1-too-small 2 corruption
snapcheck $S snapshot-l1-too-small
qemu_says "$D" 0 "No errors"
# disk_size 0x123 (§9.4 reproduced): not a multiple of 512, a warning.
damage disk2 "snapshot[$S].disk_size" 0x123
expect_code "$D" snapshot-disk-size-unaligned 0 warning
snapcheck $S snapshot-disk-size-unaligned
qemu_says "$D" 0 "No errors"
# date_nsec out of range: informational field, a warning; QEMU does not look.
damage nsec "snapshot[$S].date_nsec" 1000000000
expect_code "$D" snapshot-date-nsec-invalid 0 warning
snapcheck $S snapshot-date-nsec-invalid
qemu_says "$D" 0 "No errors"
# icount: 0 (qemu-img) and -1 (VM) are both in the clean image; any other value is legitimate too.
damage icount "snapshot[$S].icount" 12345
expect_clean "$D" "icount 12345"

# --- IDs and names (QEMU checks neither, §9.4: "No errors") --------------------
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshots"][3]["id"])' "$T/clean.json")
damage dupid "snapshot[$S].id" "str:$sid"
expect_code "$D" snapshot-id-duplicate 2 corruption
snapcheck $S snapshot-id-duplicate
qemu_says "$D" 0 "No errors"
# empty ID: the id byte becomes part of the name, so the layout is unchanged.
damage emptyid "snapshot[$S].id_str_size" 0 "snapshot[$S].name_size" +1
# QEMU accepts and writes empty IDs: a warning (two of them are duplicates)
expect_code "$D" snapshot-id-empty 0 warning
snapcheck $S snapshot-id-empty
qemu_says "$D" 0 "No errors"
# duplicate name: QEMU tolerates it (it finds the first); a warning.
damage dupname "snapshot[$S].name" str:q3
expect_code "$D" snapshot-name-duplicate 0 warning
snapcheck $S snapshot-name-duplicate
qemu_says "$D" 0 "No errors"

# Snapshots in an image with an external data file (incompatible bit 2):
# QEMU cannot even open it without the data file (exit 1); given one through
# a json: filename it reports "snapshots in image with data file" too.
damage datafile "header.incompatible_features" '|4'
expect_code "$D" snapshot-with-data-file 2 corruption
qemu_says "$D" 1 "data-file"
: >"$T/data.raw"
t_name "qemu-img check with a data file also reports the snapshots"
qemu-img check "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"$D\"},\"data-file\":{\"driver\":\"file\",\"filename\":\"$T/data.raw\"}}" 2>&1 |
	grep -q "snapshots in image with data file" && t_ok || t_fail "qemu-img did not report it"

# The table's clusters are in the ownership map: a snapshot L1 pointed at the
# snapshot table overlaps it (needs the snapshot L1 walk, checker/tables.c).
damage probe "l1[0]" +0x200
run_check "$D"
if [ "$(json_get corruptions)" = 0 ]; then
	echo "snap-table.sh: SKIP table overlap case: the L1/L2 walk (checker/tables.c) has not landed" >&2
else
	tab=$($POKE "$B" header.snapshots_offset)
	damage ontable "snapshot[$S].l1_table_offset" "$tab"
	expect_code "$D" overlap-metadata 2 corruption
	t_name "the overlap names the snapshot table"
	python3 -c 'import json,sys; ps=json.load(open(sys.argv[1]))["problems"]; assert any(p["code"]=="overlap-metadata" and "snapshot" in p.get("other-structure","")+p["message"] for p in ps)' "$JSON" \
		&& t_ok || t_fail "no overlap naming the snapshot table"
	expect_same_verdict_as_qemu "$D"
fi

t_done
