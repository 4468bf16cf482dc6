#!/bin/sh
# snap-limits.sh - where the snapshot table ends: entries cut by the end of
# the file, a table whose entries span more than 64 MiB, and a table whose
# offset points into other structures.  Real images from qemu-img; the
# 64 MiB table is guest data written by qemu-img convert (a raw file of
# well-formed entries) that the header is pointed at.  QEMU reads zeros past
# EOF and says "No errors" for a name cut by EOF; it cannot check a table
# over 64 MiB at all (exit 1, doc/format.md §9.3 "Snapshots").
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

A="$T/a.qcow2"
mk "$A" 64M
fill "$A"
snap "$A" s1
snap "$A" s2
snap "$A" s3
expect_clean "$A"
tab=$($POKE "$A" header.snapshots_offset)
size=$(stat -c %s "$A")
t_name "the table is the last thing in the file (precondition)"
[ "$((tab))" -lt "$size" ] && [ "$((size - tab))" -lt 4096 ] && t_ok || t_fail "table 0x$tab, file $size"

# names3 JSON: the ids and names the report lists, as "id/name ...".
names() { python3 -c 'import json,sys; print(" ".join(s["id"]+"/"+s["name"] for s in json.load(open(sys.argv[1]))["snapshots"]))' "$JSON"; }

# The last entry's name length runs past EOF: measured against the
# table's end (zeros, then the end of the file, which reads as zeros), its
# real length is found again (checker/snaplast.c).
cp "$A" "$T/name.qcow2"
$POKE "$T/name.qcow2" "snapshot[2].name_size" 200
expect_code "$T/name.qcow2" snapshot-entry-lengths-invalid 2 corruption
t_name "the last entry keeps its name"
names | grep -q '^1/s1 2/s2 3/s3$' && t_ok || t_fail "$(names)"
t_name "entries before the cut keep their names"
[ "$(names)" = "1/s1 2/s2 $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"][2]; print(s["id"]+"/"+s["name"])' "$JSON")" ] &&
	names | grep -q '^1/s1 2/s2 3/s3' && t_ok || t_fail "$(names)"
# QEMU zero-fills past EOF and accepts the entry.
qemu_check "$T/name.qcow2"
t_name "qemu-img check: No errors for the cut name (zero-filled past EOF)"
[ "$QRC" = 0 ] && t_ok || t_fail "qemu-img exit $QRC"

# The file truncated 20 bytes into the last entry's fixed part.
off=$($POKE "$A" --addr "snapshot[2].l1_table_offset" | cut -d' ' -f1)
cp "$A" "$T/trunc.qcow2"
truncate -s $((off + 20)) "$T/trunc.qcow2"
expect_code "$T/trunc.qcow2" snapshot-entry-past-eof 2 corruption
t_name "the cut entry's zero-filled fields are not reported one by one"
json_codes | grep -q 'snapshot-extra-data-too-small\|snapshot-l1' && t_fail "$(json_codes | tr '\n' ' ')" || t_ok
t_name "entries before the cut keep their names"
names | grep -q '^1/s1 2/s2' && t_ok || t_fail "$(names)"
qemu_check "$T/trunc.qcow2"
t_name "qemu-img check: entry incomplete (exit 2)"
[ "$QRC" = 2 ] && t_ok || t_fail "qemu-img exit $QRC"
# Truncated exactly at the start of the last entry: the count is one too large.
cp "$A" "$T/trunc0.qcow2"
truncate -s "$off" "$T/trunc0.qcow2"
expect_code "$T/trunc0.qcow2" snapshot-count-exceeds-table 2 corruption

# A table of 64 MiB and more: 1153 entries with 60000-byte names as guest data.
python3 - "$T/ent.raw" <<'PY'
import struct, sys
out = open(sys.argv[1], "wb")
n = total = 0
while total < (66 << 20):
    idb = str(n + 1).encode()
    name = b"n%d-" % n + b"x" * 60000
    e = struct.pack(">QIHHIIQII", 0, 0, len(idb), len(name), 0, 0, 0, 0, 24)
    e += struct.pack(">QQQ", 0, 0, 0) + idb + name
    e += bytes(-len(e) % 8)
    out.write(e)
    total += len(e)
    n += 1
PY
fixture qemu-img convert -f raw -O qcow2 "$T/ent.raw" "$T/big.qcow2"
rm -f "$T/ent.raw"
hostoff() { python3 -c 'import sys; print(int(sys.argv[1], 16) & 0x00fffffffffffe00)' "$($POKE "$T/big.qcow2" "$1")"; }
data=$(hostoff "l2[0][0]")
t_name "guest data is contiguous (precondition)"
[ $(( $(hostoff "l2[0][1000]") - data )) = $((1000 << 16)) ] && t_ok || t_fail "not contiguous"
$POKE "$T/big.qcow2" header.snapshots_offset "$data"
$POKE "$T/big.qcow2" header.nb_snapshots 1153
expect_code "$T/big.qcow2" snapshot-table-too-large 2 corruption
t_name "the entries inside 64 MiB are kept"
n=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"]; print(len(s), s[0]["name"][:3], s[-1]["id"])' "$JSON")
[ "$n" = "1117 n0- 1117" ] && t_ok || t_fail "$n"
t_name "the table over guest data is an overlap"
json_codes | grep -qx overlap-data-metadata && t_ok || t_fail "$(json_codes | tr '\n' ' ')"
qemu_check "$T/big.qcow2"
t_name "qemu-img check cannot check a table over 64 MiB (exit 1)"
[ "$QRC" = 1 ] && t_ok || t_fail "qemu-img exit $QRC"

# The table pointed at the active L1: its first "entry" is L1 entries.
l1=$($POKE "$A" header.l1_table_offset)
cp "$A" "$T/onl1.qcow2"
$POKE "$T/onl1.qcow2" header.snapshots_offset "$l1"
run_check "$T/onl1.qcow2"
t_name "table on the L1 is corruption"
[ "$RC" = 2 ] && json_codes | grep -q '^snapshot-' && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"
expect_same_verdict_as_qemu "$T/onl1.qcow2"

t_done
