#!/bin/sh
# escape.sh - untrusted names never reach a terminal raw (doc/contracts.md
# "Escaping").  Images whose snapshot names and IDs, backing and data-file
# names, feature-table names and bitmap names hold ESC ] 0 ; ... BEL (sets
# the terminal title), ESC [ 2 J (clears the screen), a newline followed by
# a fake report line, invalid UTF-8, C1 controls and 64 KiB names, damaged
# so that the names appear inside problem messages.  For check, check
# --deep, repair --dry-run and info (human, in a UTF-8 and in the C locale):
# no control byte reaches stdout or stderr, the fake line never starts a
# line, the names are shown escaped, long names are cut with their length.
# For --output=json: the output parses with python3, valid UTF-8 names
# round-trip exactly and invalid bytes arrive as U+FFFD.
# qemu-img makes what it can (snapshot -c, create -b/-F, data_file=,
# bitmap --add); IDs, 64 KiB names and feature names are written with the
# small editor below, since qemu-img cannot make them.
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/../factory.sh"

TITLE=$(printf '\033]0;owned\007')
CLEAR=$(printf '\033[2J')
NL='
FAKE-LINE'

# names.py: rewrite the snapshot table (ids/names as hex, @FILE for the
# bytes of a file, "-" keeps) or
# one feature-name-table entry.  Relies on the qcow2 layout of doc/format.md.
cat >"$T/names.py" <<'PY'
import struct, sys
f = open(sys.argv[1], "r+b")
def rd(off, n):
    f.seek(off); return f.read(n)
def u(off, fmt):
    return struct.unpack(fmt, rd(off, struct.calcsize(fmt)))[0]
cbits = u(20, ">I"); cs = 1 << cbits
if sys.argv[2] == "snap":
    nb, off = u(60, ">I"), u(64, ">Q")
    ents, pos = [], off
    for i in range(nb):
        idl, nml, extra = u(pos + 12, ">H"), u(pos + 14, ">H"), u(pos + 36, ">I")
        fixed = rd(pos, 40 + extra)
        ents.append([fixed, rd(pos + 40 + extra, idl), rd(pos + 40 + extra + idl, nml)])
        pos += (40 + extra + idl + nml + 7) & ~7
    old_span = (pos - off + cs - 1) // cs * cs
    val = lambda v: open(v[1:], "rb").read() if v.startswith("@") else bytes.fromhex(v)
    for i, a in enumerate(sys.argv[3:]):
        sid, name = a.split(":")
        if sid != "-": ents[i][1] = val(sid)
        if name != "-": ents[i][2] = val(name)
    out = b""
    for fixed, sid, name in ents:
        e = fixed[:12] + struct.pack(">HH", len(sid), len(name)) + fixed[16:] + sid + name
        out += e + b"\0" * (-len(e) % 8)
    if len(out) > old_span:  # past the end of the file, cluster aligned
        f.seek(0, 2); off = (f.tell() + cs - 1) // cs * cs
        f.seek(off); f.write(out + b"\0" * (-len(out) % cs))
        f.seek(64); f.write(struct.pack(">Q", off))
    else:
        f.seek(off); f.write(out)
elif sys.argv[2] == "feature":  # feature ENTRY TYPE BIT NAMEHEX
    e, typ, bit, name = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), bytes.fromhex(sys.argv[6])
    pos = u(100, ">I")
    while True:
        t, n = u(pos, ">I"), u(pos + 4, ">I")
        if t == 0: sys.exit("no feature name table")
        if t == 0x6803f857: break
        pos += 8 + ((n + 7) & ~7)
    f.seek(pos + 8 + 48 * e); f.write(bytes([typ, bit]) + name[:46].ljust(46, b"\0"))
PY
hex() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
names() { python3 "$T/names.py" "$@"; }

