-- lifecycle: close, __close, __gc, iterators and rejected input
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local file_backend = backends.get("sqlite temp file")

-- with_close(open, body): body(st) with st held in a <close> variable. Lua
-- 5.4 only, compiled from text so that this file parses under 5.1/LuaJIT,
-- where the <close> specs are pending (the __close metamethod itself is
-- tested everywhere).
local with_close = fx.lua54 and assert(load([[
  local open, body = ...
  local st <close> = open()
  return body(st)
]], "=with_close"))
local NO_CLOSE = "<close> needs Lua 5.4 (" .. _VERSION .. " here)"

-- Every core method with valid arguments, so only "closed" can fail them.
local function calls(s)
  return {
    append = function(st) return st:append(s, fx.event("A")) end,
    read = function(st) return st:read(s) end,
    read_all = function(st) return st:read_all({ limit = 1 }) end,
    each = function(st) for _ in st:each(s) do end end,
    each_all = function(st) for _ in st:each(nil, { category = "x" }) do end end,
    last = function(st) return st:last(s) end,
    revision = function(st) return st:revision(s) end,
    since = function(st) return st:since(0) end,
    streams = function(st) return st:streams() end,
    stats = function(st) return st:stats() end,
    event = function(st) return st:event(eventstore.uuid()) end,
  }
end

for _, name in ipairs({ "memory:", "sqlite::memory:", "sqlite temp file" }) do
  local b = backends.get(name)

  describe("lifecycle on " .. name, function()
    local store, path
    backends.fresh(b, nil, function(s, p) store, path = s, p end)

    it("close returns true, every time", function()
      assert.is_true(store:close())
      assert.is_true(store:close())
      assert.is_true(store:close())
    end)

    it("every method raises 'closed store' after close", function()
      local s = fx.stream()
      assert(store:append(s, fx.event("A")))
      store:close()
      for method, call in pairs(calls(s)) do
        local ok, msg = pcall(call, store)
        assert.is_false(ok, method .. " did not raise on a closed store")
        assert.is_string(msg, method)
        assert.matches("closed store", msg, 1, true)
      end
    end)

    it("each() itself raises on a closed store, before any iteration", function()
      local s = fx.stream()
      store:close()
      fx.raises(function() store:each(s) end, "closed store")
      fx.raises(function() store:each(nil, { category = "x" }) end, "closed store")
    end)

    it("tostring works on an open and on a closed store", function()
      assert.matches("eventstore", tostring(store))
      store:close()
      assert.matches("eventstore", tostring(store))
    end)

    it("the __close metamethod (what <close> calls) closes the store, like close()", function()
      local mt = getmetatable(store)
      assert.is_function(mt.__close)
      assert.is_function(mt.__gc)
      mt.__close(store)
      fx.raises(function() store:stats() end, "closed store")
      mt.__close(store)
      assert.is_true(store:close())
    end)

    if fx.lua54 then
      local function reopen()
        return backends.open(b.file and { url = "sqlite:" .. path } or b)
      end

      it("<close> closes the store at the end of the block", function()
        local kept
        with_close(reopen, function(st)
          assert(st:append(fx.stream(), fx.event("A")))
          kept = st
        end)
        fx.raises(function() kept:stats() end, "closed store")
        assert.is_true(kept:close())
      end)

      it("<close> closes the store when the block raises", function()
        local kept
        local ok, msg = pcall(with_close, reopen, function(st)
          kept = st
          error("boom")
        end)
        assert.is_false(ok)
        assert.matches("boom", msg)
        fx.raises(function() kept:read_all() end, "closed store")
      end)
    else
      pending(NO_CLOSE)
    end

    it("breaking out of each() leaves the store usable and closable", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(2500)))
      local n = 0
      for ev in store:each(s) do
        n = n + 1
        if ev.revision == 3 then break end
      end
      assert.equals(3, n)
      assert.equals(2501, assert(store:append(s, fx.event("After"))).revision)
      assert.equals(2501, #store:read(s))
      local iter_all = store:each(nil, {})
      assert.equals(s, iter_all().stream)
      assert.is_true(store:close())
      collectgarbage()
      collectgarbage()
    end)

    it("appending inside an each() loop works and the loop sees the events it started with", function()
      local s, other = fx.stream(), fx.stream()
      assert(store:append(s, fx.events(2500)))
      local n = 0
      for ev in store:each(s) do
        n = n + 1
        if ev.revision % 500 == 0 then assert(store:append(other, fx.event("Side", { at = ev.revision }))) end
      end
      assert.equals(2500, n)
      assert.equals(5, store:revision(other))
    end)

    it("each returns the 4 values of a generic for, the 4th closing the iteration", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(5)))
      local function pack(...) return { n = select("#", ...), ... } end
      local packed = pack(store:each(s))
      assert.equals(4, packed.n)
      assert.is_function(packed[1])
      local closing = packed[4]
      local mt = getmetatable(closing)
      assert.is_function(mt and mt.__close)
      local first = packed[1](packed[2], packed[3])
      assert.equals(1, first.revision)
      mt.__close(closing)
      assert.is_nil(packed[1](packed[2], packed[3]))
    end)

    it("an exhausted iterator keeps returning nil", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(3)))
      local iter, st, ctl = store:each(s)
      local revs = {}
      for _ = 1, 3 do revs[#revs + 1] = iter(st, ctl).revision end
      assert.same({ 1, 2, 3 }, revs)
      assert.is_nil(iter(st, ctl))
      assert.is_nil(iter(st, ctl))
      assert.is_nil(iter(st, ctl))
    end)

    it("an iterator outliving its store raises or ends, never crashes", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(2500)))
      local iter = store:each(s)
      assert.equals(1, iter().revision)
      store:close()
      collectgarbage()
      local ok, res = pcall(iter)
      if ok then
        assert.is_true(res == nil or res.revision == 2)
      else
        assert.matches("closed store", res, 1, true)
      end
    end)

    it("an iterator keeps an unreferenced store alive", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(1500)))
      local iter = store:each(s)
      store = nil
      collectgarbage()
      collectgarbage()
      local n = 0
      for ev in iter do
        n = n + 1
        assert.equals(n, ev.revision)
      end
      assert.equals(1500, n)
    end)

    it("collecting an unclosed store does not crash", function()
      local s = fx.stream()
      assert(store:append(s, fx.events(3)))
      do
        local iter = store:each(s)
        assert.equals(1, iter().revision)
      end
      store = nil
      collectgarbage()
      collectgarbage()
      local again = backends.open(b.file and { url = "sqlite:" .. path } or b)
      assert.equals("table", type(again:stats()))
      again:close()
    end)
  end)
