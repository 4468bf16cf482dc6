#!/bin/sh
# check-digest.sh - `check --digest` reads every compressed stream once:
# the digests' reads give --deep the verdict of every stream they
# decompress, and --deep decompresses only the rest (doc/digest.md).  The
# result is what `check --deep` and `digest --all` give separately: the
# same problems in the same order, the same deep-verified counts, the same
# digests.  The bytes read are counted (strace, pread64), not timed: about
# one read of the compressed data, where --deep plus the digests read it
# twice.  A damaged stream inside the virtual size (read by the digests)
# and one past it (in the L1 table's reach but past the size the header
# now gives: only --deep reads it) are both reported, and the digests are
# then withheld.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

command -v strace >/dev/null || { t_name "strace"; t_fail "strace is needed (scripts/deps.sh installs it)"; t_done; exit $?; }

# 16 MiB of text (about 3:1 compressible) with a hole at 6-8 MiB
python3 - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(3)
words = b"guest host cluster table refcount snapshot layer digest stream block ".split()
t = bytearray(b" ".join(r.choice(words) for _ in range(3000000))[:16 << 20])
t[6 << 20:8 << 20] = bytes(2 << 20)
open(sys.argv[1], "wb").write(t)
PY
I=$T/img.qcow2
fixture qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib "$T/src.raw" "$I"
fixture qemu-img snapshot -c s1 "$I"
fixture qemu-io -f qcow2 -c 'write -P 0x44 1M 1M' "$I" >/dev/null
# the header now says 12 MiB: the L2 entries of 12-16 MiB lie past the
# virtual size, which no digest reads and --deep still verifies
$POKE "$I" header.size 0xc00000 >/dev/null

# rbytes OUT CMD...: bytes the command read with pread64 (strace), into OUT.
# QCOW2FSCK_NO_MMAP=1: guest data is then read, not mapped (doc/design.md
# "Mapped reads"), so pread64 sees every byte; which bytes are read does
# not depend on it (mapped-reads.sh: same answers either way).
rbytes() {
	_o=$1; shift
	QCOW2FSCK_NO_MMAP=1 strace -f -qq -e trace=pread64 -o "$T/st.out" "$@" >/dev/null 2>&1
	awk '/pread64\(/ { n = $NF; if (n ~ /^[0-9]+$/) s += n } END { print s + 0 }' "$T/st.out" >"$_o"
}

compare() { # LABEL: check --digest against check --deep and digest --all
	"$QC" check --deep --output=json "$I" >"$T/deep.json" 2>/dev/null
	"$QC" digest --all --force --output=json "$I" >"$T/dg.json" 2>/dev/null
	"$QC" check --digest --output=json "$I" >"$T/cd.json" 2>"$T/cd.err"
	t_name "$1: same problems, order and deep-verified counts as check --deep"
	python3 - "$T/deep.json" "$T/cd.json" <<'PY' && t_ok || t_fail "$(cat "$T/cd.err")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
pa = [(p["code"], p.get("message")) for p in a["problems"]]
pb = [(p["code"], p.get("message")) for p in b["problems"]]
assert pa == pb, (pa, pb)
assert a["deep-verified"] == b["deep-verified"], (a["deep-verified"], b["deep-verified"])
assert a["exit-code"] == b["exit-code"], (a["exit-code"], b["exit-code"])
PY
}

compare "clean"
t_name "clean: the digests are digest --all's, every compressed cluster verified"
python3 - "$T/dg.json" "$T/cd.json" <<'PY' && t_ok || t_fail "$(cat "$T/cd.json")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert b["exit-code"] == 0 and "digest-error" not in b, b.get("digest-error")
assert [d["digest"] for d in a["digests"]] == [d["digest"] for d in b["digests"]] and len(b["digests"]) == 2
assert b["deep-verified"]["zlib"] >= 256, b["deep-verified"]
PY

t_name "clean: check --digest reads the compressed data once (bytes counted)"
rbytes "$T/n.cd" "$QC_FAST" check -q --digest "$I"
rbytes "$T/n.deep" "$QC_FAST" check -q --deep "$I"
rbytes "$T/n.plain" "$QC_FAST" check -q "$I"
rbytes "$T/n.dg" "$QC_FAST" digest --all "$I"
python3 - "$(cat "$T/n.cd")" "$(cat "$T/n.deep")" "$(cat "$T/n.plain")" "$(cat "$T/n.dg")" "$(stat -c %s "$I")" <<'PY' && t_ok || t_fail "bytes read: check --digest $(cat "$T/n.cd"), --deep $(cat "$T/n.deep"), plain $(cat "$T/n.plain"), digest --all $(cat "$T/n.dg")"
import sys
cd, deep, plain, dg, size = (int(x) for x in sys.argv[1:])
payload = deep - plain              # what --deep reads beyond the plain check
assert payload > size // 4, (payload, size)
# the digests' reads plus the part only --deep reads (12-16 MiB: a quarter)
assert cd <= plain + dg + payload // 2, (cd, plain, dg, payload)
assert cd < plain + dg + payload - payload // 3, (cd, plain + dg + payload)
PY

# a stream the digests read (guest 2 MiB) and one past the size (guest 15 MiB)
for k in 32 240; do
	e=$($POKE "$I" "l2[0][$k]")
	off=$(python3 -c 'import sys; e=int(sys.argv[1],16); assert e >> 62 & 1; print(e & ((1<<54)-1))' "$e")
	printf '\377\376\375\374\373\372\371\370' | dd of="$I" bs=1 seek="$off" conv=notrunc 2>/dev/null
done
compare "two damaged streams"
t_name "two damaged streams: both reported, digests withheld"
python3 - "$T/cd.json" <<'PY' && t_ok || t_fail "$(cat "$T/cd.json")"
import json, sys
b = json.load(open(sys.argv[1]))
bad = [p for p in b["problems"] if p["code"].startswith("compressed-stream")]
assert len(bad) >= 2 and b["exit-code"] == 2, bad
assert b.get("digest-error") and b["digests"] == [], b.get("digest-error")
PY

t_done
