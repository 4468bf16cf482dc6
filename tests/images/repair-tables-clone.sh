#!/bin/sh
# repair-tables-clone.sh - two claims on one cluster (doc/repair.md "Two
# claims"): two active L2 entries naming one data cluster, two active L1
# entries naming one L2 table, the stored refcount 1.  Which claim is real
# cannot be told, so neither is dropped: every claimant but the first gets
# its own copy past the end of the file.  Each case: check reports
# refcount-too-low -> repair exits 0 -> both checkers clean; the guest reads
# exactly what it read before the repair in every range (both claimants
# included), every snapshot unchanged; the two claimants now name different
# clusters; the cluster the moved claimant named before the damage (a leak)
# keeps its content; the plan names both guest ranges, and so does the undo
# journal's summary (`undo --dry-run`); a second repair plans nothing; undo
# restores the damaged bytes.
#
# qemu-img check -r all on the same damage (QEMU 7.2 measured): it raises
# the refcount to 2 and clears OFLAG_COPIED, so the two guest ranges share
# one cluster from then on, and it frees the leaked cluster with a discard:
# the moved range's older content is gone from the file (printed below).
. "$(dirname "$0")/../tables-lib.sh"

# clone_case LABEL KEPT-FIELD MOVED-FIELD KEPT-GUEST MOVED-GUEST: copy $P,
# point MOVED-FIELD at what KEPT-FIELD points at (flags kept), and run the
# cycle above.  The guest offsets (hex) must both appear in the plan.
clone_case() {
	_l=$1 _k=$2 _m=$3 _kg=$4 _mg=$5
	I=$T/$_l.qcow2
	cp "$P" "$I"
	_old=$(entry_off "$I" "$_m")
	_oldsum=$(cluster_sum "$I" "$_old")
	python3 "$HERE/../poke.py" "$I" "$_m" "$(python3 "$HERE/../poke.py" "$I" "$_k")"
	rm -rf "$T/dmg"; guest_save "$I" "$T/dmg"
	qemu_repair_all "$I" "$_l"
	echo "$_l: after qemu-img check -r all the two fields name $(entry_off "$QIMG" "$_k") and $(entry_off "$QIMG" "$_m"); the moved range's older cluster $(
		[ "$(cluster_sum "$QIMG" "$_old")" = "$_oldsum" ] && echo "kept its content" || echo "lost its content (discarded)")"
	run_check "$I"
	t_name "$_l: check reports refcount-too-low"
	json_codes | grep -qx refcount-too-low && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ')"
	tables_repair "$_l"
	guest_same "$I" "$T/dmg" "$_l"
	t_name "$_l: the two claimants name different clusters"
	_a=$(entry_off "$I" "$_k") _b=$(entry_off "$I" "$_m")
	[ "$_a" != "$_b" ] && t_ok || t_fail "both name $_a"
	t_name "$_l: the kept claimant still names its cluster"
	[ "$_a" = "$(entry_off "$P" "$_k")" ] && t_ok || t_fail "kept claimant moved to $_a"
	t_name "$_l: the moved range's older cluster keeps its content"
	[ "$(cluster_sum "$I" "$_old")" = "$_oldsum" ] && t_ok || t_fail "content at $_old changed"
	t_name "$_l: the plan names both guest ranges"
	_sum=$(rjson '"\n".join(w["summary"] for w in r["plan"])')
	case $_sum in *"guest $_kg"*) _named=1 ;; *) _named=0 ;; esac
	[ "$_named" = 1 ] &&
		[ "$(rjson "any(w.get('guest-offset') == $_mg for w in r['plan'])")" = True ] &&
		t_ok || t_fail "plan: $(rjson 'r["plan"]')"
	# the journal's summary (version 2) names both ranges too, for later
	t_name "$_l: undo --dry-run prints the journal's summary naming both guest ranges"
	_mgx=$(printf '0x%x' "$_mg")
	"$QC" undo --dry-run "$T/undo.$_l" "$I" >"$T/dry-undo.$_l" 2>&1
	if grep -q "guest $_kg" "$T/dry-undo.$_l" && grep -q "(guest $_mgx+" "$T/dry-undo.$_l"; then
		t_ok
	else
		t_fail "undo --dry-run: $(cat "$T/dry-undo.$_l")"
	fi
	tables_settled "$_l"
}

# Two data entries: guest 3M and 4M are active-only (refcount 1); 4M is
# pointed at 3M's cluster.  Snapshot s1 shares the rest and is unchanged.
P=$T/pristine.qcow2
pristine "$P" -c 'write -P 0x77 4M 64k'
clone_case data 'l2[0][48]' 'l2[0][64]' 0x300000 4194304

# Two L1 entries: a 2 GiB image, L1 entry 1 (guest 512M..1G) pointed at
# entry 0's L2 table.  The table is copied with the data clusters it names,
# so the two ranges share nothing and a guest write to one leaves the other
# (and OFLAG_COPIED in both tables) right.
P=$T/big.qcow2
mk "$P" 2G
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 64k' \
	-c 'write -P 0x33 512M 64k' -c 'write -P 0x44 1G 64k' "$P" >/dev/null
clone_case l1 'l1[0]' 'l1[1]' 0x0 536870912
t_name "l1: the copied table names its own data clusters, with OFLAG_COPIED"
I=$T/l1.qcow2
run_repair "$I" --undo-file="$T/undo3.l1"
[ "$(entry_off "$I" 'l2[0][0]')" != "$(entry_off "$I" 'l2[1][0]')" ] &&
	[ "$(entry_off "$I" 'l2[0][16]')" != "$(entry_off "$I" 'l2[1][16]')" ] &&
	[ "$(python3 "$HERE/../poke.py" "$I" 'l2[1][0]' | cut -c1-3)" = 0x8 ] &&
	t_ok || t_fail "l2[0][0] $(python3 "$HERE/../poke.py" "$I" 'l2[0][0]') l2[1][0] $(python3 "$HERE/../poke.py" "$I" 'l2[1][0]')"
t_name "l1: a guest write to the moved range leaves the kept range as it was"
fixture qemu-io -f qcow2 -c 'write -P 0x99 512M 64k' "$I" >/dev/null
raw "$I" "$T/l1.after-write.raw"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.exit(0 if d[0:65536]==b"\x11"*65536 and d[512<<20:(512<<20)+65536]==b"\x99"*65536 else 1)' "$T/l1.after-write.raw" && t_ok || t_fail "the ranges still share"
expect_clean "$I" "l1: after a guest write"

# Extended L2 entries (16 bytes): the moved entry keeps its subcluster bitmap.
P=$T/ext.qcow2
if mk "$P" 16M extended_l2=on,cluster_size=64k &&
   qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x66 3M 32k' -c 'write -P 0x77 4M 64k' "$P" >/dev/null 2>&1; then
	clone_case ext-data 'l2[0][48]' 'l2[0][64]' 0x300000 4194304
else
	echo "fixture: extended_l2 image could not be made: extended L2 case skipped"
fi

t_done
