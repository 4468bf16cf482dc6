#!/bin/sh
# repair-rounds.sh - several damages at once on one real image, repaired in
# one run (doc/repair.md "Planning rounds").  Some need a second planning
# round: a data pointer into the active L1 table contests the L1's cluster,
# so the reserved bits of the L1 entry (an edit inside that cluster) are
# held back in round 1, which drops the pointer; round 2, on the image as
# round 1 leaves it, clears them.  Before rounds existed these ended with
# exit 2 and needed a second `repair` (the fuzz inputs of this class are in
# tests/crashers/, see their .txt).  The rest combine two or three damages
# of different planners and must be repaired in one run as well.
# Each case: check -> repair (exit 0) -> both checkers clean -> guest
# content (active layer cluster by cluster, snapshots byte for byte) ->
# a second repair plans nothing -> undo restores the damage
# (tests/tables-lib.sh); `qemu-img check -r all` on a copy is printed: with
# QEMU 7.2 its own check afterwards still fails on every one of these
# (exit 2, or 1 on the l1_size case it cannot open), while qcow2fsck ends
# clean; before rounds, qcow2fsck ended the first two with exit 2 and a
# second repair planning the L1 edit.
. "$(dirname "$0")/../tables-lib.sh"

tables_fixture
poke() { python3 "$HERE/../poke.py" "$@"; }
COPIED=0x8000000000000000
L1=$(poke "$P" header.l1_table_offset)
RB=$(poke "$P" 'reftable[0]')
ST=$(python3 -c 'import sys; print(hex(int(sys.argv[1], 16) & ~0xffff))' "$(poke "$P" header.snapshots_offset)")
L2=$(python3 -c 'import sys; print(hex(int(sys.argv[1], 16) & 0xffffffffffe00))' "$(poke "$P" 'l1[0]')")
# the guest cluster of L2 entry J (entry 0 of L1 entry 0): its byte range
gc() { python3 -c 'import sys; j=int(sys.argv[1]); print("%#x:%#x" % (j * 65536, (j + 1) * 65536))' "$1"; }
# an L2 entry written after the snapshot (COPIED, not shared): the 0x66 write at 3M
J=48

# rounds_case LABEL MIN-ROUNDS CODE "DAMAGED-RANGES" FIELD VALUE [FIELD VALUE...]
rounds_case() {
	_rl=$1 _min=$2 _rc=$3 _rr=$4; shift 4
	I=$T/$_rl.qcow2
	cp "$P" "$I"
	while [ $# -gt 1 ]; do poke "$I" "$1" "$2"; shift 2; done
	# shellcheck disable=SC2086
	tables_cycle "$_rl" "$_rc" $_rr
	_n=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(max([w["round"] for w in r["plan"]] or [0]))' "$T/repair1.$_rl.json")
	t_name "$_rl: the plan took at least $_min planning round(s)"
	[ "${_n:-0}" -ge "$_min" ] && t_ok || t_fail "rounds: $_n"
}

# data pointer into the L1 table + reserved bits on the L1 entry: 2 rounds
rounds_case l1-contested-reserved 2 overlap-data-metadata "$(gc $J)" \
	"l2[0][$J]" "$(hexor "$L1" $COPIED)" 'l1[0]' '|0x100'
# the same, and reserved bits on another L2 entry too: 2 rounds
rounds_case l1-contested-reserved-l2 2 overlap-data-metadata "$(gc $J) $(gc 50)" \
	"l2[0][$J]" "$(hexor "$L1" $COPIED)" 'l1[0]' '|0x100' 'l2[0][50]' '|0x100'
# several planners in one run
rounds_case past-eof-and-reftable 1 reftable-entry-reserved "$(gc 49)" \
	'reftable[0]' '|0x100' 'l2[0][49]' 0x80000000ff000000
rounds_case l1-size-and-l2-reserved 1 header-l1-too-small "" \
	header.l1_size 0 "l2[0][$J]" '|0x100'
rounds_case refblock-and-l1-reserved 1 overlap-data-metadata "$(gc $J)" \
	"l2[0][$J]" "$(hexor "$RB" $COPIED)" 'l1[0]' '|0x100'
rounds_case refblock-and-zero-flag 1 overlap-data-metadata "$(gc $J) $(gc 49)" \
	"l2[0][$J]" "$(hexor "$RB" $COPIED)" 'l2[0][49]' '|0x2'
rounds_case own-l2-and-reserved 1 overlap-data-metadata "$(gc $J) $(gc 49)" \
	"l2[0][$J]" "$(hexor "$L2" $COPIED)" 'l2[0][49]' '|0x100'
rounds_case snaptable-and-reserved 1 overlap-data-metadata "$(gc $J) $(gc 49)" \
	"l2[0][$J]" "$(hexor "$ST" $COPIED)" 'l2[0][49]' '|0x100'
rounds_case past-eof-and-leak 1 l2-data-past-eof "$(gc 1)" \
	'l2[0][1]' 0x80000000ff000000 'refcount[6]' 2
t_done