# snapshots: hostile IDs and names, duplicated so that messages quote them
fixture qemu-img create -q -f qcow2 "$T/snaps.qcow2" 16M
fixture qemu-img snapshot -c "$TITLE" "$T/snaps.qcow2"
fixture qemu-img snapshot -c "$CLEAR$NL" "$T/snaps.qcow2"
fixture qemu-img snapshot -c "$CLEAR$NL" "$T/snaps.qcow2"
names "$T/snaps.qcow2" snap "$(hex "$TITLE")":- "$(hex "$TITLE")":- -:-
$POKE "$T/snaps.qcow2" 'snapshot[0].date_nsec' 2000000000 >/dev/null

# an empty ID whose name is invalid UTF-8 and a C1 CSI (0xc2 0x9b)
fixture qemu-img create -q -f qcow2 "$T/empty-id.qcow2" 16M
fixture qemu-img snapshot -c placeholder "$T/empty-id.qcow2"
names "$T/empty-id.qcow2" snap ":$(printf 'bad\377\376%s\302\2332J' "$CLEAR" | od -An -v -tx1 | tr -d ' \n')"

# 64 KiB IDs and names (qemu-img stops at 127/255 bytes): duplicated too
fixture qemu-img create -q -f qcow2 "$T/long.qcow2" 16M
fixture qemu-img snapshot -c a "$T/long.qcow2"
fixture qemu-img snapshot -c b "$T/long.qcow2"
python3 -c 'import sys; sys.stdout.buffer.write(("\033]0;x\007" * 11000)[:65535].encode())' >"$T/longid"
python3 -c 'import sys; sys.stdout.buffer.write(("\u00e9\u20ac\033[2J\n" * 10000).encode()[:65535])' >"$T/longname"
names "$T/long.qcow2" snap "@$T/longid:@$T/longname" "@$T/longid:@$T/longname"
$POKE "$T/long.qcow2" 'snapshot[0].date_nsec' 2000000000 >/dev/null

# valid UTF-8 that must survive in JSON, next to a C1 control
fixture qemu-img create -q -f qcow2 "$T/utf8.qcow2" 16M
fixture qemu-img snapshot -c "$(printf 'caf\303\251 \342\202\254 \360\237\230\200')" "$T/utf8.qcow2"
fixture qemu-img snapshot -c "$(printf '\302\2332J')" "$T/utf8.qcow2"
names "$T/utf8.qcow2" snap "$(hex 'id-é')":- -:-
$POKE "$T/utf8.qcow2" 'snapshot[0].date_nsec' 2000000000 >/dev/null

