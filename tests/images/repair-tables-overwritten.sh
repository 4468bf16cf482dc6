#!/bin/sh
# repair-tables-overwritten.sh - an active L2 table overwritten by other
# content (doc/repair.md "Overwritten L2 tables"): zeros, a refblock's
# content, random bytes (a fixed seed).  What the content still proves is
# kept (a table of zeros already reads zeros; valid entries stay), every
# entry no correction explains is dropped (the guest cluster reads zeros),
# never "restored" onto an orphan: random values with their high bits
# cleared name random clusters of the file, and the table's old data
# clusters are orphans.  An entry the overwritten table lost whose guest
# cluster snapshot s1 still maps, at the same L1 and L2 index, to a data
# cluster whose stored refcount counts one reference more than the walk
# finds (the active entry was the one sharing it) is restored to share that
# cluster: the guest reads that cluster's content as of the snapshot, which
# is the same guest cluster's data, never another's; the test checks every
# restored entry names exactly the cluster s1 maps there.  The refblock case
# uses the refblock of a larger image (enough counts to be judged
# overwritten); the small image's own refblock is mostly zeros and is left
# to the entry rules.  Each case: check -> repair exits 0 -> both checkers
# clean; every guest cluster of the active layer reads its old content or
# zeros (tests/cmp-clusters.py over the table's whole range), never another
# cluster's data; snapshot s1 unchanged; the table's old data clusters keep
# their content (leaks, lowered, not discarded); a second repair plans
# nothing; undo restores the damaged bytes.  `qemu-img check -r all` on the
# same damage is printed for comparison.
. "$(dirname "$0")/../tables-lib.sh"

# 5M is rewritten after s1: the active layer has its own cluster there, and
# s1's older one has refcount 1 (no reference missing: never restored)
tables_fixture -c 'write -P 0x5a 5M 4k'
tbl=$(entry_off "$P" 'l1[0]')
rb=$(entry_off "$P" 'reftable[0]')
# the active layer's data at 3M (written after the snapshot: refcount 1)
d3=$(entry_off "$P" 'l2[0][48]')
d3sum=$(cluster_sum "$P" "$d3")

# overwrite IMG KIND: the active L2 table's cluster gets KIND's content
overwrite() {
	python3 - "$1" "$tbl" "$2" "$rb" "$bigrb" <<'EOF'
import random, sys
img, tbl, kind, rb = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open(img, "r+b") as f:
    if kind == "zeros":
        data = bytes(65536)
    elif kind == "bigrefblock":
        data = open(sys.argv[5], "rb").read()
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

# a larger image's refblock: 16-bit counts of ~80 clusters, read as L2
# entries they are past the end of the file or carry reserved bits
B=$T/bigrb.qcow2
mk "$B" 64M
fixture qemu-io -f qcow2 -c 'write -P 0x55 0 5M' "$B" >/dev/null
bigrb=$T/bigrb.bin
python3 - "$B" "$(entry_off "$B" 'reftable[0]')" "$bigrb" <<'EOF2'
import sys
with open(sys.argv[1], "rb") as f:
    f.seek(int(sys.argv[2])); d = f.read(65536)
open(sys.argv[3], "wb").write(d)
EOF2

# restored_ok IMG JSON: every restored entry of the plan names the cluster
# snapshot s1 maps at the same guest offset (L1 index 0: the first 512 MiB)
restored_ok() {
	python3 - "$2" "$HERE/../poke.py" "$1" <<'EOF2'
import json, subprocess, sys
r = json.load(open(sys.argv[1]))
bad = 0
n = 0
for w in r["plan"]:
    if "restored to" not in w["summary"]:
        continue
    n += 1
    x = int(w["summary"].split("restored to ")[1].split(",")[0], 16)
    k = w["guest-offset"] // 65536
    s = int(subprocess.check_output(["python3", sys.argv[2], sys.argv[3], "snapl2[0][0][%d]" % k]), 16)
    if s & 0x00fffffffffffe00 != x:
        print("guest %#x restored to %#x, s1 maps %#x" % (w["guest-offset"], x, s))
        bad += 1
print("%d entries restored from s1" % n)
sys.exit(1 if bad else 0)
EOF2
}

for kind in zeros refblock bigrefblock random; do
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
	t_name "$kind: every restored entry names the cluster s1 maps at that guest offset"
	restored_ok "$I" "$RJSON" && t_ok || t_fail "an entry restored onto another cluster"
	t_name "$kind: snapshot s1 unchanged"
	raw "$I" "$T/$kind.s1.raw" s1
	cmp -s "$T/$kind.s1.raw" "$T/ref/snap-s1.raw" && t_ok || t_fail "snapshot s1 differs"
	t_name "$kind: the table's old data cluster at 3M keeps its content"
	[ "$(cluster_sum "$I" "$d3")" = "$d3sum" ] &&
		t_ok || t_fail "content at $d3 changed"
	tables_settled "$kind"
done
for kind in bigrefblock random; do
	I=$T/$kind.qcow2
	run_repair "$I" --dry-run
	t_name "$kind: no entry restored onto an orphan: every write drops, or shares s1's cluster"
	[ "$(rjson "all(w['code'].startswith('refcount') or 'dropped' in w['summary'] or 'shared with snapshot' in w['summary'] for w in r['plan'])")" = True ] &&
		t_ok || t_fail "$(rjson "[w['summary'] for w in r['plan'] if 'dropped' not in w['summary']][:5]")"
	# the clusters s1 shares (0, 1M..1M+192k) read their old content
	# again; 3M (active only, written after s1: no copy proves it), 5M
	# (rewritten after s1: s1's older cluster there has refcount 1, no
	# reference missing, so the snapshot's stale content is not shown) and
	# 8M (compressed: a compressed cluster's host clusters are shared by
	# several descriptors, so a missing reference does not say whose) read
	# zeros
	t_name "$kind: s1's shared clusters restored, the active-only and compressed ones read zeros"
	python3 - "$T/ref/active.raw" "$T/$kind.raw" "$kind" <<'EOF2' && t_ok || t_fail "guest content"
import sys
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
cs = 65536
def same(off): return a[off:off + cs] == b[off:off + cs]
def zero(off): return b[off:off + cs] == bytes(cs)
restored = [0, 1 << 20, (1 << 20) + cs, (1 << 20) + 2 * cs]
zeros = [3 << 20, 5 << 20, 8 << 20]
sys.exit(0 if all(same(o) for o in restored) and all(zero(o) for o in zeros) else 1)
EOF2
done
t_done
