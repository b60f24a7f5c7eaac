-- fold_tables_spec: rules:fold over Lua tables member by member
-- (csrc/lua_reducer.c fold_members): values no rule reads are only checked,
-- plain sums are added in place and "*" = last values wait until the end.
-- Every result is compared with the whole-table conversion, which rules:fold
-- still takes for data with a metatable, and with folding one event per call.
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local h = require("spec.support.reducer_helpers")

-- A copy of events whose data go the whole-table way (a metatable on data).
local function converted_whole(events)
  local out = {}
  for i, ev in ipairs(events) do
    local data = ev.data
    if type(data) == "table" and getmetatable(data) == nil then
      local copy = {}
      for k, v in pairs(data) do copy[k] = v end
      data = setmetatable(copy, {})
    end
    out[i] = { type = ev.type, data = data }
  end
  return out
end

-- The same events folded one per call: nothing waits from one to the next.
local function one_by_one(rules, events, initial)
  local st = initial or {}
  for _, ev in ipairs(events) do st = rules:fold({ ev }, st) end
  return st
end

local function agree(rules_tab, events, initial)
  local rules = eventstore.reducer(rules_tab)
  local st = rules:fold(events, initial)
  h.assert_json(rules:fold(converted_whole(events), initial), st, "against the whole-table conversion")
  h.assert_json(one_by_one(rules, events, initial), st, "against one event per call")
  return st
end

local RULES = {
  { ["*"] = "last", qty = "sum" },
  { ["*"] = "last" },
  { ["*"] = { "last", when = { "A" } }, qty = "sum" },
  { ["*"] = "last", x = "max", total = { "sum", from = "qty" } },
  { qty = "sum", x = "last", [eventstore.TYPES] = "history" },
  { ["*"] = "first", qty = "count" },
}

-- A small deterministic generator (the same events on every Lua).
local function rng(seed)
  local s = seed
  return function(n)
    s = (s * 1103515245 + 12345) % 2147483648
    return s % n + 1
  end
end

