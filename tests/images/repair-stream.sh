#!/bin/sh
# repair-stream.sh - a compressed cluster whose payload does not decompress
# hides no reference (core/problems/policy.def: compressed-stream-* HIDES
# NO): the walk claims the descriptor's clusters from the L2 entry alone,
# before and without --deep, and never parses a payload.  So with one
# corrupt stream and a leak, `check --deep` calls the walk complete and the
# leak harmless, the repair frees the leak, and the corrupt stream is left
# as it was and still reported.  QEMU is blind to the payload (qemu-img
# check is clean); convert cannot read that cluster, so the guest content
# is compared with `digest --force` (the unreadable cluster as zeros) and
# the stream's bytes with cmp.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

mk "$T/src.qcow2" 8M
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 2M' -c 'write -P 0x22 3M 1M' "$T/src.qcow2" >/dev/null
I=$T/img.qcow2
fixture qemu-img convert -c -O qcow2 -o compression_type=zlib "$T/src.qcow2" "$I"

# damage the stream of guest cluster 7, over-count the host cluster of the
# stream of guest cluster 20 (a leak)
e=$($POKE "$I" 'l2[0][7]')
bad=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e >> 62 & 1; print(e & ((1<<54)-1))' "$e")
printf '\377\376\375\374\373\372\371\370' | dd of="$I" bs=1 seek="$bad" conv=notrunc 2>/dev/null
e=$($POKE "$I" 'l2[0][20]')
c=$(python3 -c 'import sys; e=int(sys.argv[1],16); print((e & ((1<<54)-1)) >> 16)' "$e")
$POKE "$I" "refcount[$c]" +1 >/dev/null
dd if="$I" of="$T/stream.before" bs=1 skip="$bad" count=512 2>/dev/null
"$QC_FAST" digest --force --output=json "$I" >"$T/d.before" 2>/dev/null

run_check --deep "$I"
t_name "check --deep: the corrupt stream and the leak are both reported"
codes=$(json_codes | tr '\n' ' ')
if json_codes | grep -qx compressed-stream-invalid && json_codes | grep -qx refcount-leak; then
	t_ok; else t_fail "codes: $codes"; fi
t_name "check --deep: the walk is complete (a payload hides no reference)"
[ "$(json_get walk-complete)" = True ] && t_ok || t_fail "walk-complete $(json_get walk-complete)"
"$QC" check --deep "$I" >"$T/human.out" 2>&1
t_name "check --deep: the leak is called harmless, not possibly in use"
if grep -q 'no harm to data' "$T/human.out" && ! grep -q 'may be in use' "$T/human.out"; then
	t_ok; else t_fail "$(cat "$T/human.out")"; fi

d0=$(sha "$I")
run_repair "$I" --undo-file="$T/undo"
t_name "repair frees the leak (exit 0, leaks fixed)"
if [ "$RRC" = 0 ] && [ "$(rjson 'r["leaks-fixed"]')" -ge 1 ]; then t_ok; else
	t_fail "exit $RRC: $(cat "$RJSON")"; fi

run_check --deep "$I"
t_name "after repair: no leak; the corrupt stream is still reported"
codes=$(json_codes | tr '\n' ' ')
if [ "$(json_get leaks)" = 0 ] && [ "$codes" = "compressed-stream-invalid " ] && [ "$RC" = 2 ]; then
	t_ok; else t_fail "exit $RC, leaks $(json_get leaks), codes: $codes"; fi
expect_qemu "$I" 0 "(after repair; blind to compressed payloads)"
t_name "after repair: the corrupt stream's bytes are unchanged"
dd if="$I" of="$T/stream.after" bs=1 skip="$bad" count=512 2>/dev/null
cmp -s "$T/stream.before" "$T/stream.after" && t_ok || t_fail "stream bytes changed"
t_name "after repair: the guest view is unchanged (digest --force, one unreadable cluster)"
"$QC_FAST" digest --force --output=json "$I" >"$T/d.after" 2>/dev/null
python3 - "$T/d.before" "$T/d.after" <<'PY' && t_ok || t_fail "$(cat "$T/d.before" "$T/d.after")"
import json, sys
a, b = (json.load(open(p))["digests"][0] for p in sys.argv[1:])
assert a["digest"] == b["digest"] and a["unreadable-bytes"] == b["unreadable-bytes"] == 65536, (a, b)
PY
t_name "undo restores the damaged image byte for byte"
if "$QC" undo "$T/undo" "$I" >/dev/null 2>"$T/undo.err" && [ "$(sha "$I")" = "$d0" ]; then
	t_ok; else t_fail "undo: $(cat "$T/undo.err")"; fi

t_done
