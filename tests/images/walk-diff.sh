#!/bin/sh
# walk-diff.sh - the L2 walk's fast paths change nothing: real images made
# with qemu-img/qemu-io (long contiguous runs, fragments, compressed
# clusters, zero clusters in v2 and v3, extended L2, 512-byte clusters,
# snapshots with shared and copied clusters, an external data file, damaged
# entries) are checked by tests/unit/test_walk_diff.c with the fast paths on
# (on 1 and 3 threads) and off; it compares the whole model (cluster map,
# statistics, problems, vm_state coverage) and the JSON report.  The fuzz
# corpus is compared by the same unit test in `make unit`.
# Then the command line: `check --output=json` with --jobs=1, 2 and 4 (the
# L2 tables and refcount blocks read ahead on helper threads,
# checker/prefetch.c) prints the same bytes and exit code on each image
# and on the corpus (corpus/, corpus/seeds/, tests/crashers/), each run
# twice with 2 threads so that a timing-dependent result has two chances
# to show.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
. "$(dirname "$0")/../walk-lib.sh"
top=$(cd "$HERE/../.." && pwd)
DIFF=${WALK_DIFF:-$(dirname "$QC")/tests/test_walk_diff}
t_name "the differential test is built"
[ -x "$DIFF" ] && t_ok || { t_fail "$DIFF missing (make unit)"; t_done; exit 1; }

io_() { _i=$1; shift; qemu-io -f qcow2 "$@" "$_i" >/dev/null; }
io() { fixture io_ "$@"; }
list=""
add() { list="$list$1
"; }

base plain 64M; add "$T/plain.base"
mk "$T/long.base" 1G; io "$T/long.base" -c 'write -P 0x5a 0 48M' -c 'write -P 0x11 100M 3M'
add "$T/long.base"
mk "$T/frag.qcow2" 64M
io "$T/frag.qcow2" -c 'write 4M 64k' -c 'write 2M 64k' -c 'write 0 64k' -c 'write 3M 128k' -c 'write 1M 64k'
add "$T/frag.qcow2"
mk "$T/zero3.qcow2" 64M; io "$T/zero3.qcow2" -c 'write 0 1M' -c 'write -z 256k 128k' -c 'write -z 10M 64k'
add "$T/zero3.qcow2"
mk "$T/v2.qcow2" 64M compat=0.10; io "$T/v2.qcow2" -c 'write 0 1M' -c 'write -z 128k 64k'
add "$T/v2.qcow2"
base ext 64M extended_l2=on,cluster_size=32k; add "$T/ext.base"
mk "$T/extsub.qcow2" 64M extended_l2=on; io "$T/extsub.qcow2" -c 'write 0 4k' -c 'write 64k 192k' -c 'write -z 32k 4k'
add "$T/extsub.qcow2"
base small 8M cluster_size=512; add "$T/small.base"
base sn 64M; snap "$T/sn.base" s1; io "$T/sn.base" -c 'write -P 0x77 1M 64k' -c 'write -P 0x78 20M 128k'
snap "$T/sn.base" s2; io "$T/sn.base" -c 'write -P 0x79 0 32k'; add "$T/sn.base"
mk "$T/df.qcow2" 64M "data_file=$T/df.raw"; io "$T/df.qcow2" -c 'write 0 1M' -c 'write 5M 64k'
add "$T/df.qcow2"
# damaged entries inside and at the end of runs
i=$(fresh d1 plain); poke "$i" 'l2[0][3]' '|0x100'; poke "$i" 'l2[0][17]' '|0x200'
poke "$i" 'l2[0][18]' '|0x8000000000000000'; add "$i"
i=$(fresh d2 long); poke "$i" 'l2[0][100]' '+0x10000'; poke "$i" 'l2[0][101]' '^0x8000000000000000'; add "$i"
i=$(fresh d3 plain); truncate -s 1M "$i"; add "$i"

n=$(printf '%s' "$list" | grep -c .)
t_name "fast and slow walks agree on $n images"
if QC_WALK_DIFF_FILES=$list "$DIFF" >"$T/diff.out" 2>&1; then t_ok; else
	t_fail "see below"; grep -E 'ERROR|LINE|FAILED' "$T/diff.out" | head -20 >&2; fi
t_name "  ... and the named images were compared (not skipped)"
grep -q 'OK \] named_files_agree' "$T/diff.out" && t_ok || t_fail "skipped"

# jobs_same FILE: the JSON and exit code of --jobs=1 again with 2, 2, 4.
jobs_same() {
	"$QC" check --output=json --jobs=1 "$1" >"$T/j1.json" 2>/dev/null
	r1=$?
	for j in 2 2 4; do
		"$QC" check --output=json --jobs=$j "$1" >"$T/jn.json" 2>"$T/jn.err"
		rn=$?
		if [ "$rn" != "$r1" ] || ! cmp -s "$T/j1.json" "$T/jn.json"; then
			echo "$1: --jobs=$j gives exit $rn and other JSON than --jobs=1 (exit $r1)" >&2
			return 1
		fi
		if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/jn.err"; then
			cat "$T/jn.err" >&2
			return 1
		fi
	done
	return 0
}
t_name "check --jobs=1, 2 and 4 print the same JSON on the $n images"
bad=0
for f in $list; do jobs_same "$f" || bad=$((bad + 1)); done
[ $bad = 0 ] && t_ok || t_fail "$bad images differ"
t_name "  ... and on the corpus"
bad=0; m=0
for f in "$top"/corpus/*.qcow2 "$top"/corpus/seeds/* "$top"/tests/crashers/*; do
	[ -f "$f" ] || continue
	case "$f" in *.sh|*.md|*.txt) continue ;; esac
	m=$((m + 1))
	jobs_same "$f" || bad=$((bad + 1))
done
[ $bad = 0 ] && [ $m -ge 40 ] && t_ok || t_fail "$bad of $m corpus files differ"
t_done
