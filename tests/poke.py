#!/usr/bin/env python3
"""poke.py - set (or read) one field of a qcow2 image, for damage tests.

Usage:
  poke.py IMAGE FIELD VALUE     write VALUE into FIELD
  poke.py IMAGE FIELD           print FIELD's current value (hex)
  poke.py IMAGE --addr FIELD    print FIELD's byte offset and width

VALUE is an integer (0x.. allowed) or a relative edit of the current value:
+N, -N, |N (set bits), &N (keep bits), ^N (flip bits).  A string value is
given as str:TEXT (written as bytes, for names).

FIELD is one of:
  header.NAME            magic version backing_file_offset backing_file_size
                         cluster_bits size crypt_method l1_size l1_table_offset
                         refcount_table_offset refcount_table_clusters
                         nb_snapshots snapshots_offset incompatible_features
                         compatible_features autoclear_features refcount_order
                         header_length compression_type
  u8@OFF u16@OFF u32@OFF u64@OFF  raw big-endian integer at byte offset OFF
  l1[I]                  active L1 entry I
  l2[I][J]               entry J of the L2 table that active L1 entry I points to
                         (first 64-bit word; extended L2 entries are 16 bytes)
  l2bitmap[I][J]         subcluster bitmap of extended L2 entry J
  reftable[I]            refcount table entry I
  refcount[C]            stored refcount of host cluster C (any width)
  snapshot[S].NAME       field of snapshot entry S: l1_table_offset l1_size
                         id_str_size name_size date_sec date_nsec vm_clock_nsec
                         vm_state_size extra_data_size vm_state_size_large
                         disk_size icount; .id and .name are the first byte of the
                         ID / name string (write them with str:TEXT)
  snapl1[S][I]           entry I of snapshot S's L1 table
  snapl2[S][I][J]        entry J of the L2 table that snapshot S's L1 entry I points to
  ext[TYPE].length       length field of the first header extension of TYPE (hex magic)
  ext[TYPE].data+N       u64 at byte N of that extension's data (u32 with .data32+N)
  bitmapdir[B].NAME      bitmap directory entry B: table_offset table_size flags
                         type granularity_bits name_size extra_data_size
The tool is for tests: it trusts the image enough to find the field.
"""
import re
import struct
import sys

HEADER = {
    "magic": (0, 4), "version": (4, 4), "backing_file_offset": (8, 8),
    "backing_file_size": (16, 4), "cluster_bits": (20, 4), "size": (24, 8),
    "crypt_method": (32, 4), "l1_size": (36, 4), "l1_table_offset": (40, 8),
    "refcount_table_offset": (48, 8), "refcount_table_clusters": (56, 4),
    "nb_snapshots": (60, 4), "snapshots_offset": (64, 8),
    "incompatible_features": (72, 8), "compatible_features": (80, 8),
    "autoclear_features": (88, 8), "refcount_order": (96, 4),
    "header_length": (100, 4), "compression_type": (104, 1),
}
SNAP = {
    "l1_table_offset": (0, 8), "l1_size": (8, 4), "id_str_size": (12, 2),
    "name_size": (14, 2), "date_sec": (16, 4), "date_nsec": (20, 4),
    "vm_clock_nsec": (24, 8), "vm_state_size": (32, 4), "extra_data_size": (36, 4),
    "vm_state_size_large": (40, 8), "disk_size": (48, 8), "icount": (56, 8),
}
BITMAP = {
    "table_offset": (0, 8), "table_size": (8, 4), "flags": (12, 4), "type": (16, 1),
    "granularity_bits": (17, 1), "name_size": (18, 2), "extra_data_size": (20, 4),
}
FMT = {1: ">B", 2: ">H", 4: ">I", 8: ">Q"}
OFF_MASK = 0x00FFFFFFFFFFFE00


class Img:
    def __init__(self, path):
        self.f = open(path, "r+b")

    def read(self, off, n):
        self.f.seek(off)
        b = self.f.read(n)
        return b + b"\0" * (n - len(b))

    def get(self, off, w):
        return struct.unpack(FMT[w], self.read(off, w))[0]

    def put(self, off, w, v):
        self.f.seek(off)
        self.f.write(struct.pack(FMT[w], v & ((1 << (8 * w)) - 1)))

    def h(self, name):
        return self.get(*HEADER[name])

    @property
    def cluster_bits(self):
        return self.h("cluster_bits")

    @property
    def l2_entry_size(self):
        return 16 if self.h("version") >= 3 and self.h("incompatible_features") & 16 else 8

    def snapshot_entry(self, s):
        off = self.h("snapshots_offset")
        for _ in range(s):
            id_len = self.get(off + 12, 2)
            name_len = self.get(off + 14, 2)
            extra = self.get(off + 36, 4)
            size = 40 + extra + id_len + name_len
            off += (size + 7) & ~7
        return off

    def ext(self, typ):
        hl = self.h("header_length") if self.h("version") >= 3 else 72
        off = hl
        end = 1 << self.cluster_bits
        while off + 8 <= end:
            t, n = self.get(off, 4), self.get(off + 4, 4)
            if t == typ:
                return off
            if t == 0:
                break
            off += 8 + ((n + 7) & ~7)
        raise SystemExit("no extension 0x%x" % typ)


