-- crash_writer: the child process of spec/crash_spec.lua, appending until it is killed
-- SPDX-License-Identifier: MIT
--
--   lua5.4 spec/support/crash_writer.lua URL CATEGORY NSTREAMS SEED LOG READY ERRFILE [SYNCHRONOUS]
--
-- Appends batches of 1 to 6 events to CATEGORY-1 .. CATEGORY-NSTREAMS, each
-- with the exact expected revision it read from the store, and writes one
-- line to LOG only after append returned (the acknowledged appends):
--   <stream> <batch id> <first revision> <last revision> <last position>
-- Every event carries data { batch, i, n, pad } so that a partly written
-- batch can be seen. After about one append in four it also saves a
-- snapshot { revision, batch } of that stream (at most 2 kept per stream)
-- and stores the checkpoint CATEGORY_writer = the append's position.
-- READY is created once the store is open. Any failure
-- other than being killed goes to ERRFILE and exits 1. It stops by itself
-- after 60 s (the test kills it long before).
local url, category, nstreams, seed, logpath, readypath, errpath, synchronous = ...
nstreams, seed = tonumber(nstreams), tonumber(seed)

local eventstore = require("eventstore")

local function fail(msg)
  local f = io.open(errpath, "ab")
  if f then f:write(tostring(msg), "\n") f:close() end
  os.exit(1)
end

local store, err = eventstore.open(url, { max_snapshots = 2, synchronous = synchronous })
if not store then fail("open: " .. tostring(err)) end

local state = seed % 2147483647
if state == 0 then state = 1 end
local function random(m, n)
  state = (state * 16807) % 2147483647
  return m + state % (n - m + 1)
end

local log = assert(io.open(logpath, "ab"))
assert(io.open(readypath, "wb")):close()

local deadline = os.time() + 60
while os.time() < deadline do
  local stream = category .. "-" .. random(1, nstreams)
  local rev, rerr = store:revision(stream)
  if not rev then fail("revision: " .. tostring(rerr)) end
  local n = random(1, 6)
  local batch = eventstore.uuid()
  local events = {}
  for i = 1, n do
    events[i] = {
      id = eventstore.uuid(),
      type = "Crashed" .. i,
      data = { batch = batch, i = i, n = n, pad = string.rep("x", random(0, 1000)) },
      metadata = { correlation_id = batch },
    }
  end
  local res, aerr = store:append(stream, events, { expected = rev })
  if not res then fail("append to " .. stream .. " at " .. rev .. ": " .. tostring(aerr)) end
  if res.revision ~= rev + n then fail("append returned revision " .. res.revision .. ", expected " .. (rev + n)) end
  -- one write(2) per line: a kill lands before or after it, never inside
  log:write(string.format("%s %s %d %d %d\n", stream, batch, rev + 1, res.revision, res.position))
  log:flush()
  -- now and then a snapshot (pruned to 2 per stream) and a checkpoint, so
  -- that kills also land in those writes
  if random(1, 4) == 1 then
    local ok, serr = store:save_snapshot(stream, res.revision, { revision = res.revision, batch = batch }, 1)
    if not ok then fail("save_snapshot: " .. tostring(serr)) end
    ok, serr = store:checkpoint(category .. "_writer", res.position)
    if not ok then fail("checkpoint: " .. tostring(serr)) end
  end
end
os.exit(0)
