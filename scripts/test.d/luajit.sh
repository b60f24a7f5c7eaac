# luajit.sh: the busted suite under LuaJIT (make test) and under 5.1 and 5.3 too (make test-all-lua)
# SPDX-License-Identifier: MIT
# Sourced by scripts/test.sh (busted_suite, note, $tmp). ES_TEST_LUA lists
# the versions (default "luajit"); each uses the module in build/<version>/.
#
# Every spec must pass on each of them (STYLE.md, the binding rule 9). A spec
# file that does not even parse there (5.4 syntax such as <close>, 5.3
# operators), itself or a spec/support file it requires, counts as a failure,
# named with its line. Version-specific expectations go in spec/compat_spec.lua
# or behind `if math.type then`.

# Specs of Lua 5.4 programs: under another interpreter they would test the
# same 5.4 program again, not the module built for that interpreter.
lua54_only=(
    "spec/cli_spec.lua|bin/eventstore is a Lua 5.4 program"
    "spec/install_spec.lua|it installs for 5.4; the rock for this Lua is checked below"
    "spec/bench_spec.lua|the bench and its esbench module run under lua5.4 only"
)

lua_suite() {
    local v=$1 lua files=() f why e
    case $v in
        luajit) lua=luajit ;;
        *) lua=lua$v ;;
    esac
    if ! command -v "$lua" >/dev/null; then
        echo "!! $lua not installed (make deps-lua)"
        failed=$((failed + 1))
        return
    fi
    if [ ! -f "build/$v/eventstore/core.so" ]; then
        echo "!! build/$v/eventstore/core.so not built (make build-all-lua)"
        failed=$((failed + 1))
        return
    fi
    cat >"$tmp/parses.lua" <<'LUA'
local file = arg[1]
local ok, err = loadfile(file)
if not ok then print(err) return end
local f = assert(io.open(file))
local src = f:read("*a")
f:close()
for mod in src:gmatch("require%(?%s*[\"']spec%.support%.([%w_]+)[\"']") do
  local ok2, err2 = loadfile("spec/support/" .. mod .. ".lua")
  if not ok2 then print("needs spec/support/" .. mod .. ".lua: " .. err2) return end
end
print("ok")
LUA
    for f in spec/*_spec.lua; do
        why=$("$lua" "$tmp/parses.lua" "$f" 2>&1)
        if [ "$why" = ok ]; then
            why=""
            for e in "${lua54_only[@]}"; do
                [ "${e%%|*}" = "$f" ] && why="${e#*|}"
            done
            if [ -n "$why" ]; then
                echo "-- not run under $lua: $f: $why"
                continue
            fi
            files+=("$f")
        else
            echo "!! $f does not parse under $lua: $why"
            failed=$((failed + 1))
        fi
    done
    busted_suite "$lua (${#files[@]} spec files)" "$lua" /usr/bin/busted --run=default --cpath="build/$v/?.so" "${files[@]}"
}

# The rockspec under `luarocks --lua-version=5.1` (the rock OpenResty's
# LuaJIT loads) or 5.3, built from a copy of the sources (the builtin build
# writes its objects next to them), then used from the tree alone.
lua_rock() {
    local v=$1 lua=$2
    local src=$tmp/rock-src-$v tree=$tmp/rock-$v
    mkdir -p "$src"
    tar -cf - --exclude=./build --exclude=./.git --exclude='*.o' --exclude='*.db' . | tar -C "$src" -xf - &&
    (cd "$src" && luarocks --lua-version="$v" --tree "$tree" make --deps-mode=none eventstore-scm-1.rockspec >"$tmp/rock-$v.log" 2>&1) ||
        { tail -n 20 "$tmp/rock-$v.log"; return 1; }
    (cd /tmp && LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua" LUA_CPATH="$tree/lib/lua/$v/?.so" \
        "$lua" -e '
local es = require("eventstore")
local s = assert(es.open("sqlite::memory:"))
assert(s:append("a-1", { type = "T", data = { n = 1, x = 0.5 } }, { expected = es.NO_STREAM }))
local ev = s:read("a-1")[1]
assert(ev.revision == 1 and ev.data.n == 1 and ev.data.x == 0.5)
assert(s:close())
print("rock for " .. _VERSION .. " loads and works under " .. (jit and jit.version or _VERSION))')
}

for v in ${ES_TEST_LUA:-luajit}; do
    lua_suite "$v"
    case $v in
        luajit) program "luarocks --lua-version=5.1 make, used from LuaJIT" lua_rock 5.1 luajit ;;
        *) program "luarocks --lua-version=$v make, used from lua$v" lua_rock "$v" "lua$v" ;;
    esac
done
