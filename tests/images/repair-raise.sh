#!/bin/sh
# repair-raise.sh - refcounts raised in place (0 or too low), the dirty bit,
# a rebuild next to an orphaned cluster, and a rebuild with 4 KiB clusters
# and 8-bit refcounts.  New refblocks and reftable go past the end
# of the file and are switched in by one header write; an orphaned data
# cluster survives (qemu-img's rebuild puts a refblock over it, doc/format.md
# §9.5 D; a reftable entry past EOF makes qemu-img
# grow the file, §9.5 C).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

P=$T/pristine.qcow2
pristine "$P" -c 'write -P 0x77 9M 64k'
guest_save "$P" "$T/ref"

# refcount 0 of a referenced data cluster, and one too low (shared with the
# snapshot): both raised in place inside the sane refblock, no rebuild.
d=$(( $(entry_off "$P" 'l2[0][0]') >> 16 ))
case_poke zero refcount-zero "refcount[$d]" 0
t_name "zero: raised in place (one small write, no new structures)"
run_repair "$T/zero.qcow2" --dry-run
[ "$(rjson '[(w["phase"], w["length"]) for w in r["plan"]]')" = "[('in-place', 2)]" ] && t_ok ||
	t_fail "plan $(rjson 'r["plan"]')"
case_poke low refcount-too-low "refcount[$d]" 1

# dirty bit with a stale refcount: verified/fixed, then the bit cleared.
I=$T/dirty.qcow2
cp "$P" "$I"
python3 "$HERE/../poke.py" "$I" header.incompatible_features '|1'
python3 "$HERE/../poke.py" "$I" "refcount[$d]" +1
qemu_repair_all "$I" dirty
t_name "dirty: qemu-img check -r all fixes the refcount and clears the bit too (measured on 7.2)"
[ "$QRRC" = 0 ] && [ "$(python3 "$HERE/../poke.py" "$QIMG" header.incompatible_features)" = 0x0 ] &&
	t_ok || t_fail "qemu-img exit $QRRC"
repair_case dirty "$I" "$T/ref" header-dirty
run_repair "$I" --undo-file="$T/undo.dirty2"
t_name "dirty: the bit is clear after repair"
[ "$(python3 "$HERE/../poke.py" "$I" header.incompatible_features)" = 0x0 ] && t_ok || t_fail "still set"

# A rebuild next to an orphaned data cluster: qcow2fsck keeps its content.
I=$T/orphan.qcow2
cp "$P" "$I"
host=$(entry_off "$I" 'l2[0][48]')
python3 "$HERE/../poke.py" "$I" 'l2[0][48]' 0
guest_save "$I" "$T/ref-orphan"
# qemu-img gives up on a reserved bit (above), so show its rebuild with
# the trigger it does act on: a referenced cluster with refcount 0.
cp "$I" "$T/orphan-q.qcow2"
python3 "$HERE/../poke.py" "$T/orphan-q.qcow2" "refcount[$d]" 0
qemu_repair_all "$T/orphan-q.qcow2" "rebuild with an orphan"
python3 "$HERE/../poke.py" "$I" 'reftable[0]' '|1'
t_name "orphan: qemu-img's rebuild and leak repair destroy the orphan's content (§9.5 D/K)"
if python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]!=b"\x66"*65536 else 1)' "$QIMG" "$host"; then
	t_ok; else t_fail "qemu-img kept it"; fi
repair_case orphan "$I" "$T/ref-orphan" reftable-entry-reserved
run_repair "$I" --undo-file="$T/undo.orphan2"
t_name "orphan: its content is still in the file after the rebuild"
if python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); o=int(sys.argv[2]); sys.exit(0 if d[o:o+65536]==b"\x66"*65536 else 1)' "$I" "$host"; then
	t_ok; else t_fail "content changed"; fi

# Other geometry: 4 KiB clusters, 8-bit refcounts, data over several refblocks.
P=$T/small.qcow2
mk "$P" 16M cluster_size=4096,refcount_bits=8
fill "$P"
snap "$P" s1
fixture qemu-io -f qcow2 -c 'write -P 0x55 12M 64k' "$P" >/dev/null
rm -rf "$T/ref"; guest_save "$P" "$T/ref"
case_poke small-reserved reftable-entry-reserved 'reftable[1]' '|0x100'
t_done
