#!/bin/sh
# repair-tables-overwritten.sh - an active L2 table overwritten by other
# content (doc/repair.md "Overwritten L2 tables"): zeros, a refblock's
# content, random bytes (a fixed seed).  What the content still proves is
# kept (a table of zeros already reads zeros; valid entries stay), every
# entry no correction explains is dropped (the guest cluster reads zeros),
# never "restored" onto an orphan: random values with their high bits
# cleared name random clusters of the file, and the table's old data
# clusters are orphans.  Each case: check -> repair exits 0 -> both checkers
# clean; every guest cluster of the active layer reads its old content or
# zeros (tests/cmp-clusters.py over the table's whole range), never another
# cluster's data; snapshot s1 unchanged; the table's old data clusters keep
# their content (leaks, lowered, not discarded); a second repair plans
# nothing; undo restores the damaged bytes.  `qemu-img check -r all` on the
# same damage is printed for comparison.
. "$(dirname "$0")/../tables-lib.sh"

tables_fixture
tbl=$(entry_off "$P" 'l1[0]')
rb=$(entry_off "$P" 'reftable[0]')
# the active layer's data at 3M (written after the snapshot: refcount 1)
d3=$(entry_off "$P" 'l2[0][48]')
d3sum=$(cluster_sum "$P" "$d3")

# overwrite IMG KIND: the active L2 table's cluster gets KIND's content
overwrite() {
	python3 - "$1" "$tbl" "$2" "$rb" <<'EOF'
import random, sys
img, tbl, kind, rb = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(img, "r+b") as f:
    if kind == "zeros":
        data = bytes(65536)
    elif kind == "random":
        r = random.Random(12)
        data = bytes(r.getrandbits(8) for _ in range(65536))
    else:
        f.seek(rb)
        data = f.read(65536)
    f.seek(tbl)
    f.write(data)
EOF
}

for kind in zeros refblock random; do
	I=$T/$kind.qcow2
	cp "$P" "$I"
	overwrite "$I" $kind
	qemu_repair_all "$I" "$kind"
	run_check "$I"
	t_name "$kind: check finds the damage"
	[ "$RC" != 0 ] && t_ok || t_fail "check exit $RC"
	tables_repair "$kind" '"%d write(s), %s" % (len(r["plan"]), sorted({w["code"] for w in r["plan"]}))'
	t_name "$kind: every guest cluster reads its old content or zeros"
	raw "$I" "$T/$kind.raw"
	python3 "$HERE/../cmp-clusters.py" "$T/ref/active.raw" "$T/$kind.raw" $CS 0:0x1000000 && t_ok || t_fail "guest content"
	t_name "$kind: snapshot s1 unchanged"
	raw "$I" "$T/$kind.s1.raw" s1
	cmp -s "$T/$kind.s1.raw" "$T/ref/snap-s1.raw" && t_ok || t_fail "snapshot s1 differs"
	t_name "$kind: the table's old data cluster at 3M keeps its content"
	[ "$(cluster_sum "$I" "$d3")" = "$d3sum" ] &&
		t_ok || t_fail "content at $d3 changed"
	tables_settled "$kind"
done
t_name "random: no entry of the overwritten table was restored (every write drops)"
I=$T/random.qcow2
run_repair "$I" --dry-run
[ "$(rjson "all(w['code'].startswith('refcount') or 'dropped' in w['summary'] for w in r['plan'])")" = True ] &&
	t_ok || t_fail "$(rjson "[w['summary'] for w in r['plan'] if 'dropped' not in w['summary']][:5]")"
t_done
