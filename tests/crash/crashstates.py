#!/usr/bin/env python3
"""crashstates.py - QEMU's crash states, judged (doc/crash-states.md).

Usage: crashstates.py kill|powerloss NAME
Environment: QC (qcow2fsck under test), SHIM (build/tests/crashshim.so),
CRASH_QUICK=1 (only the default fixture; for iterating).

For each operation of QEMU's tools on a prepared image (data, snapshots):
  kill       run it under the shim with QC_CRASH_AT=N for N = 1, 2, ... until
             it completes: every N leaves the image as a kill before the
             Nth write would.
  powerloss  log one run's writes and flushes; the states are everything
             durable at a flush plus a subset of the writes after it (all
             subsets when there are few, else every single write, every
             prefix and a fixed-seed random sample).
For every state:
  class      qcow2fsck check's class (exit 0/3/2) equals qemu-img check's,
             or qcow2fsck says "leaks" where qemu-img's only errors are
             OFLAG_COPIED on a cluster whose refcount is over-counted
             (QEMU judges COPIED by the stored refcount; that cluster has
             one reference, so writing it in place is safe: a leak);
  repair     qcow2fsck repair exits 0 (the verdict of its own re-check: clean)
             and qemu-img check finds the image clean;
  active     the active layer reads, cluster by cluster, what it read before
             the operation or what it reads after it;
  snapshots  every snapshot still listed reads exactly what it read before
             (a snapshot the operation creates: what it reads after).
Prints FAIL lines and a final "NAME: N passed, N failed" line.
Fixtures (the base images, the reference contents before and after each
operation, the run that logs its writes) are made as tests/lib.sh makes
them: retried (QEMU's tools can fail under CPU load), and one that still
fails is a "FIXTURE-FAIL" line, its states skipped and counted in
", N fixture failures" on the final line, never a failed check.
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

QC = os.environ["QC"]
SHIM = os.environ["SHIM"]
CRASHED = 86  # tests/crashshim.c's exit status

passed = failed = 0
fixture_failures = []


def ok():
    global passed
    passed += 1


def fail(msg):
    global failed
    failed += 1
    print("FAIL: " + msg, flush=True)


def run(cmd, env=None, check=False):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                 p.stdout.decode(errors="replace")[-300:]))
    return p.returncode, p.stdout.decode(errors="replace")


def retried(make):
    """make() up to 3 times, 1 s then 2 s apart (FIXTURE_BACKOFF=0: no
    wait), as tests/lib.sh's fixture_try; the last RuntimeError is raised."""
    backoff = int(os.environ.get("FIXTURE_BACKOFF", "1"))
    for attempt in range(1, 4):
        try:
            return make()
        except RuntimeError as e:
            if attempt == 3:
                raise RuntimeError("%s (3 tries)" % e)
            time.sleep(attempt * backoff)


def fixture(cmd):
    """A fixture command: retried (QEMU's tools can fail under CPU load)."""
    return retried(lambda: run(cmd, check=True))


def fixture_failed(what, err):
    fixture_failures.append(what)
    why = " ".join(str(err).split())
    print("FIXTURE-FAIL %s: %s" % (what, why if len(why) <= 400 else why[:200] + " ... " + why[-200:]),
          flush=True)


# ---- images ----------------------------------------------------------------

