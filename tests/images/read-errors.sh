#!/bin/sh
# read-errors.sh - a read that fails (EIO, as from a bad sector) anywhere
# the check, --deep, the digest or the repair reads ends the run with
# exit 1 and an I/O error message: never a hang, a crash, a sanitizer
# report, a verdict of 0/2/3 on metadata that was never read, or a changed
# image.  The test-only build fails every read of the image whose range
# covers one byte (QCOW2FSCK_FAULT_EIO=PATH:OFFSET, tests/faults/faults.c),
# in whichever thread reads it: the check's read-ahead helpers read L2
# tables and refcount blocks in batched runs of up to 16 extents
# (checker/prefetch.c), the digest's and --deep's workers read guest data
# (with QCOW2FSCK_NO_MMAP=1: a mapped read that fails is a SIGBUS, which
# mapped-reads.sh covers).  Each case runs with --jobs=1 and --jobs=3; JSON
# output carries exit-code 1 too; scan marks that image an error and checks
# the next.  A snapshot table that cannot be read is
# not reported as lost entries (it was reported as corruption before);
# `info` says a header it cannot read is unreadable (it said "not a qcow2
# image", exit 63) and marks what it shows incomplete when a later read
# fails (it exited 0).  Controls: a byte the plain check never
# reads (guest data) changes nothing, and the image is checked clean
# without the fault.
#
# qemu-img check has no equivalent to compare with: it cannot be made to
# fail one read (its own test suite uses blkdebug, which qcow2fsck, reading
# the file itself, does not go through).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
QC_FAULTS=${QC_FAULTS:-$(dirname "$QC")/../test/qcow2fsck-faults}

t_name "the test-only build takes the EIO fault"
if [ -x "$QC_FAULTS" ] && grep -q QCOW2FSCK_FAULT_EIO "$QC_FAULTS"; then t_ok; else
	t_fail "$QC_FAULTS missing: make build/test/qcow2fsck-faults"; t_done; exit 1; fi

# eio LABEL IMG OFFSET WANT CMD...: CMD (qcow2fsck arguments, image last
# added here) with every read of IMG covering OFFSET failing; exit WANT, an
# I/O error said when WANT is 1, the image's bytes unchanged.
eio() {
	t_name "$1"; img=$2; at=$3; want=$4; shift 4
	cp "$img" "$T/before.img"
	QCOW2FSCK_FAULT_EIO="$img:$at" timeout 300 "$QC_FAULTS" "$@" "$img" >"$T/e.out" 2>"$T/e.err"
	rc=$?
	if grep -q 'runtime error\|Sanitizer' "$T/e.err"; then t_fail "sanitizer report"; cat "$T/e.err" >&2; return; fi
	if [ "$rc" = 124 ]; then t_fail "hung (killed after 300 s)"; return; fi
	if [ "$rc" != "$want" ]; then t_fail "exit $rc, want $want"; head -5 "$T/e.out" "$T/e.err" >&2; return; fi
	if [ "$want" = 1 ] && ! grep -qi 'I/O error\|Input/output error' "$T/e.out" "$T/e.err"; then
		t_fail "no I/O error message"; head -5 "$T/e.out" "$T/e.err" >&2; return
	fi
	case " $* " in *" --output=json "*)
		jx=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["exit-code"])' "$T/e.out" 2>/dev/null)
		if [ "$jx" != "$rc" ]; then t_fail "JSON exit-code '$jx', process $rc"; return; fi ;;
	esac
	if ! cmp -s "$img" "$T/before.img"; then t_fail "the image changed"; return; fi
	t_ok
}
# addr FIELD: the byte offset of a poke.py field of $I
addr() { $POKE "$I" --addr "$1" | cut -d' ' -f1; }
# host FIELD: the host offset an L1 or L2 entry of $I points to (flags
# masked in Python: an entry with bit 63 set overflows the shell's numbers)
host() { python3 -c 'import sys; print(int(sys.argv[1], 16) & 0x00fffffffffffe00)' "$($POKE "$I" "$1")"; }

# 4 KiB clusters, 1 GiB preallocated metadata: 512 L2 tables that the
# read-ahead reads in batched runs; data in places, a snapshot, then more
# writes (copied L2 tables, a second L1 table, a snapshot table).
I=$T/a.qcow2
mk "$I" 1G cluster_size=4096,preallocation=metadata
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 300M 2M' \
	-c 'write -P 0x33 700M 64k' "$I" >/dev/null
snap "$I" s1
fixture qemu-io -f qcow2 -c 'write -P 0x44 0 64k' -c 'write -P 0x55 900M 1M' "$I" >/dev/null
expect_clean "$I" "the fixture, without a fault"

