# lib.sh - helpers for image tests (sourced).  Each test script calls
# t_begin/t_ok/t_fail through the assertion helpers below and finishes with
# t_done, which prints "N passed, N failed" (plus ", N fixture failures"
# when a fixture could not be made) and sets the exit status.
#
# Fixtures: every command that makes a test image (qemu-img create /
# snapshot / bitmap, qemu-io writes, savevm) runs through `fixture` or
# `fixture_try`, which retry it: qemu-img can fail under CPU load (LUKS
# creation: "Unable to get accurate CPU usage").  A fixture that still
# cannot be made is reported as "FIXTURE-FAIL what: reason" and its cases
# are skipped, never counted as failed checks.
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
T_FIX=0
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

# fixture_try CMD...: run a fixture-making command up to 3 times (1 s, then
# 2 s between tries; FIXTURE_BACKOFF=0 for no wait).  0 when it worked; else prints "FIXTURE-FAIL ...",
# counts a fixture failure and returns 1: the caller skips the cases that
# need the fixture.  The command's stdout passes through.
fixture_try() {
	_fx_try=1
	while :; do
		"$@" 2>"$T/fixture.err"
		_fx_rc=$?
		if [ "$_fx_rc" = 0 ]; then
			cat "$T/fixture.err" >&2
			return 0
		fi
		[ "$_fx_try" -ge 3 ] && break
		sleep $((_fx_try * ${FIXTURE_BACKOFF:-1}))
		_fx_try=$((_fx_try + 1))
	done
	_fx_why=$(grep -v '^[[:space:]]*$' "$T/fixture.err" | tail -n 1)
	T_FIX=$((T_FIX + 1))
	echo "FIXTURE-FAIL $(printf '%s ' "$@" | cut -c 1-100 | sed 's/ *$//'): ${_fx_why:-exit status $_fx_rc} (3 tries)" >&2
	return 1
}

# fixture CMD...: like fixture_try, but when the fixture cannot be made the
# rest of this test file is skipped (its later cases need it): the result
# line is printed and the script ends with the status of what ran.
fixture() {
	fixture_try "$@" && return 0
	echo "FIXTURE-FAIL: the remaining cases of $(basename "$0") are skipped" >&2
	t_done
	exit $?
}

t_done() {
	if [ "$T_FIX" = 0 ]; then
		echo "$(basename "$0"): $T_PASS passed, $T_FAIL failed"
	else
		echo "$(basename "$0"): $T_PASS passed, $T_FAIL failed, $T_FIX fixture failures"
	fi
	[ "$T_FAIL" = 0 ]
}

# measure IMG CMD...: the work one run of CMD (on IMG) does, counted rather
# than timed, so that a loaded machine cannot fail a bound: CPU time is the
# process's own (waiting for a core is not counted), and reads are reads.
# Sets W_RC (exit status), W_CPU (user + system CPU time in ms, 10 ms
# resolution) and W_RSS (peak RSS in KiB) from /usr/bin/time; W_READS (read
# calls on IMG) and W_BYTES (the bytes they returned) from strace -P IMG, or
# both empty when strace cannot run here (then only CPU and RSS are bounded).
# LeakSanitizer cannot run under ptrace: it is off for the traced run only.
# W_PREP (optional): shell code run before each of the two runs (a command
# that changes IMG, such as repair, is measured on a fresh copy each time).
measure() {
	_mi=$1; shift
	[ -z "${W_PREP:-}" ] || eval "$W_PREP"
	/usr/bin/time -f '%U %S %M' -o "$T/measure.time" "$@" >/dev/null 2>"$T/measure.err"
	W_RC=$?
	W_CPU=$(awk 'END { printf "%d", ($1 + $2) * 1000 }' "$T/measure.time")
	W_RSS=$(awk 'END { print $3 }' "$T/measure.time")
	W_READS="" W_BYTES=""
	if [ -z "${W_STRACE:-}" ]; then
		W_STRACE=no
		command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null && W_STRACE=yes
	fi
	[ "$W_STRACE" = yes ] || return 0
	: >"$T/measure.trace"
	[ -z "${W_PREP:-}" ] || eval "$W_PREP"
	ASAN_OPTIONS=detect_leaks=0 strace -f -qq -s 0 -e signal=none \
		-e trace=read,pread64,readv,preadv,preadv2 -P "$_mi" -o "$T/measure.trace" \
		"$@" >/dev/null 2>&1
	set -- $(awk '/= [0-9]+$/ { n++; b += $NF } END { printf "%d %.0f", n, b }' "$T/measure.trace")
	W_READS=$1 W_BYTES=$2
	rm -f "$T/measure.trace"
}

# work_bounded LABEL IMG CMD...: a case: one run of CMD (on IMG) does bounded
# work (measure): under WORK_CPU_MS (default 3000) ms of CPU time and at most
# READX (default 4) x IMG's allocated size + 1 MiB read from IMG.  Callers
# say why the bound holds for the right algorithm and not for the wrong one;
# the figures are printed.
work_bounded() {
	_wl=$1 _wi=$2; shift 2
	t_name "$_wl: bounded work (counted, not timed)"
	measure "$_wi" "$@"
	_wf=$(du -B1 "$_wi" | cut -f1)
	echo "$_wl: cpu $W_CPU ms, ${W_READS:-?} reads, ${W_BYTES:-?} bytes (file: $_wf bytes allocated)"
	if [ "$W_CPU" -ge "${WORK_CPU_MS:-3000}" ]; then
		t_fail "CPU time $W_CPU ms"
	elif [ -n "$W_BYTES" ] && [ "$W_BYTES" -gt $((${READX:-4} * _wf + 1048576)) ]; then
		t_fail "$W_BYTES bytes read of a $_wf-byte file"
	else
		t_ok
	fi
}
