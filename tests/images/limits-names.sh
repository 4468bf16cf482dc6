#!/bin/sh
# limits-names.sh - names of backing and external data files are never
# opened and never interpreted as paths or protocols (SECURITY.md, threat
# T8: CVE-2015-5163, CVE-2024-32498, CVE-2024-4467).  Backing names that
# point at a FIFO (opening it would block), /dev/zero, a json: pseudo-
# protocol and an nbd:// URL, and a data file that is a FIFO, must be
# reported as names only: check and info finish (timeout 120 is a guard
# against an open that blocks on a FIFO, which never returns, not a time
# limit), and strace -f (when installed) shows no open of any of them.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

mkfifo "$T/fifo"
mkfifo "$T/datafifo"
mkb() { # mkb IMG NAME: image whose backing file name is NAME (not checked by qemu-img: -u)
	fixture qemu-img create -q -f qcow2 -u -b "$2" -F raw -o cluster_size=4096 "$1" 1M
}
mkb "$T/b-fifo.qcow2" "$T/fifo"
mkb "$T/b-zero.qcow2" /dev/zero
mkb "$T/b-json.qcow2" 'json:{"file":{"driver":"file","filename":"'"$T"'/fifo"}}'
mkb "$T/b-nbd.qcow2" 'nbd://127.0.0.1:1/export'
mkb "$T/b-rel.qcow2" '../../../../../../../../dev/zero'
# External data file: made as a regular file, then replaced by a FIFO.
fixture qemu-img create -q -f qcow2 -o cluster_size=4096,data_file="$T/datafifo.tmp" "$T/d-fifo.qcow2" 1M
rm -f "$T/datafifo.tmp"
ln -s "$T/datafifo" "$T/datafifo.tmp"

have_strace=0
command -v strace >/dev/null 2>&1 && strace -f -o /dev/null true 2>/dev/null && have_strace=1

for img in b-fifo b-zero b-json b-nbd b-rel d-fifo; do
	f="$T/$img.qcow2"
	for cmd in "check --output=json" "info --output=json" "check --deep"; do
		t_name "$cmd $img finishes without opening the name"
		if [ "$have_strace" = 1 ]; then
			# shellcheck disable=SC2086
			# LeakSanitizer cannot run under ptrace; the other runs keep it.
			ASAN_OPTIONS=detect_leaks=0 timeout 120 strace -f -qq -e trace=open,openat,openat2,creat,connect,socket -o "$T/trace" \
				"$QC" $cmd "$f" >"$T/out" 2>"$T/err"
		else
			# shellcheck disable=SC2086
			timeout 120 "$QC" $cmd "$f" >"$T/out" 2>"$T/err"
		fi
		rc=$?
		if [ "$rc" = 124 ]; then t_fail "timed out (a FIFO was opened?)"; continue; fi
		if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/err"; then
			t_fail "sanitizer report"; continue
		fi
		if [ "$have_strace" = 1 ]; then
			# Only the image itself and the usual system files may be opened.
			bad=$(grep -E 'open|creat|connect|socket' "$T/trace" | grep -v ENOENT |
				grep -vE '"(/etc/ld\.so|/lib|/usr/lib|/proc/|/sys/|/dev/urandom)' |
				grep -vF "\"$f\"" | grep -E 'open|connect|socket' | head -n 3)
			if [ -n "$bad" ]; then t_fail "opened: $bad"; continue; fi
		fi
		case $rc in 0|2|3) t_ok ;; *) t_fail "exit $rc"; cat "$T/err" >&2 ;; esac
	done
done

# The names are reported as given (info shows them, marked "not opened").
t_name "info reports the backing name verbatim"
"$QC" info "$T/b-json.qcow2" >"$T/out" 2>&1
grep -q 'json:{"file"' "$T/out" && grep -q 'not opened' "$T/out" && t_ok || t_fail "$(cat "$T/out")"
t_name "info --output=json carries the nbd name as a string"
"$QC" info --output=json "$T/b-nbd.qcow2" >"$T/out" 2>&1
python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["backing-file"] == "nbd://127.0.0.1:1/export"' "$T/out" && t_ok || t_fail "$(cat "$T/out")"
t_done
