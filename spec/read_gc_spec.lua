-- read_gc: a read builds its rows with Lua 5.4's collector paused, and leaves it as it was
-- SPDX-License-Identifier: MIT
--
-- push_query (csrc/lua_store.c) stops the collector while it builds a
-- read's list and restarts it after, also when the build raises. These
-- specs check, on every backend, that a running collector is running after
-- every kind of read, a stopped one stays stopped, a read that fails in the
-- middle (a stored text that is not JSON) restarts it, and reads in a loop
-- keep the heap bounded in both of Lua 5.4's modes: a collector left
-- stopped, or one that never caught up with what the reads allocated while
-- it was paused, grows it by the 1.5 MB of every read.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local procs = require("spec.support.procs")

-- Lua 5.1 has no "isrunning"; LuaJIT has it.
local HAS_ISRUNNING = pcall(collectgarbage, "isrunning")
local LUA54 = _VERSION == "Lua 5.4" and not rawget(_G, "jit")

for _, b in ipairs(backends.list) do
  describe("reads and the collector on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    -- 1,500 events: a read of the whole stream takes two runs of rows.
    local function seed(s)
      assert(store:append(s, fx.events(1500, "Gc", function(i) return { i = i, text = fx.text(40) } end)))
    end

    -- Every method that returns rows, on stream s.
    local function every_read(s)
      local evs = store:read(s)
      assert.equals(1500, #evs)
      assert.equals(1500, #store:read(s, { backward = true }))
      assert.is_true(#store:read_all({ after = evs[1].position - 1, limit = 1200 }) > 0)
      assert.equals(1500, #store:read_all({ category = s:match("^[^-]+") }))
      assert.is_true(#store:streams() > 0)
      assert.equals(evs[7].id, store:event(evs[7].id).id)
      assert.equals(1500, store:last(s).revision)
      local n = 0
      for _ in store:each(s) do n = n + 1 end
      assert.equals(1500, n)
      return evs
    end

    it("leaves a running collector running and a stopped one stopped", function()
      if not HAS_ISRUNNING then pending("this Lua has no collectgarbage('isrunning')") return end
      local s = fx.stream()
      seed(s)
      collectgarbage("restart")
      every_read(s)
      assert.is_true(collectgarbage("isrunning"))
      collectgarbage("stop")
      local ok, err = pcall(every_read, s)
      local running = collectgarbage("isrunning")
      collectgarbage("restart")
      assert(ok, err)
      assert.is_false(running)
    end)

    it("reads in a loop keep the heap bounded, in either collector mode", function()
      local s = fx.stream()
      seed(s)
      local modes = LUA54 and { "generational", "incremental" } or { false }
      local original -- the mode busted runs in, given back at the end
      for _, mode in ipairs(modes) do
        if mode then
          local previous = collectgarbage(mode)
          original = original or previous
        end
        collectgarbage()
        local base, top = collectgarbage("count"), 0
        for _ = 1, 150 do
          local evs = store:read(s)
          assert.equals(1500, #evs)
          assert.equals(1500, evs[1500].data.i)
          local kb = collectgarbage("count")
          if kb > top then top = kb end
        end
        -- one read's list is about 1.5 MB; 150 of them kept would be 225 MB
        assert.is_true(top - base < 40 * 1024, (mode or "default") .. ": the heap grew by "
          .. math.floor((top - base) / 1024) .. " MB")
      end
      if original then collectgarbage(original) end
    end)
  end)
end

describe("a read that raises in the middle of its rows", function()
  local path
  after_each(function() backends.remove(path) end)

  it("restarts the collector, and the store still reads", function()
    if not HAS_ISRUNNING then pending("this Lua has no collectgarbage('isrunning')") return end
    path = backends.tmpfile()
    local store = assert(eventstore.open("sqlite:" .. path))
    assert(store:append("bad-1", fx.events(1500, "Gc", function(i) return { i = i } end)))
    store:close()
    -- the 1,200th event's data, behind the store's back: not JSON
    procs.sqlite3_ok(path, "UPDATE es_events SET data = '{\"i\":' WHERE position = 1200")
    store = assert(eventstore.open("sqlite:" .. path))
    collectgarbage("restart")
    for _ = 1, 3 do
      local ok, err = pcall(store.read, store, "bad-1")
      assert.is_false(ok)
      assert.matches("not valid JSON", tostring(err))
      assert.is_true(collectgarbage("isrunning"))
    end
    local ok, err = pcall(store.read_all, store, { limit = 1500 })
    assert.is_false(ok)
    assert.matches("not valid JSON", tostring(err))
    assert.is_true(collectgarbage("isrunning"))
    local first = store:read("bad-1", { limit = 1199 })
    assert.equals(1199, #first)
    assert.equals(1199, first[1199].data.i)
    store:close()
  end)
end)
