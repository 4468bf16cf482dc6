#!/bin/sh
# repair-tables-snap.sh - damaged entries of snapshot L1 tables and of L2
# tables only snapshots reference (doc/repair.md "Snapshot tables'
# entries"): reserved bits cleared; an unaligned or past-EOF offset
# restored when exactly one correction names a cluster whose stored
# refcount proves the missing reference (a snapshot's L2 table or data
# cluster is often shared with the active layer: refcount 2, one reference
# found); dropped when no correction can be what the entry claims (the
# snapshot's range reads zeros, the active layer keeps its data, the
# orphaned clusters stay as leaks, content kept).  Each case: check ->
# repair exits 0 -> both checkers clean -> the active layer and every
# other snapshot read exactly as before, the damaged snapshot reads its
# old content or zeros in the damaged range (tests/cmp-clusters.py) ->
# a restored entry holds its old value again -> a second repair plans
# nothing -> undo restores the damaged bytes.
# `qemu-img check -r all` runs on a copy of each damaged image: the test
# prints its outcome and whether the damaged snapshot still reads what it
# read (QEMU walks snapshot tables only to count references; measured on
# 7.2 it repairs none of these entries: the image stays corrupt, or a
# leak repair frees the snapshot's orphaned clusters).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

CS=65536
POKE="python3 $HERE/../poke.py"

# P: 16 MiB with data, snapshot s1, then guest writes at 3M (new) and 1M
# (over data: the snapshot keeps its own cluster there), so s1's L2 table
# is its own (the active layer copied it on write), its cluster at guest
# 1M is its alone (refcount 1) and the others are shared (refcount 2).
P=$T/pristine.qcow2
pristine "$P" -c 'write -P 0x77 1M 64k'
guest_save "$P" "$T/ref"
expect_clean "$P" "fixture"
# P2: P plus snapshot s2 (s2 shares the active layer's L2 table).
P2=$T/pristine2.qcow2
cp "$P" "$P2"
snap "$P2" s2
guest_save "$P2" "$T/ref2"
expect_clean "$P2" "fixture 2"

hexor() { python3 -c 'import sys; print(hex(int(sys.argv[1], 0) | int(sys.argv[2], 0)))' "$1" "$2"; }

