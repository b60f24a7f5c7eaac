-- node_eventstore.lua: node-eventstore's event streams, publisher and dispatcher, snapshots and queries
-- SPDX-License-Identifier: MIT
--
-- node-eventstore (adrai/node-eventstore) loads an EventStream, adds events
-- to it and commits them; a publisher set with useEventPublisher receives
-- each committed event, and what it has not confirmed stays in the
-- undispatched list until setEventToDispatched. It also snapshots
-- (createSnapshot / getFromSnapshot) and queries events by revision range,
-- by time and page by page. Here the store is opened with `outbox = true`,
-- commit is one `store:append` at the stream's expected revision, and the
-- dispatcher is `store:undispatched()` + `store:mark_dispatched(ev)`.
--
-- Run: lua5.4 examples/node_eventstore.lua (make examples runs it on a SQLite file).
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/node-eventstore-example.db"
local function remove_db()
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end
remove_db()
local store = assert(eventstore.open("sqlite:" .. path, { outbox = true }))

-- es.useEventPublisher(fn): fn(event) returns true once the event is out.
-- This one refuses while the "broker" is down.
local broker_up, received = true, {}
local function publisher(ev)
  if not broker_up then return false end
  received[#received + 1] = ev
  return true
end

-- The dispatcher: publish what is not yet dispatched, in position order,
-- and mark each one as it goes out; stop at the first refusal (kept for
-- the next round, so delivery is at least once and in order).
local function dispatch()
  local n = 0
  for _, ev in ipairs(assert(store:undispatched())) do
    if not publisher(ev) then break end
    assert(store:mark_dispatched(ev))
    n = n + 1
  end
  return n
end

-- es.getEventStream(streamId): the committed events, the revision, and a
-- list of uncommitted ones; commit() appends them at the expected revision.
local function get_event_stream(stream_id)
  local stream = { id = stream_id, events = assert(store:read(stream_id)), uncommitted = {} }
  stream.last_revision = store:revision(stream_id)
  function stream.add_event(data, type)
    stream.uncommitted[#stream.uncommitted + 1] = { type = type or data.type or "Event", data = data }
  end
  function stream.commit()
    local res, err = store:append(stream.id, stream.uncommitted, { expected = stream.last_revision })
    if not res then return nil, err end
    for _, ev in ipairs(res.events) do stream.events[#stream.events + 1] = ev end
    stream.last_revision, stream.uncommitted = res.revision, {}
    dispatch()
    return stream
  end
  return stream
end

-- open a stream, add events, commit: the publisher receives them
local acct = get_event_stream("account-7")
acct.add_event({ owner = "ann" }, "AccountOpened")
acct.add_event({ amount = 100 }, "MoneyDeposited")
assert(acct.commit())
print(("committed account-7 up to revision %d; publisher received %d events"):format(acct.last_revision,
  #received))
assert(#received == 2 and received[2].type == "MoneyDeposited")

-- a second handle loads the stream now; it will be stale after the next commit
local late = get_event_stream("account-7")

-- the broker goes down: commits succeed, the events wait in the outbox
broker_up = false
for i = 1, 8 do acct.add_event({ amount = i * 10 }, "MoneyDeposited") end
acct.add_event({ amount = 50 }, "MoneyWithdrawn")
assert(acct.commit())
local waiting = assert(store:undispatched())
print(("broker down: %d events undispatched (first at revision %d)"):format(#waiting, waiting[1].revision))
assert(#waiting == 9)

-- it comes back: the dispatcher sends them in order and the outbox empties
broker_up = true
local sent = dispatch()
print(("broker up: dispatched %d, %d left"):format(sent, #assert(store:undispatched())))
assert(sent == 9 and #store:undispatched() == 0 and #received == 11)

-- the stale handle cannot commit over the events it has not seen: nothing is written
late.add_event({ amount = 1000000 }, "MoneyWithdrawn")
local ok, err = late.commit()
print(("stale commit: %s"):format(tostring(err)))
assert(not ok and err.code == "conflict" and err.expected == 2 and err.actual == 11)

-- createSnapshot at revision 6, then getFromSnapshot: the snapshot plus the events after it
local balance = eventstore.reducer({
  ["*"] = "drop",
  balance = { { "sum", from = "amount", when = "MoneyDeposited" },
              { "sum", from = "amount", when = "MoneyWithdrawn", scale = -1 } },
})
assert(store:save_snapshot("account-7", 6, balance:fold(store:read("account-7", { to = 6 })), 1))
local snap = assert(store:snapshot("account-7"))
local after = store:read("account-7", { from = snap.revision + 1 })
local now = balance:fold(after, snap.data)
print(("snapshot at revision %d (%s) + %d events = balance %d"):format(snap.revision,
  eventstore.json_encode(snap.data), #after, now.balance))
assert(now.balance == 100 + 360 - 50)

-- getEventsByRevision(query, 3, 5)
local range = store:read("account-7", { from = 3, to = 5 })
assert(#range == 3 and range[1].revision == 3 and range[3].revision == 5)

-- getEventsSince(date): everything stamped at or after a time
local since = store:since(acct.events[3].timestamp, { limit = 100 })
assert(#since >= 9)

-- getEvents(skip, limit): the whole store, page by page, in global order
local pages, total, after_pos = 0, 0, 0
repeat
  local page = assert(store:read_all({ after = after_pos, limit = 4 }))
  if #page > 0 then
    pages, total, after_pos = pages + 1, total + #page, page[#page].position
  end
until #page < 4
print(("paged through %d events in %d pages of 4"):format(total, pages))
assert(total == 11 and pages == 3)

-- getLastEvent
local last = store:last("account-7")
assert(last.type == "MoneyWithdrawn" and last.revision == 11)

store:close()
remove_db()
