/*
 * afl_driver.c - AFL++ persistent-mode driver for a libFuzzer-style
 * target (instrumentation/README.persistent_mode.md): deferred fork server,
 * test cases in shared memory, 10000 runs per process.  Built only with
 * afl-clang-fast/afl-clang-lto, which define __AFL_FUZZ_TESTCASE_LEN; with
 * another compiler it falls back to one input read from stdin, so the file
 * still builds and runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"

/* Inputs larger than this are cut: seeds are a few hundred KiB at most. */
#define MAX_INPUT (4u << 20)

#ifdef __AFL_FUZZ_TESTCASE_LEN
__AFL_FUZZ_INIT();
#endif

int main(void)
{
#ifdef __AFL_FUZZ_TESTCASE_LEN
	__AFL_INIT();
	unsigned char *buf = __AFL_FUZZ_TESTCASE_BUF;
	while (__AFL_LOOP(10000)) {
		size_t len = (size_t)__AFL_FUZZ_TESTCASE_LEN;
		LLVMFuzzerTestOneInput(buf, len);
	}
	return 0;
#else
	static uint8_t buf[MAX_INPUT];
	size_t len = fread(buf, 1, sizeof(buf), stdin);
	LLVMFuzzerTestOneInput(buf, len);
	return 0;
#endif
}
