#!/bin/sh
# crash-kill.sh - QEMU's crash states get QEMU's class and repair cleanly
# (doc/crash-states.md).  Each operation of QEMU's tools (qemu-img snapshot -c/-d/-a,
# resize, bitmap --add, qemu-io writes: plain, lazy_refcounts, compressed,
# discard) is killed before its Nth write to the image, for every N until it
# completes (tests/crashshim.c).  Fixtures: 64 KiB
# clusters, lazy_refcounts=on, 512-byte clusters, refcount_bits 1, 8 and 64.
# What each state must satisfy: tests/crash/crashstates.py.
set -u
: "${QC:?QC must point to the qcow2fsck binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=${SHIM:-$HERE/../../build/tests/crashshim.so}
if [ ! -e "$SHIM" ]; then
	echo "FAIL: crash-kill: $SHIM is missing (make build/tests/crashshim.so)"
	echo "crash-kill.sh: 0 passed, 1 failed"
	exit 1
fi
QC=$QC SHIM=$SHIM exec python3 "$HERE/../crash/crashstates.py" kill crash-kill.sh