end

describe("lifecycle of a SQLite file", function()
  local path

  before_each(function()
    path = backends.tmpfile()
  end)

  after_each(function()
    backends.remove(path)
  end)

  local function open_file()
    return assert(eventstore.open("sqlite:" .. path))
  end

  it("a collected, unclosed store keeps its data: reopening the file sees it", function()
    local s = fx.stream()
    do
      local st = open_file()
      assert(st:append(s, fx.events(3)))
    end
    collectgarbage()
    collectgarbage()
    local again = open_file()
    assert.same({ 1, 2, 3 }, fx.revisions(again:read(s)))
    assert.equals(4, assert(again:append(s, fx.event("More"), { expected = 3 })).revision)
    again:close()
  end)

  it("a store closed with an unfinished each() releases the file", function()
    local s = fx.stream()
    local st = open_file()
    assert(st:append(s, fx.events(2500)))
    do
      local iter = st:each(s)
      assert.equals(1, iter().revision)
      assert.is_true(st:close())
    end
    collectgarbage()
    local again = open_file()
    assert.equals(2501, assert(again:append(s, fx.event("More"), { expected = 2500 })).revision)
    again:close()
  end)

  if fx.lua54 then
    it("<close> flushes: a second handle sees the data after the block", function()
      local s = fx.stream()
      with_close(open_file, function(st)
        assert(st:append(s, fx.events(2)))
      end)
      local again = open_file()
      assert.equals(2, again:revision(s))
      again:close()
    end)
  else
    pending(NO_CLOSE)
  end

  it("rejected input leaves the file byte-for-byte unchanged", function()
    local s = fx.stream()
    local st = open_file()
    assert(st:append(s, fx.events(3)))
    local before = fx.sqlite_bytes(path)
    fx.fails("conflict", st:append(s, fx.events(2), { expected = 1 }))
    fx.raises(function() st:append(s, { fx.event("Good"), fx.event("Bad", { f = print }) }) end, "function")
    fx.raises(function() st:append(s, { fx.event("Good"), fx.event("Bad", { x = 0 / 0 }) }) end, "nan")
    fx.raises(function() st:append("", fx.event("A")) end, "stream")
    local other, id = fx.stream(), st:read(s)[1].id
    fx.fails("conflict", st:append(other, { fx.event("New"), fx.event("Dup", {}, { id = id }) }))
    assert.is_true(fx.exactly(before, fx.sqlite_bytes(path)))
    st:close()
    local again = open_file()
    assert.same({ 1, 2, 3 }, fx.revisions(again:read(s)))
    assert.same({}, again:read(other))
    again:close()
  end)

  it("several processes appending to one file get conflicts, never corruption or busy", function()
    local child = os.tmpname()
    local f = assert(io.open(child, "w"))
    f:write(string.format("package.path = %q\npackage.cpath = %q\n", package.path, package.cpath), [[
local es = require("eventstore")
local path, checked, free, id, n, go = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5]), arg[6]
local ok, res = pcall(function()
  local st = assert(es.open("sqlite:" .. path))
  local started = os.time()
  repeat
    local g = io.open(go)
    if g then g:close() end
  until g or os.time() - started > 20
  local won, lost, any, other = 0, 0, 0, {}
  for i = 1, n do
    local r, err = st:append(checked, { type = "P", data = { p = id, i = i } }, { expected = st:revision(checked) })
    if r then won = won + 1
    elseif err.code == "conflict" then lost = lost + 1
    else other[#other + 1] = tostring(err) end
    r, err = st:append(free, { type = "Q", data = { p = id, i = i } })
    if r then any = any + 1 else other[#other + 1] = tostring(err) end
  end
  st:close()
  return string.format("%d %d %d %s", won, lost, any, table.concat(other, "|"))
end)
io.write(ok and res or ("RAISED " .. tostring(res)))
]])
    f:close()
    local st = open_file()
    local checked, free = fx.stream(), fx.stream()
    assert(st:append(fx.stream(), fx.event("Init")))
    local procs, n, go = {}, 100, path .. ".go"
    for id = 1, 4 do
      local cmd = string.format("%s %s %s '%s' '%s' %d %d %s 2>&1", fx.interpreter(), child, path, checked, free, id,
        n, go)
      procs[id] = assert(io.popen(cmd))
    end
    assert(io.open(go, "w")):close()  -- all four start appending together
    local won, lost = 0, 0
    for id = 1, 4 do
      local out = procs[id]:read("*a")
      procs[id]:close()
      local w, l, a, other = out:match("^(%d+) (%d+) (%d+) ?(.*)$")
      assert(w, "child " .. id .. ": " .. out)
      assert.equals("", other)
      assert.equals(n, tonumber(a))
      won, lost = won + tonumber(w), lost + tonumber(l)
    end
    os.remove(child)
    os.remove(go)
    assert.equals(4 * n, won + lost)
    assert.is_true(won >= n)
    assert.equals(won, st:revision(checked))
    assert.same(fx.range(1, won), fx.revisions(st:read(checked)))
    assert.same(fx.range(1, 4 * n), fx.revisions(st:read(free)))
    assert.is_true(fx.strictly_increasing(fx.positions(st:read_all())))
    assert.equals(1 + won + 4 * n, st:stats().events)
    st:close()
  end)

  it("two handles on one file see each other's writes and conflict on the same revision", function()
    local s = fx.stream()
    local a, c = open_file(), open_file()
    assert(a:append(s, fx.event("A"), { expected = eventstore.NO_STREAM }))
    assert.equals(1, c:revision(s))
    local err = fx.fails("conflict", c:append(s, fx.event("B"), { expected = eventstore.NO_STREAM }))
    assert.equals(1, err.actual)
    assert.equals(2, assert(c:append(s, fx.event("B"), { expected = 1 })).revision)
    assert.equals(2, a:revision(s))
    a:close()
    c:close()
  end)
end)

describe("file backend fixture", function()
  it("opens a fresh, empty store per call", function()
    local st, path = backends.open(file_backend)
    assert.equals(0, st:stats().events)
    st:close()
    backends.remove(path)
    assert.is_nil(fx.read_file(path))
  end)
end)
