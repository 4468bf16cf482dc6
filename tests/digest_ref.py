#!/usr/bin/env python3
# digest_ref.py - reference implementation of qcow2fsck's tree digest
# "tree-v1" (doc/digest.md) over a RAW file: python3 digest_ref.py FILE
# prints "HEX  FILE" like sha256sum.  The tests compare qcow2fsck with it.
import hashlib, struct, sys

BLOCK = 65536

def tree_digest(path):
    with open(path, 'rb') as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        root = hashlib.sha256(b'qcow2fsck-digest-v1\0' + struct.pack('>Q', size))
        left = size
        while left > 0:
            block = f.read(min(BLOCK, left))
            root.update(hashlib.sha256(block).digest())
            left -= len(block)
    return root.hexdigest()

if __name__ == '__main__':
    for p in sys.argv[1:]:
        print('%s  %s' % (tree_digest(p), p))
