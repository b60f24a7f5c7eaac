-- values: exact round trip of edge values through the embedded backends
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

-- Nested objects { a = { a = ... { leaf = v } } } and arrays { { ... { v } } }.
local function nest_objects(depth, leaf)
  local v = { leaf = leaf }
  for _ = 2, depth do v = { a = v } end
  return v
end
local function nest_arrays(depth, leaf)
  local v = { leaf }
  for _ = 2, depth do v = { v } end
  return v
end

-- A string with one character of every UTF-8 length and of all 17 planes.
local function every_plane()
  local cps = { 0x24, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0xD7FF, 0xE000, 0xFFFD, 0xFFFF }
  for plane = 1, 16 do
    cps[#cps + 1] = plane * 0x10000
    cps[#cps + 1] = plane * 0x10000 + 0xFFFD
  end
  cps[#cps + 1] = 0x1F600
  cps[#cps + 1] = 0x10FFFF
  local parts = {}
  for i, cp in ipairs(cps) do parts[i] = fx.utf8char(cp) end
  return table.concat(parts)
end

for _, name in ipairs({ "memory:", "sqlite::memory:", "sqlite temp file" }) do
  local b = backends.get(name)

  describe("values on " .. name, function()
    local store, path
    backends.fresh(b, nil, function(s, p) store, path = s, p end)

    -- Appends data (and metadata) and returns what reads back, by read and by id.
    local function round_trip(data, metadata)
      local s = fx.stream()
      assert(store:append(s, fx.event("V", data, { metadata = metadata })))
      local ev = store:read(s)[1]
      local by_id = store:event(ev.id)
      return ev, by_id
    end

    local function assert_round_trip(data)
      local ev, by_id = round_trip(data, data)
      fx.assert_exactly(data, ev.data)
      fx.assert_exactly(data, ev.metadata)
      fx.assert_exactly(data, by_id.data)
      return ev.data
    end

    if fx.has_integers then
      it("keeps integers integers at the edges", function()
        local back = assert_round_trip({
          max = math.maxinteger, min = math.mininteger, zero = 0, one = 1, minus = -1,
          two53p1 = math.tointeger(2 ^ 53) + 1, two63m2 = math.maxinteger - 1,
          list = { math.maxinteger, math.mininteger, 0 },
        })
        assert.equals("integer", math.type(back.max))
        assert.equals(math.maxinteger, back.max)
        assert.equals(math.mininteger, back.min)
        assert.equals(9007199254740993, back.two53p1)
        assert.equals("integer", math.type(back.list[3]))
      end)
    else
      it("keeps integral numbers up to 2^53 - 1 exact (no integer subtype here)", function()
        local back = assert_round_trip({
          max = 2 ^ 53 - 1, min = -(2 ^ 53 - 1), zero = 0, one = 1, minus = -1, big = 2 ^ 40 + 7,
          list = { 2 ^ 53 - 1, -(2 ^ 53 - 1), 0 },
        })
        assert.equals(9007199254740991, back.max)
        assert.equals(-9007199254740991, back.min)
        assert.equals(2 ^ 40 + 7, back.big)
      end)
    end

    it("keeps every bit of floats", function()
      local back = assert_round_trip({
        two53 = 2 ^ 53, tenth = 0.1, third = 1 / 3, max = 1.7976931348623157e308, e308 = 1e308,
        min_normal = 2.2250738585072014e-308, denormal = 5e-324, neg = -123.456e-78,
        three = 3.0, minus_one = -1.0, big_integral = 1e20, two63 = 2 ^ 63,
        list = { 0.1, 0.2, 0.30000000000000004 },
      })
      if fx.has_integers then
        assert.equals("float", math.type(back.two53))
        assert.equals("float", math.type(back.three))
      end
      assert.equals(0.1, back.tenth)
      assert.equals(1 / 3, back.third)
      assert.equals(2 ^ 63, back.two63)
    end)

    it("keeps the sign of -0.0", function()
      -- computed, not literals: Lua 5.1 folds the constants -0.0 and 0.0 into one
      local poszero, negzero = 1 / math.huge, -1 / math.huge
      local back = assert_round_trip({ negzero = negzero, poszero = poszero, list = { negzero, poszero } })
      assert.equals(-math.huge, 1 / back.negzero)
      assert.equals(math.huge, 1 / back.poszero)
    end)

    it("keeps strings byte-exact: NUL, control bytes, every UTF-8 length and plane", function()
      local planes = every_plane()
      assert_round_trip({
        nul = "\0", inner = "a\0b\0\0c", ends = "\0x\0",
        controls = "\1\2\3\t\n\r\27\31\127", quotes = "\"'\\/", planes = planes,
        list = { planes, "\0", "" },
      })
    end)

    it("keeps every UTF-8 plane, quotes and the empty string in keys", function()
      local planes = every_plane()
      assert_round_trip({ [planes] = 3, [""] = 4, ["\"'\\"] = 5, ["\1\31"] = 6 })
    end)

    it("keeps a NUL byte in a key, or rejects it cleanly, never truncates", function()
      local s = fx.stream()
      local data = { ["k\0ey"] = 1, ["\0"] = 2 }
      local ok, msg = pcall(store.append, store, s, fx.event("V", data))
      if ok then
        fx.assert_exactly(data, store:read(s)[1].data)
      else
        assert.matches("nul", msg:lower())
        assert.equals(0, store:revision(s))
      end
    end)

    it("keeps a 1 MB UTF-8 string and a 1 MB key", function()
      local s = string.rep("aé€😀", math.floor(1024 * 1024 / 10))
      local back = assert_round_trip({ text = s, [s] = "value" })
      assert.equals(#s, #back.text)
    end)

    it("keeps 100 levels of nested objects and of nested arrays", function()
      assert_round_trip({ objects = nest_objects(100, "bottom"), arrays = nest_arrays(100, 7) })
    end)

    it("keeps numeric-looking string keys strings: an object with keys \"1\", \"2\" is no array", function()
      local back = assert_round_trip({ ["1"] = "a", ["2"] = "b", nested = { ["0"] = 0, ["-1"] = 1, ["1e2"] = 2 } })
      assert.equals("a", back["1"])
      assert.is_nil(back[1])
      assert.equals(1, back.nested["-1"])
      assert.is_nil(back.nested[-1])
    end)

    it("keeps an array of 100,000 items and an object of 100,000 keys", function()
      local list, obj = {}, {}
      for i = 1, 100000 do
        list[i] = i % 7 == 0 and tostring(i) or i
        obj["k" .. i] = i + 0.5
      end
      local data = { list = list, obj = obj }
      local ev, by_id = round_trip(data)
      fx.assert_exactly(data, ev.data)
      assert.equals(100000, #by_id.data.list)
    end)

    it("reads back the deepest nesting that append accepts", function()
      local lo, hi = 100, 100000   -- lo is accepted (see above), hi is rejected (errors_spec)
      local probe = fx.stream()
      while hi - lo > 1 do
        local mid = math.floor((lo + hi) / 2)
        if pcall(store.append, store, probe, fx.event("Deep", { x = nest_arrays(mid, 1) })) then
          lo = mid
        else
          hi = mid
        end
      end
      local value = { x = nest_arrays(lo, 1), y = nest_objects(lo, "leaf") }
      local ok = pcall(store.append, store, probe, fx.event("Deep", value))
      if not ok then value.y = nest_objects(lo - 1, "leaf") end
      assert_round_trip(value)
    end)

    it("keeps arrays as arrays, with holes filled by eventstore.null", function()
      local back = assert_round_trip({
        list = { 1, 2, 3 }, mixed = { "a", 1, true, { x = 1 }, { 2 } },
        with_null = { 1, eventstore.null, 3 },
      })
      assert.equals(3, #back.list)
      assert.equals(3, #back.with_null)
      assert.equals(eventstore.null, back.with_null[2])
    end)

    it("keeps eventstore.null as a value", function()
      local back = assert_round_trip({ gone = eventstore.null, here = 1 })
      assert.equals(eventstore.null, back.gone)
    end)

    it("reads an empty table back as an empty table, marked or not", function()
      local back = assert_round_trip({ object = {}, array = eventstore.array({}) })
      assert.same({}, back.object)
      assert.same({}, back.array)
      assert.is_nil(next(back.object))
      assert.is_nil(next(back.array))
    end)

    it("accepts strings of arbitrary bytes only byte-exact, or rejects them cleanly", function()
      local bad = "\255\254\128 \195\040 \237\160\128"
      local s = fx.stream()
      local ok, res, err = pcall(store.append, store, s, fx.event("Bytes", { bad = bad }))
      if ok and res then
        assert.equals(bad, store:read(s)[1].data.bad)
      elseif ok then
        assert.equals("invalid", err.code)
        assert.equals(0, store:revision(s))
      else
        assert.matches("utf", res:lower())
        assert.equals(0, store:revision(s))
      end
    end)

    if b.file then
      -- The JSON text as stored: read the database bytes after close (the
      -- WAL too, in case it was not checkpointed).
      local function stored_text()
        store:close()
        local bytes = fx.sqlite_bytes(path)
        return (bytes.db or "") .. (bytes.wal or "")
      end

      it("stores an empty table as an object and eventstore.array({}) as an array", function()
        local obj_key, arr_key = fx.name("obj"), fx.name("arr")
        assert(store:append(fx.stream(), fx.event("E", { [obj_key] = {}, [arr_key] = eventstore.array({}) })))
        local text = stored_text()
        assert.is_truthy(text:find('"' .. obj_key .. '"%s*:%s*{%s*}'))
        assert.is_truthy(text:find('"' .. arr_key .. '"%s*:%s*%[%s*%]'))
      end)

      it("an empty array read back stays an array when appended again", function()
        local s, arr_key, obj_key = fx.stream(), fx.name("arr"), fx.name("obj")
        assert(store:append(s, fx.event("E", { list = eventstore.array({}), obj = {} })))
        local back = store:read(s)[1].data
        assert(store:append(s, fx.event("E", { [arr_key] = back.list, [obj_key] = back.obj })))
        local text = stored_text()
        assert.is_truthy(text:find('"' .. arr_key .. '"%s*:%s*%[%s*%]'))
        assert.is_truthy(text:find('"' .. obj_key .. '"%s*:%s*{%s*}'))
      end)
    end
  end)
end

describe("eventstore.array", function()
  it("returns the table it marks, unchanged", function()
    local t = { 1, 2 }
    assert.equals(t, eventstore.array(t))
    assert.same({ 1, 2 }, t)
  end)
end)