def qio(img, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    fixture(args + [img])


def make_base(path, opts, snapshots=True):
    fixture(["qemu-img", "create", "-q", "-f", "qcow2", "-o", opts, path, "4M"])
    qio(path, "write -P 0x11 0 128k", "write -P 0x22 1M 64k", "write -c -P 0x23 3M 64k")
    if snapshots:
        fixture(["qemu-img", "snapshot", "-c", "s1", path])
        qio(path, "write -P 0x33 64k 128k", "write -P 0x34 2M 32k")
        fixture(["qemu-img", "snapshot", "-c", "s2", path])
        qio(path, "write -P 0x44 0 32k", "write -P 0x45 1M 64k")


def snapshot_names(img):
    rc, out = run(["qemu-img", "snapshot", "-l", img])
    names = []
    for line in out.splitlines()[2:]:
        f = line.split()
        if len(f) >= 2:
            names.append(f[1])
    return names


def read_raw(img, tmp, snap=None):
    out = os.path.join(tmp, "raw.bin")
    cmd = ["qemu-img", "convert", "-f", "qcow2", "-O", "raw"]
    if snap:
        cmd += ["-l", "snapshot.name=" + snap]
    rc, msg = run(cmd + [img, out])
    if rc:
        return None
    with open(out, "rb") as f:
        data = f.read()
    os.unlink(out)
    return data


def contents(img, tmp):
    return read_raw(img, tmp), {s: read_raw(img, tmp, s) for s in snapshot_names(img)}


def contents_fixture(img, tmp):
    """contents() of an image QEMU made, as a fixture: every read must work."""
    def make():
        rc, out = run(["qemu-img", "snapshot", "-l", img])
        if rc:
            raise RuntimeError("qemu-img snapshot -l %s: exit %d: %s" % (img, rc, out[-300:]))
        active, snaps = contents(img, tmp)
        if active is None or any(d is None for d in snaps.values()):
            raise RuntimeError("qemu-img convert could not read %s" % img)
        return active, snaps
    return retried(make)


def cluster_size(img):
    with open(img, "rb") as f:
        h = f.read(24)
    return 1 << struct.unpack(">I", h[20:24])[0]


# ---- the judgement of one state --------------------------------------------

CLASS = {0: "clean", 2: "corrupt", 3: "leaks"}


def qemu_check(img):
    rc, out = run(["qemu-img", "check", "-f", "qcow2", img])
    return rc, out


def only_copied_on_overcount(out):
    """qemu-img's errors are all OFLAG_COPIED ones, with leaks beside them."""
    errs = [l for l in out.splitlines() if l.startswith("ERROR")]
    return errs and all(l.startswith("ERROR OFLAG_COPIED") for l in errs) and \
        "Leaked cluster" in out


def only_past_eof(out):
    """Our only findings are refcounts stored past the end of the file."""
    try:
        codes = {p["code"] for p in json.loads(out)["problems"] if p["severity"] != "warning"}
    except (ValueError, KeyError):
        return False
    return codes == {"refcount-leak-past-eof"}


def judge(label, img, before, after, cs, tmp):
    qrc, qout = qemu_check(img)
    rc, out = run([QC, "check", "--output=json", img])
    ours, theirs = CLASS.get(rc, "exit %d" % rc), CLASS.get(qrc, "exit %d" % qrc)
    if ours == theirs or (ours == "leaks" and theirs == "corrupt" and only_copied_on_overcount(qout)):
        ok()
    elif ours == "leaks" and theirs == "clean" and only_past_eof(out):
        # QEMU allocated a cluster at the end of the file (its refcount is
        # written first) and was killed before writing the cluster itself:
        # qemu-img never compares refcounts past the end of the file, but
        # its allocator skips that cluster for good, so it is a real leak.
        ok()
    else:
        fail("%s: class: qcow2fsck %s, qemu-img %s\n%s\n%s" % (label, ours, theirs, out[-1500:], qout[-1500:]))
    if theirs == "corrupt" and ours == "corrupt":
        print("NOTE: %s: QEMU left corruption (both checkers agree)" % label)
    undo = os.path.join(tmp, "undo")
    if os.path.exists(undo):
        os.unlink(undo)
    rrc, rout = run([QC, "repair", "--undo-file=" + undo, img])
    q2, q2out = qemu_check(img)
    # repair exits with the verdict of its own re-check: 0 is clean
    if rrc == 0 and q2 == 0:
        ok()
    else:
        fail("%s: repair exit %d, then qemu-img %d\n%s\n%s" % (label, rrc, q2, rout[-1500:], q2out[-800:]))
    active, snaps = contents(img, tmp)
    ref_b, ref_a = before[0], after[0]
    if active is None:
        fail("%s: the active layer cannot be read" % label)
    elif len(active) not in (len(ref_b), len(ref_a)):
        fail("%s: virtual size %d, before %d, after %d" % (label, len(active), len(ref_b), len(ref_a)))
    else:
        bad = []
        for o in range(0, len(active), cs):
            c = active[o:o + cs]
            b = ref_b[o:o + cs].ljust(len(c), b"\0")
            a = ref_a[o:o + cs].ljust(len(c), b"\0")
            if c != b and c != a:
                bad.append(o)
        if bad:
            fail("%s: active layer: %d cluster(s) read neither before nor after, first at 0x%x" % (label, len(bad), bad[0]))
        else:
            ok()
    bad = []
    for name, data in snaps.items():
        want = before[1].get(name, after[1].get(name))
        if want is None or data != want:
            bad.append(name)
    if bad:
        fail("%s: snapshot(s) %s do not read what they read before" % (label, ",".join(bad)))
    else:
        ok()


# ---- operations and fixtures -------------------------------------------------

def ops_for(fixture_name):
    q = lambda *c: ["qemu-io", "-f", "qcow2"] + [x for cmd in c for x in ("-c", cmd)]
    ops = [
        ("snapshot-c", ["qemu-img", "snapshot", "-c", "s3"]),
        ("snapshot-d", ["qemu-img", "snapshot", "-d", "s1"]),
        ("snapshot-a", ["qemu-img", "snapshot", "-a", "s1"]),
        ("write", q("write -P 0x5a 64k 192k")),
        ("write-compressed", q("write -c -P 0x5b 2560k 64k")),
        ("discard", q("discard 0 128k")),
        ("bitmap-add", ["qemu-img", "bitmap", "--add", "-f", "qcow2"]),
    ]
    if fixture_name == "default":
        ops.append(("resize-grow", None))  # on its own fixture without snapshots
    return ops


FIXTURES = [
    ("default", "cluster_size=65536"),
    ("lazy", "lazy_refcounts=on"),
    ("c512", "cluster_size=512"),
    ("rc1", "refcount_bits=1"),
    ("rc8", "refcount_bits=8"),
    ("rc64", "refcount_bits=64"),
]
# per fixture, the operations run on it (the default one gets all); the
# power-loss test, which judges more states per operation, runs fewer
SUBSET = {
    "kill": {
        "lazy": ["write", "write-compressed", "discard", "snapshot-c"],
        "c512": ["snapshot-c", "snapshot-d", "write"],
        "rc1": ["write", "discard", "bitmap-add"],
        "rc8": ["snapshot-d", "write"],
        "rc64": ["snapshot-c", "discard"],
    },
    "powerloss": {
        "lazy": ["write", "write-compressed"],
        "c512": ["snapshot-c", "write"],
        "rc1": ["write"],
        "rc8": ["write"],
        "rc64": ["snapshot-d"],
    },
}
# refcount_bits=1 cannot hold a snapshot (a shared cluster needs 2)
NO_SNAPSHOTS = {"rc1"}
SNAPSHOT_OPS = {"snapshot-c", "snapshot-d", "snapshot-a"}


def op_cmd(base_cmd, img):
    if base_cmd[0] == "qemu-img" and base_cmd[1] == "bitmap":
        return base_cmd + [img, "b0"]
    return base_cmd + [img]


def plan(tmp, mode):
    """(label, base image, command builder) for every operation to crash."""
    quick = os.environ.get("CRASH_QUICK")
    out = []
    for fname, opts in FIXTURES:
        if quick and fname != "default":
            continue
        base = os.path.join(tmp, "base-%s.qcow2" % fname)
        try:
            make_base(base, opts, snapshots=fname not in NO_SNAPSHOTS)
        except RuntimeError as e:
            fixture_failed("fixture %s" % fname, e)
            continue
        for name, cmd in ops_for(fname):
            sub = SUBSET[mode].get(fname)
            if sub is not None and name not in sub:
                continue
            if fname in NO_SNAPSHOTS and name in SNAPSHOT_OPS:
                continue
            if name == "resize-grow":
                # 4 KiB clusters: growing 4 MiB by 3 MiB needs a new L1 table
                rb = os.path.join(tmp, "base-resize.qcow2")
                try:
                    make_base(rb, "cluster_size=4096", snapshots=False)
                except RuntimeError as e:
                    fixture_failed("fixture resize", e)
                    continue
                out.append(("%s/%s" % (fname, name), rb,
                            lambda img: ["qemu-img", "resize", "-f", "qcow2", img, "+3M"]))
            else:
                out.append(("%s/%s" % (fname, name), base, lambda img, c=cmd: op_cmd(c, img)))
    return out


def shim_env(img, **kw):
    env = dict(os.environ)
    env["LD_PRELOAD"] = SHIM
    env["QC_CRASH_IMAGE"] = img
    for k, v in kw.items():
        env[k] = str(v)
    return env


def reference(label, base, cmd, tmp):
    """Contents before and after one complete run (None: fixture failure)."""
    img = os.path.join(tmp, "after.qcow2")

    def after():
        shutil.copyfile(base, img)
        run_ok(cmd(img))
        return contents_fixture(img, tmp)
    try:
        before = contents_fixture(base, tmp)
        return before, retried(after), cluster_size(base)
    except RuntimeError as e:
        fixture_failed("%s reference" % label, e)
        return None


def run_ok(cmd, env=None):
    rc, out = run(cmd, env=env)
    if rc:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), rc, out[-300:]))
    return out


