-- run.lua: runs WORKLOAD.md's W1-W5 against one eventstore backend and prints JSON lines
-- SPDX-License-Identifier: MIT
--
-- usage (from the repository root):
--   lua5.4 bench/run.lua NAME URL_W1 URL_W2 [full|normal|-]
-- NAME labels the output ("sqlite-full"); URL_W1 and URL_W2 must be empty
-- stores (W2-W5 run on a fresh store). The optional third argument is the
-- synchronous option. When BENCH_RESET is set, it is run as a shell command
-- before each store is opened (the PostgreSQL driver empties its database).
-- BENCH_SCALE (0 < x <= 1) scales the number of streams; each keeps 100 events.

package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "build/5.4/?.so;build/bench/?.so;" .. package.cpath

local bench = require("esbench")
local workload = require("workload")
local ok, eventstore = pcall(require, "eventstore")
if not ok then
  io.stderr:write("bench: cannot load eventstore: ", tostring(eventstore), "\n")
  os.exit(2)
end

local name, url1, url2, sync = arg[1], arg[2], arg[3], arg[4]
if not (name and url1 and url2) then
  io.stderr:write("usage: lua5.4 bench/run.lua NAME URL_W1 URL_W2 [full|normal|-]\n")
  os.exit(2)
end

local REVS, PAGE = workload.REVS, workload.PAGE
local W1_STREAMS, W2_STREAMS = workload.scaled(200), workload.scaled(1000)
local d = workload.driver(eventstore, name, sync)
local fail, emit, emit_status, open, make_event = d.fail, d.emit, d.emit_status, d.open, d.event
local mb = workload.mb

