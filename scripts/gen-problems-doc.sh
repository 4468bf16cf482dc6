#!/bin/sh
# gen-problems-doc.sh QCOW2FSCK - prints doc/problems.md from the problem
# table compiled into the binary (qcow2fsck --list-problems).
set -eu
cat <<'HDR'
# qcow2fsck problem codes

Generated from the problem table (`core/problems/*.def`) by
`scripts/gen-problems-doc.sh`; `make test` fails when this file and the
table disagree.  Codes are stable: they are never renamed once released.

Severity: **corruption** (exit 2), **leak** (exit 3 when alone),
**warning** (exit 0), **not-qcow2** (the file is another format: counted
as none of the three, see doc/formats.md).  Codes marked *unsupported*
make the exit status 63.

| code | severity | structure | meaning |
|---|---|---|---|
HDR
"$1" --list-problems | while IFS="$(printf '\t')" read -r code sev st summary; do
	printf '| `%s` | %s | %s | %s |\n' "$code" "$sev" "$st" "$summary"
done
