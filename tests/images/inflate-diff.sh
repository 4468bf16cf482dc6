#!/bin/sh
# inflate-diff.sh - the deflate decoders of doc/inflate.md (libdeflate
# where it is provably zlib, the own decoder core/inflate.c elsewhere) give
# zlib's verdict, reason and bytes on every stream: tests/dcdiff.c compares
# the combined decoder, and the own decoder alone and paired with another
# stream, with zlib alone on every compressed stream of images qemu-img
# convert -c makes here (compressible binaries, text, a mix of zeros and
# noise, base64 of random bytes, which zlib codes in several blocks per
# cluster; 4 KiB, 64 KiB and 2 MiB clusters) and on the fuzz corpus and
# the crashers, each stream also padded, cut at 8 places and with 16
# single-bit flips; and on streams zlib makes of zero runs, where 400 flips
# each include forbidden symbols libdeflate accepts.  Both decoders must be
# taken (libdeflate decides most streams of compressible data, the own
# decoder the multi-block ones), and check --deep must report the same
# counts as before.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
DCDIFF=${DCDIFF:-$HERE/../../build/tests/dcdiff}
ROOT=$HERE/../..

if [ ! -x "$DCDIFF" ]; then
	t_name "dcdiff built"; t_fail "$DCDIFF missing (make build/tests/dcdiff)"; t_done; exit $?
fi

# guest data: 3 MiB of executables, 2 MiB of text, 1 MiB of zeros with
# noise, 1 MiB of base64
head -c 3M "$(command -v qemu-img)" >"$T/bin.raw" 2>/dev/null
cat /usr/bin/* 2>/dev/null | head -c $((3 * 1048576 - $(stat -c %s "$T/bin.raw"))) >>"$T/bin.raw"
python3 - "$T/mix.raw" <<'PY'
import random, sys
r = random.Random(7)
words = b"qcow2 cluster refcount snapshot table guest host offset data ".split()
text = b" ".join(r.choice(words) for _ in range(400000))[:2 << 20]
mix = bytearray(1 << 20)
for i in range(0, len(mix), 4096):
    if r.random() < 0.3:
        mix[i:i + 512] = bytes(r.getrandbits(8) for _ in range(512))
b64 = __import__("base64").encodebytes(bytes(r.getrandbits(8) for _ in range(786432)))[:1 << 20]
open(sys.argv[1], "wb").write(text + bytes(mix) + b64)
PY
cat "$T/bin.raw" "$T/mix.raw" >"$T/guest.raw"
imgs=""
for cs in 4k 64k 2M; do
	fixture_try qemu-img convert -c -f raw -O qcow2 -o cluster_size=$cs,compression_type=zlib \
		"$T/guest.raw" "$T/z-$cs.qcow2" && imgs="$imgs $T/z-$cs.qcow2"
done

t_name "dcdiff: images made by qemu-img convert -c"
if [ -n "$imgs" ]; then
	# shellcheck disable=SC2086
	"$DCDIFF" -f 16 $imgs >"$T/img.out" 2>"$T/img.err"; rc=$?
	cat "$T/img.out"
	if [ $rc = 0 ] && grep -q ' 0 differences' "$T/img.out"; then t_ok; else t_fail "exit $rc: $(cat "$T/img.out" "$T/img.err")"; fi
	t_name "dcdiff: libdeflate decides most streams of these images, the own decoder the rest"
	python3 - "$T/img.out" <<'PY' && t_ok || t_fail "$(cat "$T/img.out")"
import re, sys
m = re.search(r"(\d+) streams, (\d+) variants, (\d+) zlib-readable, (\d+) decided by libdeflate, "
              r"(\d+) by the own decoder, (\d+) pairs", open(sys.argv[1]).read())
streams, variants, fast, own, pairs = (int(m.group(i)) for i in (1, 2, 4, 5, 6))
assert streams > 100 and fast > streams // 2, (streams, fast)
assert own > variants // 4 and pairs == variants - streams, (variants, own, pairs)
PY
fi

t_name "dcdiff: the fuzz corpus and the crashers"
"$DCDIFF" -f 16 "$ROOT"/corpus/*.qcow2 "$ROOT"/corpus/seeds/* "$ROOT"/tests/crashers/*.qcow2 \
	>"$T/fz.out" 2>"$T/fz.err"; rc=$?
cat "$T/fz.out"
if [ $rc = 0 ] && grep -q ' 0 differences' "$T/fz.out"; then t_ok; else t_fail "exit $rc: $(cat "$T/fz.out" "$T/fz.err")"; fi

# streams that runs of zeros make zlib code with length symbol 285 (fixed
# and dynamic blocks): a flip of its last bits gives the forbidden 286/287,
# which libdeflate reads as 258: libdeflate alone would differ from zlib
mkdir "$T/raw"
python3 - "$T/raw" <<'PY'
import random, sys, zlib
r = random.Random(5)
for i in range(40):
    b = bytearray(65536)
    for k in range(0, 65536, 1024):
        if r.random() < 0.5:
            b[k:k + 16] = bytes(r.getrandbits(8) for _ in range(16))
    c = zlib.compressobj(6, zlib.DEFLATED, -12, 9, zlib.Z_FIXED if i % 2 == 0 else zlib.Z_DEFAULT_STRATEGY)
    open("%s/s%02d.bin" % (sys.argv[1], i), "wb").write(c.compress(bytes(b)) + c.flush())
PY
t_name "dcdiff: fixed and dynamic blocks of zero runs, 400 flips each: zlib's answer where libdeflate's differs"
"$DCDIFF" -f 400 "$T"/raw/*.bin >"$T/raw.out" 2>"$T/raw.err"; rc=$?
cat "$T/raw.out"
if [ $rc = 0 ] && grep -q ' 0 differences' "$T/raw.out" &&
   ! grep -q ' 0 where libdeflate alone would differ' "$T/raw.out"; then
	t_ok
else
	t_fail "exit $rc: $(cat "$T/raw.out" "$T/raw.err")"
fi

# the check itself: --deep verifies every stream, same verdict as qemu-img
for img in $imgs; do
	run_check --deep "$img"
	t_name "check --deep $(basename "$img"): clean, every compressed cluster verified"
	n=$(qemu-img check --output=json "$img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["compressed-clusters"])')
	python3 - "$JSON" "$n" <<'PY' && t_ok || t_fail "$(cat "$JSON")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["exit-code"] == 0 and j["deep-verified"]["zlib"] == int(sys.argv[2]) > 0, j.get("deep-verified")
PY
done

t_done
