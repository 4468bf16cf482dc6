#!/bin/sh
# smoke.sh - the command line contract: --help, --version, usage errors
# (exit 64), a missing file (exit 1), a non-qcow2 file (exit 63), a clean
# image (exit 0), JSON shape, and that check never opens the image for writing.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

t_name "--help"; "$QC" --help | grep -q "qcow2fsck check" && t_ok || t_fail "no usage"
t_name "--version"; "$QC" --version | grep -q "^qcow2fsck " && t_ok || t_fail "no version"
t_name "no command"; "$QC" >/dev/null 2>&1; [ $? = 64 ] && t_ok || t_fail "exit not 64"
t_name "bad option"; "$QC" check --bogus x >/dev/null 2>&1; [ $? = 64 ] && t_ok || t_fail "exit not 64"
t_name "bad output"; "$QC" check --output=xml x >/dev/null 2>&1; [ $? = 64 ] && t_ok || t_fail "exit not 64"
t_name "usage error is one line"; n=$("$QC" check --bogus x 2>&1 >/dev/null | wc -l); [ "$n" = 1 ] && t_ok || t_fail "$n lines"
t_name "missing file"; "$QC" check "$T/nope.qcow2" >/dev/null 2>&1; [ $? = 1 ] && t_ok || t_fail "exit not 1"

head -c 1048576 /dev/zero > "$T/raw.img"
t_name "raw file"; "$QC" check "$T/raw.img" >/dev/null 2>&1; [ $? = 63 ] && t_ok || t_fail "exit not 63"
expect_code "$T/raw.img" image-not-qcow2 63 not-qcow2
t_name "qemu-img on raw"; qemu-img check -f raw "$T/raw.img" >/dev/null 2>&1; [ $? = 63 ] && t_ok || t_fail "qemu-img exit differs"

mk "$T/a.qcow2" 64M
fill "$T/a.qcow2"
expect_clean "$T/a.qcow2"
expect_same_verdict_as_qemu "$T/a.qcow2"
t_name "json keys"
run_check "$T/a.qcow2"
python3 - "$JSON" <<'PY' && t_ok || t_fail "JSON lacks contract keys"
import json, sys
j = json.load(open(sys.argv[1]))
need = ["filename", "format", "check-errors", "corruptions", "leaks", "corruptions-fixed",
        "leaks-fixed", "image-end-offset", "total-clusters", "allocated-clusters",
        "fragmented-clusters", "compressed-clusters", "schema", "problems"]
missing = [k for k in need if k not in j]
assert not missing, missing
assert j["format"] == "qcow2" and j["schema"] == 1 and isinstance(j["problems"], list)
PY
t_name "-q prints nothing"; out=$("$QC" check -q "$T/a.qcow2"); [ -z "$out" ] && t_ok || t_fail "output with -q"

t_name "check is read-only"
chmod 0444 "$T/a.qcow2"
sum1=$(sha256sum < "$T/a.qcow2")
if [ "$(id -u)" = 0 ]; then
	# root ignores file modes: prove O_RDONLY with strace when it is there
	if command -v strace >/dev/null; then
		strace -f -e trace=openat -o "$T/strace" "$QC" check "$T/a.qcow2" >/dev/null 2>&1
		if grep 'a.qcow2' "$T/strace" | grep -q 'O_RDWR\|O_WRONLY'; then t_fail "opened for writing"; else t_ok; fi
	else
		t_ok
	fi
else
	"$QC" check "$T/a.qcow2" >/dev/null 2>&1; [ $? = 0 ] && t_ok || t_fail "cannot check a read-only file"
fi
t_name "check leaves bytes unchanged"; [ "$(sha256sum < "$T/a.qcow2")" = "$sum1" ] && t_ok || t_fail "image changed"

# walk-complete: true on an image whose every table was followed; false,
# with the reason, when a damaged header hides the active L1 (its clusters
# then look leaked: the summary says they may be in use).
run_check "$T/a.qcow2"
t_name "walk-complete is true on a clean image"
[ "$(json_get walk-complete)" = True ] && t_ok || t_fail "$(json_get walk-complete)"
D="$HERE/../../corpus/demo-bad-header.qcow2"
run_check "$D"
t_name "walk-complete is false with its reason when the active L1 is unusable"
[ "$(json_get walk-complete)" = False ] && [ "$(json_get walk-incomplete-reason)" = header-l1-too-small ] &&
	t_ok || t_fail "$(json_get walk-complete)"
t_name "the human summary says such leaks may be in use"
"$QC" check "$D" 2>/dev/null | grep -q "some of them may be in use" && t_ok || t_fail "no note"
t_done
