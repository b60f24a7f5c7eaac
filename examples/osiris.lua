-- osiris.lua: osiris' "context" state, merged field by field, on the embedded store
-- SPDX-License-Identifier: MIT
--
-- osiris (assafg/osiris) keeps one event log per context ('Bob') and folds
-- it with `getState(context)`: later fields win, fields named in its options
-- (`overtime: true`) are summed. Here a context is a stream `employee-<name>`
-- and the merge runs in C as a reducer: `["*"] = "last"`, `overtime = "sum"`.
-- A state that spans streams (the `acme` company across its employees) is
-- `store:state({ category = "employee", where = { company = "acme" } }, rules)`.
--
-- Run: lua5.4 examples/osiris.lua (make examples runs it on a SQLite file).
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/osiris-example.db"
local function remove_db()
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
end
remove_db()
local store = assert(eventstore.open("sqlite:" .. path))

-- es.onEvent({ context = 'Bob', ... }): one event in the context's stream
local function on_event(context, type, fields)
  return assert(store:append("employee-" .. context, { type = type, data = fields }))
end

on_event("bob", "Hired", { name = "Bob", company = "acme", title = "Engineer", salary = 3000 })
on_event("bob", "Promoted", { title = "VP Past Mistakes" })
on_event("bob", "Overtime", { overtime = 1 })
on_event("bob", "Overtime", { overtime = 3 })
on_event("alice", "Hired", { name = "Alice", company = "acme", title = "Designer", salary = 2500 })
on_event("carol", "Hired", { name = "Carol", company = "globex", title = "CEO", salary = 9000 })
on_event("dave", "Hired", { name = "Dave", company = "acme", title = "Intern", salary = 1500 })

-- getState('bob'): every field merged, the newest value wins, overtime summed
local person = eventstore.reducer({ ["*"] = "last", overtime = "sum" })
local bob, revision = store:state("employee-bob", person)
print(("getState('bob') at revision %d: %s"):format(revision, eventstore.json_encode(bob)))
assert(bob.title == "VP Past Mistakes" and bob.company == "acme" and bob.salary == 3000)
assert(bob.overtime == 4 and math.type(bob.overtime) == "integer")

-- the acme company: its employees' events, in global order, whose data says
-- company = "acme"; salaries summed
local company = eventstore.reducer({ ["*"] = "drop", salary = "sum", headcount = { "count", from = "salary" } })
local acme, position = store:state({ category = "employee", where = { company = "acme" } }, company)
print(("acme (events up to position %d): %s"):format(position, eventstore.json_encode(acme)))
assert(acme.salary == 7000 and acme.headcount == 3)

-- Bob moves to globex: his new event carries company = globex, so acme's
-- history keeps his old salary (what acme paid), and globex gains him.
on_event("bob", "Moved", { company = "globex", salary = 4000 })
acme = store:state({ category = "employee", where = { company = "acme" } }, company)
local globex = store:state({ category = "employee", where = { company = "globex" } }, company)
print(("after bob moves: acme %s, globex %s"):format(eventstore.json_encode(acme), eventstore.json_encode(globex)))
assert(acme.salary == 7000)
assert(globex.salary == 13000)
bob = store:state("employee-bob", person)
assert(bob.company == "globex" and bob.salary == 4000 and bob.overtime == 4)
print(("getState('bob') now: company %s, salary %d, overtime %d"):format(bob.company, bob.salary, bob.overtime))

store:close()
remove_db()
