-- sqlite_ids: the unique index on event ids leaves out the ids that name their own row
-- SPDX-License-Identifier: MIT
--
-- A generated id carries its event's position in its first 48 bits, so a
-- SQLite store finds it by position and its partial unique index on ids
-- holds only the ids that do not name their own row (caller-given ids): an
-- append with generated ids writes three B-trees, not four. Each row says
-- which in its own_id column. These specs look at the file with the sqlite3
-- CLI: what the index holds, own_id against the id, duplicates written
-- behind the store's back, positions past 2^48 (ids no longer stamped) and
-- stores made with the older layouts (a partial index whose condition
-- formats the position in SQL; a unique index on every id).
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local procs = require("spec.support.procs")
local backends = require("spec.support.backends")

local sql, sql_ok = procs.sqlite3, procs.sqlite3_ok

-- The ids the partial index holds, sorted.
local function indexed(path, cond)
  local out = sql_ok(path, "SELECT id FROM es_events INDEXED BY es_events_id WHERE id > '' AND " ..
    (cond or "own_id = 0") .. " ORDER BY id")
  local ids = {}
  for id in out:gmatch("[%x%-]+") do ids[#ids + 1] = id end
  return ids
end

local naming = fx.id_naming

-- In SQL: the id names its own row (es_id_position(id) = position).
local NAMES_ROW = "substr(id, 1, 8) || substr(id, 10, 4) = printf('%012x', position)"
local COLS = "(position, id, stream, category, revision, type, data, metadata, timestamp)"

-- The events table and indexes of a store made before 2026-12-07.
local OLD_LAYOUT = [[
CREATE TABLE es_events (position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
 stream TEXT NOT NULL, category TEXT NOT NULL, revision INTEGER NOT NULL, type TEXT NOT NULL,
 data TEXT NOT NULL, metadata TEXT NOT NULL, timestamp INTEGER NOT NULL, UNIQUE (stream, revision));
CREATE INDEX es_events_category ON es_events (category, position);
CREATE TABLE es_streams (stream TEXT PRIMARY KEY, category TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX es_streams_category ON es_streams (category, stream);
CREATE TABLE es_snapshots (stream TEXT NOT NULL, revision INTEGER NOT NULL,
 fingerprint TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL, timestamp INTEGER NOT NULL,
 UNIQUE (stream, fingerprint, revision));
CREATE INDEX es_snapshots_stream ON es_snapshots (stream, revision);
CREATE TABLE es_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE es_outbox (position INTEGER PRIMARY KEY);
]]

-- The events table and id index of a store made on 2026-12-07: no own_id
-- column, and the index's condition formats the position in SQL.
local PRINTF_COND = "substr(id, 1, 8) || substr(id, 10, 4) <> printf('%012x', position)"
local PRINTF_LAYOUT = OLD_LAYOUT:gsub("id TEXT NOT NULL UNIQUE,", "id TEXT NOT NULL,")
  .. "CREATE UNIQUE INDEX es_events_id ON es_events (id) WHERE " .. PRINTF_COND .. ";\n"

-- Appends, lookups by id, conflicts and the outbox on a store of an older
-- layout, made by layout_sql. Returns the generated ids, the own and the
-- given id.
local function older_layout_works(path, layout_sql)
  sql_ok(path, layout_sql)
  local store = assert(eventstore.open("sqlite:" .. path, { outbox = true }))
  local gen = assert(store:append("old-1", fx.events(3))).events
  local given = eventstore.uuid()
  local own = naming(4, 1)
  assert(store:append("old-2", { fx.event("Own", {}, { id = own }), fx.event("Given", {}, { id = given }) }))
  -- a batch of more than the 8 rows of one multi-row INSERT
  local batch = assert(store:append("old-4", fx.events(19))).events
  assert.equals(19, #batch)
  for _, ev in ipairs(gen) do
    assert.equals(ev.position, store:event(ev.id).position)
    fx.fails("conflict", store:append("old-3", fx.event("Copy", {}, { id = ev.id })))
  end
  for _, ev in ipairs(batch) do assert.equals(ev.position, store:event(ev.id).position) end
  assert.equals(4, store:event(own).position)
  assert.equals(5, store:event(given).position)
  fx.fails("conflict", store:append("old-3", fx.event("Copy", {}, { id = own })))
  fx.fails("conflict", store:append("old-3", fx.event("Copy", {}, { id = given })))
  fx.fails("conflict", store:append("old-3", fx.event("Copy", {}, { id = batch[19].id })))
  assert.equals(3, assert(store:append("old-1", fx.event("Counted", {}, { id = gen[3].id }),
    { expected = 2 })).revision)
  for _, id in ipairs({ gen[1].id, own, given }) do assert(store:mark_dispatched(id)) end
  assert.same({ gen[2].id, gen[3].id }, fx.ids({ table.unpack(store:undispatched(), 1, 2) }))
  assert.equals(21, #store:undispatched())
  assert.same({}, store:read("old-3"))
  store:close()
  -- no own_id column was added
  assert.equals("0", sql_ok(path, "SELECT count(*) FROM pragma_table_info('es_events') WHERE name = 'own_id'")
    :match("%d+"))
  return gen, own, given
end

describe("sqlite event ids", function()
  local path, store
  before_each(function() path = backends.tmpfile() end)
  after_each(function()
    if store then store:close() end
    store = nil
    backends.remove(path)
  end)

  it("the unique index holds only the ids that do not name their own row", function()
    store = assert(eventstore.open("sqlite:" .. path))
    local gen = assert(store:append("a-1", fx.events(5))).events
    local given = { eventstore.uuid(), eventstore.uuid() }
    assert(store:append("a-2", { fx.event("G", {}, { id = given[1] }), fx.event("G", {}, { id = given[2] }) }))
    local own = naming(store:stats().position + 1, 7)
    local beside = naming(gen[1].position, 8)
    assert.equals(8, assert(store:append("a-3", fx.event("Own", {}, { id = own }))).position)
    assert(store:append("a-4", fx.event("Beside", {}, { id = beside })))
    store:close()
    store = nil
    local want = { given[1], given[2], beside }
    table.sort(want)
    assert.same(want, indexed(path))
    assert.equals("9", sql_ok(path, "SELECT count(*) FROM es_events"):match("%d+"))
    -- own_id is 1 on the rows whose id names them, and only there
    assert.equals("3|0", sql_ok(path, "SELECT count(*) FILTER (WHERE own_id = 0), count(*) FILTER (WHERE own_id <> (" ..
      NAMES_ROW .. ")) FROM es_events"):match("%d+|%d+"))
    -- the index refuses a duplicate written behind the store's back
    local ok, out = sql(path, string.format("INSERT INTO es_events " .. COLS .. " VALUES (100, '%s', 'z-1', 'z', 1, " ..
      "'T', '{}', '{}', 0)", given[1]))
    assert.is_false(ok)
    assert.matches("UNIQUE", out)
    store = assert(eventstore.open("sqlite:" .. path))
    for _, ev in ipairs(gen) do assert.equals(ev.position, store:event(ev.id).position) end
    assert.equals(8, store:event(own).position)
    assert.equals("a-4", store:event(beside).stream)
  end)

  it("own_id is written on every row of a batch, in its multi-row statements too", function()
    store = assert(eventstore.open("sqlite:" .. path))
    assert(store:append("m-1", fx.events(3)))
    -- 20 events: two statements of 8 rows, then 4 row by row; generated,
    -- given and own ids (naming their row, or one beside it) mixed in each
    local evs = {}
    for i = 1, 20 do
      local pos = 3 + i
      local id = (i % 4 == 1 and naming(pos, i)) or (i % 4 == 2 and eventstore.uuid())
        or (i % 4 == 3 and naming(pos + 1, i)) or nil
      evs[i] = fx.event("M", { i = i }, id and { id = id } or nil)
    end
    local out = assert(store:append("m-2", evs)).events
    store:close()
    store = nil
    assert.equals("23|13|0", sql_ok(path, "SELECT count(*), count(*) FILTER (WHERE own_id = 1), count(*) FILTER " ..
      "(WHERE own_id <> (" .. NAMES_ROW .. ")) FROM es_events"):match("%d+|%d+|%d+"))
    store = assert(eventstore.open("sqlite:" .. path))
    for i, ev in ipairs(out) do
      local got = store:event(ev.id)
      assert.equals(ev.position, got.position)
      assert.equals(i, got.data.i)
    end
  end)

  it("a lookup by id reads one row by position and probes the partial index (the plan of ID_MATCH)", function()
    store = assert(eventstore.open("sqlite:" .. path))
    for i = 1, 20 do assert(store:append("p-" .. i, fx.events(50))) end
    store:close()
    store = nil
    -- backends/sqlite_sql.c's ID_MATCH, as SQLite plans it on this machine: the
    -- index is partial, so the query must repeat its condition to use it
    local plan = sql_ok(path, "EXPLAIN QUERY PLAN SELECT position FROM es_events WHERE position = 5 AND " ..
      "id = 'x' AND own_id = 1 UNION ALL SELECT position FROM es_events WHERE id = 'x' AND own_id = 0")
    assert.matches("SEARCH es_events USING INTEGER PRIMARY KEY %(rowid=%?%)", plan)
    assert.matches("SEARCH es_events USING [%u ]*INDEX es_events_id %(id=%?%)", plan)
    assert.is_nil(plan:find("SCAN"), plan)
  end)

  it("mark_dispatched finds generated and given ids", function()
    store = assert(eventstore.open("sqlite:" .. path, { outbox = true }))
    local gen = assert(store:append("o-1", fx.events(2))).events
    local own = naming(3, 1)
    local given = eventstore.uuid()
    assert(store:append("o-2", { fx.event("Own", {}, { id = own }), fx.event("Given", {}, { id = given }) }))
    assert.equals(4, #store:undispatched())
    for _, id in ipairs({ gen[2].id, own, given }) do assert(store:mark_dispatched(id)) end
    assert.same({ gen[1].id }, fx.ids(store:undispatched()))
    assert(store:mark_dispatched(gen[2].id)) -- already dispatched: fine
    fx.fails("not_found", store:mark_dispatched(naming(1, 99)))
  end)

  it("past position 2^48 a generated id is not stamped and goes into the index", function()
    local last = 2 ^ 48 - 1
    store = assert(eventstore.open("sqlite:" .. path))
    assert(store:append("far-1", fx.event("First")))
    store:close()
    store = nil
    sql_ok(path, string.format("INSERT INTO es_events " .. COLS .. " VALUES (%d, '%s', 'far-1', 'far', 2, 'T', " ..
      "'{}', '{}', 0)", last, eventstore.uuid()))
    store = assert(eventstore.open("sqlite:" .. path))
    local at = assert(store:append("far-1", { fx.event("A"), fx.event("B") })).events
    assert.same({ last + 1, last + 2 }, fx.positions(at))
    for _, ev in ipairs(at) do
      assert.equals("7", ev.id:sub(15, 15), ev.id) -- still the time-ordered id
      assert.equals(ev.position, store:event(ev.id).position)
    end
    fx.fails("conflict", store:append("far-2", fx.event("Copy", {}, { id = at[1].id })))
    store:close()
    store = nil
    local ids = indexed(path)
    assert.is_true(#ids == 3, "indexed: " .. table.concat(ids, " "))
  end)

  it("a store with the old layout (every id in a unique index) keeps working", function()
    older_layout_works(path, OLD_LAYOUT)
    -- the old store got no second index on ids
    assert.equals("", sql_ok(path, "SELECT name FROM sqlite_master WHERE name = 'es_events_id'"))
  end)

  it("a store of 2026-12-07 (no own_id, the index's condition in SQL) keeps working and uses its index", function()
    local _, _, given = older_layout_works(path, PRINTF_LAYOUT)
    -- the index holds the given id alone, as its own condition says
    assert.same({ given }, indexed(path, PRINTF_COND))
    -- the lookups repeat that condition, so SQLite still finds ids in it
    local plan = sql_ok(path, "EXPLAIN QUERY PLAN SELECT position FROM es_events WHERE position = 5 AND " ..
      "id = 'x' UNION ALL SELECT position FROM es_events WHERE id = 'x' AND " .. PRINTF_COND)
    assert.matches("SEARCH es_events USING [%u ]*INDEX es_events_id %(id=%?%)", plan)
    assert.is_nil(plan:find("SCAN"), plan)
  end)

  it("a row written behind the store's back takes own_id 0: it is indexed, found once, and unique", function()
    store = assert(eventstore.open("sqlite:" .. path))
    assert(store:append("b-1", fx.events(2)))
    store:close()
    store = nil
    -- an id that names its row, written without own_id
    local own = naming(3, 5)
    sql_ok(path, string.format("INSERT INTO es_events " .. COLS .. " VALUES (3, '%s', 'b-2', 'b', 1, 'T', '{}', " ..
      "'{}', 0)", own))
    assert.same({ own }, indexed(path))
    store = assert(eventstore.open("sqlite:" .. path))
    local ev = store:event(own)
    assert.equals(3, ev.position)
    assert.equals("b-2", ev.stream)
    fx.fails("conflict", store:append("b-3", fx.event("Copy", {}, { id = own })))
    -- an append given the same id as its first event is the same append, not a second one
    local again = assert(store:append("b-2", fx.event("T", {}, { id = own }), { expected = 0 }))
    assert.is_true(again.idempotent)
    assert.equals(3, store:stats().events)
  end)
end)
