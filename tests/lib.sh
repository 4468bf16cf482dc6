# lib.sh - helpers for image tests (sourced).  Each test script calls
# t_begin/t_ok/t_fail through the assertion helpers below and finishes with
# t_done, which prints "N passed, N failed" and sets the exit status.
#
# Environment: QC = the qcow2fsck binary under test (sanitizer build in
# `make test`), T = a scratch directory (created here, removed at exit).
set -u
: "${QC:?QC must point to the qcow2fsck binary}"
HERE=$(cd "$(dirname "$0")" && pwd)
POKE="python3 $HERE/../poke.py"
T=$(mktemp -d /tmp/qc-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
T_PASS=0
T_FAIL=0
T_NAME=""

t_ok() { T_PASS=$((T_PASS + 1)); }
t_fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL: ${T_NAME:-?}: $*" >&2; }
t_name() { T_NAME="$*"; }

# run_check IMG: runs check --output=json; sets RC and JSON (file path).
run_check() {
	JSON="$T/last.json"
	"$QC" check --output=json "$@" >"$JSON" 2>"$T/last.err"
	RC=$?
	if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/last.err"; then
		t_fail "sanitizer report on check $*"; cat "$T/last.err" >&2
	fi
	return 0
}

# json_get KEY: a top-level key of the last JSON report.
json_get() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$JSON" "$1"; }
# json_codes: the problem codes of the last report, one per line, sorted unique.
json_codes() { python3 -c 'import json,sys; print("\n".join(sorted({p["code"] for p in json.load(open(sys.argv[1]))["problems"]})))' "$JSON" 2>/dev/null; }
# json_severity CODE: severity of the first problem with that code.
json_severity() { python3 -c 'import json,sys; print(next((p["severity"] for p in json.load(open(sys.argv[1]))["problems"] if p["code"]==sys.argv[2]),"none"))' "$JSON" "$1"; }

# expect_clean IMG [label]: exit 0, no corruption, no leak; and qemu-img agrees.
expect_clean() {
	t_name "clean: ${2:-$1}"
	run_check "$1"
	if [ "$RC" = 0 ] && [ "$(json_get corruptions)" = 0 ] && [ "$(json_get leaks)" = 0 ]; then
		t_ok
	else
		t_fail "expected exit 0, got $RC: $(json_codes | tr '\n' ' ')"
	fi
}

# expect_code IMG CODE EXIT [SEVERITY]: the report has CODE and the exit status is EXIT.
expect_code() {
	t_name "$2 on ${1##*/}"
	run_check "$1"
	_codes=$(json_codes)
	if ! printf '%s\n' "$_codes" | grep -qx "$2"; then
		t_fail "code $2 not reported (exit $RC; got: $(printf '%s' "$_codes" | tr '\n' ' '))"
		return
	fi
	if [ "$RC" != "$3" ]; then
		t_fail "exit $RC, expected $3"
		return
	fi
	if [ -n "${4:-}" ] && [ "$(json_severity "$2")" != "$4" ]; then
		t_fail "severity $(json_severity "$2"), expected $4"
		return
	fi
	t_ok
}

# qemu_check IMG: sets QRC to qemu-img check's exit status.
qemu_check() {
	qemu-img check -f qcow2 "$1" >/dev/null 2>&1
	QRC=$?
}

# expect_qemu IMG EXIT [why]: qemu-img check exits EXIT on IMG.
expect_qemu() {
	t_name "qemu-img check on ${1##*/} ${3:-}"
	qemu_check "$1"
	if [ "$QRC" = "$2" ]; then t_ok; else t_fail "qemu-img check exit $QRC, expected $2"; fi
}

# expect_same_verdict_as_qemu IMG: our exit status equals qemu-img check's.
expect_same_verdict_as_qemu() {
	t_name "same verdict as qemu-img: ${1##*/}"
	run_check "$1"
	qemu_check "$1"
	if [ "$RC" = "$QRC" ]; then t_ok; else t_fail "qcow2fsck $RC, qemu-img $QRC"; fi
}

t_done() {
	echo "$(basename "$0"): $T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" = 0 ]
}
