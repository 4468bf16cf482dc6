#!/bin/sh
# limits-resources.sh - bounded resources on hostile headers (SECURITY.md,
# threats T1 T2 T3 T6 T9: CVE-2014-0143/0144/0145, CVE-2015-5162):
#  - the memory cap (--max-mem) ends the check with a clear error and exit 1
#    (check-errors 1 in JSON), never a crash or an allocation past the cap,
#    for the cluster map and for large table reads (a 4 MiB L1), and the
#    cap bounds their sum (a 4 MiB L1 and the map do not fit in 4 MiB; a
#    snapshot's L1 is streamed, not held);
#  - huge sizes and counts in a tiny file (1 PiB / 2^64-512 virtual size,
#    l1_size 2^31-1, refcount_table_clusters 2^32-1, nb_snapshots 2^32-1,
#    snapshot l1_size 2^31-1) are reported with bounded work, counted not
#    timed (CPU time, read calls and bytes read, peak RSS: see bounded()):
#    nothing loops, reads or allocates by an unvalidated field;
#  - zlib and zstd compression bombs under --deep stay bounded the same way.
# Peak RSS is measured on the non-sanitizer build ($QC_FAST) when given.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
FAST=${QC_FAST:-$QC}

mk "$T/a.qcow2" 4M cluster_size=4096
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' "$T/a.qcow2" >/dev/null

t_name "--max-mem=64K: exit 1 with a clear error"
"$QC" check --max-mem=64K --output=json "$T/a.qcow2" >"$T/out" 2>"$T/err"; rc=$?
if [ "$rc" = 1 ] && grep -q "memory cap" "$T/err" &&
   python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["check-errors"] == 1' "$T/out"; then
	t_ok
else
	t_fail "exit $rc: $(cat "$T/err")"
fi
t_name "no sanitizer report under the cap"
grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/err" && t_fail "$(cat "$T/err")" || t_ok
t_name "--max-mem=64M: the same image checks clean"
"$QC" check --max-mem=64M "$T/a.qcow2" >/dev/null 2>&1; rc=$?
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc"

# A legitimately large table read honours the cap too: 1 TiB with 4 KiB
# clusters has a 4 MiB L1, which does not fit in 2 MiB.
fixture qemu-img create -q -f qcow2 -o cluster_size=4096 "$T/bigl1.qcow2" 1T
t_name "--max-mem=2M: a 4 MiB L1 is not read, exit 1"
"$QC" check --max-mem=2M "$T/bigl1.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "memory cap" "$T/err" && t_ok || t_fail "exit $rc: $(cat "$T/err")"
t_name "the same image checks clean with the default cap"
"$QC" check "$T/bigl1.qcow2" >/dev/null 2>&1; rc=$?
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc"

# The cap is a total, not a per-table limit: the 4 MiB active L1 alone
# fits in 4 MiB, together with the cluster map and the refcount table it
# does not.  A snapshot's L1 table is not held: it is read by extent in
# 512 KiB chunks (tables.c walk_l1), so with a snapshot (a second 4 MiB L1)
# 6 MiB still holds everything.
t_name "--max-mem=4M: the 4 MiB active L1 plus the map pass the cap, exit 1"
"$QC" check --max-mem=4M "$T/bigl1.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "memory cap" "$T/err" && t_ok || t_fail "exit $rc: $(cat "$T/err")"
fixture qemu-img snapshot -c s1 "$T/bigl1.qcow2"
t_name "--max-mem=6M: a snapshot's 4 MiB L1 is streamed, not held: clean"
"$QC" check --max-mem=6M "$T/bigl1.qcow2" >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc: $(cat "$T/err")"

# bounded NAME IMG EXITS: check --deep exits with one of EXITS and no
# sanitizer report, and the work of one run of the plain build is bounded
# (measure, lib.sh; counted, not timed, so load cannot fail it):
#  - CPU time under 2 s: the right algorithms take under 0.1 s here
#    (printed below), the size-field-driven or quadratic ones they replace
#    took 14 s to minutes (SECURITY.md T9), and CPU time does not grow with
#    the machine's load, only with the work;
#  - peak RSS under 64 MiB: nothing is allocated by an unvalidated field;
#  - reads of the image: at most 64 + (file size / 4 KiB) calls and 4 x the
#    file size + 1 MiB bytes: every structure is read once, so reading
#    follows what the file holds; a walk driven by a size field (2^31 L1
#    entries, 2^32 refcount table clusters) or repeated per snapshot,
#    bitmap or reftable entry reads far more (2^20 reads of one refblock,
#    65536 walks of a 32 MiB L1).
# The sanitizer run has a hang guard only (timeout 600): its time is not a
# bound.  File size: the allocated bytes (du), as sparse files are sparse.
bounded() {
	t_name "$1 is bounded"
	timeout 600 "$QC" check --deep --output=json "$2" >"$T/out" 2>"$T/err"; rc=$?
	case " $3 " in *" $rc "*) ;; *) t_fail "exit $rc"; cat "$T/err" >&2; return ;; esac
	if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/err"; then t_fail "sanitizer report"; return; fi
	measure "$2" "$FAST" check --deep "$2"
	fsz=$(du -B1 "$2" | cut -f1)
	echo "$1: cpu ${W_CPU} ms, rss ${W_RSS} KiB, ${W_READS:-?} reads, ${W_BYTES:-?} bytes (file: $fsz bytes allocated)"
	[ "$W_CPU" -lt 2000 ] || { t_fail "CPU time $W_CPU ms"; return; }
	[ "${W_RSS:-999999}" -lt 65536 ] || { t_fail "peak RSS $W_RSS KiB"; return; }
	if [ -n "$W_READS" ]; then
		[ "$W_READS" -le $((64 + fsz / 4096)) ] || { t_fail "$W_READS reads of a $fsz-byte file"; return; }
		[ "$W_BYTES" -le $((4 * fsz + 1048576)) ] || { t_fail "$W_BYTES bytes read of a $fsz-byte file"; return; }
	fi
	t_ok
}

