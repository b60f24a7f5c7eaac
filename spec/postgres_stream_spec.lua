-- postgres_stream: read() and read_all() lists take their rows as the server sends them #postgres
-- SPDX-License-Identifier: MIT
--
-- On PostgreSQL, a read that returns a whole list (read, read_all) gets its
-- rows one at a time while the server is still sending the rest (libpq's
-- single-row mode), so building the Lua tables overlaps the server's work.
-- These tests check that such a list is the one a paged iteration (each)
-- gives, and that a read failing halfway leaves the connection usable.
-- Each test works in tables of its own prefix and drops them.
local eventstore = require("eventstore")
local backends = require("spec.support.backends")

local url, psql = backends.pg_url, backends.psql

local function ids(evs)
  local out = {}
  for i, ev in ipairs(evs) do out[i] = ev.position .. "/" .. ev.id .. "/" .. ev.stream .. "/" .. ev.revision end
  return out
end

describe("PostgreSQL streamed reads #postgres", function()
  if not url then
    pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
    return
  end

  local prefix, n, store = nil, 0, nil
  before_each(function()
    n = n + 1
    prefix = string.format("stream%d_%d_", n, os.time() % 100000)
    store = assert(eventstore.open(url, { prefix = prefix }))
  end)
  after_each(function()
    store:close()
    backends.pg_drop(prefix)
  end)

  it("gives the lists a paged iteration gives, across pages of 1,000", function()
    local batch = {}
    for i = 1, 500 do batch[i] = { type = i % 2 == 0 and "Even" or "Odd", data = { i = i } } end
    for b = 0, 4 do assert(store:append("big-1", batch, { expected = b * 500 })) end
    assert(store:append("other-1", { { type = "Odd", data = { i = 0 } } }))
    local all = {}
    for ev in store:each() do all[#all + 1] = ev end
    assert.equals(2501, #all)
    assert.same(ids(all), ids(store:read_all()))
    assert.same(ids(all), ids(store:read_all({ after = 0, limit = 5000 })))
    local tail = store:read_all({ after = 700, limit = 1500 })
    assert.equals(1500, #tail)
    assert.same(ids({ table.unpack(all, 701, 2200) }), ids(tail))
    local big = store:read("big-1")
    assert.equals(2500, #big)
    for i, ev in ipairs(big) do
      assert.equals(i, ev.revision)
      assert.equals((i - 1) % 500 + 1, ev.data.i)
    end
    local back = store:read("big-1", { backward = true, from = 400, to = 1900, limit = 1200 })
    assert.equals(1200, #back)
    assert.equals(1900, back[1].revision)
    assert.equals(701, back[1200].revision)
    local odd = store:read_all({ category = "big", types = { "Odd" } })
    assert.equals(1250, #odd)
    for _, ev in ipairs(odd) do assert.equals("Odd", ev.type) end
  end)

  it("gives every field as stored when pages of the global order come as binary COPY", function()
    -- read_all of the whole global order sends pages of 500 rows or more
    -- as COPY ... (FORMAT binary); each() and filtered reads stay prepared
    local evs = {}
    for i = 1, 1300 do
      evs[i] = {
        type = i % 3 == 0 and "Tab\tType" or "Café",
        data = { i = i, big = 9007199254740993, neg = -i, x = i / 8, t = "q\"u\\o\nte é ✓ \0 end",
                 list = { i, "b", false }, empty = {}, yes = true },
        metadata = i % 2 == 0 and { correlationId = "c-" .. i, causationId = "d" } or nil,
      }
    end
    evs[7].id = "0190a5e2-7c4b-7def-8abc-0123456789ab"
    assert(store:append("co'py\\x-1", { table.unpack(evs, 1, 700) }))
    assert(store:append("co'py\\x-2", { table.unpack(evs, 701, 1300) }))
    local paged = {}
    for ev in store:each() do paged[#paged + 1] = ev end
    local copied = store:read_all()
    assert.equals(1300, #copied)
    assert.same(paged, copied)
    assert.equals("0190a5e2-7c4b-7def-8abc-0123456789ab", copied[7].id)
    assert.equals(9007199254740993, copied[1].data.big)
    assert.same(paged, store:read_all({ category = "co'py\\x" }))
    local tail = store:read_all({ after = 650, limit = 600 })
    assert.same({ table.unpack(paged, 651, 1250) }, tail)
  end)

  it("folds state() from streamed rows: across pages, after a snapshot, and with nothing after it", function()
    -- seen counts the events folded: a snapshot folded as if it were an
    -- event would count one more
    local rules = eventstore.reducer({ n = "sum", last = "last", seen = { { "count", from = "n" } } })
    local snapping = assert(eventstore.open(url, { prefix = prefix, snapshot_every = 1 }))
    local batch = {}
    for i = 1, 100 do batch[i] = { type = "T", data = { n = 1, last = i } } end
    for b = 0, 11 do assert(store:append("big-1", batch, { expected = b * 100 })) end
    local st, rev = snapping:state("big-1", rules)  -- writes a snapshot at 1,200
    snapping:close()
    assert.same({ n = 1200, last = 100, seen = 1200 }, st)
    assert.equals(1200, rev)
    for b = 12, 24 do assert(store:append("big-1", batch, { expected = b * 100 })) end
    -- the snapshot's own state, so using it shows: then 1,300 events after it (2 pages)
    psql("UPDATE " .. prefix .. "snapshots SET data = '{\"n\":-1000000,\"last\":0,\"seen\":1000}' " ..
      "WHERE stream = 'big-1'")
    st, rev = store:state("big-1", rules)
    assert.same({ n = -1000000 + 1300, last = 100, seen = 2300 }, st)
    assert.equals(2500, rev)
    -- a snapshot at the last revision: only its row comes back
    psql("UPDATE " .. prefix .. "snapshots SET revision = 2500, data = '{\"n\":7,\"last\":8,\"seen\":9}' " ..
      "WHERE stream = 'big-1'")
    st, rev = store:state("big-1", rules)
    assert.same({ n = 7, last = 8, seen = 9 }, st)
    assert.equals(2500, rev)
    -- an unknown stream, then a stream of one event
    st, rev = store:state("none-1", rules)
    assert.same({}, st)
    assert.equals(0, rev)
    assert(store:append("one-1", { { type = "T", data = { n = 5, last = 1 } } }))
    assert.same({ n = 5, last = 1, seen = 1 }, (store:state("one-1", rules)))
    -- the connection is free after each of them
    assert.equals(2500, #store:read("big-1"))
    assert.equals(1, #store:read("one-1"))
  end)

  it("raises for a stored value it cannot read halfway through, and the store goes on working", function()
    local batch = {}
    for i = 1, 300 do batch[i] = { type = "T", data = { i = i } } end
    assert(store:append("s-1", batch))
    -- valid JSON for the json column, but a number no double holds
    psql("UPDATE " .. prefix .. "events SET data = '{\"i\":1e999}' WHERE stream = 's-1' AND revision = 40")
    local ok, err = pcall(store.read, store, "s-1")
    assert.is_false(ok)
    assert.matches("not valid JSON", tostring(err))
    ok = pcall(store.read_all, store)
    assert.is_false(ok)
    -- reads build their rows with the collector paused: it runs again
    if pcall(collectgarbage, "isrunning") then assert.is_true(collectgarbage("isrunning")) end
    -- the rows the failed reads left unread are gone from the connection
    assert.equals(300, store:revision("s-1"))
    assert(store:append("s-2", { { type = "T", data = { i = 1 } } }))
    assert.equals(39, #store:read("s-1", { to = 39 }))
    assert.equals(260, #store:read("s-1", { from = 41 }))
    assert.equals(1, #store:read("s-2"))
  end)

  it("prepares a statement again when the session lost it (DISCARD ALL, a pooler)", function()
    -- a trigger runs DEALLOCATE ALL in the session of the next append, as
    -- DISCARD ALL or a pooler handing over another session would
    psql("CREATE TABLE " .. prefix .. "lose_flag (x int); " ..
      "CREATE FUNCTION " .. prefix .. "lose() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN " ..
      "IF EXISTS (SELECT 1 FROM " .. prefix .. "lose_flag) THEN DELETE FROM " .. prefix .. "lose_flag; " ..
      "EXECUTE 'DEALLOCATE ALL'; END IF; RETURN NULL; END $$; " ..
      "CREATE TRIGGER lose AFTER INSERT ON " .. prefix .. "events FOR EACH STATEMENT " ..
      "EXECUTE FUNCTION " .. prefix .. "lose()")
    local function lose()
      psql("INSERT INTO " .. prefix .. "lose_flag VALUES (1)")
      assert(store:append("lost-1", { { type = "T", data = { n = 0 } } }))
      assert.equals("0", psql("SELECT count(*) FROM " .. prefix .. "lose_flag"):match("%d+"))
    end
    finally(function()
      psql("DROP TABLE IF EXISTS " .. prefix .. "lose_flag; DROP FUNCTION IF EXISTS " .. prefix .. "lose() CASCADE")
    end)
    local rules = eventstore.reducer({ n = "sum" })
    local batch = {}
    for i = 1, 1500 do batch[i] = { type = "T", data = { n = 1 } } end
    assert(store:append("s-1", batch))
    -- each kind of call runs once, so that its statement is prepared
    assert.equals(1500, #store:read("s-1"))
    assert.equals(1500, (store:state("s-1", rules)).n)
    local all = #store:read_all()
    lose()
    assert.equals(1500, #store:read("s-1"))
    lose()
    assert.same({ n = 1500 }, (store:state("s-1", rules)))
    lose()
    assert.equals(all + 3, #store:read_all())
    lose()
    assert.equals(1500, store:revision("s-1"))
    lose()
    local res = assert(store:append("lost-1", { { type = "T", data = { n = 1 } } }))
    assert.equals(6, res.revision)
  end)
end)
