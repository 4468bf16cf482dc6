# factory.sh - makes real test images with qemu-img, qemu-io and
# qemu-system-x86_64 (sourced by image tests, after lib.sh).
#
#   mk IMG SIZE [qemu-img create -o options]   new qcow2 image
#   fill IMG                                   a data pattern in a few places
#   snap IMG NAME                              qemu-img snapshot -c NAME
#   savevm IMG NAME... [--machine M -m MEM]    snapshots with VM state (savevm)
#   raw IMG OUT [SNAPSHOT]                     guest content as raw (active or a snapshot)
#
# mk, fill, snap and savevm make fixtures: they run through `fixture`
# (lib.sh), so a qemu tool that fails under load is retried, and one that
# still fails skips the rest of the test file as a fixture failure.

mk() {
	_img=$1 _size=$2; shift 2
	if [ $# -gt 0 ]; then
		fixture qemu-img create -q -f qcow2 -o "$1" "$_img" "$_size"
	else
		fixture qemu-img create -q -f qcow2 "$_img" "$_size"
	fi
}

# The compressed write at 8M fails by design on some layouts (extended L2
# with 2 MiB clusters): the image is then filled without it.  It is retried
# first, like any fixture, so that load alone does not silently leave the
# compressed cluster out, and leaving it out is said on stderr.
fill() {
	_ft=1
	while ! fill_c "$1" >"$T/fill.err" 2>&1; do
		if [ "$_ft" -ge 3 ]; then
			echo "fill ${1##*/}: no compressed cluster at 8M (write -c failed 3 times: $(grep -i 'fail\|error' "$T/fill.err" | tail -n 1))" >&2
			fixture fill_plain "$1"
			return 0
		fi
		sleep $((_ft * ${FIXTURE_BACKOFF:-1}))
		_ft=$((_ft + 1))
	done
}

fill_c() {
	qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 192k' \
		-c 'write -P 0x33 5M 4k' -c 'write -c -P 0x44 8M 64k' "$1"
}

fill_plain() {
	qemu-io -f qcow2 -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 192k' \
		-c 'write -P 0x33 5M 4k' "$1" >/dev/null
}

snap() { fixture qemu-img snapshot -c "$2" "$1"; }

# savevm IMG NAME...: one savevm per NAME in a paused VM (-S), so the
# snapshots carry real vm_state.  MACHINE/MEM env vars pick the machine.
savevm() { fixture savevm_ "$@"; }

savevm_() {
	_img=$1; shift
	_cmds=""
	for n in "$@"; do _cmds="${_cmds}savevm $n
"; done
	printf '%squit\n' "$_cmds" | timeout 120 qemu-system-x86_64 -M "${MACHINE:-none}" \
		${MEM:+-m "$MEM"} -S -display none -monitor stdio -serial none -nodefaults \
		-drive file="$_img",if=none,format=qcow2 >/dev/null 2>&1 || return 1
	# the monitor does not fail the process: look for every snapshot
	for n in "$@"; do
		qemu-img snapshot -l "$_img" 2>/dev/null | awk -v n="$n" 'NR > 2 && $2 == n {f=1} END {exit !f}' ||
			{ echo "savevm $n made no snapshot" >&2; return 1; }
	done
}

raw() {
	if [ -n "${3:-}" ]; then
		qemu-img convert -f qcow2 -O raw -l "snapshot.name=$3" "$1" "$2"
	else
		qemu-img convert -f qcow2 -O raw "$1" "$2"
	fi
}
