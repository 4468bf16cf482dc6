#!/bin/sh
# lib-fixture.sh - the fixture helpers of tests/lib.sh and the runner's
# accounting: a fixture command that fails twice is retried and the cases
# run; one that always fails is tried 3 times, reported as
# "FIXTURE-FAIL what: reason", its cases are skipped and counted as a
# fixture failure, not a failed check; `fixture` skips the rest of the
# file; tests/run-image-tests.sh prints the fixture failures in its total
# line, flags the file, and still exits 0.  The commands are shell
# functions counting their calls in files, so nothing depends on timing
# (FIXTURE_BACKOFF=0: no wait between tries).  Also work_bounded, the
# counted (not timed) bound of the complexity tests: a command that reads
# its file once passes, one that reads it 8 times or burns far more CPU
# than allowed fails.
. "$(dirname "$0")/../lib.sh"

LIB=$(cd "$HERE/.." && pwd)
mkdir -p "$T/tree/images"
cp "$LIB/lib.sh" "$LIB/run-image-tests.sh" "$T/tree/"
cat >"$T/tree/images/sample.sh" <<'EOF'
. "$(dirname "$0")/../lib.sh"
C=$COUNT_DIR
flaky() { n=$(cat "$C/flaky" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$C/flaky"
	[ "$n" -ge 3 ] || { echo "Unable to get accurate CPU usage" >&2; return 1; }; }
broken() { n=$(cat "$C/broken" 2>/dev/null || echo 0); echo $((n + 1)) >"$C/broken"
	echo "qemu-img: Unable to get accurate CPU usage" >&2; return 1; }
t_name "after a flaky fixture"
fixture flaky && t_ok || t_fail "flaky fixture not retried"
t_name "a broken optional fixture"
if fixture_try broken; then t_fail "broken fixture reported success"; fi
t_name "a broken fixture ends the file"
fixture broken
t_fail "not skipped"
t_done
EOF

mkdir -p "$T/count"
FIXTURE_BACKOFF=0 COUNT_DIR="$T/count" QC=/bin/true sh "$T/tree/images/sample.sh" >"$T/out" 2>"$T/err"
rc=$?
t_name "a file with only fixture failures exits 0"
[ "$rc" = 0 ] && t_ok || t_fail "exit $rc: $(cat "$T/out" "$T/err")"
t_name "a flaky fixture is retried until it works (3 calls)"
[ "$(cat "$T/count/flaky")" = 3 ] && t_ok || t_fail "$(cat "$T/count/flaky") calls"
t_name "a broken fixture is tried 3 times each time"
[ "$(cat "$T/count/broken")" = 6 ] && t_ok || t_fail "$(cat "$T/count/broken") calls"
t_name "the result line counts fixture failures apart from failed checks"
grep -qx 'sample.sh: 1 passed, 0 failed, 2 fixture failures' "$T/out" && t_ok || t_fail "$(cat "$T/out")"
t_name "FIXTURE-FAIL names the command and qemu-img's reason"
grep -q '^FIXTURE-FAIL broken: qemu-img: Unable to get accurate CPU usage (3 tries)$' "$T/err" &&
	grep -q 'remaining cases of sample.sh are skipped' "$T/err" && t_ok || t_fail "$(cat "$T/err")"

# work_bounded: reads are counted on the file named (strace -P), CPU time
# by /usr/bin/time; a 1 MiB file with 4 x + 1 MiB allowed
cat >"$T/tree/work.sh" <<'EOF'
. "$(dirname "$0")/lib.sh"
head -c 1048576 /dev/urandom >"$T/f"
work_bounded "read once" "$T/f" cat "$T/f"
work_bounded "read 8 times" "$T/f" sh -c 'for i in 1 2 3 4 5 6 7 8; do cat "$1"; done' sh "$T/f"
WORK_CPU_MS=20
work_bounded "busy" "$T/f" python3 -c 'sum(range(30000000))'
t_done
EOF
QC=/bin/true sh "$T/tree/work.sh" >"$T/out" 2>"$T/err"
t_name "work_bounded: a single read passes, 8 reads and a CPU burner fail"
if command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null; then
	grep -qx 'work.sh: 1 passed, 2 failed' "$T/out" && grep -q 'FAIL: read 8 times: .*bytes read' "$T/err" &&
		grep -q 'FAIL: busy: .*CPU time' "$T/err" && t_ok || t_fail "$(cat "$T/out" "$T/err")"
else
	echo "note: strace cannot run here: only the CPU bound is checked"
	grep -qx 'work.sh: 2 passed, 1 failed' "$T/out" && grep -q 'FAIL: busy: .*CPU time' "$T/err" &&
		t_ok || t_fail "$(cat "$T/out" "$T/err")"
fi
rm -f "$T/tree/work.sh"

rm -rf "$T/count"; mkdir -p "$T/count"
FIXTURE_BACKOFF=0 COUNT_DIR="$T/count" QC=/bin/true sh "$T/tree/run-image-tests.sh" >"$T/out" 2>&1
rc=$?
t_name "the runner: total line with fixture failures, the file flagged, exit 0"
grep -qx 'image tests: 1 passed, 0 failed, 2 fixture failures' "$T/out" &&
	grep -q '^FLAG: cases lost to fixture failures in: sample.sh' "$T/out" && [ "$rc" = 0 ] &&
	t_ok || t_fail "exit $rc: $(cat "$T/out")"
t_done
