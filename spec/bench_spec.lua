-- bench: the floors of a read (esbench.tables) and of an append (esbench.json), and what the report concludes from them
-- SPDX-License-Identifier: MIT
--
-- `make bench` times, next to W3 and W4, the same Lua tables a read returns
-- built in C with no storage and no JSON (bench/lbench.c), and the report
-- calls a read row out of reach when those tables alone take longer than
-- the bar leaves. That conclusion is only as good as the floor: these specs
-- check that it builds every field a read returns, with the values of the
-- W2 store and a new string wherever the events' values differ, and that
-- the report's arithmetic says out of reach exactly when it is. Next to W2
-- it times the JSON texts and the ids an append must make (esbench.json):
-- the specs check that the texts are the store's, byte for byte, that
-- bytes JSON cannot hold are refused, and that a call takes nothing from
-- Lua's heap. Lua 5.4 only
-- (the bench runs under lua5.4; scripts/test.d/luajit.sh skips it).
local eventstore = require("eventstore")
local procs = require("spec.support.procs")

package.path = "bench/?.lua;" .. package.path
package.cpath = "build/bench/?.so;" .. package.cpath
local ok, bench = pcall(require, "esbench")
local workload = require("workload")

-- keys -> the type of each value (math.type for numbers), nested tables
-- described the same way
local function shape(t)
  local out = {}
  for k, v in pairs(t) do
    if type(v) == "table" then out[k] = shape(v)
    elseif type(v) == "number" then out[k] = math.type(v)
    else out[k] = type(v) .. ":" .. #v end
  end
  return out
end

