-- crash: a writer killed with SIGKILL at random moments loses no acknowledged append
-- SPDX-License-Identifier: MIT
--
-- spec/support/crash_writer.lua appends batches with exact expected
-- revisions and logs each batch only after append returned. Each round
-- starts it on the same store, waits until it is appending, kills it with
-- SIGKILL after a seeded random delay, then reopens the store and checks:
--   * every logged (acknowledged) batch is stored, at the logged revisions
--     and position;
--   * no batch is partly stored (all of its n events, in consecutive
--     revisions, or none);
--   * each stream's revisions are 1..n without a gap, revision() agrees;
--   * at most one batch per round is stored without a log line (killed
--     between commit and the log write);
--   * a snapshot (the writer saves some, at most 2 per stream) is never
--     ahead of its stream and matches the event at its revision; the
--     writer's checkpoint is never past the newest position;
--   * SQLite: PRAGMA integrity_check says ok (the sqlite3 CLI).
-- ES_CRASH_ROUNDS sets the rounds per backend: 3 in make test, 20 in
-- make crash-test. EVENTSTORE_SEED replays a run.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local procs = require("spec.support.procs")

local ROUNDS = tonumber(os.getenv("ES_CRASH_ROUNDS") or "") or 3
local NSTREAMS = 4
local pg_url = os.getenv("EVENTSTORE_PG_URL")
if pg_url == "" then pg_url = nil end

-- Parses the writer's log: a list of acknowledged batches.
local function parse_log(text)
  local list = {}
  for line in (text or ""):gmatch("([^\n]*)\n") do
    local stream, batch, first, last, pos = line:match("^(%S+) (%S+) (%d+) (%d+) (%d+)$")
    assert(stream, "bad log line: " .. line)
    list[#list + 1] = { stream = stream, batch = batch, first = tonumber(first), last = tonumber(last),
      position = tonumber(pos) }
  end
  return list
end