-- Inputs, built before the first clock read: all 120,000 events as tables.
local w1_names, w1_batches = {}, {}
for s = 0, W1_STREAMS - 1 do w1_names[s] = string.format("w1-item-%06d", s) end
for i = 0, W1_STREAMS * REVS - 1 do
  local s = i % W1_STREAMS
  w1_batches[i] = { make_event(s, i // W1_STREAMS + 1) }
end
local names, batches = {}, {}
for s = 0, W2_STREAMS - 1 do
  names[s] = string.format("item-%06d", s)
  local b = {}
  for r = 1, REVS do b[r] = make_event(s, r) end
  batches[s] = b
end
collectgarbage()
collectgarbage()
d.emit_raw("floor", string.format(',"rss_mb":%.2f', mb(bench.status_kb("VmRSS"))))

local now, reset_peak = bench.now, bench.reset_peak

-- W1: one event per append, round-robin, expected revision tracked by the client
local store = open(url1)
reset_peak()
local t0 = now()
for i = 0, W1_STREAMS * REVS - 1 do
  local r = i // W1_STREAMS + 1
  local res, err = store:append(w1_names[i % W1_STREAMS], w1_batches[i], { expected = r - 1 })
  if not res then fail("W1 append %d: %s", i, tostring(err)) end
end
emit("W1", W1_STREAMS * REVS, now() - t0)
store:close()
w1_batches = nil -- luacheck: ignore (frees the W1 inputs)
collectgarbage()

-- W2: 100 events per append, one append per stream, on a fresh store
store = open(url2)
reset_peak()
t0 = now()
for s = 0, W2_STREAMS - 1 do
  local res, err = store:append(names[s], batches[s], { expected = 0 })
  if not res then fail("W2 append %d: %s", s, tostring(err)) end
end
emit("W2", W2_STREAMS * REVS, now() - t0)
local total = W2_STREAMS * REVS

-- The floor of W2 in this process: the JSON texts of every event's data and
-- metadata, checked as UTF-8 and written from the same tables by the
-- store's own code, and an id for each event, with no other checks and no
-- storage (bench/lbench.c). No store that keeps events as JSON text with
-- an id appends them faster here.
do
  local json = bench.json
  reset_peak()
  t0 = now()
  for s = 0, W2_STREAMS - 1 do json(batches[s]) end
  emit("json-W2", total, now() - t0)
end

-- The W2 inputs are written: free the 100,000 event tables, whose marking
-- would otherwise be charged to every read below (the raw C limits hold no
-- such heap either).
batches = nil -- luacheck: ignore (frees the W2 inputs)
collectgarbage()
collectgarbage()

-- sku is "SKU-" followed by n on 6 digits. Checked through its bytes, as the
-- raw loops check the number they extract: keeping 100,000 expected sku
-- strings alive instead makes every string a read creates walk a large
-- interning table (Lua interns strings up to 40 bytes), which cut W3 by half.
local function sku_is(sku, n)
  if type(sku) ~= "string" or #sku ~= 10 then return false end
  local s, k, u, dash, d1, d2, d3, d4, d5, d6 = sku:byte(1, 10)
  return s == 83 and k == 75 and u == 85 and dash == 45 and
    ((((d1 * 10 + d2) * 10 + d3) * 10 + d4) * 10 + d5) * 10 + d6 - 5333328 == n
end

-- W3's check of stream s: 100 events, every revision and sku right.
local function check_stream(what, s, evs)
  local base = s * 1000
  if #evs ~= REVS then fail("%s stream %d has %d events", what, s, #evs) end
  for i = 1, REVS do
    local ev = evs[i]
    if ev.revision ~= i or not sku_is(ev.data.sku, base + i) then fail("%s stream %d event %d is wrong", what, s, i) end
  end
end

-- W4's walk over the pages that page(after) returns: the count, and the
-- events found out of revision order within their stream.
local function walk_pages(page_after)
  local lastrev, after, count, violations = {}, 0, 0, 0
  repeat
    local page = page_after(after)
    local n = #page
    for i = 1, n do
      local ev = page[i]
      local st = ev.stream
      if ev.revision ~= (lastrev[st] or 0) + 1 then violations = violations + 1 end
      lastrev[st] = ev.revision
    end
    count = count + n
    if n > 0 then after = page[n].position end
  until n < PAGE
  return count, violations
end

-- W3: each stream fully, decoded, every revision and sku checked
reset_peak()
t0 = now()
for s = 0, W2_STREAMS - 1 do check_stream("W3", s, store:read(names[s])) end
emit("W3", total, now() - t0)

-- W4: the whole store in global order, keyset pages of 1,000
do
  reset_peak()
  t0 = now()
  local count, violations = walk_pages(function(after) return store:read_all({ after = after, limit = PAGE }) end)
  local secs = now() - t0
  if count ~= total then fail("W4 read %d events", count) end
  emit("W4", count, secs, string.format(',"order_violations":%d', violations))
end

-- The floor of W3 and W4 in this process: the same Lua tables a read
-- returns, built by bench/lbench.c with no storage and no JSON, and checked
-- by the same loops. No store that returns Lua tables reads faster here.
do
  local tables = bench.tables
  reset_peak()
  t0 = now()
  for s = 0, W2_STREAMS - 1 do check_stream("tables-W3", s, tables(s * REVS + 1, REVS)) end
  emit("tables-W3", total, now() - t0)
  reset_peak()
  t0 = now()
  local count = walk_pages(function(after) return tables(after + 1, math.min(PAGE, total - after)) end)
  local secs = now() - t0
  if count ~= total then fail("tables-W4 built %d events", count) end
  emit("tables-W4", count, secs)
end

-- The W5 rules as plain Lua: merge data, later fields win, qty is summed.
local function lua_fold(state, evs)
  for i = 1, #evs do
    for k, v in pairs(evs[i].data) do
      if k == "qty" then state.qty = (state.qty or 0) + v else state[k] = v end
    end
  end
  return state
end

local function check_state(s, state, what)
  local sku = string.format("SKU-%06d", s * 1000 + REVS)
  if not state or state.qty ~= 300 or state.sku ~= sku then
    fail("%s stream %d: qty %s sku %s", what, s, tostring(state and state.qty), tostring(state and state.sku))
  end
end

-- W5: the C reducer through store:state(), then the same rules as a Lua fold over store:read()
local rules
if type(eventstore.reducer) == "function" and type(store.state) == "function" then
  rules = eventstore.reducer({ ["*"] = "last", qty = "sum" })
  reset_peak()
  t0 = now()
  for s = 0, W2_STREAMS - 1 do
    local state = store:state(names[s], rules)
    check_state(s, state, "W5")
  end
  emit("W5", total, now() - t0)
else
  emit_status("W5", "n/a", "eventstore.reducer or store:state is missing")
end

reset_peak()
t0 = now()
for s = 0, W2_STREAMS - 1 do
  check_state(s, lua_fold({}, store:read(names[s])), "W5-lua")
end
emit("W5-lua", total, now() - t0)

-- The reducer against the Lua fold on the very same decoded events: only
-- the folding is timed, so the ratio is C versus Lua and nothing else.
if rules and type(rules.fold) == "function" then
  local t_c, t_lua = 0, 0
  for s = 0, W2_STREAMS - 1 do
    local evs = store:read(names[s])
    local t = now()
    local state = rules:fold(evs, {})
    t_c = t_c + (now() - t)
    check_state(s, state, "fold (C)")
    t = now()
    state = lua_fold({}, evs)
    t_lua = t_lua + (now() - t)
    check_state(s, state, "fold (Lua)")
  end
  emit("fold", total, t_c, string.format(',"lua_events_per_s":%.1f,"c_over_lua":%.4f',
    total / t_lua, t_lua / t_c))
else
  emit_status("fold", "n/a", "eventstore.reducer or rules:fold is missing")
end

-- Iterating the whole W2 store with each(): what it adds to peak RSS over
-- the RSS of this process right before (the harness floor at that point).
if type(store.each) == "function" then
  collectgarbage()
  collectgarbage()
  local floor = bench.status_kb("VmRSS")
  reset_peak()
  local count = 0
  t0 = now()
  for _ in store:each() do count = count + 1 end
  local secs = now() - t0
  if count ~= total then fail("each read %d events", count) end
  emit("each", count, secs, string.format(',"rss_added_mb":%.2f',
    mb(math.max(0, (bench.status_kb("VmHWM") or 0) - (floor or 0)))))
else
  emit_status("each", "n/a", "store:each is missing")
end

store:close()
