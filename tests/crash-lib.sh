# crash-lib.sh - the part the crash-state tests share (sourced by
# tests/images/crash-kill.sh and crash-powerloss.sh; doc/crash-states.md):
# the environment they need (QC, the LD_PRELOAD shim tests/crashshim.c
# built as build/tests/crashshim.so) and crash_states MODE, which runs
# tests/crash/crashstates.py in that mode under the test's name.  The
# fixtures (a 4 MiB image with data and snapshots: 64 KiB clusters,
# lazy_refcounts=on, 512-byte clusters, refcount_bits 1, 8 and 64), the
# operations of QEMU's tools and what each crash state must satisfy are
# crashstates.py's; its result line is lib.sh's ("N passed, N failed[, N
# fixture failures]").
set -u
: "${QC:?QC must point to the qcow2fsck binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
SHIM=${SHIM:-$HERE/../../build/tests/crashshim.so}

# crash_states MODE: kill or powerloss; does not return.
crash_states() {
	_cs_name=$(basename "$0")
	if [ ! -e "$SHIM" ]; then
		echo "FAIL: ${_cs_name%.sh}: $SHIM is missing (make build/tests/crashshim.so)"
		echo "$_cs_name: 0 passed, 1 failed"
		exit 1
	fi
	QC=$QC SHIM=$SHIM exec python3 "$HERE/../crash/crashstates.py" "$1" "$_cs_name"
}