# 1 PiB virtual size made by qemu-img (2 MiB clusters: a 2 KiB L1).
fixture qemu-img create -q -f qcow2 -o cluster_size=2M "$T/pib.qcow2" 1P
bounded "1 PiB virtual size (qemu-img)" "$T/pib.qcow2" "0"
# The same size poked into a 4 KiB-cluster image: the L1 cannot map it.
cp "$T/a.qcow2" "$T/size.qcow2"; $POKE "$T/size.qcow2" header.size 0x4000000000000 >/dev/null
bounded "1 PiB virtual size with a 1-entry L1" "$T/size.qcow2" "2"
cp "$T/a.qcow2" "$T/max.qcow2"; $POKE "$T/max.qcow2" header.size 0xfffffffffffffe00 >/dev/null
bounded "virtual size 2^64-512" "$T/max.qcow2" "2"
cp "$T/a.qcow2" "$T/l1.qcow2"; $POKE "$T/l1.qcow2" header.l1_size 0x7fffffff >/dev/null
bounded "l1_size 2^31-1" "$T/l1.qcow2" "2"
cp "$T/a.qcow2" "$T/l1w.qcow2"; $POKE "$T/l1w.qcow2" header.l1_size 0x20000000 >/dev/null
bounded "l1_size 2^29 (x8 wraps 32 bits)" "$T/l1w.qcow2" "2"
cp "$T/a.qcow2" "$T/rt.qcow2"; $POKE "$T/rt.qcow2" header.refcount_table_clusters 0xffffffff >/dev/null
bounded "refcount_table_clusters 2^32-1" "$T/rt.qcow2" "2"
cp "$T/a.qcow2" "$T/ns.qcow2"
$POKE "$T/ns.qcow2" header.nb_snapshots 0xffffffff >/dev/null
$POKE "$T/ns.qcow2" header.snapshots_offset 0x1000 >/dev/null
bounded "nb_snapshots 2^32-1" "$T/ns.qcow2" "2"
snap "$T/a.qcow2" s1
cp "$T/a.qcow2" "$T/sl1.qcow2"; $POKE "$T/sl1.qcow2" 'snapshot[0].l1_size' 0x7fffffff >/dev/null
bounded "snapshot l1_size 2^31-1" "$T/sl1.qcow2" "2"
cp "$T/a.qcow2" "$T/cb.qcow2"; $POKE "$T/cb.qcow2" header.cluster_bits 63 >/dev/null
bounded "cluster_bits 63" "$T/cb.qcow2" "2 63"

# 65536 snapshot entries sharing one 32 MiB L1 table in a sparse file: each
# L1 byte range is walked once (tables.c), so this is not 65536 walks of
# 4 Mi entries (it took 36 s per 1000 entries before; SECURITY.md T9).
mk "$T/sh.qcow2" 1M cluster_size=4096
snap "$T/sh.qcow2" s
python3 - "$T/sh.qcow2" <<'PY'
import os, struct, sys
img = sys.argv[1]
with open(img, "r+b") as f:
    h = f.read(112)
    so = struct.unpack(">Q", h[64:72])[0]
    f.seek(so); e = f.read(200)
    ids, nms = struct.unpack(">HH", e[12:16]); ex = struct.unpack(">I", e[36:40])[0]
    ent = bytearray(e[:(40 + ex + ids + nms + 7) & ~7])
    l1off = (os.path.getsize(img) + 4095) & ~4095
    struct.pack_into(">QI", ent, 0, l1off, 4 << 20)
    tab = l1off + (4 << 20) * 8
    f.truncate(tab); f.seek(tab); f.write(bytes(ent) * 65536)
    f.seek(60); f.write(struct.pack(">IQ", 65536, tab))
