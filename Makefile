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
CFLAGS += -std=c99 -D_DEFAULT_SOURCE -fPIC -Wall -Wextra -Wno-unused-parameter
CPPFLAGS += -Icsrc -I$(PG_INC) -DES_WITH_POSTGRES=$(ES_WITH_POSTGRES)
LDLIBS_CORE := -lsqlite3 -luuid -ljansson -lpq

ES_WITH_POSTGRES ?= $(if $(wildcard backends/postgres.c),1,0)

CORE_SRC := csrc/error.c csrc/uuid.c csrc/json.c csrc/store.c $(wildcard csrc/reduce.c) \
            backends/registry.c backends/memory.c backends/sqlite.c $(wildcard backends/postgres.c)
BIND_SRC := $(wildcard csrc/lua_*.c)
HDRS := $(wildcard csrc/*.h)

LUA_INC_5.4 := -I/usr/include/lua5.4
LUA_INC_luajit := -I/usr/include/luajit-2.1
LUA_INC := $(LUA_INC_$(LUA_VERSION))
OUT := $(BUILD)/$(LUA_VERSION)
OBJDIR := $(BUILD)/obj

CORE_OBJ := $(patsubst %.c,$(OBJDIR)/%.o,$(CORE_SRC))

.PHONY: deps build lib module test test-c demo asan bench install clean examples

$(OBJDIR)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libeventstore.a: $(CORE_OBJ)
	@mkdir -p $(BUILD)
	rm -f $@ && ar rcs $@ $^

$(OUT)/eventstore/core.so: $(BIND_SRC) $(HDRS) $(BUILD)/libeventstore.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(LUA_INC) $(CFLAGS) -shared -o $@ $(BIND_SRC) $(BUILD)/libeventstore.a $(LDLIBS_CORE)

$(BUILD)/c_example: examples/c_example.c $(BUILD)/libeventstore.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(BUILD)/libeventstore.a $(LDLIBS_CORE)

lib: $(BUILD)/libeventstore.a
module: $(OUT)/eventstore/core.so
build: deps-check lib module $(BUILD)/c_example

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
