# reliability.mk: crash, valgrind and fuzzing targets (issue 6)
# SPDX-License-Identifier: MIT
#
# crash-test     spec/crash_spec.lua with 20 SIGKILL rounds per backend (SQLite file
#                and a throwaway PostgreSQL); CRASH_ROUNDS=N to change. make test runs
#                3 rounds per backend with the other specs.
# valgrind       the whole busted suite under memcheck with luv's flags: no definite
#                leak, no invalid read or write (a separate -O1 build in build/valgrind)
# fuzz           each libFuzzer target for FUZZ_SECONDS (60) on its committed corpus;
#                new inputs go to build/fuzz/corpus, crashes to build/fuzz/artifacts
# fuzz-regress   each target once over fuzz/corpus/<target> (quick; make test runs it)
# fuzz-merge     fold build/fuzz/corpus into the committed corpus (minimized)
# deps-reliability  apt-installs clang, libclang-rt-14-dev, valgrind, sqlite3

DEBS_RELIABILITY := clang libclang-rt-14-dev valgrind sqlite3
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
CRASH_ROUNDS ?= 20
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -g -O1 -std=c99 -D_DEFAULT_SOURCE $(FUZZ_SAN)
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
# the core without Lua: every csrc/*.c but the binding, and every backend
FUZZ_CORE_SRC := $(filter-out csrc/lua_%.c,$(wildcard csrc/*.c)) $(wildcard backends/*.c)
FUZZ_CORE_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_CORE_SRC))

.PHONY: deps-reliability crash-test valgrind fuzz fuzz-build fuzz-regress fuzz-merge
# the objects are intermediate files of the binaries: keep them between runs
.SECONDARY: $(FUZZ_CORE_OBJ)

deps-reliability:
	@missing=""; for p in $(DEBS_RELIABILITY); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$missing >/dev/null; \
	fi

# make test runs the short crash round (spec/crash_spec.lua), fuzz-regress
# (scripts/test.d/reliability.sh) and needs the sqlite3 CLI.
test: deps-reliability fuzz-build

crash-test: deps deps-reliability build
	@CRASH_ROUNDS=$(CRASH_ROUNDS) scripts/crash.sh

valgrind: deps deps-reliability
	$(MAKE) --no-print-directory BUILD=build/valgrind CFLAGS="-O1 -g" lib module
	@scripts/valgrind.sh build/valgrind

$(FUZZ_DIR)/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/%: fuzz/%.c fuzz/fuzz_common.h $(FUZZ_CORE_OBJ)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_CORE_OBJ) $(LDLIBS_CORE) -lm

fuzz-build: deps-reliability $(FUZZ_BINS)

fuzz: fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh run $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	@scripts/fuzz.sh regress $(FUZZ_TARGETS)

fuzz-merge: fuzz-build
	@scripts/fuzz.sh merge $(FUZZ_TARGETS)
