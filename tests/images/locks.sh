#!/bin/sh
# locks.sh - images in use (doc/locking.md).  Real QEMU processes hold an
# image: `qemu-io` (opened read-write, sleeping) and a paused
# `qemu-system-x86_64 -S` with the image as a drive.  While they hold it:
# check and info refuse it (exit 1, one line; JSON has "error"), -U checks
# it with an image-in-use warning, repair, repair --dry-run and undo refuse
# it with the bytes unchanged and no journal written.  After the holder
# exits everything works.  And qcow2fsck check, stopped by gdb while it
# holds its locks, does not block a concurrent `qemu-img check` or a second
# qcow2fsck check, but does keep a writer (qemu-io, qcow2fsck repair) out.
#
# Deterministic: the test never sleeps blindly.  It waits for a holder's
# locks by polling /proc/locks for its lock on byte 101 (bounded: 1200
# polls of 50 ms; a holder that fails to start is retried once, then
# reported as a fixture failure), and the gdb case runs its probes while
# the checker is stopped at a breakpoint.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

HOLDER=""
kill_holder() {
	[ -n "$HOLDER" ] || return 0
	kill "$HOLDER" 2>/dev/null
	_n=0
	while kill -0 "$HOLDER" 2>/dev/null && [ $_n -lt 100 ]; do sleep 0.05; _n=$((_n + 1)); done
	kill -9 "$HOLDER" 2>/dev/null
	wait "$HOLDER" 2>/dev/null
	HOLDER=""
}
trap 'kill_holder; rm -rf "$T"' EXIT
trap 'exit 1' INT TERM

sha() { sha256sum "$1" | cut -d' ' -f1; }

# wait_locked IMG: true once another process holds IMG for writing: an OFD
# lock covering byte 101 (write permission) on IMG's inode in /proc/locks.
# Passive on purpose: probing with qemu-img would itself take locks and
# could make the holder's own open fail.
wait_locked() {
	_ino=$(stat -c %i "$1")
	_n=0
	while [ $_n -lt 1200 ]; do
		kill -0 "$HOLDER" 2>/dev/null || return 1
		awk -v ino="$_ino" '$2 == "OFDLCK" { n = split($6, d, ":"); if (d[n] == ino && $7 <= 101 && ($8 == "EOF" || $8 >= 101)) f = 1 } END { exit !f }' /proc/locks &&
			return 0
		sleep 0.05
		_n=$((_n + 1))
	done
	return 1
}

# hold KIND IMG: start a holder of IMG in the background (HOLDER = its pid).
hold() {
	case $1 in
	qemu-io)
		qemu-io -f qcow2 -c 'sleep 600000' "$2" >"$T/holder.out" 2>&1 &
		;;
	qemu-system)
		qemu-system-x86_64 -M none -S -nodefaults -display none -monitor none -serial none \
			-drive file="$2",if=none,format=qcow2 >"$T/holder.out" 2>&1 &
		;;
	esac
	HOLDER=$!
}

# A leaky image (one data cluster orphaned), and a repaired copy with the
# journal that undoes its repair.
mk "$T/base.qcow2" 64M
fill "$T/base.qcow2"
$POKE "$T/base.qcow2" 'l2[0][0]' 0 >/dev/null
cp "$T/base.qcow2" "$T/fixed.qcow2"
"$QC" repair --undo-file="$T/fixed.undo" "$T/fixed.qcow2" >/dev/null 2>&1
t_name "fixture: the leak and its repair journal"
run_check "$T/base.qcow2"
[ "$RC" = 3 ] && [ -s "$T/fixed.undo" ] && t_ok || t_fail "check exit $RC, journal $(ls "$T")"

