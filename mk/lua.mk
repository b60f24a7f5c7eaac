# lua.mk: the module for every Lua ABI (5.1, 5.3, 5.4, LuaJIT) and OpenResty's packages
# SPDX-License-Identifier: MIT
#
# build-luajit     build/luajit/eventstore/core.so (make test needs it)
# build-all-lua    the module for 5.1, 5.3, 5.4 and LuaJIT, each in build/<version>/
# test-all-lua     make test, with the busted suite also under 5.1 and 5.3
# deps-lua         apt-installs what is missing of the interpreters, headers and nginx
#
# The core objects (build/obj, build/libeventstore.a) contain no Lua and are
# shared; only the binding is compiled once per ABI. A module built against
# one ABI does not load in another (5.4's needs luaL_checkversion_).

LUA_INC_5.1 := -I/usr/include/lua5.1
LUA_INC_5.3 := -I/usr/include/lua5.3
# The main Makefile computed LUA_INC before this fragment: again, with 5.1/5.3.
# LUA_INC is only used to compile the binding: a 5.2+ function called under
# 5.1/LuaJIT (where lua_compat.h has no shim yet) is then a build error, not
# an "undefined symbol" when the module loads.
LUA_INC := $(LUA_INC_$(LUA_VERSION)) -Werror=implicit-function-declaration

LUA_VERSIONS := 5.1 5.3 5.4 luajit
# luajit2/libluajit2-5.1-dev, not libluajit-5.1-dev: that one conflicts with
# libnginx-mod-http-lua. lua-busted installs for 5.1 to 5.4. The nginx test's
# clients use LuaSocket; it looks at the workers with pgrep and ps (procps).
DEBS_LUA := lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev luajit2 libluajit2-5.1-dev \
            nginx libnginx-mod-http-lua lua-busted lua-socket procps

.PHONY: deps-lua build-luajit build-all-lua test-all-lua $(addprefix build-lua-,$(LUA_VERSIONS))

deps-lua:
	@missing=""; for p in $(DEBS_LUA); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq $$missing >/dev/null; \
	fi

# One sub-make per ABI, in turn (they share build/obj and the archive).
$(addprefix build-lua-,$(LUA_VERSIONS)): build-lua-%: deps-lua lib
	@$(MAKE) --no-print-directory LUA_VERSION=$* module

build-luajit: build-lua-luajit
build-all-lua: $(addprefix build-lua-,$(LUA_VERSIONS))

# make test also runs the suite under LuaJIT and the nginx test (scripts/test.d).
test: deps-lua build-luajit

test-all-lua: deps deps-lua build build-all-lua tests
	@ES_TEST_LUA="5.1 5.3 luajit" scripts/test.sh
