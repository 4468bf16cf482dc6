#!/bin/sh
# crash-powerloss.sh - QEMU's crash states get QEMU's class and repair cleanly
# (doc/crash-states.md).  One run of each operation is logged (writes and flushes,
# tests/crashshim.c); the states are everything durable at a flush plus
# subsets of the writes issued after it (a power loss).  Fixtures and the
# judgement of each state: tests/crash-lib.sh, tests/crash/crashstates.py.
. "$(dirname "$0")/../crash-lib.sh"
crash_states powerloss
