#!/bin/sh
# repair-variants.sh - the repair cycle on other image kinds: snapshots with
# real VM state (savevm), extended L2 entries (16-byte entries, subcluster
# bitmaps), 512-byte clusters with 64-bit refcounts, and a v2 (compat=0.10)
# image.  Each: damage, repair, re-check clean with qemu-img agreeing,
# guest content of every layer unchanged, second repair empty, undo exact.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../repair-lib.sh"

variant() { # LABEL PRISTINE CODE FIELD VALUE
	I=$T/$1.qcow2
	cp "$2" "$I"
	python3 "$HERE/../poke.py" "$I" "$4" "$5"
	rm -rf "$T/ref-$1"; guest_save "$2" "$T/ref-$1"
	repair_case "$1" "$I" "$T/ref-$1" "$3"
}

# savevm: snapshot clusters include vm_state.
P=$T/vm.qcow2
mk "$P" 16M
fill "$P"
savevm "$P" vm1
fixture qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$P" >/dev/null
t_name "savevm image made with VM state"
[ "$(qemu-img snapshot -l "$P" | awk 'NR > 2 && $3 != "0" && $3 != "0 B" {n++} END {print n+0}')" -ge 1 ] && t_ok || t_fail "no vm state"
variant vm-rebuild "$P" reftable-entry-reserved 'reftable[0]' '|1'
c=$(( $(entry_off "$P" 'l2[0][48]') >> 16 ))
variant vm-leak "$P" refcount-leak "refcount[$c]" +1

# extended L2: COPIED on a 16-byte entry, and a rebuild.
P=$T/ext.qcow2
mk "$P" 16M extended_l2=on,cluster_size=64k
fill "$P"
snap "$P" s1
fixture qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$P" >/dev/null
variant ext-copied "$P" l2-copied-missing 'l2[0][48]' '^0x8000000000000000'
variant ext-rebuild "$P" reftable-entry-unaligned 'reftable[0]' '+0x200'

# 512-byte clusters, 64-bit refcounts: many refblocks and a multi-cluster reftable.
P=$T/tiny.qcow2
mk "$P" 4M cluster_size=512,refcount_bits=64
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 64k' -c 'write -P 0x33 3M 32k' "$P" >/dev/null
snap "$P" s1
fixture qemu-io -f qcow2 -c 'write -P 0x44 2M 16k' "$P" >/dev/null
variant tiny-rebuild "$P" reftable-entry-reserved 'reftable[0]' '|1'
c=$(( $(entry_off "$P" 'l2[0][0]') >> 9 ))
variant tiny-zero "$P" refcount-zero "refcount[$c]" 0

# v2 image (no header bits, 16-bit refcounts only).
P=$T/v2.qcow2
mk "$P" 16M compat=0.10
fill "$P"
snap "$P" s1
fixture qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$P" >/dev/null
variant v2-rebuild "$P" reftable-entry-past-eof 'reftable[0]' 0x40000000
variant v2-copied "$P" l2-copied-spurious 'l2[0][0]' '|0x8000000000000000'
t_done
