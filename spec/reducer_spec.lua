-- reducer: eventstore.reducer rules compiled into C, rules:fold, fingerprints,
-- and the C fold checked against a plain-Lua reference fold
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local TYPES, array, null = eventstore.TYPES, eventstore.array, eventstore.null

-- A table is a JSON array when marked (eventstore.array; the store marks the
-- empty arrays it returns) or when it has the keys 1..n; else an object.
local function is_array(v)
  return type(v) == "table" and (eventstore.is_array(v) or (next(v) ~= nil and v[1] ~= nil))
end

local function ev(type, data) return { type = type, data = data or {} } end

-- Written in Lua 5.1 syntax: the specs also run under LuaJIT/5.1, where every
-- number is a double. What needs 64-bit integers (math.type, past 2^53) runs
-- on 5.3+ only and is pending elsewhere.
local INT = fx.has_integers
-- On 5.1 the binding stores an integral number as a JSON integer: the
-- reference then treats it as one.
local mtype = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return x == math.floor(x) and "integer" or "float"
end
local it_int = INT and it or function(name)
  pending(name .. " (needs 64-bit integers, " .. _VERSION .. " here)")
end
-- 5.3 operators compiled only where they parse
local idiv = INT and load("return function(a, b) return a // b end")() or nil
local TWO53 = INT and math.tointeger(2 ^ 53) or 2 ^ 53

local function assert_integer(x)
  assert(fx.is_integer(x), tostring(x) .. " is not an integer")
end
local function assert_float(x)
  assert.is_number(x)
  if INT then assert.equals("float", math.type(x)) end
end

local function fold(rules, events, initial)
  return eventstore.reducer(rules):fold(events, initial)
end

-- Deep equality that also requires the same math.type, float bits and
-- array marks (an empty array is not an empty object).
local function same_json(a, b, path)
  path = path or "state"
  if type(a) == "table" and type(b) == "table" and is_array(a) ~= is_array(b) then
    return false, path .. ": array expected to be " .. tostring(is_array(a))
  end
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do
      local ok, where = same_json(v, b[k], path .. "." .. tostring(k))
      if not ok then return false, where end
    end
    for k in pairs(b) do
      if a[k] == nil then return false, path .. "." .. tostring(k) .. ": unexpected key" end
    end
    return true
  end
  return fx.exactly(a, b, path)
end

-- context: a string, or a function that builds one (only on failure).
local function assert_json(expected, actual, context)
  local ok, where = same_json(expected, actual)
  if ok then return end
  if type(context) == "function" then context = context() end
  error((context and context .. ": " or "") .. where, 2)
end

