-- postgres_streams: the streams table names each stream once; revisions come from the events #postgres
-- SPDX-License-Identifier: MIT
--
-- The append that creates a stream inserts its row in the streams table;
-- later appends leave the row alone, and a stream's revision is its newest
-- event's (the (stream, revision) index), as on SQLite. Stores made before
-- 2026-12-07 have a revision column there and an append function that
-- updates it on every append; they keep both, and reads do not use the
-- column. Each test works in tables of its own prefix and drops them.
local eventstore = require("eventstore")
local backends = require("spec.support.backends")

-- psql's answer without its last newline
local function psql(text) return (backends.psql(text):gsub("\n$", "")) end

backends.pg_describe("PostgreSQL streams table #postgres", "pgst", function(pg)
  local open = pg.open
  -- xmin and ctid of a stream's row: both change when the row is updated
  local function row_version(stream)
    return psql("SELECT xmin::text || ' ' || ctid::text FROM " .. pg.prefix .. "streams WHERE stream = '"
      .. stream .. "'")
  end

  it("has no revision column, and an append to an existing stream does not touch its row", function()
    local store = open()
    assert.equals("category\nstream", psql("SELECT string_agg(column_name, E'\\n' ORDER BY column_name) " ..
      "FROM information_schema.columns WHERE table_name = '" .. pg.prefix .. "streams'"))
    assert(store:append("acct-1", { type = "Opened" }, { expected = eventstore.NO_STREAM }))
    local first = row_version("acct-1")
    assert.is_truthy(first:match("^%d+ %(%d+,%d+%)$"), first)
    for r = 2, 6 do assert(store:append("acct-1", { type = "Deposited", data = { r = r } }, { expected = r - 1 })) end
    assert(store:append("acct-1", { { type = "A" }, { type = "B" } }))
    assert.equals(first, row_version("acct-1"))
    assert.equals(8, store:revision("acct-1"))
    assert.equals("acct|acct-1", psql("SELECT category || '|' || stream FROM " .. pg.prefix .. "streams"))
    store:close()
  end)

  it("reads revisions from the events: revision(), conflicts and the stream list agree", function()
    local store = open()
    assert.equals(0, store:revision("none"))
    for i = 1, 3 do
      for r = 1, i do assert(store:append("s-" .. i, { type = "T", data = { r = r } }, { expected = r - 1 })) end
    end
    assert(store:append("t-1", { { type = "T" }, { type = "T" } }, { expected = eventstore.NO_STREAM }))
    for i = 1, 3 do assert.equals(i, store:revision("s-" .. i)) end
    assert.equals(2, store:revision("t-1"))
    local res, err = store:append("s-2", { type = "T" }, { expected = 1 })
    assert.is_nil(res)
    assert.equals("conflict", err.code)
    assert.equals(2, err.actual)
    res, err = store:append("s-2", { type = "T" }, { expected = eventstore.NO_STREAM })
    assert.is_nil(res)
    assert.equals("conflict", err.code)
    assert(store:append("s-2", { type = "T" }, { expected = eventstore.STREAM_EXISTS }))
    assert.same({ "s-1", "s-2", "s-3", "t-1" }, store:streams())
    assert.same({ "t-1" }, store:streams({ category = "t" }))
    assert.equals(4, store:stats().streams)
    assert.equals("4", psql("SELECT count(*) FROM " .. pg.prefix .. "streams"))
    store:close()
  end)

  it("appends one event through append1_v1, and batches through append_v1", function()
    local store = open()
    assert(store:append("one-1", { type = "T", data = { n = 1 } }))
    store:close()
    -- a stand-in that refuses: single appends must now fail with its message
    psql("CREATE OR REPLACE FUNCTION " .. pg.prefix .. "append1_v1(p_stream text, p_category text, "
      .. "p_expected bigint, p_id text, p_type text, p_data text, p_meta text, p_ts bigint, p_id_given boolean, "
      .. "p_outbox boolean, OUT status int, OUT cur bigint, OUT first_pos bigint, OUT idx int, OUT revs bigint[], "
      .. "OUT poss bigint[], OUT tss bigint[]) LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'append1 stand-in'; "
      .. "END$$")
    store = open()
    local res, err = store:append("one-1", { type = "T" })
    assert.is_nil(res)
    assert.matches("append1 stand%-in", tostring(err))
    assert(store:append("one-1", { { type = "T" }, { type = "T" } }, { expected = 1 }))
    assert.equals(3, store:revision("one-1"))
    store:close()
  end)

  it("a store without append1_v1 (made before 2026-12-07) appends single events through append_v1", function()
    local store = open()
    assert(store:append("one-1", { type = "T" }))
    store:close()
    psql("DROP FUNCTION " .. pg.prefix .. "append1_v1")
    store = open()
    local id = eventstore.uuid()
    local res = assert(store:append("one-1", { type = "T", id = id }, { expected = 1 }))
    assert.equals(2, res.revision)
    -- the same id again: an idempotent retry, then a conflict elsewhere
    res = assert(store:append("one-1", { type = "T", id = id }, { expected = 1 }))
    assert.is_true(res.idempotent)
    local err
    res, err = store:append("one-2", { type = "T", id = id })
    assert.is_nil(res)
    assert.equals("conflict", err.code)
    assert.equals("0", psql("SELECT count(*) FROM pg_proc WHERE proname = '" .. pg.prefix .. "append1_v1'"))
    store:close()
  end)

  it("a store with the old layout (a revision column its function updates) keeps working", function()
    local store = open()
    assert(store:append("old-1", { { type = "T" }, { type = "T" } }))
    store:close()
    -- The layout before 2026-12-07: the column, the function that read the
    -- revision from it and upserted it on every append, and no append1_v1.
    local fn = pg.prefix .. "append_v1"
    local def = psql("SELECT pg_get_functiondef('" .. fn .. "'::regproc)")
    local old, hits = def:gsub("SELECT max%(e%.revision%) INTO cur FROM (%S+) e WHERE e%.stream = p_stream;",
      function(events)
        return "SELECT s.revision INTO cur FROM " .. events:gsub("events\"$", "streams\"") ..
          " s WHERE s.stream = p_stream;"
      end)
    assert.equals(1, hits)
    old, hits = old:gsub("IF cur = 0 THEN%s+INSERT INTO (%S+) %(stream, category%) VALUES %(p_stream, p_category%) " ..
      "ON CONFLICT %(stream%) DO NOTHING;%s+END IF;", function(streams)
        return "INSERT INTO " .. streams .. " (stream, category, revision) VALUES (p_stream, p_category, cur + n) " ..
          "ON CONFLICT (stream) DO UPDATE SET revision = excluded.revision;"
      end)
    assert.equals(1, hits)
    psql("ALTER TABLE " .. pg.prefix .. "streams ADD COLUMN revision bigint NOT NULL DEFAULT 0; UPDATE " .. pg.prefix ..
      "streams SET revision = 2; ALTER TABLE " .. pg.prefix .. "streams ALTER COLUMN revision DROP DEFAULT")
    psql(old)
    psql("DROP FUNCTION " .. pg.prefix .. "append1_v1")

    store = open()
    assert.equals(2, store:revision("old-1"))
    assert(store:append("old-1", { type = "T" }, { expected = 2 }))
    local res, err = store:append("old-1", { type = "T" }, { expected = 2 })
    assert.is_nil(res)
    assert.equals("conflict", err.code)
    assert.equals(3, err.actual)
    assert(store:append("old-2", { type = "T" }, { expected = eventstore.NO_STREAM }))
    assert.equals(3, store:revision("old-1"))
    assert.equals(1, store:revision("old-2"))
    assert.same({ "old-1", "old-2" }, store:streams())
    -- the old function still keeps its column up to date
    assert.equals("old-1=3 old-2=1", psql("SELECT string_agg(stream || '=' || revision, ' ' ORDER BY stream) FROM " ..
      pg.prefix .. "streams"))
    store:close()
  end)
end)
