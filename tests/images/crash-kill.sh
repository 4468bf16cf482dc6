#!/bin/sh
# crash-kill.sh - QEMU's crash states get QEMU's class and repair cleanly
# (doc/crash-states.md).  Each operation of QEMU's tools (qemu-img snapshot -c/-d/-a,
# resize, bitmap --add, qemu-io writes: plain, lazy_refcounts, compressed,
# discard) is killed before its Nth write to the image, for every N until it
# completes (tests/crashshim.c).  Fixtures and the judgement of each state:
# tests/crash-lib.sh, tests/crash/crashstates.py.
. "$(dirname "$0")/../crash-lib.sh"
crash_states kill
