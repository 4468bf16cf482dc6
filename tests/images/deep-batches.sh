#!/bin/sh
# deep-batches.sh - --deep's memory does not grow with the number of
# compressed clusters: checker/deepwalk.c hands the descriptors over in
# batches of at most a fixed count (counted here with tests/dcdiff.c -b,
# not timed), every descriptor exactly once, in an order that depends only
# on the image; check --deep verifies the same count qemu-img reports, and
# a damaged stream is reported the same way with 1 and 2 threads.  The
# image has 512-byte clusters and a snapshot, so its L2 tables are many
# and partly shared.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
DCDIFF=${DCDIFF:-$HERE/../../build/tests/dcdiff}

python3 - "$T/guest.raw" <<'PY'
import random, sys
r = random.Random(11)
words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa ".split()
open(sys.argv[1], "wb").write(b" ".join(r.choice(words) for _ in range(2000000))[:8 << 20])
PY
I=$T/img.qcow2
fixture qemu-img convert -c -f raw -O qcow2 -o cluster_size=512,compression_type=zlib "$T/guest.raw" "$I"
fixture qemu-img snapshot -c s1 "$I"
fixture qemu-io -f qcow2 -c 'write -P 0x5a 1M 64k' "$I" >/dev/null
n=$(qemu-img check --output=json "$I" | python3 -c 'import json,sys; print(json.load(sys.stdin)["compressed-clusters"])')

"$DCDIFF" -f 0 "$I" >"$T/all.out" 2>&1
"$DCDIFF" -f 0 -b 1000 "$I" >"$T/b1000.out" 2>&1
"$DCDIFF" -f 0 -b 1 "$I" >"$T/b1.out" 2>&1
t_name "batches of at most 1000 and of 1: every descriptor once, no batch over its bound"
python3 - "$T/all.out" "$T/b1000.out" "$T/b1.out" <<'PY' && t_ok || t_fail "$(cat "$T"/all.out "$T"/b1000.out "$T"/b1.out)"
import re, sys
def batches(p):
    m = re.search(r"(\d+) descriptors in (\d+) batches of at most (\d+), largest (\d+)", open(p).read())
    return [int(x) for x in m.groups()]
a, b, c = (batches(p) for p in sys.argv[1:])
assert a[0] == b[0] == c[0] > 16000, (a, b, c)   # the same descriptors whatever the batch
assert a[1] == 1 and a[3] == a[0]                 # the default batch holds them all here
assert b[3] <= 1000 and b[1] == (b[0] + 999) // 1000, b
assert c[3] == 1 and c[1] == c[0], c
PY

run_check --deep "$I"
t_name "check --deep verifies every compressed cluster (active + snapshot descriptors)"
python3 - "$JSON" "$n" <<'PY' && t_ok || t_fail "$(cat "$JSON")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["exit-code"] == 0 and j["deep-verified"]["zlib"] >= int(sys.argv[2]) > 16000, (j["deep-verified"], sys.argv[2])
PY

# damage two streams; the report is the same with 1 and 2 threads
for k in 5 40; do
	e=$(python3 "$HERE/../poke.py" "$I" "l2[0][$k]")
	off=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e >> 62 & 1; print(e & ((1<<54)-1))' "$e")
	printf '\377\376\375\374' | dd of="$I" bs=1 seek="$off" conv=notrunc 2>/dev/null
done
"$QC" check --deep --jobs=1 --output=json "$I" >"$T/j1.json" 2>/dev/null
"$QC" check --deep --jobs=2 --output=json "$I" >"$T/j2.json" 2>/dev/null
t_name "damaged streams: reported, same report with 1 and 2 threads"
python3 - "$T/j1.json" "$T/j2.json" <<'PY' && t_ok || t_fail "reports differ or miss the damage"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
pa = [(p["code"], p.get("message")) for p in a["problems"]]
pb = [(p["code"], p.get("message")) for p in b["problems"]]
assert pa == pb, (pa, pb)
assert sum(1 for c, _ in pa if c.startswith("compressed-stream")) >= 2, pa
PY

t_done
