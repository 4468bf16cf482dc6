#!/bin/sh
# make-corpus.sh - makes the fuzzing seed corpus corpus/seeds/: tiny qcow2
# images of every format variant, made with qemu-img / qemu-io /
# qemu-system-x86_64 (savevm), plus a few damaged with tests/poke.py along
# the threat list of SECURITY.md (huge tables, hostile names, bad geometry).
# Images are kept small: 1-4 MiB virtual sizes, 512 B-16 KiB clusters (and one
# 64 KiB image without data; 2 MiB clusters are left to the limits tests, their
# metadata alone is 6 MiB).  With afl-cmin installed and
# build/afl/fuzz-check built (`make fuzz-build`), the set is then minimised
# to the seeds that add coverage (MINIMISE=0 skips that).
# Usage: sh corpus/make-corpus.sh   (from anywhere; rewrites corpus/seeds/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=$here/seeds
poke="python3 $top/tests/poke.py"
. "$top/tests/factory.sh"
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
cd "$w"

# mkd NAME SIZE OPTS [qemu-io commands...]: new image with some data.
mkd() {
	_n=$1 _s=$2 _o=$3; shift 3
	qemu-img create -q -f qcow2 -o "$_o" "$_n.qcow2" "$_s"
	for c in "$@"; do
		qemu-io -f qcow2 -c "$c" "$_n.qcow2" >/dev/null
	done
}
data='write -P 0x11 0 4k'
more='write -P 0x22 64k 12k'

# Versions and cluster sizes
mkd v2-c512 1M compat=0.10,cluster_size=512 "$data" "$more"
mkd v2-c4k 2M compat=0.10,cluster_size=4096 "$data" "$more"
mkd v3-c512 1M cluster_size=512 "$data" "$more"
mkd v3-c1k 1M cluster_size=1024 "$data"
mkd v3-c4k 4M cluster_size=4096 "$data" "$more" 'write -z 128k 8k'
mkd v3-c64k-empty 1M cluster_size=65536

# Refcount widths
for b in 1 2 4 8 16 32 64; do
	mkd v3-rc$b 1M cluster_size=512,refcount_bits=$b "$data"
done
# Compression
mkd zlib 1M cluster_size=4096 'write -c -P 0x44 0 16k' 'write -c -P 0x45 64k 4k'
mkd zstd 1M cluster_size=4096,compression_type=zstd 'write -c -P 0x44 0 16k' "$data"
# Extended L2 (needs 16 KiB clusters or more)
mkd extl2 1M cluster_size=16384,extended_l2=on 'write -P 0x55 0 2k' 'write -P 0x56 20k 2k' 'write -z 40k 2k'
# External data file (raw and not raw): the seed is the qcow2 file only
mkd datafile 1M cluster_size=4096,data_file=d1.raw "$data"
mkd datafile-raw 1M cluster_size=4096,data_file=d2.raw,data_file_raw=on "$data"
# Bitmaps (persistent dirty bitmaps, one enabled, one disabled)
mkd bitmaps 1M cluster_size=4096 "$data"
qemu-img bitmap --add bitmaps.qcow2 b0
qemu-img bitmap --add -g 65536 bitmaps.qcow2 b1
qemu-img bitmap --disable bitmaps.qcow2 b1
# Backing file (name only; the checker never opens it)
mkd base 1M cluster_size=4096 "$data"
qemu-img create -q -f qcow2 -o cluster_size=4096 -b base.qcow2 -F qcow2 backing.qcow2 1M
qemu-io -f qcow2 -c "$more" backing.qcow2 >/dev/null
rm -f base.qcow2
# LUKS (128-bit key: smaller key material)
qemu-img create -q -f qcow2 --object secret,id=s0,data=pw \
	-o cluster_size=4096,encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-alg=aes-128,encrypt.iter-time=10 \
	luks.qcow2 1M
