#!/bin/sh
# header-luks.sh - a LUKS-encrypted image (crypt_method 2) damaged one
# field at a time: the full-disk-encryption extension and the LUKS1 header
# it points to.  qcow2fsck needs no key (metadata is never encrypted).
# qemu-img check needs the secret even for a valid image, and with it every
# one of these faults makes the open fail: exit 1 (doc/format.md §9.1), while
# qcow2fsck reports the code with exit 2.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

SECRET="--object secret,id=sec0,data=abc"
fixture qemu-img create -q -f qcow2 $SECRET -o encrypt.format=luks,encrypt.key-secret=sec0 \
	"$T/luks.qcow2" 64M
fixture qemu-io $SECRET --image-opts "driver=qcow2,file.filename=$T/luks.qcow2,encrypt.key-secret=sec0" \
	-c 'write -P 0x5a 0 128k' >/dev/null
CR=0x0537be77
base=$($POKE "$T/luks.qcow2" "ext[$CR].data+0")
base=$((base))

# qemu_luks IMG: qemu-img check with the secret; sets QRC.
qemu_luks() {
	qemu-img check $SECRET --image-opts \
		"driver=qcow2,file.filename=$1,encrypt.key-secret=sec0" >/dev/null 2>&1
	QRC=$?
}
# case_ NAME FIELD VALUE CODE EXIT SEVERITY QEMU_EXIT (a prepared $T/NAME.qcow2 is reused)
case_() {
	[ -e "$T/$1.qcow2" ] || cp "$T/luks.qcow2" "$T/$1.qcow2"
	$POKE "$T/$1.qcow2" "$2" "$3" >/dev/null
	expect_code "$T/$1.qcow2" "$4" "$5" "$6"
	t_name "qemu-img (with the secret) cannot open $1 ($2=$3)"
	qemu_luks "$T/$1.qcow2"
	[ "$QRC" = "$7" ] && t_ok || t_fail "qemu-img exit $QRC, expected $7"
}

expect_clean "$T/luks.qcow2" "LUKS image, no key"
t_name "qemu-img agrees with the secret"; qemu_luks "$T/luks.qcow2"
[ "$QRC" = 0 ] && t_ok || t_fail "qemu-img exit $QRC"

# The extension.
case_ nocrypt header.crypt_method 0 ext-crypto-without-luks 2 corruption 1
case_ crlen "ext[$CR].length" 15 ext-crypto-length-invalid 2 corruption 1
case_ crunal "ext[$CR].data+0" +512 ext-crypto-offset-unaligned 2 corruption 1
# A length past the end of the file: QEMU does not check it, opens the image
# and its check then counts refcount errors over the range (exit 2).
case_ creof "ext[$CR].data+8" 0x100000000 ext-crypto-range-invalid 2 corruption 2
case_ crmiss u32@112 0x12345678 ext-crypto-missing 2 corruption 1

# The LUKS1 header (592 bytes at the area start).
case_ magic "u8@$base" 0x4b luks-magic-invalid 2 corruption 1
case_ version "u16@$((base + 6))" 2 luks-version-unsupported 2 corruption 1
# A cipher name without its NUL: "LUKS header cipher name is not NUL terminated".
cp "$T/luks.qcow2" "$T/cipher.qcow2"
for i in 8 16 24; do $POKE "$T/cipher.qcow2" "u64@$((base + i))" 0x4141414141414141 >/dev/null; done
case_ cipher "u64@$((base + 32))" 0x4141414141414141 luks-string-unterminated 2 corruption 1
# A payload offset past the declared area: QEMU does not compare the LUKS
# payload offset with the qcow2 area (blind, opens it).
case_ payload "u32@$((base + 104))" 5000 luks-payload-offset-invalid 2 corruption 0
case_ payload0 "u32@$((base + 104))" 2 luks-payload-offset-invalid 2 corruption 1
case_ keybytes "u32@$((base + 108))" 0 luks-key-bytes-invalid 2 corruption 1
case_ mkiter "u32@$((base + 164))" 0 luks-iterations-zero 2 corruption 1
slot() { echo $((base + 208 + 48 * $1 + $2)); }
case_ state "u32@$(slot 3 0)" 1 luks-keyslot-state-invalid 2 corruption 1
case_ noactive "u32@$(slot 0 0)" 0xdead luks-no-active-keyslot 2 corruption 1
case_ iter "u32@$(slot 0 4)" 0 luks-iterations-zero 2 corruption 1
case_ stripes "u32@$(slot 2 44)" 3999 luks-keyslot-stripes-invalid 2 corruption 1
case_ kohdr "u32@$(slot 0 40)" 1 luks-keyslot-range-invalid 2 corruption 1
case_ kopay "u32@$(slot 7 40)" 4000 luks-keyslot-range-invalid 2 corruption 1
case_ kolap "u32@$(slot 5 40)" "$(($($POKE "$T/luks.qcow2" "u32@$(slot 4 40)")))" luks-keyslot-overlap 2 corruption 1

# A pointer that goes past the file: the area is not claimed (and nothing crashes).
cp "$T/luks.qcow2" "$T/far.qcow2"
$POKE "$T/far.qcow2" "ext[$CR].data+0" 0x100000000 >/dev/null
expect_code "$T/far.qcow2" ext-crypto-range-invalid 2 corruption
t_done
