#!/bin/sh
# bench.sh - qcow2fsck against QEMU's tools, side by side.
#
# Usage: sh bench/bench.sh PATH/TO/qcow2fsck   (BENCH_ONLY=scan: only bench/scan.sh)
# Builds in $BENCH_DIR (default /tmp/qc-bench): (a) a 1 TiB image made with
# `qemu-img create -o preallocation=metadata` (16 M clusters, 128 MiB of L2
# tables) and (b) a copy with 4 internal snapshots.  Runs each checker
# $BENCH_RUNS times (default 5) per image, warm page cache, and prints the
# medians of wall time, cpu time and peak RSS (bench/measure.c: monotonic
# clock and wait4 rusage, to the microsecond) with the ratios.
# Then bench/scan.sh: scan of 500 small images against shell loops.
# Part 2, reading guest data (skipped with BENCH_DATA=0): 1 GiB images made
# once with qemu-img convert: zlib and zstd compressed (base64 text, about
# 4:3 compressible) and incompressible (random bytes).  check --deep
# against `qemu-io -c 'read 0 1G'`; digest against `qemu-img convert -O raw`
# + sha256sum; digest of the 1 TiB image; digest --jobs=2 against --jobs=1.
set -eu
QC=${1:?usage: bench.sh QCOW2FSCK}
QC=$(cd "$(dirname "$QC")" && pwd)/$(basename "$QC")
DIR=${BENCH_DIR:-/tmp/qc-bench}
RUNS=${BENCH_RUNS:-5}
SIZE=${BENCH_SIZE:-1T}
MEASURE=$(sh "$(dirname "$0")/measure.sh" "$QC")
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

# measure CMD...: prints "wall_s maxrss_kb cpu_s exit" of one run (cpu = user + sys)
measure() { $MEASURE "$@"; }

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
		sp = (qt > 0) ? sprintf("%.1fx", it / qt) : "-";
		cp = (qc > 0) ? sprintf("%.1fx", ic / qc) : "-";
		printf "%-26s %7.3f %7.3f %7s %7.3f %7.3f %7s %7.1f %7.1f %5.2f  %d/%d\n", l, qt, it, sp,
		       qc, ic, cp, qm/1024, im/1024, qm/im, r1, r2 }'
}

echo "qcow2fsck check vs qemu-img check: medians of $RUNS runs, warm cache ($(nproc) CPUs)"
printf '%-26s %7s %7s %7s %7s %7s %7s %7s %7s %5s  %s\n' image "wall qc" "qemu" ratio \
	"cpu qc" "qemu" ratio "MiB qc" "qemu" "RSS" "exit qc/qemu"
bench_one "$SIZE prealloc=metadata" "$A"
bench_one "$SIZE + 4 snapshots" "$B"
echo "(wall = elapsed, cpu = user + sys, medians, in seconds (bench/measure.c: monotonic clock and"
echo " wait4 rusage); RSS = peak resident set, ratio qc/qemu; the machine's load shows in wall time,"
echo " cpu time is the steadier measure)"
sh "$(dirname "$0")/scan.sh" "$QC"

[ "${BENCH_DATA:-1}" = 0 ] && exit 0

# ---- Part 2: reading guest data ----
G=1G
R=$DIR/random-$G.raw
T64=$DIR/text-$G.raw
ZL=$DIR/zlib-$G.qcow2
ZS=$DIR/zstd-$G.qcow2
RQ=$DIR/random-$G.qcow2
[ -f "$R" ] || { echo "creating $R..." >&2; head -c "$G" /dev/urandom >"$R.tmp" && mv "$R.tmp" "$R"; }
[ -f "$T64" ] || { echo "creating $T64..." >&2; base64 -w 76 /dev/urandom | head -c "$G" >"$T64.tmp" && mv "$T64.tmp" "$T64"; }
[ -f "$ZL" ] || { qemu-img convert -c -f raw -O qcow2 -o compression_type=zlib "$T64" "$ZL.tmp" && mv "$ZL.tmp" "$ZL"; }
[ -f "$ZS" ] || { qemu-img convert -c -f raw -O qcow2 -o compression_type=zstd "$T64" "$ZS.tmp" && mv "$ZS.tmp" "$ZS"; }
[ -f "$RQ" ] || { qemu-img convert -f raw -O qcow2 "$R" "$RQ.tmp" && mv "$RQ.tmp" "$RQ"; }
BYTES=$(stat -c %s "$R")

