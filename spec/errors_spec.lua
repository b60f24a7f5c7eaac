-- errors: bad input raises a clear error and leaves the store as it was
-- SPDX-License-Identifier: MIT
--
-- Every case runs on a memory store and on a SQLite file store that holds
-- one stream `s` of 3 events. The call must raise a string naming the
-- problem (one of the patterns, case-insensitive); afterwards stats() and
-- read_all() are the same, the SQLite file and its WAL are byte-for-byte
-- the same, and the store still appends (no transaction left open).
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local function ev(extra)
  local e = { type = "Bad" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function cyclic()
  local t = { a = {} }
  t.a.back = t
  return t
end

local function deep(levels)
  local t = {}
  for _ = 1, levels do t = { t } end
  return t
end

local uuid_a = "0d6f3a8e-4b8c-4c1a-9f1e-2d3b4c5d6e7f"

-- { name, function(store, s) ... end, pattern, ... }
local cases = {
  -- stream names
  { "a nil stream name", function(st) st:append(nil, ev()) end, "stream", "#1", "string expected" },
  { "a boolean stream name", function(st) st:append(true, ev()) end, "stream", "#1", "string expected" },
  { "a table stream name", function(st) st:append({}, ev()) end, "stream", "#1", "string expected" },
  { "an empty stream name", function(st) st:append("", ev()) end, "stream.*empty", "empty.*stream" },
  { "a 256-byte stream name", function(st) st:append(string.rep("s", 256), ev()) end, "stream.*255", "stream.*long" },
  { "a stream name that is not UTF-8", function(st) st:append("bad\255\254-1", ev()) end, "stream.*utf%-8" },
  { "a stream name with a truncated UTF-8 sequence", function(st) st:append("caf\195", ev()) end, "stream.*utf%-8" },
  { "a stream name with an overlong encoding", function(st) st:append("\192\175-1", ev()) end, "stream.*utf%-8" },
  { "a stream name with a UTF-16 surrogate", function(st) st:append("\237\160\128-1", ev()) end, "stream.*utf%-8" },
  { "read with an empty stream name", function(st) st:read("") end, "stream.*empty", "empty.*stream" },
  { "read with a table as stream name", function(st) st:read({}) end, "stream", "#1", "string expected" },
  { "last with a nil stream", function(st) st:last(nil) end, "stream", "#1", "string expected" },
  { "revision with a boolean stream", function(st) st:revision(false) end, "stream", "#1", "string expected" },
  { "each with a boolean stream", function(st) st:each(true) end, "stream", "#1" },
  -- events
  { "a nil event", function(st, s) st:append(s, nil) end, "event", "#2", "table expected" },
  { "a string event", function(st, s) st:append(s, "Opened") end, "event", "#2", "table expected" },
  { "an empty list of events", function(st, s) st:append(s, {}) end, "event", "type" },
  { "an event without type", function(st, s) st:append(s, { data = { x = 1 } }) end, "type" },
  { "an event with an empty type", function(st, s) st:append(s, { type = "" }) end, "type" },
  { "an event with a boolean type", function(st, s) st:append(s, { type = true }) end, "type" },
  { "a type that is not UTF-8", function(st, s) st:append(s, { type = "T\255" }) end, "type.*utf%-8" },
  { "an event with an unknown field (a typo of data)", function(st, s)
    st:append(s, { type = "T", dat = { x = 1 } })
  end, "dat" },
  -- fields are told apart by length, then bytes: typos of a known length
  { "an event with a field as long as data", function(st, s)
    st:append(s, { type = "T", date = { x = 1 } })
  end, "unknown option 'date'" },
  { "an event with a field as long as metadata", function(st, s)
    st:append(s, { type = "T", metadatA = { x = 1 } })
  end, "unknown option 'metadatA'" },
  { "an event with a field as long as id", function(st, s) st:append(s, { type = "T", ID = uuid_a }) end,
    "unknown option 'ID'" },
  { "an event with a field longer than any", function(st, s) st:append(s, { type = "T", timestamps = 1 }) end,
    "unknown option 'timestamps'" },
  { "an event with a list item next to its type", function(st, s) st:append(s, { type = "T", 5 }) end,
    "unknown option" },
  { "a list holding a non-table", function(st, s) st:append(s, { ev(), 5 }) end, "event" },
  { "a list with an untyped event in the middle", function(st, s)
    st:append(s, { ev(), { data = {} }, ev() })
  end, "type" },
  -- ids
  { "an id that is not a UUID", function(st, s) st:append(s, ev({ id = "not-a-uuid" })) end, "uuid", "id" },
  { "an id with a bad hex digit", function(st, s)
    st:append(s, ev({ id = "0d6f3a8e-4b8c-4c1a-9f1e-2d3b4c5d6e7g" }))
  end, "uuid", "id" },
  { "an id of the wrong type", function(st, s) st:append(s, ev({ id = 42 })) end, "uuid", "id" },
  { "two events with the same id in one append", function(st, s)
    st:append(s, { ev({ id = uuid_a }), ev({ id = uuid_a }) })
  end, "duplicate", "same id", "twice" },
  -- data and metadata
  { "data that is a string", function(st, s) st:append(s, ev({ data = "text" })) end, "data" },
  { "data that is an array", function(st, s) st:append(s, ev({ data = { 1, 2 } })) end, "data.*object", "object" },
  { "metadata that is a number", function(st, s) st:append(s, ev({ metadata = 5 })) end, "metadata" },
  { "a function inside data", function(st, s) st:append(s, ev({ data = { f = print } })) end, "function" },
  { "a coroutine inside data", function(st, s)
    st:append(s, ev({ data = { co = coroutine.create(function() end) } }))
  end, "thread", "coroutine" },
  { "a userdata inside data", function(st, s) st:append(s, ev({ data = { file = io.stdout } })) end, "userdata",
    "file" },
  { "a function inside metadata", function(st, s) st:append(s, ev({ metadata = { f = print } })) end, "function" },
  { "a cyclic table", function(st, s) st:append(s, ev({ data = cyclic() })) end, "cycl", "circular", "recursi" },
  { "a table that contains itself as an array item", function(st, s)
    local t = {}
    t[1] = t
    st:append(s, ev({ data = { list = t } }))
  end, "cycl", "circular", "recursi" },
  { "NaN", function(st, s) st:append(s, ev({ data = { x = 0 / 0 } })) end, "nan" },
  { "infinity", function(st, s) st:append(s, ev({ data = { x = math.huge } })) end, "inf" },
  { "minus infinity in an array", function(st, s) st:append(s, ev({ data = { x = { 1, -math.huge } } })) end, "inf" },
  { "a boolean key", function(st, s) st:append(s, ev({ data = { [true] = 1 } })) end, "key" },
  { "a float key", function(st, s) st:append(s, ev({ data = { [1.5] = 1 } })) end, "key" },
  { "a table key", function(st, s) st:append(s, ev({ data = { [{}] = 1 } })) end, "key" },
  { "a negative integer key", function(st, s) st:append(s, ev({ data = { x = { [-1] = 1 } } })) end, "key" },
  { "a sparse array", function(st, s) st:append(s, ev({ data = { x = { 1, nil, 3 } } })) end, "sparse", "array",
    "hole" },
  { "mixed array and object keys", function(st, s) st:append(s, ev({ data = { x = { 1, 2, y = 3 } } })) end,
    "mix", "array", "key" },
  { "100,000 levels of nesting", function(st, s) st:append(s, ev({ data = { x = deep(100000) } })) end, "deep",
    "nest", "depth", "level" },
  -- expected revision and append options
  { "a negative expected revision", function(st, s) st:append(s, ev(), { expected = -7 }) end, "expected" },
  { "a fractional expected revision", function(st, s) st:append(s, ev(), { expected = 1.5 }) end, "expected" },
  { "an infinite expected revision", function(st, s) st:append(s, ev(), { expected = math.huge }) end, "expected" },
  { "an expected revision of the wrong type", function(st, s) st:append(s, ev(), { expected = {} }) end,
    "expected" },
  { "an unknown expected mode", function(st, s) st:append(s, ev(), { expected = "sometimes" }) end, "expected" },
  { "append options that are not a table", function(st, s) st:append(s, ev(), 5) end, "option", "#3" },
  { "an unknown append option (a typo of expected)", function(st, s) st:append(s, ev(), { expect = 0 }) end,
    "expect" },
  -- read options
  { "read options that are not a table", function(st, s) st:read(s, "all") end, "option", "#2" },
  { "read from of the wrong type", function(st, s) st:read(s, { from = "x" }) end, "from" },
  { "read to that is fractional", function(st, s) st:read(s, { to = 2.5 }) end, "to" },
  { "read limit of the wrong type", function(st, s) st:read(s, { limit = {} }) end, "limit" },
  { "read limit that is negative", function(st, s) st:read(s, { limit = -1 }) end, "limit" },
  { "read backward that is not a boolean", function(st, s) st:read(s, { backward = "yes" }) end, "backward" },
  { "read_all options that are not a table", function(st) st:read_all(42) end, "option", "#1" },
  { "read_all after of the wrong type", function(st) st:read_all({ after = {} }) end, "after" },
  { "read_all category of the wrong type", function(st) st:read_all({ category = true }) end, "category" },
  { "read_all types holding a number", function(st) st:read_all({ types = { 1, 2 } }) end, "types" },
  { "read_all with an unknown option", function(st) st:read_all({ categroy = "x" }) end, "categroy" },
  { "each options of the wrong type", function(st, s) st:each(s, 3) end, "option", "#2" },
  { "each with an unknown option (a typo of category)", function(st)
    for _ in st:each(nil, { categroy = "x" }) do end
  end, "categroy" },
  { "each with a from of the wrong type", function(st, s)
    for _ in st:each(s, { from = "x" }) do end
  end, "from" },
  { "since without a timestamp", function(st) st:since("yesterday") end, "timestamp", "#1", "number" },
  { "since with a fractional timestamp", function(st) st:since(1.5) end, "timestamp", "integer" },
  { "streams with a category of the wrong type", function(st) st:streams({ category = {} }) end, "category" },
  { "event with a non-UUID id", function(st) st:event("nope") end, "uuid", "id" },
  { "event with no id", function(st) st:event(nil) end, "id", "#1", "string expected" },
  -- self
  { "a method called on something that is not a store", function(st, s) st.append({}, s, ev()) end, "store",
    "self" },
}

fx.rejections("bad input", backends.get("memory:"), cases, " and changes nothing")
fx.rejections("bad input", backends.get("sqlite temp file"), cases, " and changes nothing")

describe("programmer errors", function()
  it("name the event's index in a batch", function()
    local store = assert(eventstore.open("memory:"))
    finally(function() store:close() end)
    local msg = fx.raises(function()
      store:append(fx.stream(), { fx.event("A"), fx.event("B"), { data = {} } })
    end, "type")
    assert.matches("3", msg)
  end)

  it("name the path of the bad value inside data", function()
    local store = assert(eventstore.open("memory:"))
    finally(function() store:close() end)
    local msg = fx.raises(function()
      store:append(fx.stream(), fx.event("A", { outer = { inner = 0 / 0 } }))
    end, "nan")
    assert.matches("inner", msg)
  end)

  it("are strings, while a conflict is returned as nil, err", function()
    local store = assert(eventstore.open("memory:"))
    finally(function() store:close() end)
    local s = fx.stream()
    assert(store:append(s, fx.event("A")))
    local ok, res, err = pcall(store.append, store, s, fx.event("B"), { expected = eventstore.NO_STREAM })
    assert.is_true(ok)
    assert.is_nil(res)
    assert.equals("conflict", err.code)
    local ok2, msg = pcall(store.append, store, s, { data = {} })
    assert.is_false(ok2)
    assert.is_string(msg)
  end)

  it("a call on a closed store raises 'closed store'", function()
    local store = assert(eventstore.open("memory:"))
    local s = fx.stream()
    assert(store:append(s, fx.event("A")))
    assert.is_true(store:close())
    fx.raises(function() store:append(s, fx.event("B")) end, "closed store")
    fx.raises(function() store:read(s) end, "closed store")
    fx.raises(function() store:stats() end, "closed store")
  end)
end)
