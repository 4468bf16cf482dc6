#!/usr/bin/env python3
"""gap-sweep.py - find damage classes the repair leaves (a developer's tool,
not part of `make test`).

Usage: QC=build/qcow2fsck python3 tests/gap-sweep.py BASE.qcow2 FIELD...

For every FIELD (tests/poke.py's names: header.l1_size, l2[0][5],
snapshot[0].name_size, ...) and a fixed set of damages (single bit flips
low and high, 0, all ones, +/- one 64 KiB cluster), on a copy of BASE: when
`qcow2fsck check` finds the damage, run `qemu-img check -r all` on one copy
and `qcow2fsck repair` on another, and print one line:

  ok   our repair ends clean (qcow2fsck check exits 0)
  bad  ours does not end clean (and neither does qemu-img's repair)
  GAP  qemu-img's repair ends clean where ours does not (look at what it
       did: it may "end clean" by losing data; compare with qemu-img compare)
  LOST ours ends clean but lists fewer snapshots than BASE (`qemu-img
       snapshot -l` names): a repair that dropped snapshots the damage
       did not destroy (found when snapshots_offset one cluster below the
       table of three snapshots was "ok" with s2 and s3 gone)

with the exit codes and the codes our repair left.  Used to find the classes
of damage tests/images/repair-*.sh must cover (doc/repair.md).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

QC = os.environ.get("QC", "build/qcow2fsck")
POKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "poke.py")
DAMAGES = ["^0x1", "^0x100", "^0x200", "^0x8000", "^0x10000000000", "^0x4000000000000000",
           "0", "0xffffffffffffffff", "+0x10000", "-0x10000"]


def run(*a):
    return subprocess.run(a, capture_output=True, text=True)


def snapshot_names(img):
    out = run("qemu-img", "snapshot", "-l", img).stdout.splitlines()[2:]
    return sorted(line.split()[1] for line in out if len(line.split()) >= 2 and line.split()[0].isdigit())


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    base, fields = sys.argv[1], sys.argv[2:]
    tmp = tempfile.mkdtemp(prefix="gap-sweep.")
    img, qimg, undo = (os.path.join(tmp, n) for n in ("ours.qcow2", "qemu.qcow2", "undo"))
    want = snapshot_names(base)
    try:
        for f in fields:
            if run("python3", POKE, base, f).returncode:
                continue
            for d in DAMAGES:
                shutil.copy(base, img)
                if run("python3", POKE, img, f, d).returncode:
                    continue
                found = run(QC, "check", "-q", img).returncode
                if found == 0:
                    continue
                shutil.copy(img, qimg)
                run("qemu-img", "check", "-r", "all", qimg)
                qemu_after = run("qemu-img", "check", qimg).returncode
                r = run(QC, "repair", "--output=json", "--undo-file=" + undo, img)
                if os.path.exists(undo):
                    os.unlink(undo)
                after = run(QC, "check", "-q", img).returncode
                try:
                    left = [x["code"] for x in json.loads(r.stdout).get("left", [])]
                except ValueError:
                    left = []
                tag = "ok" if after == 0 else ("GAP" if qemu_after == 0 else "bad")
                if after == 0 and not set(want) <= set(snapshot_names(img)):
                    tag = "LOST"
                print(f"{tag} {f} {d}: check={found} repair={r.returncode} after={after} "
                      f"qemu-r-all-after={qemu_after} left={left}", flush=True)
    finally:
        shutil.rmtree(tmp)


main()
