-- sqlite_since: timestamps that never go down, and since() without a timestamp index
-- SPDX-License-Identifier: MIT
--
-- A SQLite store keeps event timestamps from going down along positions (a
-- clock that steps back repeats the last timestamp), so since() finds its
-- first event by a binary search over positions instead of an index written
-- on every append. Stores made with the old layout (a timestamp index) keep
-- using the index. The sqlite3 CLI rewrites timestamps to known values.
local eventstore = require("eventstore")
local procs = require("spec.support.procs")

local sql = procs.sqlite3_ok

local function tmpfile()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".db"
end

local function remove(path)
  for _, s in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. s) end
end

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

describe("sqlite timestamps and since()", function()
  local path
  before_each(function() path = tmpfile() end)
  after_each(function() remove(path) end)

  -- n events in 3 streams, then timestamps rewritten to `times` (by position)
  local function store_with(n, times)
    local store = assert(eventstore.open("sqlite:" .. path))
    for i = 1, n do assert(store:append("s-" .. (i % 3), { type = "T", data = { i = i } })) end
    store:close()
    local parts = {}
    for pos = 1, n do
      parts[#parts + 1] = string.format("UPDATE es_events SET timestamp = %d WHERE position = %d;", times[pos], pos)
    end
    sql(path, "BEGIN;" .. table.concat(parts) .. "COMMIT;")
    return assert(eventstore.open("sqlite:" .. path))
  end

  it("a new store has no timestamp index", function()
    local store = assert(eventstore.open("sqlite:" .. path))
    store:close()
    assert.equals("", (sql(path, "SELECT name FROM sqlite_master WHERE name LIKE '%timestamp%'"):gsub("%s+", "")))
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
    -- with a limit, and through read_all's after
    assert.same({ 30, 31 }, positions(store:since(times[30], { limit = 2 })))
    for _, after in ipairs({ 0, 10, 25, 60, 61 }) do
      local all = store:read_all({ after = after, since = times[20] })
      assert.same(expected_since(times, times[20], after), positions(all), "after " .. after)
    end
    assert.is_true(#store:read_all({ after = 10, since = times[20] }) < 51)
    store:close()
  end)

  it("an empty store and a time after the last event give nothing", function()
    local store = assert(eventstore.open("sqlite:" .. path))
    assert.same({}, store:since(0))
    assert(store:append("a", { type = "T" }))
    assert.same({}, store:since(store:last("a").timestamp + 1))
    assert.equals(1, #store:since(0))
    store:close()
  end)

  it("an append never stores a timestamp below the newest one (the clock stepped back)", function()
    local store = assert(eventstore.open("sqlite:" .. path))
    assert(store:append("a", { type = "T" }))
    store:close()
    local future = 4102444800000 -- 2100-01-01: the clock was once far ahead
    sql(path, "UPDATE es_events SET timestamp = " .. future)
    store = assert(eventstore.open("sqlite:" .. path))
    local res = assert(store:append("b", { { type = "T" }, { type = "U" } }))
    for _, ev in ipairs(res.events) do assert.equals(future, ev.timestamp) end
    local evs = store:read_all()
    for i = 2, #evs do assert.is_true(evs[i].timestamp >= evs[i - 1].timestamp) end
    assert.equals(3, #store:since(future))
    store:close()
  end)

  it("an append raises its timestamps to the newest event's, not to an older one's", function()
    local store = assert(eventstore.open("sqlite:" .. path))
    for i = 1, 5 do assert(store:append("s" .. i, { type = "T" })) end
    store:close()
    -- times written before the clamp: an older event far ahead, the newest a little ahead
    local far, near = 4102444800000, 4000000000000
    sql(path, "UPDATE es_events SET timestamp = CASE position WHEN 2 THEN " .. far ..
      " WHEN 5 THEN " .. near .. " ELSE timestamp END")
    store = assert(eventstore.open("sqlite:" .. path))
    local res = assert(store:append("t", { { type = "T" }, { type = "U" } }))
    assert.equals(6, res.events[1].position)
    for _, ev in ipairs(res.events) do assert.equals(near, ev.timestamp) end
    for _, ev in ipairs(store:read("t")) do assert.equals(near, ev.timestamp) end
    store:close()
  end)

  it("a store with the old timestamp index still answers since() through it", function()
    local store = assert(eventstore.open("sqlite:" .. path))
    for i = 1, 10 do assert(store:append("s", { type = "T", data = { i = i } })) end
    store:close()
    -- the old layout, and times that go down (written before the clamp)
    sql(path, "CREATE INDEX es_events_timestamp ON es_events (timestamp);" ..
      "UPDATE es_events SET timestamp = CASE WHEN position <= 5 THEN 100 + position ELSE 50 + position END")
    store = assert(eventstore.open("sqlite:" .. path))
    local times = {}
    for pos = 1, 10 do times[pos] = pos <= 5 and 100 + pos or 50 + pos end
    for probe = 50, 110 do
      assert.same(expected_since(times, probe), positions(store:since(probe)), "since " .. probe)
    end
    store:close()
  end)
end)