describe("reducer rule kinds", function()
  it("last (the default for unnamed fields) keeps the newest value of any kind", function()
    local st = fold({}, {
      ev("A", { a = 1, b = "x" }), ev("B", { a = "two" }), ev("C", { a = 2.5, c = array({ 1 }) }),
    })
    assert_json({ a = 2.5, b = "x", c = array({ 1 }) }, st)
    st = fold({ a = "last" }, { ev("A", { a = 1 }), ev("A", { b = true }), ev("A", { a = null }) })
    assert.equals(null, st.a)
    assert.is_true(st.b)
  end)

  it("first keeps the first value; a value in the initial state or a null counts as present", function()
    assert_json({ a = 1 }, fold({ a = "first" }, { ev("A", { a = 1 }), ev("A", { a = 2 }) }))
    assert_json({ a = 0 }, fold({ a = "first" }, { ev("A", { a = 1 }) }, { a = 0 }))
    assert.equals(null, fold({ a = "first" }, { ev("A", { a = null }), ev("A", { a = 3 }) }).a)
    assert_json({ a = 5, b = 1 }, fold({ a = "first" }, { ev("A", { b = 1 }), ev("A", { a = 5 }) }))
  end)

  it("sum keeps integers integers", function()
    local st = fold({ n = "sum" }, { ev("A", { n = 1 }), ev("A", { n = 2 }), ev("A", { n = 3 }) })
    assert.equals(6, st.n)
    assert_integer(st.n)
    st = fold({ n = "sum" }, { ev("A", { n = -5 }), ev("A", { n = 5 }) })
    assert.equals(0, st.n)
    assert_integer(st.n)
    st = fold({ n = "sum" }, { ev("A", { n = TWO53 - 2 }), ev("A", { n = 1 }), ev("A", { n = 1 }) })
    assert.equals(TWO53, st.n)
    assert_integer(st.n)
  end)

  it_int("sum keeps integers exact past 2^53", function()
    local big = TWO53
    local st = fold({ n = "sum" }, { ev("A", { n = big }), ev("A", { n = 1 }), ev("A", { n = 1 }) })
    assert.equals("integer", math.type(st.n))
    assert.equals(9007199254740994, st.n)
    st = fold({ n = "sum" }, { ev("A", { n = big }), ev("A", { n = 1 }) })
    assert.equals(9007199254740993, st.n)
  end)

  it("sum of an integer and a float is a float; a lone float stays a float", function()
    local st = fold({ n = "sum" }, { ev("A", { n = 1 }), ev("A", { n = 2.5 }) })
    assert.equals(3.5, st.n)
    assert_float(st.n)
    st = fold({ n = "sum" }, { ev("A", { n = 0.5 }), ev("A", { n = 1 }), ev("A", { n = 0.5 }) })
    assert.equals(2.0, st.n)
    assert_float(st.n)
    st = fold({ n = "sum" }, { ev("A", { n = 2.0 }) })
    assert.equals(2, st.n)
    assert_float(st.n)
    st = fold({ n = "sum" }, { ev("A", { n = 0.1 }), ev("A", { n = 0.2 }) })
    assert.equals(0.1 + 0.2, st.n)
  end)

  it_int("sum past the int64 range turns into a float instead of wrapping", function()
    local st = fold({ n = "sum" }, { ev("A", { n = math.maxinteger }), ev("A", { n = 1 }) })
    assert.equals("float", math.type(st.n))
    assert.equals(2.0 ^ 63, st.n)
    st = fold({ n = "sum" }, { ev("A", { n = math.mininteger }), ev("A", { n = -1 }) })
    assert.equals(-(2.0 ^ 63), st.n)
  end)

  it("sum of a non-number raises naming the field", function()
    local r = eventstore.reducer({ n = "sum" })
    fx.raises(function() r:fold({ ev("A", { n = 1 }), ev("A", { n = "x" }) }) end, "'n'")
    fx.raises(function() r:fold({ ev("A", { n = 1 }) }, { n = "text" }) end, "'n'")
    fx.raises(function() r:fold({ ev("A", { n = true }) }) end, "'n'")
  end)

  it("min and max compare integers and floats", function()
    local evs = { ev("A", { v = 3 }), ev("A", { v = 1.5 }), ev("A", { v = 7 }), ev("A", { v = -2 }) }
    assert_json({ v = -2 }, fold({ v = "min" }, evs))
    assert_json({ v = 7 }, fold({ v = "max" }, evs))
    assert_json({ v = 1.5 }, fold({ v = "min" }, { ev("A", { v = 2 }), ev("A", { v = 1.5 }) }))
    assert_json({ v = 2 }, fold({ v = "max" }, { ev("A", { v = 2 }), ev("A", { v = 1.5 }) }))
  end)

  it_int("min and max keep the held value on ties and compare past 2^53 exactly", function()
    local tie = { ev("A", { v = 1 }), ev("A", { v = 1.0 }) }
    assert.equals("integer", math.type(fold({ v = "min" }, tie).v))
    assert.equals("integer", math.type(fold({ v = "max" }, tie).v))
    -- 2^53 + 1 is above the float 2^53: an exact comparison sees it
    local big = TWO53 + 1
    local st = fold({ v = "max" }, { ev("A", { v = 2.0 ^ 53 }), ev("A", { v = big }) })
    assert.equals("integer", math.type(st.v))
    assert.equals(big, st.v)
    st = fold({ v = "min" }, { ev("A", { v = big }), ev("A", { v = 2.0 ^ 53 }) })
    assert.equals("float", math.type(st.v))
  end)

  it("min and max compare strings bytewise; a string against a number raises", function()
    local evs = { ev("A", { s = "b" }), ev("A", { s = "ab" }), ev("A", { s = "ba" }), ev("A", { s = "B" }) }
    assert_json({ s = "B" }, fold({ s = "min" }, evs))
    assert_json({ s = "ba" }, fold({ s = "max" }, evs))
    fx.raises(function() fold({ s = "max" }, { ev("A", { s = "a" }), ev("A", { s = 1 }) }) end, "'s'")
    fx.raises(function() fold({ s = "min" }, { ev("A", { s = 1 }), ev("A", { s = "a" }) }) end, "'s'")
    fx.raises(function() fold({ s = "min" }, { ev("A", { s = {} }) }) end, "'s'")
  end)

  it("count counts the events that carry the field, whatever its value", function()
    local st = fold({ c = "count" }, {
      ev("A", { c = 1 }), ev("A", { d = 1 }), ev("B", { c = false }), ev("C", { c = null }), ev("D", { c = "x" }),
    })
    assert.equals(4, st.c)
    assert_integer(st.c)
    assert.is_nil(fold({ c = "count" }, { ev("A", { d = 1 }) }).c)
    assert.equals(12, fold({ c = "count" }, { ev("A", { c = 1 }), ev("A", { c = 1 }) }, { c = 10 }).c)
  end)

  it("append appends single values and concatenates arrays", function()
    local st = fold({ t = "append" }, {
      ev("A", { t = 1 }), ev("A", { t = array({ 2, 3 }) }), ev("A", { t = "x" }),
      ev("A", { t = array({ array({ 4 }) }) }), ev("A", { t = { k = 1 } }), ev("A", { t = array() }),
      ev("A", { t = 1 }),
    })
    assert_json(array({ 1, 2, 3, "x", array({ 4 }), { k = 1 }, 1 }), st.t)
  end)

  it("append makes a held value an array: absent, null and {} start empty, a scalar becomes its first item", function()
    local r = eventstore.reducer({ t = "append" })
    assert_json(array({ 5 }), r:fold({ ev("A", { t = 5 }) }, { t = null }).t)
    assert_json(array({ 5 }), r:fold({ ev("A", { t = 5 }) }, { t = {} }).t)
    assert_json(array({ "old", 5 }), r:fold({ ev("A", { t = 5 }) }, { t = "old" }).t)
    assert_json(array({ { k = 1 }, 5 }), r:fold({ ev("A", { t = 5 }) }, { t = { k = 1 } }).t)
    assert_json(array({ 0, 5 }), r:fold({ ev("A", { t = 5 }) }, { t = array({ 0 }) }).t)
    assert_json(array(), r:fold({ ev("A", { t = array() }) }).t)
  end)

  it("union keeps distinct values in first-seen order, comparing deeply", function()
    local st = fold({ u = "union" }, {
      ev("A", { u = "b" }), ev("A", { u = array({ "a", "b", "a" }) }), ev("A", { u = { k = 1 } }),
      ev("A", { u = array({ { k = 1 }, array({ 1, 2 }) }) }), ev("A", { u = array({ 1, 2 }) }),
      ev("A", { u = "c" }), ev("A", { u = null }), ev("A", { u = null }),
    })
    assert_json(array({ "b", "a", { k = 1 }, array({ 1, 2 }), 1, 2, "c", null }), st.u)
  end)

  it("merge merges objects deeply, last wins on leaves, anything else replaces", function()
    local st = fold({ m = "merge" }, {
      ev("A", { m = { p = { q = 1, r = 1 }, s = 1 } }),
      ev("A", { m = { p = { r = 2, x = array({ 1 }) }, t = 2 } }),
      ev("A", { m = { p = { x = array({ 2 }) } } }),
    })
    assert_json({ m = { p = { q = 1, r = 2, x = array({ 2 }) }, s = 1, t = 2 } }, st)
    st = fold({ m = "merge" }, { ev("A", { m = { a = 1 } }), ev("A", { m = 5 }) })
    assert_json({ m = 5 }, st)
    st = fold({ m = "merge" }, { ev("A", { m = 5 }), ev("A", { m = { a = 1 } }) })
    assert_json({ m = { a = 1 } }, st)
    st = fold({ m = "merge" }, { ev("A", { m = { a = { b = 1 } } }), ev("A", { m = { a = 2 } }) })
    assert_json({ m = { a = 2 } }, st)
  end)

  it("drop never copies the field; \"*\" = \"drop\" keeps only named fields", function()
    assert_json({ b = 2 }, fold({ a = "drop" }, { ev("A", { a = 1, b = 2 }) }))
    local st = fold({ ["*"] = "drop", n = "sum" }, { ev("A", { n = 1, x = 1 }), ev("A", { n = 2, y = 2 }) })
    assert_json({ n = 3 }, st)
  end)

  it("\"*\" applies its kind to every unnamed field", function()
    local st = fold({ ["*"] = "sum", name = "last" }, {
      ev("A", { x = 1, y = 2, name = "a" }), ev("A", { x = 10, name = "b" }), ev("A", { y = 0.5 }),
    })
    assert_json({ x = 11, y = 2.5, name = "b" }, st)
    st = fold({ ["*"] = { "append", when = "Tagged" } }, {
      ev("Tagged", { t = 1 }), ev("Other", { t = 2 }), ev("Tagged", { t = 3 }),
    })
    assert_json({ t = array({ 1, 3 }) }, st)
  end)

  it("TYPES lists every folded event's type in order, whatever its fields", function()
    local st = fold({ [TYPES] = "history", ["*"] = "drop" }, {
      ev("Created", { id = 1 }), ev("Paid"), ev("Shipped", { at = 2 }), ev("Paid"),
    })
    assert_json({ history = array({ "Created", "Paid", "Shipped", "Paid" }) }, st)
    st = fold({ [TYPES] = "history" }, { ev("Created", { id = 1 }) })
    assert_json({ id = 1, history = array({ "Created" }) }, st)
  end)
end)

