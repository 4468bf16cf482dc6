# qcow2fsck build.  `make` builds build/qcow2fsck; see README.md for the rest.
CC ?= cc
PKGS := zlib libzstd libcrypto libdeflate
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lz -lzstd -lcrypto -ldeflate) -pthread
WARN := -Wall -Wextra -Werror -Wshadow -Wvla -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRCS := $(wildcard core/*.c checker/*.c repair/*.c scan/*.c) $(filter-out cli/main.c,$(wildcard cli/*.c))
MAIN_SRC := cli/main.c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(LIB_SRCS:%.c=build/san/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
SAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/san/tests/%)

.PHONY: all sanitize test unit image-tests demo bench fuzz fuzz-build fuzz-replay fuzz-replay-bins deps clean doc-check corpus install uninstall
all: build/qcow2fsck

deps:
	@sh scripts/deps.sh

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

build/san/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -c $< -o $@

build/libqc.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

build/san/libqc.a: $(SAN_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/qcow2fsck: build/obj/cli/main.o build/libqc.a
	$(CC) $(CFLAGS) -o $@ $^ $(PKG_LIBS)

build/san/qcow2fsck: build/san/obj/cli/main.o build/san/libqc.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

sanitize: build/san/qcow2fsck

build/tests/%: tests/unit/%.c build/libqc.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/libqc.a $(PKG_LIBS) -lcmocka

build/san/tests/%: tests/unit/%.c build/san/libqc.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -o $@ $< build/san/libqc.a $(PKG_LIBS) -lcmocka

# The LD_PRELOAD shim of the crash-state tests (tests/crashshim.c,
# doc/crash-states.md): kills QEMU's tools before their Nth image write or
# logs their writes and flushes.
build/tests/crashshim.so: tests/crashshim.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -fPIC -shared -o $@ $< -ldl -lpthread

# The differential test of the deflate decoders (tests/dcdiff.c,
# doc/inflate.md), run by tests/images/inflate-diff.sh.
build/tests/dcdiff: tests/dcdiff.c build/libqc.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< build/libqc.a $(PKG_LIBS)

unit: $(UNIT_BINS) $(SAN_UNIT_BINS)
	@set -e; for t in $(UNIT_BINS) $(SAN_UNIT_BINS); do echo "== $$t"; $$t; done

# Test-only binary (sanitizer build) whose I/O layer takes faults from the
# environment: core/io.c with -DQC_FAULT_INJECTION plus tests/faults/faults.c,
# linked before libqc.a so they replace its io.o.  Production binaries carry
# no hook (tests/images/repair-crash.sh checks them with strings).
FAULTS_BIN := build/test/qcow2fsck-faults

build/test/obj/core/io.o: core/io.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -DQC_FAULT_INJECTION -c $< -o $@

build/test/obj/faults.o: tests/faults/faults.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN_FLAGS) -DQC_FAULT_INJECTION -c $< -o $@

$(FAULTS_BIN): build/test/obj/core/io.o build/test/obj/faults.o build/san/obj/cli/main.o build/san/libqc.a
	$(CC) $(SAN_FLAGS) -o $@ $^ $(PKG_LIBS)

# Image tests run the sanitizer build, so every test is also an ASan/UBSan run.
# The fuzz replay mains are built first: tests/images/fuzz-replay.sh replays
# corpus/ and tests/crashers/ through them and through the CLI.
image-tests: build/qcow2fsck build/san/qcow2fsck fuzz-replay-bins $(FAULTS_BIN) build/tests/crashshim.so build/san/tests/test_walk_diff build/tests/dcdiff
	@QC=$(CURDIR)/build/san/qcow2fsck QC_FAST=$(CURDIR)/build/qcow2fsck QC_FAULTS=$(CURDIR)/$(FAULTS_BIN) sh tests/run-image-tests.sh

doc-check: build/qcow2fsck
	@sh tests/doc-check.sh

test: deps
	@$(MAKE) --no-print-directory all sanitize
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory doc-check
	@$(MAKE) --no-print-directory image-tests

demo: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/demo.sh build/qcow2fsck

# the bench's timer (bench/measure.c; bench/measure.sh finds it here)
build/measure: bench/measure.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

bench: deps
	@$(MAKE) --no-print-directory all build/measure
	@sh bench/bench.sh build/qcow2fsck

# ---- Fuzzing (fuzz/README.md).  One target source per fuzz/fuzz_<t>.c, built
# three ways: libFuzzer (clang), AFL++ persistent mode (+ a CMPLOG build), and
# a replay main with the normal sanitizer flags (used by `make test`).
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20
FUZZ_CLANG ?= clang
AFL_CC ?= afl-clang-fast
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(PKG_CFLAGS) -O1 -g -fno-omit-frame-pointer
LF_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
LF_OBJS := $(LIB_SRCS:%.c=build/libfuzzer/obj/%.o)
AFL_OBJS := $(LIB_SRCS:%.c=build/afl/obj/%.o)
CMPLOG_OBJS := $(LIB_SRCS:%.c=build/afl-cmplog/obj/%.o)

# The CLI's main() is linked into every fuzz binary as qc_cli_main(), so a
# target can drive the real command line (fuzz_info.c).
build/san/fuzz/cli-main.o: cli/main.c
	@mkdir -p $(dir $@)
	$(CC) $(FUZZ_CFLAGS) $(SAN_FLAGS) -Dmain=qc_cli_main -c $< -o $@

build/san/fuzz/replay-%: fuzz/fuzz_%.c fuzz/replay_main.c fuzz/fuzz.h build/san/fuzz/cli-main.o build/san/libqc.a
	$(CC) $(FUZZ_CFLAGS) $(SAN_FLAGS) -o $@ fuzz/fuzz_$*.c fuzz/replay_main.c build/san/fuzz/cli-main.o build/san/libqc.a $(PKG_LIBS)

build/libfuzzer/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link $(LF_SAN) -c $< -o $@

build/libfuzzer/cli-main.o: cli/main.c
	@mkdir -p $(dir $@)
	$(FUZZ_CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(LF_SAN) -Dmain=qc_cli_main -c $< -o $@

build/libfuzzer/libqc.a: $(LF_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/libfuzzer/fuzz-%: fuzz/fuzz_%.c fuzz/fuzz.h build/libfuzzer/cli-main.o build/libfuzzer/libqc.a
	$(FUZZ_CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LF_SAN) -o $@ $< build/libfuzzer/cli-main.o build/libfuzzer/libqc.a $(PKG_LIBS)

# AFL++: the main binary carries ASan+UBSan (one sanitizer instance per
# campaign), the CMPLOG binary (afl-fuzz -c) none.
AFL_ENV := AFL_QUIET=1 AFL_USE_ASAN=1 AFL_USE_UBSAN=1
CMPLOG_ENV := AFL_QUIET=1 AFL_LLVM_CMPLOG=1

build/afl/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(AFL_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

build/afl/cli-main.o: cli/main.c
	@mkdir -p $(dir $@)
	$(AFL_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -Dmain=qc_cli_main -c $< -o $@

build/afl/libqc.a: $(AFL_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/afl/fuzz-%: fuzz/fuzz_%.c fuzz/afl_driver.c fuzz/fuzz.h build/afl/cli-main.o build/afl/libqc.a
	$(AFL_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_$*.c fuzz/afl_driver.c build/afl/cli-main.o build/afl/libqc.a $(PKG_LIBS)

build/afl-cmplog/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CMPLOG_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

build/afl-cmplog/cli-main.o: cli/main.c
	@mkdir -p $(dir $@)
	$(CMPLOG_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -Dmain=qc_cli_main -c $< -o $@

build/afl-cmplog/libqc.a: $(CMPLOG_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/afl-cmplog/fuzz-%: fuzz/fuzz_%.c fuzz/afl_driver.c fuzz/fuzz.h build/afl-cmplog/cli-main.o build/afl-cmplog/libqc.a
	$(CMPLOG_ENV) $(AFL_CC) $(FUZZ_CFLAGS) -o $@ fuzz/fuzz_$*.c fuzz/afl_driver.c build/afl-cmplog/cli-main.o build/afl-cmplog/libqc.a $(PKG_LIBS)

fuzz-replay-bins: $(FUZZ_TARGETS:%=build/san/fuzz/replay-%)

fuzz-build: $(FUZZ_TARGETS:%=build/san/fuzz/replay-%) $(FUZZ_TARGETS:%=build/libfuzzer/fuzz-%) \
	    $(FUZZ_TARGETS:%=build/afl/fuzz-%) $(FUZZ_TARGETS:%=build/afl-cmplog/fuzz-%)

# Replays corpus/ and tests/crashers/ through every replay main and the CLI
# (sanitizer build); part of `make test`.
fuzz-replay: build/san/qcow2fsck fuzz-replay-bins
	@QC=$(CURDIR)/build/san/qcow2fsck REPLAY_DIR=$(CURDIR)/build/san/fuzz sh tests/images/fuzz-replay.sh

# `make fuzz`: every target for FUZZ_SECONDS with libFuzzer, then the check
# target for FUZZ_SECONDS with AFL++ (+CMPLOG).  Findings land in build/fuzz-out/.
fuzz:
	@sh scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh fuzz/run.sh $(FUZZ_TARGETS)

clean:
	rm -rf build

# `make install PREFIX=/usr/local DESTDIR=`: the stripped binary, the man
# page, and the problem list and repair notes under share/doc/qcow2fsck.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
DOCDIR = $(DESTDIR)$(PREFIX)/share/doc/qcow2fsck
INSTALL_DOCS := doc/problems.md doc/repair.md doc/scan.md

install: build/qcow2fsck
	install -d $(BINDIR) $(MANDIR) $(DOCDIR)
	install -m 755 -s build/qcow2fsck $(BINDIR)/qcow2fsck
	install -m 644 doc/qcow2fsck.1 $(MANDIR)/qcow2fsck.1
	install -m 644 $(INSTALL_DOCS) $(DOCDIR)/

uninstall:
	rm -f $(BINDIR)/qcow2fsck $(MANDIR)/qcow2fsck.1
	rm -f $(addprefix $(DOCDIR)/,$(notdir $(INSTALL_DOCS)))
	-rmdir $(DOCDIR) 2>/dev/null

-include build/test/obj/core/io.d build/test/obj/faults.d $(OBJS:.o=.d) $(SAN_OBJS:.o=.d) build/obj/cli/main.d build/san/obj/cli/main.d $(LF_OBJS:.o=.d) $(AFL_OBJS:.o=.d) $(CMPLOG_OBJS:.o=.d)
