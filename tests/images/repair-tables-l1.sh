#!/bin/sh
# repair-tables-l1.sh - damaged active L1 entries (doc/repair.md "Repairing
# damaged pointers").  Dropping an L1 entry loses a whole L2 range, so the
# repair first looks for the L2 table: reserved bits cleared; an unaligned
# offset (one flipped bit) or a flipped high bit restored to the orphan
# cluster shaped like this range's L2 table (its data clusters orphans with
# refcount 1 and OFLAG_COPIED, or shared with the snapshot whose stored
# refcount counts this reference); a target that cannot be an L2 table
# (past the end of the file, no candidate) dropped; an unaligned offset
# whose corrected target another structure owns dropped too.
# `qemu-img check -r all` on the same damage is printed: on an unaligned L1
# entry it parses the L2 at the unaligned offset and frees live clusters
# (doc/repair.md, measured on 7.2).
. "$(dirname "$0")/../tables-lib.sh"

tables_fixture

tables_case reserved l1-entry-reserved 'l1[0]' '|0x100'
tables_case unaligned l1-entry-unaligned 'l1[0]' '|0x200'
tables_case flipped-high l1-l2-past-eof 'l1[0]' '^0x20000000000'
# no candidate inside the file: nothing can be an L2 table there; the
# whole range of L1 entry 0 (512 MiB, the whole 16 MiB disk) reads zeros
tables_case dropped l1-l2-past-eof 'l1[0]' '0x8000000040000000' 0:0x1000000
# unaligned onto the L1 table itself (owned by the L1): cannot be an L2
l1=$(python3 "$HERE/../poke.py" "$P" header.l1_table_offset)
tables_case onto-l1 l1-entry-unaligned 'l1[0]' "$(python3 -c 'import sys; print(hex(int(sys.argv[1], 16) | 0x200))' "$l1")" 0:0x1000000
# L1 entry 0 naming metadata (aligned, inside the file: the walk follows
# it and parses the structure as an L2 table): the header -> reftable and
# header -> L1 chains own those clusters, so the entry is dropped, what the
# walk claimed through it is taken back, and the range reads zeros; the
# real L2 table is then an orphan whose refcount is lowered, content kept.
# (An L1 entry onto a snapshot's L1 table is left: those entries decode as
# valid data pointers, so the cluster could be an L2 table.)
rt=$(python3 "$HERE/../poke.py" "$P" header.refcount_table_offset)
rb=$(entry_off "$P" 'reftable[0]')
st=$(python3 "$HERE/../poke.py" "$P" header.snapshots_offset)
tables_case onto-reftable overlap-metadata 'l1[0]' "$(hexor "$rt" 0x8000000000000000)" 0:0x1000000
tables_case onto-refblock overlap-metadata 'l1[0]' "$(hexor "$rb" 0x8000000000000000)" 0:0x1000000
tables_case onto-own-l1 overlap-metadata 'l1[0]' "$(hexor "$l1" 0x8000000000000000)" 0:0x1000000
tables_case onto-snapshot-table overlap-metadata 'l1[0]' "$(hexor "$(python3 -c 'import sys; print(int(sys.argv[1],16) & ~0xffff)' "$st")" 0x8000000000000000)" 0:0x1000000
t_done
