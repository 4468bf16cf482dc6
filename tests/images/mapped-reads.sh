#!/bin/sh
# mapped-reads.sh - the digest and check --deep read guest data through a
# mapping of the file (core/io.c qc_io_map, doc/design.md "Mapped reads"):
# their output must be byte for byte what the copying reads give
# (QCOW2FSCK_NO_MMAP=1), on layouts whose data runs start off a page
# (512-byte clusters), span blocks partly (4 KiB clusters with holes),
# are compressed (zlib, zstd), lie past the end of a truncated file, or are
# in snapshots; and a file that shrinks under the mapping (the test-only
# build truncates it right after the first mapping:
# QCOW2FSCK_FAULT_SHRINK_ON_MAP, tests/faults/faults.c) gives an I/O error,
# exit 1, never a crash (SIGBUS) or a sanitizer report.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
QC_FAULTS=${QC_FAULTS:-$(dirname "$QC")/../test/qcow2fsck-faults}

# A guest of 24 MiB: random data with zero runs and a short last run.
python3 - "$T/src.raw" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(5 << 20))
    f.write(bytes(3 << 20) + os.urandom(7000))
    f.truncate(24 << 20)
    f.seek(12 << 20); f.write(os.urandom(9 << 20))
PY
base64 "$T/src.raw" | head -c $((24 << 20)) >"$T/text.raw"

# same_both LABEL CMD...: CMD's stdout and exit status with mappings and
# with QCOW2FSCK_NO_MMAP=1 are the same, and neither reports a sanitizer error
same_both() {
	t_name "$1"; shift
	"$@" >"$T/m.out" 2>"$T/m.err"; rm=$?
	QCOW2FSCK_NO_MMAP=1 "$@" >"$T/n.out" 2>"$T/n.err"; rn=$?
	if grep -q 'runtime error\|Sanitizer' "$T/m.err" "$T/n.err"; then
		t_fail "sanitizer report"; cat "$T/m.err" "$T/n.err" >&2; return
	fi
	if [ "$rm" != "$rn" ]; then t_fail "exit $rm mapped, $rn copied"; return; fi
	if ! cmp -s "$T/m.out" "$T/n.out"; then t_fail "outputs differ"; diff "$T/m.out" "$T/n.out" | head -5 >&2; return; fi
	if [ ! -s "$T/m.out" ]; then t_fail "no output"; return; fi
	t_ok
}

images=""
for v in "cluster_size=65536" "cluster_size=512" "cluster_size=4096" "cluster_size=2M"; do
	n=plain-${v#cluster_size=}
	fixture_try qemu-img convert -f raw -O qcow2 -o "$v" "$T/src.raw" "$T/$n.qcow2" || continue
	images="$images $n"
done
for v in "compression_type=zlib" "compression_type=zstd" "compression_type=zlib,cluster_size=4096"; do
	n=c-$(echo "$v" | tr ',=' '--')
	fixture_try qemu-img convert -c -f raw -O qcow2 -o "$v" "$T/text.raw" "$T/$n.qcow2" || continue
	images="$images $n"
done
# snapshots: the active layer rewritten in places after s1
if fixture_try cp "$T/plain-65536.qcow2" "$T/snaps.qcow2" &&
   fixture_try qemu-img snapshot -c s1 "$T/snaps.qcow2" &&
   fixture_try qemu-io -f qcow2 -c 'write -P 0x5a 1M 3M' -c 'write -c -P 0x6b 6M 1M' "$T/snaps.qcow2" >/dev/null; then
	images="$images snaps"
fi

for n in $images; do
	I="$T/$n.qcow2"
	same_both "$n: digest --all" "$QC" digest --all --output=json "$I"
	same_both "$n: digest --flat" "$QC" digest --flat "$I"
	same_both "$n: check --deep --digest" "$QC" check --deep --digest --output=json "$I"
done
for n in c-compression_type-zlib c-compression_type-zstd; do
	[ -f "$T/$n.qcow2" ] || continue
	same_both "$n: check --deep --jobs=3" "$QC" check --deep --jobs=3 --output=json "$T/$n.qcow2"
done

# A file cut short after the fact (the last 5 MiB of data gone): mapping
# refuses ranges past the end, the copying read gives zeros, the same
# answer either way (digest --force; the check reports the truncation).
if [ -f "$T/plain-65536.qcow2" ]; then
	cp "$T/plain-65536.qcow2" "$T/short.qcow2"
	sz=$(stat -c %s "$T/short.qcow2")
	truncate -s $((sz - (5 << 20))) "$T/short.qcow2"
	same_both "truncated file: digest --force" "$QC" digest --force --output=json "$T/short.qcow2"
	same_both "truncated file: check --deep" "$QC" check --deep --output=json "$T/short.qcow2"
fi

# shrink LABEL IMG EXIT CMD...: the file shrinks right after the first
# mapping; CMD exits with EXIT (1: the I/O error ends it; check --digest
# has finished its check when the digest starts, and the digest that cannot
# complete makes the check's exit 1 too, with the reason)
shrink() {
	t_name "$1"; src=$2; want=$3; shift 3
	cp "$src" "$T/sh.qcow2"
	QCOW2FSCK_FAULT_SHRINK_ON_MAP="$T/sh.qcow2" "$QC_FAULTS" "$@" "$T/sh.qcow2" >"$T/sh.out" 2>"$T/sh.err"
	rc=$?
	if grep -q 'runtime error\|Sanitizer' "$T/sh.err"; then t_fail "sanitizer report"; cat "$T/sh.err" >&2; return; fi
	if [ "$rc" != "$want" ]; then t_fail "exit $rc, want $want"; cat "$T/sh.err" >&2; return; fi
	if [ "$(stat -c %s "$T/sh.qcow2")" -ge "$(stat -c %s "$src")" ]; then t_fail "the file did not shrink"; return; fi
	if ! grep -q 'shrank, or its device failed a read' "$T/sh.out" "$T/sh.err"; then
		t_fail "no I/O error message"; cat "$T/sh.out" "$T/sh.err" >&2; return
	fi
	t_ok
}
t_name "the test-only build takes the shrink fault"
if [ -x "$QC_FAULTS" ] && grep -q QCOW2FSCK_FAULT_SHRINK_ON_MAP "$QC_FAULTS"; then t_ok; else
	t_fail "$QC_FAULTS missing: make build/test/qcow2fsck-faults"; t_done; exit 1; fi
if [ -f "$T/plain-65536.qcow2" ]; then
	shrink "shrunk under digest" "$T/plain-65536.qcow2" 1 digest
	shrink "shrunk under digest --flat" "$T/plain-65536.qcow2" 1 digest --flat
	shrink "shrunk under digest --jobs=3, JSON" "$T/plain-65536.qcow2" 1 digest --jobs=3 --output=json
	shrink "shrunk under check --digest" "$T/plain-65536.qcow2" 1 check --digest
	shrink "shrunk under check --digest, JSON" "$T/plain-65536.qcow2" 1 check --digest --output=json
fi
for n in c-compression_type-zlib c-compression_type-zstd; do
	[ -f "$T/$n.qcow2" ] || continue
	shrink "shrunk under check --deep ($n)" "$T/$n.qcow2" 1 check --deep
	shrink "shrunk under check --deep --jobs=1 ($n), JSON" "$T/$n.qcow2" 1 check --deep --jobs=1 --output=json
done
t_done
