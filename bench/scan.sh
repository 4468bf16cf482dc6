#!/bin/sh
# scan.sh - `qcow2fsck scan --jobs=2` over many small images, against a shell
# loop of `qemu-img check` and a shell loop of `qcow2fsck check` over the
# same files, side by side in one run (called by bench.sh; `make bench`).
#
# Usage: sh bench/scan.sh PATH/TO/qcow2fsck
# $BENCH_DIR (default /tmp/qc-bench) holds the images; $BENCH_SCAN_IMAGES
# (default 500) small images: a 64 MiB qcow2 with a few MiB written, copied.
# Each contender runs $BENCH_SCAN_RUNS times (default 5), warm cache; the
# medians of wall time, cpu time (all processes) and the peak RSS (for a
# loop, the largest of its processes) are printed with the ratios
# (bench/measure.c: monotonic clock and wait4 rusage, to the microsecond).
set -eu
QC=${1:?usage: scan.sh QCOW2FSCK}
QC=$(cd "$(dirname "$QC")" && pwd)/$(basename "$QC")
DIR=${BENCH_DIR:-/tmp/qc-bench}
N=${BENCH_SCAN_IMAGES:-500}
RUNS=${BENCH_SCAN_RUNS:-5}
MEASURE=$(sh "$(dirname "$0")/measure.sh" "$QC")
S=$DIR/scan-$N
if [ ! -f "$S.done" ]; then
	echo "creating $N small images in $S..." >&2
	rm -rf "$S" "$S.done"; mkdir -p "$S"
	qemu-img create -q -f qcow2 "$DIR/scan-base.qcow2" 64M
	qemu-io -f qcow2 -c 'write -P 0x11 0 1M' -c 'write -P 0x22 8M 2M' -c 'write -P 0x33 40M 64k' \
		"$DIR/scan-base.qcow2" >/dev/null
	i=0
	while [ $i -lt "$N" ]; do cp "$DIR/scan-base.qcow2" "$S/img$(printf %04d $i).qcow2"; i=$((i + 1)); done
	: >"$S.done"
fi

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# run LABEL CMD...: RUNS timed runs, "wall_s maxrss_kb cpu_s exit" per line into $DIR/LABEL.t
run() {
	l=$1; shift
	: >"$DIR/$l.t"
	k=0
	while [ $k -lt "$RUNS" ]; do
		$MEASURE "$@" >>"$DIR/$l.t"
		k=$((k + 1))
	done
}
export S QC
# warm the page cache, and check that every image is clean for all three
"$QC" scan -q --jobs=2 "$S" || { echo "bench: scan does not find the images clean" >&2; exit 1; }
run scan "$QC" scan -q --jobs=2 "$S"
run qcloop sh -c 'for f in "$S"/*.qcow2; do "$QC" check -q "$f" || exit 1; done'
run qemuloop sh -c 'for f in "$S"/*.qcow2; do qemu-img check -q "$f" >/dev/null || exit 1; done'
col() { cut -d' ' -f"$2" "$DIR/$1.t" | median; }
st=$(col scan 1); sm=$(col scan 2); sc=$(col scan 3)
ct=$(col qcloop 1); cm=$(col qcloop 2); cc=$(col qcloop 3)
qt=$(col qemuloop 1); qm=$(col qemuloop 2); qc=$(col qemuloop 3)
echo
echo "$N small images: scan --jobs=2 vs shell loops, medians of $RUNS runs, warm cache ($(nproc) CPUs)"
printf '%-26s %8s %8s %8s %8s %9s\n' contender "wall s" "x scan" "cpu s" "x scan" "peak MiB"
awk -v st="$st" -v ct="$ct" -v qt="$qt" -v sm="$sm" -v cm="$cm" -v qm="$qm" \
    -v sc="$sc" -v cc="$cc" -v qc="$qc" 'BEGIN {
	s = (st > 0) ? st : 0.01; c = (sc > 0) ? sc : 0.01
	printf "%-26s %8.3f %8s %8.3f %8s %9.1f\n", "qcow2fsck scan --jobs=2", st, "1.0x", sc, "1.0x", sm / 1024
	printf "%-26s %8.3f %7.1fx %8.3f %7.1fx %9.1f\n", "loop of qcow2fsck check", ct, ct / s, cc, cc / c, cm / 1024
	printf "%-26s %8.3f %7.1fx %8.3f %7.1fx %9.1f\n", "loop of qemu-img check", qt, qt / s, qc, qc / c, qm / 1024
}'
echo "(goals: 10x faster than the qemu-img loop, 1.8x than the qcow2fsck loop on 2 CPUs; wall time"
echo " depends on the machine's load; cpu = user + sys, all processes; seconds, bench/measure.c)"
