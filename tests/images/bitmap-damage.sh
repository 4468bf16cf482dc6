#!/bin/sh
# bitmap-damage.sh - each bitmap directory field, the bitmaps header
# extension counts and each class of bitmap table entry damaged on a real
# image (qemu-img bitmap + qemu-io), one field at a time with poke.py.
# Asserts the code, severity and exit status, and what qemu-img check
# does: for most directory/table faults QEMU cannot even open the image
# (doc/format.md §9.1: "Bitmap 'b0' doesn't satisfy the constraints", "Could
# not read bitmap_table ...", "Broken bitmap directory": exit 1), while
# qcow2fsck reports the exact field.  Where QEMU is blind (tail bits,
# in_use; doc/format.md §9.4) the test says so.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

base="$T/base.qcow2"
mk "$base" 64M
fixture qemu-img bitmap --add "$base" b0
fixture qemu-img bitmap --add -g 4096 "$base" b1
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 10M 1M' "$base" >/dev/null
T0=$($POKE "$base" 'bitmapdir[0].table_offset')
T1=$($POKE "$base" 'bitmapdir[1].table_offset')
D0=$($POKE "$base" "u64@$T0")
L1=$($POKE "$base" header.l1_table_offset)

# dmg NAME FIELD VALUE: a copy of base with one field changed -> $img
dmg() { img="$T/$1.qcow2"; cp "$base" "$img"; $POKE "$img" "$2" "$3"; }
# offset of a field, for the loc.offset assertion
addr() { $POKE "$base" --addr "$1" | cut -d' ' -f1; }
# expect_offset CODE OFF: the first record of CODE has offset OFF
expect_offset() {
	t_name "$1 at offset $2"
	python3 - "$JSON" "$1" "$2" <<'PY' && t_ok || t_fail "wrong offset"
import json, sys
p = [p for p in json.load(open(sys.argv[1]))["problems"] if p["code"] == sys.argv[2]]
assert p and p[0]["offset"] == int(sys.argv[3], 0), p
PY
}

# --- directory entry fields: QEMU refuses to open (check_dir_entry) ---
dmg tbl-unaligned 'bitmapdir[0].table_offset' '+0x200'
expect_code "$img" bitmap-table-offset-invalid 2 corruption
expect_offset bitmap-table-offset-invalid "$(addr 'bitmapdir[0].table_offset')"
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg tbl-zero 'bitmapdir[1].table_offset' 0
expect_code "$img" bitmap-table-offset-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg size-zero 'bitmapdir[0].table_size' 0
expect_code "$img" bitmap-table-size-invalid 2 corruption
expect_offset bitmap-table-size-invalid "$(addr 'bitmapdir[0].table_size')"
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg size-huge 'bitmapdir[0].table_size' 0x8000001
expect_code "$img" bitmap-table-size-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg size-phys 'bitmapdir[0].table_size' 0x2001 # 8193 x 64 KiB > 512 MiB
expect_code "$img" bitmap-table-size-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg flags-bit2 'bitmapdir[0].flags' '|4'
expect_code "$img" bitmap-flags-reserved 2 corruption
expect_offset bitmap-flags-reserved "$(addr 'bitmapdir[0].flags')"
expect_qemu "$img" 1 "(cannot open: constraints; QEMU treats bit 2 as reserved)"
dmg flags-high 'bitmapdir[1].flags' '|0x80000000'
expect_code "$img" bitmap-flags-reserved 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg type 'bitmapdir[0].type' 2
expect_code "$img" bitmap-type-invalid 2 corruption
expect_offset bitmap-type-invalid "$(addr 'bitmapdir[0].type')"
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg gran-low 'bitmapdir[0].granularity_bits' 8
expect_code "$img" bitmap-granularity-invalid 2 corruption
expect_offset bitmap-granularity-invalid "$(addr 'bitmapdir[0].granularity_bits')"
expect_qemu "$img" 1 "(cannot open: constraints)"
dmg gran-high 'bitmapdir[1].granularity_bits' 32
expect_code "$img" bitmap-granularity-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
# name "b0" + 6 bytes of extra data keeps the entry at 32 bytes
dmg extra 'bitmapdir[0].extra_data_size' 6
expect_code "$img" bitmap-extra-data 2 corruption
expect_offset bitmap-extra-data "$(addr 'bitmapdir[0].extra_data_size')"
expect_qemu "$img" 1 "(cannot open: extra data not supported)"
dmg name0 'bitmapdir[0].name_size' 0
expect_code "$img" bitmap-name-size-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open)"
# b1 renamed b0
dmg dupname "u8@$(($(addr 'bitmapdir[1].table_offset') + 25))" 0x30
expect_code "$img" bitmap-name-duplicate 2 corruption
expect_qemu "$img" 1 "(cannot open: bitmap already exists)"
dmg past-eof 'bitmapdir[0].table_offset' 0x7fff0000
expect_code "$img" bitmap-table-past-eof 2 corruption
expect_same_verdict_as_qemu "$img"

