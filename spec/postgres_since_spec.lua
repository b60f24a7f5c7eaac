-- postgres_since: timestamps that never go down, and since() without a timestamp index #postgres
-- SPDX-License-Identifier: MIT
--
-- As on SQLite (sqlite_since_spec.lua), the PostgreSQL append function keeps
-- event timestamps from going down along positions (a clock that steps back
-- repeats the newest timestamp), so since() finds its first event by a
-- binary search over positions, in the read statement itself, instead of an
-- index written on every append. Stores made with the old layout (a
-- timestamp index) keep using the index. psql rewrites timestamps to known
-- values. Each test works in tables of its own prefix and drops them.
local backends = require("spec.support.backends")

local psql = backends.psql

-- Positions whose timestamp is >= t, the slow and obvious way.
local function expected_since(times, t, after)
  local out = {}
  for pos = 1, #times do
    if pos > (after or 0) and times[pos] >= t then out[#out + 1] = pos end
  end
  return out
end

local function positions(evs)
  local out = {}
  for i, ev in ipairs(evs) do out[i] = ev.position end
  return out
end

backends.pg_describe("PostgreSQL timestamps and since() #postgres", "since", function(pg)
  local open = pg.open

  -- count events in 3 streams (categories a and b), then timestamps
  -- rewritten to `times` (by position)
  local function store_with(count, times)
    local store = open()
    for i = 1, count do
      local stream = (i % 3 == 0 and "a-" or "b-") .. (i % 3)
      assert(store:append(stream, { type = "T", data = { i = i } }))
    end
    local parts = {}
    for pos = 1, count do parts[#parts + 1] = string.format("(%d, %d)", pos, times[pos]) end
    psql("UPDATE " .. pg.prefix .. "events e SET timestamp = v.t FROM (VALUES " .. table.concat(parts, ",") ..
      ") AS v(p, t) WHERE e.position = v.p")
    return store
  end

  it("a new store has no timestamp index", function()
    open():close()
    assert.equals("", (psql("SELECT indexname FROM pg_indexes WHERE tablename = '" .. pg.prefix ..
      "events' AND indexdef LIKE '%timestamp%'"):gsub("%s+", "")))
  end)

  it("finds the first event at or after a time by its position, for every time and start", function()
    -- runs of equal timestamps, gaps in time, 61 events
    local times, t = {}, 1000
    for pos = 1, 61 do
      if pos % 4 ~= 0 then t = t + (pos % 7 == 0 and 50 or 3) end
      times[pos] = t
    end
    local store = store_with(61, times)
    for probe = 990, times[61] + 5 do
      assert.same(expected_since(times, probe), positions(store:since(probe)), "since " .. probe)
    end
    -- with a limit, through read_all's after, and page by page
    assert.same({ 30, 31 }, positions(store:since(times[30], { limit = 2 })))
    for _, after in ipairs({ 0, 10, 25, 60, 61, math.maxinteger }) do
      local all = store:read_all({ after = after, since = times[20] })
      assert.same(expected_since(times, times[20], after), positions(all), "after " .. after)
    end
    local got, after = {}, 0
    repeat
      local page = store:read_all({ after = after, since = times[33], limit = 4 })
      for _, ev in ipairs(page) do got[#got + 1] = ev.position end
      if #page > 0 then after = page[#page].position end
    until #page < 4
    assert.same(expected_since(times, times[33]), got)
    -- with the category filter too
    local cat = {}
    for _, pos in ipairs(expected_since(times, times[15])) do
      if pos % 3 == 0 then cat[#cat + 1] = pos end
    end
    assert.same(cat, positions(store:since(times[15], { category = "a" })))
    store:close()
  end)

  it("an empty store and a time after the last event give nothing", function()
    local store = open()
    assert.same({}, store:since(0))
    assert(store:append("a", { type = "T" }))
    assert.same({}, store:since(store:last("a").timestamp + 1))
    assert.equals(1, #store:since(0))
    store:close()
  end)

  it("an append never stores a timestamp below the newest one (the clock stepped back)", function()
    local store = open()
    assert(store:append("a", { type = "T" }))
    local future = 4102444800000 -- 2100-01-01: the clock was once far ahead
    psql("UPDATE " .. pg.prefix .. "events SET timestamp = " .. future)
    local res = assert(store:append("b", { { type = "T" }, { type = "U" } }))
    for _, ev in ipairs(res.events) do assert.equals(future, ev.timestamp) end
    local evs = store:read_all()
    for i = 2, #evs do assert.is_true(evs[i].timestamp >= evs[i - 1].timestamp) end
    for _, ev in ipairs(store:read("b")) do assert.equals(future, ev.timestamp) end
    assert.equals(3, #store:since(future))
    store:close()
  end)

  it("a store with the old timestamp index still answers since() through it", function()
    local store = open()
    for i = 1, 10 do assert(store:append("s", { type = "T", data = { i = i } })) end
    store:close()
    -- the old layout, and times that go down (written before the clamp)
    psql("CREATE INDEX " .. pg.prefix .. "ev_timestamp ON " .. pg.prefix .. "events (timestamp); UPDATE "
      .. pg.prefix .. "events SET timestamp = CASE WHEN position <= 5 THEN 100 + position ELSE 50 + position END")
    store = open()
    local times = {}
    for pos = 1, 10 do times[pos] = pos <= 5 and 100 + pos or 50 + pos end
    for probe = 50, 110 do
      assert.same(expected_since(times, probe), positions(store:since(probe)), "since " .. probe)
    end
    store:close()
  end)
end)