# backing file name (never opened)
fixture qemu-img create -q -f qcow2 -u -b "$TITLE$NL$(printf '\377')" -F raw "$T/backing.qcow2" 16M
# a backing name of 1023 bytes (QEMU's limit): cut in human output
fixture qemu-img create -q -f qcow2 -u -b "$(python3 -c 'print("\033[2J" * 255 + "xyz", end="")')" \
	-F raw "$T/backing-long.qcow2" 16M

# data file name, quoted by ext-data-file-without-feature once bit 2 is cleared
fixture qemu-img create -q -f qcow2 -o "data_file=$T/df$CLEAR$TITLE$NL" "$T/datafile.qcow2" 16M
$POKE "$T/datafile.qcow2" header.incompatible_features '&0xfffffffffffffffb' >/dev/null

# feature-table names: an unknown compatible and an unknown autoclear bit named
# by the image itself
mk "$T/features.qcow2" 16M
names "$T/features.qcow2" feature 0 1 7 "$(hex "$TITLE$NL")$(printf '\377' | od -An -tx1 | tr -d ' ')"
names "$T/features.qcow2" feature 1 2 9 "$(hex "$CLEAR")c29b"
$POKE "$T/features.qcow2" header.compatible_features '|0x80' >/dev/null
$POKE "$T/features.qcow2" header.autoclear_features '|0x200' >/dev/null

# bitmap names: reserved flags make the checker quote them
mk "$T/bitmaps.qcow2" 16M
fixture qemu-img bitmap --add "$T/bitmaps.qcow2" "$TITLE$NL"
fixture qemu-img bitmap --add "$T/bitmaps.qcow2" "$(python3 -c 'print("\033[2J" * 255 + "xyz", end="")')"
$POKE "$T/bitmaps.qcow2" 'bitmapdir[0].flags' '|0x80' >/dev/null
$POKE "$T/bitmaps.qcow2" 'bitmapdir[1].flags' '|0x80' >/dev/null

IMAGES="snaps empty-id long utf8 backing backing-long datafile features bitmaps"

# raw_controls FILE: prints the offending bytes if FILE holds a C0 control
# other than newline, DEL, a C1 control in UTF-8, or (ASCII=1) any byte >= 0x80.
raw_controls() {
	python3 - "$1" "${2:-0}" <<'PY'
import re, sys
b = open(sys.argv[1], "rb").read()
bad = re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", b)
if not bad and sys.argv[2] == "1":
    bad = re.search(rb"[\x80-\xff]", b)
if bad:
    print(repr(b[max(0, bad.start() - 30):bad.end() + 30]))
PY
}

for loc in C.UTF-8 C; do
	ascii=0; [ "$loc" = C ] && ascii=1
	for img in $IMAGES; do
		f="$T/$img.qcow2"
		for cmd in "check" "check --deep" "repair --dry-run" "info"; do
			t_name "$cmd $img (LC_ALL=$loc): no raw control bytes"
			# shellcheck disable=SC2086
			LC_ALL=$loc "$QC" $cmd "$f" >"$T/out" 2>"$T/err"
			rc=$?
			if grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' "$T/err"; then
				t_fail "sanitizer report"; cat "$T/err" >&2; continue
			fi
			case $rc in 0|2|3|63) ;; *) t_fail "exit $rc"; continue ;; esac
			cat "$T/out" "$T/err" >"$T/both"
			bad=$(raw_controls "$T/both" "$ascii")
			[ -z "$bad" ] && t_ok || t_fail "raw bytes: $bad"
			t_name "$cmd $img (LC_ALL=$loc): no injected line, lines bounded"
			long=$(awk 'length($0) > 2500 {print NR": "length($0)}' "$T/both" | head -n 1)
			if grep -q '^FAKE-LINE' "$T/both"; then
				t_fail "a name started a new line"
			elif [ -n "$long" ]; then
				t_fail "line of unbounded length: $long"
			else
				t_ok
			fi
		done
	done
done

# The names are shown (escaped), not dropped.
shows() { # shows IMG CMD TEXT [LOCALE]
	t_name "$2 ${1} shows $3"
	# shellcheck disable=SC2086
	LC_ALL=${4:-C.UTF-8} "$QC" $2 "$T/$1.qcow2" >"$T/out" 2>&1
	grep -qF -- "$3" "$T/out" && t_ok || t_fail "$(head -c 2000 "$T/out")"
}
shows snaps check "snapshot-id-duplicate: snapshot 1 has ID '\\x1b]0;owned\\x07'"
shows snaps check "has name '\\x1b[2J\\nFAKE-LINE'"
shows snaps check "[snapshot 0, id '\\x1b]0;owned\\x07']"
# the repair verdicts name the snapshots too (check's list, info's repair: line)
shows snaps check "  snapshot 1 (ID '\\x1b]0;owned\\x07', name '\\x1b[2J\\nFAKE-LINE'): fixed"
shows snaps "repair --dry-run" "\\x1b[2J\\nFAKE-LINE"
shows snaps info "\\x1b]0;owned\\x07 / \\x1b]0;owned\\x07"
shows empty-id check "(name 'bad\\xff\\xfe\\x1b[2J\\u009b2J') has an empty ID"
shows empty-id check "(name 'bad\\xff\\xfe\\x1b[2J\\u009b2J') has an empty ID" C
shows long check "... (65535 bytes)"
shows long info "... (65535 bytes)"
shows utf8 info "$(printf "caf\303\251 \342\202\254 \360\237\230\200")" C.UTF-8
shows utf8 info "caf\\u00e9 \\u20ac \\U0001f600" C
shows utf8 check "(id 'id-$(printf '\303\251')')" C.UTF-8
shows utf8 check "(id 'id-\\u00e9')" C
shows utf8 info " / \\u009b2J"
shows backing info "\\x1b]0;owned\\x07\\nFAKE-LINE\\xff (not opened)"
shows backing-long info "... (1023 bytes) (not opened)"
shows datafile check "\\x1b[2J\\x1b]0;owned\\x07\\nFAKE-LINE\" present but incompatible bit 2 is clear"
shows datafile info "\\x1b[2J\\x1b]0;owned\\x07\\nFAKE-LINE (not opened)"
shows features check "bit 7 \"\\x1b]0;owned\\x07\\nFAKE-LINE\\xff\""
shows features check "bit 9 \"\\x1b[2J\\u009b\""
shows features info "bit 7 \\x1b]0;owned\\x07\\nFAKE-LINE\\xff"
shows bitmaps check "bitmap '\\x1b]0;owned\\x07\\nFAKE-LINE': reserved flags"
shows bitmaps check "... (1023 bytes)': reserved flags"

