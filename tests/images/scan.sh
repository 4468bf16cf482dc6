#!/bin/sh
# scan.sh - `qcow2fsck scan` over a real tree of images (clean, leaked,
# corrupt and dirty images made with qemu-img/qemu-io and damaged with
# poke.py, a raw and an empty file, symlinks out of the tree and a link
# loop): exit codes under each policy, JSON Lines order and fields, JUnit
# against tests/junit.xsd, shards (exact cover, stable, balanced),
# --summarize, --files-from, --report, progress, and bounded memory.
# Also `check --fail-on/--allow` and the new JSON fields.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"
QCF=${QC_FAST:-$QC}

# sanitizer reports in the stderr of the last run
san() { if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer\|ThreadSanitizer' "$T/err"; then t_fail "sanitizer: $(head -c 400 "$T/err")"; return 1; fi; }
# scan ARGS...: runs "$QC scan", stdout in $T/out, stderr in $T/err, status in RC
scan() { "$QC" scan "$@" >"$T/out" 2>"$T/err"; RC=$?; san || true; }
expect_rc() { t_name "$1"; if [ "$RC" = "$2" ]; then t_ok; else t_fail "exit $RC, expected $2: $(head -c 300 "$T/out") $(head -c 300 "$T/err")"; fi; }
py() { python3 - "$@"; }

# ---- fixtures (lib.sh `fixture`: retried; one QEMU cannot make skips the rest as a fixture failure)
mk "$T/base.qcow2" 64M
fixture qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 64k' "$T/base.qcow2" >/dev/null
A=$T/arch
mkdir -p "$A/sub/deep" "$A/other"
cp "$T/base.qcow2" "$A/clean1.qcow2"
cp "$T/base.qcow2" "$A/sub/clean2.qcow2"
cp "$T/base.qcow2" "$A/sub/deep/clean3.qcow2"
cp "$T/base.qcow2" "$A/leak.qcow2";    $POKE "$A/leak.qcow2" 'refcount[0]' +1 >/dev/null
cp "$T/base.qcow2" "$A/corrupt.qcow2"; $POKE "$A/corrupt.qcow2" 'refcount[0]' 0 >/dev/null
cp "$T/base.qcow2" "$A/sub/warn.qcow2"; $POKE "$A/sub/warn.qcow2" header.incompatible_features '|1' >/dev/null
head -c 1048576 /dev/zero >"$A/other/raw.img"
: >"$A/other/empty"
echo outside >"$T/outside.qcow2"
ln -s "$T/outside.qcow2" "$A/link-out.qcow2"   # points out of the tree
ln -s .. "$A/sub/deep/loop"                      # a directory loop
ln -s clean1.qcow2 "$A/link-in.qcow2"            # points inside the tree
ALL="clean1.qcow2 corrupt.qcow2 leak.qcow2 other/empty other/raw.img sub/clean2.qcow2 sub/deep/clean3.qcow2 sub/warn.qcow2"

# The fixtures are what they claim, by qemu-img's judgement where it has one.
expect_qemu "$A/leak.qcow2" 3 "(raised refcount: leak)"
expect_qemu "$A/corrupt.qcow2" 2 "(refcount 0 on a used cluster)"
expect_code "$A/sub/warn.qcow2" header-dirty 0 warning

# ---- default policy over the tree
scan --jobs=2 "$A"
expect_rc "default policy: worst verdict is corruption" 2
t_name "human summary: one line per file not clean, then totals"
py "$T/out" "$A" <<'PY' && t_ok || t_fail "summary: $(cat "$T/out")"
import sys
lines = open(sys.argv[1]).read().splitlines()
a = sys.argv[2]
want = {"corruption": a + "/corrupt.qcow2", "leak": a + "/leak.qcow2", "warning": a + "/sub/warn.qcow2"}
for cls, path in want.items():
    assert any(l.split()[0] == cls and (path + ":") in l for l in lines), (cls, lines)
nq = [l for l in lines if l.startswith("not-qcow2")]
assert len(nq) == 2 and "empty file" in nq[0] + nq[1], nq
assert not any("clean1" in l or "clean2" in l for l in lines), lines
assert not any("link-out" in l or "outside" in l or "loop" in l for l in lines), lines
assert lines[-2].startswith("8 files,") and "2 not-qcow2" in lines[-2] and "1 corruption" in lines[-2], lines[-2]
assert lines[-1] == "Exit status 2.", lines[-1]
PY
t_name "symlinks are not followed, and that is said on stderr"
grep -q "not followed: 3 symlinks" "$T/err" && t_ok || t_fail "$(cat "$T/err")"

t_name "scan is read-only"
if command -v strace >/dev/null; then
	strace -f -e trace=open,openat,openat2,creat -o "$T/strace" "$QCF" scan -q --jobs=2 "$A" >/dev/null 2>&1
	if grep "$A" "$T/strace" | grep -q 'O_RDWR\|O_WRONLY\|O_CREAT\|creat('; then t_fail "opened for writing: $(grep "$A" "$T/strace" | grep 'O_RDWR\|O_WRONLY\|O_CREAT' | head -2)"
	elif ! grep -q "$A/corrupt.qcow2" "$T/strace"; then t_fail "strace saw no open of the images"
	else t_ok; fi
else
	t_ok; echo "note: strace missing: read-only open not traced"
fi

# ---- policies
scan "$A/leak.qcow2" "$A/clean1.qcow2" "$A/other"
expect_rc "leaks only: 3 (as qemu-img); not-qcow2 files do not count" 3
scan --fail-on=leak "$A/leak.qcow2" "$A/clean1.qcow2"
expect_rc "--fail-on=leak: leaks fail (2)" 2
scan --fail-on=corruption --allow=refcount-leak "$A/leak.qcow2" "$A/clean1.qcow2"
expect_rc "--allow=refcount-leak: 0" 0
t_name "accepted codes are named in the summary"
grep -q "accepted: refcount-leak" "$T/out" && t_ok || t_fail "$(cat "$T/out")"
scan "$A/sub/warn.qcow2"
expect_rc "warnings alone: 0" 0
scan --fail-on=warning "$A/sub/warn.qcow2"
expect_rc "--fail-on=warning: warnings fail (2)" 2
scan --fail-on=warning --allow=header-dirty "$A/sub/warn.qcow2"
expect_rc "--fail-on=warning --allow=header-dirty: 0" 0
scan --fail-on=warning "$A/leak.qcow2"
expect_rc "--fail-on=warning also fails leaks (2)" 2
scan --allow=refcount-zero "$A/corrupt.qcow2"
expect_rc "--allow of a corruption code: 0" 0
scan "$A/nope.qcow2" "$A/clean1.qcow2"
expect_rc "a missing PATH is an error record (1)" 1
scan "$A/nope.qcow2" "$A/corrupt.qcow2"
expect_rc "corruption outranks could-not-check (2)" 2
scan "$A/other"
expect_rc "only not-qcow2 files: 0" 0

printf '%s refcount-zero\n# comment\n\n%s refcount-leak\n' "$A/corrupt.qcow2" "$A/leak.qcow2" >"$T/bl.txt"
scan --baseline="$T/bl.txt" "$A/corrupt.qcow2" "$A/leak.qcow2"
expect_rc "--baseline PATH CODE lines: 0" 0
printf '%s refcount-zero\n' "$A/leak.qcow2" >"$T/bl2.txt"
scan --baseline="$T/bl2.txt" "$A/corrupt.qcow2"
expect_rc "--baseline for another path does not apply: 2" 2
printf '* refcount-zero\n' >"$T/bl3.txt"
scan --baseline="$T/bl3.txt" "$A/corrupt.qcow2"
expect_rc "--baseline '* CODE': 0" 0
printf '* no-such-code\n' >"$T/bl4.txt"
scan --baseline="$T/bl4.txt" "$A/corrupt.qcow2"
expect_rc "--baseline with an unknown code: usage error" 64
scan --output=jsonl "$A" ; cp "$T/out" "$T/prev.jsonl"
scan --baseline="$T/prev.jsonl" --output=jsonl "$A"
expect_rc "--baseline=previous.jsonl accepts every known problem: 0" 0
t_name "records say what the baseline accepted"
py "$T/out" "$A" <<'PY' && t_ok || t_fail "allowed lists wrong"
import json, sys
recs = {json.loads(l)["filename"]: json.loads(l) for l in open(sys.argv[1])}
a = sys.argv[2]
assert recs[a + "/corrupt.qcow2"]["allowed"] == ["refcount-zero"], recs[a + "/corrupt.qcow2"]["allowed"]
assert recs[a + "/leak.qcow2"]["allowed"] == ["refcount-leak"]
assert recs[a + "/clean1.qcow2"]["allowed"] == []
assert all(r["exit-code"] in (0, 63) for r in recs.values())
PY

# ---- JSON Lines
scan --jobs=3 --output=jsonl "$A"
expect_rc "jsonl: same exit status" 2
cp "$T/out" "$T/all.jsonl"
t_name "jsonl: one compact record per file, sorted by path, check's fields and more"
py "$T/all.jsonl" "$A" "$ALL" <<'PY' && t_ok || t_fail "jsonl contract"
import json, sys
a = sys.argv[2]
lines = open(sys.argv[1]).read().splitlines()
recs = [json.loads(l) for l in lines]
names = [r["filename"] for r in recs]
assert names == sorted(names), names
assert names == [a + "/" + n for n in sys.argv[3].split()], names
need = ["schema", "filename", "format", "check-errors", "corruptions", "leaks", "corruptions-fixed",
        "leaks-fixed", "image-end-offset", "total-clusters", "allocated-clusters",
        "fragmented-clusters", "compressed-clusters", "problems", "exit-code", "tool-version",
        "timestamp", "duration", "deep", "backing-file", "verdict", "size", "allowed", "fail-on"]
for r, l in zip(recs, lines):
    miss = [k for k in need if k not in r]
    assert not miss, (r["filename"], miss)
    assert ": " not in l.split('"problems"')[0], "not compact"
    assert r["deep"] is False and r["backing-file"] is None and r["fail-on"] == "corruption"
    assert isinstance(r["duration"], (int, float)) and r["duration"] >= 0
    assert len(r["timestamp"]) == 20 and r["timestamp"].endswith("Z")
by = {n.split(a + "/")[1]: r for n, r in zip(names, recs)}
assert by["corrupt.qcow2"]["verdict"] == "corruption" and by["corrupt.qcow2"]["exit-code"] == 2
assert by["leak.qcow2"]["verdict"] == "leak" and by["leak.qcow2"]["exit-code"] == 3
assert by["sub/warn.qcow2"]["verdict"] == "warning" and by["sub/warn.qcow2"]["exit-code"] == 0
assert by["other/empty"]["verdict"] == "not-qcow2" and by["other/empty"]["size"] == 0
assert by["other/raw.img"]["verdict"] == "not-qcow2"
assert by["clean1.qcow2"]["verdict"] == "clean" and by["clean1.qcow2"]["problems"] == []
PY
t_name "jsonl: each record's exit-code is what check says of that file"
bad=""
for n in $ALL; do
	"$QCF" check -q "$A/$n" >/dev/null 2>&1; c=$?
	r=$(py "$T/all.jsonl" "$A/$n" <<'PY'
import json, sys
print(next(json.loads(l)["exit-code"] for l in open(sys.argv[1]) if json.loads(l)["filename"] == sys.argv[2]))
PY
)
	[ "$c" = "$r" ] || bad="$bad $n:$c/$r"
done
[ -z "$bad" ] && t_ok || t_fail "differs:$bad"
scan --jobs=1 --output=jsonl "$A"; cp "$T/out" "$T/j1.jsonl"
scan --jobs=4 --output=jsonl "$A"; cp "$T/out" "$T/j4.jsonl"
t_name "jsonl: the same records with 1 and 4 jobs (but timestamp and duration)"
py "$T/j1.jsonl" "$T/j4.jsonl" <<'PY' && t_ok || t_fail "records differ"
import json, sys
def load(p):
    out = []
    for l in open(p):
        r = json.loads(l); r.pop("timestamp"); r.pop("duration"); out.append(r)
    return out
assert load(sys.argv[1]) == load(sys.argv[2])
PY
fixture qemu-img convert -c -f qcow2 -O qcow2 "$T/base.qcow2" "$T/comp.qcow2"
scan --deep --output=jsonl "$A/clean1.qcow2" "$T/comp.qcow2"
t_name "jsonl: with --deep, deep is true and deep-verified counts the clusters per algorithm"
py "$T/out" <<'PY' && t_ok || t_fail "deep flag: $(cut -c1-300 "$T/out")"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
assert all(x["deep"] is True for x in r)
comp = [x for x in r if x["filename"].endswith("comp.qcow2")][0]
assert comp["compressed-clusters"] > 0 and comp["deep-verified"] == {"zlib": comp["compressed-clusters"], "zstd": 0}, comp
PY
scan --output=jsonl "$A/nope.qcow2"
t_name "jsonl: an open failure is a record with check-errors and a reason"
py "$T/out" <<'PY' && t_ok || t_fail "$(cat "$T/out")"
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["check-errors"] == 1 and r["exit-code"] == 1 and r["verdict"] == "error"
assert "No such file" in r["check-error"]
PY

# ---- JUnit
scan --output=junit "$A"
expect_rc "junit: same exit status" 2
cp "$T/out" "$T/all.xml"
t_name "junit: valid against tests/junit.xsd"
if command -v xmllint >/dev/null; then
	xmllint --noout --schema "$HERE/../junit.xsd" "$T/all.xml" 2>"$T/xerr" && t_ok || t_fail "$(cat "$T/xerr")"
else
	t_ok; echo "note: xmllint missing; structure is checked below with python3 only"
fi
t_name "junit: one testcase per file; failures, skips and counts agree"
py "$T/all.xml" "$A" <<'PY' && t_ok || t_fail "junit structure"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
a = sys.argv[2]
assert root.tag == "testsuites"
suites = root.findall("testsuite")
assert len(suites) == 1
cases = suites[0].findall("testcase")
assert len(cases) == 8, len(cases)
by = {c.get("name").split(a + "/")[1]: c for c in cases}
f = by["corrupt.qcow2"].find("failure")
assert f is not None and f.get("type") == "corruption" and "refcount-zero:" in f.text
assert by["leak.qcow2"].find("failure") is not None
assert by["other/empty"].find("skipped") is not None
assert by["clean1.qcow2"].find("failure") is None and by["clean1.qcow2"].find("error") is None
assert by["sub/warn.qcow2"].find("failure") is None and "header-dirty" in by["sub/warn.qcow2"].find("system-out").text
s = suites[0]
assert (s.get("tests"), s.get("failures"), s.get("errors"), s.get("skipped")) == ("8", "2", "0", "2"), s.attrib
PY
scan --output=junit "$A/nope.qcow2"
t_name "junit: an open failure is an error"
py "$T/out" <<'PY' && t_ok || t_fail "$(cat "$T/out")"
import sys, xml.etree.ElementTree as ET
c = ET.parse(sys.argv[1]).getroot().find("testsuite/testcase")
assert c.find("error") is not None and "No such file" in c.find("error").get("message")
PY
# a hostile name: markup and control bytes in a file name stay well-formed XML
cp "$T/base.qcow2" "$T/x<&\"'$(printf '\001')y.qcow2"
scan --output=junit "$T/x<&\"'$(printf '\001')y.qcow2"
t_name "junit: markup and control bytes in names are escaped"
xmllint --noout --schema "$HERE/../junit.xsd" "$T/out" 2>"$T/xerr" && t_ok || t_fail "$(cat "$T/xerr")"

# ---- --report: the machine format to a file, the human summary on stdout
scan --report="$T/rep.jsonl" "$A"
t_name "--report writes jsonl and stdout keeps the summary"
if grep -q "^Exit status 2.$" "$T/out" && [ "$(wc -l <"$T/rep.jsonl")" = 8 ]; then t_ok; else t_fail "report/summary"; fi
scan --report="$T/rep.xml" --output=junit "$A"
t_name "--report with --output=junit"
xmllint --noout --schema "$HERE/../junit.xsd" "$T/rep.xml" 2>/dev/null && grep -q "^Exit status 2.$" "$T/out" && t_ok || t_fail "junit report"
scan -q "$A"
t_name "-q: nothing on stdout, the status is the verdict"
[ ! -s "$T/out" ] && [ "$RC" = 2 ] && t_ok || t_fail "output with -q or exit $RC"

# ---- shards: exact cover, stable, balanced by size
cp "$T/base.qcow2" "$A/sub/big.qcow2"
fixture qemu-io -f qcow2 -c 'write -P 0x55 2M 4M' "$A/sub/big.qcow2" >/dev/null
"$QC" scan --output=jsonl "$A" >"$T/full.jsonl" 2>/dev/null
for N in 1 2 3 4; do
	: >"$T/shards.$N"
	I=1
	while [ $I -le $N ]; do
		"$QC" scan --output=jsonl --shard=$I/$N "$A" >"$T/s.$N.$I" 2>/dev/null
		"$QC" scan --output=jsonl --shard=$I/$N --jobs=1 "$A" >"$T/s2.$N.$I" 2>/dev/null
		cat "$T/s.$N.$I" >>"$T/shards.$N"
		I=$((I + 1))
	done
	t_name "shards $N: every file in exactly one shard, stable, balanced"
	py "$T/full.jsonl" "$N" "$T/s.$N." "$T/s2.$N." <<'PY' && t_ok || t_fail "shards $N"
import json, sys
full = {json.loads(l)["filename"]: json.loads(l)["size"] for l in open(sys.argv[1])}
n = int(sys.argv[2])
seen, loads = [], []
for i in range(1, n + 1):
    a = [json.loads(l)["filename"] for l in open(sys.argv[3] + str(i))]
    b = [json.loads(l)["filename"] for l in open(sys.argv[4] + str(i))]
    assert a == b, "not stable"
    seen += a
    loads.append(sum(full[f] + 65536 for f in a))
assert sorted(seen) == sorted(full) and len(seen) == len(set(seen)), "not an exact cover"
big = max(v + 65536 for v in full.values())
assert max(loads) - min(loads) <= big, ("unbalanced", loads)
PY
done
t_name "--summarize over merged shard reports equals the direct summary"
"$QC" scan "$A" >"$T/direct.txt" 2>/dev/null; d=$?
cat "$T/s.3.3" "$T/s.3.1" "$T/s.3.2" >"$T/merged.jsonl"
"$QC" scan --summarize "$T/merged.jsonl" >"$T/summ.txt" 2>"$T/err"; s=$?
if cmp -s "$T/direct.txt" "$T/summ.txt" && [ "$d" = "$s" ]; then t_ok; else t_fail "differ (exit $d/$s): $(diff "$T/direct.txt" "$T/summ.txt" | head -5)"; fi
t_name "--summarize of several files equals one merged file"
"$QC" scan --summarize "$T/s.2.2" "$T/s.2.1" >"$T/summ2.txt" 2>/dev/null
cmp -s "$T/direct.txt" "$T/summ2.txt" && t_ok || t_fail "differ"
"$QC" scan --allow=refcount-leak,refcount-zero "$A" >"$T/direct.txt" 2>/dev/null; d=$?
"$QC" scan --allow=refcount-leak,refcount-zero --output=jsonl "$A" 2>/dev/null | "$QC" scan --summarize - >"$T/summ.txt" 2>/dev/null; s=$?
t_name "--summarize keeps the policy of the records"
if cmp -s "$T/direct.txt" "$T/summ.txt" && [ "$d" = "$s" ] && [ "$d" = 0 ]; then t_ok; else t_fail "exit $d/$s"; fi
printf 'not json\n' >"$T/bad.jsonl"
"$QC" scan --summarize "$T/bad.jsonl" >/dev/null 2>&1; c=$?
t_name "--summarize of a broken report: 1"; [ $c = 1 ] && t_ok || t_fail "exit $c, not 1"

# ---- --files-from
printf '%s\n\n%s\n' "$A/leak.qcow2" "$A/sub" >"$T/list"
scan --output=jsonl --files-from="$T/list"
t_name "--files-from FILE: names and directories in it"
py "$T/out" "$A" <<'PY' && t_ok || t_fail "$(cut -c1-80 "$T/out")"
import json, sys
a = sys.argv[2]
names = [json.loads(l)["filename"] for l in open(sys.argv[1])]
assert names == [a + "/leak.qcow2", a + "/sub/big.qcow2", a + "/sub/clean2.qcow2", a + "/sub/deep/clean3.qcow2", a + "/sub/warn.qcow2"], names
PY
printf '%s\n' "$A/leak.qcow2" | "$QC" scan --files-from=- "$A/clean1.qcow2" >"$T/out" 2>"$T/err"; RC=$?
expect_rc "--files-from=- with PATHs too" 3
scan --output=jsonl "$A/clean1.qcow2" "$A/link-in.qcow2" "$A"
t_name "a file named twice (or through a link) is checked once"
[ "$(grep -c clean1.qcow2 "$T/out")" = 1 ] && t_ok || t_fail "$(grep -c clean1 "$T/out") records"

# ---- progress
scan --progress "$A/clean1.qcow2"
t_name "--progress without a terminal: plain lines on stderr only"
grep -q "^scan: 1/1 files" "$T/err" && ! grep -q "^scan:" "$T/out" && t_ok || t_fail "$(cat "$T/err")"
scan "$A/clean1.qcow2"
t_name "no progress without a terminal or --progress"
! grep -q "^scan:" "$T/err" && t_ok || t_fail "$(cat "$T/err")"

# ---- usage errors
for bad in "--shard=0/2" "--shard=3/2" "--shard=1/0" "--output=xml" "--allow=bogus" "--jobs=0" "--fail-on=never"; do
	"$QC" scan "$bad" "$A" >/dev/null 2>"$T/err"; c=$?
	t_name "usage error: $bad"; [ $c = 64 ] && [ "$(wc -l <"$T/err")" = 1 ] && t_ok || t_fail "not 64 with one line"
done
"$QC" scan >/dev/null 2>&1; c=$?; t_name "usage error: no PATH"; [ $c = 64 ] && t_ok || t_fail "not 64"

# ---- memory: bounded by jobs x per-image cap, not by the number of images
# (the optimized binary: ASan's shadow memory would swamp the measure).
# Peak RSS for 400 images must stay within 16 MiB of the peak for 20: a
# scan that kept every report would grow by far more than that.
if [ -x /usr/bin/time ]; then
	mkdir -p "$T/many"
	i=0; while [ $i -lt 400 ]; do cp "$A/leak.qcow2" "$T/many/img$i.qcow2"; i=$((i + 1)); done
	mkdir -p "$T/few"; i=0; while [ $i -lt 20 ]; do cp "$A/leak.qcow2" "$T/few/img$i.qcow2"; i=$((i + 1)); done
	/usr/bin/time -f '%M' -o "$T/rss.many" "$QCF" scan --jobs=2 --output=jsonl "$T/many" >"$T/many.jsonl" 2>/dev/null
	/usr/bin/time -f '%M' -o "$T/rss.few" "$QCF" scan --jobs=2 --output=jsonl "$T/few" >/dev/null 2>/dev/null
	m=$(tail -n 1 "$T/rss.many"); f=$(tail -n 1 "$T/rss.few")
	t_name "peak RSS for 400 images ($m KiB) within 16 MiB of 20 images ($f KiB)"
	[ "$m" -le $((f + 16384)) ] && [ "$(wc -l <"$T/many.jsonl")" = 400 ] && t_ok || t_fail "grew"
else
	echo "note: /usr/bin/time missing: memory bound not measured"
fi

# ---- the fuzz corpus and every past crasher, all in one threaded scan
TOP=$(cd "$HERE/../.." && pwd)
scan --jobs=3 --deep --output=jsonl "$TOP/corpus" "$TOP/tests/crashers"
t_name "scan --deep over corpus/ and tests/crashers/: a record per file, no sanitizer report"
nfiles=$(find "$TOP/corpus" "$TOP/tests/crashers" -type f | wc -l)
case $RC in 0|1|2|3|63) ok=1 ;; *) ok=0 ;; esac
if [ "$ok" = 1 ] && [ "$(wc -l <"$T/out")" = "$nfiles" ] && san; then t_ok; else t_fail "exit $RC, $(wc -l <"$T/out") records for $nfiles files"; fi