# a 1 GiB disk with a 512 B granularity bitmap needs 4 table entries
big="$T/big.qcow2"
mk "$big" 1G
fixture qemu-img bitmap --add -g 512 "$big" small
fixture qemu-io -f qcow2 -c 'write 0 64k' -c 'write 1000M 64k' "$big" >/dev/null
img="$T/toosmall.qcow2"; cp "$big" "$img"; $POKE "$img" 'bitmapdir[0].table_size' 3
expect_code "$img" bitmap-table-too-small 2 corruption
expect_qemu "$img" 1 "(cannot open: constraints)"
# ...unless in_use: then the bitmap is inconsistent anyway (QEMU accepts it)
$POKE "$img" 'bitmapdir[0].flags' '|1'
t_name "in_use bitmap may be too small"
run_check "$img"
if printf '%s\n' "$(json_codes)" | grep -qx bitmap-table-too-small; then t_fail "reported"; else t_ok; fi
expect_code "$img" bitmap-in-use "$RC" warning
expect_same_verdict_as_qemu "$img"

# --- the directory as a whole (bitmap_list_load) ---
dmg count-more 'ext[23852875].data32+0' 3
expect_code "$img" bitmap-dir-count-mismatch 2 corruption
expect_qemu "$img" 1 "(cannot open: less bitmaps found)"
dmg count-less 'ext[23852875].data32+0' 1
expect_code "$img" bitmap-dir-count-mismatch 2 corruption
expect_qemu "$img" 1 "(cannot open: more bitmaps found)"
dmg dir-short 'ext[23852875].data+8' -8
expect_code "$img" bitmap-dir-broken 2 corruption
expect_qemu "$img" 1 "(cannot open: broken bitmap directory)"
dmg dir-long 'ext[23852875].data+8' +8
expect_code "$img" bitmap-dir-broken 2 corruption
expect_qemu "$img" 1 "(cannot open: broken bitmap directory)"
# the extension pass owns the directory's bounds; the bitmaps pass then
# reads nothing (and claims nothing: the old directory is a leak)
dmg dir-eof 'ext[23852875].data+16' 0x40000000
expect_code "$img" ext-bitmaps-dir-past-eof 2 corruption
t_name "no bitmap-* problem when the directory is past EOF"
if printf '%s\n' "$(json_codes)" | grep -q '^bitmap-'; then t_fail "$(json_codes | tr '\n' ' ')"; else t_ok; fi

# --- bitmap table entries (check_table_entry) ---
dmg ent-reserved "u64@$T0" '|2'
expect_code "$img" bitmap-entry-reserved 2 corruption
expect_offset bitmap-entry-reserved "$T0"
expect_qemu "$img" 1 "(cannot open: could not read bitmap_table)"
dmg ent-reserved-high "u64@$T1" '|0x0100000000000000'
expect_code "$img" bitmap-entry-reserved 2 corruption
expect_qemu "$img" 1 "(cannot open: could not read bitmap_table)"
dmg ent-unaligned "u64@$T0" '+0x200'
expect_code "$img" bitmap-entry-unaligned 2 corruption
expect_qemu "$img" 1 "(cannot open: could not read bitmap_table)"
dmg ent-flag "u64@$T0" '|1'
expect_code "$img" bitmap-entry-flag-invalid 2 corruption
expect_qemu "$img" 1 "(cannot open: all-ones flag with an offset)"
dmg ent-eof "u64@$T0" 0x7fff0000
expect_code "$img" bitmap-entry-past-eof 2 corruption
expect_offset bitmap-entry-past-eof "$T0"
expect_qemu "$img" 2 "(refcount of a region past EOF)"
# all ones with offset 0 is valid; the old data cluster becomes a leak
dmg ent-allones "u64@$T0" 1
t_name "all-ones entry is valid"
run_check "$img"
if printf '%s\n' "$(json_codes)" | grep -q '^bitmap-'; then t_fail "$(json_codes | tr '\n' ' ')"; else t_ok; fi
expect_same_verdict_as_qemu "$img"
# two tables in one cluster, a data cluster on the L1 table
dmg tbl-shared 'bitmapdir[1].table_offset' "$T0"
expect_code "$img" overlap-metadata 2 corruption
expect_same_verdict_as_qemu "$img"
dmg data-on-l1 "u64@$T0" "$L1"
expect_code "$img" overlap-metadata 2 corruption
expect_qemu "$img" 2 "(refcount 1, two references)"

# --- what QEMU never checks (§9.4) ---
dmg tail "u8@$((D0 + 128))" 0x01 # 64 MiB / 64 KiB = 1024 bits = 128 bytes used
expect_code "$img" bitmap-tail-bits 0 warning
expect_qemu "$img" 0 "(blind to tail bits)"
dmg notail "u8@$((D0 + 127))" '|0x80' # the last real bit: no warning
t_name "last real bit is not a tail bit"
run_check "$img"
if printf '%s\n' "$(json_codes)" | grep -qx bitmap-tail-bits; then t_fail "reported"; else t_ok; fi
t_done
