#!/bin/sh
# snap-entries.sh - the snapshot table's layout on a real image with
# hundreds of snapshots (snap-base.inc): entry lengths (extra_data_size,
# id and name sizes, a blank entry), nb_snapshots and the table offset
# damaged one at a time.  Parsing must report where it lost the thread,
# resynchronise, and keep every other entry with its ID and name.  QEMU
# cannot check several of these at all (exit 1, doc/format.md
# §9.3 "Snapshots", §9.5 H/I); the tests assert what it does.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/snap-base.inc"
# --- lengths: one bad entry must not poison the rest ---------------------------
# extra_data_size 2000 (§9.5 H): QEMU cannot check at all (exit 1, "File too
# large"); we report it, resynchronise at the next entry, and recover the
# damaged entry's real layout, so even its ID and name survive.
damage extra2000 "snapshot[$S].extra_data_size" 2000
expect_code "$D" snapshot-extra-data-too-large 2 corruption
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid
t_name "entry $S keeps its id and name after extra_data_size 2000"
python3 - "$T/clean.json" "$JSON" $S <<'PY' && t_ok || t_fail "id/name not recovered"
import json, sys
c = json.load(open(sys.argv[1]))["snapshots"][int(sys.argv[3])]
s = json.load(open(sys.argv[2]))["snapshots"][int(sys.argv[3])]
assert (s["id"], s["name"], s["l1-table-offset"]) == (c["id"], c["name"], c["l1-table-offset"])
PY
qemu_says "$D" 1 "Too much extra metadata"

# extra_data_size 40 and 8 (too large / too small but <= 1024): the entry's
# strings move, the next entry is not where the lengths say; resynchronised.
for v in 40 8; do
	damage "extra$v" "snapshot[$S].extra_data_size" $v
	expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
	snapcheck $S snapshot-entry-lengths-invalid
done
# QEMU reads entry S with 8 bytes of extra data and the table after it out of
# step: it cannot check (exit 1) or calls entries incomplete (exit 2).
qemu_check "$D"
t_name "qemu-img check on extra 8 fails or reports corruption"
[ "$QRC" = 1 ] || [ "$QRC" = 2 ] && t_ok || t_fail "qemu-img exit $QRC"

# extra_data_size 8 in the LAST entry: nothing follows to resynchronise
# on; measured against the table's end, the ID and name are where 24 bytes
# put them (checker/snaplast.c), and the declared 8 bytes are still too
# few (QEMU: "incomplete", corruption).
L=$((N - 1))
damage extra8last "snapshot[$L].extra_data_size" 8
expect_code "$D" snapshot-extra-data-too-small 2 corruption
expect_same_verdict_as_qemu "$D"
qemu_says "$D" 2 "is incomplete"

# id and name lengths too long: strings run into the next entry.
damage idlen "snapshot[$S].id_str_size" +16
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid
damage namelen "snapshot[$S].name_size" +9
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid
# name length 65535: runs past everything; resynchronised all the same.
damage namemax "snapshot[$S].name_size" 65535
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid

# Stale bytes in an entry's padding are not damage: QEMU does not write the
# padding, so a reused cluster may leave old bytes there.
na=$($POKE "$B" --addr "snapshot[$S].name" | cut -d' ' -f1)
nl=$(( $($POKE "$B" "snapshot[$S].name_size") ))
damage padding "u8@$((na + nl))" 0x41
t_name "padding poke lands in padding (precondition)"
[ $(( (na + nl) % 8 )) != 0 ] && t_ok || t_fail "entry $S has no padding"
expect_clean "$D" "stale padding"
run_check "$D"
snapcheck -1 none
expect_same_verdict_as_qemu "$D"

# Long names: a name length 8 or 16 too SHORT leaves the entry's strings
# looking fine and the next entry is read out of step; parsing finds the
# real next entry before the point where the short lengths said it starts,
# redoes the short entry from its real extent, and every name survives.
LN="$T/long.qcow2"
mk "$LN" 64M
for i in 0 1 2 3; do snap "$LN" "a-rather-long-snapshot-name-$i"; done
run_check "$LN"
cp "$JSON" "$T/long-clean.json"
for d in -8 -16 +8; do
	cp "$LN" "$T/long$d.qcow2"
	$POKE "$T/long$d.qcow2" "snapshot[1].name_size" "$d"
	expect_code "$T/long$d.qcow2" snapshot-entry-lengths-invalid 2 corruption
	t_name "name_size $d: all four names recovered"
	python3 - "$T/long-clean.json" "$JSON" <<'PY' && t_ok || t_fail "names differ"