PY
bounded "65536 snapshots sharing one 32 MiB L1" "$T/sh.qcow2" "2"
t_name "the shared snapshot L1 is reported as an overlap"
"$QC" check --output=json "$T/sh.qcow2" >"$T/out" 2>/dev/null
python3 -c 'import json,sys; assert any(p["code"] == "overlap-metadata" and "not walked again" in p["message"] for p in json.load(open(sys.argv[1]))["problems"])' "$T/out" && t_ok || t_fail "no overlap-metadata"

# An 8 MiB refcount table (2^20 entries, the cap) whose every entry names
# the same refblock (64 KiB clusters, 32768 refcounts each), in a sparse file: the refblock is compared once for the ranges past the
# file, not 2^20 times (it took 14.6 s with 4 KiB clusters before).
mk "$T/rb.qcow2" 1M cluster_size=65536
python3 - "$T/rb.qcow2" <<'PY'
import os, struct, sys
img = sys.argv[1]
with open(img, "r+b") as f:
    h = f.read(112)
    rto = struct.unpack(">Q", h[48:56])[0]
    f.seek(rto); rb = f.read(8)
    off = (os.path.getsize(img) + 65535) & ~65535
    clusters = (8 << 20) // 65536
    f.truncate(off + (8 << 20)); f.seek(off); f.write(rb * ((8 << 20) // 8))
    f.seek(48); f.write(struct.pack(">QI", off, clusters))
PY
bounded "2^20 refcount table entries naming one refblock" "$T/rb.qcow2" "2"

# 65535 persistent bitmaps (distinct names) whose directory entries all
# name one 400 KiB bitmap table: names are checked by sorting, not pairwise
# (29 s before), and the shared table is scanned once (bitmaps.c).
fixture qemu-img create -q -f qcow2 -o cluster_size=512 "$T/bm.qcow2" 100G
fixture qemu-img bitmap --add -g 512 "$T/bm.qcow2" b
python3 - "$T/bm.qcow2" 65535 <<'PY'
import os, struct, sys
img, n = sys.argv[1], int(sys.argv[2])
with open(img, "r+b") as f:
    d = f.read(65536)
    pos = struct.unpack(">I", d[100:104])[0]
    while True:  # find the bitmaps extension
        t, l = struct.unpack(">II", d[pos:pos + 8])
        if t == 0x23852875:
            ext = pos + 8
            break
        pos += 8 + ((l + 7) & ~7)
    doff = struct.unpack(">Q", d[ext + 16:ext + 24])[0]
    f.seek(doff); ent = f.read(24)
    out = bytearray()
    for i in range(n):
        e = bytearray(ent); name = b"b%06d" % i
        struct.pack_into(">HI", e, 18, len(name), 0)
        e += name + bytes((-(24 + len(name))) % 8)
        out += e
    end = (os.path.getsize(img) + 511) & ~511
    f.seek(end); f.write(out)
    f.seek(ext); f.write(struct.pack(">IIQQ", n, 0, len(out), end))
PY
bounded "65535 bitmaps sharing one table" "$T/bm.qcow2" "2"

# Compression bombs (T9): a compressed cluster whose stream would inflate to
# 64 MiB, appended to the file and pointed at by the first L2 entry with the
# largest descriptor (16 sectors for 4 KiB clusters).  --deep inflates at
# most one cluster of it: bounded time and memory whatever the stream says.
bomb() { # bomb NAME COMPRESSION STREAM-FILE
	mk "$T/$1.qcow2" 1M "cluster_size=4096,compression_type=$2"
	fixture qemu-io -f qcow2 -c 'write -c -P 0x44 0 4k' "$T/$1.qcow2" >/dev/null
	python3 - "$T/$1.qcow2" "$3" <<'PY'
import os, sys
img, stream = sys.argv[1], open(sys.argv[2], "rb").read()[:8192]
end = (os.path.getsize(img) + 511) & ~511
with open(img, "r+b") as f:
    f.seek(end); f.write(stream.ljust(8192, b"\0"))
PY
	off=$(( ($(stat -c %s "$T/$1.qcow2") - 8192) ))
	# 4 KiB clusters: descriptor = bit 62 | (sectors-1) << 58 | offset
	$POKE "$T/$1.qcow2" 'l2[0][0]' $(( (1 << 62) | (15 << 58) | off )) >/dev/null
}
python3 -c 'import sys, zlib; c = zlib.compressobj(9, zlib.DEFLATED, -15); sys.stdout.buffer.write(c.compress(bytes(64 << 20)) + c.flush())' >"$T/zlib.bomb"
bomb zbomb zlib "$T/zlib.bomb"
bounded "zlib bomb (64 MiB in 8 KiB)" "$T/zbomb.qcow2" "0 2 3"
if command -v zstd >/dev/null; then
	head -c 67108864 /dev/zero | zstd -q -19 -c >"$T/zstd.bomb"
	bomb sbomb zstd "$T/zstd.bomb"
	bounded "zstd bomb (64 MiB frame)" "$T/sbomb.qcow2" "0 2 3"
fi
t_done
