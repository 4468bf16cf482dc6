#!/bin/sh
# walk-tables.sh - L1 and L2 entry damage and OFLAG_COPIED, one field at a
# time on a real image, with qemu-img check's verdict (or why it is blind).
# 64 MiB image, 64 KiB clusters: L1 0x30000, L2 0x40000, data clusters
# 0x50000 (entry 0), 0x60000.. (entries 16-18), compressed at entry 128.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../walk-lib.sh"

base b 64M
[ "$($POKE "$T/b.base" 'l1[0]')" = 0x8000000000040000 ] || t_fail "unexpected layout"

# --- L1 entries
i=$(fresh l1res b); poke "$i" 'l1[0]' '|0x0100000000000000'
damaged l1-entry-reserved 2 corruption 2 "$i"
# unaligned: never parsed (qemu-img parses it and "repairs" guest data, §9.5 A)
i=$(fresh l1unal b); poke "$i" 'l1[0]' '+0x200'
damaged l1-entry-unaligned 2 corruption 2 "$i"
t_name "unaligned L1 entry: its L2 is not parsed (no L2 entry problems)"
run_check "$i"
has_codes '^l2-\|^compressed-' && t_fail "L2 parsed: $(json_codes | tr '\n' ' ')" || t_ok
# flags but offset 0: qemu-img parses the header as an L2 (doc/format.md §9.5 J)
i=$(fresh l1zero b); poke "$i" 'l1[0]' 0x8000000000000000
expect_code "$i" l1-entry-no-offset 2 corruption
t_name "L1 entry with offset 0: the header is not parsed as an L2"
has_codes '^l2-\|^overlap-' && t_fail "header parsed: $(json_codes | tr '\n' ' ')" || t_ok
i=$(fresh l1eof b); poke "$i" 'l1[0]' 0x8000000040000000
damaged l1-l2-past-eof 2 corruption 2 "$i"
i=$(fresh l1cop b); poke "$i" 'l1[0]' '&0x7fffffffffffffff'
damaged l1-copied-missing 2 corruption 2 "$i"
# two L1 entries share one L2: refcount 2, so COPIED must be clear
mk "$T/big.qcow2" 1G; fill "$T/big.qcow2"
poke "$T/big.qcow2" 'l1[1]' "$($POKE "$T/big.qcow2" 'l1[0]')"
damaged l1-copied-spurious 2 corruption 2 "$T/big.qcow2"
t_name "shared L2 counted twice: its data clusters too"
has_codes '^refcount-too-low$' && t_ok || t_fail "no refcount-too-low"

# --- L2 entries
i=$(fresh l2res b); poke "$i" 'l2[0][0]' '|0x0200000000000000'
damaged l2-entry-reserved 2 corruption 2 "$i"
i=$(fresh l2unal b); poke "$i" 'l2[0][0]' '+0x200'
damaged l2-entry-unaligned 2 corruption 2 "$i"
i=$(fresh l2eof b); poke "$i" 'l2[0][0]' 0x8000000040000000
damaged l2-data-past-eof 2 corruption 2 "$i"
i=$(fresh l2cm b); poke "$i" 'l2[0][0]' '&0x7fffffffffffffff'
damaged l2-copied-missing 2 corruption 2 "$i"
t_name "l2-copied-missing points at the entry"
off=$(python3 -c 'import json,sys; print(next(p["offset"] for p in json.load(open(sys.argv[1]))["problems"] if p["code"]=="l2-copied-missing"))' "$JSON")
[ "$off" = $((0x40000)) ] && t_ok || t_fail "offset $off"
# 0 + COPIED without a data file: qemu-img silently reads it as unallocated (doc/format.md §9.4)
i=$(fresh l2c0 b); poke "$i" 'l2[0][300]' 0x8000000000000000
damaged l2-copied-no-offset 0 warning 0 "$i"
# data cluster mapped onto the L1 table
i=$(fresh l2ov b); poke "$i" 'l2[0][1]' 0x8000000000030000
damaged overlap-data-metadata 2 corruption 2 "$i"
# zero flag in a v2 image: qemu-img check is blind (doc/format.md §9.4), reads fail with EIO
mk "$T/v2.qcow2" 64M compat=0.10; fill "$T/v2.qcow2"
poke "$T/v2.qcow2" 'l2[0][0]' '|1'
damaged l2-zero-flag-v2 2 corruption 0 "$T/v2.qcow2" "(blind: v2 zero flag, §9.4)"
t_name "v3 zero flag is fine"
i=$(fresh z3 b); poke "$i" 'l2[0][0]' '|1'
expect_clean "$i" "v3 zero-alloc"
same_counters "$i" "v3 zero-alloc"

# --- extended L2 (32 KiB clusters: 2048 entries of 16 bytes)
mk "$T/x.base" 64M extended_l2=on,cluster_size=32k; fill "$T/x.base"
i=$(fresh xb0 x); poke "$i" 'l2[0][0]' '|1'
damaged l2-extl2-bit0 0 warning 0 "$i" "(QEMU ignores bit 0 of an extended descriptor: a warning)"
i=$(fresh xaz x); poke "$i" 'l2bitmap[0][0]' '|0x100000000'
damaged l2-subcluster-alloc-and-zero 2 corruption 2 "$i"
i=$(fresh xau x); poke "$i" 'l2bitmap[0][1000]' 1
damaged l2-subcluster-alloc-unallocated 2 corruption 2 "$i"
i=$(fresh xzero x); poke "$i" 'l2bitmap[0][1000]' 0xffffffff00000000
expect_clean "$i" "extended L2 all-zero unallocated entry"

# --- external data file
mk "$T/df.qcow2" 64M "data_file=$T/df.raw"
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 128k' "$T/df.qcow2" >/dev/null
cp "$T/df.qcow2" "$T/df.base"
i=$(fresh dfm df); poke "$i" 'l2[0][1]' 0x8000000000200000
damaged l2-data-file-offset-mismatch 2 corruption 0 "$i" "(blind: host == guest offset is a runtime check, §9.4)"
i=$(fresh dfc df); poke "$i" 'l2[0][1]' '&0x7fffffffffffffff'
expect_code "$i" l2-copied-missing 2 corruption
t_done