# JSON: parses, keeps valid UTF-8, U+FFFD for invalid bytes, full-length names.
for img in $IMAGES; do
	for cmd in "check --output=json" "repair --dry-run --output=json" "info --output=json"; do
		t_name "$cmd $img: valid JSON, no raw control bytes"
		# shellcheck disable=SC2086
		"$QC" $cmd "$T/$img.qcow2" >"$T/out" 2>"$T/err"
		if python3 -c 'import json,sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' "$T/out" 2>"$T/pyerr" &&
		   [ -z "$(raw_controls "$T/out")" ] && [ -z "$(raw_controls "$T/err")" ]; then
			t_ok
		else
			t_fail "$(head -c 300 "$T/pyerr") $(raw_controls "$T/out")"
		fi
	done
done

json_is() { # json_is IMG PYTHON-EXPR-ON-d  (d = info --output=json)
	t_name "info --output=json ${1}: $2"
	"$QC" info --output=json "$T/$1.qcow2" >"$T/out" 2>/dev/null
	python3 - "$T/out" "$2" <<'PY' && t_ok || t_fail "$(head -c 400 "$T/out")"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
s = d.get("snapshots", [])
assert eval(sys.argv[2]), sys.argv[2]
PY
}
json_is utf8 's[0]["name"] == "caf\u00e9 \u20ac \U0001f600" and s[0]["id"] == "id-\u00e9"'
json_is utf8 's[1]["name"] == "\u009b2J"'
json_is snaps 's[0]["id"] == "\x1b]0;owned\x07" and s[1]["name"] == "\x1b[2J\nFAKE-LINE"'
json_is empty-id 's[0]["id"] == "" and s[0]["name"] == "bad\ufffd\ufffd\x1b[2J\u009b2J"'
json_is long 'len(s[0]["name"].encode()) == 65535 and s[0]["name"].startswith("\u00e9\u20ac\x1b[2J\n")'
json_is long 'len(s[0]["id"]) == 65535'
json_is backing 'd["backing-file"] == "\x1b]0;owned\x07\nFAKE-LINE\ufffd"'
json_is features 'any(f["name"] == "\x1b]0;owned\x07\nFAKE-LINE\ufffd" for f in d["compatible-features"])'

# A hostile path on the command line is escaped in error lines too.
t_name "cannot-open line escapes the path"
"$QC" check "$T/no$TITLE$NL" >"$T/out" 2>"$T/err"
rc=$?
[ "$rc" = 1 ] && [ -z "$(raw_controls "$T/err")" ] && grep -qF 'no\x1b]0;owned\x07\nFAKE-LINE' "$T/err" &&
	t_ok || t_fail "exit $rc: $(cat -v "$T/err")"
t_done
