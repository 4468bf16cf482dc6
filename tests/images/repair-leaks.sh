#!/bin/sh
# repair-leaks.sh - leaked clusters: refcount lowered in place, content of
# the leaked cluster kept (qemu-img check -r punches a hole: doc/format.md
# §9.3 compare_refcounts, §9.5 K), --salvage-leaks copies it
# out, refcounts stored past EOF zeroed (qemu-img never compares them, §9.4),
# --leaks-only fixes leaks and nothing else.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

# An image with data in the active layer and in a snapshot; 0x66 written
# after the snapshot lives in a cluster only the active L2 references.
P=$T/pristine.qcow2
pristine "$P"

# A: orphan the 0x66 cluster (active L2 entry 48 of L1 entry 0 -> 0).
I=$T/orphan.qcow2
cp "$P" "$I"
host=$(entry_off "$I" 'l2[0][48]')
python3 "$HERE/../poke.py" "$I" 'l2[0][48]' 0
guest_save "$I" "$T/ref-orphan"
qemu_repair_all "$I" "orphaned data cluster"
# Stable on QEMU 7.2 (Debian 12): the freed cluster is discarded.
t_name "qemu-img -r all destroys the orphan's content (§9.5 K)"
if python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536].count(0)==65536 else 1)' "$QIMG" "$host"; then
	echo "qemu-img check -r all: leaked cluster 0x$(printf %x "$host") now reads as zeros (hole punched)"
	t_ok
else
	t_fail "qemu-img kept the leaked cluster's content (QEMU behaviour changed?)"
fi
rm -rf "$T/salvage"
repair_case orphan "$I" "$T/ref-orphan" refcount-leak --salvage-leaks="$T/salvage"
# repair_case ended with undo; repair again to look at the repaired file
run_repair "$I" --undo-file="$T/undo.orphan2" --salvage-leaks="$T/salvage2"
t_name "orphan: the leaked cluster's content is still in the file after repair"
if python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]==b"\x66"*65536 else 1)' "$I" "$host"; then
	t_ok; else t_fail "content at 0x$(printf %x "$host") changed"; fi
t_name "orphan: --salvage-leaks copied the non-zero leaked cluster, named by host offset"
f=$(printf '%s/0x%016x' "$T/salvage" "$host")
if [ -f "$f" ] && python3 -c 'import sys; sys.exit(0 if open(sys.argv[1],"rb").read()==b"\x66"*65536 else 1)' "$f" &&
   [ "$(ls "$T/salvage" | wc -l)" = 1 ]; then t_ok; else t_fail "salvage dir: $(ls "$T/salvage" 2>&1)"; fi
t_name "orphan: the refcount went to 0 and qemu-img sees no leak"
[ "$(python3 "$HERE/../poke.py" "$I" "refcount[$((host >> 16))]")" = 0x0 ] && t_ok || t_fail "refcount not 0"

# B: a data cluster's refcount one too high (stored 2, one reference).
I=$T/high.qcow2
cp "$P" "$I"
c=$(( $(entry_off "$I" 'l2[0][48]') >> 16 ))
python3 "$HERE/../poke.py" "$I" "refcount[$c]" +1
guest_save "$I" "$T/ref-high"
qemu_repair_all "$I" "refcount too high"
repair_case high "$I" "$T/ref-high" refcount-leak

# C: a refcount stored for a cluster past the end of the file: qemu-img is
# blind to it (§9.4), so it cannot judge; qcow2fsck zeroes it.
I=$T/eof.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" 'refcount[300]' 1
guest_save "$I" "$T/ref-eof"
expect_qemu "$I" 0 "(blind to refcounts past EOF, §9.4)"
qemu_repair_all "$I" "refcount past EOF"
t_name "qemu-img -r all leaves the refcount past EOF"
[ "$(python3 "$HERE/../poke.py" "$QIMG" 'refcount[300]')" = 0x1 ] && t_ok || t_fail "changed"
repair_case eof "$I" "$T/ref-eof" refcount-leak-past-eof

# D: --leaks-only on a leak plus a refcount too low: only the leak is fixed.
I=$T/mixed.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" "refcount[$c]" +1
d=$(( $(entry_off "$I" 'l2[0][0]') >> 16 ))
python3 "$HERE/../poke.py" "$I" "refcount[$d]" 0
run_repair "$I" --leaks-only --undo-file="$T/undo.mixed"
t_name "--leaks-only: the leak is fixed, the zero refcount stays (exit 2, listed as left)"
if [ "$RRC" = 2 ] && [ "$(rjson 'r["leaks-fixed"]')" = 1 ] && [ "$(rjson 'r["leaks"]')" = 0 ] &&
   [ "$(rjson 'sorted({p["code"] for p in r["problems"]})')" = "['refcount-zero']" ] &&
   [ "$(rjson 'len(r["left"]) > 0')" = True ]; then t_ok; else t_fail "exit $RRC $(rjson 'r["left"]')"; fi
run_repair "$I" --undo-file="$T/undo.mixed2"
t_name "then a full repair fixes the rest"
[ "$RRC" = 0 ] && t_ok || t_fail "exit $RRC"
expect_qemu "$I" 0 "(mixed: after repair)"

# E: a valid image is left byte-identical and no journal is written.
I=$T/valid.qcow2
cp "$P" "$I"
s=$(sha "$I")
run_repair "$I"
t_name "valid image: exit 0, nothing planned, byte-identical, no journal"
if [ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$I")" = "$s" ] &&
   [ ! -e "$I.qcow2fsck-undo" ]; then t_ok; else t_fail "exit $RRC"; fi
t_done
