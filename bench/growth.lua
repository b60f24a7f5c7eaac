-- growth.lua: what one append costs on an empty store and on one holding 1,000,000 events
-- SPDX-License-Identifier: MIT
--
-- usage (from the repository root):
--   lua5.4 bench/growth.lua NAME URL [full|normal|-]
-- Probes: a warm-up round, then 9 timed rounds of 2,000 single-event appends
-- (10,000 for a backend that does 2,000 in under 50 ms; W1's shape:
-- round-robin over 200 new streams, exact expected revisions; the median
-- round counts), on the empty store; then
-- the store is filled to 1,000,000 events (10,000 streams of 100, untimed)
-- and probed again the same way. Prints one JSON line with both medians and
-- their ratio (WORKLOAD.md: at most 1.3). BENCH_SCALE shrinks the fill.

package.path = "lua/?.lua;lua/?/init.lua;bench/?.lua;" .. package.path
package.cpath = "build/5.4/?.so;build/bench/?.so;" .. package.cpath

local bench = require("esbench")
local workload = require("workload")
local ok, eventstore = pcall(require, "eventstore")
if not ok then
  io.stderr:write("bench: cannot load eventstore: ", tostring(eventstore), "\n")
  os.exit(2)
end

local name, url, sync = arg[1], arg[2], arg[3]
if not (name and url) then
  io.stderr:write("usage: lua5.4 bench/growth.lua NAME URL [full|normal|-]\n")
  os.exit(2)
end

local REVS = workload.REVS
local ROUNDS, PROBE_STREAMS = 9, 200
-- revisions per stream in a round: 10 (2,000 appends), or 50 when the
-- warm-up round of the empty store took under 50 ms (a fast backend's round
-- would otherwise be a few ms, at the mercy of one scheduler hiccup)
local PROBE_REVS = 10
local FILL_STREAMS = workload.scaled(10000)
local d = workload.driver(eventstore, name, sync)
local now = bench.now

-- One probe round: PROBE_REVS appends of one event into each of 200 streams
-- of its own.
-- The events are built before the clock starts, as in W1.
local function probe(store, tag)
  local names, batches = {}, {}
  for s = 0, PROBE_STREAMS - 1 do names[s] = string.format("probe-%s-%06d", tag, s) end
  for i = 0, PROBE_STREAMS * PROBE_REVS - 1 do
    batches[i] = { d.event(i % PROBE_STREAMS, i // PROBE_STREAMS + 1) }
  end
  -- the garbage of the fill (or of the round before) is collected first, so
  -- the round times the store, not the Lua collector catching up
  collectgarbage("collect")
  local t0 = now()
  for i = 0, PROBE_STREAMS * PROBE_REVS - 1 do
    local r = i // PROBE_STREAMS + 1
    local res, err = store:append(names[i % PROBE_STREAMS], batches[i], { expected = r - 1 })
    if not res then d.fail("probe %s append %d: %s", tag, i, tostring(err)) end
  end
  return (now() - t0) / (PROBE_STREAMS * PROBE_REVS) * 1e6
end

-- A first, untimed round lets both phases start warm: statements prepared,
-- SQLite's WAL grown to its working size (extending a file costs more per
-- fsync than rewriting it), the server's caches loaded.
local function median_probe(store, phase)
  local warm = probe(store, phase .. "0")
  if phase == "empty" and warm * PROBE_STREAMS * PROBE_REVS < 50000 then PROBE_REVS = 50 end
  local us = {}
  for k = 1, ROUNDS do us[k] = probe(store, phase .. k) end
  table.sort(us)
  return us[(ROUNDS + 1) // 2]
end

local store = d.open(url)
local empty_us = median_probe(store, "empty")

-- The fill: one prebuilt batch of 100 events appended to 10,000 streams; the
-- store gives every copy its own id, position and revision.
local batch = {}
for r = 1, REVS do batch[r] = d.event(0, r) end
local t0 = now()
for s = 1, FILL_STREAMS do
  local res, err = store:append(string.format("fill-%07d", s), batch, { expected = 0 })
  if not res then d.fail("fill append %d: %s", s, tostring(err)) end
end
local fill_secs = now() - t0
-- The fill leaves hundreds of MB of dirty pages for the kernel to write back
-- (the SQLite file, the server's WAL and tables). Written back now, before
-- the probes, they are not timed as part of the appends: an fsync of the
-- store's file in a probe round would otherwise wait for all of them (two
-- of three runs of SQLite FULL gave 1.55 and 1.68 that way, on 2026-12-07).
if os.getenv("BENCH_GROWTH_SYNC") ~= "0" then os.execute("sync") end

local full_us = median_probe(store, "full")
store:close()

d.emit_raw("growth", string.format(
  ',"fill_events":%d,"fill_events_per_s":%.1f,"empty_us_per_event":%.2f,"full_us_per_event":%.2f,'
  .. '"ratio":%.3f,"peak_rss_mb":%.2f',
  FILL_STREAMS * REVS, FILL_STREAMS * REVS / fill_secs, empty_us, full_us, full_us / empty_us,
  workload.mb(bench.status_kb("VmHWM"))))
