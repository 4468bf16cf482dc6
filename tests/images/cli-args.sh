#!/bin/sh
# cli-args.sh - the command lines of check, digest and scan parse as they
# did before their shared options (--output, --max-mem, -q, --jobs,
# --progress, --deep, --fail-on, --allow, IMAGE wherever it stands) moved
# into one parser (cli/args.c): valid lines, invalid values, missing
# arguments, unknown and abbreviated options, --help, "--".  Each line below
# gives the exit code, the kind of stdout (empty; json: one JSON object;
# jsonl: JSON lines; usage: a --help text; text: other non-empty output)
# and stderr (lines joined by " | ", the scratch directory shown as T, a
# progress line as "WHAT: (progress)", repeats shown once),
# as the binary before the move gave them (recorded with
# CLI_ARGS_RECORD=1, which prints the table instead of checking it).
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

A=$T/a.qcow2
D=$T/dir
mk "$A" 16M
fill "$A"
snap "$A" s1
mkdir -p "$D"
cp "$A" "$D/b.qcow2"
echo "$A" >"$T/list"
"$QC" scan --output=jsonl "$D" >"$T/r.jsonl" 2>/dev/null

# kind FILE: what stdout held
kind() {
	if [ ! -s "$1" ]; then
		echo empty
	elif head -n 1 "$1" | grep -q '^Usage:'; then
		echo usage
	elif python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null; then
		echo json
	elif python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1" 2>/dev/null; then
		echo jsonl
	else
		echo text
	fi
}

# one LINE: runs qcow2fsck with the arguments of LINE (shell words, $A $D $T
# expanded); sets RC, KIND, ERR
one() {
	eval "set -- $1"
	"$QC" "$@" >"$T/out" 2>"$T/err" </dev/null
	RC=$?
	KIND=$(kind "$T/out")
	ERR=$(sed "s|$T|T|g; s/^\([a-z]*\):.* ETA .*\$/\1: (progress)/" "$T/err" | uniq | awk 'NR > 1 { printf " | " } { printf "%s", $0 }')
}

while IFS='	' read -r erc ekind eerr line; do
	case $erc in '#'*|'') continue ;; esac
	one "$line"
	if [ "${CLI_ARGS_RECORD:-0}" = 1 ]; then
		printf '%s\t%s\t%s\t%s\n' "$RC" "$KIND" "$ERR" "$line"
		continue
	fi
	[ "$eerr" = - ] && eerr=""
	t_name "qcow2fsck $line"
	[ "$RC" = "$erc" ] && [ "$KIND" = "$ekind" ] && [ "$ERR" = "$eerr" ] && t_ok ||
		t_fail "exit $RC (want $erc), stdout $KIND (want $ekind), stderr '$ERR' (want '$eerr')"
