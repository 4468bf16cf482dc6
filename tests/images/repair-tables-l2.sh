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
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

CS=65536
P=$T/pristine.qcow2
pristine "$P" -c 'write -P 0x77 6M 64k' -c 'write -z 6M 64k'
guest_save "$P" "$T/ref"

# tables_case LABEL CODE FIELD VALUE DAMAGED-RANGE...: poke, compare with
# qemu-img -r all, run the repair cycle, and compare the active layer
# cluster by cluster (the damaged ranges may read zeros).
tables_case() {
	_l=$1 _c=$2 _f=$3 _v=$4; shift 4
	I=$T/$_l.qcow2
	cp "$P" "$I"
	python3 "$HERE/../poke.py" "$I" "$_f" "$_v"
	qemu_repair_all "$I" "$_l"
	run_check "$I"
	t_name "$_l: check reports $_c"
	json_codes | grep -qx "$_c" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ')"
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$_l"
	t_name "$_l: repair exits 0"
	[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC: $(rjson 'r["left"]' 2>&1)"
	echo "$_l: plan: $(rjson '[w["summary"] for w in r["plan"]]')"
	expect_clean "$I" "$_l: after repair"
	expect_qemu "$I" 0 "($_l: after repair)"
	t_name "$_l: undamaged guest clusters unchanged; damaged ones read old content or zeros"
	raw "$I" "$T/$_l.raw"
	python3 "$HERE/../cmp-clusters.py" "$T/ref/active.raw" "$T/$_l.raw" $CS "$@" && t_ok || t_fail "guest content"
	for s in $(snapshot_names "$I"); do
		t_name "$_l: snapshot $s unchanged"
		raw "$I" "$T/$_l.$s.raw" "$s"
		cmp -s "$T/$_l.$s.raw" "$T/ref/snap-$s.raw" && t_ok || t_fail "snapshot $s differs"
	done
	_r=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo2.$_l"
	t_name "$_l: a second repair plans nothing"
	[ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$_r" ] &&
		t_ok || t_fail "exit $RRC plan $(rjson 'r["plan"]')"
	t_name "$_l: undo restores the damaged image byte for byte"
	"$QC" undo "$T/undo.$_l" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$_d" ] && t_ok || t_fail undo
}

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
t_done
