/*
 * fuzz_info.c - fuzz target "info": `qcow2fsck info` (human and JSON)
 * through the real main() (cli/main.c linked as qc_cli_main), on the input served as a
 * memfd (/proc/self/fd/N, so no file is ever created), then the check
 * report writers (human and JSON) on the model of the same bytes.
 * Output goes to /dev/null; only memory safety and the exit codes
 * (0 or 63 for info, never a crash) are checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../checker/check.h"
#include "../cli/report.h"
#include "fuzz.h"

static FILE *devnull;

/* qcow2fsck info --output=OUT PATH, through the real main(). */
static void run_info(const char *path, const char *outopt)
{
	char a0[] = "qcow2fsck", a1[] = "info", a2[64], a3[64];
	snprintf(a2, sizeof(a2), "%s", outopt);
	snprintf(a3, sizeof(a3), "%s", path);
	char *argv[] = { a0, a1, a2, a3, NULL };
	int code = qc_cli_main(4, argv);
	if (code != 0 && code != 1 && code != 63)
		abort();
}

static void writers(const uint8_t *data, size_t size)
{
	struct qc_io *io = qc_io_open_memory(data, size, false);
	if (!io)
		return;
	struct qc_options o = { .deep = false, .mem_cap = QC_FUZZ_MEM_CAP };
	struct qc_image *img;
	if (qc_check_run(io, &o, &img) == 0) {
		qc_print_human(img, "fuzz.qcow2", NULL, devnull);
		qc_print_json(img, "fuzz.qcow2", NULL, devnull);
		qc_image_free(img);
	}
	qc_io_close(io);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!devnull) {
		devnull = fopen("/dev/null", "w");
		if (!devnull || !freopen("/dev/null", "w", stdout))
			abort();
	}
	int fd = memfd_create("qc-fuzz-info", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(fd, data + done, size - done);
		if (w <= 0)
			abort();
		done += (size_t)w;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	run_info(path, "--output=human");
	run_info(path, "--output=json");
	close(fd);
	writers(data, size);
	return 0;
}
