#!/bin/sh
# digest.sh - `qcow2fsck digest` (doc/digest.md): the tree digest of an
# image equals that of its qemu-img convert copies (4 KiB, 2 MiB and
# extended-L2 clusters, zlib and zstd compressed), of a raw copy
# (digest --raw) and of tests/digest_ref.py on the raw bytes; --flat equals
# `qemu-img convert -O raw | sha256sum`; snapshots (--all, --snapshot=ID
# and NAME) equal `convert -l snapshot.name=`; one flipped data byte
# changes the digest; corruption is refused (exit 2) unless --force, which
# marks the output; encrypted images and external data files are refused;
# a layer over a backing file is digested alone and the JSON says so;
# blocks hashed in pairs (SHA extensions) give what libcrypto alone gives;
# progress never appears on stderr when it is not a terminal.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
REF="python3 $HERE/../digest_ref.py"

# hexof CMD...: the first field of the first line CMD prints
hexof() { "$@" 2>"$T/dg.err" | head -n 1 | cut -d' ' -f1; }
no_sanitizer() {
	if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/dg.err"; then
		t_fail "sanitizer report"; cat "$T/dg.err" >&2; return 1
	fi
	return 0
}
# same LABEL A B
same() {
	t_name "$1"
	no_sanitizer || return
	if [ -n "$2" ] && [ "$2" = "$3" ]; then t_ok; else t_fail "'$2' != '$3'"; fi
}

# A raw guest image of 70 MiB + 512 bytes (last block short): random data,
# a long zero run, a repeated pattern and data again.
python3 - "$T/src.raw" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(3 << 20))
    f.write(bytes(20 << 20))
    f.write(b"\xa5" * (1 << 20) + os.urandom(12345))
    f.truncate((70 << 20) + 512)
    f.seek(60 << 20); f.write(os.urandom(5 << 20))
    f.seek((70 << 20) - 1000); f.write(os.urandom(1512))
PY
fixture qemu-img convert -f raw -O qcow2 "$T/src.raw" "$T/a.qcow2"
want=$($REF "$T/src.raw" | cut -d' ' -f1)

same "python reference = digest --raw" "$want" "$(hexof "$QC" digest --raw "$T/src.raw")"
same "image = raw" "$want" "$(hexof "$QC" digest "$T/a.qcow2")"
same "--jobs=1 = --jobs=3" "$(hexof "$QC" digest --jobs=1 "$T/a.qcow2")" "$(hexof "$QC" digest --jobs=3 "$T/a.qcow2")"
for v in "cluster_size=4096" "cluster_size=2M" "extended_l2=on,cluster_size=128k" \
	 "cluster_size=512"; do
	fixture_try qemu-img convert -O qcow2 -o "$v" "$T/a.qcow2" "$T/v.qcow2" || continue
	same "convert -o $v" "$want" "$(hexof "$QC" digest "$T/v.qcow2")"
done
for v in "compression_type=zlib" "compression_type=zstd" "compression_type=zstd,cluster_size=2M" \
	 "compression_type=zlib,cluster_size=4096"; do
	fixture_try qemu-img convert -c -O qcow2 -o "$v" "$T/a.qcow2" "$T/c.qcow2" || continue
	same "convert -c -o $v" "$want" "$(hexof "$QC" digest "$T/c.qcow2")"
done
same "raw copy of the compressed image" "$want" \
	"$(qemu-img convert -O raw "$T/c.qcow2" "$T/back.raw" && hexof "$QC" digest --raw "$T/back.raw")"

# --flat = qemu-img convert -O raw | sha256sum (on the image and on --raw)
qemu-img convert -O raw "$T/a.qcow2" "$T/a.raw"
flat=$(sha256sum "$T/a.raw" | cut -d' ' -f1)
same "--flat = convert -O raw | sha256sum" "$flat" "$(hexof "$QC" digest --flat "$T/a.qcow2")"
same "--flat of a zstd copy" "$flat" "$(hexof "$QC" digest --flat "$T/c.qcow2")"
same "--raw --flat = sha256sum" "$flat" "$(hexof "$QC" digest --raw --flat "$T/a.raw")"

# Extended L2 with partly allocated and zeroed subclusters, zero clusters
# (v3 zero flag) and discarded ranges: the guest view as QEMU reads it.
mk "$T/x.qcow2" 9M extended_l2=on,cluster_size=64k
fixture qemu-io -f qcow2 -c 'write -P 0x61 4k 6k' -c 'write -P 0x62 70k 2k' -c 'write -z 8k 2k' \
	-c 'write -P 0x63 1M 1M' -c 'write -z 1280k 4k' -c 'write -P 0x64 9200k 16k' "$T/x.qcow2" >/dev/null
