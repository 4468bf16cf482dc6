#!/bin/sh
# walk-snapshots.sh - the walk over snapshot L1/L2 tables: hundreds of
# snapshots stay clean with qemu-img's counters; damage in a snapshot-only
# L1/L2 is found and attributed to the snapshot; COPIED in the active
# tables after a snapshot.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../walk-lib.sh"

# 300 snapshots, with writes in between so the tables diverge
mk "$T/many.qcow2" 64M cluster_size=4k; fill "$T/many.qcow2"
n=0
while [ $n -lt 300 ]; do
	if [ $((n % 50)) = 0 ]; then
		fixture qemu-io -f qcow2 -c "write -P $((n / 50 + 1)) $((n * 64))k 64k" -c "write -c -P 7 $((n * 32 + 20000))k 4k" \
			"$T/many.qcow2" >/dev/null
	fi
	fixture qemu-img snapshot -c "s$n" "$T/many.qcow2"
	n=$((n + 1))
done
expect_clean "$T/many.qcow2" "300 snapshots"
same_counters "$T/many.qcow2" "300 snapshots"
# counted, not timed (work_bounded, lib.sh): the 12 L2 tables (4 KiB) the
# 300 snapshots share, read once per snapshot, would be 300 x 48 KiB = 14 MiB,
# past 2 x the file (about 1.9 MiB) + 1 MiB; read once, the whole check
# reads under 0.2 MiB
READX=2
work_bounded "300 snapshots: the L2 shared by all is read once" "$T/many.qcow2" "${QC_FAST:-$QC}" check -q "$T/many.qcow2"
READX=4

# one snapshot; then the active image diverges (its L2 is copied)
mk "$T/s.base" 64M; fill "$T/s.base"; snap "$T/s.base" s1
fixture qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$T/s.base" >/dev/null
expect_clean "$T/s.base" "one snapshot, diverged"
same_counters "$T/s.base" "one snapshot, diverged"
[ "$($POKE "$T/s.base" 'snapl1[0][0]')" != "$($POKE "$T/s.base" 'l1[0]')" ] || t_fail "L2 not copied"

i=$(fresh sres s); poke "$i" 'snapl2[0][0][16]' '|0x0200000000000000'
damaged l2-entry-reserved 2 corruption 2 "$i"
t_name "snapshot-only L2 damage names the snapshot"
python3 -c 'import json,sys; p=[p for p in json.load(open(sys.argv[1]))["problems"] if p["code"]=="l2-entry-reserved"]; sys.exit(0 if p and p[0].get("snapshot")==0 else 1)' "$JSON" && t_ok || t_fail "no snapshot 0 in the record"
i=$(fresh sunal s); poke "$i" 'snapl1[0][0]' '+0x200'
damaged l1-entry-unaligned 2 corruption 2 "$i"
i=$(fresh seof s); poke "$i" 'snapl2[0][0][16]' 0x40000000
damaged l2-data-past-eof 2 corruption 2 "$i"
# a snapshot-only L2 entry pointing at the active L1 table
i=$(fresh sov s); poke "$i" 'snapl2[0][0][1]' "$($POKE "$i" header.l1_table_offset)"
damaged overlap-data-metadata 2 corruption 2 "$i"
# COPIED is checked in the active tables only: a snapshot L2 entry with COPIED is fine
i=$(fresh scop s); poke "$i" 'snapl2[0][0][17]' '|0x8000000000000000'
expect_clean "$i" "COPIED in a snapshot L2"
expect_qemu "$i" 0

# shared L2 (no write after the snapshot): COPIED must be clear in the active L1
mk "$T/sh.base" 64M; fill "$T/sh.base"; snap "$T/sh.base" s1
expect_clean "$T/sh.base" "shared L2"
same_counters "$T/sh.base" "shared L2"
i=$(fresh shc sh); poke "$i" 'l1[0]' '|0x8000000000000000'
damaged l1-copied-spurious 2 corruption 2 "$i"
# the shared data clusters: refcount 2, the active entries must not be COPIED
i=$(fresh shd sh)
fixture qemu-io -f qcow2 -c 'write -P 0x99 32M 64k' "$i" >/dev/null  # copies the L2
poke "$i" 'l2[0][16]' '|0x8000000000000000'
damaged l2-copied-spurious 2 corruption 2 "$i"
# a refcount of 1 on a cluster both tables map: too low
i=$(fresh shr sh); poke "$i" 'refcount[5]' 1
damaged refcount-too-low 2 corruption 2 "$i"
t_done
