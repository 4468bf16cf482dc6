#!/bin/sh
# repair-rebuild.sh - refcount structure rebuilds (bad reftable entries:
# reserved bits, unaligned, past EOF, shared) and in-place raises (refcount
# 0 or too low), the dirty bit.  New refblocks and reftable go past the end
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

case_poke reserved reftable-entry-reserved 'reftable[0]' '|1'
t_name "reserved: qemu-img -r all fails on it (§9.5 B: overlap check, exit 1) - recorded"
echo "qemu-img -r all on a reftable entry with a reserved bit: exit $QRRC"
[ "$QRRC" != 0 ] && t_ok || t_fail "qemu-img repaired it (exit 0): update doc/format.md §9.5 B"
case_poke unaligned reftable-entry-unaligned 'reftable[0]' '+0x200'
case_poke pasteof reftable-entry-past-eof 'reftable[0]' 0x40000000
t_name "past EOF: qemu-img -r all grows the file to the bogus offset (§9.5 C); qcow2fsck does not"
qs=$(stat -c %s "$QIMG"); os=$(stat -c %s "$T/pasteof.qcow2")
echo "reftable entry past EOF: qemu-img -r all file size $qs, qcow2fsck $(stat -c %s "$P") -> (repaired, then undone) $os"
[ "$qs" -gt 1073741824 ] && t_ok || t_fail "qemu-img size $qs"
# The header's reftable pointer itself: qcow2fsck rebuilds the structure
# from the references.  Measured: qemu-img -r all rebuilds the past-EOF
# case too, but cannot open an image whose reftable offset is unaligned
# (§9.1), so it cannot repair that one.
case_poke hdr-eof header-reftable-past-eof header.refcount_table_offset 0x40000000
case_poke hdr-unaligned header-reftable-offset-unaligned header.refcount_table_offset '+0x200'
t_name "header reftable unaligned: qemu-img check -r all cannot open the image (exit 1)"
[ "$QRRC" = 1 ] && t_ok || t_fail "qemu-img exit $QRRC"
case_poke shared overlap-metadata 'reftable[1]' "$(python3 "$HERE/../poke.py" "$P" 'reftable[0]')"

t_done
