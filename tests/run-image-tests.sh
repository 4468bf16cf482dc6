#!/bin/sh
# run-image-tests.sh - runs every tests/images/*.sh and sums their
# "N passed, N failed" lines.  Exit status: 0 only if nothing failed.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
total_p=0; total_f=0; bad=""
for t in "$dir"/images/*.sh; do
	[ -e "$t" ] || continue
	out=$(sh "$t" 2>&1); rc=$?
	line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	printf '%s\n' "$out" | grep -E '^FAIL' | head -n 40
	p=$(printf '%s' "$line" | sed -n 's/.*: \([0-9]*\) passed.*/\1/p'); p=${p:-0}
	f=$(printf '%s' "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-0}
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; printf '%s\n' "$out" | tail -n 5; fi
	echo "${line:-$(basename "$t"): no result line (exit $rc)}"
	total_p=$((total_p + p)); total_f=$((total_f + f))
	[ "$f" != 0 ] && bad="$bad $(basename "$t")"
done
echo "image tests: $total_p passed, $total_f failed"
[ "$total_f" = 0 ] || { echo "failing:$bad"; exit 1; }
