#!/bin/sh
# doc-check.sh - the documentation is true to the code: doc/problems.md is
# what the problem table generates, and --help names every subcommand.
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
for c in check repair undo info digest; do
	build/qcow2fsck --help | grep -q "qcow2fsck $c" || { echo "FAIL: --help lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" doc/qcow2fsck.1 || { echo "FAIL: man page lacks $c"; fail=1; }
	grep -q "qcow2fsck $c" README.md || { echo "FAIL: README lacks $c"; fail=1; }
done
[ $fail = 0 ] && echo "doc-check: ok"
exit $fail