qemu-img convert -O raw "$T/x.qcow2" "$T/x.raw"
same "extended L2 subclusters" "$($REF "$T/x.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest "$T/x.qcow2")"
mk "$T/z.qcow2" 8M
fixture qemu-io -f qcow2 -c 'write -P 0x71 0 4M' -c 'write -z 64k 192k' -c 'discard 1M 64k' \
	-c 'write -z -u 2M 128k' "$T/z.qcow2" >/dev/null
qemu-img convert -O raw "$T/z.qcow2" "$T/z.raw"
same "zero clusters and discards" "$($REF "$T/z.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest "$T/z.qcow2")"

# A sparse raw file: holes are not read but hash as zeros.
truncate -s 1G "$T/sparse.raw"
printf 'hello' | dd of="$T/sparse.raw" bs=1 seek=700000000 conv=notrunc 2>/dev/null
same "sparse raw file" "$($REF "$T/sparse.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest --raw "$T/sparse.raw")"

# Full stored blocks are hashed two at a time with the SHA extensions where
# the CPU has them (core/sha256x2.c); QCOW2FSCK_NO_SHA_PAIRS=1 hashes each
# with libcrypto alone.  The same digests either way, with odd and even
# runs of stored blocks, short blocks and zero blocks between them (the
# python reference above already checks the default path's answers).
for n in a x z; do
	same "$n: blocks in pairs = libcrypto alone" \
		"$(QCOW2FSCK_NO_SHA_PAIRS=1 hexof "$QC" digest --jobs=2 "$T/$n.qcow2")" \
		"$(hexof "$QC" digest --jobs=2 "$T/$n.qcow2")"
done
same "sparse raw: blocks in pairs = libcrypto alone" \
	"$(QCOW2FSCK_NO_SHA_PAIRS=1 hexof "$QC" digest --raw "$T/sparse.raw")" \
	"$(hexof "$QC" digest --raw "$T/sparse.raw")"

# Snapshots: --all, --snapshot=NAME and =ID equal convert -l snapshot.name=
cp "$T/a.qcow2" "$T/s.qcow2"
snap "$T/s.qcow2" first
fixture qemu-io -f qcow2 -c 'write -P 0x55 0 128k' -c 'write -P 0x56 30M 64k' "$T/s.qcow2" >/dev/null
snap "$T/s.qcow2" second
fixture qemu-io -f qcow2 -c 'write -P 0x57 64M 64k' "$T/s.qcow2" >/dev/null
qemu-img convert -O raw "$T/s.qcow2" "$T/s0.raw"
qemu-img convert -l snapshot.name=second -O raw "$T/s.qcow2" "$T/s2.raw"
"$QC" digest --all "$T/s.qcow2" >"$T/all.out" 2>"$T/dg.err"
t_name "--all prints NAME and NAME@SNAPSHOT lines"
if [ "$(cut -d' ' -f3 "$T/all.out" | tr '\n' ' ')" = "$T/s.qcow2 $T/s.qcow2@first $T/s.qcow2@second " ]; then t_ok; else t_fail "$(cat "$T/all.out")"; fi
same "--all: active layer" "$($REF "$T/s0.raw" | cut -d' ' -f1)" "$(sed -n 1p "$T/all.out" | cut -d' ' -f1)"
same "--all: snapshot first" "$want" "$(sed -n 2p "$T/all.out" | cut -d' ' -f1)"
same "--all: snapshot second" "$($REF "$T/s2.raw" | cut -d' ' -f1)" "$(sed -n 3p "$T/all.out" | cut -d' ' -f1)"
same "--snapshot=NAME" "$($REF "$T/s2.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest --snapshot=second "$T/s.qcow2")"
same "--snapshot=ID" "$want" "$(hexof "$QC" digest --snapshot=1 "$T/s.qcow2")"
same "--snapshot --flat" "$(sha256sum "$T/s2.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest --flat --snapshot=second "$T/s.qcow2")"
# A snapshot taken before the image grew: read as convert -l reads it
mk "$T/rs.qcow2" 10M
fixture qemu-io -f qcow2 -c 'write -P 0x31 0 10M' "$T/rs.qcow2" >/dev/null
snap "$T/rs.qcow2" small
# (older QEMU cannot resize an image with snapshots: a fixture failure)
if fixture_try qemu-img resize -q "$T/rs.qcow2" 20M &&
   fixture_try qemu-io -f qcow2 -c 'write -P 0x32 15M 1M' "$T/rs.qcow2" >/dev/null; then
	qemu-img convert -l snapshot.name=small -O raw "$T/rs.qcow2" "$T/rs.raw"
	same "snapshot older than a resize = convert -l" "$($REF "$T/rs.raw" | cut -d' ' -f1)" \
		"$(hexof "$QC" digest --snapshot=small "$T/rs.qcow2")"
