# tables-lib.sh - the repair cycle of the table repair tests
# (tests/images/repair-tables-*.sh; sourced after repair-lib.sh):
#
# tables_case LABEL CODE FIELD VALUE DAMAGED-RANGE...: copy the fixture $P,
# poke one field, print what `qemu-img check -r all` does to a copy, then:
# check reports CODE; repair exits 0; both checkers clean; the active layer
# compared with $T/ref cluster by cluster (tests/cmp-clusters.py: clusters
# in the damaged ranges may read zeros, never other data); every snapshot
# unchanged; a second repair plans nothing; undo restores the damage.
# Guest sizes in bytes: CS (cluster size) must be set.
tables_case() {
	_l=$1 _c=$2 _f=$3 _v=$4; shift 4
	I=$T/$_l.qcow2
	cp "$P" "$I"
	python3 "$HERE/../poke.py" "$I" "$_f" "$_v"
	tables_cycle "$_l" "$_c" "$@"
}

# tables_cycle LABEL CODE DAMAGED-RANGE...: the cycle of tables_case on the
# damaged image $I (poked by the caller: several damages at once, say);
# the first repair's JSON is kept in $T/repair1.LABEL.json.
tables_cycle() {
	_l=$1 _c=$2; shift 2
	qemu_repair_all "$I" "$_l"
	run_check "$I"
	t_name "$_l: check reports $_c"
	json_codes | grep -qx "$_c" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ')"
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$_l"
	cp "$RJSON" "$T/repair1.$_l.json"
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