# pair LABEL GOAL -- CMD_A... -- CMD_B...: medians of RUNS alternating runs,
# prints wall and RSS of both and the ratio B/A (how many times A is faster).
pair() {
	label=$1 goal=$2; shift 3
	a=""; while [ "$1" != "--" ]; do a="$a '$1'"; shift; done; shift
	b=""; for x in "$@"; do b="$b '$x'"; done
	eval "$a" >/dev/null 2>&1 || true; eval "$b" >/dev/null 2>&1 || true
	: >"$DIR/a.t"; : >"$DIR/b.t"
	i=0
	while [ $i -lt "$RUNS" ]; do
		eval "measure $a" >>"$DIR/a.t"
		eval "measure $b" >>"$DIR/b.t"
		i=$((i + 1))
	done
	at=$(cut -d' ' -f1 "$DIR/a.t" | median); am=$(cut -d' ' -f2 "$DIR/a.t" | median)
	bt=$(cut -d' ' -f1 "$DIR/b.t" | median); bm=$(cut -d' ' -f2 "$DIR/b.t" | median)
	ac=$(cut -d' ' -f3 "$DIR/a.t" | median); bc=$(cut -d' ' -f3 "$DIR/b.t" | median)
	awk -v l="$label" -v g="$goal" -v at="$at" -v bt="$bt" -v am="$am" -v bm="$bm" \
	    -v ac="$ac" -v bc="$bc" 'BEGIN {
		r = (at > 0) ? sprintf("%.1fx", bt / at) : "-";
		printf "%-42s %6.3f %6.3f %6s %5s %6.3f %6.3f %7.1f %7.1f\n", l, at, bt, r, g, ac, bc,
		       am/1024, bm/1024 }'
}

echo
echo "reading guest data: medians of $RUNS runs, warm cache ($(nproc) CPUs; a shared machine's load shows in wall time)"
printf '%-42s %6s %6s %6s %5s %6s %6s %7s %7s\n' "A vs B" "wall A" "B" "B/A" goal "cpu A" "B" \
	"MiB A" "B"
pair "check --deep vs qemu-io read (zlib)" 4x -- "$QC" check -q --deep "$ZL" -- qemu-io -f qcow2 -r -c "read 0 $BYTES" "$ZL"
pair "check --deep vs qemu-io read (zstd)" 3x -- "$QC" check -q --deep "$ZS" -- qemu-io -f qcow2 -r -c "read 0 $BYTES" "$ZS"
pair "digest vs convert -O raw + sha256sum" 10x -- "$QC" digest "$RQ" -- sh -c "qemu-img convert -O raw '$RQ' '$DIR/conv.raw' && sha256sum '$DIR/conv.raw'; rm -f '$DIR/conv.raw'"
pair "digest --jobs=2 vs --jobs=1 (1 GiB random)" 1.6x -- "$QC" digest --jobs=2 "$RQ" -- "$QC" digest --jobs=1 "$RQ"
pair "digest vs check ($SIZE prealloc=metadata)" "<1s" -- "$QC" digest "$A" -- "$QC" check -q "$A"
echo "(B/A: how many times faster A is in wall time; goal: the issue's target; cpu = user + sys"
echo " summed over threads; MiB: peak RSS.  The last line's goal is A's absolute wall time; its B"
echo " is the plain check of the same image.  On a loaded machine wall times mean little.)"
