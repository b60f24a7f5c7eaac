-- install_spec: the rockspec installs a working module into a fresh tree
local function run(cmd)
  -- sanitizer runs preload their runtime: the tools run here need none of it
  local p = assert(io.popen("unset LD_PRELOAD; " .. cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("luarocks install", function()
  local tree

  before_each(function()
    tree = os.tmpname()
    os.remove(tree)
  end)

  after_each(function()
    run("rm -rf '" .. tree .. "' csrc/*.o backends/*.o eventstore")
  end)

  it("installs with `luarocks --lua-version=5.4 make` and loads from the tree", function()
    local ok, out = run("luarocks --lua-version=5.4 --tree '" .. tree ..
      "' make --deps-mode=none eventstore-scm-1.rockspec")
    assert.is_true(ok, out)
    local script = [[
      local es = require("eventstore")
      assert(package.searchpath("eventstore.core", package.cpath):find(os.getenv("TREE"), 1, true))
      local s = assert(es.open("sqlite::memory:"))
      assert(s:append("a-1", { type = "T", data = { n = 1 } }, { expected = es.NO_STREAM }))
      assert(s:read("a-1")[1].data.n == 1)
      print("installed ok")
    ]]
    ok, out = run("cd /tmp && TREE='" .. tree .. "' LUA_PATH='" .. tree .. "/share/lua/5.4/?.lua;" ..
      tree .. "/share/lua/5.4/?/init.lua' LUA_CPATH='" .. tree ..
      "/lib/lua/5.4/?.so' lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'")
    assert.is_true(ok, out)
    assert.matches("installed ok", out)
  end)
end)
