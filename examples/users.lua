-- users.lua: evtstore's user domain. createUser/changeName commands on a user
-- aggregate (folded in Lua), and a populator that keeps a users read model
-- from a bookmark stored in the event store, so it resumes after a restart.
-- Run from the repository root:
--   lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path
--              package.cpath="build/5.4/?.so;"..package.cpath' examples/users.lua
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local db = dir .. "/users.db"
local view_file = dir .. "/users_view.txt"   -- the read model: "id<TAB>name<TAB>renames" lines
for _, f in ipairs({ db, db .. "-wal", db .. "-shm", view_file }) do os.remove(f) end

-- The domain, as in evtstore's example: a user is created once, then renamed.
local user = eventstore.aggregate {
  category = "user",
  initial = function() return { exists = false, name = "" } end,
  fold = function(state, ev)
    if ev.type == "userCreated" then
      state.exists, state.name = true, ev.data.name
    elseif ev.type == "nameChanged" then
      state.name = ev.data.name
    end
  end,
  commands = {
    createUser = function(state, cmd)
      if state.exists then error("user already exists", 0) end
      return { type = "userCreated", data = { name = cmd.name } }
    end,
    changeName = function(state, cmd)
      if not state.exists then error("user does not exist", 0) end
      if cmd.name == state.name then return nil end   -- nothing to change: nothing written
      return { type = "nameChanged", data = { name = cmd.name } }
    end,
  },
}

-- The read model lives in a file. Each handler writes it before the
-- subscription stores its bookmark, and applying an event twice gives the
-- same row, so a restart between the two loses nothing.
local function load_view()
  local view = {}
  local f = io.open(view_file, "r")
  if not f then return view end
  for line in f:lines() do
    local id, name, renames = line:match("^(.-)\t(.-)\t(%d+)$")
    view[id] = { name = name, renames = tonumber(renames) }
  end
  f:close()
  return view
end

local function save_view(view)
  local ids = {}
  for id in pairs(view) do ids[#ids + 1] = id end
  table.sort(ids)
  local f = assert(io.open(view_file .. ".new", "w"))
  for _, id in ipairs(ids) do f:write(id, "\t", view[id].name, "\t", view[id].renames, "\n") end
  f:close()
  assert(os.rename(view_file .. ".new", view_file))
end

-- The populator: handlers keyed by event type, bookmark "users-populator".
local function populator(store, view)
  return assert(store:subscribe("users-populator", { category = "user", from = "start" }, {
    userCreated = function(ev)
      view[ev.stream:sub(6)] = { name = ev.data.name, renames = 0 }
      save_view(view)
    end,
    nameChanged = function(ev)
      local row = view[ev.stream:sub(6)]
      row.name, row.renames = ev.data.name, ev.revision - 1
      save_view(view)
    end,
  }))
end

local function show(title, view)
  print(title)
  local ids = {}
  for id in pairs(view) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do
    print(("  %-6s %-10s renamed %d time(s)"):format(id, view[id].name, view[id].renames))
  end
end

local function command(users, id, name, payload)
  local res, err = users:execute(id, name, payload)
  if res then
    print(("  %-10s %-5s %-8s -> %s"):format(name, id, payload.name,
      res.count == 0 and "nothing to write" or ("revision " .. res.revision)))
  else
    print(("  %-10s %-5s %-8s -> %s"):format(name, id, payload.name, tostring(err)))
  end
  return res, err
end

-- First run of the application.
do
  local store = assert(eventstore.open("sqlite:" .. db))
  local users = user:bind(store)
  print("first run, commands:")
  command(users, "ann", "createUser", { name = "Ann" })
  command(users, "bob", "createUser", { name = "Bob" })
  assert(select(2, command(users, "ann", "createUser", { name = "Annie" })).code == "rejected")
  assert(select(2, command(users, "carl", "changeName", { name = "Carl" })).code == "rejected")
  command(users, "ann", "changeName", { name = "Annie" })
  command(users, "ann", "changeName", { name = "Annie" })
  local view = load_view()
  local pop = populator(store, view)
  print(("populator handled %d events, bookmark at %d"):format(assert(pop:poll()), pop:position()))
  show("read model:", view)
  -- more happens before the application stops; the populator does not see it yet
  command(users, "bob", "changeName", { name = "Robert" })
  command(users, "dan", "createUser", { name = "Dan" })
  store:close()
end

-- Second run: a new store handle and a new populator resume from the bookmark.
do
  local store = assert(eventstore.open("sqlite:" .. db))
  local view = load_view()
  local pop = populator(store, view)
  local bookmark = pop:position()
  local n = assert(pop:poll())
  print(("second run: populator resumed at %d, handled %d new events, bookmark at %d"):format(bookmark, n,
    pop:position()))
  assert(n == 2)
  show("read model:", view)
  assert(view.bob.name == "Robert" and view.ann.name == "Annie" and view.dan.name == "Dan")
  local state, revision = user:bind(store):load("ann")
  print(("aggregate user-ann: name %s at revision %d"):format(state.name, revision))
  store:close()
end
