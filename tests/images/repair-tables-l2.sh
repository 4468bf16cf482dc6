#!/bin/sh
# repair-tables-l2.sh - damaged active L2 entries (doc/repair.md "Repairing
# damaged pointers"): reserved bits cleared; an unaligned or past-EOF data
# offset restored when exactly one correction names a cluster that lost its
# reference, else dropped (the guest cluster reads zeros); a zero-allocated
# entry with a bad offset rewritten as a plain zero entry; a compressed
# descriptor past the end of the file dropped.  Each case: check -> repair
# -> both checkers clean, every undamaged guest cluster unchanged (the
# damaged one reads its old content or zeros), a second repair plans
# nothing, undo restores the damaged bytes.  `qemu-img check -r all` on the
# same damage is printed for comparison (QEMU 7.2 measured: it leaves an
# unaligned entry or an entry past EOF as an error, exit 2, or frees the
# cluster the entry named).
. "$(dirname "$0")/../tables-lib.sh"

tables_fixture -c 'write -P 0x77 6M 64k' -c 'write -z 6M 64k'

# guest 3M: active-only data (refcount 1), L2 entry 48 of L1 entry 0
tables_case reserved l2-entry-reserved 'l2[0][48]' '|0x2'
tables_case unaligned l2-entry-unaligned 'l2[0][48]' '+0x200'
tables_case flipped-high l2-data-past-eof 'l2[0][48]' '^0x10000000000'
# guest 1M: shared with snapshot s1 (refcount 2): restored, the stored
# refcount counts the missing reference
tables_case shared-unaligned l2-entry-unaligned 'l2[0][16]' '+0x1200'
# nothing can be recovered: dropped, the guest cluster reads zeros and the
# cluster it named is a leak, freed without discarding its content
tables_case dropped l2-data-past-eof 'l2[0][48]' '0x8000000040000000' 0x300000:0x10000
t_name "dropped: the orphaned data cluster keeps its content (refcount lowered, no discard)"
host=$(entry_off "$P" 'l2[0][48]')
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]==b"\x66"*65536 else 1)' "$I" "$host" && t_ok || t_fail "content of 0x$host lost"
# zero-allocated entry (6M) with an unaligned offset: plain zero entry
tables_case zero-unaligned l2-entry-unaligned 'l2[0][96]' '+0x200'
# compressed descriptor (8M) pointing past the end of the file: dropped
if [ "$(python3 "$HERE/../poke.py" "$P" 'l2[0][128]')" != 0x0 ]; then
	tables_case compressed-eof compressed-past-eof 'l2[0][128]' '|0x2000000000' 0x800000:0x10000
else
	echo "fixture: no compressed cluster at 8M (qemu-io write -c failed): compressed case skipped"
fi
# data entries onto metadata: the chains header -> L1 -> L2 and header ->
# reftable -> refblock own their clusters, so the data entry is dropped and
# the guest cluster reads zeros (qemu-img -r all keeps the pointer: the guest
# then reads and writes the metadata)
l1=$(python3 "$HERE/../poke.py" "$P" header.l1_table_offset)
l2=$(entry_off "$P" 'l1[0]')
rb=$(entry_off "$P" 'reftable[0]')
tables_case data-on-l1 overlap-data-metadata 'l2[0][48]' "$(hexor "$l1" 0x8000000000000000)" 0x300000:0x10000
tables_case data-on-own-l2 overlap-data-metadata 'l2[0][48]' "$(hexor "$l2" 0x8000000000000000)" 0x300000:0x10000
tables_case data-on-refblock overlap-data-metadata 'l2[0][48]' "$(hexor "$rb" 0x8000000000000000)" 0x300000:0x10000
# zero-allocated entries (6M) past the end of the file or onto metadata: the
# guest reads zeros whatever the offset, so the entry becomes a plain zero
# entry (0x1) and nothing is lost; QEMU rewrites an unaligned one the same way
tables_case zero-past-eof l2-data-past-eof 'l2[0][96]' '^0x10000000000'
t_name "zero-past-eof: the entry is a plain zero entry"
run_repair "$I" --undo-file="$T/undo.zero-again"
[ "$(python3 "$HERE/../poke.py" "$I" 'l2[0][96]')" = 0x1 ] && t_ok || t_fail "entry $(python3 "$HERE/../poke.py" "$I" 'l2[0][96]')"
tables_case zero-on-l1 overlap-data-metadata 'l2[0][96]' "$(hexor "$l1" 0x8000000000000001)"
tables_case zero-on-own-l2 overlap-data-metadata 'l2[0][96]' "$(hexor "$l2" 0x8000000000000001)"
tables_case zero-on-refblock overlap-data-metadata 'l2[0][96]' "$(hexor "$rb" 0x8000000000000001)"
t_name "zero-on-refblock: the entry is a plain zero entry"
run_repair "$I" --undo-file="$T/undo.zero-rb-again"
[ "$(python3 "$HERE/../poke.py" "$I" 'l2[0][96]')" = 0x1 ] && t_ok || t_fail "entry $(python3 "$HERE/../poke.py" "$I" 'l2[0][96]')"