describe("reducer rule tables", function()
  it("a bank balance from two event types with from, when and scale, without a Lua function", function()
    local rules = eventstore.reducer({
      ["*"] = "drop",
      balance = {
        { "sum", from = "amount", when = "Deposited" },
        { "sum", from = "amount", when = "Withdrawn", scale = -1 },
      },
    })
    local st = rules:fold({
      ev("Deposited", { amount = 100 }), ev("Withdrawn", { amount = 30 }), ev("Deposited", { amount = 5 }),
      ev("Renamed", { amount = 1000, owner = "x" }), ev("Withdrawn", { amount = 80 }),
    })
    assert_json({ balance = -5 }, st)
    assert_integer(st.balance)
  end)

  it("a field read through from but not targeted is still copied by the default last", function()
    local st = fold({ balance = { "sum", from = "amount" } }, { ev("D", { amount = 3 }), ev("D", { amount = 4 }) })
    assert_json({ balance = 7, amount = 4 }, st)
  end)

  it("a targeted data field is left to its rules, even when they read another field", function()
    local st = fold({ a = { "sum", from = "b" } }, { ev("E", { a = 100, b = 1 }), ev("E", { a = 100, b = 2 }) })
    assert_json({ a = 3, b = 2 }, st)
  end)

  it("when takes one type or a list; count with when counts only matching events", function()
    local st = fold({
      ["*"] = "drop",
      ab = { "count", from = "x", when = { "A", "B" } },
      c = { "count", from = "x", when = "C" },
      all = { "count", from = "x" },
    }, { ev("A", { x = 1 }), ev("B", { x = 1 }), ev("C", { x = 1 }), ev("C", { y = 1 }), ev("D", { x = 1 }) })
    assert_json({ ab = 2, c = 1, all = 4 }, st)
  end)

  it("scale multiplies before sum, min and max; a float scale makes floats", function()
    local evs = { ev("A", { v = 4 }), ev("A", { v = -1 }), ev("A", { v = 2 }) }
    assert_json({ s = 2.5, v = 2 }, fold({ s = { "sum", from = "v", scale = 0.5 } }, evs))
    assert_json({ v = -4 }, fold({ v = { "min", scale = -1 } }, evs))
    assert_json({ v = 1 }, fold({ v = { "max", scale = -1 } }, evs))
    local st = fold({ v = { "sum", scale = 3 } }, evs)
    assert.equals(15, st.v)
    assert_integer(st.v)
  end)

  it("several rules on one target act in the order given", function()
    local st = fold({ t = { { "first", from = "a" }, { "append", from = "b" } } }, {
      ev("E", { a = "x", b = 1 }), ev("E", { a = "y", b = 2 }),
    })
    assert_json(array({ "x", 1, 2 }), st.t)
    st = fold({ t = { { "append", from = "b" }, { "first", from = "a" } } }, {
      ev("E", { a = "x", b = 1 }), ev("E", { a = "y", b = 2 }),
    })
    assert_json(array({ 1, 2 }), st.t)
  end)

  it("a rule table may hold a function, with from and when", function()
    local seen = {}
    local st = fold({
      total = { function(acc, v, e) seen[#seen + 1] = e.type; return (acc or 0) + v * 10 end,
                from = "n", when = "Add" },
    }, { ev("Add", { n = 1 }), ev("Sub", { n = 5 }), ev("Add", { n = 2 }), ev("Add", { m = 3 }) })
    assert.equals(30, st.total)
    assert.same({ "Add", "Add" }, seen)
  end)
end)

describe("reducer Lua function rules", function()
  it("get acc, the value, the event and the field, and their result becomes the state", function()
    local calls = {}
    local rules = eventstore.reducer({
      score = function(acc, value, event, field)
        calls[#calls + 1] = { acc = acc, value = value, type = event.type, data_n = event.data.n, field = field }
        return (acc or 0) + 2 * value
      end,
    })
    local st = rules:fold({ ev("A", { score = 1, n = 7 }), ev("B", { score = 5 }) })
    assert.equals(12, st.score)
    assert.equals(2, #calls)
    assert.same({ value = 1, type = "A", data_n = 7, field = "score" }, calls[1])
    assert.same({ acc = 2, value = 5, type = "B", field = "score" }, calls[2])
  end)

  it("are not called when the event lacks the field", function()
    local n = 0
    local rules = eventstore.reducer({ f = function(acc) n = n + 1; return (acc or 0) + 1 end })
    local st = rules:fold({ ev("A", { g = 1 }), ev("A", { f = 1 }), ev("A", {}), ev("A", { f = null }) })
    assert.equals(2, n)
    assert.equals(2, st.f)
  end)

  it("returning nil removes the field; returning a table stores it", function()
    local rules = eventstore.reducer({
      f = function(acc, v) if v == "clear" then return nil end return { last = v, n = ((acc or {}).n or 0) + 1 } end,
    })
    assert_json({ f = { last = "b", n = 2 } }, rules:fold({ ev("A", { f = "a" }), ev("A", { f = "b" }) }))
    assert_json({}, rules:fold({ ev("A", { f = "a" }), ev("A", { f = "clear" }) }))
  end)

  it("get the acc as a fresh copy: changing it in place does not leak into the caller's data", function()
    local rules = eventstore.reducer({
      f = function(acc, v) acc = acc or array(); acc[#acc + 1] = v; return acc end,
    })
    local data = { f = 1 }
    local initial = { f = array({ 0 }) }
    local st = rules:fold({ ev("A", data), ev("A", { f = 2 }) }, initial)
    assert_json(array({ 0, 1, 2 }), st.f)
    assert_json({ f = array({ 0 }) }, initial)
    assert_json({ f = 1 }, data)
  end)

  it("a function that raises stops fold and state with its own error", function()
    local rules = eventstore.reducer({ f = function() error("no overdrafts here", 0) end })
    local ok, msg = pcall(rules.fold, rules, { ev("A", { f = 1 }) })
    assert.is_false(ok)
    assert.equals("no overdrafts here", msg)
    local obj = { code = "mine" }
    local raising_obj = eventstore.reducer({ f = function() error(obj) end })
    local ok2, err2 = pcall(raising_obj.fold, raising_obj, { ev("A", { f = 1 }) })
    assert.is_false(ok2)
    assert.equals(obj, err2)
    local store = backends.open(backends.list[1])
    local s = fx.stream()
    assert(store:append(s, { ev("A", { f = 1 }) }))
    local ok3, msg3 = pcall(store.state, store, s, rules)
    assert.is_false(ok3)
    assert.equals("no overdrafts here", msg3)
    -- the store is still usable after the error
    local st, rev = store:state(s, eventstore.reducer({}))
    assert_json({ f = 1 }, st)
    assert.equals(1, rev)
    store:close()
  end)

  it("a function returning NaN, infinity or a function raises a clear error naming the field", function()
    for _, bad in ipairs({ 0 / 0, math.huge, -math.huge, print }) do
      local rules = eventstore.reducer({ f = function() return bad end })
      fx.raises(function() rules:fold({ ev("A", { f = 1 }) }) end, "'f'")
    end
    local rules = eventstore.reducer({ f = function() return 0 / 0 end })
    fx.raises(function() rules:fold({ ev("A", { f = 1 }) }) end, "nan")
  end)

  it("as the \"*\" rule get each unnamed field's name", function()
    local rules = eventstore.reducer({
      ["*"] = function(acc, v, _, field) return field .. "=" .. tostring(v) .. (acc and ("," .. acc) or "") end,
      keep = "last",
    })
    local st = rules:fold({ ev("A", { x = 1, keep = 5 }), ev("A", { x = 2, y = true }) })
    assert_json({ x = "x=2,x=1", y = "y=true", keep = 5 }, st)
  end)
end)

describe("reducer bad rules", function()
  local function bad(rules, ...)
    return fx.raises(function() eventstore.reducer(rules) end, ...)
  end

  it("an unknown kind names the field and the kind", function()
    local msg = bad({ amount = "total" }, "'amount'")
    assert.truthy(msg:find("total", 1, true))
    bad({ amount = { "avg", from = "x" } }, "'amount'")
    bad({ amount = { { "sum" }, { "median" } } }, "'amount'")
  end)

  it("rules of the wrong type name the field", function()
    bad({ amount = 3 }, "'amount'")
    bad({ amount = true }, "'amount'")
    bad({ amount = {} }, "'amount'")
    bad({ amount = { 1 } }, "'amount'")
  end)

  it("from, when and scale of the wrong type name the field", function()
    bad({ amount = { "sum", from = 1 } }, "'amount'")
    bad({ amount = { "sum", from = "" } }, "'amount'")
    bad({ amount = { "sum", when = 3 } }, "'amount'")
    bad({ amount = { "sum", when = {} } }, "'amount'")
    bad({ amount = { "sum", when = { "A", 2 } } }, "'amount'")
    bad({ amount = { "sum", when = "" } }, "'amount'")
    bad({ amount = { "sum", scale = "-1" } }, "'amount'")
    bad({ amount = { "sum", scale = 0 / 0 } }, "'amount'")
    bad({ amount = { "sum", scale = math.huge } }, "'amount'")
  end)

  it("options a kind does not take name the field", function()
    bad({ amount = { "last", scale = 2 } }, "'amount'")
    bad({ amount = { "count", scale = 2 } }, "'amount'")
    bad({ amount = { "drop", when = "A" } }, "'amount'")
    bad({ amount = { "drop", from = "b" } }, "'amount'")
    bad({ amount = { { "drop" }, { "sum" } } }, "'amount'")
    bad({ ["*"] = { "last", from = "x" } }, "'%*'")
  end)

  it("a duplicate \"*\" rule, TYPES on \"*\" or on a named target, and bad keys raise", function()
    bad({ ["*"] = { { "last" }, { "first" } } }, "'%*'")
    bad({ [TYPES] = "*" }, "'%*'")
    bad({ [TYPES] = "n", n = "sum" }, "'n'")
    bad({ [TYPES] = 1 }, "types")
    bad({ "sum" }, "field name")
    bad({ [""] = "sum" }, "field name")
    fx.raises(function() eventstore.reducer("sum") end, "table")
    fx.raises(function() eventstore.reducer({ a = "sum" }, { version = 1.5 }) end, "version")
    fx.raises(function() eventstore.reducer({ a = "sum" }, { version = "2" }) end, "version")
  end)
end)

describe("reducer fingerprint", function()
  local function fp(rules, opts) return eventstore.reducer(rules, opts):fingerprint() end

  it("is 16 hex digits, equal for equal rules built in different orders", function()
    local a = fp({ balance = { { "sum", from = "amount", when = { "Deposited", "Opened" } } }, n = "count",
      tags = "union", [TYPES] = "types", ["*"] = "last" })
    assert.truthy(a:match("^%x+$"))
    assert.equals(16, #a)
    local t = {}
    t["*"] = "last"
    t[TYPES] = "types"
    t.tags = { "union" }
    t.n = { { "count" } }
    t.balance = { "sum", from = "amount", when = { "Opened", "Deposited", "Opened" } }
    assert.equals(a, fp(t))
    -- "*" = "last" is the default; from naming the field itself is no from
    assert.equals(fp({ x = "sum" }), fp({ x = { "sum", from = "x" }, ["*"] = "last" }))
    for i = 1, 20 do
      local r = {}
      for j = 1, 20 do r["f" .. ((i * 7 + j * 13) % 20)] = (j % 2 == 0) and "sum" or "max" end
      assert.equals(fp(r), fp(r))
    end
  end)

  it("differs for a different kind, field, source, when, scale, default, order or version", function()
    local base = { balance = { "sum", from = "amount", when = "Deposited", scale = 2 } }
    local seen = { [fp(base)] = "base" }
    local variants = {
      kind = { balance = { "max", from = "amount", when = "Deposited", scale = 2 } },
      field = { total = { "sum", from = "amount", when = "Deposited", scale = 2 } },
      from = { balance = { "sum", from = "value", when = "Deposited", scale = 2 } },
      when = { balance = { "sum", from = "amount", when = "Withdrawn", scale = 2 } },
      when2 = { balance = { "sum", from = "amount", when = { "Deposited", "Withdrawn" }, scale = 2 } },
      nowhen = { balance = { "sum", from = "amount", scale = 2 } },
      scale = { balance = { "sum", from = "amount", when = "Deposited", scale = -2 } },
      fscale = { balance = { "sum", from = "amount", when = "Deposited", scale = 2.5 } },
      star = { balance = { "sum", from = "amount", when = "Deposited", scale = 2 }, ["*"] = "drop" },
      types = { balance = { "sum", from = "amount", when = "Deposited", scale = 2 }, [TYPES] = "t" },
      more = { balance = { { "sum", from = "amount", when = "Deposited", scale = 2 }, { "max", from = "x" } } },
      order = { balance = { { "max", from = "x" }, { "sum", from = "amount", when = "Deposited", scale = 2 } } },
    }
    for name, rules in pairs(variants) do
      local f = fp(rules)
      assert.is_nil(seen[f], name .. " has the fingerprint of " .. tostring(seen[f]))
      seen[f] = name
    end
    local v1 = fp(base, { version = 1 })
    assert.is_nil(seen[v1])
    assert.are_not.equal(v1, fp(base, { version = 2 }))
    assert.equals(v1, fp(base, { version = 1 }))
    assert.equals(fp(base), fp(base, { version = 0 }))
  end)

  it("of Lua function rules depends on the version, not on the function", function()
    local f1 = fp({ x = function(acc) return acc end })
    local f2 = fp({ x = function(_, v) return v end })
    assert.equals(f1, f2)
    assert.are_not.equal(f1, fp({ x = function(acc) return acc end }, { version = 2 }))
    assert.are_not.equal(f1, fp({ x = "last" }))
  end)
end)

describe("reducer bad arguments to fold and state", function()
  it("raise naming the argument", function()
    local rules = eventstore.reducer({})
    fx.raises(function() rules:fold(5) end, "#1", "table")
    fx.raises(function() rules:fold({}, 5) end, "#2", "table")
    fx.raises(function() rules:fold({}, array({ 1 })) end, "initial")
    fx.raises(function() rules.fold({}, {}) end, "reducer")
    local store = backends.open(backends.list[1])
    local s = fx.stream()
    fx.raises(function() store:state(s, {}) end, "reducer")
    fx.raises(function() store:state(s) end, "reducer")
    fx.raises(function() store:state(5, rules) end, "stream")
    fx.raises(function() store:state("", rules) end, "stream")
    fx.raises(function() store:state(s, rules, 5) end, "table")
    fx.raises(function() store:state(s, rules, { initial = 5 }) end, "initial")
    fx.raises(function() store:state(s, rules, { initial = array({ 1 }) }) end, "initial")
    fx.raises(function() store:state({ category = 1 }, rules) end, "category")
    fx.raises(function() store:state({ category = "x", where = 5 }, rules) end, "where")
    store:close()
    fx.raises(function() store:state(s, rules) end, "closed")
  end)
end)

describe("reducer fold", function()
  it("does not change the initial state or the events", function()
    local initial = { n = 1, tags = array({ "a" }), m = { p = { q = 1 } }, keep = "k" }
    local events = {
      ev("A", { n = 2, tags = array({ "b" }), m = { p = { r = 2 } } }),
      ev("A", { n = 3, tags = "c", m = { z = 1 } }),
    }
    local rules = eventstore.reducer({ n = "sum", tags = "append", m = "merge" })
    local st = rules:fold(events, initial)
    assert_json({ n = 6, tags = array({ "a", "b", "c" }), m = { p = { q = 1, r = 2 }, z = 1 }, keep = "k" }, st)
    assert_json({ n = 1, tags = array({ "a" }), m = { p = { q = 1 } }, keep = "k" }, initial)
    assert_json({ n = 2, tags = array({ "b" }), m = { p = { r = 2 } } }, events[1].data)
    assert.are_not.equal(initial, st)
    local again = rules:fold(events, initial)
    assert_json(st, again)
  end)

  it("without events returns a copy of the initial state, or {}", function()
    local rules = eventstore.reducer({ n = "sum" })
    local initial = { n = 5, a = array() }
    local st = rules:fold({}, initial)
    assert_json(initial, st)
    assert.are_not.equal(initial, st)
    assert_json({}, rules:fold({}))
  end)

  it("rejects events without a type or with non-object data, naming the event", function()
    local rules = eventstore.reducer({})
    fx.raises(function() rules:fold({ { data = { a = 1 } } }) end, "event 1")
    fx.raises(function() rules:fold({ ev("A"), "x" }) end, "event 2")
    fx.raises(function() rules:fold({ ev("A"), { type = "B", data = array({ 1 }) } }) end, "object", "data")
  end)
end)

-- ---------------------------------------------------------------------------
-- The reference: the same rules folded in plain Lua, following csrc/reduce.h.

local MAXI, MINI = math.maxinteger, math.mininteger

local is_arr = is_array
local function is_obj(v) return type(v) == "table" and not is_array(v) end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  if is_array(v) then array(out) end
  return out
end

local function json_equal(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) == "number" then return mtype(a) == mtype(b) and a == b end
  if type(a) ~= "table" then return a == b end
  if is_arr(a) ~= is_arr(b) then return false end
  for k, v in pairs(a) do
    if not json_equal(v, b[k]) then return false end
  end
  for k in pairs(b) do
    if a[k] == nil then return false end
  end
  return true
end

local function ints(a, b) return mtype(a) == "integer" and mtype(b) == "integer" end

local function num_add(a, b)
  if ints(a, b) then
    local s = a + b
    if (b > 0 and s < a) or (b < 0 and s > a) then return (a + 0.0) + (b + 0.0) end
    return s
  end
  return (a + 0.0) + (b + 0.0)
end

local function num_mul(a, b)
  if ints(a, b) then
    if a == 0 or b == 0 then return 0 end
    local p = a * b
    if INT and (idiv(p, a) ~= b or (a == -1 and b == MINI) or (b == -1 and a == MINI)) then
      return (a + 0.0) * (b + 0.0)
    end
    return p
  end
  return (a + 0.0) * (b + 0.0)
end

local function finite(x)
  if x ~= x or x == math.huge or x == -math.huge then
    error("reference: not finite")
  end
  return x
end

local function own_array(st, k)
  local acc = st[k]
  if is_arr(acc) then return acc end
  local a = array()
  if acc ~= nil and acc ~= null and not (is_obj(acc) and next(acc) == nil) then a[1] = acc end
  st[k] = a
  return a
end

local function add_item(arr, v, distinct)
  if distinct then
    for _, x in ipairs(arr) do
      if json_equal(x, v) then return end
    end
  end
  arr[#arr + 1] = copy(v)
end

local function merge_into(obj, k, v)
  local cur = obj[k]
  if cur == nil or not is_obj(cur) or not is_obj(v) then
    obj[k] = copy(v)
    return
  end
  for kk, vv in pairs(v) do merge_into(cur, kk, vv) end
end

-- rule: { kind, fn, scale }; st: the state; k: the target; v: the value.
local function ref_apply(rule, st, k, v, event)
  local kind, acc = rule.kind, st[k]
  if kind == "last" then
    st[k] = copy(v)
  elseif kind == "first" then
    if acc == nil then st[k] = copy(v) end
  elseif kind == "sum" then
    assert(type(v) == "number", "reference: sum of a non-number")
    if acc == nil and not rule.scale then
      st[k] = v
    else
      local b = rule.scale and num_mul(v, rule.scale) or v
      st[k] = finite(acc == nil and b or num_add(acc, b))
    end
  elseif kind == "count" then
    st[k] = acc == nil and 1 or num_add(acc, 1)
  elseif kind == "min" or kind == "max" then
    local better
    if type(v) == "string" and not rule.scale then
      better = acc == nil or (kind == "min" and v < acc) or (kind == "max" and v > acc)
      if better then st[k] = v end
    else
      local b = rule.scale and num_mul(v, rule.scale) or v
      better = acc == nil or (kind == "min" and b < acc) or (kind == "max" and b > acc)
      if better then st[k] = finite(b) end
    end
  elseif kind == "append" or kind == "union" then
    local arr = own_array(st, k)
    if is_arr(v) then
      for _, x in ipairs(v) do add_item(arr, x, kind == "union") end
    else
      add_item(arr, v, kind == "union")
    end
  elseif kind == "merge" then
    merge_into(st, k, v)
  elseif kind == "custom" then
    st[k] = rule.fn(copy(acc), copy(v), event, k)
  else
    error("reference: unknown kind " .. tostring(kind))
  end
end

local function when_ok(rule, type)
  if not rule.when then return true end
  for _, t in ipairs(rule.when) do
    if t == type then return true end
  end
  return false
end

-- spec: { star = rule or nil, targets = { name = { rule, ... } }, types = name or nil }
-- where rule = { kind, fn, from, when, scale }.
local function ref_fold(spec, events, initial)
  local st = copy(initial or {})
  local names = {}
  for name in pairs(spec.targets) do names[#names + 1] = name end
  if spec.types then names[#names + 1] = spec.types end
  table.sort(names)
  local targeted = {}
  for _, n in ipairs(names) do targeted[n] = true end
  local star = spec.star or { kind = "last" }
  for _, e in ipairs(events) do
    if star.kind ~= "drop" and when_ok(star, e.type) then
      for k, v in pairs(e.data) do
        if not targeted[k] then ref_apply(star, st, k, v, e) end
      end
    end
    for _, name in ipairs(names) do
      if name == spec.types then
        local arr = own_array(st, name)
        arr[#arr + 1] = e.type
      else
        for _, rule in ipairs(spec.targets[name]) do
          if rule.kind ~= "drop" then
            local v = e.data[rule.from or name]
            if v ~= nil and when_ok(rule, e.type) then ref_apply(rule, st, name, v, e) end
          end
        end
      end
    end
  end
  return st
end

-- The Lua rules table for a spec (eventstore.reducer's input).
local function to_rules(spec)
  local function one(rule)
    local t = { rule.fn or rule.kind, from = rule.from, scale = rule.scale }
    if rule.when then t.when = (#rule.when == 1 and fx.random(2) == 1) and rule.when[1] or rule.when end
    return t
  end
  local rules = {}
  if spec.star then rules["*"] = spec.star.fn or one(spec.star) end
  if spec.types then rules[TYPES] = spec.types end
  for name, list in pairs(spec.targets) do
    if #list == 1 and not list[1].from and not list[1].when and not list[1].scale and fx.random(2) == 1 then
      rules[name] = list[1].fn or list[1].kind
    elseif #list == 1 and fx.random(2) == 1 then
      rules[name] = one(list[1])
    else
      local l = {}
      for i, rule in ipairs(list) do l[i] = one(rule) end
      rules[name] = l
    end
  end
  return rules
end

-- ---------------------------------------------------------------------------
-- Random rule sets and events (fixtures' seeded generator).

local R = fx.random
-- 'q"k' and "\195\169" (é) make stored JSON escape a key or hold UTF-8 bytes
local FIELDS = { "a", "b", "c", "d", "e", 'q"k', "\195\169" }
local EVENT_TYPES = { "A", "B", "C" }
local LETTERS = { "a", "b", "c", "B", "" }
local ODD_STRINGS = { 'say "hi"', "back\\slash", "line\nbreak", "tab\t", "nul\0byte", "\226\130\172uro",
  "\240\159\152\128", "\1\31" }

local function pick(list) return list[R(#list)] end

local function rand_int()
  local r = INT and R(20) or 20
  if r == 1 then return MAXI - R(0, 50) end
  if r == 2 then return MINI + R(0, 50) end
  if r == 3 then return TWO53 + R(-3, 3) end
  return R(-50, 50)
end

local function rand_float()
  return R(-400, 400) + pick({ 0.25, 0.5, 0.75, 0.1, 1 / 3 })
end

local function rand_str()
  local n = R(0, 3)
  local parts = {}
  for i = 1, n do parts[i] = pick(LETTERS) end
  return table.concat(parts)
end

local function rand_any(depth)
  local r = R(depth > 1 and 7 or 9)
  if r == 1 then return null end
  if r == 2 then return R(2) == 1 end
  if r == 3 then return R(-3, 3) end
  if r == 4 then return rand_float() end
  if r == 5 then return R(4) == 1 and pick(ODD_STRINGS) or rand_str() end
  if r == 6 or r == 7 then return pick({ "x", "y", 1, 2 }) end
  if r == 8 then
    local a = array()
    for i = 1, R(0, 3) do a[i] = rand_any(depth + 1) end
    return a
  end
  local o = {}
  for _ = 1, R(0, 3) do o[pick({ "p", "q", "r" })] = rand_any(depth + 1) end
  return o
end

local CLASS_VALUE = {
  int = rand_int,
  num = function() return R(3) == 1 and rand_float() or rand_int() end,
  str = rand_str,
  any = function() return rand_any(1) end,
}

-- Custom functions: pure, and each keeps its own kind of accumulator.
local CUSTOM = {
  function(acc) return (acc or 0) + 1 end,
  function(acc, _, e, field) return (acc or "") .. e.type .. field end,
  function(acc, v) if v == false then return nil end return acc == nil and array({ v }) or v end,
  -- for "*": the field name it gets from state() is wrong (see the report)
  function(acc, v, e) return (acc or "") .. e.type .. (type(v) == "number" and "n" or "x") end,
}

-- Kinds per target group (a target's rules all keep one kind of accumulator).
local GROUP_KINDS = {
  num = { "sum", "count", "min", "max", "last", "first" },
  str = { "min", "max", "last", "first" },
  any = { "last", "first", "append", "union", "merge" },
}

local function rand_when()
  if R(3) > 1 then return nil end
  local w = {}
  for _, t in ipairs(EVENT_TYPES) do
    if R(2) == 1 then w[#w + 1] = t end
  end
  if #w == 0 then w[1] = pick(EVENT_TYPES) end
  return w
end

local function rand_spec()
  local class = {}
  for _, f in ipairs(FIELDS) do class[f] = pick({ "int", "num", "str", "any" }) end
  local function sources(want)
    local out = {}
    for _, f in ipairs(FIELDS) do
      if want == "any" or class[f] == want or (want == "num" and class[f] == "int") then out[#out + 1] = f end
    end
    return out
  end
  local spec = { targets = {}, class = class }
  local targets = { "a", "b", "c", "d", "e", 'q"k', "\195\169", "t1", "t2" }
  for _, name in ipairs(targets) do
    if R(5) <= 3 then
      local group = pick({ "num", "str", "any", "custom", "drop" })
      if group == "drop" then
        spec.targets[name] = { { kind = "drop" } }
      elseif group == "custom" then
        local fn = CUSTOM[R(3)]
        local list = {}
        for i = 1, R(2) do
          local from = pick(FIELDS)
          list[i] = { kind = "custom", fn = fn, from = from ~= name and from or nil, when = rand_when() }
        end
        spec.targets[name] = list
      else
        local list = {}
        for i = 1, R(3) do
          local kind = pick(GROUP_KINDS[group])
          local srcs = sources(kind == "count" and "any" or group)
          if #srcs == 0 then break end
          local own = false
          for _, f in ipairs(srcs) do own = own or f == name end
          local from = (own and R(4) > 1) and name or pick(srcs)
          local rule = { kind = kind, from = from ~= name and from or nil, when = rand_when() }
          if group == "num" and (kind == "sum" or kind == "min" or kind == "max") and R(3) == 1 then
            rule.scale = pick({ -1, 2, -3, 0.5 })
          end
          list[i] = rule
        end
        if #list > 0 then spec.targets[name] = list end
      end
      spec.group = spec.group or {}
      spec.group[name] = group
    end
  end
  if R(3) == 1 then spec.types = "ty" end
  local r = R(8)
  if r == 1 then spec.star = { kind = "drop" }
  elseif r == 2 then spec.star = { kind = "first", when = rand_when() }
  elseif r == 3 then spec.star = { kind = "append", when = rand_when() }
  elseif r == 4 then spec.star = { kind = "union" }
  elseif r == 5 then spec.star = { kind = "merge", when = rand_when() }
  elseif r == 6 then spec.star = { kind = "custom", fn = CUSTOM[4] }
  elseif r == 7 then spec.star = { kind = "last", when = rand_when() }
  end
  return spec
end

local function rand_events(spec, n)
  local events = {}
  for i = 1, n do
    local data = {}
    for _, f in ipairs(FIELDS) do
      if R(5) <= 3 then data[f] = CLASS_VALUE[spec.class[f]]() end
    end
    events[i] = { type = pick(EVENT_TYPES), data = data }
  end
  return events
end

-- An initial state whose values suit each target's rules.
local function rand_initial(spec)
  if R(3) > 1 then return nil end
  local init = {}
  for name, group in pairs(spec.group or {}) do
    if spec.targets[name] and R(2) == 1 then
      if group == "num" then init[name] = R(-5, 5)
      elseif group == "str" then init[name] = rand_str()
      elseif group == "any" then init[name] = rand_any(2)
      end
    end
  end
  init.z = "kept"
  return init
end

-- A readable dump for failure messages.
local function show(v, seen)
  seen = seen or {}
  if v == null then return "null" end
  if v == TYPES then return "TYPES" end
  if type(v) == "function" then
    for i, f in ipairs(CUSTOM) do
      if f == v then return "CUSTOM[" .. i .. "]" end
    end
    return "fn"
  end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = show(k) .. "=" .. show(v[k], seen) end
  return (is_array(v) and "[" or "{") .. table.concat(parts, ",") .. (is_array(v) and "]" or "}")
end

describe("reducer against a plain-Lua reference fold", function()
  it("folds 1,500 random event sequences with random rule sets exactly as the reference", function()
    fx.reseed(fx.seed + 1)
    local compared, nonempty = 0, 0
    for i = 1, 1500 do
      local spec = rand_spec()
      local rules_tab = to_rules(spec)
      local rules = eventstore.reducer(rules_tab)
      local events = rand_events(spec, R(0, 25))
      local initial = rand_initial(spec)
      local function context()
        return string.format("sequence %d (seed %d)\nrules %s\ninitial %s\nevents %s", i, fx.seed,
          show(rules_tab), show(initial), show(events))
      end
      local ok_ref, want = pcall(ref_fold, spec, events, initial)
      local ok_c, got = pcall(rules.fold, rules, events, initial)
      if not ok_ref then error(context() .. "\nreference failed: " .. tostring(want)) end
      if not ok_c then error(context() .. "\nC fold failed: " .. tostring(got)) end
      assert_json(want, got, context)
      compared = compared + 1
      if next(got) ~= nil then nonempty = nonempty + 1 end
    end
    assert.equals(1500, compared)
    assert.is_true(nonempty > 1000)
  end)

  it("the reference catches a wrong result (it is not vacuous)", function()
    local spec = { targets = { n = { { kind = "sum" } } } }
    local events = { ev("A", { n = 1 }), ev("A", { n = 2 }) }
    local want = ref_fold(spec, events)
    assert_json({ n = 3 }, want)
    assert.is_false(same_json(want, fold({ n = "max" }, events)))
    if INT then assert.is_false(same_json({ n = 3.0 }, want)) end
    assert.is_false(same_json({ n = array() }, { n = {} }))
  end)
end)

for _, b in ipairs(backends.list) do
  describe("reducer state() with and without snapshots on " .. b.name, function()
    if b.pending then
      pending(b.pending)
      return
    end

    local store, path, plain, plain_path

    before_each(function()
      store, path = backends.open(b, { snapshot_every = 3 })
      plain, plain_path = backends.open(b, { snapshot_every = 0 })
    end)

    after_each(function()
      if store then store:close() end
      if plain then plain:close() end
      backends.remove(path)
      backends.remove(plain_path)
      store, path, plain, plain_path = nil, nil, nil, nil
    end)

    it("gives the state of fold and of the reference, with snapshots made along the way", function()
      fx.reseed(fx.seed + 2)
      local rounds = b.file and 20 or 40
      local snapshotted = 0
      for i = 1, rounds do
        local spec = rand_spec()
        local rules_tab = to_rules(spec)
        local rules = eventstore.reducer(rules_tab)
        local initial = rand_initial(spec)
        local opts = initial and { initial = initial } or nil
        local s, s_plain = fx.stream(), fx.stream()
        local all = {}
        for _ = 1, R(1, 5) do
          local chunk = rand_events(spec, R(1, 6))
          assert(store:append(s, chunk))
          assert(plain:append(s_plain, chunk))
          for _, e in ipairs(chunk) do all[#all + 1] = e end
          local function context(what)
            return function()
              return string.format("round %d (seed %d)\nrules %s\ninitial %s\nevents %s\n%s", i, fx.seed,
                show(rules_tab), show(initial), show(all), what)
            end
          end
          local st, rev = store:state(s, rules, opts)
          assert.equals(#all, rev)
          local st_plain, rev_plain = plain:state(s_plain, rules, opts)
          assert.equals(#all, rev_plain)
          assert_json(st_plain, st, context("with snapshots"))
          assert_json(rules:fold(all, initial), st_plain, context("fold"))
          assert_json(ref_fold(spec, all, initial), st, context("reference"))
        end
        if store:snapshot(s) then snapshotted = snapshotted + 1 end
        assert.is_nil(plain:snapshot(s_plain))
      end
      assert.is_true(snapshotted >= math.floor(rounds / 2), "too few streams got a snapshot: " .. snapshotted)
    end)

    it("folds stored events of every shape as fold does: escaped and UTF-8 keys, many members, deep values", function()
      local s = fx.stream()
      local wide = { plain = 1 }
      for i = 1, 40 do wide["k" .. i] = i end
      local events = {
        ev("A", wide),
        ev("B", { ['q"uote'] = 1, ["a\\b"] = 2, ["\n"] = "nl", ["\195\169t\195\169"] = "ete", plain = 2,
          deep = { a = { b = { c = array({ 1, { d = "e" } }) } } }, esc = "tab\tquote\"\0nul" }),
        ev("C", { plain = 0.5, n = -0.25, e = 1e300, small = 5e-324, u = "\226\130\172", t = true, f = false,
          z = null, empty = {}, none = array() }),
        ev("D", {}),
        ev("E", { ['q"uote'] = 10, plain = 3, deep = { a = { x = 1 } } }),
      }
      assert(store:append(s, events))
      local rules = eventstore.reducer({
        ['q"uote'] = "sum", plain = "sum", deep = "merge", ["\195\169t\195\169"] = "append",
        k40 = "max", [TYPES] = "types",
      })
      local st, rev = store:state(s, rules)
      assert.equals(5, rev)
      assert_json(rules:fold(events), st)
      assert.equals(11, st['q"uote'])
      assert.equals(6.5, st.plain)
      assert.equals("tab\tquote\"\0nul", st.esc)
      assert_json({ a = { b = { c = array({ 1, { d = "e" } }) }, x = 1 } }, st.deep)
      assert_json(array({ "A", "B", "C", "D", "E" }), st.types)
      -- the "*" rule copies every other member, as fold does
      assert.equals(40, st.k40)
      assert.equals(39, st.k39)
      assert.equals(5e-324, st.small)
      assert.equals(null, st.z)
      assert.is_true(eventstore.is_array(st.none))
      assert.is_false(eventstore.is_array(st.empty))
    end)

    it("a Lua function that raises inside state() leaves the store usable, time after time", function()
      local s = fx.stream()
      assert(store:append(s, { ev("A", { v = 1 }), ev("A", { v = 2 }), ev("A", { v = 3 }) }))
      local rules = eventstore.reducer({ v = function(acc, v)
        if v == 2 then error({ stop = v }) end
        return (acc or 0) + v
      end })
      for i = 1, 30 do
        local ok, err = pcall(store.state, store, s, rules)
        assert.is_false(ok)
        assert.same({ stop = 2 }, err)
        assert(store:append(s, ev("B", { w = i })))
      end
      assert.is_nil(store:snapshot(s))
      local st, rev = store:state(s, eventstore.reducer({ w = "count", v = "sum" }))
      assert.same({ w = 30, v = 6 }, st)
      assert.equals(33, rev)
    end)

    it("gives Lua function rules the stored event: id, stream, revision, position, type, data, metadata", function()
      local s = fx.stream()
      local res = assert(store:append(s, {
        { type = "A", data = { v = 1, other = "x" }, metadata = { correlation_id = "c-1" } },
        { type = "B", data = { w = 2 } },
        { type = "C", data = { v = 3 } },
      }))
      local seen = {}
      local rules = eventstore.reducer({
        v = function(acc, v, e, field)
          seen[#seen + 1] = { id = e.id, stream = e.stream, revision = e.revision, position = e.position,
            type = e.type, data = e.data, metadata = e.metadata, field = field, ts = type(e.timestamp) }
          return (acc or 0) + v
        end,
      })
      local st = store:state(s, rules)
      assert.equals(4, st.v)
      assert.equals(2, #seen)
      local first, third = res.events[1], res.events[3]
      assert.same({ id = first.id, stream = s, revision = 1, position = first.position, type = "A",
        data = { v = 1, other = "x" }, metadata = { correlation_id = "c-1" }, field = "v", ts = "number" }, seen[1])
      assert.same({ id = third.id, stream = s, revision = 3, position = third.position, type = "C",
        data = { v = 3 }, metadata = {}, field = "v", ts = "number" }, seen[2])
    end)
  end)
end
