-- store: the module itself: constants, uuid, array/null, errors, open
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

describe("eventstore module", function()
  it("is the same table on every require", function()
    assert.equals(eventstore, require("eventstore"))
    assert.is_table(eventstore)
  end)

  describe("constants", function()
    it("NO_STREAM is 0", function()
      assert.equals(0, eventstore.NO_STREAM)
      assert.is_true(fx.is_integer(eventstore.NO_STREAM))
    end)

    it("ANY, NO_STREAM and STREAM_EXISTS are distinct and none is a revision >= 1", function()
      local k = { eventstore.ANY, eventstore.NO_STREAM, eventstore.STREAM_EXISTS }
      for i = 1, 3 do
        assert.is_not_nil(k[i])
        for j = i + 1, 3 do assert.are_not.equal(k[i], k[j]) end
        if type(k[i]) == "number" then assert.is_true(k[i] < 1) end
      end
    end)
  end)

  describe("uuid()", function()
    it("returns lowercase canonical UUID text with the RFC 4122 variant", function()
      for _ = 1, 100 do
        local id = eventstore.uuid()
        assert.is_true(fx.is_uuid(id), id)
        assert.equals(id:lower(), id)
        assert.matches("^%x+%-%x+%-[1-8]%x+%-[89ab]%x+%-%x+$", id)
      end
    end)

    it("returns 10,000 different ids", function()
      local seen, n = {}, 0
      for _ = 1, 10000 do
        local id = eventstore.uuid()
        if not seen[id] then n = n + 1 end
        seen[id] = true
      end
      assert.equals(10000, n)
    end)
  end)

  describe("array and null", function()
    it("array(t) returns t itself, keeping its items", function()
      local t = { "a", "b" }
      assert.equals(t, eventstore.array(t))
      assert.same({ "a", "b" }, t)
      local empty = {}
      assert.equals(empty, eventstore.array(empty))
      assert.is_nil(next(empty))
    end)

    it("array() of a non-table raises", function()
      fx.raises(function() eventstore.array("x") end, "table", "#1")
    end)

    it("null is one non-nil value, distinct from false and tables", function()
      assert.is_not_nil(eventstore.null)
      assert.are_not.equal(false, eventstore.null)
      assert.are_not.equal("table", type(eventstore.null))
      assert.equals(eventstore.null, require("eventstore").null)
    end)
  end)

  describe("error(code, message, fields)", function()
    it("builds an eventstore.Error with code, message, fields and tostring 'code: message'", function()
      local err = eventstore.error("conflict", "append to 'a-1': expected 3, at 5", { expected = 3, actual = 5 })
      assert.equals("eventstore.Error", getmetatable(err).__name)
      assert.equals("conflict", err.code)
      assert.equals("append to 'a-1': expected 3, at 5", err.message)
      assert.equals(3, err.expected)
      assert.equals(5, err.actual)
      assert.equals("conflict: append to 'a-1': expected 3, at 5", tostring(err))
    end)

    it("shares its metatable with the errors the store returns", function()
      local store = assert(eventstore.open("memory:"))
      finally(function() store:close() end)
      local s = fx.stream()
      assert(store:append(s, fx.event("A")))
      local _, err = store:append(s, fx.event("B"), { expected = eventstore.NO_STREAM })
      assert.equals(getmetatable(eventstore.error("busy", "x")), getmetatable(err))
    end)

    it("reads well inside assert()", function()
      local ok, msg = pcall(assert, nil, eventstore.error("busy", "database is locked"))
      assert.is_false(ok)
      assert.equals("busy: database is locked", tostring(msg))
    end)
  end)

  describe("argument conventions", function()
    it("accept a float with an integral value wherever an integer is expected, as luaL_checkinteger does", function()
      local store = assert(eventstore.open("memory:"))
      finally(function() store:close() end)
      local s = fx.stream()
      assert(store:append(s, fx.events(3)))
      assert.equals(4, assert(store:append(s, fx.event("F"), { expected = 3.0 })).revision)
      assert.same({ 2, 3 }, fx.revisions(store:read(s, { from = 2.0, to = 3.0 })))
      assert.same({ 1 }, fx.revisions(store:read(s, { limit = 1.0 })))
      assert.equals(2, #store:read_all({ after = 2.0, limit = 2.0 }))
      assert.equals(4, #store:since(0.0))
    end)
  end)

  describe("open", function()
    it("opens memory:, sqlite::memory: and a SQLite file, each naming its backend in stats", function()
      for _, name in ipairs({ "memory:", "sqlite::memory:", "sqlite temp file" }) do
        local b = backends.get(name)
        local store, path = backends.open(b)
        assert.equals(b.backend, store:stats().backend)
        assert.matches("eventstore", tostring(store))
        store:close()
        backends.remove(path)
      end
    end)

    it("gives each memory: open a separate store", function()
      local a, c = assert(eventstore.open("memory:")), assert(eventstore.open("memory:"))
      finally(function() a:close(); c:close() end)
      local s = fx.stream()
      assert(a:append(s, fx.event("A")))
      assert.equals(1, a:revision(s))
      assert.equals(0, c:revision(s))
      assert.equals(0, c:stats().events)
    end)

    it("gives each sqlite::memory: open a separate store", function()
      local a, c = assert(eventstore.open("sqlite::memory:")), assert(eventstore.open("sqlite::memory:"))
      finally(function() a:close(); c:close() end)
      local s = fx.stream()
      assert(a:append(s, fx.event("A")))
      assert.equals(0, c:revision(s))
    end)

    it("accepts no options, an empty table and every documented option at its default", function()
      local path = backends.tmpfile()
      local url = "sqlite:" .. path
      for _, opts in ipairs({ false, {}, { snapshot_every = 0, max_snapshots = 0, synchronous = "full" } }) do
        local store = assert(eventstore.open(url, opts or nil))
        assert(store:append(fx.stream(), fx.event("A")))
        store:close()
      end
      local store = assert(eventstore.open(url, { synchronous = "normal", snapshot_every = 100, max_snapshots = 3 }))
      assert.equals(3, store:stats().events)
      store:close()
      backends.remove(path)
    end)

    it("creates the SQLite file in WAL mode", function()
      local path = backends.tmpfile()
      local store = assert(eventstore.open("sqlite:" .. path))
      assert(store:append(fx.stream(), fx.event("A")))
      store:close()
      local header = fx.read_file(path)
      assert.equals("SQLite format 3\0", header:sub(1, 16))
      assert.equals(2, header:byte(19))
      assert.equals(2, header:byte(20))
      backends.remove(path)
    end)

    it("returns nil, err with code 'invalid' for an unknown scheme", function()
      for _, url in ipairs({ "nosuch:thing", "mysql://u@h/db", "events.db.txt:x" }) do
        local err = fx.fails("invalid", eventstore.open(url))
        assert.is_string(err.message)
        assert.equals("eventstore.Error", getmetatable(err).__name)
      end
    end)

    it("returns nil, err with code 'backend' for a directory or an unreachable path", function()
      local err = fx.fails("backend", eventstore.open("sqlite:/tmp"))
      assert.is_string(err.message)
      fx.fails("backend", eventstore.open("sqlite:/nonexistent-dir-" .. fx.token .. "/x.db"))
    end)

    it("returns nil, err (never raises) for an unreachable PostgreSQL server", function()
      local ok, store, err = pcall(eventstore.open, "postgresql://u:p@127.0.0.1:1/db")
      assert.is_true(ok, tostring(store))
      assert.is_nil(store)
      assert.is_true(err.code == "backend" or err.code == "invalid", tostring(err))
    end)

    it("raises for a URL or options of the wrong type", function()
      fx.raises(function() eventstore.open(42) end, "url", "#1")
      fx.raises(function() eventstore.open({}) end, "url", "#1")
      fx.raises(function() eventstore.open("memory:", "fast") end, "option", "#2")
      fx.raises(function() eventstore.open("memory:", { snapshot_every = "often" }) end, "snapshot_every")
      fx.raises(function() eventstore.open("memory:", { snapshot_every = 1.5 }) end, "snapshot_every")
      fx.raises(function() eventstore.open("memory:", { max_snapshots = {} }) end, "max_snapshots")
      fx.raises(function() eventstore.open("memory:", { synchronous = true }) end, "synchronous")
    end)

    it("rejects an unknown synchronous mode and an unknown option name", function()
      local ok, res, err = pcall(eventstore.open, "memory:", { synchronous = "sometimes" })
      if ok then
        fx.fails("invalid", res, err)
      else
        assert.matches("synchronous", res)
      end
      fx.raises(function() eventstore.open("memory:", { snapshots_every = 10 }) end, "snapshots_every")
    end)
  end)
end)
