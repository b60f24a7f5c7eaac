-- compat_spec: the module under every Lua (5.1, LuaJIT, 5.3, 5.4): numbers, lifecycle, the API
-- SPDX-License-Identifier: MIT
--
-- Written in Lua 5.1 syntax (no <close>, no bitwise operators, no //) so it
-- loads everywhere; expectations that differ by version are explicit.
-- Numbers: Lua 5.3/5.4 have an integer subtype; 5.1 and LuaJIT do not. There
-- a number is stored as a JSON integer when it is integral and a safe
-- integer, |n| <= 2^53 - 1; any other number (2^53, 2^63, 1e300, 0.5, -0.0)
-- as a JSON real, bit for bit. A stored integer beyond 2^53 - 1 (written
-- from 5.3/5.4, C, SQL, or summed by a reducer) reads back on 5.1/LuaJIT
-- as the nearest double.
local eventstore = require("eventstore")

local HAS_INTEGERS = math.type ~= nil
local MAX_SAFE = 2 ^ 53 - 1      -- a float on 5.3+: int(MAX_SAFE) where an integer is meant
local run = eventstore.uuid():sub(1, 8)
local counter = 0

local function stream(prefix)
  counter = counter + 1
  return string.format("%s%s-%d", prefix or "compat", run, counter)
end

-- An integral number as an integer (a float that happens to be integral on 5.3+).
local function int(x)
  return HAS_INTEGERS and math.tointeger(x) or x
end

local function integral(x)
  return type(x) == "number" and x == math.floor(x)
end

-- A stored value as it reads back, through a real append and read.
local function roundtrip(value)
  local store = assert(eventstore.open("memory:"))
  local s = stream()
  assert(store:append(s, { type = "V", data = { v = value } }))
  local back = store:read(s)[1].data.v
  store:close()
  return back
end

local function bits(x)
  return string.format("%.17g/%s", x, tostring(1 / x < 0))
end

describe("compat: " .. _VERSION .. (jit and (" (" .. jit.version .. ")") or ""), function()
  it("loads the module built for this ABI", function()
    assert.is_string(eventstore.version)
    assert.is_function(eventstore.open)
    local store = assert(eventstore.open("memory:"))
    assert.equals("memory", store:stats().backend)
    assert.is_true(store:close())
  end)

  describe("integers", function()
    it("small integers round-trip as integers and are written as JSON integers", function()
      for _, n in ipairs({ 0, 1, -1, 42, 2 ^ 31, -(2 ^ 31), 2 ^ 32 + 1, MAX_SAFE, -MAX_SAFE }) do
        n = int(n)
        local back = roundtrip(n)
        assert.equals(n, back)
        assert.is_nil(eventstore.json_encode(n):find("[.eE]"), "written as an integer: " .. bits(n))
        if HAS_INTEGERS then assert.equals("integer", math.type(back)) end
      end
    end)

    it("floats keep every bit, -0.0 included", function()
      local negzero = -1 / math.huge
      for _, x in ipairs({ 0.5, 0.1, -2.75, 1e300, 5e-324, negzero }) do
        local back = roundtrip(x)
        assert.equals(bits(x), bits(back))
        if HAS_INTEGERS then assert.equals("float", math.type(back)) end
      end
    end)

    it("integral numbers beyond 2^53 - 1 keep their exact value", function()
      for _, x in ipairs({ 2 ^ 53, -(2 ^ 53), 2 ^ 60, 2 ^ 63, -(2 ^ 63), 2 ^ 64, 1e300 }) do
        assert.equals(bits(x), bits(roundtrip(x)))
      end
    end)

    if HAS_INTEGERS then
      it("5.3+: integers beyond 2^53 keep every digit; 3.0 stays a float", function()
        local big = math.tointeger(2 ^ 53) + 1
        assert.equals(big, roundtrip(big))
        assert.equals("integer", math.type(roundtrip(big)))
        assert.equals(math.maxinteger, roundtrip(math.maxinteger))
        assert.equals(math.mininteger, roundtrip(math.mininteger))
        assert.equals("float", math.type(roundtrip(3.0)))
        assert.equals("3.0", eventstore.json_encode(3.0))
        assert.equals("float", math.type(roundtrip(2 ^ 53)))
      end)

      it("5.3+: a reducer sum past 2^53 is exact", function()
        local rules = eventstore.reducer({ n = "sum" })
        local state = rules:fold({ { type = "A", data = { n = int(MAX_SAFE) } }, { type = "A", data = { n = 2 } } })
        assert.equals(math.tointeger(2 ^ 53) + 1, state.n)
        assert.equals("integer", math.type(state.n))
      end)
    else
      it("5.1/LuaJIT: an integral number is an integer: 3.0 is written 3", function()
        assert.equals("3", eventstore.json_encode(3.0))
        assert.equals("9007199254740991", eventstore.json_encode(MAX_SAFE))
      end)

      it("5.1/LuaJIT: integral numbers from 2^53 on are written as JSON reals", function()
        assert.equals("9007199254740992.0", eventstore.json_encode(2 ^ 53))
        assert.equals("-9007199254740992.0", eventstore.json_encode(-(2 ^ 53)))
        assert.truthy(eventstore.json_encode(2 ^ 63):find("e18", 1, true))
      end)

      it("5.1/LuaJIT: a stored integer beyond 2^53 - 1 reads back as the nearest double", function()
        local v = eventstore.json_decode('{"p": 9007199254740993, "m": 9223372036854775807, "n": -9223372036854775808}')
        assert.equals(2 ^ 53, v.p)               -- 2^53 + 1 has no double: its low bit is lost
        assert.equals(2 ^ 63, v.m)
        assert.equals(-(2 ^ 63), v.n)
      end)

      it("5.1/LuaJIT: a reducer sum past 2^53 is computed exactly in C, read back rounded", function()
        local rules = eventstore.reducer({ n = "sum" })
        local state = rules:fold({ { type = "A", data = { n = MAX_SAFE } }, { type = "A", data = { n = 2 } } })
        assert.equals(2 ^ 53, state.n)           -- exact sum 2^53 + 1 in int64
      end)

      it("5.1/LuaJIT: an argument that must be an integer is refused beyond 2^53 - 1", function()
        local store = assert(eventstore.open("memory:"))
        assert.has_error(function() store:append(stream(), { type = "A" }, { expected = 2 ^ 60 }) end)
        assert.has_error(function() store:read(stream(), { from = 2 ^ 53 }) end)
        store:close()
      end)
    end

    it("integral floats are accepted as integer arguments", function()
      local store = assert(eventstore.open("memory:"))
      local s = stream()
      assert(store:append(s, { type = "A" }, { expected = 0.0 }))
      assert(store:append(s, { type = "B" }, { expected = 1.0 }))
      assert.equals(1, #store:read(s, { from = 2.0, limit = 1.0 }))
      assert.has_error(function() store:append(s, { type = "C" }, { expected = 1.5 }) end)
      store:close()
    end)

    it("keys 1..n make an array, a fractional key is refused", function()
      assert.equals("[1,2]", eventstore.json_encode({ 1, 2 }))
      assert.equals('{"a":1}', eventstore.json_encode({ a = 1 }))
      assert.has_error(function() eventstore.json_encode({ [1.5] = 1 }) end)
    end)
  end)

  describe("lifecycle without <close>", function()
    local path
    before_each(function() path = os.tmpname() end)
    after_each(function()
      for _, sfx in ipairs({ "", "-wal", "-shm", "-journal" }) do os.remove(path .. sfx) end
    end)

    it("close is idempotent; any other call on a closed store raises", function()
      local store = assert(eventstore.open("sqlite:" .. path))
      assert.is_true(store:close())
      assert.is_true(store:close())
      assert.is_false(store:is_open())
      assert.has_error(function() store:append("a-1", { type = "A" }) end, "attempt to use a closed store")
      assert.has_error(function() store:read("a-1") end, "attempt to use a closed store")
      assert.has_error(function() store:each("a-1") end)
    end)

    it("an unclosed store is closed by the collector, its data kept", function()
      local store = assert(eventstore.open("sqlite:" .. path))
      assert(store:append("a-1", { type = "A", data = { n = 1 } }))
      store = nil -- luacheck: ignore
      collectgarbage()
      collectgarbage()
      local again = assert(eventstore.open("sqlite:" .. path))
      assert.equals(1, again:revision("a-1"))
      again:close()
    end)

    it("each pages, closes itself, and survives a break", function()
      local store = assert(eventstore.open("sqlite:" .. path))
      local events = {}
      for i = 1, 25 do events[i] = { type = "E", data = { i = i } } end
      assert(store:append("a-1", events))
      local seen = 0
      for ev in store:each("a-1", { page_size = 4 }) do
        seen = seen + 1
        assert.equals(seen, ev.data.i)
      end
      assert.equals(25, seen)
      for ev in store:each("a-1", { page_size = 4 }) do
        if ev.revision == 6 then break end
      end
      collectgarbage()
      assert(store:append("a-1", { type = "E" }, { expected = 25 }))
      store:close()
    end)
  end)
end)

-- The API on every backend, as conformance_spec does on 5.4.
local pg_url = os.getenv("EVENTSTORE_PG_URL")
if pg_url == "" then pg_url = nil end
local backends = {
  { name = "memory:", url = function() return "memory:" end },
  { name = "sqlite file", url = function(self) self.path = os.tmpname() return "sqlite:" .. self.path end },
  { name = "postgres #postgres", url = function() return pg_url end, pending = not pg_url, shared = true },
}

for _, b in ipairs(backends) do
  describe("compat (" .. _VERSION .. ") on " .. b.name, function()
    if b.pending then
      pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
      return
    end
    local store
    before_each(function()
      store = assert(eventstore.open(b:url(), { outbox = true }))
    end)
    after_each(function()
      store:close()
      if b.path then
        for _, sfx in ipairs({ "", "-wal", "-shm", "-journal" }) do os.remove(b.path .. sfx) end
        b.path = nil
      end
    end)

    it("appends with optimistic concurrency and reads back", function()
      local s = stream("acct")
      local res = assert(store:append(s, {
        { type = "Opened", data = { owner = "ann", tags = eventstore.array() } },
        { type = "Deposited", data = { amount = 10 }, metadata = { correlation_id = eventstore.uuid() } },
      }, { expected = eventstore.NO_STREAM }))
      assert.equals(2, res.revision)
      assert.equals(2, res.count)
      assert.is_true(integral(res.position) and res.position >= 2)
      local ok, err = store:append(s, { type = "Opened" }, { expected = eventstore.NO_STREAM })
      assert.is_nil(ok)
      assert.equals("conflict", err.code)
      assert.equals(0, err.expected)
      assert.equals(2, err.actual)
      assert.truthy(tostring(err):find("^conflict: "))
      assert.is_nil(store:append(s, { type = "X" }, { expected = 5 }))
      assert(store:append(s, { type = "Withdrawn", data = { amount = 3 } }, { expected = eventstore.STREAM_EXISTS }))
      local evs = store:read(s)
      assert.equals(3, #evs)
      for i, ev in ipairs(evs) do
        assert.equals(i, ev.revision)
        assert.equals(s, ev.stream)
        assert.is_true(integral(ev.position) and integral(ev.timestamp))
        assert.is_true(math.abs(ev.timestamp - eventstore.now()) < 60000)
        assert.equals(36, #ev.id)
      end
      assert.equals("ann", evs[1].data.owner)
      assert.equals("[]", eventstore.json_encode(evs[1].data.tags))
      assert.equals(10, evs[2].data.amount)
      assert.is_string(evs[2].metadata.correlation_id)
      assert.same({}, evs[3].metadata)
      assert.equals(3, store:revision(s))
      assert.equals(0, store:revision(stream("none")))
      assert.equals("Withdrawn", store:last(s).type)
      assert.equals(evs[2].id, store:event(evs[2].id).id)
      assert.same({}, store:read(stream("none")))
      local back = store:read(s, { from = 2, to = 3, backward = true })
      assert.equals(3, back[1].revision)
      assert.equals(2, back[2].revision)
      assert.equals(1, #store:read(s, { limit = 1 }))
    end)

    it("reads everything in global order, by category and type, paged by each", function()
      local cat = "cat" .. run .. counter
      counter = counter + 1
      local first
      for i = 1, 7 do
        local ev = { type = i % 2 == 0 and "Even" or "Odd", data = { i = i } }
        local r = assert(store:append(cat .. "-" .. (i % 3), ev))
        first = first or r.position
      end
      local all = store:read_all({ after = first - 1, category = cat })
      assert.equals(7, #all)
      for i = 2, #all do assert.is_true(all[i].position > all[i - 1].position) end
      assert.equals(3, #store:read_all({ after = first - 1, category = cat, types = "Even" }))
      local seen = {}
      for ev in store:each(nil, { category = cat, after = first - 1, page_size = 2 }) do seen[#seen + 1] = ev.data.i end
      assert.same({ 1, 2, 3, 4, 5, 6, 7 }, seen)
      local names = store:streams({ category = cat })
      assert.same({ cat .. "-0", cat .. "-1", cat .. "-2" }, names)
      assert.is_true(#store:since(eventstore.now() - 60000, { limit = 3 }) >= 1)
    end)

    it("values: nesting, arrays, null, bytes, and what JSON cannot hold", function()
      local s = stream()
      local data = { list = { 1, "two", { three = 3 }, eventstore.null, true, false },
        nested = { a = { b = { c = "deep" } } }, bin = "a\0b\255", utf = "h\195\169 \226\130\172" }
      local ok = pcall(store.append, store, s, { type = "V", data = data })
      if not ok then data.bin = "a\0b" end   -- arbitrary bytes may be refused, never altered
      assert(store:append(s, { type = "V", data = data }))
      local back = store:last(s).data
      assert.same(data, back)
      assert.equals(eventstore.null, back.list[4])
      assert.has_error(function() store:append(s, { type = "V", data = { x = 0 / 0 } }) end)
      assert.has_error(function() store:append(s, { type = "V", data = { f = print } }) end)
      local cyc = {}
      cyc.self = cyc
      assert.has_error(function() store:append(s, { type = "V", data = cyc }) end)
      assert.has_error(function() store:append(s, { data = {} }) end)
      assert.equals(1, store:revision(s))
    end)

    it("snapshots, checkpoints and the outbox", function()
      local s = stream()
      assert(store:append(s, { { type = "A" }, { type = "B" } }))
      assert.is_true(store:save_snapshot(s, 2, { total = 2, big = int(MAX_SAFE) }, 1))
      local snap = store:snapshot(s)
      assert.equals(2, snap.revision)
      assert.equals(1, snap.version)
      assert.equals(MAX_SAFE, snap.data.big)
      assert.is_nil(store:snapshot(s, { max_revision = 1 }))
      local name = "cp" .. run .. counter
      assert.equals(0, store:checkpoint(name))
      assert.is_true(store:checkpoint(name, 5))
      assert.equals(5, store:checkpoint(name))
      local ev = store:last(s)
      local pending_ids = {}
      for _, u in ipairs(store:undispatched({ limit = 100000 })) do pending_ids[u.id] = true end
      assert.is_true(pending_ids[ev.id])
      assert.is_true(store:mark_dispatched(ev))
      for _, u in ipairs(store:undispatched({ limit = 100000 })) do assert.are_not.equal(ev.id, u.id) end
    end)

    it("reducers: C rules, Lua function rules under pcall, state of a stream", function()
      local s = stream("acct")
      assert(store:append(s, {
        { type = "Deposited", data = { amount = 10, owner = "ann" } },
        { type = "Deposited", data = { amount = 5 } },
        { type = "Withdrawn", data = { amount = 3 } },
      }))
      local rules = eventstore.reducer({
        ["*"] = "last",
        owner = "first",
        balance = { { "sum", from = "amount", when = "Deposited" },
                    { "sum", from = "amount", when = "Withdrawn", scale = -1 } },
        doubled = { function(acc, v) return (acc or 0) + 2 * v end, from = "amount" },
        [eventstore.TYPES] = "types",
      })
      local state, revision = store:state(s, rules)
      assert.equals(3, revision)
      assert.equals(12, state.balance)
      assert.equals(36, state.doubled)
      assert.equals("ann", state.owner)
      assert.same({ "Deposited", "Deposited", "Withdrawn" }, state.types)
      local boom = eventstore.reducer({ amount = function() error("no amounts here") end })
      local ok, msg = pcall(store.state, store, s, boom)
      assert.is_false(ok)
      assert.truthy(tostring(msg):find("no amounts here", 1, true))
      assert.equals(3, store:revision(s))   -- the store is still usable
      assert.equals(15, eventstore.reducer({ amount = "sum" }):fold(store:read(s, { to = 2 })).amount)
    end)
  end)
end
