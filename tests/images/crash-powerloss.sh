#!/bin/sh
# crash-powerloss.sh - QEMU's crash states get QEMU's class and repair cleanly
# (doc/crash-states.md).  One run of each operation is logged (writes and flushes,
# tests/crashshim.c); the states are everything durable at a flush plus
# subsets of the writes issued after it (a power loss).  Fixtures: 64 KiB
# clusters, lazy_refcounts=on, 512-byte clusters, refcount_bits 1, 8 and 64.
# What each state must satisfy: tests/crash/crashstates.py.
set -u
: "${QC:?QC must point to the qcow2fsck binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=${SHIM:-$HERE/../../build/tests/crashshim.so}
if [ ! -e "$SHIM" ]; then
	echo "FAIL: crash-powerloss: $SHIM is missing (make build/tests/crashshim.so)"
	echo "crash-powerloss.sh: 0 passed, 1 failed"
	exit 1
fi
QC=$QC SHIM=$SHIM exec python3 "$HERE/../crash/crashstates.py" powerloss crash-powerloss.sh