held_cases() { # KIND
	k=$1
	I=$T/$k.qcow2
	U=$T/$k-fixed.qcow2
	cp "$T/base.qcow2" "$I"
	cp "$T/fixed.qcow2" "$U"
	# the holder of I; a second holder is not needed for U: undo is tried
	# on I with U's journal only after I is released, and on U below.
	# the holder is a fixture: 3 tries, then a fixture failure (lib.sh)
	_try=1
	hold "$k" "$I"
	while ! wait_locked "$I"; do
		kill_holder
		if [ $_try -ge 3 ]; then
			T_FIX=$((T_FIX + 1))
			echo "FIXTURE-FAIL $k holding $I: no lock taken: $(tail -n 1 "$T/holder.out") (3 tries); its cases are skipped" >&2
			return
		fi
		_try=$((_try + 1))
		hold "$k" "$I"
	done
	d=$(sha "$I")

	t_name "$k: check refuses an image in use: exit 1, one line on stderr, nothing on stdout"
	"$QC" check "$I" >"$T/out" 2>"$T/err"; rc=$?
	if [ $rc = 1 ] && [ ! -s "$T/out" ] && [ "$(wc -l <"$T/err")" = 1 ] &&
	   grep -q "in use by another process (use -U to check it anyway)" "$T/err"; then
		t_ok; else t_fail "exit $rc: $(cat "$T/out" "$T/err")"; fi

	t_name "$k: check --output=json: an object with error image-in-use, exit-code 1"
	run_check "$I"
	if [ "$RC" = 1 ] && [ "$(json_get exit-code)" = 1 ] && [ "$(json_get check-errors)" = 1 ] &&
	   python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["error"]["code"]=="image-in-use" else 1)' "$JSON"; then
		t_ok; else t_fail "exit $RC: $(cat "$JSON")"; fi

	t_name "$k: qemu-img check refuses it too"
	qemu-img check "$I" >/dev/null 2>&1 && t_fail "qemu-img check opened it" || t_ok

	t_name "$k: check -U runs: the leak (exit 3) and an image-in-use warning"
	run_check -U "$I"
	if [ "$RC" = 3 ] && json_codes | grep -qx image-in-use &&
	   [ "$(json_severity image-in-use)" = warning ] && [ "$(json_get exit-code)" = 3 ]; then
		t_ok; else t_fail "exit $RC: $(json_codes | tr '\n' ' ')"; fi
	t_name "$k: --force-share after IMAGE works the same"
	"$QC" check "$I" --force-share >/dev/null 2>&1; rc=$?
	[ $rc = 3 ] && t_ok || t_fail "exit $rc"

	t_name "$k: info refuses (1), info -U shows it (0)"
	"$QC" info "$I" >/dev/null 2>"$T/err"; rc1=$?
	"$QC" info -U "$I" >/dev/null 2>&1; rc2=$?
	[ $rc1 = 1 ] && [ $rc2 = 0 ] && grep -q "in use" "$T/err" && t_ok || t_fail "exits $rc1 $rc2"

	t_name "$k: repair refuses: exit 1, bytes unchanged, no journal"
	"$QC" repair --undo-file="$T/$k.undo" "$I" >"$T/out" 2>"$T/err"; rc=$?
	if [ $rc = 1 ] && [ "$(sha "$I")" = "$d" ] && [ ! -e "$T/$k.undo" ] &&
	   grep -q "in use by another process" "$T/err"; then
		t_ok; else t_fail "exit $rc: $(cat "$T/err")"; fi
	t_name "$k: repair --output=json refuses with a JSON object (exit-code 1)"
	"$QC" repair --output=json --undo-file="$T/$k.undo" "$I" >"$T/r.json" 2>/dev/null; rc=$?
	if [ $rc = 1 ] && [ "$(sha "$I")" = "$d" ] &&
	   python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j["exit-code"]==1 and j["error"]["code"]=="image-in-use" else 1)' "$T/r.json"; then
		t_ok; else t_fail "exit $rc: $(cat "$T/r.json")"; fi
	t_name "$k: repair -U is not an option (no override)"
	"$QC" repair -U "$I" >/dev/null 2>&1; rc=$?
	[ $rc = 64 ] && [ "$(sha "$I")" = "$d" ] && t_ok || t_fail "exit $rc"
	t_name "$k: repair --dry-run refuses too (it locks as check does)"
	"$QC" repair --dry-run "$I" >/dev/null 2>&1; rc=$?
	[ $rc = 1 ] && t_ok || t_fail "exit $rc"

	kill_holder
	# undo: hold the repaired copy and try to undo its repair
	hold "$k" "$U"
	wait_locked "$U" || { kill_holder; hold "$k" "$U"; }
	if wait_locked "$U"; then
		du=$(sha "$U")
		t_name "$k: undo refuses an image in use: exit 1, bytes unchanged"
		"$QC" undo "$T/fixed.undo" "$U" >/dev/null 2>"$T/err"; rc=$?
		[ $rc = 1 ] && [ "$(sha "$U")" = "$du" ] && grep -q "in use" "$T/err" && t_ok ||
			t_fail "exit $rc: $(cat "$T/err")"
	else
		echo "fixture failure: $k did not take its locks on $U" >&2
	fi
	kill_holder

	t_name "$k: after the holder exits, check works (exit 3, no warning)"
	run_check "$I"
	[ "$RC" = 3 ] && ! json_codes | grep -qx image-in-use && t_ok || t_fail "exit $RC"
	t_name "$k: after the holder exits, repair works (exit 0) and qemu-img check is clean"
	"$QC" repair --undo-file="$T/$k.undo" "$I" >/dev/null 2>&1; rc=$?
	qemu-img check "$I" >/dev/null 2>&1; q=$?
	[ $rc = 0 ] && [ $q = 0 ] && t_ok || t_fail "repair $rc, qemu-img $q"
	t_name "$k: after the holder exits, undo works and restores the repaired copy's old bytes"
	"$QC" undo "$T/fixed.undo" "$U" >/dev/null 2>&1; rc=$?
	[ $rc = 0 ] && [ "$(sha "$U")" = "$(sha "$T/base.qcow2")" ] && t_ok || t_fail "exit $rc"
}