l1=$(addr 'l1[0]')
l2first=$(host 'l1[0]')
l2mid=$(addr 'l2[256][100]')
l2last=$(addr 'l2[511][511]')
rt=$(addr 'reftable[0]')
rb=$(addr 'refcount[0]')
st=$(addr 'snapshot[0].l1_table_offset')
sl1=$(addr 'snapl1[0][300]')
data=$(host 'l2[350][0]')   # guest 700M
for j in 1 3; do
	eio "header, jobs=$j" "$I" 0 1 check --jobs=$j
	eio "active L1 table, jobs=$j" "$I" "$l1" 1 check --jobs=$j
	eio "first L2 table, jobs=$j" "$I" "$((l2first + 8))" 1 check --jobs=$j
	eio "an L2 table inside a read-ahead run, jobs=$j" "$I" "$l2mid" 1 check --jobs=$j
	eio "the last L2 table, jobs=$j" "$I" "$l2last" 1 check --jobs=$j --output=json
	eio "refcount table, jobs=$j" "$I" "$rt" 1 check --jobs=$j
	eio "a refcount block, jobs=$j" "$I" "$rb" 1 check --jobs=$j --output=json
	eio "snapshot table, jobs=$j" "$I" "$st" 1 check --jobs=$j
	eio "the snapshot's L1 table, jobs=$j" "$I" "$sl1" 1 check --jobs=$j
	eio "guest data, plain check (never read), jobs=$j" "$I" "$((data + 100))" 0 check --jobs=$j
	eio "header, info" "$I" 0 1 info
	eio "an L2 table, info (shown, marked incomplete)" "$I" "$l2mid" 1 info
	eio "an L2 table, info JSON" "$I" "$l2mid" 1 info --output=json
done
# a read that failed is not damage: no problem is concluded from it
for at in "$st" "$l2mid" "$rb"; do
	t_name "failed read at $at: no problem reported"
	QCOW2FSCK_FAULT_EIO="$I:$at" "$QC_FAULTS" check --output=json "$I" >"$T/p.json" 2>/dev/null
	n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["problems"]))' "$T/p.json" 2>&1)
	if [ "$n" = 0 ]; then t_ok; else t_fail "problems: $n"; fi
done

# scan (CI gating of many images): the image whose read fails is an
# "error" (exit 1 for the run), the others are still checked
cp "$I" "$T/other.qcow2"
t_name "scan: a failed read is that image's error, the next image is checked"
QCOW2FSCK_FAULT_EIO="$I:$l2mid" "$QC_FAULTS" scan --jobs=2 --output=jsonl "$I" "$T/other.qcow2" >"$T/s.jsonl" 2>"$T/s.err"
rc=$?
got=$(python3 -c '
import json, sys
v = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    v[r["filename"].rsplit("/", 1)[-1]] = (r["verdict"], r["exit-code"])
print(v.get("a.qcow2"), v.get("other.qcow2"))' "$T/s.jsonl" 2>&1)
if [ "$rc" = 1 ] && [ "$got" = "('error', 1) ('clean', 0)" ] && ! grep -q 'runtime error\|Sanitizer' "$T/s.err"; then
	t_ok; else t_fail "exit $rc, verdicts $got"; fi

# guest data read by the digest (copying reads: QCOW2FSCK_NO_MMAP)
for j in 1 3; do
	QCOW2FSCK_NO_MMAP=1 eio "guest data, digest, jobs=$j" "$I" "$((data + 100))" 1 digest --jobs=$j
	QCOW2FSCK_NO_MMAP=1 eio "guest data, digest --all JSON, jobs=$j" "$I" "$((data + 100))" 1 \
		digest --all --jobs=$j --output=json
	QCOW2FSCK_NO_MMAP=1 eio "guest data, check --digest, jobs=$j" "$I" "$((data + 100))" 1 \
		check --digest --jobs=$j --output=json
done
QCOW2FSCK_NO_MMAP=1 eio "guest data, digest --flat" "$I" "$((data + 100))" 1 digest --flat

# Compressed streams read by check --deep (zlib and zstd): the middle of
# the file is compressed data.
python3 -c 'import os,sys; open(sys.argv[1],"wb").write(os.urandom(3<<20))' "$T/r.raw"
base64 -w 76 "$T/r.raw" | head -c $((16 << 20)) >"$T/text.raw"
for ct in zlib zstd; do
	C=$T/c-$ct.qcow2
	fixture_try qemu-img convert -c -f raw -O qcow2 -o compression_type=$ct "$T/text.raw" "$C" || continue
	mid=$(( $(stat -c %s "$C") / 2 ))
	for j in 1 3; do
		QCOW2FSCK_NO_MMAP=1 eio "$ct stream, check --deep, jobs=$j" "$C" "$mid" 1 check --deep --jobs=$j
	done
	QCOW2FSCK_NO_MMAP=1 eio "$ct stream, plain check (never read)" "$C" "$mid" 0 check
done

# The repair reads before it writes: a failed read leaves the image as it
# was (exit 1, nothing changed), whatever it was about to mend.
cp "$I" "$T/leak.qcow2"
$POKE "$T/leak.qcow2" 'refcount[3]' +1 >/dev/null
I=$T/leak.qcow2
for at in "$l2mid" "$rb" "$st"; do
	eio "repair with a failed read at $at" "$I" "$at" 1 repair --undo-file="$T/u.$at"
done
t_name "the leak is still there for a repair without the fault"
"$QC" repair --undo-file="$T/u.ok" "$I" >"$T/r.out" 2>&1; rc=$?
if [ "$rc" = 0 ]; then t_ok; else t_fail "repair exit $rc"; cat "$T/r.out" >&2; fi
t_done