def resolve(img, field):
    """Return (offset, width, bitfield) where bitfield is (shift, bits) or None."""
    m = re.fullmatch(r"header\.(\w+)", field)
    if m:
        o, w = HEADER[m.group(1)]
        return o, w, None
    m = re.fullmatch(r"u(8|16|32|64)@(\w+)", field)
    if m:
        return int(m.group(2), 0), int(m.group(1)) // 8, None
    m = re.fullmatch(r"l1\[(\d+)\]", field)
    if m:
        return img.h("l1_table_offset") + 8 * int(m.group(1)), 8, None
    m = re.fullmatch(r"(l2|l2bitmap)\[(\d+)\]\[(\d+)\]", field)
    if m:
        l2 = img.get(img.h("l1_table_offset") + 8 * int(m.group(2)), 8) & OFF_MASK
        if not l2:
            raise SystemExit("L1 entry %s is unallocated" % m.group(2))
        o = l2 + img.l2_entry_size * int(m.group(3)) + (8 if m.group(1) == "l2bitmap" else 0)
        return o, 8, None
    m = re.fullmatch(r"reftable\[(\d+)\]", field)
    if m:
        return img.h("refcount_table_offset") + 8 * int(m.group(1)), 8, None
    m = re.fullmatch(r"refcount\[(\d+)\]", field)
    if m:
        c = int(m.group(1))
        cb = img.cluster_bits
        order = img.h("refcount_order") if img.h("version") >= 3 else 4
        bits = 1 << order
        per_block = (1 << cb) * 8 // bits
        rt = img.get(img.h("refcount_table_offset") + 8 * (c // per_block), 8) & ~0x1FF
        if not rt:
            raise SystemExit("no refblock covers cluster %d" % c)
        idx = c % per_block
        if bits >= 8:
            return rt + idx * (bits // 8), bits // 8, None
        byte = rt + idx * bits // 8
        return byte, 1, ((idx * bits) % 8, bits)
    m = re.fullmatch(r"snapshot\[(\d+)\]\.(id|name)", field)
    if m:
        e = img.snapshot_entry(int(m.group(1)))
        o = e + 40 + img.get(e + 36, 4)
        if m.group(2) == "name":
            o += img.get(e + 12, 2)
        return o, 1, None
    m = re.fullmatch(r"snapshot\[(\d+)\]\.(\w+)", field)
    if m:
        o, w = SNAP[m.group(2)]
        return img.snapshot_entry(int(m.group(1))) + o, w, None
    m = re.fullmatch(r"snapl1\[(\d+)\]\[(\d+)\]", field)
    if m:
        e = img.snapshot_entry(int(m.group(1)))
        return img.get(e, 8) + 8 * int(m.group(2)), 8, None
    m = re.fullmatch(r"snapl2\[(\d+)\]\[(\d+)\]\[(\d+)\]", field)
    if m:
        e = img.snapshot_entry(int(m.group(1)))
        l2 = img.get(img.get(e, 8) + 8 * int(m.group(2)), 8) & OFF_MASK
        return l2 + img.l2_entry_size * int(m.group(3)), 8, None
    m = re.fullmatch(r"ext\[(\w+)\]\.(length|data|data32)(?:\+(\w+))?", field)
    if m:
        e = img.ext(int(m.group(1), 16))
        if m.group(2) == "length":
            return e + 4, 4, None
        n = int(m.group(3) or "0", 0)
        return e + 8 + n, 8 if m.group(2) == "data" else 4, None
    m = re.fullmatch(r"bitmapdir\[(\d+)\]\.(\w+)", field)
    if m:
        e = img.ext(0x23852875)
        off = img.get(e + 8 + 16, 8)
        for _ in range(int(m.group(1))):
            name_size = img.get(off + 18, 2)
            extra = img.get(off + 20, 4)
            off += (24 + extra + name_size + 7) & ~7
        o, w = BITMAP[m.group(2)]
        return off + o, w, None
    raise SystemExit("unknown field %r" % field)


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    addr = False
    if args[1] == "--addr":
        addr = True
        args = [args[0]] + args[2:]
    img = Img(args[0])
    off, w, bf = resolve(img, args[1])
    if addr:
        print("%d %d" % (off, w))
        return
    cur = img.get(off, w)
    if bf:
        cur_f = (cur >> bf[0]) & ((1 << bf[1]) - 1)
    else:
        cur_f = cur
    if len(args) == 2:
        print(hex(cur_f))
        return
    v = args[2]
    if v.startswith("str:"):
        img.f.seek(off)
        img.f.write(v[4:].encode())
        return
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "|": lambda a, b: a | b,
           "&": lambda a, b: a & b, "^": lambda a, b: a ^ b}
    if v[0] in ops:
        new = ops[v[0]](cur_f, int(v[1:], 0))
    else:
        new = int(v, 0)
    if bf:
        mask = ((1 << bf[1]) - 1) << bf[0]
        new = (cur & ~mask) | ((new << bf[0]) & mask)
    img.put(off, w, new)


if __name__ == "__main__":
    main()
