#!/bin/sh
# snap-table.sh - the snapshot table on a real image with hundreds of
# snapshots (qemu-img snapshot -c, icount 0, and snapshot_blkdev_internal in
# a paused VM, icount -1): clean, then every entry field and the header's
# table fields damaged one at a time.  Each damage must give its code, the
# right verdict, and cost only the damaged entry: the other entries keep
# their IDs, names and L1 tables and have no problems of their own.
# Differential with qemu-img check where QEMU can judge; where it is blind
# or cannot check at all the comment says so (reference/qemu-img-check.md
# §2.3 "Snapshots", §2.6, §2.7 G/H/I) and its actual behaviour is asserted.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

NQ=${NQ:-100}   # snapshots made by qemu-img snapshot -c
NV=${NV:-100}   # snapshots made in one VM (snapshot_blkdev_internal)
S=7             # the entry we damage (in the middle of the table)

B="$T/base.qcow2"
mk "$B" 64M
fill "$B"
i=0
while [ $i -lt "$NQ" ]; do snap "$B" "q$i"; i=$((i + 1)); done
{
	i=0
	while [ $i -lt "$NV" ]; do echo "snapshot_blkdev_internal d0 v$i"; i=$((i + 1)); done
	echo quit
} | timeout 120 qemu-system-x86_64 -M none -S -display none -monitor stdio -serial none \
	-nodefaults -drive file="$B",if=none,format=qcow2,id=d0,cache=unsafe >/dev/null 2>&1
N=$((NQ + NV))
t_name "base image has $N snapshots"
[ "$(qemu-img snapshot -l "$B" | tail -n +3 | wc -l)" = "$N" ] && t_ok || t_fail "qemu-img lists $(qemu-img snapshot -l "$B" | tail -n +3 | wc -l)"

expect_clean "$B" "$N snapshots"
expect_same_verdict_as_qemu "$B"
cp "$JSON" "$T/clean.json"
t_name "clean JSON lists every snapshot with icount 0 and -1"
python3 - "$T/clean.json" "$N" "$NQ" <<'PY' && t_ok || t_fail "snapshots array wrong"
import json, sys
s = json.load(open(sys.argv[1]))["snapshots"]
n, nq = int(sys.argv[2]), int(sys.argv[3])
assert len(s) == n, len(s)
assert [x["name"] for x in s[:3]] == ["q0", "q1", "q2"]
assert [x["id"] for x in s[:3]] == ["1", "2", "3"]
assert s[0]["icount"] == 0 and s[-1]["icount"] == 2**64 - 1
assert all(x["disk-size"] == 64 << 20 and x["vm-state-size"] == 0 for x in s)
assert all(x["problems"] == [] for x in s)
PY

# snapcheck IDX CODE [COUNT]: the snapshot at IDX lists CODE (IDX -1: none
# is expected to); every other entry matches the clean image and has no
# problems; the array has COUNT entries (default: as many as the clean one).
cat >"$T/snapcheck.py" <<'PY'
import json, sys
clean = json.load(open(sys.argv[1]))["snapshots"]
now = json.load(open(sys.argv[2]))["snapshots"]
idx, code = int(sys.argv[3]), sys.argv[4]
count = int(sys.argv[5]) if len(sys.argv) > 5 else len(clean)
assert len(now) == count, "%d snapshots, expected %d" % (len(now), count)
for j, s in enumerate(now):
    if j == idx:
        assert code in s["problems"], "snapshot %d lacks %s: %s" % (j, code, s["problems"])
        continue
    c = clean[j]
    for k in ("id", "name", "l1-table-offset", "l1-size", "disk-size", "entry-offset"):
        assert s[k] == c[k], "snapshot %d %s: %r, clean %r" % (j, k, s[k], c[k])
    assert s["problems"] == [], "snapshot %d has problems %s" % (j, s["problems"])
PY
snapcheck() {
	t_name "only snapshot $1 affected ($2)"
	if python3 "$T/snapcheck.py" "$T/clean.json" "$JSON" "$@" 2>"$T/sc.err"; then
		t_ok
	else
		t_fail "$(tail -1 "$T/sc.err")"
	fi
}

