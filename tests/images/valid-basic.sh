#!/bin/sh
# valid-basic.sh - real images made by qemu-img in every basic shape check
# clean (exit 0) and get the same verdict as qemu-img check: v2
# (compat=0.10) and v3, cluster sizes 512 B to 2 MiB, refcount widths 1 to
# 64 bits, zlib and zstd compressed clusters, internal snapshots.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

both() { expect_clean "$1" "$2"; expect_same_verdict_as_qemu "$1"; }

mk "$T/v2.qcow2" 64M compat=0.10
fill "$T/v2.qcow2"
snap "$T/v2.qcow2" s1
both "$T/v2.qcow2" "v2 (compat=0.10) with data and a snapshot"

for cs in 512 4096 65536 2M; do
	mk "$T/c$cs.qcow2" 64M cluster_size=$cs
	fill "$T/c$cs.qcow2"
	both "$T/c$cs.qcow2" "cluster_size=$cs"
done

for rb in 1 2 4 8 16 32 64; do
	mk "$T/r$rb.qcow2" 32M refcount_bits=$rb
	fill "$T/r$rb.qcow2"
	both "$T/r$rb.qcow2" "refcount_bits=$rb"
done

for ct in zlib zstd; do
	mk "$T/$ct.qcow2" 32M compression_type=$ct
	fixture qemu-io -f qcow2 -c 'write -c -P 0x44 0 64k' -c 'write -c -P 0x55 1M 128k' \
		"$T/$ct.qcow2" >/dev/null
	both "$T/$ct.qcow2" "compression_type=$ct"
	t_name "compression type $ct shown by info"
	"$QC" info --output=json "$T/$ct.qcow2" | grep -q "\"compression-type\": *\"$ct\"" &&
		t_ok || t_fail "info does not say $ct"
done

mk "$T/snaps.qcow2" 64M
fill "$T/snaps.qcow2"
snap "$T/snaps.qcow2" one
fixture qemu-io -f qcow2 -c 'write -P 0x66 0 128k' "$T/snaps.qcow2" >/dev/null
snap "$T/snaps.qcow2" two
both "$T/snaps.qcow2" "two internal snapshots"

mk "$T/lazy.qcow2" 32M lazy_refcounts=on
fill "$T/lazy.qcow2"
both "$T/lazy.qcow2" "lazy_refcounts=on"
t_done
