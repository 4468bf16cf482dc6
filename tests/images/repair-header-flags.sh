#!/bin/sh
# repair-header-flags.sh - header fields the image's other fields or bytes
# settle (repair/header_flags.c, doc/repair.md "Header fields"), one field
# damaged at a time on real images: unknown autoclear bits and the raw
# external data bit without a data file (cleared), crypt_method out of range
# (2 with the LUKS extension, 0 when the data is plain, refused on an
# AES-encrypted image), backing_file_offset set without a backing file (0)
# or lost with one (found again after the header extensions),
# backing_file_size out of range (the name's length), compression_type
# disagreeing with incompatible bit 3 (made to agree when nothing is
# compressed, refused otherwise).  QEMU refuses to open every one of these
# images, so `qemu-img check -r all` cannot repair them (printed per case).
# Each repaired case: check -> repair exit 0 -> both checkers clean ->
# guest content of the active layer and every snapshot unchanged -> a
# second repair plans nothing -> undo restores the damage (repair_case).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

POKE="python3 $HERE/../poke.py"
P=$T/pristine.qcow2
pristine "$P"
guest_save "$P" "$T/ref"

# case_poke-like, with the damage given as FIELD VALUE pairs
flags_case() {
	_l=$1 _c=$2; shift 2
	I=$T/$_l.qcow2
	cp "$P" "$I"
	while [ $# -gt 1 ]; do $POKE "$I" "$1" "$2"; shift 2; done
	qemu_repair_all "$I" "$_l"
	repair_case "$_l" "$I" "$T/ref" "$_c"
}

# autoclear: the specification asks a writer to clear bits it does not know
# (a warning: repair_case's count of fixed corruptions does not apply)
I=$T/autoclear-unknown.qcow2
cp "$P" "$I"
$POKE "$I" header.autoclear_features 0xff00000000000000
d=$(sha "$I")
run_check "$I"
t_name "autoclear-unknown: check warns header-autoclear-unknown"
json_codes | grep -qx header-autoclear-unknown && t_ok || t_fail "codes $(json_codes | tr '\n' ' ')"
run_repair "$I" --undo-file="$T/undo.autoclear-unknown"
t_name "autoclear-unknown: repair exits 0 and clears the unknown bits"
[ "$RRC" = 0 ] && [ "$($POKE "$I" header.autoclear_features)" = 0x0 ] && t_ok || t_fail "exit $RRC"
expect_clean "$I" "autoclear-unknown: after repair"
expect_qemu "$I" 0 "(autoclear-unknown: after repair)"
guest_same "$I" "$T/ref" autoclear-unknown
t_name "autoclear-unknown: undo restores the damage"
"$QC" undo "$T/undo.autoclear-unknown" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$d" ] && t_ok || t_fail undo
flags_case data-raw-no-data-file header-data-raw-without-data-file header.autoclear_features 0x2
# crypt_method out of range on a plain image: the data shows plain sectors
flags_case crypt-method-flipped header-crypt-method-invalid header.crypt_method '^0x100'
flags_case crypt-method-all-ones header-crypt-method-invalid header.crypt_method 0xffffffff
# a backing file offset without a backing file name (size 0): QEMU writes 0
flags_case backing-offset-no-name header-backing-offset-invalid header.backing_file_offset 0x10001
# inside the header cluster, it cuts the extension area short instead
flags_case backing-offset-cuts-extensions ext-too-large header.backing_file_offset '^0x100'

# compression_type against incompatible bit 3, on an image with nothing
# compressed (the fixture's 8M cluster is compressed: a plain image here)
C=$T/plain.qcow2
mk "$C" 16M
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 192k' "$C" >/dev/null
rm -rf "$T/ref-c"; guest_save "$C" "$T/ref-c"
for v in '^0x1' 0xff; do
	I=$T/ctype$v.qcow2
	cp "$C" "$I"
	$POKE "$I" header.compression_type "$v"
	code=header-compression-type-mismatch
	[ "$v" = 0xff ] && code=header-compression-type-invalid
	qemu_repair_all "$I" "compression-type $v"
	repair_case "compression-type-$v" "$I" "$T/ref-c" "$code"
done
# with compressed clusters the streams would have to decide: refused
I=$T/ctype-compressed.qcow2
cp "$P" "$I"
if [ "$($POKE "$I" 'l2[0][128]')" != 0x0 ]; then
	$POKE "$I" header.compression_type '^0x1'
	run_repair "$I" --undo-file="$T/undo.ctype-compressed"
	t_name "compression-type with compressed clusters: refused, the field named"
	[ "$RRC" = 2 ] && [ "$(rjson "any(l['code'] == 'header-compression-type-mismatch' and 'compression_type' in l['reason'] for l in r['left'])")" = True ] &&
		t_ok || t_fail "exit $RRC left $(rjson 'r["left"]')"
fi

# A backing file: its name's offset lost, or its size out of range
B=$T/base.qcow2
O=$T/overlay.qcow2
if fixture_try qemu-img create -q -f qcow2 "$B" 16M &&
   fixture_try qemu-io -f qcow2 -c 'write -P 0x55 0 1M' "$B" >/dev/null &&
   fixture_try qemu-img create -q -f qcow2 -b "$B" -F qcow2 "$O" &&
   fixture_try qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$O" >/dev/null; then
	rm -rf "$T/ref-b"; guest_save "$O" "$T/ref-b"
	for d in 'header.backing_file_offset 0xffffffffffffffff' 'header.backing_file_offset ^0x10000'; do
		set -- $d
		I=$T/backing-offset$2.qcow2
		cp "$O" "$I"
		$POKE "$I" "$1" "$2"
		qemu_repair_all "$I" "backing-offset $2"
		repair_case "backing-offset-$2" "$I" "$T/ref-b" header-backing-offset-invalid
		t_name "backing-offset-$2: qemu-img info names the backing file again (after undo and a repair)"
		"$QC" repair "$I" >/dev/null 2>&1
		qemu-img info "$I" 2>/dev/null | grep -q "backing file: $B" && t_ok || t_fail "$(qemu-img info "$I" 2>&1 | grep -i backing)"
	done
	I=$T/backing-size.qcow2
	cp "$O" "$I"
	$POKE "$I" header.backing_file_size '^0x8000'
	qemu_repair_all "$I" backing-size
	repair_case backing-size "$I" "$T/ref-b" header-backing-name-invalid
else
	echo "fixture: image with a backing file could not be made: backing cases skipped (FIXTURE-FAIL above)"
fi

# LUKS: crypt_method damaged, the LUKS extension says 2
SECRET="--object secret,id=sec0,data=abc"
L=$T/luks.qcow2
# (made through fixture_try: LUKS creation times its key derivation and can
# fail under CPU load; a fixture still missing after the retries is a
# fixture failure, not three silently skipped cases)
if fixture_try qemu-img create -q -f qcow2 $SECRET -o encrypt.format=luks,encrypt.key-secret=sec0 "$L" 16M &&
   fixture_try qemu-io $SECRET --image-opts "driver=qcow2,file.filename=$L,encrypt.key-secret=sec0" -c 'write -P 0x11 0 1M' >/dev/null; then
	I=$T/luks-crypt.qcow2
	cp "$L" "$I"
	$POKE "$I" header.crypt_method '^0x100'
	d=$(sha "$I")
	run_check "$I"
	t_name "luks-crypt: check reports header-crypt-method-invalid"
	json_codes | grep -qx header-crypt-method-invalid && t_ok || t_fail "codes $(json_codes | tr '\n' ' ')"
	run_repair "$I" --undo-file="$T/undo.luks-crypt"
	t_name "luks-crypt: repair sets crypt_method 2 and exits 0; the file equals the undamaged one"
	[ "$RRC" = 0 ] && [ "$($POKE "$I" header.crypt_method)" = 0x2 ] && cmp -s "$I" "$L" && t_ok ||
		t_fail "exit $RRC crypt_method $($POKE "$I" header.crypt_method)"
	t_name "luks-crypt: undo restores the damage"
	"$QC" undo "$T/undo.luks-crypt" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$d" ] && t_ok || t_fail undo
else
	echo "fixture: LUKS image could not be made: LUKS case skipped (FIXTURE-FAIL above)"
fi
# AES (crypt_method 1): the data is ciphertext, so nothing shows plain data
A=$T/aes.qcow2
if qemu-img create -q -f qcow2 $SECRET -o encrypt.format=aes,encrypt.key-secret=sec0 "$A" 16M 2>/dev/null &&
   qemu-io $SECRET --image-opts "driver=qcow2,file.filename=$A,encrypt.key-secret=sec0" -c 'write -P 0 0 1M' >/dev/null 2>&1; then
	I=$T/aes-crypt.qcow2
	cp "$A" "$I"
	$POKE "$I" header.crypt_method '^0x100'
	d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.aes-crypt"
	t_name "aes-crypt: crypt_method not guessed (zeros written through AES read as ciphertext): refused, the field named, nothing written"
	[ "$RRC" = 2 ] && [ "$(sha "$I")" = "$d" ] &&
		[ "$(rjson "any(l['code'] == 'header-crypt-method-invalid' and 'crypt_method' in l['reason'] for l in r['left'])")" = True ] &&
		t_ok || t_fail "exit $RRC left $(rjson 'r["left"]')"
else
	echo "fixture: AES-encrypted image could not be made (qemu-img refuses encrypt.format=aes): AES case skipped"
fi
t_done
