-- hostile: input built to break the store: deep nesting, huge values, bad UTF-8, injection
-- SPDX-License-Identifier: MIT
--
-- Beyond spec/errors_spec.lua (argument types and plain bad values), every
-- case here is something an attacker or a buggy producer sends on purpose:
--   * rejected: raises a string naming the problem (the patterns), writes
--     nothing (stats, read_all and the SQLite file bytes are unchanged), the
--     store still appends; on memory: and a SQLite file;
--   * accepted: stored and read back byte-exact on every backend, without
--     being taken as SQL, a LIKE pattern, a format string or a Lua pattern;
--   * PostgreSQL: schema/prefix options trying identifier injection are
--     refused before any SQL runs, and the password never appears in an
--     error, returned or raised, nor in the CLI's output.
-- Decision on invalid UTF-8: rejected, never altered or stored (stream
-- names, types, strings and keys in data/metadata/snapshots, rule names).
-- Arbitrary bytes belong in a string encoded by the caller (e.g. base64).
-- Tables with metatables are read raw: no metamethod (__pairs, __index,
-- __len) runs while a value is converted.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local procs = require("spec.support.procs")

local maxint = math.maxinteger
local PASSWORD = "Hunter2-S3cret"

local function deep(levels, make)
  local t = {}
  for _ = 1, levels do t = make and make(t) or { t } end
  return t
end

