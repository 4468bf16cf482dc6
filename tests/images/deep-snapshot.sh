#!/bin/sh
# deep-snapshot.sh - `check --deep` reaches compressed clusters that only
# a snapshot maps, and its record names the snapshot and the guest offset
# at stake.  qemu-img check never decompresses (doc/format.md §9.4): "No
# errors"; reading the active disk still works, reading the snapshot fails
# (qemu-img convert -l), which proves the damage is real.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

mk "$T/src.qcow2" 64M
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 4M 256k' "$T/src.qcow2" >/dev/null
img="$T/snap.qcow2"
fixture qemu-img convert -q -c -O qcow2 "$T/src.qcow2" "$img"
snap "$img" s1
# the active disk rewrites guest cluster 0: only snapshot s1 keeps the
# compressed stream
fixture qemu-io -f qcow2 -c 'write -P 0x99 0 64k' "$img" >/dev/null

t_name "deep clean with a snapshot"
run_check --deep "$img"
[ "$RC" = 0 ] && [ -z "$(json_codes)" ] && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"

e=$($POKE "$img" 'snapl2[0][0][0]')
off=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e>>62&1; print(e & ((1<<54)-1))' "$e")
printf '\336\255\276\357\336\255\276\357' | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null

t_name "plain check is blind"
run_check "$img"
[ "$RC" = 0 ] && t_ok || t_fail "exit $RC"
expect_qemu "$img" 0 "(blind: never decompresses, §9.4)"
t_name "--deep names snapshot 0, guest offset 0"
run_check --deep "$img"
python3 - "$JSON" <<'PY' && [ "$RC" = 2 ] && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"
import json, sys
p = [p for p in json.load(open(sys.argv[1]))["problems"] if p["code"] == "compressed-stream-invalid"]
assert len(p) == 1 and p[0].get("snapshot") == 0 and p[0].get("guest-offset") == 0, p
PY
t_name "active disk still reads"
qemu-img convert -f qcow2 -O raw "$img" "$T/a.raw" >/dev/null 2>&1 && t_ok || t_fail "convert failed"
t_name "snapshot read fails (EIO)"
qemu-img convert -f qcow2 -O raw -l snapshot.name=s1 "$img" "$T/s.raw" >/dev/null 2>&1 && t_fail "convert worked" || t_ok
t_done