-- The names differ from seed to seed, so that each seed iterates its
-- tables in another order (a name past the 24 bytes the memo keeps too).
local function names_of(r)
  local keys = { "qty", "x", "total" }
  for _ = 1, 4 do keys[#keys + 1] = "f" .. r(60) end
  keys[#keys + 1] = string.rep("long", 6 + r(4)) .. r(9)
  return keys
end

local function value(r)
  local k = r(9)
  if k == 1 then return r(100) - 50 end
  if k == 2 then return (r(1000) - 500) / 8 end
  if k == 3 then return r(2) == 1 end
  if k == 4 then return { r(5), "n" .. r(9) } end
  if k == 5 then return { deep = { v = r(7) } } end
  if k == 6 then return eventstore.null end
  return "s" .. r(1000)
end

local function events_of(seed, n)
  local r, evs = rng(seed), {}
  local KEYS = names_of(r)
  for i = 1, n do
    local data
    local shape = r(20)
    if shape == 1 then
      data = nil
    elseif shape == 2 then
      data = {}
    else
      data = {}
      -- keys in a different order from event to event, some left out
      local start = r(#KEYS)
      for j = 0, #KEYS - 1 do
        local key = KEYS[(start + j - 1) % #KEYS + 1]
        if r(4) > 1 then data[key] = key == "qty" and r(9) or value(r) end
      end
      if shape == 3 then data = setmetatable(data, {}) end
    end
    evs[i] = { type = r(3) == 1 and "A" or "B", data = data }
  end
  return evs
end

describe("rules:fold over Lua tables", function()
  it("agrees with the whole-table conversion for random events and rules", function()
    for seed = 1, 100 do
      local evs = events_of(seed, 60)
      for _, rules_tab in ipairs(RULES) do
        local rules = eventstore.reducer(rules_tab)
        -- a string for a sum or a null for max fails alike on both paths
        local ok = pcall(rules.fold, rules, evs)
        if ok then
          agree(rules_tab, evs)
        else
          local _, err = pcall(rules.fold, rules, evs)
          local ok2, err2 = pcall(rules.fold, rules, converted_whole(evs))
          assert.is_false(ok2, "only the member path failed: " .. tostring(err))
          assert.equals(err2, err)
        end
      end
    end
  end)

  it("keeps the newest \"*\" = last value when its type or place changes", function()
    local evs = {
      { type = "T", data = { a = "one", b = 1 } },
      { type = "T", data = { a = "two", b = 2 } },     -- a waits
      { type = "T", data = { b = 3, a = 3.5 } },       -- other place, other kind
      { type = "T", data = { a = { t = 1 } } },        -- a table replaces the waiting value
      { type = "T", data = { a = true } },
      { type = "T", data = setmetatable({ a = "whole" }, {}) },   -- the whole-table way
      { type = "T", data = { a = "last", b = 4 } },
      { type = "T", data = { b = 5 } },                -- a not there: stays
    }
    local st = agree({ ["*"] = "last" }, evs, { a = "initial", c = 1 })
    assert.same({ a = "last", b = 5, c = 1 }, st)
    st = agree({ ["*"] = "last" }, { evs[1], evs[2], evs[3], evs[4] })
    assert.same({ a = { t = 1 }, b = 3 }, st)
  end)

  it("a name that moves to another place after a long name took its place", function()
    -- the order pairs() gives depends on the names (and on 5.4 on the Lua
    -- state's hash seed): find a long name that comes before a short one
    -- in a table of the two
    local long, k
    for m = 1, 100 do
      for n = 1, 100 do
        local name = string.rep("long", 8) .. n
        if next({ [name] = 1, ["k" .. m] = "x" }) == name then
          long, k = name, "k" .. m
          break
        end
      end
      if long then break end
    end
    assert.truthy(long)
    local evs = {
      { type = "T", data = { [k] = "v0" } },             -- k at the first place
      { type = "T", data = { [k] = "v1" } },             -- waits there
      { type = "T", data = { [long] = 1, [k] = "v2" } }, -- the long name first, k second (waits there)
      { type = "T", data = { [k] = "v3" } },             -- k first again: the newest
    }
    assert.equals("v3", agree({ ["*"] = "last" }, evs)[k])
  end)

  it("sums integers in place and turns to a real when one comes", function()
    local evs = {}
    for i = 1, 30 do evs[i] = { type = "T", data = { qty = i % 7 == 0 and 0.5 or i, n = "x" .. i } } end
    local st = agree({ ["*"] = "last", qty = "sum" }, evs, { qty = 100 })
    assert.equals(100 + 465 - (7 + 14 + 21 + 28) + 2, st.qty)
    h.assert_float(st.qty)
    assert.equals("x30", st.n)
  end)

  it("many members, long names and more members than the memo holds", function()
    local evs = {}
    for i = 1, 20 do
      local data = {}
      for k = 1, 100 do
        data[(k % 3 == 0 and string.rep("name", 10) or "m") .. k] = (k > 1 and (i + k) % 5 == 0) and "s" .. i or i * k
      end
      evs[i] = { type = "T", data = data }
    end
    local st = agree({ ["*"] = "last", m1 = "sum" }, evs)
    assert.equals(210, st.m1)
    assert.equals(20 * 98, st.m98)
    assert.equals("s20", st.m100)
  end)

  it("a Lua function rule that changes the events as they are folded", function()
    local evs = {}
    for i = 1, 10 do evs[i] = { type = "T", data = { s = "v" .. i, n = i } } end
    local rules = eventstore.reducer({
      ["*"] = "last",
      n = function(acc, v, ev)
        ev.data.s = nil                      -- the next events lose s too
        for j = 1, #evs do evs[j].data.s = nil end
        collectgarbage()
        return (acc or 0) + v
      end,
    })
    local st = rules:fold(evs)
    assert.equals(55, st.n)
    assert.equals("v1", st.s)                -- only the first event still had it
  end)

  it("events whose type and data come from __index, made anew on each access", function()
    local evs = {}
    for i = 1, 20 do
      evs[i] = setmetatable({}, { __index = function(_, k)
        collectgarbage()
        if k == "type" then return "Type" .. string.rep("-", 60) .. (i % 2) end
        if k == "data" then return { n = i, s = string.rep("v", 50) .. i } end
      end })
    end
    local st = eventstore.reducer({ ["*"] = "last", n = "sum",
                                    [eventstore.TYPES] = "history" }):fold(evs)
    assert.equals(210, st.n)
    assert.equals(string.rep("v", 50) .. 20, st.s)
    assert.equals(20, #st.history)
  end)

  it("an empty event list, {} and nil data", function()
    assert.same({ q = 1 }, agree({ ["*"] = "last" }, {}, { q = 1 }))
    local st = agree({ [eventstore.TYPES] = "history", qty = "count" },
      { { type = "A", data = {} }, { type = "B" }, { type = "C", data = { qty = 1 } } })
    assert.same({ "A", "B", "C" }, st.history)
  end)
end)

describe("rules:fold over Lua tables: bad values", function()
  local function same_error(rules_tab, evs)
    local rules = eventstore.reducer(rules_tab)
    local ok, err = pcall(rules.fold, rules, evs)
    local ok2, err2 = pcall(rules.fold, rules, converted_whole(evs))
    assert.is_false(ok)
    assert.is_false(ok2)
    assert.equals(err2, err)
    return err
  end

  it("checks values no rule reads", function()
    local err = same_error({ a = "sum" }, { { type = "T", data = { a = 1 } },
                                            { type = "T", data = { a = 1, z = 0 / 0 } } })
    assert.truthy(err:find("fold: event 2 data.z: NaN cannot be stored", 1, true), err)
    err = same_error({ a = "sum" }, { { type = "T", data = { z = { deep = { print } } } } })
    assert.truthy(err:find("event 1 data.z.deep[1]: cannot store a function", 1, true), err)
  end)

  it("checks a value that would wait", function()
    local err = same_error({ ["*"] = "last" }, { { type = "T", data = { v = 1 } },
                                                 { type = "T", data = { v = 1 / 0 } } })
    assert.truthy(err:find("event 2 data.v: infinity cannot be stored", 1, true), err)
    err = same_error({ ["*"] = "last" }, { { type = "T", data = { v = "a" } }, { type = "T", data = { v = "\255" } } })
    assert.truthy(err:find("event 2 data.v: string is not valid UTF-8", 1, true), err)
  end)

  it("checks keys, and a key checked once is checked again in another event", function()
    local err = same_error({ ["*"] = "last" }, { { type = "T", data = { ["k\255"] = 1 } } })
    assert.truthy(err:find("key is not valid UTF-8", 1, true), err)
    err = same_error({ ["*"] = "last" }, { { type = "T", data = { k = 1 } }, { type = "T", data = { ["k\0"] = 1 } } })
    assert.truthy(err:find("key contains a NUL byte", 1, true), err)
  end)

  it("raises for a table that mixes keys and for an array, as the conversion does", function()
    local mixed = { a = 1 }
    mixed[100] = 2
    same_error({ ["*"] = "last" }, { { type = "T", data = { a = 0 } }, { type = "T", data = mixed } })
    same_error({ ["*"] = "last" }, { { type = "T", data = { 1, 2 } } })
    local rules = eventstore.reducer({ ["*"] = "last" })
    fx.raises(function() rules:fold({ { type = "T", data = 5 } }) end, "must be a table")
  end)

  it("names the member after one nested past the path's first 32 levels", function()
    local deep = {}
    local t = deep
    for _ = 1, 40 do
      t.d = {}
      t = t.d
    end
    -- a table whose deep member comes first in pairs() (the order depends
    -- on the Lua state's hash seed)
    local data, bad
    for n = 1, 1000 do
      data, bad = { ["a" .. n] = deep }, "k" .. n
      data[bad] = 0 / 0
      if next(data) ~= bad then break end
    end
    assert.are_not.equal(bad, next(data))
    local want = "data." .. bad .. ": NaN cannot be stored"
    local err = same_error({ ["*"] = "last" }, { { type = "T", data = data } })
    assert.truthy(err:find(want, 1, true), err)
    local store = eventstore.open("memory:")
    local _, err2 = pcall(store.append, store, "s-1", { type = "T", data = data })
    store:close()
    assert.truthy(tostring(err2):find(want, 1, true), tostring(err2))
  end)

  it("folds again after an error, with a reducer of many fields", function()
    local rules_tab = { ["*"] = "last" }
    for k = 1, 40 do rules_tab["f" .. k] = "sum" end
    local rules = eventstore.reducer(rules_tab)
    local bad = { f1 = 1, f2 = 2, z = 0 / 0 }
    for _ = 1, 50 do
      assert.is_false(pcall(rules.fold, rules, { { type = "T", data = { f1 = 1 } }, { type = "T", data = bad } }))
    end
    collectgarbage()
    assert.same({ f1 = 2, f2 = 2, s = "x" }, rules:fold({ { type = "T", data = { f1 = 1, s = "x" } },
                                                        { type = "T", data = { f1 = 1, f2 = 2 } } }))
  end)
end)