# damage LABEL FIELD VALUE...: a fresh copy of the base image with pokes applied.
damage() {
	D="$T/$1.qcow2"
	shift
	cp "$B" "$D"
	while [ $# -ge 2 ]; do $POKE "$D" "$1" "$2"; shift 2; done
}

# qemu_says IMG EXIT PATTERN: qemu-img check exits EXIT and prints PATTERN.
qemu_says() {
	t_name "qemu-img check on ${1##*/}: exit $2, '$3'"
	out=$(qemu-img check -f qcow2 "$1" 2>&1)
	qrc=$?
	if [ "$qrc" = "$2" ] && printf '%s' "$out" | grep -q -- "$3"; then t_ok; else
		t_fail "exit $qrc: $(printf '%s' "$out" | head -3 | tr '\n' '|')"; fi
}

# --- the snapshot's L1 table -------------------------------------------------
# Unaligned (§2.7 G): QEMU reports it too and turns the snapshot's clusters
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

# Offset 0: QEMU parses the header as the snapshot's L1 (§0 item 7); we refuse.
damage l1zero "snapshot[$S].l1_table_offset" 0
expect_code "$D" snapshot-l1-offset-invalid 2 corruption
snapcheck $S snapshot-l1-offset-invalid
qemu_says "$D" 2 "reserved bits set"

# l1_size above 4 Mi entries: both report it.
damage l1big "snapshot[$S].l1_size" 0x500000
expect_code "$D" snapshot-l1-too-large 2 corruption
snapcheck $S snapshot-l1-too-large
qemu_says "$D" 2 "L1 table is too large"

# l1_size 0 for a 64 MiB disk: QEMU is blind to l1_size vs disk_size (§2.6)
# and only counts the snapshot's clusters as leaks (exit 3).
damage l1small "snapshot[$S].l1_size" 0
expect_code "$D" snapshot-l1-too-small 2 corruption
snapcheck $S snapshot-l1-too-small
qemu_says "$D" 3 "Leaked cluster"

# --- disk_size, dates ---------------------------------------------------------
# disk_size 16 TiB with l1_size 1: QEMU does not check disk_size (§2.6): "No errors".
damage disk "snapshot[$S].disk_size" 0x100000000000
expect_code "$D" snapshot-l1-too-small 2 corruption
snapcheck $S snapshot-l1-too-small
qemu_says "$D" 0 "No errors"
# disk_size 0x123 (§2.6 reproduced): not a multiple of 512, a warning.
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

# --- IDs and names (QEMU checks neither, §2.6: "No errors") --------------------
sid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["snapshots"][3]["id"])' "$T/clean.json")
damage dupid "snapshot[$S].id" "str:$sid"
expect_code "$D" snapshot-id-duplicate 2 corruption
snapcheck $S snapshot-id-duplicate
qemu_says "$D" 0 "No errors"
# empty ID: the id byte becomes part of the name, so the layout is unchanged.
damage emptyid "snapshot[$S].id_str_size" 0 "snapshot[$S].name_size" +1
expect_code "$D" snapshot-id-empty 2 corruption
snapcheck $S snapshot-id-empty
qemu_says "$D" 0 "No errors"
# duplicate name: QEMU tolerates it (it finds the first); a warning.
damage dupname "snapshot[$S].name" str:q3
expect_code "$D" snapshot-name-duplicate 0 warning
snapcheck $S snapshot-name-duplicate
qemu_says "$D" 0 "No errors"

# --- lengths: one bad entry must not poison the rest ---------------------------
# extra_data_size 2000 (§2.7 H): QEMU cannot check at all (exit 1, "File too
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

# extra_data_size 8 in the LAST entry: nothing follows, so the declared
# layout stands and disk_size is missing (QEMU: "incomplete", corruption).
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

# A blank (zeroed) entry in the middle of the table.
off=$($POKE "$B" --addr "snapshot[$S].l1_table_offset" | cut -d' ' -f1)
damage blank "u64@$off" 0 "u64@$((off + 8))" 0 "u64@$((off + 16))" 0 "u64@$((off + 24))" 0 \
	"u64@$((off + 32))" 0
expect_code "$D" snapshot-entry-lengths-invalid 2 corruption
snapcheck $S snapshot-entry-lengths-invalid

# --- counts and the table location ---------------------------------------------
# One too many (§2.7 I, last paragraph): QEMU reads a zero entry, "incomplete".
damage nbplus "header.nb_snapshots" +1
expect_code "$D" snapshot-count-exceeds-table 2 corruption
snapcheck -1 none
expect_same_verdict_as_qemu "$D"
# 70000 (§2.7 I): QEMU cannot check (exit 1); we keep all N real entries.
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
