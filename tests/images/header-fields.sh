#!/bin/sh
# header-fields.sh - damage one header field at a time in a real image and
# assert the problem code, severity and exit status (2, or 63 for
# not-qcow2, unsupported version and unknown incompatible bits), next to
# what qemu-img check says.  Where qemu-img can only say "Could not open"
# (exit 1, doc/format.md §9.1) the test asserts that too:
# those are the faults qcow2fsck reports and qemu-img cannot.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

mk "$T/good.qcow2" 64M
fill "$T/good.qcow2"
mk "$T/small.qcow2" 64M cluster_size=4096
fill "$T/small.qcow2"

# dmg NAME BASE FIELD VALUE: a copy of BASE with one field changed.
dmg() { cp "$T/$2.qcow2" "$T/$1.qcow2"; $POKE "$T/$1.qcow2" "$3" "$4" >/dev/null; }
# case NAME BASE FIELD VALUE CODE EXIT SEVERITY QEMU_EXIT
case_() {
	dmg "$1" "$2" "$3" "$4"
	expect_code "$T/$1.qcow2" "$5" "$6" "$7"
	expect_qemu "$T/$1.qcow2" "$8" "($3=$4)"
}

# Not qcow2 / unsupported: exit 63.  qemu-img check -f qcow2 cannot open them (doc/format.md §9.1).
case_ magic good header.magic 0x514649fa image-not-qcow2 63 not-qcow2 1
case_ v4 good header.version 4 header-version-unsupported 63 corruption 1
# version 1 is qcow (v1), another format behind the same magic: not-qcow2
case_ v1 good header.version 1 image-not-qcow2 63 not-qcow2 1
case_ incompat5 good header.incompatible_features '|0x20' header-incompat-unknown 63 corruption 1

# The unknown bit is named from the image's own feature-name table: QEMU's
# table names incompatible bit 0 "dirty bit"; renumber that entry to bit 5.
dmg named good header.incompatible_features '|0x20'
off=$($POKE "$T/named.qcow2" --addr 'ext[0x6803f857].data+0' | cut -d' ' -f1)
$POKE "$T/named.qcow2" "u8@$((off + 1))" 5
t_name "unknown incompatible bit named from the feature table"
"$QC" check "$T/named.qcow2" >"$T/out" 2>&1; rc=$?
grep -q 'bit 5 "dirty bit"' "$T/out" && [ $rc = 63 ] && t_ok || t_fail "exit $rc: $(cat "$T/out")"
t_name "qemu-img names it too"
qemu-img check "$T/named.qcow2" 2>&1 | grep -q "dirty bit" && t_ok || t_fail "qemu-img message differs"

# info: the header of an image with an unknown feature is shown (bit named
# from the table) with exit 63; a file that is not qcow2 gives 63 and no report.
t_name "info names the unknown bit and exits 63"
"$QC" info --output=json "$T/named.qcow2" >"$T/info.json" 2>/dev/null; rc=$?
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); f=j["incompatible-features"]; assert any(x["bit"]==5 and x["name"]=="dirty bit" and not x["known"] for x in f), f' "$T/info.json" &&
	[ $rc = 63 ] && t_ok || t_fail "exit $rc"
t_name "info on a non-qcow2 file exits 63"
"$QC" info "$T/magic.qcow2" >/dev/null 2>&1; rc=$?
[ $rc = 63 ] && t_ok || t_fail "exit $rc"

