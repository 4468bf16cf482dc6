#!/bin/sh
# doc-check.sh - the documentation is true to the code: doc/problems.md is
# what the problem table generates, and --help names every subcommand.
# And the project stands alone: no tracked file cites the design notes or
# the reference files that live outside the repository; facts go to doc/
# (doc/format.md, doc/contracts.md) and code cites those.
# The man page names every option of --help and renders with no groff
# warnings (and passes mandoc -Tlint when mandoc is installed).
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
for c in check repair undo info scan digest; do
	build/qcow2fsck --help | grep -q "qcow2fsck $c" || { echo "FAIL: --help lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" doc/qcow2fsck.1 || { echo "FAIL: man page lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" README.md || { echo "FAIL: README lacks $c"; fail=1; }
done
# Citations of material outside the repository.  The pattern is built from
# pieces so that this file does not match itself.
d=DESIGN; r=reference
pat="$d\.md|$r/|$r (§|[0-9])|qemu-img-check\.md|\.\./shared"
if [ -d .git ] || git rev-parse --git-dir >/dev/null 2>&1; then
	files=$(git ls-files)
else
	files=$(find . -path ./build -prune -o -type f -print | sed 's|^\./||')
fi
cites=$(printf '%s\n' "$files" | grep -v '\.qcow2$' |
	while IFS= read -r f; do [ -f "$f" ] && grep -IHnE -- "$pat" "$f"; done)
if [ -n "$cites" ]; then
	echo "FAIL: files cite material outside the repository (cite doc/format.md or doc/contracts.md):"
	printf '%s\n' "$cites" | head -20
	fail=1
fi
for f in doc/format.md doc/contracts.md; do
	[ -s "$f" ] || { echo "FAIL: $f missing"; fail=1; }
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