import json, sys
c = json.load(open(sys.argv[1]))["snapshots"]
s = json.load(open(sys.argv[2]))["snapshots"]
assert [(x["id"], x["name"]) for x in s] == [(x["id"], x["name"]) for x in c], s
assert [x["problems"] for x in s] == [[], ["snapshot-entry-lengths-invalid"], [], []]
PY
done
# QEMU reads the shortened name and the rest of the table out of step.
qemu_check "$T/long-8.qcow2"
t_name "qemu-img check on a short name length: exit $QRC (1 or 2, never clean)"
[ "$QRC" = 1 ] || [ "$QRC" = 2 ] && t_ok || t_fail "qemu-img exit $QRC"

# Odd but consistent: tabs in the names of two neighbouring entries make
# both look unlike what QEMU writes, yet their lengths lead exactly to the
# next entry, so nothing is out of step (QEMU agrees: "No errors").
A1=$($POKE "$B" --addr "snapshot[$S].name" | cut -d' ' -f1)
A2=$($POKE "$B" --addr "snapshot[$((S + 1))].name" | cut -d' ' -f1)
damage tabs "u8@$A1" 9 "u8@$A2" 9
expect_clean "$D" "tabs in two names"
t_name "names with tabs are kept as they are"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"]; i=int(sys.argv[2]); assert s[i]["name"][0]=="\t" and s[i+1]["name"][0]=="\t" and len(s)==int(sys.argv[3])' "$JSON" $S "$N" && t_ok || t_fail "names changed"
expect_same_verdict_as_qemu "$D"

# A blank (zeroed) entry in the middle of the table.
off=$($POKE "$B" --addr "snapshot[$S].l1_table_offset" | cut -d' ' -f1)
damage blank "u64@$off" 0 "u64@$((off + 8))" 0 "u64@$((off + 16))" 0 "u64@$((off + 24))" 0 \
	"u64@$((off + 32))" 0
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid

# --- counts and the table location ---------------------------------------------
# One too many (§9.5 I, last paragraph): QEMU reads a zero entry, "incomplete".
damage nbplus "header.nb_snapshots" +1
expect_code "$D" snapshot-count-exceeds-table 2 corruption
snapcheck -1 none
expect_same_verdict_as_qemu "$D"
# 70000 (§9.5 I): QEMU cannot check (exit 1); we keep all N real entries.
damage nb70000 "header.nb_snapshots" 70000
expect_code "$D" snapshot-count-too-large 2 corruption
expect_code "$D" snapshot-count-exceeds-table 2 corruption
snapcheck -1 none
qemu_says "$D" 1 "snapshot table too large"
# One too few: the last entry is simply not part of the table any more (its
# clusters become leaks for the refcount pass); the others are untouched.
damage nbminus "header.nb_snapshots" -1
run_check "$D"
snapcheck -1 none $L
# Unaligned table offset: QEMU cannot check (exit 1, "snapshot table offset invalid").
damage tabunal "header.snapshots_offset" +0x200
expect_code "$D" snapshot-table-offset-unaligned 2 corruption
qemu_says "$D" 1 "snapshot table offset invalid"
# Table past EOF: QEMU reads zeros there ("incomplete" for every entry).
damage tabeof "header.snapshots_offset" 0x100000000000
expect_code "$D" snapshot-table-past-eof 2 corruption
qemu_says "$D" 2 "is incomplete"
# Table offset 0 (the header).
damage tabzero "header.snapshots_offset" 0
expect_code "$D" snapshot-table-offset-invalid 2 corruption
qemu_check "$D"
t_name "qemu-img check on table offset 0 is not clean"
[ "$QRC" != 0 ] && t_ok || t_fail "qemu-img exit 0"

t_done