local function ev(extra)
  local e = { type = "Hostile" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

-- A table whose every metamethod raises: it must be read raw.
local function trap(t)
  local function boom() error("a metamethod ran", 2) end
  return setmetatable(t, { __pairs = boom, __index = boom, __newindex = boom, __len = boom, __ipairs = boom })
end

-- { name, function(store, s) ... end, pattern, ... }: each raises and
-- writes nothing.
local rejected = {
  -- nesting
  { "100,000 levels of nesting in metadata", function(st, s)
    st:append(s, ev({ metadata = { x = deep(100000) } }))
  end, "nested deeper than 1000" },
  { "100,000 levels of objects in data", function(st, s)
    st:append(s, ev({ data = deep(100000, function(t) return { k = t } end) }))
  end, "nested deeper than 1000" },
  { "100,000 levels of arrays inside an object list", function(st, s)
    st:append(s, ev({ data = { list = { { deep(100000) } } } }))
  end, "nested deeper than 1000" },
  { "100,000 levels in the last event of a batch of three", function(st, s)
    st:append(s, { ev(), ev(), ev({ data = { x = deep(100000) } }) })
  end, "event 3", "nested deeper than 1000" },
  { "100,000 levels in a snapshot", function(st, s)
    st:save_snapshot(s, 1, { x = deep(100000) }, 1)
  end, "nested deeper than 1000" },
  { "1,001 levels (data, x and 999 below: one past the limit)", function(st, s)
    st:append(s, ev({ data = { x = deep(999) } }))
  end, "nested deeper than 1000" },
  -- invalid UTF-8 (rejected, never altered)
  { "a lone continuation byte in a data string", function(st, s)
    st:append(s, ev({ data = { text = "ok \128 not ok" } }))
  end, "data%.text", "utf%-8" },
  { "an overlong NUL (C0 80) in a data string", function(st, s)
    st:append(s, ev({ data = { text = "a\192\128b" } }))
  end, "utf%-8" },
  { "a code point above U+10FFFF in a data string", function(st, s)
    st:append(s, ev({ data = { text = "\244\144\128\128" } }))
  end, "utf%-8" },
  { "a UTF-16 surrogate in a nested array string", function(st, s)
    st:append(s, ev({ data = { a = { { "x", "\237\160\128" } } } }))
  end, "utf%-8" },
  { "an invalid UTF-8 key", function(st, s) st:append(s, ev({ data = { ["k\255"] = 1 } })) end, "key", "utf%-8" },
  { "invalid UTF-8 in metadata", function(st, s)
    st:append(s, ev({ metadata = { correlation_id = "\255\254" } }))
  end, "metadata", "utf%-8" },
  { "invalid UTF-8 in a snapshot", function(st, s)
    st:save_snapshot(s, 1, { name = "\193\191" }, 1)
  end, "utf%-8" },
  { "a stream name of 255 bytes whose last character is cut", function(st)
    st:append(string.rep("a", 253) .. "\195", ev())
  end, "utf%-8" },
  -- keys
  { "a key with a NUL byte", function(st, s) st:append(s, ev({ data = { ["a\0b"] = 1 } })) end, "nul" },
  { "a function as a key", function(st, s) st:append(s, ev({ data = { [print] = 1 } })) end, "key", "function" },
  { "a coroutine as a key", function(st, s)
    st:append(s, ev({ data = { [coroutine.create(function() end)] = 1 } }))
  end, "key", "thread" },
  { "a zero key", function(st, s) st:append(s, ev({ data = { x = { [0] = 1 } } })) end, "key" },
  { "an array with a 2^40 index (no 2^40-item allocation)", function(st, s)
    st:append(s, ev({ data = { x = { [2 ^ 40] = 1 } } }))
  end, "sparse", "key" },
  { "an array with items 1 and 10,000,000 only", function(st, s)
    st:append(s, ev({ data = { x = { [1] = 1, [10000000] = 2 } } }))
  end, "sparse" },
  -- NUL bytes where C strings end
  { "a stream name with a NUL byte", function(st) st:append("acct-1\0-2", ev()) end, "nul" },
  { "a stream name ending in a NUL byte", function(st) st:append("acct-1\0", ev()) end, "nul" },
  { "a type with a NUL byte", function(st, s) st:append(s, { type = "Opened\0Closed" }) end, "nul" },
  { "a read_all category with a NUL byte", function(st) st:read_all({ category = "acct\0" }) end, "nul" },
  { "a streams() category with a NUL byte", function(st) st:streams({ category = "\0" }) end, "nul" },
  { "an each() category with a NUL byte", function(st)
    for _ in st:each(nil, { category = "a\0b" }) do end
  end, "nul" },
  { "an open option with a NUL byte", function() eventstore.open("memory:", { prefix = "es_\0x" }) end, "nul" },
  { "an open URL with a NUL byte (a path cut short)", function()
    eventstore.open("sqlite::memory:\0/etc/passwd")
  end, "nul" },
  -- huge or extreme numbers where integers are expected
  { "a read limit of infinity", function(st, s) st:read(s, { limit = math.huge }) end, "limit" },
  { "a read_all after below zero", function(st) st:read_all({ after = -(2 ^ 62) }) end, "after" },
  { "an expected revision of 2^63 (a float)", function(st, s) st:append(s, ev(), { expected = 2 ^ 63 }) end,
    "expected" },
  { "NaN at the end of a 100,000-item array", function(st, s)
    local list = {}
    for i = 1, 100000 do list[i] = i end
    list[100001] = 0 / 0
    st:append(s, ev({ data = { list = list } }))
  end, "nan" },
  { "a cycle through metadata and data of the same event", function(st, s)
    local shared = {}
    shared.self = { shared }
    st:append(s, ev({ data = { a = shared }, metadata = { b = shared } }))
  end, "cycl" },
  -- rules
  { "a reducer field name with a NUL byte", function() eventstore.reducer({ ["amount\0x"] = "sum" }) end, "nul" },
  { "a reducer 'from' with a NUL byte", function()
    eventstore.reducer({ total = { "sum", from = "amount\0x" } })
  end, "nul" },
  { "a reducer 'when' type with a NUL byte", function()
    eventstore.reducer({ total = { "sum", when = { "Deposited\0Withdrawn" } } })
  end, "nul" },
  { "a reducer field name that is not UTF-8", function() eventstore.reducer({ ["\255"] = "sum" }) end, "utf%-8" },
  { "a reducer rule name that is a format string", function() eventstore.reducer({ x = "%s%n%s" }) end,
    "unknown rule" },
  { "a fold of data nested 100,000 levels", function()
    eventstore.reducer({ a = "merge" }):fold({ { type = "T", data = { a = deep(100000) } } })
  end, "nested deeper than 1000" },
}

fx.rejections("hostile input rejected", backends.get("memory:"), rejected, ", naming it, and writes nothing", 2000)
fx.rejections("hostile input rejected", backends.get("sqlite temp file"), rejected,
  ", naming it, and writes nothing", 2000)

-- Names full of SQL, LIKE, printf and Lua-pattern syntax (all valid UTF-8).
local nasty = {
  "x'; DROP TABLE es_events; --",
  'x"); DELETE FROM es_events WHERE ("1"="1',
  "x' OR '1'='1",
  "x;--;/*;*/",
  "x%s%s%s%n%p%d",
  "x%_%_%",
  "x.*+?[^$](%a+)%",
  "x\\'\\\\\\0",
  "x\n\r\t\11\12",
  "x\226\128\174\240\159\146\165", -- RLO and an emoji
  "$(rm -rf /)`id`",
}

local function check_accepted(b)
  describe("hostile names and big values stored exactly on " .. b.name, function()
    if b.pending then
      pending(b.pending)
      return
    end
    local store, path

    before_each(function() store, path = backends.open(b) end)
    after_each(function()
      if store then store:close() end
      backends.remove(path)
      store, path = nil, nil
    end)

    it("stream names and types with quotes, semicolons, %, _ and newlines round-trip", function()
      local cat = fx.category("h")
      for i, name in ipairs(nasty) do
        local stream = cat .. "-" .. name
        local res = assert(store:append(stream, { type = name, data = { [name] = name }, metadata = { n = name } },
          { expected = eventstore.NO_STREAM }))
        assert.equals(1, res.revision)
        local got = store:read(stream)
        assert.equals(1, #got, name)
        assert.equals(stream, got[1].stream)
        assert.equals(name, got[1].type)
        assert.equals(name, got[1].data[name])
        assert.equals(name, got[1].metadata.n)
        assert.equals(1, store:revision(stream))
        assert.equals(name, store:last(stream).type)
        assert.equals(i, #store:streams({ category = cat }))
      end
      local all = store:read_all({ category = cat })
      assert.equals(#nasty, #all)
      local by_type = store:read_all({ category = cat, types = { nasty[5], nasty[6] } })
      assert.same({ nasty[5], nasty[6] }, fx.types(by_type))
    end)

    it("a conflict on a stream named like a format string reports the name literally", function()
      local stream = fx.category("h") .. "-%s%n%s%n"
      assert(store:append(stream, ev(), { expected = eventstore.NO_STREAM }))
      local res, err = store:append(stream, ev(), { expected = eventstore.NO_STREAM })
      fx.fails("conflict", res, err)
      assert.is_truthy(err.message:find("%s%n%s%n", 1, true))
      assert.is_truthy(tostring(err):find("%s%n%s%n", 1, true))
    end)

    it("categories are literal, never LIKE patterns: '%' and '_' match nothing else", function()
      local cat = fx.category("lk")
      assert(store:append(cat .. "-1", ev()))
      assert(store:append(cat .. "x-1", ev()))
      local wild = cat:sub(1, -2) .. "_"
      for _, c in ipairs({ "%", "_", cat:sub(1, 3) .. "%", wild, cat .. "%", cat .. "_" }) do
        assert.same({}, store:read_all({ category = c }), c)
        assert.same({}, store:streams({ category = c }), c)
        local n = 0
        for _ in store:each(nil, { category = c }) do n = n + 1 end
        assert.equals(0, n, c)
      end
      assert.equals(1, #store:read_all({ category = cat }))
      assert.equals(1, #store:read_all({ category = cat .. "x" }))
    end)

    it("checkpoint names with SQL in them are stored as names", function()
      local name = fx.name("cp") .. "'; DELETE FROM es_checkpoints; --"
      assert.is_true(store:checkpoint(name, 42))
      local pos, found = store:checkpoint(name)
      assert.equals(42, pos)
      assert.is_true(found)
      assert.equals(0, (store:checkpoint(fx.name("cp"))))
    end)

    it("a 200,000-item array, a 4 MB string and a 20,000-key object round-trip exactly", function()
      local s = fx.stream("big")
      local list, obj = {}, {}
      for i = 1, 200000 do list[i] = i * 3 - 100000 end
      for i = 1, 20000 do obj["k" .. i] = i end
      local text = string.rep("0123456789abcdef", 262144)
      assert(store:append(s, { type = "Big", data = { list = list, obj = obj, text = text } }))
      local got = store:read(s)[1].data
      assert.equals(200000, #got.list)
      fx.assert_exactly(list, got.list)
      fx.assert_exactly(obj, got.obj)
      assert.equals(text, got.text)
    end)

    it("a batch of 5,000 events is one atomic append", function()
      local s = fx.stream("batch")
      local res = assert(store:append(s, fx.events(5000), { expected = eventstore.NO_STREAM }))
      assert.equals(5000, res.revision)
      assert.equals(5000, res.count)
      local got = store:read(s)
      assert.equals(5000, #got)
      assert.same(fx.range(1, 5000), fx.revisions(got))
      -- the same batch again (new ids) conflicts whole
      fx.fails("conflict", store:append(s, fx.events(5000), { expected = eventstore.NO_STREAM }))
      assert.equals(5000, store:revision(s))
    end)

    it("1,000 levels of nesting (the limit) round-trip exactly", function()
      local s = fx.stream("deep")
      local v = deep(998)  -- data, x and 998 levels below: 1,000 tables
      assert(store:append(s, ev({ data = { x = v } })))
      fx.assert_exactly({ x = v }, store:read(s)[1].data)
    end)

    it("strings with NUL and every control byte round-trip byte-exact", function()
      local s = fx.stream("bytes")
      local bytes = {}
      for c = 0, 127 do bytes[#bytes + 1] = string.char(c) end
      local text = table.concat(bytes)
      assert(store:append(s, ev({ data = { text = text, [text:sub(2)] = text } })))
      local got = store:read(s)[1].data
      assert.equals(text, got.text)
      assert.equals(text, got[text:sub(2)])
    end)

    it("tables with metatables are read raw: no metamethod runs", function()
      local s = fx.stream("meta")
      local data = trap({ a = 1, list = trap({ 1, 2, 3 }), inner = trap({ b = "x" }) })
      assert(store:append(s, { type = "T", data = data, metadata = trap({ m = true }) }))
      local got = store:read(s)[1]
      fx.assert_exactly({ a = 1, list = { 1, 2, 3 }, inner = { b = "x" } }, got.data)
      assert.is_true(got.metadata.m)
    end)

    it("expected revisions far beyond the stream are conflicts, not errors", function()
      local s = fx.stream("far")
      assert(store:append(s, ev()))
      for _, e in ipairs({ 2 ^ 31, 2 ^ 40, maxint or 2 ^ 52 }) do
        local err = fx.fails("conflict", store:append(s, ev(), { expected = e }))
        assert.equals(1, err.actual)
      end
      assert.equals(1, store:revision(s))
      assert.same({}, store:read(s, { from = maxint or 2 ^ 52 }))
      assert.same({}, store:since(maxint or 2 ^ 52))
    end)
  end)
end

for _, b in ipairs(backends.list) do check_accepted(b) end

-- Random values (seeded, fx.random): each is either refused, as predicted
-- by the value rules in README.md, or stored and read back exactly.
local function utf8_ok(str)
  local i, n = 1, #str
  while i <= n do
    local c = str:byte(i)
    local need, min
    if c < 0x80 then need, min = 0, 0
    elseif c >= 0xC2 and c <= 0xDF then need, min = 1, 0x80
    elseif c >= 0xE0 and c <= 0xEF then need, min = 2, 0x800
    elseif c >= 0xF0 and c <= 0xF4 then need, min = 3, 0x10000
    else return false end
    local cp = need == 0 and c or (need == 1 and c - 0xC0 or need == 2 and c - 0xE0 or c - 0xF0)
    for k = 1, need do
      local d = str:byte(i + k)
      if not d or d < 0x80 or d > 0xBF then return false end
      cp = cp * 64 + (d - 0x80)
    end
    if need > 0 and (cp < min or cp > 0x10FFFF or (cp >= 0xD800 and cp <= 0xDFFF)) then return false end
    i = i + need + 1
  end
  return true
end

local function rand_string()
  local pick = fx.random(1, 10)
  if pick <= 5 then return fx.text(fx.random(0, 12)) end
  if pick == 6 then return "caf\195\169 \226\130\172" end
  if pick == 7 then return "a\0b" end
  local parts = {}
  for i = 1, fx.random(1, 6) do parts[i] = string.char(fx.random(0, 255)) end
  return table.concat(parts)
end

local function rand_number()
  local pick = fx.random(1, 12)
  if pick == 1 then return 0 / 0 end
  if pick == 2 then return fx.random(1, 2) == 1 and math.huge or -math.huge end
  if pick == 3 then return -0.0 end
  if pick == 4 then return 5e-324 end
  if pick == 5 then return 2 ^ 53 end
  if pick == 6 and maxint then return fx.random(1, 2) == 1 and maxint or math.mininteger end
  if pick == 7 then return fx.random(1, 1000) / 7 end
  return fx.random(-1000000, 1000000)
end

-- A random value; whether the rules accept it is accepted(v) below.
local rand_value
local function rand_table(depth)
  local t = {}
  local shape = fx.random(1, 8)
  if shape <= 3 then               -- an array
    for i = 1, fx.random(0, 4) do t[i] = rand_value(depth + 1) end
    if #t == 0 and fx.random(1, 2) == 1 then t = eventstore.array() end
  elseif shape <= 6 then           -- an object
    for _ = 1, fx.random(0, 4) do
      local k = rand_string()
      if k ~= "" then t[k] = rand_value(depth + 1) end
    end
  elseif shape == 7 then           -- a sparse array, a zero key or a float key
    local bad = fx.random(1, 3)
    if bad == 1 then t = { 1, nil, 3 } elseif bad == 2 then t = { [0] = 1 } else t = { [1.5] = 1 } end
  else                             -- array items and object keys mixed
    t = { 1, x = 2 }
  end
  return t
end

function rand_value(depth)
  local pick = fx.random(1, depth > 4 and 6 or 9)
  if pick <= 2 then return rand_number() end
  if pick <= 4 then return rand_string() end
  if pick == 5 then return fx.random(1, 2) == 1 end
  if pick == 6 then return eventstore.null end
  return rand_table(depth)
end

-- The value rules (README.md, Values): what the store must accept.
local function accepted(v)
  local tv = type(v)
  if tv == "number" then return v == v and v ~= math.huge and v ~= -math.huge end
  if tv == "string" then return utf8_ok(v) end
  if tv ~= "table" then return true end
  local n, strs, maxk = 0, 0, 0
  for k, x in pairs(v) do
    if type(k) == "string" then
      if not utf8_ok(k) or k:find("\0", 1, true) then return false end
      strs = strs + 1
    elseif type(k) == "number" and k >= 1 and k == math.floor(k) then
      n = n + 1
      if k > maxk then maxk = k end
    else
      return false
    end
    if not accepted(x) then return false end
  end
  if n > 0 and strs > 0 then return false end
  if n > 0 and maxk ~= n then return false end
  return true
end

describe("random values (seeded) are stored exactly or refused as predicted", function()
  for _, name in ipairs({ "memory:", "sqlite temp file" }) do
    it("400 random data tables on " .. name, function()
      local b = backends.get(name)
      local store, path = backends.open(b)
      local s = fx.stream("rand")
      local stored, refused = 0, 0
      local ok, failure = pcall(function()
        for i = 1, 400 do
          local data = {}
          for k = 1, fx.random(1, 3) do data["f" .. k] = rand_value(0) end
          local want = accepted(data)
          local good, res = pcall(store.append, store, s, { type = "Rand", data = data })
          if want then
            assert(good, "case " .. i .. ": refused a valid value: " .. tostring(res))
            stored = stored + 1
            local back = store:read(s, { from = res.revision })[1].data
            local same, where = fx.exactly(data, back)
            assert(same, "case " .. i .. ": " .. tostring(where))
          else
            assert(not good, "case " .. i .. ": stored a value the rules refuse")
            assert(type(res) == "string" and #res < 2000, "case " .. i .. ": no clear message")
            refused = refused + 1
          end
          assert.equals(stored, store:revision(s))
        end
      end)
      store:close()
      backends.remove(path)
      assert(ok, failure)
      assert.is_true(stored > 50 and refused > 50, stored .. " stored, " .. refused .. " refused")
    end)
  end
end)

-- NUL bytes in names the Lua binding passes on as C strings (lua_store.c):
-- each must be refused rather than cut short into another name. Reported
-- as bugs; each test is pending, naming the problem, while it still shows.
describe("names with NUL bytes are not cut short", function()
  local store
  before_each(function() store = assert(eventstore.open("memory:")) end)
  after_each(function() store:close() end)

  local function refuses_or_pending(what, fn, alias_check)
    local ok, msg = pcall(fn)
    if ok then
      assert.is_true(alias_check(), what .. " was accepted but not aliased: check the test")
      pending("known bug (lua_store.c): " .. what .. " is cut at the NUL byte and aliases another name")
      return
    end
    assert.matches("nul", tostring(msg):lower())
  end

  it("a checkpoint name with a NUL byte", function()
    refuses_or_pending("checkpoint('a\\0b', 3)", function() store:checkpoint("a\0b", 3) end,
      function() return store:checkpoint("a") == 3 end)
  end)

  it("a read_all types item with a NUL byte", function()
    assert(store:append("t-1", { type = "A" }))
    refuses_or_pending("read_all({ types = { 'A\\0B' } })", function()
      assert(#store:read_all({ types = { "A\0B" } }) == 1)
    end, function() return #store:read_all({ types = { "A\0B" } }) == 1 end)
  end)
end)

local pg_url = os.getenv("EVENTSTORE_PG_URL")
if pg_url == "" then pg_url = nil end

-- The URL with the password replaced (user:pw@ -> user:PASSWORD@).
local function with_password(url, pw)
  return (url:gsub("^(%a+://[^:/@]+):[^@]*@", "%1:" .. pw .. "@"))
end

local function no_password(text)
  text = tostring(text)
  assert.is_falsy(text:find(PASSWORD, 1, true), "the password appears in: " .. text)
  assert.is_falsy(text:find("S3cret", 1, true), "part of the password appears in: " .. text)
end

describe("PostgreSQL options and secrets #postgres", function()
  if not pg_url then
    pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
    return
  end

  local injections = {
    "public; DROP TABLE es_events",
    'public"; DROP SCHEMA public CASCADE; --',
    "a'b",
    "es_events--",
    "x y",
    "Public",
    "1abc",
    string.rep("s", 64),
    "sch\255",
    "a.b",
  }

  for _, bad in ipairs(injections) do
    for _, opt in ipairs({ "schema", "prefix" }) do
      it("refuses " .. opt .. " " .. string.format("%q", bad) .. " before running any SQL", function()
        local res, err = eventstore.open(pg_url, { [opt] = bad })
        fx.fails("invalid", res, err)
        assert.matches(opt, err.message)
        no_password(err)
      end)
    end
  end

  it("a store still works after the refused options (nothing was dropped)", function()
    local store = assert(eventstore.open(pg_url))
    local s = fx.stream("after_inj")
    assert(store:append(s, ev()))
    assert.equals(1, store:revision(s))
    store:close()
  end)

  local url_cases = {
    { "a wrong password", function() return with_password(pg_url, PASSWORD) end },
    { "a closed port", function() return "postgresql://es:" .. PASSWORD .. "@127.0.0.1:1/es" end },
    { "a port out of range", function() return "postgresql://es:" .. PASSWORD .. "@127.0.0.1:99999/es" end },
    { "a broken IPv6 host", function() return "postgresql://es:" .. PASSWORD .. "@[::1/es" end },
    { "a bad sslmode", function() return "postgresql://es:" .. PASSWORD .. "@127.0.0.1:1/es?sslmode=bogus" end },
    { "the password as a query parameter", function()
      return "postgresql://es@127.0.0.1:1/es?password=" .. PASSWORD
    end },
    { "a percent-encoded password", function() return "postgresql://es:" .. PASSWORD .. "%21@127.0.0.1:1/es" end },
  }
  for _, case in ipairs(url_cases) do
    it("opening with " .. case[1] .. " returns nil, err without the password", function()
      local url = case[2]()
      local ok, res, err = pcall(eventstore.open, url)
      if not ok then
        no_password(res)
      else
        assert.is_nil(res)
        assert.is_table(err)
        no_password(err)
        no_password(err.message)
      end
    end)
  end

  it("a raised error about options does not show the URL's password", function()
    local msg = fx.error_of(function() eventstore.open(with_password(pg_url, PASSWORD), { bogus = 1 }) end)
    no_password(msg)
    local res, err = eventstore.open(with_password(pg_url, PASSWORD), { schema = "x;y" })
    fx.fails("invalid", res, err)
    no_password(err)
  end)

  it("an open store never shows its password (tostring, stats, errors)", function()
    local store = assert(eventstore.open(pg_url))
    local pw = pg_url:match("^%a+://[^:/@]+:([^@]*)@")
    no_password(tostring(store))
    local st = store:stats()
    for _, v in pairs(st) do
      assert.is_falsy(tostring(v):find(":" .. pw .. "@", 1, true))
    end
    store:close()
  end)
end)

-- The CLI, run as a subprocess (bin/eventstore is a Lua 5.4 program).
local has_cli = procs.read_file("bin/eventstore") ~= nil

describe("hostile input through the CLI", function()
  if not has_cli then
    pending("bin/eventstore is not there")
    return
  end
  local dir, db

  before_each(function()
    dir = procs.tmpdir()
    db = "sqlite:" .. dir .. "/cli.db"
  end)
  after_each(function() procs.rmdir(dir) end)

  local function cli(args, input)
    local inp = dir .. "/in"
    procs.write_file(inp, input or "")
    local parts = { "env -u LD_PRELOAD -u EVENTSTORE_URL timeout -k 5 60 bin/eventstore" }
    for _, a in ipairs(args) do parts[#parts + 1] = procs.quote(a) end
    return procs.sh(table.concat(parts, " ") .. " <" .. procs.quote(inp))
  end

  local function events_in(url)
    local rc, out = cli({ "--url", url, "stats" })
    assert(rc == 0, out)
    return tonumber(out:match('"events":(%d+)'))
  end

  it("a stream named with SQL and quotes is appended and read back as data", function()
    local stream = "x'; DROP TABLE es_events; --"
    local rc, out = cli({ "--url", db, "append", stream, "--type", 'T"%s%n', "--data", '{"q":"\'"}' })
    assert(rc == 0, out)
    rc, out = cli({ "--url", db, "read", stream })
    assert(rc == 0, out)
    local e = assert(eventstore.json_decode(out:match("[^\n]+")))
    assert.equals(stream, e.stream)
    assert.equals('T"%s%n', e.type)
    assert.equals("'", e.data.q)
    assert.equals(1, events_in(db))
  end)

  it("100,000 levels of nesting on stdin: exit 5 naming the depth, nothing written", function()
    assert(cli({ "--url", db, "init" }) == 0)
    local text = '{"type":"T","data":{"a":' .. string.rep("[", 100000) .. string.rep("]", 100000) .. "}}\n"
    local rc, out = cli({ "--url", db, "append", "s-1" }, text)
    assert.equals(5, rc)
    assert.matches("depth", out)
    assert.is_true(#out < 2000)
    assert.equals(0, events_in(db))
  end)

  it("invalid UTF-8 on stdin: exit 5, nothing written", function()
    assert(cli({ "--url", db, "init" }) == 0)
    local rc, out = cli({ "--url", db, "append", "s-1" }, '{"type":"T","data":{"a":"\255"}}\n')
    assert.equals(5, rc)
    assert.matches("0xff", out:lower())
    assert.equals(0, events_in(db))
  end)

  it("a bad line in the middle of an import writes nothing of its batch", function()
    local lines = {}
    for i = 1, 3 do
      lines[i] = string.format('{"stream":"s-1","revision":%d,"type":"T","data":{"i":%d}}', i, i)
    end
    lines[2] = '{"stream":"s-1","revision":2,"type":"T","data":{"i":' .. string.rep("[", 5000) .. "}}"
    local rc, out = cli({ "--url", db, "import" }, table.concat(lines, "\n") .. "\n")
    assert.equals(5, rc)
    assert.matches("line 2", out)
    assert.equals(0, events_in(db))
  end)

  it("a table prefix trying injection: exit 5, no table created", function()
    local rc, out = cli({ "--url", db, "--prefix", "x; DROP TABLE es_events; --", "stats" })
    assert.equals(5, rc)
    assert.matches("prefix", out)
    local _, tables = procs.sh("sqlite3 " .. procs.quote(dir .. "/cli.db") .. " .tables")
    assert.is_falsy(tables:find("x;", 1, true))
  end)

  if pg_url then
    it("a wrong PostgreSQL password: exit 4, the password nowhere in the output #postgres", function()
      local rc, out = cli({ "--url", with_password(pg_url, PASSWORD), "stats" })
      assert.equals(4, rc)
      no_password(out)
      rc, out = cli({ "--url", "postgresql://es:" .. PASSWORD .. "@127.0.0.1:1/es", "read", "a-1" })
      assert.equals(4, rc)
      no_password(out)
      rc, out = cli({ "--url", with_password(pg_url, PASSWORD), "--schema", "a;b", "stats" })
      assert.is_true(rc ~= 0)
      no_password(out)
    end)
  else
    pending("the CLI and a PostgreSQL password: set EVENTSTORE_PG_URL")
  end
end)
