-- aws_event_stream.lua: an order's history folded into one object, and a publisher
-- SPDX-License-Identifier: MIT
--
-- aws-event-stream keeps an `orders` stream per order, rebuilds the order
-- from its history (`loadFromHistory`) into one object that also lists the
-- types of the events it went through, and notifies a publisher (SNS in the
-- original) on every append. Here the fold is a C reducer (`["*"] = "last"`,
-- `[eventstore.TYPES] = "history"`, items appended), the history is read
-- back with `store:read`, and the publisher gets the committed events that
-- `store:append` returns (ids, revisions and positions filled in).
--
-- Run: lua5.4 examples/aws_event_stream.lua (make examples runs it on a SQLite file).
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/aws-event-stream-example.db"
local function remove_db()
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end
remove_db()
local store = assert(eventstore.open("sqlite:" .. path))

-- The publisher: every subscriber gets the events of each successful append,
-- once, after the commit (a failed append publishes nothing).
local subscribers, published = {}, {}
local function subscribe(fn) subscribers[#subscribers + 1] = fn end
local function append(stream, events, opts)
  local res, err = store:append(stream, events, opts)
  if not res then return nil, err end
  for _, fn in ipairs(subscribers) do fn(res.events) end
  return res
end

subscribe(function(events)
  for _, ev in ipairs(events) do
    published[#published + 1] = ev
    print(("  published %-13s %s r%d (position %d)"):format(ev.type, ev.stream, ev.revision, ev.position))
  end
end)

local order = "orders-1001"
assert(append(order, {
  { type = "OrderCreated", data = { id = "1001", customer = "ann", status = "new" } },
  { type = "ItemAdded", data = { item = { sku = "A-1", qty = 2, price = 12.5 } } },
  { type = "ItemAdded", data = { item = { sku = "B-7", qty = 1, price = 17.5 } } },
}, { expected = eventstore.NO_STREAM }))
assert(append(order, { type = "OrderPaid", data = { status = "paid", amount = 42.5 } }, { expected = 3 }))
-- a stale writer is refused, and nothing is published for it
local ok, err = append(order, { type = "OrderCancelled", data = { status = "cancelled" } }, { expected = 3 })
assert(not ok and err.code == "conflict")
print(("stale cancel refused: %s"):format(tostring(err)))
assert(append(order, { type = "OrderShipped", data = { status = "shipped", carrier = "ups" } }, { expected = 4 }))
assert(#published == 5)

-- The order as one object: the newest value of each field, the items in
-- order, and the list of event types it went through.
local rules = eventstore.reducer({
  ["*"] = "last",
  items = { "append", from = "item" },
  item = "drop",
  [eventstore.TYPES] = "history",
})
local state, revision = store:state(order, rules)
print(("order %s at revision %d: %s"):format(state.id, revision, eventstore.json_encode(state)))
assert(revision == 5 and state.status == "shipped" and #state.items == 2)
assert(table.concat(state.history, ",") == "OrderCreated,ItemAdded,ItemAdded,OrderPaid,OrderShipped")

-- loadFromHistory: the same fold over the events read back
local again = rules:fold(store:read(order))
assert(eventstore.json_encode(again.history) == eventstore.json_encode(state.history))
assert(again.carrier == "ups" and again.amount == 42.5)

-- An order without events is the initial object with an empty history.
local empty = store:state("orders-404", rules, { initial = { history = eventstore.array(), status = "none" } })
print(("orders-404: %s"):format(eventstore.json_encode(empty)))
assert(#empty.history == 0 and empty.status == "none")

store:close()
remove_db()
