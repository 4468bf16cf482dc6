#!/bin/sh
# bitmap-clean.sh - images with persistent dirty bitmaps made by
# `qemu-img bitmap` (several bitmaps, granularities 512 B to 2 MiB, enabled
# and disabled, data written through qemu-io so the bitmaps own data
# clusters) check clean and agree with `qemu-img check` for every cluster
# size; the claims of the directory, tables and data clusters are proven
# by the refcount comparison (a missed claim would be a leak).  Also: the
# in_use flag is only a warning, and with autoclear bit 0 clear QEMU
# ignores the bitmaps so their clusters are leaks (doc/format.md §9.3): same
# verdict here.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

no_bitmap_codes() {
	t_name "no bitmap-* problem on ${1##*/}"
	run_check "$1"
	if printf '%s\n' "$(json_codes)" | grep -q '^bitmap-'; then t_fail "$(json_codes | tr '\n' ' ')"; else t_ok; fi
}

# mkbm IMG SIZE CLUSTER: three bitmaps (default, 4 KiB / 512 B, disabled) + data
mkbm() {
	mk "$1" "$2" "cluster_size=$3"
	fixture qemu-img bitmap --add "$1" b0
	fixture qemu-img bitmap --add -g 4096 "$1" fine
	fixture qemu-img bitmap --add -g 512 "$1" finest
	fixture qemu-img bitmap --add -g 2M "$1" coarse
	fixture qemu-img bitmap --add --disable "$1" off
	fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 3M 1M' \
		-c "write -P 0x33 $(($4 - 65536)) 64k" "$1" >/dev/null
}

for cs in 512 4096 65536 2097152; do
	img="$T/bm-$cs.qcow2"
	mkbm "$img" 64M "$cs" $((64 << 20))
	expect_clean "$img" "bitmaps, cluster $cs"
	expect_same_verdict_as_qemu "$img"
	no_bitmap_codes "$img"
done

# a disk size that is not a multiple of any granularity: the tail boundary
img="$T/odd.qcow2"
mkbm "$img" $(((100 << 20) + 512)) 65536 $(((100 << 20) + 512))
expect_clean "$img" "odd disk size"
expect_same_verdict_as_qemu "$img"
no_bitmap_codes "$img"

# a 1 GiB disk whose 512 B bitmap needs several data clusters
img="$T/multi.qcow2"
mk "$img" 1G
fixture qemu-img bitmap --add -g 512 "$img" many
fixture qemu-io -f qcow2 -c 'write 0 64k' -c 'write 300M 64k' -c 'write 700M 64k' -c 'write 1000M 64k' "$img" >/dev/null
expect_clean "$img" "multi-cluster bitmap"
expect_same_verdict_as_qemu "$img"

# in_use: the bitmap was not stored cleanly; QEMU opens it (inconsistent)
img="$T/inuse.qcow2"; cp "$T/bm-65536.qcow2" "$img"
$POKE "$img" 'bitmapdir[0].flags' '|1'
expect_code "$img" bitmap-in-use 0 warning
expect_same_verdict_as_qemu "$img"

# autoclear bit 0 clear: QEMU ignores the extension, the clusters are leaks
img="$T/noautoclear.qcow2"; cp "$T/bm-65536.qcow2" "$img"
$POKE "$img" header.autoclear_features '&0xfffffffffffffffe'
no_bitmap_codes "$img"
expect_qemu "$img" 3 "(bitmap clusters are leaks)"
expect_same_verdict_as_qemu "$img"
t_done
