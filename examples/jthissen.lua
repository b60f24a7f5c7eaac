-- jthissen.lua: jthissen/event-store's aggregate { id, name }, auto snapshots and queries
-- SPDX-License-Identifier: MIT
--
-- In jthissen/event-store an aggregate is identified by { id, name }, every
-- event carries its revision plus correlation and causation ids, the store
-- snapshots an aggregate every N revisions on its own, and events can be
-- fetched by id, the last one, the snapshot, or all of them in order between
-- two revisions. Here the aggregate { id, name } is the stream `<name>-<id>`,
-- the ids live in metadata, `snapshot_every = N` makes `store:state` write
-- the snapshots, and the queries are `store:event(id)`, `store:last`,
-- `store:snapshot` and `store:read(stream, { from, to })`.
--
-- Run: lua5.4 examples/jthissen.lua (make examples runs it on a SQLite file).
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/jthissen-example.db"
local function remove_db()
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end
remove_db()

local EVERY = 5
local store = assert(eventstore.open("sqlite:" .. path, { snapshot_every = EVERY, max_snapshots = 2 }))

-- The aggregate { id, name } of a calculation, as the original's example.
local aggregate = { name = "calculation", id = eventstore.uuid() }
local stream = aggregate.name .. "-" .. aggregate.id

-- The calculator's state: its current value and how many operations ran.
local rules = eventstore.reducer({
  ["*"] = "drop",
  value = "last",
  operations = { "count", from = "operand" },
})
local function load()
  return store:state(stream, rules, { initial = { value = 0, operations = 0 } })
end

-- A command: load the state, decide the event, append it at the expected
-- revision with the correlation id of the request and the causation id of
-- what caused it.
local function execute(op, operand, correlation_id, causation_id)
  local state, revision = load()
  local value = state.value
  if op == "add" then value = value + operand
  elseif op == "subtract" then value = value - operand
  elseif op == "multiply" then value = value * operand
  else error("unknown operation " .. op) end
  local res = assert(store:append(stream, {
    type = op == "add" and "Added" or op == "subtract" and "Subtracted" or "Multiplied",
    data = { operand = operand, value = value },
    metadata = { correlation_id = correlation_id, causation_id = causation_id },
  }, { expected = revision }))
  return res.events[1]
end

local correlation = eventstore.uuid()  -- one user request ...
local cause = correlation               -- ... whose first command it caused
local ids = {}
local ops = { { "add", 5 }, { "multiply", 3 }, { "subtract", 4 }, { "add", 10 }, { "multiply", 2 },
              { "add", 1 }, { "subtract", 7 }, { "add", 2 }, { "multiply", 5 }, { "subtract", 3 },
              { "add", 4 }, { "add", 6 } }
for _, op in ipairs(ops) do
  local ev = execute(op[1], op[2], correlation, cause)
  ids[#ids + 1] = ev.id
  cause = ev.id                          -- each event causes the next command
end

local state, revision = load()
print(("%s %s at revision %d: value %d after %d operations"):format(aggregate.name, aggregate.id, revision,
  state.value, state.operations))
assert(revision == #ops and state.operations == #ops and state.value == 197)

-- snapshots were written on their own every EVERY folded events (5, 10);
-- max_snapshots = 2 keeps the newest two
local snap = assert(store:snapshot(stream))
print(("snapshot at revision %d: %s"):format(snap.revision, eventstore.json_encode(snap.data)))
assert(snap.revision == 10)
local older = assert(store:snapshot(stream, { max_revision = 9 }))
assert(older.revision == 5)

-- an event by its id, with its revision and ids
local third = assert(store:event(ids[3]))
print(("event %s: %s r%d, caused by %s"):format(third.id, third.type, third.revision, third.metadata.causation_id))
assert(third.revision == 3 and third.metadata.causation_id == ids[2])
assert(third.metadata.correlation_id == correlation)

-- the last event
local last = store:last(stream)
print(("last event: r%d %s %s"):format(last.revision, last.type, eventstore.json_encode(last.data)))
assert(last.id == ids[#ids])

-- all events chronologically between two revisions (inclusive)
local between = store:read(stream, { from = 4, to = 7 })
for _, ev in ipairs(between) do
  print(("  r%d %-10s operand %d -> value %d"):format(ev.revision, ev.type, ev.data.operand, ev.data.value))
end
assert(#between == 4 and between[1].revision == 4 and between[4].revision == 7)

-- the state at an older revision: the snapshot at or below it plus the events after
local at = store:snapshot(stream, { max_revision = 7 })
local past = rules:fold(store:read(stream, { from = at.revision + 1, to = 7 }), at.data)
print(("state at revision 7: value %d"):format(past.value))
assert(past.value == between[4].data.value)

store:close()
remove_db()
