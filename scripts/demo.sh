#!/bin/sh
# demo.sh QCOW2FSCK - checks the bundled sample images in corpus/ and prints
# each verdict next to qemu-img check's.
set -u
qc=$1
cd "$(dirname "$0")/.."
for img in corpus/demo-clean.qcow2 corpus/demo-leaks.qcow2 corpus/demo-bad-header.qcow2; do
	echo "================ $img"
	echo "\$ qcow2fsck check $img"
	"$qc" check "$img"; rc=$?
	echo "[exit $rc]"
	if command -v qemu-img >/dev/null; then
		echo "\$ qemu-img check $img"
		qemu-img check "$img" >/tmp/qc-demo.$$ 2>&1; q=$?
		head -n 8 /tmp/qc-demo.$$; rm -f /tmp/qc-demo.$$; echo "[exit $q]"
	fi
	echo
done
echo "JSON for one image:"
"$qc" check --output=json corpus/demo-leaks.qcow2 | head -n 40
exit 0
