#!/bin/sh
# bench.sh - qcow2fsck check against qemu-img check, side by side.
#
# Usage: sh bench/bench.sh PATH/TO/qcow2fsck   (BENCH_ONLY=scan: only bench/scan.sh)
# Builds in $BENCH_DIR (default /tmp/qc-bench): (a) a 1 TiB image made with
# `qemu-img create -o preallocation=metadata` (16 M clusters, 128 MiB of L2
# tables) and (b) a copy with 4 internal snapshots.  Runs each checker
# $BENCH_RUNS times (default 5) per image, warm page cache, and prints the
# medians of wall time and peak RSS (/usr/bin/time) with the ratios.
# Then bench/scan.sh: scan of 500 small images against shell loops.
set -eu
QC=${1:?usage: bench.sh QCOW2FSCK}
QC=$(cd "$(dirname "$QC")" && pwd)/$(basename "$QC")
DIR=${BENCH_DIR:-/tmp/qc-bench}
RUNS=${BENCH_RUNS:-5}
SIZE=${BENCH_SIZE:-1T}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
mkdir -p "$DIR"
if [ "${BENCH_ONLY:-}" = scan ]; then
	exec sh "$(dirname "$0")/scan.sh" "$QC"
fi

A=$DIR/prealloc-$SIZE.qcow2
B=$DIR/prealloc-$SIZE-4snap.qcow2
if [ ! -f "$A" ]; then
	echo "creating $A (preallocation=metadata)..." >&2
	qemu-img create -q -f qcow2 -o preallocation=metadata "$A.tmp" "$SIZE"
	mv "$A.tmp" "$A"
fi
if [ ! -f "$B" ]; then
	echo "creating $B (4 snapshots)..." >&2
	cp --sparse=always "$A" "$B.tmp"
	for i in 1 2 3 4; do qemu-img snapshot -c "s$i" "$B.tmp"; done
	mv "$B.tmp" "$B"
fi

# measure CMD...: prints "wall_s maxrss_kb cpu_s" of one run (cpu = user + sys)
measure() {
	$TIME -f '%e %M %U %S' -o "$DIR/time.out" "$@" >/dev/null 2>&1 || true
	tail -n 1 "$DIR/time.out" | awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}'
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

bench_one() { # label image
	img=$2
	# warm the page cache and check both tools agree on the verdict
	r1=0; "$QC" check -q "$img" >/dev/null 2>&1 || r1=$?
	r2=0; qemu-img check -q "$img" >/dev/null 2>&1 || r2=$?
	: >"$DIR/qc.t"; : >"$DIR/qi.t"
	i=0
	while [ $i -lt "$RUNS" ]; do
		measure "$QC" check -q "$img" >>"$DIR/qc.t"
		measure qemu-img check -q "$img" >>"$DIR/qi.t"
		i=$((i + 1))
	done
	qt=$(cut -d' ' -f1 "$DIR/qc.t" | median); qm=$(cut -d' ' -f2 "$DIR/qc.t" | median)
	it=$(cut -d' ' -f1 "$DIR/qi.t" | median); im=$(cut -d' ' -f2 "$DIR/qi.t" | median)
	qc=$(cut -d' ' -f3 "$DIR/qc.t" | median); ic=$(cut -d' ' -f3 "$DIR/qi.t" | median)
	awk -v l="$1" -v qt="$qt" -v qm="$qm" -v it="$it" -v im="$im" -v qc="$qc" -v ic="$ic" \
	    -v r1="$r1" -v r2="$r2" 'BEGIN {
		sp = (qt > 0) ? sprintf("%.1fx", it / qt) : ">" sprintf("%.0fx", it / 0.01);
		cp = (qc > 0) ? sprintf("%.1fx", ic / qc) : ">" sprintf("%.0fx", ic / 0.01);
		printf "%-26s %7.2f %7.2f %7s %7.2f %7.2f %7s %7.1f %7.1f %5.2f  %d/%d\n", l, qt, it, sp,
		       qc, ic, cp, qm/1024, im/1024, qm/im, r1, r2 }'
}

echo "qcow2fsck check vs qemu-img check: medians of $RUNS runs, warm cache ($(nproc) CPUs)"
printf '%-26s %7s %7s %7s %7s %7s %7s %7s %7s %5s  %s\n' image "wall qc" "qemu" ratio \
	"cpu qc" "qemu" ratio "MiB qc" "qemu" "RSS" "exit qc/qemu"
bench_one "$SIZE prealloc=metadata" "$A"
bench_one "$SIZE + 4 snapshots" "$B"
echo "(wall = elapsed, cpu = user + sys, medians; /usr/bin/time resolution 10 ms; RSS = peak resident"
echo " set, ratio qc/qemu; the machine's load shows in wall time, cpu time is the steadier measure)"
sh "$(dirname "$0")/scan.sh" "$QC"
