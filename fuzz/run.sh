#!/bin/sh
# run.sh - `make fuzz`: runs each named target for FUZZ_SECONDS (default 20)
# with libFuzzer, then the check target for FUZZ_SECONDS with AFL++ (with
# the CMPLOG binary and the dictionary).  Seeds come from corpus/ (read
# only); new inputs and findings go to build/fuzz-out/<engine>-<target>/.
# Exits 1 if any engine reported a crash.  Uses one core (nice 10).
# Usage: sh fuzz/run.sh TARGET...   (from the top of the tree, after make fuzz-build)
set -u
secs=${FUZZ_SECONDS:-20}
out=build/fuzz-out
dict=fuzz/qcow2.dict
mkdir -p "$out"
rc=0
for t in "$@"; do
	work=$out/libfuzzer-$t
	mkdir -p "$work/corpus" "$work/artifacts"
	echo "== libFuzzer $t: ${secs}s"
	nice -n 10 build/libfuzzer/fuzz-$t -max_total_time="$secs" -dict="$dict" \
		-rss_limit_mb=2048 -timeout=10 -max_len=1048576 -close_fd_mask=2 \
		-artifact_prefix="$work/artifacts/" "$work/corpus" corpus/seeds corpus \
		>"$work/log" 2>&1
	grep -E "^(Done|SUMMARY)|DONE |ERROR" "$work/log" | tail -n 3
	if ls "$work/artifacts" | grep -q .; then
		echo "libFuzzer $t: findings in $work/artifacts" >&2
		rc=1
	fi
done
if command -v afl-fuzz >/dev/null && [ -x build/afl/fuzz-check ]; then
	work=$out/afl-check
	rm -rf "$work"
	mkdir -p "$work/in"
	find corpus/seeds -name '*.qcow2' -size -1000k -exec cp {} "$work/in/" \;
	echo "== AFL++ check: ${secs}s"
	AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_IGNORE_SEED_PROBLEMS=1 \
		AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
		nice -n 10 afl-fuzz -V "$secs" -i "$work/in" -o "$work/out" -m none -t 2000 \
		-x "$dict" -c build/afl-cmplog/fuzz-check -- build/afl/fuzz-check \
		>"$work/log" 2>&1
	grep -E '^(execs_done|execs_per_sec|edges_found|bitmap_cvg|saved_crashes|saved_hangs) ' \
		"$work/out/default/fuzzer_stats" 2>/dev/null
	if ls "$work/out/default/crashes" 2>/dev/null | grep -q id:; then
		echo "AFL++ check: crashes in $work/out/default/crashes" >&2
		rc=1
	fi
fi
exit $rc
