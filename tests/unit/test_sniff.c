/*
 * test_sniff.c - a file that is not qcow2: what the sniffer says it is
 * (checker/sniff.c, doc/formats.md), and that the check reports it as
 * image-not-qcow2 with severity not-qcow2, no corruption counted, exit 63;
 * and the table of block drivers QEMU accepts as a backing format.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../checker/check.h"
#include "../../checker/extensions.h"
#include "../../core/io.h"

/* Check a memory file of len bytes holding magic at off (and at the last
 * 512 bytes when tail); returns what the report says it is. */
static const char *sniffed(size_t len, size_t off, const char *magic, size_t mlen, bool tail)
{
	static char what[64];
	uint8_t *b = calloc(1, len ? len : 1);
	assert_non_null(b);
	if (mlen)
		memcpy(b + (tail ? len - 512 : off), magic, mlen);
	struct qc_io *io = qc_io_open_memory(b, len, false);
	assert_non_null(io);
	struct qc_options o = { .mem_cap = 1 << 20 };
	struct qc_image *img;
	assert_int_equal(qc_check_run(io, &o, &img), 0);
	assert_int_equal(qc_check_exit_code(img), 63);
	assert_int_equal(img->problems.corruptions, 0);
	assert_int_equal(img->problems.leaks, 0);
	assert_int_equal(img->problems.per_code[QC_P_IMAGE_NOT_QCOW2], 1);
	assert_string_equal(qc_severity_name(qc_problem_table[QC_P_IMAGE_NOT_QCOW2].severity),
			    "not-qcow2");
	assert_non_null(img->not_qcow2);
	snprintf(what, sizeof(what), "%s", img->not_qcow2);
	qc_image_free(img);
	qc_io_close(io);
	free(b);
	return what;
}

static void formats(void **state)
{
	(void)state;
	assert_string_equal(sniffed(0, 0, "", 0, false), "empty file");
	assert_string_equal(sniffed(4096, 0, "", 0, false), "raw or unknown");
	assert_string_equal(sniffed(4096, 0, "KDMV", 4, false), "VMDK");
	assert_string_equal(sniffed(4096, 0, "COWD", 4, false), "VMDK");
	assert_string_equal(sniffed(4096, 0, "# Disk DescriptorFile", 21, false), "VMDK descriptor");
	assert_string_equal(sniffed(4096, 0, "QED\0", 4, false), "QED");
	assert_string_equal(sniffed(4096, 0x40, "\x7f\x10\xda\xbe", 4, false), "VDI");
	assert_string_equal(sniffed(4096, 0, "vhdxfile", 8, false), "VHDX");
	assert_string_equal(sniffed(4096, 0, "conectix", 8, false), "VHD (VPC)");
	assert_string_equal(sniffed(4096, 0, "conectix", 8, true), "VHD (VPC, fixed)");
	assert_string_equal(sniffed(4096, 0, "koly", 4, true), "DMG");
	assert_string_equal(sniffed(4096, 0, "LUKS\xba\xbe", 6, false), "LUKS");
	assert_string_equal(sniffed(4096, 0, "WithoutFreeSpace", 16, false), "Parallels");
	assert_string_equal(sniffed(4096, 0, "Bochs Virtual HD Image", 22, false), "Bochs");
	assert_string_equal(sniffed(4096, 0, "QFI\xfb\0\0\0\1", 8, false), "qcow (version 1)");
	/* a magic cut short by the end of the file is not that format */
	assert_string_equal(sniffed(3, 0, "KDM", 3, false), "raw or unknown");
}

/* The backing-format driver table is sorted (bsearch finds every name). */
static void backing_drivers(void **state)
{
	(void)state;
	static const char *const known[] = {
		"blkdebug", "copy-before-write", "file", "host_device", "luks", "nbd", "null-co",
		"qcow", "qcow2", "qed", "raw", "vdi", "vhdx", "virtio-blk-vhost-vdpa", "vmdk",
		"vpc", "vvfat",
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		assert_true(qc_backing_driver_known(known[i]));
	static const char *const unknown[] = { "rax", "QCOW2", "qcow3", "", "vmdk ", "zzz", "aaa" };
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_false(qc_backing_driver_known(unknown[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(formats),
		cmocka_unit_test(backing_drivers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