held_cases qemu-io
held_cases qemu-system

# qcow2fsck check holding the image (stopped by gdb inside the check, after
# the open took the locks): readers share it, writers are kept out.
G=$T/gdb.qcow2
cp "$T/base.qcow2" "$G"
gs=$(sha "$G")
cat >"$T/during.sh" <<EOF
qemu-img check "$G" >/dev/null 2>&1; echo "qemu-img-check \$?"
"$QC" check "$G" >/dev/null 2>&1; echo "qcow2fsck-check \$?"
qemu-io -f qcow2 -c 'write 0 512' "$G" >/dev/null 2>&1; echo "qemu-io-write \$?"
"$QC" repair --undo-file="$T/gdb.undo" "$G" >/dev/null 2>&1; echo "qcow2fsck-repair \$?"
EOF
BIN=${QC_FAST:-$QC}
if command -v gdb >/dev/null 2>&1 &&
   gdb -q -batch -nx -ex 'break qc_check_run' -ex run -ex "shell sh $T/during.sh >$T/during.res" \
	-ex continue --args "$BIN" check "$G" >"$T/gdb.out" 2>&1 && [ -s "$T/during.res" ]; then
	t_name "gdb: the checker was stopped inside the check (its locks held)"
	grep -q "Breakpoint 1, qc_check_run" "$T/gdb.out" && t_ok || t_fail "$(tail -3 "$T/gdb.out")"
	t_name "a concurrent qemu-img check runs while qcow2fsck check holds the image (exit 3)"
	grep -qx "qemu-img-check 3" "$T/during.res" && t_ok || t_fail "$(cat "$T/during.res")"
	t_name "a second qcow2fsck check runs concurrently (exit 3)"
	grep -qx "qcow2fsck-check 3" "$T/during.res" && t_ok || t_fail "$(cat "$T/during.res")"
	t_name "a writer (qemu-io) is kept out while qcow2fsck check holds the image"
	grep -qx "qemu-io-write 1" "$T/during.res" && t_ok || t_fail "$(cat "$T/during.res")"
	t_name "qcow2fsck repair is kept out too (exit 1), nothing written"
	grep -qx "qcow2fsck-repair 1" "$T/during.res" && [ "$(sha "$G")" = "$gs" ] && [ ! -e "$T/gdb.undo" ] &&
		t_ok || t_fail "$(cat "$T/during.res")"
	t_name "the held check itself finished with the leak verdict"
	grep -q "exited with code 03" "$T/gdb.out" && t_ok || t_fail "$(tail -3 "$T/gdb.out")"
else
	echo "fixture failure: gdb cannot run $BIN (not installed or ptrace denied): concurrency case skipped" >&2
fi

t_done
