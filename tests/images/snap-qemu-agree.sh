#!/bin/sh
# snap-qemu-agree.sh - where QEMU is right, qcow2fsck agrees (doc/snapshots.md):
#  * an EMPTY snapshot table (nb_snapshots 0) whose offset is unaligned or
#    beyond 2^63 - 1: QEMU refuses to open the image ("Snapshot table offset
#    invalid"); it is corruption and the repair sets the offset to 0;
#  * an aligned offset anywhere below 2^63 with no snapshots is fine;
#  * in a version 2 image a 40-byte all-zero snapshot entry is a valid
#    (empty) entry, not the end of the table: QEMU lists it and only the
#    clusters the erased snapshot held are leaks.
# Empty snapshot IDs (a warning) are in snap-table.sh, bit 0 of an extended
# L2 descriptor (a warning) in walk-tables.sh.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# E: data, one snapshot created and deleted again (nb_snapshots 0).
E=$T/empty.qcow2
mk "$E" 16M
fill "$E"
snap "$E" s1
fixture qemu-img snapshot -d s1 "$E"
guest_save "$E" "$T/ref"
t_name "fixture: no snapshots left"
[ "$($POKE "$E" header.nb_snapshots)" = 0x0 ] && t_ok || t_fail "nb_snapshots $($POKE "$E" header.nb_snapshots)"

empty_case() { # LABEL OFFSET CODE
	I=$T/$1.qcow2
	cp "$E" "$I"
	$POKE "$I" header.snapshots_offset "$2"
	t_name "$1: QEMU refuses to open the image"
	if qemu-io -f qcow2 -c 'read 0 512' "$I" 2>&1 | grep -qi 'snapshot table offset invalid'; then
		t_ok
	else
		t_fail "qemu-io opened it"
	fi
	expect_code "$I" "$3" 2 corruption
	cp "$I" "$T/copy.qcow2"
	run_repair "$T/copy.qcow2" --undo-file="$T/undo.copy.$1"
	t_name "$1: the repaired offset is 0"
	[ "$($POKE "$T/copy.qcow2" header.snapshots_offset)" = 0x0 ] && t_ok ||
		t_fail "offset $($POKE "$T/copy.qcow2" header.snapshots_offset)"
	# full cycle: dry run, repair, both checkers clean, guest, second repair, undo
	repair_case "$1" "$I" "$T/ref" "$3"
}
empty_case unaligned 0x10200 snapshot-table-offset-unaligned
empty_case beyond-int64 0x8000000000000000 snapshot-table-offset-invalid
empty_case beyond-int64-unaligned 0xffffffffffffffff snapshot-table-offset-unaligned

for off in 0 0x10000 0x7fffffffffff0000; do
	I=$T/fine.qcow2
	cp "$E" "$I"
	$POKE "$I" header.snapshots_offset "$off"
	expect_clean "$I" "empty table at $off"
	expect_qemu "$I" 0 "(empty table at $off)"
done

# Version 2: one snapshot whose whole entry is overwritten with zeros.
V=$T/v2.qcow2
mk "$V" 16M compat=0.10
fill "$V"
snap "$V" s1
fixture qemu-io -f qcow2 -c 'write -P 0x77 2M 64k' "$V" >/dev/null
fixture raw "$V" "$T/v2-active.raw"
python3 - "$V" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(72)
    off = struct.unpack(">Q", h[64:72])[0]
    f.seek(off)
    e = f.read(40)
    idl, namel = struct.unpack(">HH", e[12:16])
    extra = struct.unpack(">I", e[36:40])[0]
    n = (40 + extra + idl + namel + 7) & ~7
    f.seek(off)
    f.write(bytes(n))
PY
t_name "v2 zero entry: QEMU still lists one snapshot"
[ "$(qemu-img snapshot -l "$V" | tail -n +3 | wc -l)" = 1 ] && t_ok || t_fail "$(qemu-img snapshot -l "$V")"
expect_same_verdict_as_qemu "$V"
expect_code "$V" refcount-leak 3 leak
t_name "v2 zero entry: not read as the end of the table"
json_codes | grep -q 'snapshot-count-exceeds-table\|snapshot-l1' && t_fail "$(json_codes | tr '\n' ' ')" || t_ok
run_repair "$V"
t_name "v2 zero entry: repair exits 0"
[ "$RRC" = 0 ] && t_ok || t_fail "repair exit $RRC"
expect_clean "$V" "v2 zero entry after repair"
expect_qemu "$V" 0 "(v2 zero entry after repair)"
raw "$V" "$T/v2-after.raw"
t_name "v2 zero entry: the active layer reads the same"
cmp -s "$T/v2-active.raw" "$T/v2-after.raw" && t_ok || t_fail "active layer differs"

t_done