done <<'EOF'
# exit	stdout	stderr ("-": none)	arguments
0	text	-	check "$A"
64	empty	qcow2fsck: check: expected exactly one IMAGE (try --help)	check
64	empty	qcow2fsck: check: expected exactly one IMAGE (try --help)	check "$A" "$A"
0	json	-	check --output=json "$A"
0	json	-	check --output json "$A"
0	json	-	check "$A" --output=json
0	json	-	check --outp=json "$A"
64	empty	qcow2fsck: --output must be human or json, not 'xml' (try --help)	check --output=xml "$A"
64	empty	qcow2fsck: check: unknown option '--output' (try --help)	check "$A" --output
0	empty	-	check -q "$A"
0	empty	-	check --quiet "$A"
0	empty	-	check -qU "$A"
0	text	-	check --force-share "$A"
0	text	-	check --max-mem=64M "$A"
0	text	-	check --max-mem=64MiB --deep "$A"
64	empty	qcow2fsck: invalid --max-mem '0' (try --help)	check --max-mem=0 "$A"
64	empty	qcow2fsck: invalid --max-mem 'abc' (try --help)	check --max-mem=abc "$A"
64	empty	qcow2fsck: invalid --max-mem '' (try --help)	check --max-mem= "$A"
64	empty	qcow2fsck: --output must be human or json, not 'x' (try --help)	check --output=x --max-mem=0 "$A"
64	empty	qcow2fsck: invalid --max-mem '0' (try --help)	check --max-mem=0 --output=x "$A"
0	text	-	check --jobs=2 "$A"
64	empty	qcow2fsck: --jobs must be a number from 1 to 64, not '0' (try --help)	check --jobs=0 "$A"
64	empty	qcow2fsck: --jobs must be a number from 1 to 64, not '65' (try --help)	check --jobs 65 "$A"
0	text	-	check --fail-on=leak "$A"
64	empty	qcow2fsck: --fail-on must be corruption, leak or warning, not 'all' (try --help)	check --fail-on=all "$A"
0	text	-	check --allow=refcount-leak "$A"
64	empty	qcow2fsck: --allow: unknown problem code 'no-such-code' (see --list-problems) (try --help)	check --allow=no-such-code "$A"
64	empty	qcow2fsck: check: unknown option '--bogus' (try --help)	check --bogus "$A"
64	empty	qcow2fsck: check: unknown option '-x' (try --help)	check -x "$A"
0	text	-	check --de "$A"
0	usage	-	check --help
0	usage	-	check "$A" -h
1	empty	qcow2fsck: cannot open 'T/-n': No such file or directory	check -q -- "$T/-n"
1	empty	qcow2fsck: cannot open '-n': No such file or directory	check -q -- -n
0	text	-	check --digest "$A"
0	json	digest: (progress) | deep: (progress)	check --digest --progress --output=json "$A"
0	text	-	digest "$A"
0	text	-	digest --all "$A"
0	text	-	digest "$A" --snapshot=s1
0	json	-	digest --output=json --jobs=3 "$A"
0	empty	-	digest -q --max-mem=1G "$A"
0	text	-	digest --raw --flat "$A"
64	empty	qcow2fsck: digest: expected exactly one IMAGE (try --help)	digest
64	empty	qcow2fsck: digest: expected exactly one FILE (try --help)	digest --raw
64	empty	qcow2fsck: digest: expected exactly one IMAGE (try --help)	digest "$A" "$A"
64	empty	qcow2fsck: digest: --snapshot and --all exclude each other (try --help)	digest --snapshot=s1 --all "$A"
64	empty	qcow2fsck: digest --raw takes only --flat, --output, --jobs, --progress (try --help)	digest --raw --force "$A"
64	empty	qcow2fsck: --output must be human or json, not 'jsonl' (try --help)	digest --output=jsonl "$A"
64	empty	qcow2fsck: invalid --max-mem '1X' (try --help)	digest --max-mem=1X "$A"
64	empty	qcow2fsck: --jobs must be a number from 1 to 64, not '-1' (try --help)	digest --jobs=-1 "$A"
64	empty	qcow2fsck: digest: unknown option '--deep' (try --help)	digest --deep "$A"
64	empty	qcow2fsck: digest: unknown option '--snapshot' (try --help)	digest "$A" --snapshot
0	usage	-	digest --help
0	text	-	scan "$D"
0	empty	-	scan "$D" -q --jobs=1
0	json	-	scan --output=jsonl --deep "$D"
0	text	-	scan --output=junit --max-mem=64M "$D"
0	text	-	scan --report="$T/rep.jsonl" --shard=1/2 "$D"
0	text	-	scan --files-from="$T/list" --fail-on=warning
0	text	-	scan --summarize "$T/r.jsonl"
0	empty	scan: (progress)	scan --progress -q "$D"
0	empty	-	scan --summarize -q "$T/r.jsonl"
64	empty	qcow2fsck: scan: expected PATH... or --files-from (try --help)	scan
64	empty	qcow2fsck: scan --summarize: expected FILE.jsonl... (try --help)	scan --summarize
64	empty	qcow2fsck: --output must be human, jsonl or junit, not 'json' (try --help)	scan --output=json "$D"
64	empty	qcow2fsck: --jobs must be 1..1024, not '0' (try --help)	scan --jobs=0 "$D"
64	empty	qcow2fsck: --jobs must be 1..1024, not '1025' (try --help)	scan --jobs=1025 "$D"
64	empty	qcow2fsck: --shard must be I/N with 1 <= I <= N, not '3/2' (try --help)	scan --shard=3/2 "$D"
64	empty	qcow2fsck: invalid --max-mem '0' (try --help)	scan --max-mem=0 "$D"
64	empty	qcow2fsck: --allow: unknown problem code 'nope' (see --list-problems) (try --help)	scan --allow=nope "$D"
64	empty	qcow2fsck: cannot open baseline 'T/nope': No such file or directory	scan --baseline="$T/nope" "$D"
64	empty	qcow2fsck: scan: unknown option '--bogus' (try --help)	scan --bogus "$D"
64	empty	qcow2fsck: scan: unknown option '--jobs' (try --help)	scan "$D" --jobs
0	usage	-	scan --help
0	text	-	check --allow=refcount-leak,refcount-leak-past-eof "$A"
0	empty	-	check --max-mem 1T -q "$A"
64	empty	qcow2fsck: check: unknown option '--fail-on' (try --help)	check "$A" --fail-on
1	empty	qcow2fsck: cannot open '--help': No such file or directory	check -- --help
64	empty	qcow2fsck: digest: unknown option '-U' (try --help)	digest -U "$A"
1	empty	qcow2fsck: cannot open 'T/none': No such file or directory	digest --raw "$T/none"
64	empty	qcow2fsck: scan: unknown option '-x' (try --help)	scan -x "$D"
64	empty	qcow2fsck: --shard must be I/N with 1 <= I <= N, not '0/1' (try --help)	scan --shard=0/1 "$D"
0	text	-	scan -- "$D"
64	empty	qcow2fsck: --output must be human, jsonl or junit, not 'T/dir' (try --help)	scan --output "$D"
1	empty	T/none.jsonl: No such file or directory	scan --summarize "$T/none.jsonl"
1	empty	qcow2fsck: cannot open --files-from 'T/nolist': No such file or directory	scan --files-from="$T/nolist"
EOF
t_done