# ---- kill before the Nth write ---------------------------------------------

def kill_mode(tmp):
    states = 0
    for label, base, cmd in plan(tmp, "kill"):
        ref = reference(label, base, cmd, tmp)
        if not ref:
            continue
        before, after, cs = ref
        img = os.path.join(tmp, "state.qcow2")

        def crash_at(n):
            """The state: the operation killed before its Nth write (a fixture:
            QEMU's tool failing some other way is retried)."""
            shutil.copyfile(base, img)
            rc, out = run(cmd(img), env=shim_env(img, QC_CRASH_AT=n))
            if rc not in (CRASHED, 0):
                raise RuntimeError("the operation failed without a crash (exit %d): %s" % (rc, out[-300:]))
            return rc
        n = 1
        while True:
            try:
                rc = retried(lambda: crash_at(n))
            except RuntimeError as e:
                fixture_failed("%s N=%d" % (label, n), e)
                break
            if rc != CRASHED:
                break
            judge("%s N=%d" % (label, n), img, before, after, cs, tmp)
            states += 1
            n += 1
            if n > 400:
                fail("%s: more than 400 writes" % label)
                break
        print("%s: %d crash states" % (label, n - 1), flush=True)
    return states


# ---- power loss: durable prefix + subsets of the writes after a flush ------