# Header faults QEMU refuses at open (§9.1): exit 2 here, 1 there.
case_ cb8 good header.cluster_bits 8 header-cluster-bits-invalid 2 corruption 1
case_ cb22 good header.cluster_bits 22 header-cluster-bits-invalid 2 corruption 1
case_ hl96 good header.header_length 96 header-length-invalid 2 corruption 1
case_ hl103 good header.header_length 103 header-length-invalid 2 corruption 1
case_ hlbig good header.header_length 65544 header-length-invalid 2 corruption 1
# 108 is not a multiple of 8: QEMU then reads an "end" extension whose length
# field is the next extension's type and stops with "Header extension too large".
case_ hl108 good header.header_length 108 header-length-invalid 2 corruption 1
case_ ro7 good header.refcount_order 7 header-refcount-order-invalid 2 corruption 1
case_ l1zero good header.l1_size 0 header-l1-too-small 2 corruption 1
case_ l1huge good header.l1_size 0x400001 header-l1-too-large 2 corruption 1
case_ l1unal good header.l1_table_offset +8 header-l1-offset-unaligned 2 corruption 1
case_ rtunal good header.refcount_table_offset +512 header-reftable-offset-unaligned 2 corruption 1
case_ rthuge good header.refcount_table_clusters 129 header-reftable-too-large 2 corruption 1
case_ bigsize small header.size 0x100000000000000 header-size-too-large 2 corruption 1
case_ crypt3 good header.crypt_method 3 header-crypt-method-invalid 2 corruption 1
# crypt_method 2 without the encryption header pointer: "Missing CRYPTO header"
# (qemu-img first asks for a secret it cannot use).
case_ crypt2 good header.crypt_method 2 ext-crypto-missing 2 corruption 1
case_ cmpbit good header.incompatible_features '|0x8' header-compression-type-mismatch 2 corruption 1
case_ cmptype good header.compression_type 1 header-compression-type-mismatch 2 corruption 1
dmg cmp2 good header.incompatible_features '|0x8'
$POKE "$T/cmp2.qcow2" header.compression_type 2
expect_code "$T/cmp2.qcow2" header-compression-type-invalid 2 corruption
expect_qemu "$T/cmp2.qcow2" 1 "(compression type 2)"
case_ rawnodf good header.autoclear_features '|0x2' header-data-raw-without-data-file 2 corruption 1
case_ el2small small header.incompatible_features '|0x10' header-extl2-cluster-too-small 2 corruption 1

# Backing file name: offset past the first cluster, or longer than 1023 bytes.
mk "$T/base.qcow2" 64M
fixture qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/over.qcow2"
case_ bfoff over header.backing_file_offset 0x10001 header-backing-offset-invalid 2 corruption 1
case_ bflen over header.backing_file_size 1024 header-backing-name-invalid 2 corruption 1
# An offset inside the header: QEMU reads the header bytes as the name and
# opens whatever that names (here an empty name, so it is blind to the fault).
case_ bfin over header.backing_file_offset 64 header-backing-offset-invalid 2 corruption 0

# Faults QEMU opens but qcow2fsck reports (QEMU does not check them, §2.1/§9.4).
# The corrupt bit: QEMU's check counts nothing for it; doc/contracts.md §3 makes it corruption.
case_ corrupt good header.incompatible_features '|0x2' header-corrupt-bit 2 corruption 0
# Padding bytes 105-111 must be zero per spec; harmless, a warning.
case_ pad good u8@110 1 header-padding-nonzero 0 warning 0

# Warnings: exit 0, like qemu-img.
case_ dirty good header.incompatible_features '|0x1' header-dirty 0 warning 0
case_ compat good header.compatible_features '|0x2' header-compat-unknown 0 warning 0
case_ autoclear good header.autoclear_features '|0x100' header-autoclear-unknown 0 warning 0
# Legacy AES: reported as a warning; qemu-img cannot open it without a key.
case_ aes good header.crypt_method 1 header-crypt-aes 0 warning 1

# A file cut inside the header: exit 2, not 1.
head -c 90 "$T/good.qcow2" > "$T/cut.qcow2"
expect_code "$T/cut.qcow2" image-truncated-header 2 corruption
expect_qemu "$T/cut.qcow2" 1 "(truncated header)"

# A header so broken nothing can be trusted: still a full report, never exit 1.
cp "$T/good.qcow2" "$T/garbage.qcow2"
dd if=/dev/urandom of="$T/garbage.qcow2" bs=1 seek=8 count=4088 conv=notrunc 2>/dev/null
$POKE "$T/garbage.qcow2" header.incompatible_features 0 >/dev/null
$POKE "$T/garbage.qcow2" header.cluster_bits 99 >/dev/null
expect_code "$T/garbage.qcow2" header-cluster-bits-invalid 2 corruption
t_name "garbage header: JSON report is complete"
"$QC" check --output=json "$T/garbage.qcow2" | python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["corruptions"] >= 1' &&
	t_ok || t_fail "no JSON report"
t_done
