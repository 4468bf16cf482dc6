#!/bin/sh
# lib-fixture.sh - the fixture helpers of tests/lib.sh and the runner's
# accounting: a fixture command that fails twice is retried and the cases
# run; one that always fails is tried 3 times, reported as
# "FIXTURE-FAIL what: reason", its cases are skipped and counted as a
# fixture failure, not a failed check; `fixture` skips the rest of the
# file; tests/run-image-tests.sh prints the fixture failures in its total
# line, flags the file, and still exits 0.  The commands are shell
# functions counting their calls in files, so nothing depends on timing
# (FIXTURE_BACKOFF=0: no wait between tries).
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

rm -rf "$T/count"; mkdir -p "$T/count"
FIXTURE_BACKOFF=0 COUNT_DIR="$T/count" QC=/bin/true sh "$T/tree/run-image-tests.sh" >"$T/out" 2>&1
rc=$?
t_name "the runner: total line with fixture failures, the file flagged, exit 0"
grep -qx 'image tests: 1 passed, 0 failed, 2 fixture failures' "$T/out" &&
	grep -q '^FLAG: cases lost to fixture failures in: sample.sh' "$T/out" && [ "$rc" = 0 ] &&
	t_ok || t_fail "exit $rc: $(cat "$T/out")"
t_done
