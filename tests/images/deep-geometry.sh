#!/bin/sh
# deep-geometry.sh - `check --deep` on the compressed-descriptor layouts the
# other deep test does not use: 512-byte clusters (offset field of 61 bits,
# one size bit) and extended L2 entries (16-byte entries, zlib and zstd).
# Clean images pass; a damaged stream is corruption for --deep while
# qemu-img check stays blind (doc/format.md §9.4) and qemu-img convert fails.
# Also a file cut inside its last compressed stream (compressed-stream-
# truncated).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

mk "$T/src.qcow2" 16M
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 256k' -c 'write -P 0x22 4M 64k' "$T/src.qcow2" >/dev/null

for opts in cluster_size=512 extended_l2=on,cluster_size=65536 \
	compression_type=zstd,extended_l2=on,cluster_size=32768; do
	img="$T/g.qcow2"; rm -f "$img"
	fixture_try qemu-img convert -q -c -O qcow2 -o "$opts" "$T/src.qcow2" "$img" || continue
	t_name "deep clean $opts"
	run_check --deep "$img"
	[ "$RC" = 0 ] && [ -z "$(json_codes)" ] && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"
	off=$(python3 -c 'import sys; e=int(sys.argv[1],16); cb=int(sys.argv[2],16); assert e>>62&1; print(e & ((1 << (62-(cb-8)))-1))' \
		"$($POKE "$img" 'l2[0][0]')" "$($POKE "$img" header.cluster_bits)")
	printf '\336\255\276\357\336\255\276\357' | dd of="$img" bs=1 seek="$off" conv=notrunc 2>/dev/null
	expect_qemu "$img" 0 "(blind: never decompresses, §9.4)"
	t_name "plain check blind ($opts)"
	run_check "$img"
	[ "$RC" = 0 ] && t_ok || t_fail "exit $RC"
	t_name "--deep on $opts"
	run_check --deep "$img"
	if [ "$RC" = 2 ] && printf '%s\n' "$(json_codes)" | grep -qx compressed-stream-invalid; then t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi
	t_name "qemu-img convert fails ($opts)"
	qemu-img convert -f qcow2 -O raw "$img" "$T/o.raw" >/dev/null 2>&1 && t_fail "convert worked" || t_ok
done

# the file cut inside its last compressed stream (less than a cluster, so
# the walk's past-EOF rule does not fire, as in QEMU): the stream runs out
img="$T/cut.qcow2"
fixture qemu-img convert -q -c -O qcow2 "$T/src.qcow2" "$img"
last=$(python3 - "$img" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb").read()
cb = struct.unpack(">I", f[20:24])[0]
l1s, l1o = struct.unpack(">I", f[36:40])[0], struct.unpack(">Q", f[40:48])[0]
x, best = 62 - (cb - 8), 0
for i in range(l1s):
    l2 = struct.unpack(">Q", f[l1o + 8 * i:l1o + 8 * i + 8])[0] & 0x00fffffffffffe00
    for j in range((1 << cb) // 8 if l2 else 0):
        e = struct.unpack(">Q", f[l2 + 8 * j:l2 + 8 * j + 8])[0]
        if e >> 62 & 1:
            best = max(best, e & ((1 << x) - 1))
print(best)
PY
)
truncate -s $((last + 8)) "$img"
expect_qemu "$img" 0 "(blind: never decompresses, §9.4)"
t_name "plain check blind (cut file)"
run_check "$img"
[ "$RC" = 0 ] && t_ok || t_fail "exit $RC: $(json_codes | tr '\n' ' ')"
t_name "--deep on a cut file"
run_check --deep "$img"
if [ "$RC" = 2 ] && printf '%s\n' "$(json_codes)" | grep -qx compressed-stream-truncated; then t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi
t_name "qemu-img convert fails (cut file)"
qemu-img convert -f qcow2 -O raw "$img" "$T/o.raw" >/dev/null 2>&1 && t_fail "convert worked" || t_ok
t_done
