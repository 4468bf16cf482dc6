#!/bin/sh
# repair-overflow.sh - refcount overflow: two active L2 entries share one
# data cluster in an image with 1-bit refcounts, so the cluster has 2
# references where at most 1 can be stored.  The width does not allow a
# fix: the refcount stays, the plan says why (widen with qemu-img amend),
# the only safe change (clearing OFLAG_COPIED on the shared cluster) is
# made, the cluster entry 1 used to point to (now orphaned) is lowered to
# refcount 0 with its content kept, and the exit code says corruption
# remains.  qemu-img reports
# "overflow" and cannot fix it either (doc/format.md §9.2).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

I=$T/ovf.qcow2
mk "$I" 16M refcount_bits=1
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 64k 64k' "$I" >/dev/null
python3 "$HERE/../poke.py" "$I" 'l2[0][1]' "$(python3 "$HERE/../poke.py" "$I" 'l2[0][0]')"
expect_code "$I" refcount-overflow 2 corruption
qemu_repair_all "$I" overflow
t_name "overflow: qemu-img check -r all cannot fix it"
[ "$QRRC" = 2 ] && t_ok || t_fail "exit $QRRC"
guest_save "$I" "$T/ref"
d=$(sha "$I")
run_repair "$I" --undo-file="$T/undo.ovf"
t_name "overflow: left with the reason, exit 2"
if [ "$RRC" = 2 ] && [ "$(rjson 'any(l["code"]=="refcount-overflow" and "amend" in l["reason"] for l in r["left"])')" = True ]; then
	t_ok; else t_fail "exit $RRC left $(rjson 'r["left"]')"; fi
t_name "overflow: OFLAG_COPIED cleared on the two shared entries, the orphan's leak fixed, the overflowing refcount untouched"
[ "$(rjson 'sorted({w["code"] for w in r["plan"]})')" = "['l2-copied-spurious', 'refcount-leak']" ] &&
	[ "$(python3 "$HERE/../poke.py" "$I" 'refcount[5]')" = 0x1 ] && t_ok || t_fail "plan $(rjson 'r["plan"]')"
t_name "overflow: the orphaned cluster keeps its content"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.exit(0 if d[0x60000:0x70000]==b"\x22"*65536 else 1)' "$I" && t_ok || t_fail "changed"
run_check "$I"
t_name "overflow: the re-check reports only the overflow"
[ "$(json_codes | tr '\n' ' ')" = "refcount-overflow " ] && t_ok || t_fail "$(json_codes | tr '\n' ' ')"
guest_same "$I" "$T/ref" overflow
"$QC" undo "$T/undo.ovf" "$I" >/dev/null
t_name "overflow: undo restores"
[ "$(sha "$I")" = "$d" ] && t_ok || t_fail "differs"
t_done