# Extended L2 entries (16 bytes): a dropped entry reads zeros through its
# subcluster bitmap (every zero bit set); a compressed entry's bitmap is
# cleared (QEMU writes compressed entries with a zero bitmap).
P=$T/ext.qcow2
if mk "$P" 16M extended_l2=on,cluster_size=64k &&
   qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x66 3M 64k' -c 'write -c -P 0x44 8M 64k' \
	-c 'write -P 0x77 6M 64k' -c 'write -z 6M 64k' "$P" >/dev/null 2>&1; then
	rm -rf "$T/ref"; guest_save "$P" "$T/ref"
	tables_case ext-dropped l2-data-past-eof 'l2[0][48]' '0x8000000040000000' 0x300000:0x10000
	t_name "ext-dropped: the entry reads zeros through its bitmap"
	run_repair "$I" --undo-file="$T/undo.ext-again"
	[ "$(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][48]')" = 0xffffffff00000000 ] && t_ok || t_fail "bitmap $(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][48]')"
	tables_case ext-unaligned l2-entry-unaligned 'l2[0][48]' '+0x200'
	tables_case ext-compressed-bitmap compressed-bitmap-nonzero 'l2bitmap[0][128]' 0x1
	# 6M: an offset with no allocated subcluster (every zero bit set):
	# unaligned, past the end of the file or onto metadata, the offset is
	# cleared and the bitmap kept (QEMU writes 0 the same way)
	ext_l1=$(python3 "$HERE/../poke.py" "$P" header.l1_table_offset)
	tables_case ext-zero-unaligned l2-entry-unaligned 'l2[0][96]' '+0x200'
	t_name "ext-zero-unaligned: offset 0, the bitmap kept"
	run_repair "$I" --undo-file="$T/undo.ext-zero-again"
	[ "$(python3 "$HERE/../poke.py" "$I" 'l2[0][96]')" = 0x0 ] &&
		[ "$(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][96]')" = 0xffffffff00000000 ] && t_ok ||
		t_fail "entry $(python3 "$HERE/../poke.py" "$I" 'l2[0][96]') bitmap $(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][96]')"
	tables_case ext-zero-past-eof l2-data-past-eof 'l2[0][96]' '^0x10000000000'
	tables_case ext-zero-on-l1 overlap-data-metadata 'l2[0][96]' "$(hexor "$ext_l1" 0x8000000000000000)"
	# the host offset of an allocated entry lost (set to 0) while its
	# bitmap still marks subclusters allocated: there is no cluster to
	# read them from, so they read zeros (zero bits set, allocation bits
	# cleared); the data cluster is a leak, lowered once the entry is
	# planned (QEMU refuses to read such an entry; -r all leaves it)
	tables_case ext-alloc-no-offset l2-subcluster-alloc-unallocated 'l2[0][0]' 0 0:0x10000
	t_name "ext-alloc-no-offset: every subcluster reads zeros through its bitmap"
	run_repair "$I" --undo-file="$T/undo.ext-alloc-again"
	[ "$(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][0]')" = 0xffffffff00000000 ] && t_ok ||
		t_fail "bitmap $(python3 "$HERE/../poke.py" "$I" 'l2bitmap[0][0]')"
	# reserved bits on an entry with no host offset: cleared, the guest
	# reads what it read
	tables_case ext-reserved-no-offset l2-entry-reserved 'l2[0][100]' '|0x100'
else
	echo "fixture: extended_l2 image could not be made: extended L2 cases skipped"
fi

# Version 2 with a backing file: a dropped entry becomes 0, so the range
# shows the backing file (here zeros at 3M: the base holds data at 0 only),
# and the plan says so.
B=$T/base.qcow2
P=$T/v2.qcow2
if qemu-img create -q -f qcow2 -o compat=0.10 "$B" 16M &&
   qemu-io -f qcow2 -c 'write -P 0x55 0 64k' "$B" >/dev/null &&
   qemu-img create -q -f qcow2 -o compat=0.10 -b "$B" -F qcow2 "$P" &&
   qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$P" >/dev/null; then
	rm -rf "$T/ref"; guest_save "$P" "$T/ref"
	tables_case v2-backing-dropped l2-data-past-eof 'l2[0][48]' '0x8000000040000000' 0x300000:0x10000
	t_name "v2-backing-dropped: the plan says the range now shows the backing file"
	"$QC" undo "$T/undo.v2-backing-dropped" "$I" >/dev/null 2>&1
	run_repair "$I" --dry-run
	[ "$(rjson "any('backing file' in w['summary'] and w['guest-offset'] == 0x300000 for w in r['plan'])")" = True ] &&
		t_ok || t_fail "$(rjson 'r["plan"]')"
	# bit 0 (the zero flag of version 3) on a version 2 entry: QEMU never
	# writes it there and refuses to read the cluster ("Zero cluster entry
	# found in pre-v3 image", EIO; qemu-img check is blind to it).  The
	# bit is cleared: the data entry reads its own cluster again, the
	# unallocated one shows the backing file as before.
	tables_case v2-zero-flag-data l2-zero-flag-v2 'l2[0][48]' '|0x1'
	tables_case v2-zero-flag-unallocated l2-zero-flag-v2 'l2[0][20]' '|0x1'
else
	echo "fixture: version 2 image with a backing file could not be made: case skipped"
fi
t_done
