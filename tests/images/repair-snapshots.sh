#!/bin/sh
# repair-snapshots.sh - damaged snapshot tables, rewritten by the repair
# (doc/repair.md "Snapshot tables").  Real images: three snapshots made
# with `qemu-img snapshot -c`, and one image whose snapshots carry VM state
# (savevm in a paused qemu-system-x86_64).  Each damage is made by
# tests/poke.py on a copy; then:
#   - check reports it and says per snapshot what a repair would do (JSON
#     "repair" on each snapshots[] object);
#   - --dry-run writes nothing; repair exits 0; both checkers are clean;
#   - `qemu-img snapshot -l` lists every snapshot by name, and each reads
#     exactly what it read before (`qemu-img convert -l snapshot.name=`);
#     the active layer is untouched (qemu-img compare);
#   - a snapshot with VM state still applies (`qemu-img snapshot -a`), and
#     in one case loads (loadvm in qemu-system-x86_64);
#   - a second repair plans nothing; undo restores the damaged bytes.
# Side by side, `qemu-img check -r all` runs on the same damaged copy; the
# test prints where it loses or renames a snapshot that qcow2fsck keeps
# (qemu's outcome is reported, never asserted).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# Three snapshots of different content.
A=$T/three.qcow2
mk "$A" 64M
fill "$A"
snap "$A" s1
qemu-io -f qcow2 -c 'write -P 0x55 0 1M' "$A" >/dev/null
snap "$A" s2
qemu-io -f qcow2 -c 'write -P 0x56 1M 1M' "$A" >/dev/null
snap "$A" s3
qemu-io -f qcow2 -c 'write -P 0x57 2M 1M' "$A" >/dev/null
guest_save "$A" "$T/ref-three"
t_name "fixture: three snapshots, clean"
[ "$(snapshot_names "$A" | tr '\n' ' ')" = "s1 s2 s3 " ] && t_ok || t_fail "$(snapshot_names "$A")"
expect_clean "$A" "fixture three"

# VM state: q1 without, s1 and s2 with (-M pc -m 32: several clusters).
V=$T/vm.qcow2
mk "$V" 64M
fill "$V"
snap "$V" q1
MACHINE=pc MEM=32 savevm "$V" s1 s2
if [ "$(snapshot_names "$V" | tr '\n' ' ')" != "q1 s1 s2 " ]; then
	rm -f "$V"; mk "$V" 64M; fill "$V"; snap "$V" q1
	MACHINE=pc MEM=32 savevm "$V" s1 s2
fi
HAVE_VM=1
if [ "$(snapshot_names "$V" | tr '\n' ' ')" != "q1 s1 s2 " ]; then
	echo "repair-snapshots.sh: SKIP VM state cases: fixture failure (savevm did not make s1, s2)" >&2
	HAVE_VM=0
else
	guest_save "$V" "$T/ref-vm"
	expect_clean "$V" "fixture vm"
fi

# verdicts IDX=VERDICT...: the last check's JSON says so per snapshot.
verdicts() {
	t_name "check JSON: per-snapshot repair verdicts $*"
	python3 - "$JSON" "$@" <<'PY' 2>"$T/v.err" && t_ok || t_fail "$(tail -1 "$T/v.err")"
import json, sys
s = json.load(open(sys.argv[1]))["snapshots"]
for a in sys.argv[2:]:
    i, v = a.split("=")
    assert s[int(i)]["repair"] == v, (i, s[int(i)].get("repair"), s[int(i)].get("repair-detail"))
PY
}

# loadvm IMG NAME LABEL: the repaired image's VM state NAME loads in the
# machine that saved it (loadvm in qemu-system-x86_64's monitor, -S).
loadvm() {
	t_name "$3: loadvm $2 loads the repaired VM state"
	cp "$1" "$T/loadvm.qcow2"
	out=$(printf 'loadvm %s\ninfo status\nquit\n' "$2" | timeout 120 qemu-system-x86_64 -M pc -m 32 -S -display none \
		-monitor stdio -serial none -nodefaults -drive file="$T/loadvm.qcow2",if=none,format=qcow2 2>&1)
	rm -f "$T/loadvm.qcow2"
	if printf '%s' "$out" | grep -qi 'error\|fail'; then
		t_fail "loadvm: $(printf '%s' "$out" | grep -i 'error\|fail' | head -2 | tr '\n' '|')"
	elif ! printf '%s' "$out" | grep -q 'VM status: paused'; then
		t_fail "loadvm: no status: $(printf '%s' "$out" | tail -3 | tr '\n' '|')"
	else
		t_ok
	fi
}