fi
t_name "unknown snapshot: exit 1"
"$QC" digest --snapshot=nope "$T/s.qcow2" >/dev/null 2>&1; rc=$?
if [ $rc = 1 ]; then t_ok; else t_fail "exit $rc"; fi

# check --digest: the same digests in the check's JSON
run_check --digest "$T/s.qcow2"
t_name "check --digest JSON"
python3 - "$JSON" "$T/all.out" <<'PY' && t_ok || t_fail "digests differ from digest --all"
import json, sys
j = json.load(open(sys.argv[1]))
want = [l.split()[0] for l in open(sys.argv[2])]
assert j["exit-code"] == 0 and j["digest-algorithm"] == "tree-v1"
assert [d["digest"] for d in j["digests"]] == want, j["digests"]
assert j["digests"][1]["snapshot"]["name"] == "first"
PY

# One flipped data byte changes the digest (and the check stays clean).
cp "$T/a.qcow2" "$T/f.qcow2"
fixture qemu-img map --output=json "$T/f.qcow2" >"$T/map.json"
host=$(python3 -c 'import json,sys; print(next(m["offset"] for m in json.load(open(sys.argv[1])) if m["data"]))' "$T/map.json")
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); o=int(sys.argv[2])+777; f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "$T/f.qcow2" "$host"
expect_clean "$T/f.qcow2" "image with one flipped data byte"
t_name "one flipped byte changes the digest"
d=$(hexof "$QC" digest "$T/f.qcow2")
if [ -n "$d" ] && [ "$d" != "$want" ]; then t_ok; else t_fail "digest '$d'"; fi

# Corruption: refused (exit 2, reason on stderr, nothing on stdout) unless --force.
cp "$T/a.qcow2" "$T/bad.qcow2"
$POKE "$T/bad.qcow2" 'l2[0][1]' '|0x2' >/dev/null
run_check "$T/bad.qcow2"
t_name "corrupt image: refused"
"$QC" digest "$T/bad.qcow2" >"$T/out" 2>"$T/dg.err"; rc=$?
if [ "$RC" = 2 ] && [ $rc = 2 ] && [ ! -s "$T/out" ] && grep -q 'refused.*corruption' "$T/dg.err"; then t_ok; else t_fail "check $RC, digest $rc: $(cat "$T/out" "$T/dg.err")"; fi
t_name "corrupt image: --force digests, marked, exit 2"
"$QC" digest --force "$T/bad.qcow2" >"$T/out" 2>"$T/dg.err"; rc=$?
if [ $rc = 2 ] && grep -q "^[0-9a-f]\{64\}  $T/bad.qcow2  \[forced" "$T/out"; then t_ok; else t_fail "exit $rc: $(cat "$T/out")"; fi
t_name "corrupt image: --force JSON"
"$QC" digest --force --output=json "$T/bad.qcow2" >"$T/out.json" 2>/dev/null
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["forced"] and j["exit-code"]==2 and len(j["digests"])==1' "$T/out.json" && t_ok || t_fail "$(cat "$T/out.json")"

# Leaks only (an orphaned data cluster): guest data is intact, digest exits 0.
cp "$T/a.qcow2" "$T/leak.qcow2"
$POKE "$T/leak.qcow2" 'l2[0][5]' 0 >/dev/null
run_check "$T/leak.qcow2"
qemu-img convert -O raw "$T/leak.qcow2" "$T/leak.raw"
t_name "leaks only: digested, exit 0"
d=$(hexof "$QC" digest "$T/leak.qcow2")
"$QC" digest -q "$T/leak.qcow2" 2>/dev/null; rc=$?
if [ "$RC" = 3 ] && [ $rc = 0 ] && [ "$d" = "$($REF "$T/leak.raw" | cut -d' ' -f1)" ]; then t_ok; else t_fail "check $RC, digest $rc, '$d'"; fi

