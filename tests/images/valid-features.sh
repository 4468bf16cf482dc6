#!/bin/sh
# valid-features.sh - real images with every optional feature check clean
# (exit 0) and agree with qemu-img check: extended L2, external data file,
# persistent bitmaps, LUKS encryption (checked without the key; qemu-img
# needs the secret), a backing file (named, never opened), a savevm
# snapshot with VM state.  info shows what each image carries.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

both() { expect_clean "$1" "$2"; expect_same_verdict_as_qemu "$1"; }
info_has() {
	t_name "info: $2 in ${1##*/}"
	"$QC" info --output=json "$1" >"$T/info.json" 2>&1 && grep -q "$2" "$T/info.json" &&
		t_ok || t_fail "$(head -c 300 "$T/info.json")"
}

mk "$T/el2.qcow2" 64M extended_l2=on
fill "$T/el2.qcow2"
both "$T/el2.qcow2" "extended_l2=on"
info_has "$T/el2.qcow2" '"name": "extended L2 entries"'

mk "$T/df.qcow2" 64M data_file="$T/df.raw"
fill "$T/df.qcow2"
both "$T/df.qcow2" "external data file"
info_has "$T/df.qcow2" "\"data-file\": \"$T/df.raw\""
mk "$T/dfr.qcow2" 64M data_file="$T/dfr.raw",data_file_raw=on
fill "$T/dfr.qcow2"
both "$T/dfr.qcow2" "external data file, raw"

mk "$T/bm.qcow2" 64M
fill "$T/bm.qcow2"
fixture qemu-img bitmap --add "$T/bm.qcow2" b0
fixture qemu-img bitmap --add -g 128k "$T/bm.qcow2" b1
both "$T/bm.qcow2" "two persistent bitmaps"
info_has "$T/bm.qcow2" '"nb-bitmaps": 2'

# LUKS: qemu-img needs the secret to open the image at all.
SECRET="--object secret,id=sec0,data=abc"
# (LUKS creation is the fixture most often lost to CPU load: only these
# cases are skipped when it cannot be made)
if fixture_try qemu-img create -q -f qcow2 $SECRET -o encrypt.format=luks,encrypt.key-secret=sec0 \
	"$T/luks.qcow2" 64M &&
   fixture_try qemu-io --object secret,id=sec0,data=abc --image-opts \
	"driver=qcow2,file.filename=$T/luks.qcow2,encrypt.key-secret=sec0" \
	-c 'write -P 0x77 0 256k' -c 'write -P 0x78 3M 64k' >/dev/null; then
	expect_clean "$T/luks.qcow2" "LUKS without a key"
	t_name "qemu-img check agrees on LUKS (with the secret)"
	qemu-img check $SECRET --image-opts \
		"driver=qcow2,file.filename=$T/luks.qcow2,encrypt.key-secret=sec0" >/dev/null 2>&1
	QRC=$?
	run_check "$T/luks.qcow2"
	[ "$QRC" = 0 ] && [ "$RC" = 0 ] && t_ok || t_fail "qemu-img $QRC, qcow2fsck $RC"
	# doc/format.md §9.1: without the secret qemu-img cannot even open the image.
	expect_qemu "$T/luks.qcow2" 1 "(LUKS without secret, §9.1)"
	info_has "$T/luks.qcow2" '"crypto-header-length"'
fi

mk "$T/base.qcow2" 64M
fill "$T/base.qcow2"
fixture qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/over.qcow2"
fixture qemu-io -f qcow2 -c 'write -P 0x99 64k 64k' "$T/over.qcow2" >/dev/null
both "$T/over.qcow2" "backing file"
info_has "$T/over.qcow2" "\"backing-file\": \"$T/base.qcow2\""
info_has "$T/over.qcow2" '"backing-format": "qcow2"'
# The backing file is never opened: a missing one changes nothing for us,
# while qemu-img cannot open the image (doc/format.md §9.1).
mv "$T/base.qcow2" "$T/gone.qcow2"
expect_clean "$T/over.qcow2" "backing file missing"
expect_qemu "$T/over.qcow2" 1 "(missing backing file, §9.1)"

mk "$T/vm.qcow2" 64M
fill "$T/vm.qcow2"
# savevm is a fixture (factory.sh): it also makes sure the snapshot exists
savevm "$T/vm.qcow2" vm1
both "$T/vm.qcow2" "savevm snapshot"
t_done
