#!/bin/sh
# fuzz-replay.sh - replays the fuzzing corpus (corpus/, corpus/seeds/) and
# every crasher in tests/crashers/ (1) through each fuzz target's replay main
# (build/san/fuzz/replay-*, ASan+UBSan, see fuzz/README.md) and (2) through
# the CLI ($QC, the sanitizer build in `make test`): check, check --deep
# --output=json, info, info --output=json.  Any sanitizer report, crash,
# hang or exit status outside the contract (doc/contracts.md §2: 0 1 2 3 63)
# fails.  The timeouts (300 s a CLI run, 1800 s a replay batch) are hang
# guards, not time limits: an input takes well under a second, so a loaded
# machine cannot reach them and a looping input still ends.  A crasher stays here for good once its bug is fixed.
. "$(dirname "$0")/../lib.sh"
top=$(cd "$HERE/../.." && pwd)
rdir=${REPLAY_DIR:-$top/build/san/fuzz}
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

sanitizer_text() { grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer\|UndefinedBehaviorSanitizer' "$1"; }

inputs() { # every replayable file: images and crasher inputs, not scripts or notes
	for d in "$top/corpus" "$top/corpus/seeds" "$top/tests/crashers"; do
		[ -d "$d" ] || continue
		for f in "$d"/*; do
			[ -f "$f" ] || continue
			case $f in *.sh|*.txt|*.md) continue ;; esac
			printf '%s\n' "$f"
		done
	done
}
inputs >"$T/list"
n=$(wc -l <"$T/list")
t_name "corpus is not empty"; [ "$n" -ge 20 ] && t_ok || t_fail "only $n inputs"

# (1) replay mains
found=0
for r in "$rdir"/replay-*; do
	[ -x "$r" ] || continue
	found=$((found + 1))
	t_name "replay ${r##*/} over $n inputs"
	xargs timeout 1800 "$r" <"$T/list" >"$T/replay.out" 2>&1; rc=$?
	if [ "$rc" != 0 ] || sanitizer_text "$T/replay.out"; then
		t_fail "exit $rc"; tail -n 30 "$T/replay.out" >&2
	else
		t_ok
	fi
done
t_name "replay mains built"; [ "$found" -ge 2 ] && t_ok || t_fail "no replay mains in $rdir (make fuzz-replay-bins)"

# (2) the CLI
cli() { # cli LABEL ALLOWED-EXITS ARGS...
	_label=$1 _allowed=$2; shift 2
	timeout 300 "$QC" "$@" >"$T/cli.out" 2>"$T/cli.err"; _rc=$?
	if sanitizer_text "$T/cli.err"; then
		t_fail "$_label: sanitizer report"; head -n 30 "$T/cli.err" >&2; return
	fi
	case " $_allowed " in *" $_rc "*) ;; *) t_fail "$_label: exit $_rc"; return ;; esac
	t_ok
}
bad=0
while read -r f; do
	b=${f#"$top"/}
	t_name "check $b"; cli "check $b" "0 1 2 3 63" check "$f"
	t_name "check --deep json $b"; cli "check --deep $b" "0 1 2 3 63" check --deep --output=json "$f"
	if ! python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/cli.out" 2>/dev/null; then
		bad=$((bad + 1)); echo "not JSON: check --deep --output=json $b" >&2
	fi
	t_name "info $b"; cli "info $b" "0 1 63" info "$f"
	t_name "info json $b"; cli "info json $b" "0 1 63" info --output=json "$f"
done <"$T/list"
t_name "check --output=json is valid JSON on every input"; [ "$bad" = 0 ] && t_ok || t_fail "$bad inputs"
t_done
