#!/bin/sh
# walk-refcount.sh - refcount table, refcount block and refcount damage,
# one field at a time on a real image, with qemu-img check's verdict.
# Layout of the 64 MiB test image (64 KiB clusters): reftable 0x10000,
# refblock 0x20000, L1 0x30000, L2 0x40000, data from 0x50000, the
# compressed cluster at 0xa0000 (end of file).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../walk-lib.sh"

base b 64M
[ "$($POKE "$T/b.base" 'reftable[0]')" = 0x20000 ] || t_fail "unexpected layout"

i=$(fresh rt-res b); poke "$i" 'reftable[0]' '|1'
damaged reftable-entry-reserved 2 corruption 2 "$i"
i=$(fresh rt-unal b); poke "$i" 'reftable[0]' '+0x200'
# qemu-img cannot read any refcount through it and gives up (exit 1)
damaged reftable-entry-unaligned 2 corruption 1 "$i" "(Can't get refcount: internal errors)"
i=$(fresh rt-eof b); poke "$i" 'reftable[1]' 0x40000000
damaged reftable-entry-past-eof 2 corruption 2 "$i"
t_name "reftable past EOF: the file is not grown"
[ "$(stat -c %s "$i")" -lt 1048576 ] && t_ok || t_fail "file grew"
# the only refblock gone: every referenced cluster lacks a refcount
i=$(fresh rt-zero b); poke "$i" 'reftable[0]' 0
damaged refcount-no-refblock 2 corruption 2 "$i"

# stored > references: a leak, one per cluster (qemu-img counts the same):
# an orphan cluster inside the file with refcount 1
i=$(fresh leak b); truncate -s $((12 * 65536)) "$i"; poke "$i" 'refcount[11]' 1
damaged refcount-leak 3 leak 3 "$i"
same_counters "$i" leak
# a data cluster with refcount 2 but one reference: qemu-img also reports
# OFLAG_COPIED (it compares the flag with the stored refcount, §9.3); we
# compare with the computed one, so it is one leak and nothing else
i=$(fresh leak2 b); poke "$i" 'refcount[5]' 2
damaged refcount-leak 3 leak 2 "$i" "(qemu: COPIED vs stored refcount)"
t_name "leak on a COPIED cluster is only a leak"
run_check "$i"
[ "$(json_codes | tr '\n' ' ')" = "refcount-leak " ] && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ')"
# a refcount for a cluster past the end of the file: qemu-img never
# compares those (doc/format.md §9.4), so it says "no errors"
i=$(fresh leak-eof b); poke "$i" 'refcount[40]' 1
damaged refcount-leak-past-eof 3 leak 0 "$i" "(blind: refcounts past EOF, §9.4)"
# stored 0 < references: corruption (qemu: "refcount=0 reference=1")
i=$(fresh rc0 b); poke "$i" 'refcount[5]' 0
damaged refcount-zero 2 corruption 2 "$i"
t_name "refcount-zero is not also a COPIED error (computed refcounts, copied.c)"
run_check "$i"
has_codes copied && t_fail "COPIED reported: $(json_codes | tr '\n' ' ')" || t_ok
# 0 < stored < references: the same data cluster mapped twice
i=$(fresh rclow b); poke "$i" 'l2[0][17]' "$($POKE "$i" 'l2[0][16]')"
damaged refcount-too-low 2 corruption 2 "$i"
expect_code "$i" l2-copied-spurious 2 corruption
expect_code "$i" refcount-leak 2 leak
# 1-bit refcounts cannot hold 2 references: overflow
mk "$T/r1.qcow2" 64M refcount_bits=1; fill "$T/r1.qcow2"
poke "$T/r1.qcow2" 'l2[0][17]' "$($POKE "$T/r1.qcow2" 'l2[0][16]')"
damaged refcount-overflow 2 corruption 2 "$T/r1.qcow2"

# sub-byte and wide refcounts: one refcount poked at each width is seen
for bits in 1 2 4 8 32 64; do
	mk "$T/w$bits.qcow2" 64M refcount_bits=$bits; fill "$T/w$bits.qcow2"
	poke "$T/w$bits.qcow2" 'refcount[6]' 0
	damaged refcount-zero 2 corruption 2 "$T/w$bits.qcow2"
	mk "$T/x$bits.qcow2" 64M refcount_bits=$bits; fill "$T/x$bits.qcow2"
	poke "$T/x$bits.qcow2" 'refcount[7]' 0
	poke "$T/x$bits.qcow2" 'refcount[9]' 0
	run_check "$T/x$bits.qcow2"
	t_name "refcount_bits=$bits: exactly clusters 7 and 9"
	n=$(python3 -c 'import json,sys; print(sum(1 for p in json.load(open(sys.argv[1]))["problems"] if p["code"]=="refcount-zero"))' "$JSON")
	[ "$n" = 2 ] && t_ok || t_fail "$n refcount-zero records"
done

# dirty image (lazy refcounts after a crash): same codes, message says stale
mk "$T/d.qcow2" 64M lazy_refcounts=on; fill "$T/d.qcow2"
poke "$T/d.qcow2" header.incompatible_features '|1'
poke "$T/d.qcow2" 'refcount[5]' 0
damaged refcount-zero 2 corruption 2 "$T/d.qcow2"
t_name "dirty image: refcounts reported as stale"
grep -q 'stale refcount (dirty image' "$JSON" && t_ok || t_fail "no stale wording"

# every reftable entry names the same refblock: an overlap, and the copies
# past EOF count as leaks past EOF; the shared refblock is scanned once
i=$(fresh rtall b)
python3 - "$i" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
f.seek(0x10000 + 8)
f.write(struct.pack(">Q", 0x20000) * 8191)
PY
# counted, not timed (work_bounded, lib.sh): scanning the 64 KiB refblock
# once per entry would read 512 MiB, far past 4 x the file + 1 MiB
work_bounded "8192 entries on one refblock" "$i" "${QC_FAST:-$QC}" check "$i"
damaged overlap-metadata 2 corruption 2 "$i"
expect_code "$i" refcount-leak-past-eof 2 leak

# a refblock that is also something else: the L1 entry points to it
i=$(fresh rbov b); poke "$i" 'l1[0]' 0x8000000000020000
expect_code "$i" overlap-metadata 2 corruption
expect_qemu "$i" 2
t_done
