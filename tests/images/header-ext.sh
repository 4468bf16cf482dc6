#!/bin/sh
# header-ext.sh - damage one header extension at a time in real images
# (made by qemu-img: feature table, backing format, bitmaps, external data
# file) and assert the problem code, severity and exit status, next to
# what qemu-img check says.  Most of these stop QEMU at open ("Could not
# open", exit 1, doc/format.md §9.1); the others QEMU does
# not check (§2.3) and the comment says so.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

mk "$T/bm.qcow2" 64M
fill "$T/bm.qcow2"
fixture qemu-img bitmap --add "$T/bm.qcow2" b0
mk "$T/base.qcow2" 64M
fixture qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/over.qcow2"
mk "$T/df.qcow2" 64M data_file="$T/df.raw"

dmg() { cp "$T/$2.qcow2" "$T/$1.qcow2"; $POKE "$T/$1.qcow2" "$3" "$4" >/dev/null; }
case_() {
	dmg "$1" "$2" "$3" "$4"
	expect_code "$T/$1.qcow2" "$5" "$6" "$7"
	expect_qemu "$T/$1.qcow2" "$8" "($3=$4)"
}
FT=0x6803f857 BF=0xe2792aca BM=0x23852875 DF=0x44415441

# Lengths past the extension area: "Header extension too large".
case_ ftbig bm "ext[$FT].length" 0x10000 ext-too-large 2 corruption 1
case_ ftend bm "ext[$FT].length" 0xfff0 ext-too-large 2 corruption 1
# Backing format of 16 bytes: "ext_backing_format: len=16 too large".
case_ bf16 over "ext[$BF].length" 16 ext-backing-format-too-long 2 corruption 1
# Feature table not a multiple of 48: the next extension header is then read
# from inside the table (QEMU: "Header extension too large").
case_ ft47 bm "ext[$FT].length" 47 ext-feature-table-length-invalid 2 corruption 1
# A feature table entry of type 3: QEMU only reads the table for messages (blind).
off=$($POKE "$T/bm.qcow2" --addr "ext[$FT].data+0" | cut -d' ' -f1)
case_ fttype bm "u8@$off" 3 ext-feature-table-entry-invalid 2 corruption 0
case_ ftbit bm "u8@$((off + 1))" 64 ext-feature-table-entry-invalid 2 corruption 0

# Bitmaps extension: every field.
case_ bmlen bm "ext[$BM].length" 23 ext-bitmaps-length-invalid 2 corruption 1
case_ bmn0 bm "ext[$BM].data32+0" 0 ext-bitmaps-count-invalid 2 corruption 1
case_ bmnbig bm "ext[$BM].data32+0" 65536 ext-bitmaps-count-invalid 2 corruption 1
case_ bmres bm "ext[$BM].data32+4" 1 ext-bitmaps-reserved-nonzero 2 corruption 1
case_ bmsz0 bm "ext[$BM].data+8" 0 ext-bitmaps-dir-size-invalid 2 corruption 1
case_ bmszbig bm "ext[$BM].data+8" 67107841 ext-bitmaps-dir-size-invalid 2 corruption 1
case_ bmunal bm "ext[$BM].data+16" +512 ext-bitmaps-dir-offset-unaligned 2 corruption 1
case_ bmeof bm "ext[$BM].data+16" 0x10000000 ext-bitmaps-dir-past-eof 2 corruption 1
# Autoclear bit 0 clear: QEMU ignores the bitmaps (warning) and then counts
# their directory and table clusters as leaked; so must we (exit 3, like it).
dmg bmac bm header.autoclear_features 0
expect_code "$T/bmac.qcow2" ext-bitmaps-autoclear-clear 3 warning
expect_same_verdict_as_qemu "$T/bmac.qcow2"

# External data file.
# Incompatible bit 2 clear: QEMU ignores the name (warning; no data written).
case_ dfbit df header.incompatible_features 0 ext-data-file-without-feature 0 warning 0
# Name longer than 1023 bytes: QEMU reads it with its NUL padding (blind).
case_ dflong df "ext[$DF].length" 1024 ext-data-file-name-too-long 2 corruption 0
# Bit 2 without a name: usable only with a data-file option (warning);
# qemu-img check cannot open it: "'data-file' is required for this image".
dmg dfnone df u32@112 0x12345678
expect_code "$T/dfnone.qcow2" ext-data-file-missing 0 warning
expect_code "$T/dfnone.qcow2" ext-unknown 0 warning
expect_qemu "$T/dfnone.qcow2" 1 "(data file bit without a name)"

# Unknown extension type: preserved by QEMU, a warning here.
case_ unk over u32@112 0x12345678 ext-unknown 0 warning 0
# The same type twice: QEMU silently uses the later one.  Turn the feature
# table (the second extension) into a second backing format: it is too long
# too, so QEMU refuses it; the duplicate itself is what we assert.
boff=$($POKE "$T/over.qcow2" --addr "ext[$FT].length" | cut -d' ' -f1)
case_ dup over "u32@$((boff - 4))" $BF ext-duplicate 2 corruption 1
t_done