# ---- check --fail-on / --allow and the new JSON fields
"$QC" check --fail-on=leak "$A/leak.qcow2" >/dev/null 2>&1; c=$?; t_name "check --fail-on=leak: 2"; [ $c = 2 ] && t_ok || t_fail "exit $c"
"$QC" check --allow=refcount-leak "$A/leak.qcow2" >/dev/null 2>&1; c=$?; t_name "check --allow=refcount-leak: 0"; [ $c = 0 ] && t_ok || t_fail "exit $c"
"$QC" check --fail-on=warning "$A/sub/warn.qcow2" >/dev/null 2>&1; c=$?; t_name "check --fail-on=warning: 2"; [ $c = 2 ] && t_ok || t_fail "exit $c"
"$QC" check --allow=nope "$A/leak.qcow2" >/dev/null 2>&1; c=$?; t_name "check --allow=unknown: 64"; [ $c = 64 ] && t_ok || t_fail "exit $c"
mk "$T/over.qcow2" 64M "backing_file=$T/base.qcow2,backing_fmt=qcow2"
"$QC" check --output=json --fail-on=leak --allow=refcount-leak "$T/over.qcow2" >"$T/c.json" 2>"$T/err"; c=$?
t_name "check JSON: tool-version, deep, backing-file, policy, exit-code = status"
py "$T/c.json" "$T/base.qcow2" "$c" <<'PY' && t_ok || t_fail "$(head -c 300 "$T/c.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["tool-version"] and r["deep"] is False and r["backing-file"] == sys.argv[2]
assert r["fail-on"] == "leak" and r["allowed"] == [] and r["exit-code"] == int(sys.argv[3]) == 0
PY
"$QC" check --output=json --fail-on=leak "$A/leak.qcow2" >"$T/c.json" 2>/dev/null; c=$?
t_name "check JSON exit-code follows the policy"
py "$T/c.json" "$c" <<'PY' && t_ok || t_fail "exit-code"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["exit-code"] == int(sys.argv[2]) == 2
PY

# options may follow the PATHs, as for every subcommand
scan "$A/leak.qcow2" --fail-on=leak -q
expect_rc "scan PATH --fail-on=leak: the option after the path is taken (leak fails: 2)" 2
scan "$A/leak.qcow2" -q
expect_rc "scan PATH -q: leaks exit 3 by default" 3

t_done
