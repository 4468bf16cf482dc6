#!/bin/sh
# walk-compressed.sh - compressed cluster descriptors: COPIED, offset bits
# >= 56, range past EOF, subcluster bitmap (extended L2), external data file;
# with qemu-img check's verdict (or why it is blind).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../walk-lib.sh"

# 64 KiB clusters: the compressed cluster is L2 entry 128 (guest 8 MiB)
base b 64M
case "$($POKE "$T/b.base" 'l2[0][128]')" in 0x40*) ;; *) t_fail "unexpected layout" ;; esac
i=$(fresh cc b); poke "$i" 'l2[0][128]' '|0x8000000000000000'
damaged compressed-copied 2 corruption 2 "$i"
i=$(fresh ceof b); poke "$i" 'l2[0][128]' '|0x10000000000'
damaged compressed-past-eof 2 corruption 2 "$i"
# a compressed stream may end up to one cluster past EOF: tolerated
i=$(fresh ctail b); truncate -s $((0xa0000 + 100)) "$i"
run_check "$i"; qemu_check "$i"
t_name "compressed data ending past EOF by less than a cluster"
[ "$RC" = "$QRC" ] && t_ok || t_fail "qcow2fsck $RC, qemu-img $QRC"
t_name "  ... and no compressed-past-eof"
has_codes compressed-past-eof && t_fail "reported" || t_ok

# 512-byte clusters: the offset field is bits 0-60, so bits 56-60 can be set
base s 64M cluster_size=512
i=$(fresh cbig s); poke "$i" 'l2[256][0]' '|0x0200000000000000'
damaged compressed-offset-too-large 2 corruption 2 "$i"
t_name "offset >= 2^56 is not claimed (no overlap, no EOF noise)"
has_codes '^overlap-' && t_fail "$(json_codes | tr '\n' ' ')" || t_ok

# extended L2 (32 KiB clusters: entry 256 is the compressed one)
base x 64M extended_l2=on,cluster_size=32k
case "$($POKE "$T/x.base" 'l2[0][256]')" in 0x40*) ;; *) t_fail "unexpected layout" ;; esac
i=$(fresh cbm x); poke "$i" 'l2bitmap[0][256]' 1
# qemu-img also stops counting the cluster (a leak, and -r frees live data, doc/format.md §9.5 F)
damaged compressed-bitmap-nonzero 2 corruption 2 "$i"
t_name "compressed with a bitmap: its data is still accounted (no leak)"
has_codes '^refcount-leak' && t_fail "leak reported" || t_ok

# external data file: compressed clusters are not allowed
mk "$T/df.qcow2" 64M "data_file=$T/df.raw"
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 128k' "$T/df.qcow2" >/dev/null
poke "$T/df.qcow2" 'l2[0][1]' 0x4000000000010000
damaged compressed-with-data-file 2 corruption 2 "$T/df.qcow2"
t_done
