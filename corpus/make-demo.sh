#!/bin/sh
# make-demo.sh - makes the three sample images `make demo` checks, with
# qemu-img/qemu-io, damaged with tests/poke.py:
#   demo-clean.qcow2        64 MiB, some data, one internal snapshot
#   demo-leaks.qcow2        the same with one L2 entry cleared: its data cluster leaks
#   demo-bad-header.qcow2   the same with l1_size 0 (qemu-img check: "Could not open")
set -eu
cd "$(dirname "$0")"
poke="python3 ../tests/poke.py"
rm -f demo-*.qcow2
qemu-img create -q -f qcow2 demo-clean.qcow2 64M
qemu-io -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 128k' demo-clean.qcow2 >/dev/null
qemu-img snapshot -c base demo-clean.qcow2
qemu-io -c 'write -P 0x33 0 64k' demo-clean.qcow2 >/dev/null
cp demo-clean.qcow2 demo-leaks.qcow2
$poke demo-leaks.qcow2 'l2[0][16]' 0
cp demo-clean.qcow2 demo-bad-header.qcow2
$poke demo-bad-header.qcow2 header.l1_size 0
