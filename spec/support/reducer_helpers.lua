-- reducer_helpers: what the reducer specs share: JSON-exact comparison,
-- integer checks that work on every Lua, a one-shot fold
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
-- busted gives spec files these as globals, but not the modules they require
local busted = require("busted")
local assert = require("luassert")
local it, pending = busted.it, busted.pending

local M = {}

-- A table is a JSON array when marked (eventstore.array; the store marks the
-- empty arrays it returns) or when it has the keys 1..n; else an object.
function M.is_array(v)
  return type(v) == "table" and (eventstore.is_array(v) or (next(v) ~= nil and v[1] ~= nil))
end

function M.ev(type, data) return { type = type, data = data or {} } end

-- Written in Lua 5.1 syntax: the specs also run under LuaJIT/5.1, where every
-- number is a double. What needs 64-bit integers (math.type, past 2^53) runs
-- on 5.3+ only and is pending elsewhere.
M.INT = fx.has_integers
-- On 5.1 the binding stores an integral number as a JSON integer: the
-- reference then treats it as one.
M.mtype = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return x == math.floor(x) and "integer" or "float"
end
M.it_int = M.INT and it or function(name)
  pending(name .. " (needs 64-bit integers, " .. _VERSION .. " here)")
end
-- 5.3 operators compiled only where they parse
M.idiv = M.INT and load("return function(a, b) return a // b end")() or nil
M.TWO53 = M.INT and math.tointeger(2 ^ 53) or 2 ^ 53

function M.assert_integer(x)
  assert(fx.is_integer(x), tostring(x) .. " is not an integer")
end
function M.assert_float(x)
  assert.is_number(x)
  if M.INT then assert.equals("float", math.type(x)) end
end

function M.fold(rules, events, initial)
  return eventstore.reducer(rules):fold(events, initial)
end

-- Deep equality that also requires the same math.type, float bits and
-- array marks (an empty array is not an empty object).
function M.same_json(a, b, path)
  path = path or "state"
  if type(a) == "table" and type(b) == "table" and M.is_array(a) ~= M.is_array(b) then
    return false, path .. ": array expected to be " .. tostring(M.is_array(a))
  end
  if type(a) == "table" and type(b) == "table" then
    for k, v in pairs(a) do
      local ok, where = M.same_json(v, b[k], path .. "." .. tostring(k))
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
function M.assert_json(expected, actual, context)
  local ok, where = M.same_json(expected, actual)
  if ok then return end
  if type(context) == "function" then context = context() end
  error((context and context .. ": " or "") .. where, 2)
end


return M
