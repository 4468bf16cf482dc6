#!/bin/sh
# deep-streams.sh - `check --deep` on compressed images made by
# `qemu-img convert -c` (zlib and zstd; 4 KiB, 64 KiB and 2 MiB clusters):
# clean images pass; then the compressed stream of guest cluster 0 is
# damaged in place (found through poke.py l2[0][0] and its descriptor).
# qemu-img check never decompresses (doc/format.md §9.4): it
# says "No errors" on every damaged image below, and so does a plain check
# (asserted, to show what --deep adds); `qemu-img convert` proves the
# damage is real (it fails with EIO where --deep reports corruption, and
# succeeds on the one case QEMU tolerates: a zlib stream longer than a
# cluster, which it truncates).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

# desc IMG: "offset length" of the compressed descriptor in l2[0][0]
desc() {
	python3 - "$($POKE "$1" 'l2[0][0]')" "$($POKE "$1" header.cluster_bits)" <<'PY'
import sys
e, cb = int(sys.argv[1], 16), int(sys.argv[2], 16)
assert e >> 62 & 1, "l2[0][0] is not compressed"
x = 62 - (cb - 8)
off = e & ((1 << x) - 1)
ns = ((e >> x) & ((1 << (cb - 8)) - 1)) + 1
print(off, ns * 512 - (off & 511))
PY
}

# put_stream IMG OFF LEN FILE: write FILE at OFF, which must fit in LEN
put_stream() {
	n=$(stat -c %s "$4")
	if [ "$n" -gt "$3" ]; then echo "crafted stream $n > descriptor $3" >&2; return 1; fi
	dd if="$4" of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# deflate N FILE: raw deflate (window 4 KiB, as QEMU) of N zero bytes
deflate() { python3 -c 'import zlib,sys; c=zlib.compressobj(6, zlib.DEFLATED, -12); open(sys.argv[2],"wb").write(c.compress(bytes(int(sys.argv[1]))) + c.flush())' "$1" "$2"; }
# zstdz N FILE: one zstd frame of N zero bytes
zstdz() { head -c "$1" /dev/zero | zstd -q -c > "$2"; }

expect_plain_clean() {
	t_name "plain check blind on ${1##*/} ($2)"
	run_check "$1"
	if [ "$RC" = 0 ] && [ "$(json_get corruptions)" = 0 ]; then t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi
}

# expect_deep IMG CODE EXIT
expect_deep() {
	t_name "--deep $2 on ${1##*/}"
	run_check --deep "$1"
	if ! json_codes | grep -qx "$2"; then t_fail "no $2 (exit $RC: $(json_codes | tr '\n' ' '))"; return; fi
	if [ "$RC" != "$3" ]; then t_fail "exit $RC, expected $3"; return; fi
	# the record names the guest cluster at stake
	python3 - "$JSON" "$2" <<'PY' && t_ok || t_fail "no guest-offset 0 in the record"
import json, sys
j = json.load(open(sys.argv[1]))
p = [p for p in j["problems"] if p["code"] == sys.argv[2]]
assert p and p[0].get("guest-offset") == 0, p
PY
}

# expect_convert IMG EXIT: qemu-img convert's verdict (1 = EIO on a read)
expect_convert() {
	t_name "qemu-img convert on ${1##*/} exits $2"
	qemu-img convert -f qcow2 -O raw "$1" "$T/out.raw" >/dev/null 2>&1
	rc=$?
	rm -f "$T/out.raw"
	if [ "$rc" = "$2" ]; then t_ok; else t_fail "convert exit $rc"; fi
}

for cs in 4096 65536 2097152; do
	# guest cluster 0: a random block repeated (compressible, stream > 1 sector);
	# cluster 2: zeros then a pattern
	blk=$((cs / 4)); [ "$blk" -gt 4096 ] && blk=4096
	python3 -c '
import random, sys
cs, blk = int(sys.argv[2]), int(sys.argv[3])
r = random.Random(7)
b = bytes(r.getrandbits(8) for _ in range(blk))
with open(sys.argv[1], "wb") as f:
    f.write(b * (cs // blk))
    f.write(bytes(cs))
    f.write(bytes(cs // 2) + b"qcow2fsck" * (cs // 18))
    f.truncate(4 * cs)' "$T/src.raw" "$cs" "$blk"
	for ct in zlib zstd; do
		base="$T/c-$ct-$cs.qcow2"
		fixture_try qemu-img convert -q -c -f raw -O qcow2 -o "compression_type=$ct,cluster_size=$cs" \
			"$T/src.raw" "$base" || continue
		t_name "deep clean $ct $cs"
		run_check --deep "$base"
		comp=$(python3 -c 'import sys; print(int(sys.argv[1], 16) >> 62 & 1)' "$($POKE "$base" 'l2[0][0]')")
		if [ "$RC" = 0 ] && [ -z "$(json_codes)" ] && [ "$comp" = 1 ]; then
			t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi
		expect_qemu "$base" 0
		set -- $(desc "$base"); off=$1 len=$2

		# 1. garbage over the start of the stream: the decoder rejects it
		img="$T/garbage-$ct-$cs.qcow2"; cp "$base" "$img"
		printf '\336\255\276\357\336\255\276\357' | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null
		expect_plain_clean "$img" "QEMU never decompresses"
		expect_qemu "$img" 0 "(blind: §9.4)"
		expect_deep "$img" compressed-stream-invalid 2
		expect_convert "$img" 1

		# 2. the descriptor's sector count cut to 1: the stream runs out
		img="$T/trunc-$ct-$cs.qcow2"; cp "$base" "$img"
		e=$($POKE "$img" 'l2[0][0]')
		new=$(python3 -c 'import sys; e=int(sys.argv[1],16); cb=int(sys.argv[2]); x=62-(cb-8); print(e & ~(((1<<(cb-8))-1) << x))' "$e" "$(python3 -c "import math;print(int(math.log2($cs)))")")
		$POKE "$img" 'l2[0][0]' "$new"
		expect_deep "$img" compressed-stream-truncated 2
		expect_convert "$img" 1

		# 3. a valid stream of half a cluster: too short
		img="$T/short-$ct-$cs.qcow2"; cp "$base" "$img"
		if [ "$ct" = zlib ]; then deflate $((cs / 2)) "$T/s.bin"; else zstdz $((cs / 2)) "$T/s.bin"; fi
		put_stream "$img" "$off" "$len" "$T/s.bin"
		expect_plain_clean "$img" "QEMU never decompresses"
		expect_qemu "$img" 0 "(blind: §9.4)"
		expect_deep "$img" compressed-stream-size 2
		expect_convert "$img" 1

		# 4. a valid stream longer than a cluster: QEMU truncates zlib (a
		# warning here, convert works) but fails on zstd (corruption)
		img="$T/long-$ct-$cs.qcow2"; cp "$base" "$img"
		if [ "$ct" = zlib ]; then deflate $((cs + 4096)) "$T/l.bin"; else zstdz $((cs + 4096)) "$T/l.bin"; fi
		put_stream "$img" "$off" "$len" "$T/l.bin"
		expect_qemu "$img" 0 "(blind: §9.4)"
		if [ "$ct" = zlib ]; then
			expect_deep "$img" compressed-stream-inexact 0
			expect_convert "$img" 0
		else
			expect_deep "$img" compressed-stream-size 2
			expect_convert "$img" 1
		fi
	done
done
t_done