# A compressed stream damaged in place: the metadata check cannot see it,
# the digest must not hash garbage: exit 2 (QEMU's read fails too).
fixture qemu-img convert -c -O qcow2 "$T/a.qcow2" "$T/dc.qcow2"
e=$($POKE "$T/dc.qcow2" 'l2[0][368]') # guest 23 MiB: the 0xa5 pattern, compressed
off=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e >> 62 & 1, "not compressed"; print(e & ((1<<54)-1))' "$e")
printf '\377\377\377\377\377\377\377\377' | dd of="$T/dc.qcow2" bs=1 seek="$off" conv=notrunc 2>/dev/null
t_name "damaged compressed stream: digest exit 2"
"$QC" digest "$T/dc.qcow2" >"$T/out" 2>"$T/dg.err"; rc=$?
if [ $rc = 2 ] && grep -q 'cannot be read' "$T/dg.err" && ! qemu-img convert -O raw "$T/dc.qcow2" "$T/dc.raw" 2>/dev/null; then t_ok; else t_fail "exit $rc: $(cat "$T/dg.err")"; fi
t_name "damaged compressed stream: check --digest reports it (implies --deep)"
run_check --digest "$T/dc.qcow2"
if [ "$RC" = 2 ] && json_codes | grep -q '^compressed-stream' && [ "$(json_get digests)" = "[]" ]; then t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi

# Backing file: this layer only, named in JSON, never opened (it is deleted).
mk "$T/base.qcow2" 4M
fixture qemu-io -f qcow2 -c 'write -P 0x41 0 4M' "$T/base.qcow2" >/dev/null
fixture qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/top.qcow2"
fixture qemu-io -f qcow2 -c 'write -P 0x42 1M 64k' "$T/top.qcow2" >/dev/null
cp "$T/top.qcow2" "$T/alone.qcow2"
fixture qemu-img rebase -q -u -b '' "$T/alone.qcow2"
qemu-img convert -O raw "$T/alone.qcow2" "$T/alone.raw"
rm -f "$T/base.qcow2"
same "backing file: this layer only" "$($REF "$T/alone.raw" | cut -d' ' -f1)" "$(hexof "$QC" digest "$T/top.qcow2")"
t_name "backing file: JSON names it, not included"
"$QC" digest --output=json "$T/top.qcow2" >"$T/out.json" 2>/dev/null
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["backing-file"].endswith("base.qcow2") and j["backing-file-included"] is False and j["note"]' "$T/out.json" && t_ok || t_fail "$(cat "$T/out.json")"

# Encrypted and external-data-file images are refused (exit 1).
mkluks() {
	qemu-img create -q -f qcow2 --object secret,id=sec0,data=abc123 \
		-o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 "$T/luks.qcow2" 1M
}
if fixture_try mkluks; then
	t_name "encrypted image refused"
	"$QC" digest "$T/luks.qcow2" >/dev/null 2>"$T/dg.err"; rc=$?
	if [ $rc = 1 ] && grep -q encrypted "$T/dg.err"; then t_ok; else t_fail "exit $rc: $(cat "$T/dg.err")"; fi
fi
if fixture_try qemu-img create -q -f qcow2 -o data_file="$T/ext.raw" "$T/ext.qcow2" 1M; then
	t_name "external data file refused"
	"$QC" digest "$T/ext.qcow2" >/dev/null 2>"$T/dg.err"; rc=$?
	if [ $rc = 1 ] && grep -q 'external data file' "$T/dg.err"; then t_ok; else t_fail "exit $rc: $(cat "$T/dg.err")"; fi
fi

# Progress: nothing on stderr when it is not a terminal; --progress prints plain lines.
t_name "no progress when stderr is not a terminal"
"$QC" digest --all "$T/s.qcow2" >/dev/null 2>"$T/dg.err"
if [ ! -s "$T/dg.err" ]; then t_ok; else t_fail "stderr: $(cat "$T/dg.err")"; fi
t_name "--progress: plain lines without a terminal"
"$QC" digest --progress "$T/a.qcow2" >/dev/null 2>"$T/dg.err"
if grep -q '^digest: .* / .*ETA' "$T/dg.err" && ! grep -q "$(printf '\r')" "$T/dg.err"; then t_ok; else t_fail "stderr: $(cat "$T/dg.err")"; fi

# Usage errors
t_name "usage: --all with --snapshot"
"$QC" digest --all --snapshot=x "$T/a.qcow2" >/dev/null 2>&1; rc=$?
if [ $rc = 64 ]; then t_ok; else t_fail "exit $rc"; fi
t_done
