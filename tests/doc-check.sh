#!/bin/sh
# doc-check.sh - the documentation is true to the code: doc/problems.md is
# what the problem table generates, --help names every subcommand, the man
# page names every option of --help and renders with no groff warnings
# (and passes mandoc -Tlint when mandoc is installed).
set -u
cd "$(dirname "$0")/.."
fail=0
sh scripts/gen-problems-doc.sh build/qcow2fsck > /tmp/qc-problems.md.$$
if ! cmp -s /tmp/qc-problems.md.$$ doc/problems.md; then
	echo "FAIL: doc/problems.md is stale; run: sh scripts/gen-problems-doc.sh build/qcow2fsck > doc/problems.md"
	diff /tmp/qc-problems.md.$$ doc/problems.md | head -20
	fail=1
fi
rm -f /tmp/qc-problems.md.$$
for c in check repair undo info scan; do
	build/qcow2fsck --help | grep -q "qcow2fsck $c" || { echo "FAIL: --help lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" doc/qcow2fsck.1 || { echo "FAIL: man page lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" README.md || { echo "FAIL: README lacks $c"; fail=1; }
done
for o in $(build/qcow2fsck --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
	m=$(printf '%s' "$o" | sed 's/-/\\\\-/g')
	grep -q -- "$m" doc/qcow2fsck.1 || { echo "FAIL: man page lacks $o"; fail=1; }
done
if command -v groff >/dev/null; then
	w=$(groff -man -ww -z doc/qcow2fsck.1 2>&1)
	[ -z "$w" ] || { echo "FAIL: groff warnings in doc/qcow2fsck.1:"; echo "$w" | head -10; fail=1; }
else
	echo "doc-check: note: groff missing, man page not linted"
fi
if command -v mandoc >/dev/null; then
	w=$(mandoc -Tlint -W warning doc/qcow2fsck.1 2>&1)
	[ -z "$w" ] || { echo "FAIL: mandoc -Tlint:"; echo "$w" | head -10; fail=1; }
fi
[ $fail = 0 ] && echo "doc-check: ok"
exit $fail
