-- append_latency: how long one store:append holds the calling thread (an nginx worker's, in OpenResty)
-- SPDX-License-Identifier: MIT
--
--   luajit append_latency.lua URL [N] [normal]
--     URL e.g. sqlite:/tmp/x.db, postgres://es:es@127.0.0.1:5432/es; "normal"
--     opens SQLite with synchronous = "normal" (no fsync per commit in WAL)
--
-- Appends N single events (default 500) one by one to a few streams, as a
-- request handler would, and prints the median, p90, p99 and max time of a
-- call in microseconds. Every call is synchronous: in nginx this is the time
-- the worker serves no other request.
local eventstore = require("eventstore")
local socket = require("socket")

local url, n, sync = arg[1], tonumber(arg[2] or "500"), arg[3]
if not url then
  io.stderr:write("usage: append_latency.lua URL [N] [normal]\n")
  os.exit(2)
end
local store = assert(eventstore.open(url, sync and { synchronous = sync } or nil))
local run = eventstore.uuid():sub(1, 8)
local times = {}
for i = 1, n do
  local stream = "latency" .. run .. "-" .. (i % 10)
  local t0 = socket.gettime()
  assert(store:append(stream, { type = "Measured", data = { i = i, note = "a typical small event" } }))
  times[#times + 1] = (socket.gettime() - t0) * 1e6
end
store:close()
table.sort(times)
local function p(q) return times[math.max(1, math.ceil(#times * q))] end
print(string.format("%s%s: %d appends, p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.0f us",
  (url:gsub("//[^@]*@", "//***@")), sync and (" (synchronous " .. sync .. ")") or "", n, p(0.5), p(0.9), p(0.99), p(1)))
