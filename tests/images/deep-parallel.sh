#!/bin/sh
# deep-parallel.sh - `check --deep` on all cores (--jobs): the report is the
# same, problem for problem and in the same order, with 1, 2 and 5 threads;
# the JSON says "deep": true with the clusters verified per algorithm (equal
# to the compressed clusters qemu-img map sees), the summary line says it
# too, and no progress reaches stderr when it is not a terminal.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

for ct in zlib zstd; do
	mk "$T/src.qcow2" 32M
	fixture_try qemu-io -f qcow2 -c 'write -P 0x11 0 8M' -c 'write -P 0x22 12M 4M' -c 'write -P 0x33 30M 2M' \
		"$T/src.qcow2" >/dev/null || continue
	img="$T/c-$ct.qcow2"
	fixture_try qemu-img convert -c -O qcow2 -o compression_type=$ct "$T/src.qcow2" "$img" || continue
	# the expected count comes from qemu-img on the fresh image: a part of the fixture
	fixture_try qemu-img check --output=json "$img" >"$T/qc.json" || continue
	ncomp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["compressed-clusters"])' "$T/qc.json")
	run_check --deep "$img"
	t_name "$ct: deep-verified counts every compressed cluster"
	python3 - "$JSON" "$ct" "$ncomp" <<'PY' && t_ok || t_fail "$(grep -A3 deep "$JSON")"
import json, sys
j = json.load(open(sys.argv[1]))
other = "zstd" if sys.argv[2] == "zlib" else "zlib"
assert j["deep"] is True and j["exit-code"] == 0
assert j["deep-verified"][sys.argv[2]] == int(sys.argv[3]) > 100, j["deep-verified"]
assert j["deep-verified"][other] == 0
PY
	# damage five streams spread over the file (each descriptor's first 8 bytes)
	for k in 3 40 100 200 490; do
		e=$($POKE "$img" "l2[0][$k]")
		off=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e >> 62 & 1; print(e & ((1<<54)-1))' "$e")
		printf '\377\376\375\374\373\372\371\370' | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null
	done
	for j in 1 2 5; do
		"$QC" check --deep --jobs=$j --output=json "$img" >"$T/j$j.json" 2>"$T/j$j.err"
		echo $? >"$T/j$j.rc"
	done
	t_name "$ct: same report with --jobs=1, 2, 5"
	python3 - "$T/j1.json" "$T/j2.json" "$T/j5.json" <<'PY' && t_ok || t_fail "reports differ"
import json, sys
r = [json.load(open(p)) for p in sys.argv[1:]]
p = [[(x["code"], x["offset"], x.get("guest-offset"), x["message"]) for x in j["problems"]] for j in r]
assert len(p[0]) == 5, p[0]
assert p[0] == p[1] == p[2]
assert [j["exit-code"] for j in r] == [2, 2, 2]
assert r[0]["deep-verified"] == r[1]["deep-verified"] == r[2]["deep-verified"]
PY
	t_name "$ct: no progress on stderr when it is not a terminal"
	if [ ! -s "$T/j1.err" ] && [ ! -s "$T/j2.err" ]; then t_ok; else t_fail "$(cat "$T/j2.err")"; fi
	t_name "$ct: summary line"
	"$QC" check --deep "$img" 2>/dev/null | grep -q "^Deep check: [0-9]* zlib and [0-9]* zstd compressed clusters decompressed" && t_ok || t_fail "no summary line"
	t_name "$ct: --progress prints plain lines"
	"$QC" check --deep --progress -q "$img" 2>"$T/p.err"
	if grep -q '^deep: .* / .*ETA' "$T/p.err"; then t_ok; else t_fail "$(cat "$T/p.err")"; fi
done
t_done
