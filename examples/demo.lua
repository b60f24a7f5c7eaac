-- demo.lua: a bank account on the embedded SQLite store (run by `make demo`)
local eventstore = require("eventstore")

local path = os.getenv("EVENTSTORE_DEMO_DB") or "events.db"
local store = assert(eventstore.open("sqlite:" .. path))

local stream = "account-42"
local correlation = eventstore.uuid()
local res = assert(store:append(stream, {
  { type = "Opened", data = { owner = "ann" }, metadata = { correlation_id = correlation } },
  { type = "Deposited", data = { amount = 10 }, metadata = { correlation_id = correlation } },
}, { expected = store:revision(stream) }))
print(("appended %d events to %s: revision %d, position %d"):format(res.count, stream, res.revision,
  res.position))

-- A writer that still believes the stream is new gets a conflict, and nothing is written.
local _, err = store:append(stream, { type = "Opened", data = { owner = "bob" } },
  { expected = eventstore.NO_STREAM })
print(("second writer: %s (expected %d, actual %d)"):format(err.code, err.expected, err.actual))

assert(store:append(stream, { type = "Withdrawn", data = { amount = 3 } }, { expected = res.revision }))

local balance = 0
for _, ev in ipairs(store:read(stream)) do
  local amount = ev.data.amount or 0
  if ev.type == "Withdrawn" then amount = -amount end
  balance = balance + amount
  print(("  %d  %-10s %-30s position %d"):format(ev.revision, ev.type,
    ev.data.owner and ("owner=" .. ev.data.owner) or ("amount=" .. tostring(ev.data.amount)), ev.position))
end
print(("%s is at revision %d, balance %d"):format(stream, store:revision(stream), balance))
local stats = store:stats()
print(("store: %d events in %d streams (%s)"):format(stats.events, stats.streams, stats.backend))
store:close()
