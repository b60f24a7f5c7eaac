# eventstore: build, test, bench, demo. `make demo` and `make test` do all set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := build

LUA_VERSION ?= 5.4
CC ?= cc
BUILD := build
PKGS := sqlite3 uuid jansson libpq
DEBS := lua5.4 liblua5.4-dev lua-busted luarocks libsqlite3-dev libpq-dev postgresql \
        uuid-dev libjansson-dev lua-check pkg-config
PG_INC := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)

CFLAGS ?= -O2 -g
override CFLAGS += -std=c99 -D_DEFAULT_SOURCE -fPIC -Wall -Wextra -Wno-unused-parameter
CPPFLAGS += -Icsrc -I$(PG_INC) -DES_WITH_POSTGRES=$(ES_WITH_POSTGRES)
LDLIBS_CORE := -lsqlite3 -luuid -ljansson -lpq

ES_WITH_POSTGRES ?= $(if $(wildcard backends/postgres.c),1,0)

CORE_SRC := csrc/error.c csrc/uuid.c csrc/json.c csrc/json_text.c csrc/store.c $(wildcard csrc/reduce.c csrc/reduce_num.c csrc/state.c) \
            backends/registry.c backends/memory.c $(wildcard backends/sqlite*.c backends/postgres*.c)
BIND_SRC := $(wildcard csrc/lua_*.c)
HDRS := $(wildcard csrc/*.h backends/*.h)

LUA_INC_5.4 := -I/usr/include/lua5.4
LUA_INC_luajit := -I/usr/include/luajit-2.1
LUA_INC := $(LUA_INC_$(LUA_VERSION))
OUT := $(BUILD)/$(LUA_VERSION)
OBJDIR := $(BUILD)/obj

CORE_OBJ := $(patsubst %.c,$(OBJDIR)/%.o,$(CORE_SRC))

.PHONY: deps deps-check build lib module test demo asan install clean

# Objects are rebuilt when the flags change (a backend appears, ASan, ...).
FLAGS_STAMP := $(OBJDIR)/flags-$(shell echo '$(CC) $(CPPFLAGS) $(CFLAGS)' | md5sum | cut -c1-12)
$(FLAGS_STAMP):
	@mkdir -p $(OBJDIR) && rm -f $(OBJDIR)/flags-* && touch $@

$(OBJDIR)/%.o: %.c $(HDRS) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libeventstore.a: $(CORE_OBJ)
	@mkdir -p $(BUILD)
	rm -f $@ && ar rcs $@ $^

$(OUT)/eventstore/core.so: $(BIND_SRC) $(HDRS) $(BUILD)/libeventstore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(LUA_INC) $(CFLAGS) $(LDFLAGS) -shared -o $@ $(BIND_SRC) $(BUILD)/libeventstore.a $(LDLIBS_CORE)

$(BUILD)/c_example: examples/c_example.c $(BUILD)/libeventstore.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libeventstore.a $(LDLIBS_CORE)

TEST_SRC := $(wildcard tests/c/*_check.c)
TEST_BIN := $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(TEST_SRC))

$(BUILD)/tests/%: tests/c/%.c $(wildcard tests/c/*.h) $(BUILD)/libeventstore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DES_CHECK_STATE $(CFLAGS) -o $@ $< $(BUILD)/libeventstore.a $(LDLIBS_CORE)

# The binding's own check links its sources and Lua 5.4 (reads through the
# data index with records that do not fit their text).
$(BUILD)/tests/binding_check: tests/c/binding_check.c tests/c/check.h $(BIND_SRC) $(HDRS) $(BUILD)/libeventstore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(LUA_INC_5.4) $(CFLAGS) -o $@ $< $(BIND_SRC) $(BUILD)/libeventstore.a $(LDLIBS_CORE) -llua5.4 -lm

lib: $(BUILD)/libeventstore.a
module: $(OUT)/eventstore/core.so
build: deps-check lib module $(BUILD)/c_example
tests: $(TEST_BIN)

# Every suite, with a throwaway PostgreSQL; ends with "N passed, N failed".
test: deps build tests
	@scripts/test.sh

# Runs an example on an embedded SQLite file in a new temporary folder, and
# keeps the store there so the CLI can look at it afterwards.
demo: deps build
	@d=$$(mktemp -d /tmp/eventstore-demo.XXXXXX); \
	EVENTSTORE_DEMO_DB="$$d/demo.db" lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="$(OUT)/?.so;"..package.cpath' examples/demo.lua && \
	echo && echo "the demo's store is $$d/demo.db; look at it with the CLI:" && \
	echo "  bin/eventstore --url sqlite:$$d/demo.db read account-42" && \
	echo "  bin/eventstore --url sqlite:$$d/demo.db stats"

# The whole suite under AddressSanitizer + UBSan (a separate build folder).
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: deps
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" lib module
	@mkdir -p build/asan && echo 'int dlclose(void *h) { (void)h; return 0; }' > build/asan/nodlclose.c
	$(CC) -shared -fPIC -o build/asan/nodlclose.so build/asan/nodlclose.c
	@scripts/asan.sh build/asan

# Installs the module with luarocks into the system tree (root) or TREE=dir.
install: deps build
	luarocks --lua-version=5.4 $(if $(TREE),--tree $(TREE)) make --deps-mode=none eventstore-scm-1.rockspec

# Installs only what is missing (root on Debian 12).
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$missing >/dev/null; \
	fi

deps-check: deps

clean:
	rm -rf $(BUILD) bench/out

# Fragments owned by parts of the project (bench, postgres, ...).
-include mk/*.mk
