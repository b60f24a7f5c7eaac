-- leak: every error raised from C in the middle of work, in a loop, leaks nothing
-- SPDX-License-Identifier: MIT
--
-- Each case raises (lua_error longjmps out of the binding) after C has
-- built something sizeable: a JSON text or tree of a large value, a list of
-- compiled rules, a folded state, an open cursor, an open database. It runs
-- ES_LEAK_ROUNDS times (default 100) and then the store must still work.
--   * Under make asan (LeakSanitizer) and make valgrind (memcheck, definite
--     leaks are errors) any leak fails the run: that is the main check.
--   * In a plain run the process's resident memory may not grow by more than
--     24 MB over the loop (most rounds handle 300 KB or more in C, so a leak
--     of what such a round built shows as 30 MB or more), and the number of open
--     file descriptors may not grow at all (a database or socket left open).
--     The RSS bound is skipped under a sanitizer or valgrind, whose own
--     allocators hold freed memory back, and under LuaJIT, whose resident
--     size swings by tens of MB between collections without any leak.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local ROUNDS = tonumber(os.getenv("ES_LEAK_ROUNDS") or "") or 100
local preload = os.getenv("LD_PRELOAD") or ""
-- Lua 5.1's collector (and LuaJIT's) lags behind cases that build a large
-- value every round, and glibc keeps what was freed: the resident size then
-- measures the collector, not the store. The leak checkers (LSan in make
-- asan, valgrind) cover every version's C code.
local CHECK_RSS = not (preload:find("asan") or preload:find("vgpreload") or os.getenv("ES_LEAK_NO_RSS")
  or rawget(_G, "jit") or _VERSION == "Lua 5.1")
local pg_url = os.getenv("EVENTSTORE_PG_URL")
if pg_url == "" then pg_url = nil end

local function rss_kb()
  local f = io.open("/proc/self/statm", "r")
  if not f then return nil end
  local _, res = f:read("*n", "*n")
  f:close()
  return res and res * 4
end

local function fd_count()
  local p = io.popen("ls /proc/" .. "self/fd 2>/dev/null | wc -l")
  local out = p:read("*a")
  p:close()
  -- the ls sees its own pipe's descriptors too; only the change matters
  return tonumber(out:match("%d+"))
end

local big_list = {}
for i = 1, 30000 do big_list[i] = i * 1.5 end
local big_text = string.rep("abcdefgh", 40000)  -- 320 KB

