#!/usr/bin/env python3
"""cmp-clusters.py - compare two raw guest images cluster by cluster.

Usage: cmp-clusters.py BEFORE AFTER CLUSTER_SIZE [START:LENGTH ...]

Every cluster outside the given guest ranges (the damaged ones, byte
offsets, 0x.. allowed) must read the same in AFTER as in BEFORE; a cluster
inside them must read either what it read before or zeros.  Prints one line
per cluster that breaks the rule and exits 1 if any did; else prints how
many damaged clusters kept their old content and how many read zeros.
"""
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    a = open(sys.argv[1], "rb").read()
    b = open(sys.argv[2], "rb").read()
    cs = int(sys.argv[3], 0)
    ranges = []
    for r in sys.argv[4:]:
        s, n = r.split(":")
        ranges.append((int(s, 0), int(s, 0) + int(n, 0)))
    if len(a) != len(b):
        print("sizes differ: %d vs %d" % (len(a), len(b)))
        sys.exit(1)
    bad = kept = zeroed = 0
    zero = bytes(cs)
    for off in range(0, len(a), cs):
        x, y = a[off:off + cs], b[off:off + cs]
        damaged = any(s <= off < e for s, e in ranges)
        if x == y:
            kept += damaged
            continue
        if damaged and y == zero[:len(y)]:
            zeroed += 1
            continue
        print("guest cluster 0x%x differs%s" % (off, " (not zeros)" if damaged else ""))
        bad += 1
    if bad:
        sys.exit(1)
    print("damaged clusters: %d kept, %d read zeros" % (kept, zeroed))


if __name__ == "__main__":
    main()
