# qcow2fsck build.  `make` builds build/qcow2fsck; see README.md for the rest.
CC ?= cc
PKGS := zlib libzstd libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lz -lzstd -lcrypto)
WARN := -Wall -Wextra -Werror -Wshadow -Wvla -Wformat=2 -Wno-format-nonliteral
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP
SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

LIB_SRCS := $(wildcard core/*.c checker/*.c repair/*.c) $(filter-out cli/main.c,$(wildcard cli/*.c))
MAIN_SRC := cli/main.c
UNIT_SRCS := $(wildcard tests/unit/test_*.c)

OBJS := $(LIB_SRCS:%.c=build/obj/%.o)
SAN_OBJS := $(LIB_SRCS:%.c=build/san/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/tests/%)
SAN_UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/san/tests/%)

.PHONY: all sanitize test unit image-tests demo bench fuzz deps clean doc-check corpus
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

unit: $(UNIT_BINS) $(SAN_UNIT_BINS)
	@set -e; for t in $(UNIT_BINS) $(SAN_UNIT_BINS); do echo "== $$t"; $$t; done

# Image tests run the sanitizer build, so every test is also an ASan/UBSan run.
image-tests: build/qcow2fsck build/san/qcow2fsck
	@QC=$(CURDIR)/build/san/qcow2fsck QC_FAST=$(CURDIR)/build/qcow2fsck sh tests/run-image-tests.sh

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

bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/bench.sh build/qcow2fsck

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(SAN_OBJS:.o=.d)
