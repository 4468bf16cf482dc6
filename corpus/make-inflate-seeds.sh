#!/bin/sh
# make-inflate-seeds.sh - makes the seeds of fuzz target "inflate"
# (fuzz/fuzz_inflate.c) in corpus/seeds/inflate-*.bin: two bytes of output
# size (size - 1, big-endian), then a raw deflate stream made by zlib with
# QEMU's settings (windowBits -12, memLevel 9; block/qcow2-threads.c) or
# with settings that give other block shapes: many small blocks
# (memLevel 1), fixed codes only, run-length matches, Huffman only, stored
# blocks (random bytes), and a stream longer than its output size.
# Usage: sh corpus/make-inflate-seeds.sh   (from anywhere)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python3 - "$here/seeds" <<'PY'
import base64, random, sys, zlib
out = sys.argv[1]
r = random.Random(11)
def rnd(n): return bytes(r.getrandbits(8) for _ in range(n))
text = base64.encodebytes(rnd(49152))[:65536]
zeros = bytearray(65536)
for k in range(0, 65536, 2048):
    if r.random() < 0.4:
        zeros[k:k + 24] = rnd(24)
code = open(sys.executable, "rb").read()[4096:4096 + 65536]
runs = b"".join(bytes([r.getrandbits(8)]) * r.randint(1, 9) + rnd(r.randint(2, 7)) for _ in range(6000))[:32768]
def seed(name, data, outlen, level=6, mem=9, strat=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, -12, mem, strat)
    s = c.compress(data) + c.flush()
    with open("%s/inflate-%s.bin" % (out, name), "wb") as f:
        f.write((outlen - 1).to_bytes(2, "big") + s)
seed("text", text, 65536)
seed("text-mem1", text[:16384], 16384, mem=1)
seed("text-inexact", text[:8192], 4096)
seed("zeros-fixed", bytes(zeros), 65536, strat=zlib.Z_FIXED)
seed("code", code, 65536)
seed("runs-rle", runs, 32768, strat=zlib.Z_RLE)
seed("huffman", text[:4096], 4096, strat=zlib.Z_HUFFMAN_ONLY)
seed("stored", rnd(4096), 4096, level=0)
seed("random", rnd(4096), 4096)
PY