-- check(cond, fmt, ...): plain checks, since verify looks at thousands of
-- events per round (busted's assert is slow per call).
local function check(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

-- Checks the store against the acknowledged batches; returns the number of
-- events and of stored batches that were never acknowledged.
local function verify(store, category, acked)
  local batches, ids, events = {}, {}, 0
  for k = 1, NSTREAMS do
    local stream = category .. "-" .. k
    local list = store:read(stream)
    for i, ev in ipairs(list) do
      check(ev.revision == i, "%s: revision %d where %d was expected (a gap)", stream, ev.revision, i)
      check(not ids[ev.id], "event id %s stored twice", ev.id)
      ids[ev.id] = true
      local d = ev.data
      local b = batches[d.batch]
      if not b then
        b = { stream = stream, n = d.n, first = ev.revision, count = 0, last_position = 0 }
        batches[d.batch] = b
      end
      check(b.stream == stream and b.n == d.n, "batch %s spans streams", d.batch)
      check(d.i == b.count + 1 and ev.revision == b.first + b.count, "batch %s is out of order or not contiguous",
        d.batch)
      check(ev.type == "Crashed" .. d.i and ev.metadata.correlation_id == d.batch, "event %s altered", ev.id)
      check(ev.position > b.last_position, "batch %s: positions not increasing", d.batch)
      b.count, b.last_position = b.count + 1, ev.position
      events = events + 1
    end
    check(store:revision(stream) == #list, "%s: revision() is %d, %d events read", stream, store:revision(stream),
      #list)
    local snap = store:snapshot(stream)
    if snap then
      check(snap.revision <= #list and snap.data.revision == snap.revision,
        "%s: snapshot at revision %d (data says %s) with %d events stored", stream, snap.revision,
        tostring(snap.data.revision), #list)
      check(list[snap.revision].data.batch == snap.data.batch, "%s: snapshot %d names another batch", stream,
        snap.revision)
    end
  end
  local cp = store:checkpoint(category .. "_writer")
  check(cp <= store:stats().position, "checkpoint %d is past the newest position", cp)
  for id, b in pairs(batches) do
    check(b.count == b.n, "batch %s is partly stored: %d of %d events", id, b.count, b.n)
  end
  local logged = {}
  for _, a in ipairs(acked) do
    local b = batches[a.batch]
    check(b ~= nil, "acknowledged batch %s of %s (revisions %d..%d) is missing", a.batch, a.stream, a.first, a.last)
    check(a.stream == b.stream and a.first == b.first and a.last == b.first + b.n - 1 and
      a.position == b.last_position, "acknowledged batch %s is stored elsewhere than acknowledged", a.batch)
    logged[a.batch] = true
  end
  local unlogged = 0
  for id in pairs(batches) do
    if not logged[id] then unlogged = unlogged + 1 end
  end
  return events, unlogged
end

local function integrity(path)
  local rc, out = procs.sh("sqlite3 " .. procs.quote(path) .. " 'PRAGMA integrity_check'")
  assert(rc == 0, "sqlite3 CLI failed (apt-get install sqlite3): " .. out)
  assert.equals("ok", (out:gsub("%s+$", "")))
end

local function crash_rounds(url, category, sqlite_path, synchronous)
  local dir = procs.tmpdir()
  local logp, ready, errp = dir .. "/log", dir .. "/ready", dir .. "/err"
  local unlogged_max, events, kills = 0, 0, 0
  local ok, failure = pcall(function()
    for round = 1, ROUNDS do
      local delay = fx.random(0, 400) / 1000
      local writer = procs.lua_cmd("spec/support/crash_writer.lua",
        { url, category, NSTREAMS, fx.random(1, 2147483646), logp, ready, errp, synchronous })
      local rc, out = procs.sh(string.format([[
rm -f %s
timeout -k 1 90 %s & pid=$!
i=0
while [ ! -e %s ] && kill -0 $pid 2>/dev/null && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done
sleep %.3f
pkill -KILL -P $pid 2>/dev/null
kill -KILL $pid 2>/dev/null
wait $pid
echo "status=$?"]], procs.quote(ready), writer, procs.quote(ready), delay))
      assert(rc == 0, out)
      local errtext = procs.read_file(errp)
      assert(not errtext or errtext == "", "round " .. round .. ": the writer failed: " .. tostring(errtext))
      local status = out:match("status=(%d+)")
      assert(status == "137", "round " .. round .. ": the writer was not killed (status " .. tostring(status)
        .. "): " .. out)
      kills = kills + 1
      if sqlite_path then integrity(sqlite_path) end
      local store = assert(eventstore.open(url))
      local n, unlogged = verify(store, category, parse_log(procs.read_file(logp)))
      store:close()
      assert(unlogged <= round, "round " .. round .. ": " .. unlogged .. " batches stored but never acknowledged")
      unlogged_max, events = unlogged, n
    end
  end)
  procs.rmdir(dir)
  if not ok then error(failure, 0) end
  return kills, events, unlogged_max
end

describe("crash safety #crash", function()
  it("the checker itself catches a partial batch and a missing acknowledged batch", function()
    local store = assert(eventstore.open("memory:"))
    local function batch(stream, id, n, upto)
      local list = {}
      for i = 1, upto or n do
        list[i] = { type = "Crashed" .. i, data = { batch = id, i = i, n = n }, metadata = { correlation_id = id } }
      end
      return assert(store:append(stream, list))
    end
    local r1 = batch("chk-1", "b1", 2)
    local acked = { { stream = "chk-1", batch = "b1", first = 1, last = 2, position = r1.position } }
    local events, unlogged = verify(store, "chk", acked)
    assert.equals(2, events)
    assert.equals(0, unlogged)
    batch("chk-2", "b2", 3)
    events, unlogged = verify(store, "chk", acked)
    assert.equals(5, events)
    assert.equals(1, unlogged)
    acked[2] = { stream = "chk-3", batch = "b3", first = 1, last = 1, position = 99 }
    assert.matches("acknowledged batch b3 of chk%-3 .* is missing", select(2, pcall(verify, store, "chk", acked)))
    acked[2] = nil
    batch("chk-3", "b4", 3, 2)
    assert.matches("batch b4 is partly stored: 2 of 3", select(2, pcall(verify, store, "chk", acked)))
    store:close()
  end)

  it("SQLite file: " .. ROUNDS .. " SIGKILLs during appends lose no acknowledged batch, write no partial one",
    function()
      local dir = procs.tmpdir()
      local path = dir .. "/crash.db"
      local ok, kills, events = pcall(crash_rounds, "sqlite:" .. path, "crash", path)
      procs.rmdir(dir)
      assert(ok, kills)
      assert.equals(ROUNDS, kills)
      assert.is_true(events > 0, "the writer never appended")
    end)

  it("SQLite file with synchronous = \"normal\": " .. ROUNDS .. " SIGKILLs lose no acknowledged batch", function()
    -- NORMAL gives up durability on power loss, not on a process crash
    local dir = procs.tmpdir()
    local path = dir .. "/crash-normal.db"
    local ok, kills, events = pcall(crash_rounds, "sqlite:" .. path, "crashn", path, "normal")
    procs.rmdir(dir)
    assert(ok, kills)
    assert.equals(ROUNDS, kills)
    assert.is_true(events > 0, "the writer never appended")
  end)

  if pg_url then
    it("PostgreSQL: " .. ROUNDS .. " SIGKILLs of a client during appends lose no acknowledged batch #postgres",
      function()
        local kills, events = crash_rounds(pg_url, fx.category("crash"), nil)
        assert.equals(ROUNDS, kills)
        assert.is_true(events > 0, "the writer never appended")
      end)
  else
    pending("PostgreSQL crash rounds: set EVENTSTORE_PG_URL (make test does)")
  end
end)
