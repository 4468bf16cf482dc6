/*
 * fuzz_check.c - fuzz target "check": the whole check (every pass,
 * --deep so decompression runs too) on an in-memory image, capped at
 * QC_FUZZ_MEM_CAP.  Besides memory safety it asserts the verdict is one
 * of the documented exit codes and that a second check of the same bytes
 * reaches the same verdict (the check is a pure function of the image).
 */
#include <stdlib.h>

#include "../checker/check.h"
#include "fuzz.h"

static int check_once(const uint8_t *data, size_t size, unsigned long *nproblems)
{
	struct qc_io *io = qc_io_open_memory(data, size, false);
	if (!io)
		return -1;
	struct qc_options o = { .deep = true, .mem_cap = QC_FUZZ_MEM_CAP };
	struct qc_image *img;
	if (qc_check_run(io, &o, &img) < 0) {
		qc_io_close(io);
		return -1;
	}
	int code = qc_check_exit_code(img);
	*nproblems = (unsigned long)img->problems.n;
	qc_image_free(img);
	qc_io_close(io);
	return code;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned long n1 = 0, n2 = 0;
	int c1 = check_once(data, size, &n1);
	if (c1 < 0)
		return 0; /* out of memory before the model existed */
	if (c1 != 0 && c1 != 1 && c1 != 2 && c1 != 3 && c1 != 63)
		abort();
	/* Determinism: a second run must agree (catches reads of
	 * uninitialised or stale state that ASan cannot see). */
	int c2 = check_once(data, size, &n2);
	if (c2 >= 0 && (c2 != c1 || n2 != n1))
		abort();
	return 0;
}
