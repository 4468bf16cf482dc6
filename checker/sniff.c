/*
 * sniff.c - what a file that is not qcow2 is, by the magic numbers of the
 * disk image formats QEMU knows (doc/formats.md lists them and where
 * each magic lives), so a report can say "VMDK" or "empty file" instead of
 * calling a raw disk corrupt.  Reads the first and the last 512 bytes
 * through qc_io; a wrong guess only changes a label, never a verdict.
 */
#include "check.h"

#include <string.h>

static bool at(const uint8_t *b, size_t n, size_t off, const char *magic, size_t len)
{
	return off <= n && len <= n - off && memcmp(b + off, magic, len) == 0;
}

const char *qc_sniff_format(struct qc_io *io, uint64_t file_size)
{
	uint8_t b[512], tail[512];
	if (file_size == 0)
		return "empty file";
	long long got = qc_io_read(io, b, sizeof(b), 0);
	if (got <= 0)
		return "raw or unknown";
	size_t n = (size_t)got;
	if (at(b, n, 0, "QFI\xfb\0\0\0\1", 8))
		return "qcow (version 1)";
	if (at(b, n, 0, "KDMV", 4) || at(b, n, 0, "COWD", 4))
		return "VMDK";
	if (at(b, n, 0, "# Disk DescriptorFile", 21))
		return "VMDK descriptor";
	if (at(b, n, 0, "QED\0", 4))
		return "QED";
	if (at(b, n, 0x40, "\x7f\x10\xda\xbe", 4))
		return "VDI";
	if (at(b, n, 0, "vhdxfile", 8))
		return "VHDX";
	if (at(b, n, 0, "conectix", 8))
		return "VHD (VPC)";
	if (at(b, n, 0, "LUKS\xba\xbe", 6))
		return "LUKS";
	if (at(b, n, 0, "WithoutFreeSpace", 16) || at(b, n, 0, "WithouFreSpacExt", 16))
		return "Parallels";
	if (at(b, n, 0, "Bochs Virtual HD Image", 22))
		return "Bochs";
	if (at(b, n, 0, "#!/bin/sh\n#V2.0 Format\n", 23))
		return "cloop";
	/* formats whose footer is in the last 512 bytes */
	if (file_size >= sizeof(tail) &&
	    qc_io_read(io, tail, sizeof(tail), file_size - sizeof(tail)) == (long long)sizeof(tail)) {
		if (at(tail, sizeof(tail), 0, "conectix", 8))
			return "VHD (VPC, fixed)";
		if (at(tail, sizeof(tail), 0, "koly", 4))
			return "DMG";
	}
	return "raw or unknown";
}