# snap_cycle LABEL CODE FIXTURE REFDIR SNAP FIELD RESTORED RANGE...: the
# cycle on the damaged copy $I of FIXTURE; SNAP is the damaged snapshot
# (its RANGEs may read zeros); RESTORED is the value FIELD must hold after
# the repair ("" when the entry is dropped or only cleared).
snap_cycle() {
	_l=$1 _c=$2 _p=$3 _ref=$4 _s=$5 _f=$6 _want=$7; shift 7
	qemu_repair_all "$I" "$_l"
	if raw "$QIMG" "$T/q.$_l.raw" "$_s" 2>/dev/null; then
		python3 "$HERE/../cmp-clusters.py" "$_ref/snap-$_s.raw" "$T/q.$_l.raw" $CS >/dev/null &&
			_q="reads as before" || _q="differs from before"
	else
		_q="cannot be read"
	fi
	echo "qemu-img check -r all [$_l]: snapshot $_s $_q"
	run_check "$I"
	t_name "$_l: check reports $_c"
	json_codes | grep -qx "$_c" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ')"
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$_l"
	cp "$RJSON" "$T/repair1.$_l.json"
	t_name "$_l: repair exits 0"
	[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC: $(rjson 'r["left"]' 2>&1)"
	echo "$_l: plan: $(rjson '[w["summary"] for w in r["plan"]]')"
	_at=$($POKE "$I" --addr "$_f" | cut -d' ' -f1)
	t_name "$_l: one write of the damaged entry$(case $_f in snap*) echo ', naming the snapshot';; esac)"
	[ "$(rjson "[w['summary'].startswith('snapshot ID') or not '$_f'.startswith('snap') for w in r['plan'] if w['offset'] == int('$_at', 0)]")" = "[True]" ] &&
		t_ok || t_fail "$(rjson '[(w["offset"], w["summary"]) for w in r["plan"]]')"
	expect_clean "$I" "$_l: after repair"
	expect_qemu "$I" 0 "($_l: after repair)"
	t_name "$_l: the active layer reads as before"
	qemu-img compare -q -f qcow2 -F qcow2 "$_p" "$I" && t_ok || t_fail "active layer differs"
	for s in $(snapshot_names "$_p"); do
		raw "$I" "$T/$_l.$s.raw" "$s"
		if [ "$s" = "$_s" ]; then
			t_name "$_l: snapshot $s: undamaged clusters as before, damaged ones old content or zeros"
			python3 "$HERE/../cmp-clusters.py" "$_ref/snap-$s.raw" "$T/$_l.$s.raw" $CS "$@" && t_ok ||
				t_fail "snapshot $s content"
		else
			t_name "$_l: snapshot $s unchanged"
			cmp -s "$T/$_l.$s.raw" "$_ref/snap-$s.raw" && t_ok || t_fail "snapshot $s differs"
		fi
	done
	t_name "$_l: every snapshot keeps its VM state size${VM_DROPPED:+ but $_s (its VM state L1 entry dropped: 0)}"
	_k=0 _vm=ok
	for s in $(snapshot_names "$_p"); do
		_want_vm=$($POKE "$_p" "snapshot[$_k].vm_state_size")
		[ -n "${VM_DROPPED:-}" ] && [ "$s" = "$_s" ] && _want_vm=0x0
		[ "$($POKE "$I" "snapshot[$_k].vm_state_size")" = "$_want_vm" ] || _vm="snapshot $s"
		_k=$((_k + 1))
	done
	[ "$_vm" = ok ] && t_ok || t_fail "$_vm: vm_state_size $($POKE "$I" "snapshot[0].vm_state_size")"
	if [ -n "$_want" ]; then
		t_name "$_l: $_f holds its old value again"
		[ "$($POKE "$I" "$_f")" = "$_want" ] && t_ok || t_fail "$($POKE "$I" "$_f") != $_want"
	fi
	_r=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo2.$_l"
	t_name "$_l: a second repair plans nothing"
	[ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$_r" ] &&
		t_ok || t_fail "exit $RRC plan $(rjson 'r["plan"]')"
	t_name "$_l: undo restores the damaged image byte for byte"
	"$QC" undo "$T/undo.$_l" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$_d" ] && t_ok || t_fail undo
}

# snap_case LABEL CODE FIXTURE REFDIR SNAP FIELD VALUE RESTORED RANGE...:
# copy FIXTURE, poke FIELD, run the cycle.
snap_case() {
	I=$T/$1.qcow2
	cp "$3" "$I"
	$POKE "$I" "$6" "$7"
	_sc1=$1 _sc2=$2 _sc3=$3 _sc4=$4 _sc5=$5 _sc6=$6 _sc8=$8
	shift 8
	snap_cycle "$_sc1" "$_sc2" "$_sc3" "$_sc4" "$_sc5" "$_sc6" "$_sc8" "$@"
}

W=0:0x1000000 # the whole disk: L1 entry 0 maps 512 MiB
# Snapshot L1 entry 0 (s1's own L2 table).
old=$($POKE "$P" 'snapl1[0][0]')
snap_case l1-reserved l1-entry-reserved "$P" "$T/ref" s1 'snapl1[0][0]' '|0x100' "$old"
snap_case l1-unaligned l1-entry-unaligned "$P" "$T/ref" s1 'snapl1[0][0]' '|0x200' "$old"
snap_case l1-flipped-high l1-l2-past-eof "$P" "$T/ref" s1 'snapl1[0][0]' '^0x20000000000' "$old"
# no candidate inside the file: the snapshot's range reads zeros, its
# table and its own data cluster are leaks (lowered, content kept), the
# clusters it shared with the active layer go from 2 to 1
snap_case l1-past-eof l1-l2-past-eof "$P" "$T/ref" s1 'snapl1[0][0]' 0x8000000f00000000 "" $W
# the snapshot's own table kept its content (leaked, not discarded)
t_name "l1-past-eof: the snapshot's old L2 table keeps its content"
tbl=$(entry_off "$P" 'snapl1[0][0]')
python3 -c 'import sys; a=open(sys.argv[1],"rb").read(); b=open(sys.argv[2],"rb").read(); o=int(sys.argv[3]); sys.exit(a[o:o+65536]!=b[o:o+65536])' \
		"$P" "$T/l1-past-eof.qcow2" "$tbl" && t_ok || t_fail "table content changed"
# unaligned onto the active layer's L2 table (refcount 1, counted once):
# it cannot be restored there (no missing reference) and it may be an L2
# table: left (see repair-refuse.sh).

# Entries of s1's own L2 table: guest 0 (shared with the active layer,
# refcount 2) and guest 1M (the snapshot's own cluster, refcount 1).
old0=$($POKE "$P" 'snapl2[0][0][0]')
old16=$($POKE "$P" 'snapl2[0][0][16]')
snap_case l2-reserved l2-entry-reserved "$P" "$T/ref" s1 'snapl2[0][0][0]' '|0x100' "$old0"
snap_case l2-unaligned-shared l2-entry-unaligned "$P" "$T/ref" s1 'snapl2[0][0][0]' '|0x200' "$old0"
snap_case l2-unaligned-own l2-entry-unaligned "$P" "$T/ref" s1 'snapl2[0][0][16]' '|0x200' "$old16"
snap_case l2-flipped-high l2-data-past-eof "$P" "$T/ref" s1 'snapl2[0][0][16]' '^0x20000000000' "$old16"
# no candidate: zero flag; the snapshot's guest cluster at 1M reads zeros,
# its old data cluster is a leak (content kept)
snap_case l2-past-eof l2-data-past-eof "$P" "$T/ref" s1 'snapl2[0][0][16]' 0xff0000000000 "" 0x100000:0x10000
t_name "l2-past-eof: the snapshot's old data cluster keeps its content"
d16=$(entry_off "$P" 'snapl2[0][0][16]')
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(d[o:o+65536]!=b"\x22"*65536)' \
	"$T/l2-past-eof.qcow2" "$d16" && t_ok || t_fail "cluster changed"
# a data pointer onto the refcount table: the reftable owns the cluster
rt=$($POKE "$P" header.refcount_table_offset)
snap_case l2-onto-reftable overlap-data-metadata "$P" "$T/ref" s1 'snapl2[0][0][16]' "$rt" "" 0x100000:0x10000

# Crash safety of these edits (the test-only build, as repair-crash.sh):
# the dropped snapshot L1 entry with its leak and COPIED writes, stopped
# after every write k; undo restores the damaged image each time.
QC_FAULTS=${QC_FAULTS:-$(dirname "$QC")/../test/qcow2fsck-faults}
if [ -x "$QC_FAULTS" ]; then
	D=$T/crash-src.qcow2
	cp "$P" "$D"
	$POKE "$D" 'snapl1[0][0]' 0x8000000f00000000
	ds=$(sha "$D")
	run_repair "$D" --dry-run
	n=$(rjson 'len(r["plan"])')
	k=1
	while [ "$k" -le "$n" ]; do
		I=$T/crash.qcow2
		cp "$D" "$I"
		rm -f "$T/undo.crash"
		QCOW2FSCK_FAULT_CRASH_AFTER=$k "$QC_FAULTS" repair --undo-file="$T/undo.crash" "$I" >/dev/null 2>&1
		rc=$?
		t_name "l1-past-eof: crash after write $k of $n: exit 99, then undo restores the damaged image"
		if [ "$rc" = 99 ] && "$QC" undo "$T/undo.crash" "$I" >/dev/null 2>"$T/u.err" && [ "$(sha "$I")" = "$ds" ]; then
			t_ok
		else
			t_fail "exit $rc; undo: $(cat "$T/u.err")"
		fi
		k=$((k + 1))
	done
else
	echo "repair-tables-snap.sh: SKIP crash cases: $QC_FAULTS missing (make build/test/qcow2fsck-faults)" >&2
fi

# Two snapshots: s2 shares the active layer's L2 table.
# s2's L1 entry unaligned: the corrected cluster is the active table, whose
# refcount (2) proves the missing reference.
old2=$($POKE "$P2" 'snapl1[1][0]')
snap_case shared-l1-unaligned l1-entry-unaligned "$P2" "$T/ref2" s2 'snapl1[1][0]' '|0x200' "$old2"
# an entry of the shared table: one cluster, one edit (the active
# fixer's); OFLAG_COPIED stays clear (the cluster is shared)
olda=$($POKE "$P2" 'l2[0][0]')
I=$T/shared-l2.qcow2
cp "$P2" "$I"
$POKE "$I" 'l2[0][0]' '|0x200'
snap_cycle shared-l2 l2-entry-unaligned "$P2" "$T/ref2" s2 'l2[0][0]' "$olda"

# VM state (savevm in a paused qemu-system-x86_64): L1 entry 1 of the
# snapshot maps its VM state through an L2 table only the snapshot keeps
# (QEMU discards the VM state from the active layer after the snapshot).
V=$T/vm.qcow2
mk "$V" 16M
fill "$V"
savevm "$V" s1
qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$V" >/dev/null
if [ "$(snapshot_names "$V")" != s1 ] || [ "$($POKE "$V" 'snapshot[0].vm_state_size')" = 0x0 ]; then
	echo "repair-tables-snap.sh: SKIP VM state cases: fixture failure (savevm made no VM state)" >&2
else
	guest_save "$V" "$T/refv"
	expect_clean "$V" "fixture vm"
	oldv=$($POKE "$V" 'snapl1[0][1]')
	snap_case vm-l1-unaligned l1-entry-unaligned "$V" "$T/refv" s1 'snapl1[0][1]' '|0x200' "$oldv"
	# past the end of the file, no candidate: the VM state's only L2
	# pointer dropped, so the VM state is gone: its size set to 0 by the
	# snapshot-table rewrite in the same repair, the disk content kept
	VM_DROPPED=1
	snap_case vm-l1-past-eof l1-l2-past-eof "$V" "$T/refv" s1 'snapl1[0][1]' 0x8000000f00000000 ""
	VM_DROPPED=
	oldvd=$($POKE "$V" 'snapl2[0][1][0]')
	snap_case vm-l2-flipped-high l2-data-past-eof "$V" "$T/refv" s1 'snapl2[0][1][0]' '^0x20000000000' "$oldvd"
	t_name "vm-l2-flipped-high: the snapshot still applies (qemu-img snapshot -a)"
	cp "$T/vm-l2-flipped-high.qcow2" "$T/vm-apply.qcow2"
	"$QC" repair -q "$T/vm-apply.qcow2" >/dev/null 2>&1
	qemu-img snapshot -a s1 "$T/vm-apply.qcow2" && t_ok || t_fail "snapshot -a"
fi
t_done
