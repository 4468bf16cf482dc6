# walk-lib.sh - helpers for the walk-*.sh image tests (sourced after lib.sh
# and factory.sh).
#
#   base NAME [SIZE] [OPTS]   make $T/NAME.base: a filled image (qemu-img + qemu-io)
#   fresh NAME BASE           copy $T/BASE.base to $T/NAME.qcow2, print the path
#   poke IMG FIELD VALUE      tests/poke.py
#   damaged CODE EXIT SEV QEMU_EXIT IMG [why]
#                             expect_code + qemu-img's exit (expect_qemu)
#   same_counters IMG         our JSON counters equal qemu-img's
base() {
	_n=$1; _s=${2:-64M}; shift 2 2>/dev/null || shift $#
	mk "$T/$_n.base" "$_s" "$@"
	fill "$T/$_n.base"
}

fresh() {
	cp "$T/$2.base" "$T/$1.qcow2"
	echo "$T/$1.qcow2"
}

poke() { $POKE "$@" >/dev/null || t_fail "poke $*"; }

damaged() {
	expect_code "$5" "$1" "$2" "$3"
	expect_qemu "$5" "$4" "${6:-}"
}

# QEMU_CHECK_ARGS (optional): how qemu-img must open the image (LUKS key),
# e.g. "--object secret,id=s,data=x --image-opts driver=qcow2,...,file.filename="
same_counters() {
	t_name "JSON counters equal qemu-img's: ${2:-${1##*/}}"
	run_check "$1"
	if [ -n "${QEMU_CHECK_ARGS:-}" ]; then
		# shellcheck disable=SC2086
		qemu-img check --output=json $QEMU_CHECK_ARGS"$1" >"$T/q.json" 2>/dev/null
	else
		qemu-img check -f qcow2 --output=json "$1" >"$T/q.json" 2>/dev/null
	fi
	if python3 - "$JSON" "$T/q.json" <<'PY'; then t_ok; else t_fail "counters differ"; fi
import json, sys
a = json.load(open(sys.argv[1]))
b = json.load(open(sys.argv[2]))
keys = ["image-end-offset", "total-clusters", "allocated-clusters",
        "fragmented-clusters", "compressed-clusters", "corruptions", "leaks"]
bad = [(k, a.get(k, 0), b.get(k, 0)) for k in keys if a.get(k, 0) != b.get(k, 0)]
if bad:
    print(bad, file=sys.stderr)
    sys.exit(1)
PY
}

# has_codes REGEX: some code of the last report matches (grep -e REGEX)
has_codes() {
	json_codes >"$T/codes"
	grep -q -e "$1" "$T/codes"
}
