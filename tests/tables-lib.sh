# tables-lib.sh - what the table repair tests (tests/images/repair-tables-*.sh)
# share; sourcing it sources lib.sh, factory.sh and repair-lib.sh first.
#
# tables_fixture [-c 'qemu-io command']...: $P = the usual repair fixture
# (repair-lib.sh pristine, plus the commands), its guest content saved in
# $T/ref.  CS = the cluster size (guest sizes below are in bytes).
#
# tables_case LABEL CODE FIELD VALUE DAMAGED-RANGE...: copy the fixture $P,
# poke one field, print what `qemu-img check -r all` does to a copy, then:
# check reports CODE; repair exits 0; both checkers clean; the active layer
# compared with $T/ref cluster by cluster (tests/cmp-clusters.py: clusters
# in the damaged ranges may read zeros, never other data); every snapshot
# unchanged; a second repair plans nothing; undo restores the damage.
#
# The steps every case of these tests takes on the damaged image $I:
#   tables_repair LABEL [PLAN-EXPR]  records the damaged bytes, repairs with
#                                    an undo file: exits 0; prints the plan
#                                    (rjson PLAN-EXPR, default the write
#                                    summaries); both checkers clean after
#   tables_settled LABEL             a second repair plans nothing; undo
#                                    restores the damaged image
#
# Small helpers: hexor A B (A | B, in hex; A and B decimal or 0x hex);
# cluster_sum IMG OFF (sha256 of the cluster at host offset OFF, decimal).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

CS=65536

hexor() { python3 -c 'import sys; print(hex(int(sys.argv[1], 0) | int(sys.argv[2], 0)))' "$1" "$2"; }

cluster_sum() {
	python3 -c 'import sys,hashlib; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); print(hashlib.sha256(f.read(65536)).hexdigest())' "$1" "$2"
}

tables_fixture() {
	P=$T/pristine.qcow2
	pristine "$P" "$@"
	guest_save "$P" "$T/ref"
}

tables_repair() {
	_d=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo.$1"
	cp "$RJSON" "$T/repair1.$1.json"
	t_name "$1: repair exits 0"
	[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC: $(rjson 'r["left"]' 2>&1)"
	_pe=${2:-'[w["summary"] for w in r["plan"]]'}
	echo "$1: plan: $(rjson "$_pe")"
	expect_clean "$I" "$1: after repair"
	expect_qemu "$I" 0 "($1: after repair)"
}

tables_settled() {
	_r=$(sha "$I")
	run_repair "$I" --undo-file="$T/undo2.$1"
	t_name "$1: a second repair plans nothing"
	[ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$_r" ] &&
		t_ok || t_fail "exit $RRC plan $(rjson 'r["plan"][:3]')"
	t_name "$1: undo restores the damaged image byte for byte"
	"$QC" undo "$T/undo.$1" "$I" >/dev/null 2>&1 && [ "$(sha "$I")" = "$_d" ] && t_ok || t_fail undo
}

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
	tables_repair "$_l"
	t_name "$_l: undamaged guest clusters unchanged; damaged ones read old content or zeros"
	raw "$I" "$T/$_l.raw"
	python3 "$HERE/../cmp-clusters.py" "$T/ref/active.raw" "$T/$_l.raw" $CS "$@" && t_ok || t_fail "guest content"
	for s in $(snapshot_names "$I"); do
		t_name "$_l: snapshot $s unchanged"
		raw "$I" "$T/$_l.$s.raw" "$s"
		cmp -s "$T/$_l.$s.raw" "$T/ref/snap-$s.raw" && t_ok || t_fail "snapshot $s differs"
	done
	tables_settled "$_l"
}