describe("the bench's floor of a read (esbench.tables)", function()
  if not ok then
    it("is built (make bench-tools)", function() error(bench) end)
    return
  end

  it("builds every field a read returns, with the W2 store's values", function()
    local store = assert(eventstore.open("memory:"))
    local d = workload.driver(eventstore, "spec", nil)
    for s = 0, 1 do
      local evs = {}
      for r = 1, 100 do evs[r] = d.event(s, r) end
      assert(store:append(string.format("item-%06d", s), evs, { expected = 0 }))
    end
    local read = store:read_all({ after = 95, limit = 10 })
    local built = bench.tables(96, 10)
    assert.equals(10, #built)
    for i = 1, 10 do
      local a, b = read[i], built[i]
      assert.same(shape(a), shape(b))
      for _, k in ipairs({ "stream", "revision", "position", "type" }) do assert.equals(a[k], b[k]) end
      assert.same(a.data, b.data)
    end
    store:close()
  end)

  it("makes a new id, sku and uuids for every event, as a read does", function()
    local seen = {}
    local page = bench.tables(1, 1000)
    for _, ev in ipairs(page) do
      for _, v in ipairs({ ev.id, ev.data.sku, ev.metadata.correlationId, ev.metadata.causationId }) do
        assert.is_nil(seen[v])
        seen[v] = true
      end
    end
    assert.equals("item-000009", page[1000].stream)
    assert.equals(100, page[1000].revision)
    assert.equals("SKU-009100", page[1000].data.sku)
  end)

  it("refuses positions below 1 and more than 100,000 events", function()
    assert.error_matches(function() bench.tables(0, 1) end, "bad argument #1 to '.*' %(positions start at 1%)")
    assert.error_matches(function() bench.tables(1, 100001) end, "bad argument #2 to '.*' %(0 to 100000 events%)")
    assert.equals(0, #bench.tables(1, 0))
  end)

  -- With every allocation of a call made while the collector is paused, a
  -- restarted collector never saw one, and a loop of calls grew the heap by
  -- each call's 1 MB (about 200 MB here).
  it("keeps the heap bounded over many calls, in both of Lua 5.4's modes", function()
    for _, mode in ipairs({ "generational", "incremental" }) do
      local old = collectgarbage(mode)
      collectgarbage()
      local before = collectgarbage("count")
      for _ = 1, 200 do bench.tables(1, 1000) end
      local grown = collectgarbage("count") - before
      collectgarbage(old)
      assert.is_true(grown < 40 * 1024, mode .. ": the heap grew by " .. math.floor(grown) .. " KB")
    end
  end)

  it("leaves the collector running or stopped, as it found it", function()
    assert.is_true(collectgarbage("isrunning"))
    bench.tables(1, 2000)
    assert.is_true(collectgarbage("isrunning"))
    collectgarbage("stop")
    bench.tables(1, 2000)
    local running = collectgarbage("isrunning")
    collectgarbage("restart")
    assert.is_false(running)
  end)
end)

describe("the bench's floor of an append (esbench.json)", function()
  if not ok then
    it("is built (make bench-tools)", function() error(bench) end)
    return
  end

  local d = workload.driver(eventstore, "spec", nil)

  it("writes each event's data and metadata as the store writes them, byte for byte", function()
    local evs = {}
    for r = 1, 100 do evs[r] = d.event(7, r) end
    local bytes, texts = bench.json(evs, true)
    assert.equals(200, #texts)
    local sum = 0
    for i = 1, 100 do
      assert.equals(eventstore.json_encode(evs[i].data), texts[2 * i - 1])
      assert.equals(eventstore.json_encode(evs[i].metadata), texts[2 * i])
      sum = sum + #texts[2 * i - 1] + #texts[2 * i]
    end
    assert.equals(sum, bytes)
    -- the payload's data part: the 200-byte payload less its type and wrapper
    assert.equals(200 - #'{"type":"ItemAdded","data":}', #texts[1])
    assert.equals(bytes, bench.json(evs))
  end)

  it("escapes what JSON needs and writes reals that read back to the same bits", function()
    local values = { 'a"b\\c\n\1\31', 12.5, 3.0, -0.0625, 0.1, 1 / 3, 1e300, 2 ^ 53, math.mininteger, true, false }
    for _, v in ipairs(values) do
      local _, texts = bench.json({ { data = { x = v }, metadata = {} } }, true)
      local back = eventstore.json_decode(texts[1]).x
      assert.equals(v, back)
      assert.equals(math.type(v), math.type(back))
      assert.equals("{}", texts[2])
    end
  end)

  it("refuses what it does not write, with a clear error", function()
    local function err(evs) return select(2, pcall(bench.json, evs)) end
    assert.matches("a table value %(the floor writes the workload's values only%)",
      err({ { data = { x = {} }, metadata = {} } }))
    assert.matches("a key that is not a string", err({ { data = { 1 }, metadata = {} } }))
    assert.matches("a number JSON cannot hold", err({ { data = { x = 0 / 0 }, metadata = {} } }))
    assert.matches("a string that is not UTF%-8", err({ { data = { x = "caf\195" }, metadata = {} } }))
    assert.matches("a string that is not UTF%-8", err({ { data = {}, metadata = { ["\255"] = 1 } } }))
    assert.matches("event 2 is not a table", err({ { data = {}, metadata = {} }, 5 }))
    assert.matches("event 1 has no metadata table", err({ { data = {} } }))
    assert.matches("bad argument #1 to '.*' %(table expected, got no value%)", select(2, pcall(bench.json)))
  end)

  -- The floor is the texts alone: a collection it set off would be charged
  -- to it and not to the store.
  it("takes nothing from Lua's heap", function()
    local evs = {}
    for r = 1, 100 do evs[r] = d.event(3, r) end
    bench.json(evs)
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 50 do bench.json(evs) end
    local after = collectgarbage("count")
    collectgarbage("restart")
    assert.equals(before, after)
  end)
end)

describe("the bench report on reads and their tables", function()
  local dir

  setup(function()
    local rc, out = procs.sh("mktemp -d /tmp/es-bench-spec.XXXXXX")
    assert.equals(0, rc)
    dir = out:gsub("%s+$", "")
  end)

  teardown(function()
    if dir then procs.sh("rm -rf " .. procs.quote(dir)) end
  end)

  local function line(b, w, eps)
    return string.format('{"run":1,"backend":"%s","workload":"%s","events":100000,"seconds":%.6f,'
      .. '"events_per_s":%.1f,"peak_rss_mb":10.00}', b, w, 100000 / eps, eps)
  end

  -- The report over the given lines: its output and results.json's text.
  local function report(lines)
    local f = assert(io.open(dir .. "/lines.jsonl", "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local rc, out = procs.sh("BENCH_RUNS=1 lua5.4 bench/report.lua " .. procs.quote(dir .. "/lines.jsonl") .. " "
      .. procs.quote(dir .. "/results.json"))
    assert.equals(0, rc, out)
    f = assert(io.open(dir .. "/results.json"))
    local json = f:read("*a")
    f:close()
    return out, json
  end

  it("says out of reach when the tables alone take longer than the bar leaves", function()
    -- SQLite W3: the bar asks for 0.35 x 2,000,000 = 700,000 events/s,
    -- 1.43 us an event; the raw loop's storage work takes 0.5 and the
    -- tables alone 1.0, 1.5 in all. W4: 0.35 x 1,000,000 leaves 2.36 us
    -- after the raw loop's 1.0, and the tables take 1.0.
    local out, json = report({
      line("raw-sqlite-full", "W3", 2000000), line("sqlite-full", "W3", 400000),
      line("sqlite-full", "tables-W3", 1000000),
      line("raw-sqlite-full", "W4", 1000000), line("sqlite-full", "W4", 300000),
      line("sqlite-full", "tables-W4", 1000000),
      line("memory", "W3", 800000), line("memory", "tables-W3", 1200000),
      line("memory", "W4", 700000), line("memory", "tables-W4", 900000),
      line("raw-pg", "W3", 1000000), line("pg", "W3", 400000), line("pg", "tables-W3", 900000),
    })
    assert.matches("sqlite%-full%s+W3%s+700,000%s+1%.43%s+0%.50%s+1%.00%s+2%.50%s+out of reach", out)
    assert.matches("sqlite%-full%s+W4%s+350,000%s+2%.86%s+1%.00%s+1%.00%s+3%.33%s+not excluded", out)
    -- memory W3: 10 x 87,144 leaves 1.15 us, the tables take 0.83; W4:
    -- 10 x 240,457 leaves 0.42, the tables take 1.11
    assert.matches("memory%s+W3%s+871,440%s+1%.15%s+%-%s+0%.83%s+1%.25%s+not excluded", out)
    assert.matches("memory%s+W4%s+2,404,570%s+0%.42%s+%-%s+1%.11%s+1%.43%s+out of reach", out)
    -- the server works while the client builds: only the tables count
    assert.matches("pg%s+W3%s+500,000%s+2%.00%s+%-%s+1%.11%s+2%.50%s+not excluded %(the server", out)
    assert.matches('"backend":"sqlite%-full", "workload":"W3",[^\n]*"tables_events_per_s":1000000%.0000, '
      .. '"bar_events_per_s":700000%.0000, "bar_us_per_event":1%.4286, "raw_us_per_event":0%.5000, '
      .. '"tables_us_per_event":1%.0000, "out_of_reach":true', json)
    assert.matches('"backend":"pg", "workload":"W3",[^\n]*"raw_us_per_event":null,[^\n]*"out_of_reach":false', json)
  end)

  it("says out of reach when the JSON and ids alone take longer than the bar leaves", function()
    -- memory W2: 10 x 271,008 leaves 0.37 us an event, the texts take 0.40;
    -- SQLite W2: 0.6 x 200,000 leaves 8.33 us, 5.00 after the raw loop's
    -- storage work, and the texts take 0.40; PostgreSQL W2: 0.6 x 100,000
    -- leaves 16.67, 6.67 after the raw loop's, and the texts take 8.00
    local out, json = report({
      line("memory", "W2", 800000), line("memory", "json-W2", 2500000),
      line("raw-sqlite-full", "W2", 200000), line("sqlite-full", "W2", 150000),
      line("sqlite-full", "json-W2", 2500000),
      line("raw-pg", "W2", 100000), line("pg", "W2", 50000), line("pg", "json-W2", 125000),
    })
    assert.matches("appends against the cost of their JSON and ids alone", out)
    assert.matches("memory%s+W2%s+2,710,080%s+0%.37%s+%-%s+0%.40%s+1%.25%s+out of reach: the texts and ids alone", out)
    assert.matches("sqlite%-full%s+W2%s+120,000%s+8%.33%s+5%.00%s+0%.40%s+6%.67%s+not excluded\n", out)
    assert.matches("pg%s+W2%s+60,000%s+16%.67%s+10%.00%s+8%.00%s+20%.00%s+out of reach", out)
    assert.matches('"backend":"memory", "workload":"W2",[^\n]*"json_events_per_s":2500000%.0000, '
      .. '"bar_events_per_s":2710080, "bar_us_per_event":0%.3690, "raw_us_per_event":null, '
      .. '"json_us_per_event":0%.4000, "out_of_reach":true', json)
    assert.matches('"backend":"sqlite%-full", "workload":"W2",[^\n]*"raw_us_per_event":5%.0000,[^\n]*'
      .. '"out_of_reach":false', json)
    assert.not_matches("tables_events_per_s", json)
  end)

  it("holds PostgreSQL's single appends against the floor the raw loop's program times", function()
    -- The floor's line carries the raw INSERT timed side by side with it:
    -- 3,500 against 5,000 is 0.70, below the bar of 0.8, so no store of
    -- this kind reaches it (the W1 row's own raw loop, 6,000 here, is what
    -- ours is held against: 0.50). A floor at 4,500 (0.90) excludes nothing.
    local function floor_line(eps, raw)
      return (line("raw-pg", "floor-W1", eps):gsub("}$", string.format(',"raw_events_per_s":%.1f}', raw)))
    end
    local out, json = report({
      line("raw-pg", "W1", 6000), floor_line(3500, 5000), line("pg", "W1", 3000),
    })
    assert.matches("single appends against a floor of one on the same server", out)
    assert.matches("pg%s+W1%s+0%.80%s+0%.70%s+0%.50%s+out of reach: the floor alone is below the bar", out)
    assert.matches('"backend":"pg", "workload":"W1",[^\n]*"sql_events_per_s":3500%.0000, '
      .. '"bar_events_per_s":4000%.0000, "bar_us_per_event":250%.0000, "raw_us_per_event":null, '
      .. '"sql_us_per_event":285%.7143, "side_raw_events_per_s":5000%.0000, "sql_ratio":0%.7000, '
      .. '"out_of_reach":true', json)
    out = report({ line("raw-pg", "W1", 6000), floor_line(4500, 5000), line("pg", "W1", 3000) })
    assert.matches("pg%s+W1%s+0%.80%s+0%.90%s+0%.50%s+not excluded\n", out)
    -- SQLite and memory have no such floor
    out = report({ line("raw-sqlite-full", "W1", 5000), line("sqlite-full", "W1", 3000), line("memory", "W1", 300000) })
    assert.not_matches("single appends against a floor", out)
  end)

  it("compares the reducer bar with the raw W5 loop", function()
    local out, json = report({
      line("raw-sqlite-full", "W5", 2000000), line("sqlite-full", "W5", 1200000),
      line("sqlite-full", "W5-lua", 500000),
      line("raw-pg", "W5", 900000), line("pg", "W5", 700000), line("pg", "W5-lua", 80000),
    })
    assert.matches("sqlite%-full%s+state%(%) would need 5,000,000 events/s %(10x store:read%(%) %+ Lua fold%); "
      .. "the raw W5 loop reads 2,000,000: out of reach", out)
    assert.matches("pg%s+state%(%) would need 800,000 events/s %(10x store:read%(%) %+ Lua fold%); "
      .. "the raw W5 loop reads 900,000\n", out)
    assert.matches('"backend":"sqlite%-full", "workload":"C/Lua",[^\n]*"state_needed_events_per_s":5000000%.0000, '
      .. '"raw_w5_events_per_s":2000000%.0000, "out_of_reach":true', json)
    assert.matches('"backend":"pg", "workload":"C/Lua",[^\n]*"out_of_reach":false', json)
  end)
end)