# Internal snapshots, with and without vm_state
mkd snaps 1M cluster_size=512 "$data"
snap snaps.qcow2 s1
qemu-io -f qcow2 -c 'write -P 0x66 0 1k' snaps.qcow2 >/dev/null
snap snaps.qcow2 s2
mkd vmstate 1M cluster_size=4096 "$data"
savevm vmstate.qcow2 vm1 vm2 || echo "make-corpus: savevm failed, vmstate seed has no vm_state" >&2
mkd snaps-zlib 1M cluster_size=1024 'write -c -P 0x77 0 4k'
snap snaps-zlib.qcow2 s1
qemu-io -f qcow2 -c 'write -P 0x78 0 1k' snaps-zlib.qcow2 >/dev/null

# Damaged along the threat classes (SECURITY.md)
dmg() { # dmg NAME FROM FIELD VALUE...
	_n=$1 _f=$2; shift 2
	cp "$_f.qcow2" "$_n.qcow2"
	while [ $# -ge 2 ]; do $poke "$_n.qcow2" "$1" "$2" >/dev/null; shift 2; done
}
dmg t1-l1-huge v3-c4k header.l1_size 0x20000000
dmg t1-reftable-huge v3-c4k header.refcount_table_clusters 0xffffffff
dmg t2-l1-past-eof v3-c4k header.l1_table_offset 0x7ffffffffe00
dmg t2-l1-zero v3-c4k header.l1_table_offset 0
dmg t3-snap-l1-huge snaps 'snapshot[0].l1_size' 0x7fffffff
dmg t4-snaps-offset-zero v3-c4k header.nb_snapshots 5 header.snapshots_offset 0
dmg t5-reftable-zero v3-c512 'reftable[0]' 0
dmg t6-cluster-bits-0 v3-c4k header.cluster_bits 0
dmg t6-cluster-bits-64 v3-c4k header.cluster_bits 64
dmg t6-refcount-order-7 v3-c4k header.refcount_order 7
dmg t9-size-1pib v3-c4k header.size 0x4000000000000
dmg t9-size-max v3-c4k header.size 0xfffffffffffffe00
dmg t11-snap-extra-huge snaps 'snapshot[0].extra_data_size' 0xffff
dmg t12-l2-compressed-bad zlib 'l2[0][0]' '|0x4000000000000000'
dmg cycle-l1-self v3-c512 'l1[0]' 0x8000000000000000
# Snapshot-table repairs (repair/snaptable.c, checker/snapscan.c): three
# snapshots, each damage sending the repair down one recovery path.
mkd snap3 1M cluster_size=1024 "$data"
snap snap3.qcow2 s1
qemu-io -f qcow2 -c 'write -P 0x66 0 1k' snap3.qcow2 >/dev/null
snap snap3.qcow2 s2
qemu-io -f qcow2 -c 'write -P 0x67 2k 1k' snap3.qcow2 >/dev/null
snap snap3.qcow2 s3
dmg snap3-dup-id snap3 'snapshot[1].id' str:1
dmg snap3-extra-small-last snap3 'snapshot[2].extra_data_size' 8
dmg snap3-l1-unaligned snap3 'snapshot[1].l1_table_offset' +0x200
dmg snap3-table-zero snap3 header.snapshots_offset 0
dmg snap3-nb-small snap3 header.nb_snapshots 1
# two damages at once: a lost table with a duplicate ID (one rewrite of the
# found table), and two damaged entries in a row (the parse resynchronises
# on the second, whose L1 pointer is off)
dmg snap3-lost-and-dup snap3 'snapshot[1].id' str:1 header.snapshots_offset 0
dmg snap3-mid-two snap3 'snapshot[2].l1_table_offset' +0x200 'snapshot[1].extra_data_size' 0x10000
# Header fields, the refcount table and bitmaps (repair/header_fields.c,
# repair/refcounts.c, repair/bitmaps.c): one image, each damage one path.
mkd hb 1M cluster_size=1024 "$data" 'write -P 0x22 512k 2k'
qemu-img bitmap --add hb.qcow2 b0
qemu-img snapshot -c s1 hb.qcow2
qemu-io -f qcow2 -c 'write -P 0x33 768k 1k' hb.qcow2 >/dev/null
dmg hdr-l1-size-zero hb header.l1_size 0
dmg hdr-l1-unaligned hb header.l1_table_offset +0x200
dmg hdr-l1-high-bit hb header.l1_table_offset ^0x100000000
dmg hdr-length-zero hb header.header_length 0
dmg hdr-reftable-zero hb header.refcount_table_offset 0
dmg hdr-reftable-onto-l1 hb 'reftable[0]' "$($poke hb.qcow2 header.l1_table_offset)"
dmg hdr-bitmap-table-unaligned hb 'bitmapdir[0].table_offset' +0x200
dmg hdr-bitmaps-count-zero hb 'ext[23852875].data32+0' 0
# Table repairs (repair/fix_clone.c, fix_l2table.c, fix_l2.c): two L2 entries
# on one data cluster, two L1 entries on one L2 table, an L2 table of
# random bytes, an extended entry without allocated subclusters unaligned.
mkd tbl 8M cluster_size=4096 "$data" 'write -P 0x22 64k 4k' 'write -P 0x33 2M 4k' 'write -P 0x44 4M 4k'
dmg tbl-clone-data tbl 'l2[0][16]' "$($poke tbl.qcow2 'l2[0][0]')"
dmg tbl-clone-l1 tbl 'l1[1]' "$($poke tbl.qcow2 'l1[0]')"
cp tbl.qcow2 tbl-l2-random.qcow2
python3 -c 'import random,sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2],16) & 0xfffffffffe00); f.write(random.Random(3).randbytes(4096))' \
	tbl-l2-random.qcow2 "$($poke tbl.qcow2 'l1[0]')"
rm -f tbl.qcow2
mkd tbl-zero-ext 8M cluster_size=16384,extended_l2=on 'write -P 0x11 0 16k' 'write -P 0x22 64k 16k' 'write -z 64k 16k'
$poke tbl-zero-ext.qcow2 'l2[0][4]' +0x200 >/dev/null
cp backing.qcow2 t8-backing-json.qcow2
$poke t8-backing-json.qcow2 u8@0 0x51 >/dev/null
# Rewrite the backing name in place with a protocol string of the same length.
off=$($poke t8-backing-json.qcow2 header.backing_file_offset)
len=$($poke t8-backing-json.qcow2 header.backing_file_size)
printf 'json:{"file":{}}' | dd of=t8-backing-json.qcow2 bs=1 seek=$((off)) conv=notrunc 2>/dev/null
$poke t8-backing-json.qcow2 header.backing_file_size 16 >/dev/null
: "$len"

rm -f "$out"/*.qcow2
mkdir -p "$out"
# afl-cmin refuses to run in (or on files under) /tmp: minimise under build/.
if [ "${MINIMISE:-1}" = 1 ] && command -v afl-cmin >/dev/null && [ -x "$top/build/afl/fuzz-check" ]; then
	cm=$top/build/corpus-cmin
	rm -rf "$cm"
	mkdir -p "$cm/in"
	mv ./*.qcow2 "$cm/in/"
	if (cd "$top" && AFL_QUIET=1 AFL_SKIP_CPUFREQ=1 nice -n 10 afl-cmin -i "$cm/in" -o "$cm/min" \
		-t 5000 -m none -- "$top/build/afl/fuzz-check" >"$cm/log" 2>&1); then
		cp "$cm/min"/* "$out"/
		rm -rf "$cm"
	else
		echo "make-corpus: afl-cmin failed (see $cm/log), keeping every seed" >&2
		cp "$cm/in"/*.qcow2 "$out"/
	fi
else
	cp ./*.qcow2 "$out"/
fi
echo "make-corpus: $(ls "$out" | wc -l) seeds, $(du -sk "$out" | cut -f1) KiB in $out"
