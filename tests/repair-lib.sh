# repair-lib.sh - helpers for the repair image tests (sourced after lib.sh
# and factory.sh): guest content snapshots, one full repair cycle with all
# its assertions, and a record of what `qemu-img check -r all` does to the
# same damaged image.

# sha IMG: sha256 of the whole file.
sha() { sha256sum "$1" | cut -d' ' -f1; }

# snapshot_names IMG: internal snapshot names, one per line.
snapshot_names() {
	qemu-img snapshot -l "$1" 2>/dev/null | awk 'NR > 2 && NF >= 2 { print $2 }'
}

# guest_read IMG DIR: raw guest content of the active layer and of every
# snapshot into DIR (active.raw, snap-NAME.raw), as qemu-img reads it;
# non-zero when qemu-img could not list or read one of them.
guest_read() {
	mkdir -p "$2" || return 1
	_gl=$(qemu-img snapshot -l "$1") || return 1
	raw "$1" "$2/active.raw" || return 1
	for s in $(printf '%s\n' "$_gl" | awk 'NR > 2 && NF >= 2 { print $2 }'); do
		raw "$1" "$2/snap-$s.raw" "$s" || return 1
	done
}

# guest_save IMG DIR: the reference guest content of a pristine image into
# DIR (emptied first).  A fixture: retried, and when qemu-img still cannot
# read it the rest of the file is skipped (lib.sh `fixture`).
guest_save() { fixture guest_save_ "$1" "$2"; }
guest_save_() { rm -rf "$2" && guest_read "$1" "$2"; }

# guest_same IMG DIR LABEL: the guest content of IMG equals what DIR holds.
guest_same() {
	t_name "$3: guest content of the active layer and every snapshot unchanged"
	_gd="$T/guest.$$"; rm -rf "$_gd"
	# not a fixture: qemu-img failing to read the repaired image is a failure
	guest_read "$1" "$_gd"
	_ok=1
	for f in "$2"/*.raw; do cmp -s "$f" "$_gd/${f##*/}" || { _ok=0; echo "differs: ${f##*/}" >&2; }; done
	[ "$(ls "$2" | wc -l)" = "$(ls "$_gd" | wc -l)" ] || _ok=0
	rm -rf "$_gd"
	[ $_ok = 1 ] && t_ok || t_fail "guest content changed"
}

# run_repair IMG [options]: repair --output=json; sets RRC and RJSON.
run_repair() {
	RJSON="$T/repair.json"
	_img=$1; shift
	"$QC" repair --output=json "$@" "$_img" >"$RJSON" 2>"$T/repair.err"
	RRC=$?
	if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/repair.err"; then
		t_fail "sanitizer report on repair $_img"; cat "$T/repair.err" >&2
	fi
	return 0
}
# rjson EXPR: evaluate a Python expression over the repair report r.
rjson() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$RJSON" "$1"; }

# qemu_repair_all IMG LABEL: run `qemu-img check -r all` on a copy, print
# its summary line and exit code; sets QIMG (the copy) and QRRC.
qemu_repair_all() {
	QIMG="$T/qemu-r.$$.qcow2"
	cp "$1" "$QIMG"
	qemu-img check -r all -f qcow2 "$QIMG" >"$T/qemu-r.out" 2>&1
	QRRC=$?
	echo "qemu-img check -r all [$2]: exit $QRRC; $(grep -E 'Rebuilding|Repairing|ERROR|fixed|Marking|corrupt' "$T/qemu-r.out" | sort | uniq -c | sort -rn | head -4 | tr -s ' ' | tr '\n' ';')"
	qemu-img check -f qcow2 "$QIMG" >/dev/null 2>&1
	echo "qemu-img check after its own -r all [$2]: exit $? ; size $(stat -c %s "$1") -> $(stat -c %s "$QIMG")"
}

# repair_case LABEL IMG REFDIR CODE [repair options]: the full cycle on a
# damaged image: the check reports CODE; --dry-run writes nothing; repair
# exits 0; the re-check and qemu-img check are clean; the guest content
# equals REFDIR; a second repair plans nothing and writes nothing; undo
# restores the damaged image byte for byte.
repair_case() {
	_l=$1 _img=$2 _ref=$3 _code=$4; shift 4
	run_check "$_img"
	t_name "$_l: check reports $_code"
	json_codes | grep -qx "$_code" && t_ok || t_fail "codes: $(json_codes | tr '\n' ' ') (exit $RC)"
	_d=$(sha "$_img")
	t_name "$_l: --dry-run writes nothing"
	"$QC" repair --dry-run --output=json "$@" "$_img" >"$T/dry.json" 2>/dev/null
	_drc=$?
	if [ "$(sha "$_img")" = "$_d" ] && [ "$_drc" = "$RC" ] && [ ! -e "$_img.qcow2fsck-undo" ] &&
	   python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["plan"] else 1)' "$T/dry.json"; then
		t_ok
	else
		t_fail "dry run exit $_drc (check $RC), or image changed, or empty plan"
	fi
	run_repair "$_img" --undo-file="$T/undo.$_l" "$@"
	t_name "$_l: repair exits 0 and counts what it fixed"
	if [ "$RRC" = 0 ] && [ "$(rjson 'r["corruptions-fixed"] + r["leaks-fixed"] > 0')" = True ]; then
		t_ok
	else
		t_fail "repair exit $RRC: $(rjson '[p["code"] for p in r["problems"]], r["left"]' 2>&1)"
	fi
	expect_clean "$_img" "$_l: after repair"
	expect_qemu "$_img" 0 "($_l: after repair)"
	guest_same "$_img" "$_ref" "$_l"
	_r=$(sha "$_img")
	run_repair "$_img" --undo-file="$T/undo2.$_l"
	t_name "$_l: a second repair plans nothing and writes nothing"
	if [ "$RRC" = 0 ] && [ "$(rjson 'len(r["plan"])')" = 0 ] && [ "$(sha "$_img")" = "$_r" ] &&
	   [ ! -e "$T/undo2.$_l" ]; then t_ok; else t_fail "exit $RRC, plan $(rjson 'len(r["plan"])')"; fi
	t_name "$_l: undo restores the damaged image byte for byte"
	if "$QC" undo "$T/undo.$_l" "$_img" >/dev/null 2>"$T/undo.err" && [ "$(sha "$_img")" = "$_d" ]; then
		t_ok
	else
		t_fail "undo: $(cat "$T/undo.err")"
	fi
}

# entry_off IMG FIELD: host offset (decimal) an L1/L2 entry points to.
entry_off() {
	python3 -c 'import sys; print(int(sys.argv[1], 16) & 0x00fffffffffffe00)' \
		"$(python3 "$HERE/../poke.py" "$1" "$2")"
}

# pristine IMG [-c 'qemu-io command']...: the usual repair fixture: 16 MiB
# with data (fill), snapshot s1, then 64 KiB at 3 MiB (plus any extra
# qemu-io commands) written in the active layer only.
pristine() {
	_p=$1; shift
	mk "$_p" 16M
	fill "$_p"
	snap "$_p" s1
	fixture qemu-io -f qcow2 -c 'write -P 0x66 3M 64k' "$@" "$_p" >/dev/null
}

# case_poke LABEL CODE FIELD VALUE: copy the fixture $P, poke one field, record
# what qemu-img check -r all does to a copy, then run the full repair case
# against the guest content saved in $T/ref.
case_poke() {
	I=$T/$1.qcow2
	cp "$P" "$I"
	python3 "$HERE/../poke.py" "$I" "$3" "$4"
	qemu_repair_all "$I" "$1"
	repair_case "$1" "$I" "$T/ref" "$2"
}
