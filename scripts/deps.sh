#!/bin/sh
# deps.sh - make sure the Debian packages qcow2fsck builds and tests with are
# installed.  As root, installs what is missing with apt-get; otherwise
# prints the one apt-get line to run and fails.  Usage: deps.sh [fuzz]
set -u
pkgs="build-essential pkg-config zlib1g-dev libdeflate-dev libzstd-dev libssl-dev libcmocka-dev qemu-utils qemu-system-x86 python3 time strace groff-base man-db libxml2-utils"
[ "${1:-}" = fuzz ] && pkgs="$pkgs afl++ clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "qcow2fsck: missing packages; run as root:" >&2
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
echo "qcow2fsck: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update >/dev/null 2>&1
	apt-get install -y --no-install-recommends $missing >&2 || exit 1
}