# qemu_side IMG REF LABEL [DROPPED]: what `qemu-img check -r all` does to a
# copy: which snapshots it keeps with their content (printed, not
# asserted); DROPPED is one qcow2fsck drops itself.
qemu_side() {
	qemu_repair_all "$1" "$3"
	for n in $(ls "$2" | sed -n 's/^snap-\(.*\)\.raw$/\1/p'); do
		[ "$n" = "${4:-}" ] && continue
		if ! snapshot_names "$QIMG" | grep -qx "$n"; then
			echo "qemu-img check -r all [$3]: snapshot '$n' is gone (qcow2fsck keeps it)"
		elif ! qemu-img convert -f qcow2 -O raw -l "snapshot.name=$n" "$QIMG" "$T/q.raw" 2>/dev/null ||
		     ! cmp -s "$T/q.raw" "$2/snap-$n.raw"; then
			echo "qemu-img check -r all [$3]: snapshot '$n' no longer reads its content (qcow2fsck keeps it)"
		fi
	done
	rm -f "$QIMG" "$T/q.raw"
}

# snap_case LABEL FIXTURE REF CODE POKE... : the full cycle on a copy of
# FIXTURE damaged by the POKE field/value pairs; every snapshot of REF must
# be listed after the repair.  LOADVM=NAME (set before the call, cleared
# after): the repaired image also loads VM state NAME (loadvm).
snap_case() {
	_l=$1 _f=$2 _ref=$3 _code=$4; shift 4
	I=$T/$_l.qcow2
	cp "$_f" "$I"
	while [ $# -ge 2 ]; do $POKE "$I" "$1" "$2"; shift 2; done
	qemu_side "$I" "$_ref" "$_l"
	run_check "$I"
	t_name "$_l: check reports $_code"
	json_codes | grep -qx "$_code" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ') (exit $RC)"
	cp "$JSON" "$T/$_l.check.json"
	_d=$(sha "$I")
	t_name "$_l: --dry-run writes nothing and plans a rewrite"
	"$QC" repair --dry-run --output=json "$I" >"$T/dry.json" 2>/dev/null
	if [ "$(sha "$I")" = "$_d" ] && [ ! -e "$I.qcow2fsck-undo" ] &&
	   python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if any(w["phase"]=="switch" and w["offset"]==60 for w in r["plan"]) else 1)' "$T/dry.json"; then
		t_ok
	else
		t_fail "image changed, or no header switch at 60 planned"
	fi
	run_repair "$I" --undo-file="$T/undo.$_l"
	t_name "$_l: repair exits 0"
	[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC: $(rjson 'r["left"]' 2>&1)"
	expect_clean "$I" "$_l: after repair"
	expect_qemu "$I" 0 "($_l: after repair)"
	t_name "$_l: qemu-img snapshot -l lists every snapshot"
	_want=$(ls "$_ref" | sed -n 's/^snap-\(.*\)\.raw$/\1/p' | sort | tr '\n' ' ')
	_got=$(snapshot_names "$I" | sort | tr '\n' ' ')
	[ "$_want" = "$_got" ] && t_ok || t_fail "listed: $_got; want $_want"
	guest_same "$I" "$_ref" "$_l"
	t_name "$_l: the active layer is untouched (qemu-img compare)"
	qemu-img compare -q -f qcow2 -F qcow2 "$_f" "$I" && t_ok || t_fail "active layer differs"
	t_name "$_l: every snapshot still applies (qemu-img snapshot -a)"
	_ok=1
	for n in $(snapshot_names "$I"); do
		cp "$I" "$T/apply.qcow2"
		qemu-img snapshot -a "$n" "$T/apply.qcow2" 2>"$T/apply.err" || { _ok=0; echo "apply $n: $(cat "$T/apply.err")" >&2; }
	done
	rm -f "$T/apply.qcow2"
	[ $_ok = 1 ] && t_ok || t_fail "qemu-img snapshot -a failed"
	[ -n "${LOADVM:-}" ] && loadvm "$I" "$LOADVM" "$_l"
	_r=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo2.$_l"
	t_name "$_l: a second repair plans nothing and writes nothing"
	if [ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$_r" ] &&
	   [ ! -e "$T/undo2.$_l" ]; then t_ok; else t_fail "exit $RRC, plan $(rjson 'len(r["plan"])')"; fi
	t_name "$_l: undo restores the damaged image byte for byte"
	if "$QC" undo "$T/undo.$_l" "$I" >/dev/null 2>"$T/undo.err" && [ "$(sha "$I")" = "$_d" ]; then
		t_ok
	else
		t_fail "undo: $(cat "$T/undo.err")"
	fi
	JSON=$T/$_l.check.json
}

# --- item 2: entries fixed from evidence ---------------------------------------
snap_case dup-id "$A" "$T/ref-three" snapshot-id-duplicate 'snapshot[1].id' str:1
verdicts 0=kept 1=fixed 2=kept
t_name "dup-id: the report says the old and the new ID"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"][1]; assert s["repair-new-id"]=="4" and "'"'"'1'"'"' -> '"'"'4'"'"'" in s["repair-detail"], s' "$JSON" && t_ok || t_fail "detail"
# An empty ID: the ID length zeroed (the ID byte stays before the name).
snap_case empty-id "$A" "$T/ref-three" snapshot-id-empty 'snapshot[1].id_str_size' 0
verdicts 1=fixed
# Lengths that overflow: the resynchronised parse gives the real ones.
snap_case name-len "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[0].name_size' 0xffff
snap_case id-len "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[1].id_str_size' 0x100
snap_case extra-huge "$A" "$T/ref-three" snapshot-extra-data-too-large 'snapshot[0].extra_data_size' 0x10000
# Too small: in the middle (resynchronised) and on the last entry (no next
# entry to resynchronise on: the ID and name are where 24 bytes put them).
snap_case extra-small "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[0].extra_data_size' 8
snap_case extra-small-last "$A" "$T/ref-three" snapshot-extra-data-too-small 'snapshot[2].extra_data_size' 8
verdicts 0=kept 1=kept 2=fixed
# nb_snapshots too big, and past QEMU's limit.
snap_case nb-big "$A" "$T/ref-three" snapshot-count-exceeds-table header.nb_snapshots 5
snap_case nb-huge "$A" "$T/ref-three" snapshot-count-too-large header.nb_snapshots 0x10001
# Exactly QEMU's limit (65536 entries): allowed by the limit, not by the table.
snap_case nb-65536 "$A" "$T/ref-three" snapshot-count-exceeds-table header.nb_snapshots 0x10000
# l1_size too small for the disk: the L1 cluster still holds the entry.
snap_case l1-small "$A" "$T/ref-three" snapshot-l1-too-small 'snapshot[0].l1_size' 0
# disk_size too big for the L1: the header's size, which the L1 maps.
snap_case disk-big "$A" "$T/ref-three" snapshot-l1-too-small 'snapshot[2].disk_size' 0x60000000
# Two damages at once.
snap_case two "$A" "$T/ref-three" snapshot-id-duplicate 'snapshot[2].id' str:2 header.nb_snapshots 9
# Two damaged entries in a row: entry 1's extra data length huge (its
# lengths lose the thread) and entry 2's L1 pointer unaligned (so it is not
# an entry QEMU could have written).  The parse resynchronises on entry 2
# (plausible but for its L1 fields, and the table ends after it), not past
# it: entry 1 keeps its own name and entry 2 is not lost.
snap_case mid-two "$A" "$T/ref-three" snapshot-entry-lengths-invalid 'snapshot[2].l1_table_offset' +0x200 'snapshot[1].extra_data_size' 0x10000
verdicts 0=kept 1=fixed 2=recovered

if [ $HAVE_VM = 1 ]; then
	# vm_state_size_large too big: the 32-bit field is what the mapped clusters prove.
	snap_case vm-big "$V" "$T/ref-vm" vmstate-beyond-l1 'snapshot[1].vm_state_size_large' 0x10000000000
	verdicts 0=kept 1=fixed 2=kept
	t_name "vm-big: the repaired snapshot keeps its VM state size"
	[ "$($POKE "$T/vm-big.qcow2" 'snapshot[1].vm_state_size_large')" = "$($POKE "$V" 'snapshot[1].vm_state_size_large')" ] ||
		"$QC" repair "$T/vm-big.qcow2" >/dev/null 2>&1
	[ "$($POKE "$T/vm-big.qcow2" 'snapshot[1].vm_state_size_large')" = "$($POKE "$V" 'snapshot[1].vm_state_size_large')" ] &&
		t_ok || t_fail "vm_state_size_large $($POKE "$T/vm-big.qcow2" 'snapshot[1].vm_state_size_large')"
	loadvm "$T/vm-big.qcow2" s1 vm-big
	# 32-bit field disagreeing (a warning): set from the proven 64-bit one.
	snap_case vm-mismatch "$V" "$T/ref-vm" vmstate-size-mismatch 'snapshot[2].vm_state_size' +1
	# l1_size cut below the VM state: the L1 cluster holds the entry.
	snap_case vm-l1-small "$V" "$T/ref-vm" vmstate-beyond-l1 'snapshot[1].l1_size' 1
	# A VM state cluster pointing at the refcount table: the VM state is
	# dropped (the refcount table owns the cluster), the disk kept; the
	# other snapshot's VM state still loads.
	LOADVM=s2
	snap_case vm-on-meta "$V" "$T/ref-vm" overlap-data-metadata 'snapl2[1][1][2]' "$($POKE "$V" header.refcount_table_offset)"
	LOADVM=
	verdicts 1=fixed
	t_name "vm-on-meta: the report says the VM state was dropped"
	python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"][1]; assert "VM state dropped" in s["repair-detail"], s' "$JSON" && t_ok || t_fail "detail"
fi

# Refcounts narrower than a byte (4 and 2 bits; QEMU cannot snapshot a
# 1-bit image, every snapshot shares clusters, and cannot apply a snapshot
# of a 2-bit image with two: the count would pass 3): the new table starts
# at a cluster whose count starts a byte, so its count is set before the
# header switch (new-structures), as with wider refcounts, never raised in
# place after it.
for rb in 4 2; do
	R=$T/rcfix$rb.qcow2
	mk "$R" 64M refcount_bits=$rb
	fill "$R"
	snap "$R" s1
	if [ $rb = 4 ]; then
		qemu-io -f qcow2 -c 'write -P 0x55 0 1M' "$R" >/dev/null
		snap "$R" s2
		snap "$R" s3
		set -- snapshot-id-duplicate 'snapshot[1].id' str:1
	else
		set -- snapshot-count-exceeds-table header.nb_snapshots 3
	fi
	guest_save "$R" "$T/ref-rc$rb"
	snap_case rc$rb "$R" "$T/ref-rc$rb" "$@"
	t_name "rc$rb: the new table's refcount is set before the switch, not raised after it"
	python3 - "$T/dry.json" <<'PY' 2>"$T/rc.err" && t_ok || t_fail "$(tail -1 "$T/rc.err")"
import json, re, sys
p = json.load(open(sys.argv[1]))["plan"]
sw = [w["summary"] for w in p if w["phase"] == "switch"][0]
new = int(re.search(r"snapshots_offset 0x[0-9a-f]+ -> (0x[0-9a-f]+)", sw).group(1), 16)
c = new >> 16  # 64 KiB clusters
assert any(w["phase"] == "new-structures" and "snapshot table's clusters %d.." % c in w["summary"] for w in p), p
assert not any(w["phase"] == "in-place" and "cluster %d (" % c in w["summary"] for w in p), p
PY
done

# --- item 3: lost structures found among the leaked clusters -------------------
# A snapshot's L1 pointer: unaligned, past EOF, beyond the largest offset,
# on the active L1 table, on the refcount table.  Its table is the one
# leaked run whose entries lead to L2 tables that count this snapshot.
snap_case l1-unaligned "$A" "$T/ref-three" snapshot-l1-offset-unaligned 'snapshot[1].l1_table_offset' +0x200
verdicts 0=kept 1=recovered 2=kept
snap_case l1-past-eof "$A" "$T/ref-three" snapshot-l1-past-eof 'snapshot[1].l1_table_offset' '|0x40000000'
snap_case l1-huge "$A" "$T/ref-three" snapshot-l1-offset-invalid 'snapshot[2].l1_table_offset' '|0x100000000000000'
snap_case l1-on-active "$A" "$T/ref-three" overlap-metadata 'snapshot[1].l1_table_offset' "$($POKE "$A" header.l1_table_offset)"
verdicts 1=recovered
snap_case l1-on-reftable "$A" "$T/ref-three" overlap-metadata 'snapshot[0].l1_table_offset' "$($POKE "$A" header.refcount_table_offset)"
# The header's table pointer: zero, unaligned, past EOF, on the active L1.
snap_case table-zero "$A" "$T/ref-three" snapshot-table-offset-invalid header.snapshots_offset 0
snap_case table-unaligned "$A" "$T/ref-three" snapshot-table-offset-unaligned header.snapshots_offset +0x200
snap_case table-past-eof "$A" "$T/ref-three" snapshot-table-past-eof header.snapshots_offset '|0x40000000'
snap_case table-on-l1 "$A" "$T/ref-three" overlap-metadata header.snapshots_offset "$($POKE "$A" header.l1_table_offset)"
# Two damages at once: the table lost AND one of its entries damaged.  The
# found table is rewritten with the entry fixed in the same repair (one
# header switch), not re-linked as it is (a second repair would then fix it).
snap_case lost-and-dup "$A" "$T/ref-three" snapshot-table-offset-invalid 'snapshot[1].id' str:1 header.snapshots_offset 0
t_name "lost-and-dup: one repair, one header switch, the duplicate ID renumbered"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sw=[w for w in r["plan"] if w["phase"]=="switch"]; assert len(sw)==1 and "rewritten with its entries fixed" in sw[0]["summary"], sw; assert any("ID '"'"'1'"'"' -> '"'"'4'"'"'" in w["summary"] for w in r["plan"]), r["plan"]' "$T/dry.json" && t_ok || t_fail "$(head -c 600 "$T/dry.json")"
# nb_snapshots too small: the check sees only leaks; the uncounted entries
# follow the counted ones and their L1 tables are among the leaks.
snap_case nb-small "$A" "$T/ref-three" refcount-leak header.nb_snapshots 2
snap_case nb-zero "$A" "$T/ref-three" refcount-leak header.nb_snapshots 0
if [ $HAVE_VM = 1 ]; then
	snap_case vm-table-zero "$V" "$T/ref-vm" snapshot-table-offset-invalid header.snapshots_offset 0
	snap_case vm-l1-past-eof "$V" "$T/ref-vm" snapshot-l1-past-eof 'snapshot[2].l1_table_offset' '|0x40000000'
	# Two damages at once on the savevm image: the table lost AND an entry's
	# 32-bit VM state size wrong; one repair, and the VM state loads.
	LOADVM=s2
	snap_case vm-lost-and-mismatch "$V" "$T/ref-vm" snapshot-table-offset-invalid 'snapshot[2].vm_state_size' +1 header.snapshots_offset 0
	LOADVM=s1
	# A snapshot's L1 on the refcount table AND another's VM state size too big.
	snap_case vm-l1-on-reftable-and-big "$V" "$T/ref-vm" overlap-metadata 'snapshot[2].l1_table_offset' "$($POKE "$V" header.refcount_table_offset)" 'snapshot[1].vm_state_size_large' 0x10000000000
	LOADVM=
fi

# The header's table pointer on a cluster that holds no table QEMU wrote
# while the real table is intact (found by tests/gap-sweep.py on
# header.snapshots_offset).  One snapshot (repair-lib.sh pristine): the
# table's cluster is the last but two; below it lies s1's L1 table, above
# it the active L2 table.  The real table is re-linked (one header switch):
#  - moved one cluster down, onto s1's L1 table (one entry with an empty
#    L1, no ID, no name), and onto s1's L2 table: the walk counted the
#    header's "table" as the one reference of that cluster, so s1's L1 (or
#    L2) looked neither leaked nor over-counted and the real table was no
#    candidate (exit 2, nothing written); the search now takes that claim
#    back (checker/snapscan.c qc_snapscan_init_void).  qemu-img check -r
#    all on the -1 copy ends clean (exit 0) with s1 lost: one entry with no
#    ID and no name, s1 unreadable ("Can't find snapshot"), its clusters
#    freed;
#  - onto the refblock: the refblock read as refcounts disagrees with a
#    walk that missed s1, so it was taken as disproved and the "table" as
#    real, and the repair dropped s1 and exited 0; a table none of whose
#    entries has an ID (QEMU gives every snapshot one) is now lost there.
#    qemu-img check -r all exits 2 and leaves it corrupt, s1 gone;
#  - one cluster up (the active L2 table), two down (guest data), onto the
#    refcount table: re-linked before this change too (kept as cases).
# qemu-img check -r all on each (2026-12, the run's printout): s1 is gone
# in every case; "clean" after it (exit 0) on -1, on s1's L2 and on the
# refcount table, still corrupt (exit 2) on +1, -2 and the refblock.
O=$T/one.qcow2
pristine "$O"
guest_save "$O" "$T/ref-one"
ol2=$(entry_off "$O" 'snapl1[0][0]')
snap_case table-below "$O" "$T/ref-one" snapshot-id-empty header.snapshots_offset -0x10000
t_name "table-below: one header switch, to the real table"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); p=r["plan"]; assert len(p)==1 and p[0]["phase"]=="switch" and "re-link" in p[0]["summary"] and sys.argv[2] in p[0]["summary"], p' "$T/dry.json" "$($POKE "$O" header.snapshots_offset)" && t_ok || t_fail "$(head -c 600 "$T/dry.json")"
snap_case table-on-snap-l2 "$O" "$T/ref-one" snapshot-id-empty header.snapshots_offset "$ol2"
snap_case table-on-refblock "$O" "$T/ref-one" overlap-metadata header.snapshots_offset "$($POKE "$O" 'reftable[0]')"
snap_case table-above "$O" "$T/ref-one" overlap-metadata header.snapshots_offset +0x10000
snap_case table-below2 "$O" "$T/ref-one" overlap-data-metadata header.snapshots_offset -0x20000
snap_case table-on-reftable "$O" "$T/ref-one" overlap-metadata header.snapshots_offset "$($POKE "$O" header.refcount_table_offset)"
# Three snapshots: one cluster below the table is s3's L1 table, two below
# guest data.  The header's parse runs from entries without an ID into the
# real table (resynchronised at its first entry), so s1 (and s2) were walked
# through the header's table: the table was kept where the header says, its
# first entries fixed or dropped and s3 (and s2) lost, exit 0.  Now the
# real table is found at the cluster the parse ran into.  qemu-img check -r
# all: clean after it on -1 with every snapshot unnamed and unreadable;
# exit 2 on -2.
snap_case table-below-three "$A" "$T/ref-three" snapshot-id-empty header.snapshots_offset -0x10000
snap_case table-below2-three "$A" "$T/ref-three" overlap-data-metadata header.snapshots_offset -0x20000
# 4 KiB clusters, twelve snapshots: the header's pointer onto a cluster
# that starts blank (the first one of the file whose first 128 bytes are
# zeros: an L2 table) read as a table of no entries, so the repair rewrote it: nb_snapshots 12 -> 0, every
# snapshot dropped, exit 0.  A table with no entry at all is now lost and
# the real one re-linked.  qemu-img check -r all: exit 2 after it, every
# snapshot unnamed.
Z=$T/twelve.qcow2
mk "$Z" 4M cluster_size=4096
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
	fixture qemu-io -f qcow2 -c "write -P $i $((i * 64))k 8k" "$Z" >/dev/null
	snap "$Z" "snap$i"
done
fixture qemu-io -f qcow2 -c 'write -P 0x77 0 4k' "$Z" >/dev/null
guest_save "$Z" "$T/ref-twelve"
zc=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(next(o for o in range(4096, len(d), 4096) if not any(d[o:o+128])))' "$Z")
snap_case table-on-blank "$Z" "$T/ref-twelve" snapshot-count-exceeds-table header.snapshots_offset "$zc"
# 512-byte clusters, ten snapshots (a table over two clusters): the
# header's pointer onto guest data far below the table (the shared data
# written before the snapshots) read an entry whose lengths are garbage,
# and the parse resynchronised at the real table's first entry and took
# nine of its ten entries.  The search then missed the real table: the L2
# tables its entries name lie inside the bogus table's range, so the map
# recorded the bogus table as their owner, and they did not pass as L2
# tables; the garbage entry was dropped and snap10 lost, exit 0 (every
# cluster offset from 0xa00 to 0x1c000 of this image, 219 of 250, swept by
# hand).  Such an owner is now judged by the cluster's content
# (checker/snapscan.c voided_owner) and the real table re-linked; the sweep
# then lost none and refused one (the table's second cluster).
# qemu-img check -r all is not run for its verdict here (snap_case prints
# it); the cases below need the data cluster and snap1's L1 table.
F=$T/ten512.qcow2
mk "$F" 4M cluster_size=512
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' "$F" >/dev/null
for i in 1 2 3 4 5 6 7 8 9 10; do
	fixture qemu-io -f qcow2 -c "write -P $i $((i * 64))k 4k" "$F" >/dev/null
	snap "$F" "snap$i"
done
guest_save "$F" "$T/ref-ten512"
snap_case table-on-data-512 "$F" "$T/ref-ten512" snapshot-extra-data-too-large header.snapshots_offset "$(entry_off "$F" 'l2[0][8]')"
snap_case table-on-snapl1-512 "$F" "$T/ref-ten512" snapshot-entry-lengths-invalid header.snapshots_offset "$($POKE "$F" 'snapshot[0].l1_table_offset')"
# The pointer onto the table's own second cluster: the parse read a
# garbage entry, resynchronised at snap9 and ran into the end of the file
# after snap10, and the repair cut nb_snapshots 10 -> 3 (snap1-8 out of
# the table, exit 2).  A garbage first entry with the end of the file
# before nb_snapshots entries now makes the table lost, and a candidate
# that starts below the header's table and runs into it is no longer
# taken for that table: the real one is re-linked.
snap_case table-on-second-cluster-512 "$F" "$T/ref-ten512" snapshot-count-exceeds-table header.snapshots_offset +0x200

# refuse_moved LABEL POKE...: the header's pointer moved one cluster down
# (onto s1's L1) after the POKEs: repair exits 2, writes nothing, no undo.
refuse_moved() {
	_l=$1; shift
	I=$T/$_l.qcow2
	cp "$O" "$I"
	while [ $# -ge 2 ]; do $POKE "$I" "$1" "$2"; shift 2; done
	$POKE "$I" header.snapshots_offset -0x10000
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$_l"
	t_name "$_l: repair exits 2 and writes nothing; the plan says why"
	if [ "$RRC" = 2 ] && [ "$(sha "$I")" = "$_d" ] && [ "$(rjson 'len(r["plan"])')" = 0 ] &&
	   [ ! -e "$T/undo.$_l" ] && [ "$(rjson 'any("snapshot table is lost" in l["reason"] for l in r["left"])')" = True ]; then
		t_ok; else t_fail "exit $RRC plan $(rjson '[w["summary"][:80] for w in r["plan"][:4]]')"; fi
}
# The real table not QEMU's either (its ID a letter): nothing to re-link.
so1=$($POKE "$O" header.snapshots_offset)
refuse_moved below-not-found 'snapshot[0].id' str:x
# Two equally good tables: a copy of the real one in a leaked cluster
# past the end of the file.
cs1=$((1 << $($POKE "$O" header.cluster_bits)))
end1=$(( ($(stat -c %s "$O") + cs1 - 1) / cs1 * cs1 ))
cp "$O" "$T/one-copy.qcow2"
dd if="$O" of="$T/one-copy.qcow2" bs=$cs1 skip=$((so1 / cs1)) seek=$((end1 / cs1)) count=1 conv=notrunc 2>/dev/null
$POKE "$T/one-copy.qcow2" "refcount[$((end1 / cs1))]" 1
O0=$O; O=$T/one-copy.qcow2
refuse_moved below-tie
O=$O0
t_name "below-tie: the refusal names both tables"
rjson '[l["reason"] for l in r["left"]]' | grep -q "$(printf '0x%x' "$so1").*$(printf '0x%x' "$end1")" && t_ok || t_fail "$(rjson 'r["left"]')"

# Two equally good tables (a copy of the table in a leaked cluster past
# the old end): the repair refuses and names both.
TT=$T/tie.qcow2
cp "$A" "$TT"
so=$($POKE "$A" header.snapshots_offset)
cs=$((1 << $($POKE "$A" header.cluster_bits)))
end=$(( ($(stat -c %s "$TT") + cs - 1) / cs * cs ))
dd if="$A" of="$TT" bs=$cs skip=$((so / cs)) seek=$((end / cs)) count=1 conv=notrunc 2>/dev/null
$POKE "$TT" "refcount[$((end / cs))]" 1
$POKE "$TT" header.snapshots_offset 0
t_name "tie: two leaked tables explain as much: repair exits 2 (the corruption stays), changes nothing, names both"
s0=$(sha "$TT")
"$QC" repair --dry-run "$TT" >"$T/tie.out" 2>&1
"$QC" repair "$TT" >/dev/null 2>&1; trc=$?
if [ $trc = 2 ] && [ "$(sha "$TT")" = "$s0" ] && grep -q "$(printf '0x%x' "$so")" "$T/tie.out" &&
   grep -q "$(printf '0x%x' "$end")" "$T/tie.out"; then t_ok; else t_fail "exit $trc: $(grep left "$T/tie.out" | head -2)"; fi

# --- item 4: drop only what is gone ---------------------------------------------
# The L1 pointer past EOF and the L1 table itself zeroed: no leaked run has
# its shape, so the entry is dropped, named, and its clusters are leaks.
G=$T/gone.qcow2
cp "$A" "$G"
gl1=$($POKE "$A" 'snapshot[1].l1_table_offset')
$POKE "$G" "u64@$((gl1))" 0
$POKE "$G" 'snapshot[1].l1_table_offset' '|0x40000000'
qemu_side "$G" "$T/ref-three" gone s2
run_check "$G"
verdicts 0=kept 1=dropped 2=kept
t_name "gone: the check names the snapshot that would be dropped and why"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["snapshots"][1]; assert s["name"]=="s2" and "L1 table is gone" in s["repair-detail"], s' "$JSON" && t_ok || t_fail "detail"
gd=$(sha "$G")
run_repair "$G" --undo-file="$T/undo.gone" --salvage-leaks="$T/salvage"
t_name "gone: repair exits 0; s1 and s3 kept with their content; s2 gone"
_ok=1
for n in s1 s3; do raw "$G" "$T/g.raw" "$n" && cmp -s "$T/g.raw" "$T/ref-three/snap-$n.raw" || _ok=0; done
[ "$RRC" = 0 ] && [ $_ok = 1 ] && [ "$(snapshot_names "$G" | tr '\n' ' ')" = "s1 s3 " ] && t_ok ||
	t_fail "exit $RRC, snapshots $(snapshot_names "$G" | tr '\n' ' ')"
t_name "gone: the plan names the dropped snapshot (name, ID, date)"
rjson '[w["summary"] for w in r["plan"] if w["phase"]=="switch"][0]' | grep -q "dropped snapshot 1 (name 's2', ID '2', 20" && t_ok || t_fail "$(rjson 'r["plan"]')"
t_name "gone: its leaked clusters were salvaged before being freed"
[ "$(ls "$T/salvage" 2>/dev/null | wc -l)" -gt 0 ] && t_ok || t_fail "nothing in $T/salvage"
expect_clean "$G" "gone: after repair"
expect_qemu "$G" 0 "(gone: after repair)"
t_name "gone: undo restores the damaged image"
"$QC" undo "$T/undo.gone" "$G" >/dev/null 2>&1 && [ "$(sha "$G")" = "$gd" ] && t_ok || t_fail "undo"

# --- --drop-snapshot -----------------------------------------------------------
D=$T/drop.qcow2
cp "$A" "$D"
t_name "--drop-snapshot=NAME that matches nothing: exit 1, nothing changed"
s0=$(sha "$D")
"$QC" repair --drop-snapshot=nosuch "$D" >/dev/null 2>&1
[ $? = 1 ] && [ "$(sha "$D")" = "$s0" ] && t_ok || t_fail "exit or image changed"
run_repair "$D" --drop-snapshot=s2 --undo-file="$T/undo.drop"
t_name "--drop-snapshot=s2: exit 0, s2 gone, s1 and s3 read as before"
if [ "$RRC" = 0 ] && [ "$(snapshot_names "$D" | tr '\n' ' ')" = "s1 s3 " ]; then
	_ok=1
	for n in s1 s3; do raw "$D" "$T/d.raw" "$n"; cmp -s "$T/d.raw" "$T/ref-three/snap-$n.raw" || _ok=0; done
	[ $_ok = 1 ] && t_ok || t_fail "content"
else
	t_fail "exit $RRC, snapshots $(snapshot_names "$D" | tr '\n' ' ')"
fi
expect_clean "$D" "after --drop-snapshot"
expect_qemu "$D" 0 "(after --drop-snapshot)"
run_repair "$D" --drop-snapshot=1 --undo-file="$T/undo.drop2"
t_name "--drop-snapshot=ID (1): s1 gone"
[ "$RRC" = 0 ] && [ "$(snapshot_names "$D" | tr '\n' ' ')" = "s3 " ] && t_ok || t_fail "exit $RRC: $(snapshot_names "$D")"
expect_clean "$D" "after --drop-snapshot=1"

t_done
