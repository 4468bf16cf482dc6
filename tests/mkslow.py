#!/usr/bin/env python3
"""mkslow.py - craft qcow2 images whose size or shape made an old algorithm
slow, for the complexity tests (tests/images/limits-complexity.sh).

Usage:
  mkslow.py leaky OUT NBLOCKS
      A v3 image, 512-byte clusters, 16-bit refcounts, no guest data, whose
      refcount table also points to NBLOCKS refblocks covering only
      clusters past the end of the file, each holding refcount 1 in every
      other entry (128 separate runs per refblock).  Every structure in the
      file has its correct refcount, so the only findings are the refcounts
      stored past the end of the file (refcount-leak-past-eof, a leak).
      QEMU does not compare refcounts past the end of the file: its check
      calls this image clean.
  mkslow.py holes OUT NSNAP
      A v3 image, 64 KiB clusters, one empty snapshot table of NSNAP
      snapshots, each with a 32 MiB L1 table that lies in a hole of the
      file (the file is made sparse by seeking past it).  Every cluster in
      the file, the holes included, has its correct refcount, so the image
      is clean.

The layout is computed here; every field is written big-endian as
docs/interop/qcow2.txt (and the project's doc/) describe.
"""
import struct
import sys


def header(cluster_bits, size, l1_size, l1_off, rt_off, rt_clusters, nb_snap=0, snap_off=0):
    h = struct.pack(">IIQIIQIIQQIIQQQQII", 0x514649FB, 3, 0, 0, cluster_bits, size, 0,
                    l1_size, l1_off, rt_off, rt_clusters, nb_snap, snap_off, 0, 0, 0, 4, 104)
    assert len(h) == 104
    return h


def leaky(out, nfake):
    cb, cs, per = 9, 512, 256  # 16-bit refcounts: 256 entries per refblock
    # layout: header, L1, reftable (R clusters), K real refblocks, nfake refblocks
    k = 1
    while True:
        entries = k + nfake
        r = (entries * 8 + cs - 1) // cs
        f = 2 + r + k + nfake
        if (f + per - 1) // per <= k:
            break
        k += 1
    rt = 2
    real0 = rt + r
    fake0 = real0 + k
    buf = bytearray(f * cs)
    buf[0:104] = header(cb, 32768, 1, 1 * cs, rt * cs, r)
    table = bytearray(r * cs)
    for i in range(k):
        struct.pack_into(">Q", table, 8 * i, (real0 + i) * cs)
        blk = bytearray(cs)
        for e in range(per):
            if i * per + e < f:
                struct.pack_into(">H", blk, 2 * e, 1)
        buf[(real0 + i) * cs:(real0 + i + 1) * cs] = blk
    # the fake refblocks cover clusters past the file: reftable index >= k
    fake = bytearray(cs)
    for e in range(0, per, 2):
        struct.pack_into(">H", fake, 2 * e, 1)
    for j in range(nfake):
        struct.pack_into(">Q", table, 8 * (k + j), (fake0 + j) * cs)
        buf[(fake0 + j) * cs:(fake0 + j + 1) * cs] = fake
    buf[rt * cs:(rt + r) * cs] = table
    with open(out, "wb") as fh:
        fh.write(buf)


def holes(out, nsnap):
    cb, cs = 16, 65536
    per = cs // 2
    l1_bytes = 32 << 20
    l1_entries = l1_bytes // 8
    # cluster 0 header, 1 L1 (1 entry), 2 reftable, 3 refblock(s), then the
    # snapshot table, then the snapshot L1 tables (holes)
    entries = []
    for i in range(nsnap):
        ident = str(i + 1).encode()
        name = ("s%d" % (i + 1)).encode()
        e = len(ident) + len(name)
        size = 40 + 16 + e
        size += (-size) % 8
        entries.append((ident, name, size))
    st_bytes = sum(s for _, _, s in entries)
    st_clusters = (st_bytes + cs - 1) // cs
    l1_clusters = l1_bytes // cs
    rb0 = 3
    nblocks = 1
    while True:
        st0 = rb0 + nblocks
        l10 = st0 + st_clusters
        f = l10 + nsnap * l1_clusters
        if (f + per - 1) // per <= nblocks:
            break
        nblocks += 1
    assert nblocks * 8 <= cs, "one reftable cluster"
    guest = 1 << 30
    with open(out, "wb") as fh:
        fh.write(header(cb, guest, 2, 1 * cs, 2 * cs, 1, nsnap, st0 * cs))
        fh.seek(2 * cs)
        fh.write(b"".join(struct.pack(">Q", (rb0 + b) * cs) for b in range(nblocks)))
        blk = bytearray(nblocks * cs)
        for c in range(f):
            struct.pack_into(">H", blk, 2 * c, 1)
        fh.seek(rb0 * cs)
        fh.write(blk)
        tab = bytearray()
        for i, (ident, name, size) in enumerate(entries):
            l1_off = (l10 + i * l1_clusters) * cs
            e = struct.pack(">QIHHIIQII", l1_off, l1_entries, len(ident), len(name), 0, 0, 0, 0, 16)
            e += struct.pack(">QQ", 0, guest) + ident + name
            e += b"\0" * (size - len(e))
            tab += e
        fh.seek(st0 * cs)
        fh.write(tab)
        fh.truncate(f * cs)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("leaky", "holes"):
        sys.exit(__doc__)
    {"leaky": leaky, "holes": holes}[sys.argv[1]](sys.argv[2], int(sys.argv[3]))


if __name__ == "__main__":
    main()
