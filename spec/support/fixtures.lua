-- fixtures: shared builders and assertions for the eventstore specs
-- SPDX-License-Identifier: MIT
--
-- Randomness is seeded (EVENTSTORE_SEED, default 20261128) and comes from a
-- private generator, so a run can be replayed and busted's own use of
-- math.random does not shift it. Names are unique per run and per call: a
-- run token (time, clock and an address) keeps them apart between runs that
-- share one PostgreSQL database.
--
-- Written in Lua 5.1 syntax (no <close>, bitwise operators or //) so that the
-- specs run under Lua 5.1, LuaJIT, 5.3 and 5.4 (STYLE.md, binding rule 9).
local M = {}

M.seed = tonumber(os.getenv("EVENTSTORE_SEED") or "") or 20261128
M.lua54 = _VERSION == "Lua 5.4"
M.has_integers = math.type ~= nil
M.unpack = table.unpack or unpack -- luacheck: ignore 113

-- Park-Miller minimal standard generator: exact in doubles, so the same
-- sequence on every Lua.
local MODULUS = 2147483647
local state
function M.reseed(seed)
  state = seed % MODULUS
  if state == 0 then state = 1 end
end
M.reseed(M.seed)

-- random(n): integer in 1..n; random(m, n): integer in m..n.
function M.random(m, n)
  if not n then m, n = 1, m end
  state = (state * 16807) % MODULUS
  return m + state % (n - m + 1)
end

-- The interpreter running the specs, for child processes.
function M.interpreter()
  if rawget(_G, "jit") then return "luajit" end
  return ({ ["Lua 5.1"] = "lua5.1", ["Lua 5.3"] = "lua5.3" })[_VERSION] or "lua5.4"
end

-- An integer in the sense of the running Lua: math.type "integer" on 5.3+,
-- an integral number on 5.1/LuaJIT.
function M.is_integer(x)
  if M.has_integers then return math.type(x) == "integer" end
  return type(x) == "number" and x == math.floor(x)
end

-- UTF-8 encoding of a code point (utf8.char is 5.3+).
function M.utf8char(cp)
  if cp < 0x80 then return string.char(cp) end
  if cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  end
  if cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

local function run_token()
  local addr = tostring({}):match("0x(%x+)") or "0"
  local mix = os.time() * 1000003 + math.floor(os.clock() * 1e6) + tonumber(addr:sub(-8), 16)
  return string.format("%08x", mix % 4294967296)
end

M.token = run_token()
local counter = 0

-- A unique name made of letters, digits and '_' (no '-'), usable as a
-- category, an event type or a key.
function M.name(prefix)
  counter = counter + 1
  return string.format("%s_%s%04d", prefix or "t", M.token, counter)
end

-- A unique category (no '-').
function M.category(prefix)
  return M.name(prefix or "cat")
end

-- A unique stream name "<category>-<n>"; its category is unique too unless
-- one is given.
function M.stream(prefix)
  counter = counter + 1
  local cat = prefix or M.category("s")
  return string.format("%s-%d%s", cat, counter, M.token)
end

-- event(type, data, extra): a new event table; extra fields (id, metadata)
-- are copied in.
function M.event(type, data, extra)
  local ev = { type = type or "Happened", data = data }
  if extra then
    for k, v in pairs(extra) do ev[k] = v end
  end
  return ev
end

-- events(n, type, make_data): a list of n events; data = make_data(i) or { i = i }.
function M.events(n, type, make_data)
  local list = {}
  for i = 1, n do
    list[i] = M.event(type or "Counted", make_data and make_data(i) or { i = i })
  end
  return list
end

-- A random printable ASCII string of n bytes.
function M.text(n)
  local parts = {}
  for i = 1, n do parts[i] = string.char(M.random(32, 126)) end
  return table.concat(parts)
end

-- Every program error is a string; returns it lowercased, failing the test
-- when fn does not raise.
function M.error_of(fn)
  local ok, msg = pcall(fn)
  assert(not ok, "expected an error, the call succeeded")
  assert(type(msg) == "string", "expected a string error, got " .. type(msg))
  return msg:lower()
end

-- raises(fn, pattern, ...): fn raises a string error that matches (case
-- insensitively) at least one of the Lua patterns given.
function M.raises(fn, ...)
  local patterns = { ... }
  local msg = M.error_of(fn)
  for _, p in ipairs(patterns) do
    if msg:find(p:lower()) then return msg end
  end
  error(string.format("error %q matches none of: %s", msg, table.concat(patterns, ", ")), 2)
end

-- fails(res, err, code): the call returned nil, err with that err.code.
function M.fails(code, res, err)
  assert(res == nil, "expected nil, err; the call succeeded")
  assert(type(err) == "table", "expected an error table, got " .. type(err))
  assert(err.code == code, string.format("expected code %q, got %q (%s)", code, tostring(err.code),
    tostring(err.message)))
  return err
end

-- Bytes of a file or nil when it does not exist.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- The bytes that make up a SQLite database: the main file and its WAL
-- (the -shm index changes on reads, so it is not part of the content).
function M.sqlite_bytes(path)
  return { db = M.read_file(path), wal = M.read_file(path .. "-wal") }
end

-- Whole-store picture for "unchanged" checks on a private store.
function M.picture(store)
  return { stats = store:stats(), all = store:read_all() }
end

-- Positions / revisions / types / streams of a list of events.
local function field(list, name)
  local out = {}
  for i, ev in ipairs(list) do out[i] = ev[name] end
  return out
end
function M.revisions(list) return field(list, "revision") end
function M.positions(list) return field(list, "position") end
function M.types(list) return field(list, "type") end
function M.streams_of(list) return field(list, "stream") end
function M.ids(list) return field(list, "id") end

-- Only the events of the given streams (a set or a list of names): read_all
-- on a shared PostgreSQL database also sees other writers.
function M.only(list, streams)
  local set = {}
  for k, v in pairs(streams) do
    if type(k) == "number" then set[v] = true else set[k] = v end
  end
  local out = {}
  for _, ev in ipairs(list) do
    if set[ev.stream] then out[#out + 1] = ev end
  end
  return out
end

function M.strictly_increasing(list)
  for i = 2, #list do
    if list[i] <= list[i - 1] then return false end
  end
  return true
end

function M.range(a, b, step)
  local out = {}
  for i = a, b, step or 1 do out[#out + 1] = i end
  return out
end

-- A sorted copy of a list (for set-like comparisons).
function M.sorted(list)
  local copy = {}
  for i, v in ipairs(list) do copy[i] = v end
  table.sort(copy)
  return copy
end

local function keyname(k)
  if type(k) == "string" then return string.format("%q", k) end
  return tostring(k)
end

-- A number as text that shows every bit and the sign of zero.
local function numtext(x)
  local kind = M.has_integers and math.type(x) or "number"
  local text = kind == "integer" and tostring(x) or string.format("%.17g", x)
  if x == 0 and 1 / x < 0 then text = "-" .. text:gsub("^%-", "") end
  return kind .. " " .. text
end

-- exactly(a, b): deep equality that also compares math.type (5.3+) and every
-- bit of a float (so 3 ~= 3.0 on 5.3+, and 0.0 ~= -0.0 everywhere). Returns
-- true, or false and the path of the first difference.
function M.exactly(a, b, path)
  path = path or "value"
  if type(a) ~= type(b) then
    return false, string.format("%s: %s expected, got %s", path, type(a), type(b))
  end
  if type(a) == "number" then
    local ta, tb = numtext(a), numtext(b)
    if ta ~= tb or a ~= b then return false, string.format("%s: %s expected, got %s", path, ta, tb) end
    return true
  end
  if type(a) == "table" then
    for k, v in pairs(a) do
      local ok, where = M.exactly(v, b[k], path .. "[" .. keyname(k) .. "]")
      if not ok then return false, where end
    end
    for k in pairs(b) do
      if a[k] == nil then return false, path .. "[" .. keyname(k) .. "]: unexpected key" end
    end
    return true
  end
  if a ~= b then
    if type(a) == "string" then
      return false, string.format("%s: string of %d bytes expected, got %d bytes", path, #a, #b)
    end
    return false, string.format("%s: %s expected, got %s", path, tostring(a), tostring(b))
  end
  return true
end

-- assert_exactly(expected, actual): fails with the path of the first difference.
function M.assert_exactly(expected, actual)
  local ok, where = M.exactly(expected, actual)
  assert(ok, where)
end

-- A UUID in its canonical text form (8-4-4-4-12 hex digits).
-- A UUID whose first 48 bits name position pos (as a generated id of
-- memory and SQLite does), with tail as its last 12 hex digits.
function M.id_naming(pos, tail)
  return string.format("%08x-%04x-4abc-8def-%012x", math.floor(pos / 65536), pos % 65536, tail)
end

function M.is_uuid(s)
  return type(s) == "string" and #s == 36
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

-- Runs each bad-input case { name, fn(store, stream), patterns... } on backend
-- b, in a describe named title: the call must raise an error matching the
-- patterns (at most max_message bytes long when given), and the store, and
-- its SQLite file byte for byte, must be as it was; the stream still takes
-- the next append at revision 4.
function M.rejections(title, b, cases, verb, max_message)
  local backends = require("spec.support.backends")
  -- busted gives spec files these as globals, but not the modules they require
  local busted = require("busted")
  local describe, it, before_each, after_each = busted.describe, busted.it, busted.before_each,
    busted.after_each
  local assert = require("luassert")
  describe(title .. " on " .. b.name, function()
    local store, path, s

    before_each(function()
      store, path = backends.open(b)
      s = M.stream()
      assert(store:append(s, M.events(3)))
    end)

    after_each(function()
      if store then store:close() end
      backends.remove(path)
      store, path = nil, nil
    end)

    for _, case in ipairs(cases) do
      local name, fn = case[1], case[2]
      local patterns = { M.unpack(case, 3) }
      it("rejects " .. name .. verb, function()
        local before = M.picture(store)
        local bytes = path and M.sqlite_bytes(path)
        local msg = M.raises(function() fn(store, s) end, M.unpack(patterns))
        if max_message then
          assert.is_true(#msg < max_message, "an error message of " .. #msg .. " bytes")
        end
        if path then assert.is_true(M.exactly(bytes, M.sqlite_bytes(path))) end
        assert.same(before, M.picture(store))
        assert.equals(4, assert(store:append(s, M.event("After"), { expected = 3 })).revision)
      end)
    end
  end)
end

return M
