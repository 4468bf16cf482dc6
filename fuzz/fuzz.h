/*
 * fuzz.h - what every fuzz target shares: the libFuzzer entry point each
 * fuzz_<target>.c defines, and the options the targets run the check with.
 *
 * One target source is linked three ways (fuzz/README.md): with libFuzzer,
 * with fuzz/afl_driver.c (AFL++ persistent mode) and with
 * fuzz/replay_main.c (plain sanitizer build that replays files).
 */
#ifndef QC_FUZZ_H
#define QC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Memory cap for one check of a fuzzed image: large enough for every
 * honest small image, small enough that ASan/AFL never hit their own
 * limits first.  Reaching it is a clean "exit 1", not a finding. */
#define QC_FUZZ_MEM_CAP (256u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* cli/main.c's main(), compiled with -Dmain=qc_cli_main into fuzz binaries. */
int qc_cli_main(int argc, char **argv);

#endif
