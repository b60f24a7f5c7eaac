-- reducer: eventstore.reducer rules compiled into C, rules:fold, fingerprints
-- (the random checks against a plain-Lua reference fold: reducer_random_spec)
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local TYPES, array, null = eventstore.TYPES, eventstore.array, eventstore.null

local h = require("spec.support.reducer_helpers")
local ev, it_int, TWO53 = h.ev, h.it_int, h.TWO53
local assert_integer, assert_float, fold, assert_json = h.assert_integer, h.assert_float, h.fold, h.assert_json

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

  it("fold names the event whose data cannot be folded", function()
    local r = eventstore.reducer({ n = "sum" })
    fx.raises(function() r:fold({ ev("A", { n = 1 }), { type = "A", data = "text" } }) end,
      "fold: event 2 data must be a table, got string")
    fx.raises(function() r:fold({ ev("A", { n = 1 }), ev("A", { n = 2 }), ev("A", { 1, 2 }) }) end,
      "fold: event 3 data must be an object, not an array")
    fx.raises(function() r:fold({ ev("A", { n = 1 }), ev("A", { n = { [true] = 1 } }) }) end, "fold: event 2 data")
    assert.equals(3, r:fold({ ev("A", { n = 1 }), { type = "A" }, ev("A", { n = 2 }) }).n)
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

  it("may run the collector while state() folds, with initial and where held", function()
    local store = assert(eventstore.open("memory:"))
    local evs = { ev("A", { n = 1, k = "x" }), ev("A", { n = 2, k = "x" }), ev("A", { n = 4, k = "y" }) }
    assert(store:append("gc-1", evs))
    local rules = eventstore.reducer({
      n = function(acc, v)
        collectgarbage()
        collectgarbage()
        return (acc or 0) + v
      end,
    })
    local st = store:state("gc-1", rules, { initial = { n = 10, note = string.rep("z", 100) } })
    assert.equals(17, st.n)
    assert.equals(string.rep("z", 100), st.note)
    st = store:state({ category = "gc", where = { k = "x" } }, rules, { initial = { n = 100 } })
    assert.equals(103, st.n)
    store:close()
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
