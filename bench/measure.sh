#!/bin/sh
# measure.sh - print the path of the bench's timer (bench/measure.c), built
# if needed: build/measure beside the qcow2fsck under test when `make bench`
# made it, else compiled once into $BENCH_DIR with $CC (default cc).
# Usage: sh bench/measure.sh PATH/TO/qcow2fsck
set -eu
src=$(cd "$(dirname "$0")" && pwd)/measure.c
m=$(dirname "$1")/measure
if [ -x "$m" ] && [ ! "$src" -nt "$m" ]; then
	echo "$m"
	exit 0
fi
m=${BENCH_DIR:-/tmp/qc-bench}/measure
mkdir -p "$(dirname "$m")"
if [ ! -x "$m" ] || [ "$src" -nt "$m" ]; then
	${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -o "$m.tmp" "$src" >&2 && mv "$m.tmp" "$m"
fi
echo "$m"