def read_log(path):
    recs, flushes = [], []
    with open(path, "rb") as f:
        b = f.read()
    i = 0
    while i < len(b):
        t = chr(b[i])
        off, ln = struct.unpack("<QQ", b[i + 1:i + 17])
        i += 17
        data = None
        if t == "W":
            data = b[i:i + ln]
            i += ln
        if t == "F":
            flushes.append(off)  # records durable at this flush
        else:
            recs.append((t, off, ln, data))
    return recs, flushes


def apply(img, recs):
    with open(img, "r+b") as f:
        for t, off, ln, data in recs:
            if t == "W":
                f.seek(off)
                f.write(data)
            elif t == "T":
                f.truncate(off)
            elif t in "ZX":
                size = f.seek(0, 2)
                end = off + ln if t == "X" else min(off + ln, size)
                if end > off:
                    f.seek(off)
                    f.write(bytes(end - off))
            elif t == "A":
                size = f.seek(0, 2)
                if off + ln > size:
                    f.truncate(off + ln)


def subsets(m, rnd, cap=12):
    """Index subsets of m pending writes: all, or a deterministic sample."""
    if m == 0:
        return [()]
    if 2 ** m <= cap:
        return [tuple(i for i in range(m) if s >> i & 1) for s in range(2 ** m)]
    out = {()}
    out |= {(i,) for i in range(m)}
    out |= {tuple(range(k)) for k in range(1, m + 1)}
    out |= {tuple(i for i in range(m) if i != j) for j in range(m)}
    while len(out) < min(2 ** m, len({()}) + 3 * m + cap):
        out.add(tuple(i for i in range(m) if rnd.random() < 0.5))
    return sorted(out)


def powerloss_mode(tmp):
    rnd = random.Random(20261202)
    states = 0
    for label, base, cmd in plan(tmp, "powerloss"):
        ref = reference(label, base, cmd, tmp)
        if not ref:
            continue
        before, after, cs = ref
        log = os.path.join(tmp, "writes.log")
        img = os.path.join(tmp, "logged.qcow2")

        def logged():
            shutil.copyfile(base, img)
            if os.path.exists(log):
                os.unlink(log)
            run_ok(cmd(img), env=shim_env(img, QC_CRASH_LOG=log))
        try:
            retried(logged)
        except RuntimeError as e:
            fixture_failed("%s logged run" % label, e)
            continue
        recs, flushes = read_log(log)
        cuts = sorted(set([0] + flushes))
        seen = set()
        n0 = states
        for k, c in enumerate(cuts):
            nxt = cuts[k + 1] if k + 1 < len(cuts) else len(recs)
            pending = list(range(c, len(recs)))[: max(nxt - c, 0)]
            # writes after the last flush may also be pending
            if k + 1 == len(cuts):
                pending = list(range(c, len(recs)))
            for sub in subsets(len(pending), rnd):
                chosen = tuple(range(c)) + tuple(pending[i] for i in sub)
                if chosen in seen:
                    continue
                seen.add(chosen)
                shutil.copyfile(base, img)
                apply(img, [recs[i] for i in chosen])
                judge("%s flush#%d +%s" % (label, k, ",".join(str(pending[i]) for i in sub) or "none"),
                      img, before, after, cs, tmp)
                states += 1
        print("%s: %d writes, %d flushes, %d states" % (label, len(recs), len(flushes), states - n0), flush=True)
    return states


def main():
    mode, name = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="qc-crash.")
    try:
        states = kill_mode(tmp) if mode == "kill" else powerloss_mode(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d crash states judged" % states)
    if fixture_failures:
        print("%s: %d passed, %d failed, %d fixture failures" % (name, passed, failed, len(fixture_failures)))
    else:
        print("%s: %d passed, %d failed" % (name, passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