-- A large value with something bad at its very end.
local function big_with(bad)
  local t = { text = big_text, list = {} }
  for i = 1, #big_list do t.list[i] = big_list[i] end
  t.list[#t.list + 1] = { last = bad }
  return t
end

local function deep(levels)
  local t = {}
  for _ = 1, levels do t = { t } end
  return t
end

-- the 100,000-level value the cases share (see its case)
local deep_value = deep(100000)

local function cyclic()
  local t = big_with(1)
  t.list[#t.list].last = t
  return t
end

-- loop(fn): fn must raise every time; returns the RSS and fd growth.
local function loop(fn)
  local ok = pcall(fn)
  assert.is_false(ok, "the case did not raise")
  collectgarbage()
  collectgarbage()
  local rss0, fd0 = rss_kb(), fd_count()
  for _ = 1, ROUNDS do
    local ok2, msg = pcall(fn)
    assert(not ok2, "the case did not raise")
    assert(type(msg) == "string" and #msg > 0, "the error is not a message")
  end
  collectgarbage()
  collectgarbage()
  return rss_kb() - rss0, fd_count() - fd0
end

local function check(fn)
  local grew_kb, fds = loop(fn)
  assert.equals(0, fds, "file descriptors left open")
  if CHECK_RSS then
    assert.is_true(grew_kb < 24 * 1024, string.format("resident memory grew by %d KB over %d rounds", grew_kb, ROUNDS))
  end
end

describe("errors raised from C leak nothing #leak", function()
  local store, path, s

  before_each(function()
    store, path = backends.open(backends.get("sqlite temp file"))
    s = fx.stream("leak")
    assert(store:append(s, { { type = "A", data = { x = 1 } }, { type = "B", data = { x = 2 } } }))
  end)

  after_each(function()
    if store then store:close() end
    backends.remove(path)
    store, path = nil, nil
  end)

  local function still_works()
    local rev = store:revision(s)
    assert.equals(rev + 1, assert(store:append(s, fx.event("After"), { expected = rev })).revision)
  end

  local cases = {
    { "append: NaN at the end of a large value", function()
      store:append(s, { type = "T", data = big_with(0 / 0) })
    end },
    { "append: invalid UTF-8 at the end of a large value", function()
      store:append(s, { type = "T", data = big_with("\255") })
    end },
    { "append: a cycle inside a large value", function()
      store:append(s, { type = "T", data = cyclic() })
    end },
    { "append: 100,000 levels of nesting", function()
      -- built once: 100,000 fresh tables a round would measure the
      -- collector's pace (Lua 5.1's lags), not what the store keeps
      store:append(s, { type = "T", data = { x = deep_value } })
    end },
    { "append: the 20th event of a batch has no type", function()
      local list = {}
      for i = 1, 19 do list[i] = { type = "T", data = { text = big_text } } end
      list[20] = { data = {} }
      store:append(s, list)
    end },
    { "append: two events with the same id after large ones", function()
      local id = eventstore.uuid()
      store:append(s, { { type = "T", data = { text = big_text } }, { id = id, type = "T" }, { id = id, type = "T" } })
    end },
    { "append: a key with a NUL byte in metadata", function()
      store:append(s, { type = "T", data = { text = big_text }, metadata = { ["a\0b"] = 1 } })
    end },
    { "save_snapshot: NaN at the end of a large value", function()
      store:save_snapshot(s, 1, big_with(0 / 0), 1)
    end },
    { "json_encode: a function at the end of a large value", function()
      eventstore.json_encode(big_with(print))
    end },
    { "json_encode sorted: NaN at the end of a large value", function()
      eventstore.json_encode(big_with(0 / 0), { sort_keys = true })
    end },
    { "reducer: an unknown rule after 500 good ones", function()
      local spec = {}
      for i = 1, 500 do spec["f" .. i] = { { "sum", from = "x", when = { "A", "B" } } } end
      spec.zzz = "no_such_rule"
      eventstore.reducer(spec)
    end },
    { "fold: a custom rule raising on the last of many events", function()
      local r = eventstore.reducer({ tags = "append", x = function(acc, v)
        if v == 500 then error("custom rule failed") end
        return (acc or 0) + v
      end })
      local list = {}
      for i = 1, 500 do list[i] = { type = "T", data = { x = i, tags = { big_text:sub(1, 600) } } } end
      r:fold(list)
    end },
    { "fold: NaN in the data of the last of many events", function()
      local r = eventstore.reducer({ tags = "append" })
      local list = {}
      for i = 1, 500 do list[i] = { type = "T", data = { tags = { big_text:sub(1, 600) } } } end
      list[501] = { type = "T", data = { x = 0 / 0 } }
      r:fold(list)
    end },
    { "state: a custom rule raising mid-stream (an open cursor)", function()
      store:state(s, eventstore.reducer({ x = function(_, v)
        if v == 2 then error("custom rule failed") end
        return v
      end }))
    end },
    { "state: a where holding NaN", function()
      store:state({ category = "leak", where = { x = 0 / 0, text = big_text } }, eventstore.reducer({ x = "sum" }))
    end },
    { "open: an unknown option", function()
      eventstore.open("sqlite:" .. path, { synchronous = "full", bogus = true })
    end },
    { "open: a file that is not a database (sqlite opened, then closed)", function()
      local junk = path .. ".junk"
      local f = assert(io.open(junk, "wb"))
      f:write(string.rep("not a database ", 1000))
      f:close()
      local st, err = eventstore.open("sqlite:" .. junk)
      os.remove(junk)
      assert(not st, "a junk file opened")
      error(tostring(err))
    end },
    { "a call on a closed store", function()
      local st = assert(eventstore.open("sqlite::memory:"))
      assert(st:append("x-1", { type = "T", data = { text = big_text } }))
      st:close()
      st:append("x-1", { type = "T" })
    end },
    { "each: an error raised in the loop body with a cursor open", function()
      for _ in store:each(nil, {}) do error("loop body failed") end
    end },
  }

  for _, case in ipairs(cases) do
    it(case[1] .. " (" .. ROUNDS .. " times)", function()
      check(case[2])
      still_works()
    end)
  end

  it("a subscription handler failing " .. ROUNDS .. " times leaves nothing open", function()
    local name = fx.name("sub")
    local sub = store:subscribe(name, { category = "leak", from = "start" }, { ["*"] = function()
      error("handler failed")
    end })
    check(function()
      local n, err = sub:poll()
      assert(n == nil, "poll succeeded")
      error(tostring(err))
    end)
    still_works()
  end)

  if pg_url then
    it("PostgreSQL: a refused login " .. ROUNDS .. " times leaves no socket open #postgres", function()
      local bad = pg_url:gsub("^(%a+://[^:/@]+):[^@]*@", "%1:wrong@")
      check(function()
        local st, err = eventstore.open(bad)
        assert(not st)
        error(tostring(err))
      end)
      still_works()
    end)
  else
    pending("PostgreSQL refused logins: set EVENTSTORE_PG_URL (make test does)")
  end
end)
