-- postgres_spec: concurrent writer processes on PostgreSQL, and a reader that trusts positions
-- SPDX-License-Identifier: MIT
--
-- Several lua5.4 processes append to one database at once. The deterministic
-- case (an append held open in a transaction while another commits) is in
-- tests/c/pg_check.c, which needs a transaction held open by hand.
local eventstore = require("eventstore")
local subprocess = require("spec.support.subprocess")
local fx = require("spec.support.fixtures")

local url = os.getenv("EVENTSTORE_PG_URL")
if url == "" then url = nil end

-- A child's preamble: open the store, wait for the common start second so
-- that the writers really overlap.
local OPEN = [[
local eventstore = require("eventstore")
local url, start = arg[1], tonumber(arg[2])
local store = assert(eventstore.open(url))
-- store:wait on a position no event reaches is a sleep until the start
while eventstore.now() < start do store:wait(2 ^ 50, start - eventstore.now()) end
]]

local function start_time()
  return eventstore.now() + 800
end

describe("PostgreSQL under concurrent writer processes #postgres", function()
  if not url then
    pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
    return
  end

  local store

  before_each(function()
    store = assert(eventstore.open(url))
  end)

  after_each(function()
    if store then store:close() end
  end)

  it("gives each revision of one stream to exactly one writer; the others get conflicts", function()
    local stream = fx.stream("race")
    local target = 60
    local code = OPEN .. [[
local stream, target = arg[3], tonumber(arg[4])
local conflicts = 0
while true do
  local rev = assert(store:revision(stream))
  if rev >= target then break end
  local res, err = store:append(stream, { type = "Won", data = { writer = arg[5] } }, { expected = rev })
  if res then
    print("win " .. res.revision)
  elseif err.code == "conflict" then
    assert(err.expected == rev and err.actual > rev, tostring(err))
    conflicts = conflicts + 1
  else
    error(tostring(err))
  end
end
print("conflicts " .. conflicts)
]]
    local start, children = start_time(), {}
    for w = 1, 4 do
      children[w] = subprocess.spawn(code, { url, start, stream, target, "w" .. w })
    end
    local winner, conflicts = {}, 0
    for w = 1, 4 do
      local ok, out = children[w]:wait()
      assert(ok, out)
      conflicts = conflicts + tonumber(out:match("conflicts (%d+)"))
      for rev in out:gmatch("win (%d+)") do
        rev = tonumber(rev)
        assert.is_nil(winner[rev], "revision " .. rev .. " won twice")
        winner[rev] = "w" .. w
      end
    end
    -- four writers racing from one start: the losers of each race get conflicts
    assert.is_true(conflicts > 0)
    local events = store:read(stream)
    assert.equals(target, #events)
    for i, ev in ipairs(events) do
      assert.equals(i, ev.revision)
      assert.equals(winner[i], ev.data.writer)
    end
  end)

  it("delivers every event of many writers to shared streams, revisions 1..n without gaps", function()
    local prefix = fx.stream("many")
    local code = OPEN .. [[
local prefix, writer = arg[3], arg[4]
for round = 1, 25 do
  for s = 1, 10 do
    assert(store:append(prefix .. "-" .. s, {
      { type = "A", data = { writer = writer, round = round, n = 1 } },
      { type = "A", data = { writer = writer, round = round, n = 2 } },
    }))
  end
end
]]
    local start, children = start_time(), {}
    for w = 1, 4 do children[w] = subprocess.spawn(code, { url, start, prefix, "w" .. w }) end
    for w = 1, 4 do
      local ok, out = children[w]:wait()
      assert(ok, out)
    end
    for s = 1, 10 do
      local events = store:read(prefix .. "-" .. s)
      assert.equals(4 * 25 * 2, #events)
      local seen = {}
      for i, ev in ipairs(events) do
        assert.equals(i, ev.revision)
        local key = ev.data.writer .. "/" .. ev.data.round .. "/" .. ev.data.n
        assert.is_nil(seen[key], "duplicate " .. key)
        seen[key] = true
        -- a batch is contiguous: its second event follows its first
        if ev.data.n == 2 then
          local prev = events[i - 1].data
          assert.same({ ev.data.writer, ev.data.round, 1 }, { prev.writer, prev.round, prev.n })
        end
      end
    end
  end)

  it("lets a reader polling read_all{ after } see every committed event once, in the final order", function()
    local category = ("ord" .. fx.stream("x")):gsub("[^%w]", "")
    local per_writer, writers = 150, 3
    local code = OPEN .. [[
local category, writer, n = arg[3], arg[4], tonumber(arg[5])
for i = 1, n do
  assert(store:append(category .. "-" .. (i % 7), { type = "T", data = { writer = writer, i = i } }))
end
]]
    local before = store:position()
    local start, children = start_time(), {}
    for w = 1, writers do
      children[w] = subprocess.spawn(code, { url, start, category, "w" .. w, per_writer })
    end
    -- poll while they write: a late commit must never be skipped
    local seen, order, after = {}, {}, before
    local deadline = eventstore.now() + 60000
    while #order < writers * per_writer and eventstore.now() < deadline do
      local page = assert(store:read_all({ after = after, category = category, limit = 50 }))
      for _, ev in ipairs(page) do
        assert.is_nil(seen[ev.id], "event seen twice: " .. ev.id)
        assert.is_true(ev.position > after)
        seen[ev.id] = true
        order[#order + 1] = ev.id
        after = ev.position
      end
      if #page == 0 then store:wait(after, 50) end
    end
    for w = 1, writers do
      local ok, out = children[w]:wait()
      assert(ok, out)
    end
    assert.equals(writers * per_writer, #order)
    local again = {}
    for ev in store:each(nil, { after = before, category = category }) do again[#again + 1] = ev.id end
    assert.same(again, order)
  end)
end)
