-- subscription: catch-up subscriptions with stored checkpoints, on every backend
-- SPDX-License-Identifier: MIT
--
-- Every subscription filters by a category (or streams) unique to the test,
-- so the shared PostgreSQL database's other events never reach it.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local subprocess = require("spec.support.subprocess")

-- A handler that records what it got: positions, types, streams.
local function recorder()
  local got = { positions = {}, types = {}, streams = {}, events = {} }
  got.handle = function(ev, sub)
    assert.equals("eventstore.Subscription", getmetatable(sub).__name)
    got.positions[#got.positions + 1] = ev.position
    got.types[#got.types + 1] = ev.type
    got.streams[#got.streams + 1] = ev.stream
    got.events[#got.events + 1] = ev
  end
  return got
end

describe("subscribe arguments", function()
  local store
  before_each(function() store = assert(eventstore.open("memory:")) end)
  after_each(function() store:close() end)

  it("raise when malformed", function()
    local h = function() end
    fx.raises(function() store:subscribe(nil, {}, h) end, "name")
    fx.raises(function() store:subscribe("", {}, h) end, "name")
    fx.raises(function() store:subscribe("s", 5, h) end, "filter must be a table")
    fx.raises(function() store:subscribe("s", { categroy = "a" }, h) end, "unknown filter field 'categroy'")
    fx.raises(function() store:subscribe("s", { category = 5 }, h) end, "category")
    fx.raises(function() store:subscribe("s", { streams = {} }, h) end, "streams")
    fx.raises(function() store:subscribe("s", { streams = { 1 } }, h) end, "streams")
    fx.raises(function() store:subscribe("s", { types = {} }, h) end, "types")
    fx.raises(function() store:subscribe("s", { from = "middle" }, h) end, "position")
    fx.raises(function() store:subscribe("s", { from = -1 }, h) end, "position")
    fx.raises(function() store:subscribe("s", { batch = 0 }, h) end, "batch")
    fx.raises(function() store:subscribe("s", {}, nil) end, "handlers")
    fx.raises(function() store:subscribe("s", {}, { A = true }) end, "handlers")
    fx.raises(function() store:subscribe("s", {}, {}) end, "handlers table is empty")
    local sub = assert(store:subscribe("s", {}, h))
    fx.raises(function() sub:poll({ max = -1 }) end, "max")
    fx.raises(function() sub:poll(3) end, "options")
    fx.raises(function() sub:wait() end, "timeout")
    fx.raises(function() sub:reset("middle") end, "position")
    store:close()
    fx.raises(function() store:subscribe("s", {}, h) end, "closed store")
  end)
end)

for _, b in ipairs(backends.list) do
  describe("subscription on " .. b.name, function()
    local store, path
    if not backends.fresh(b, nil, function(s, p) store, path = s, p end) then return end

    it("delivers a category's events in global order and stores the checkpoint", function()
      local cat = fx.category("acct")
      local a, c = cat .. "-1", cat .. "-2"
      local r1 = assert(store:append(a, fx.events(2, "Deposited")))
      assert(store:append(fx.stream(), fx.event("Other")))
      local r2 = assert(store:append(c, fx.event("Opened")))
      local r3 = assert(store:append(a, fx.event("Withdrawn")))
      local got = recorder()
      local name = fx.name("sub")
      local sub = assert(store:subscribe(name, { category = cat }, got.handle))
      assert.equals(0, sub:position())
      assert.equals(4, sub:poll())
      local want = { r1.events[1].position, r1.events[2].position, r2.position, r3.position }
      assert.same(want, got.positions)
      assert.same({ "Deposited", "Deposited", "Opened", "Withdrawn" }, got.types)
      assert.same({ a, a, c, a }, got.streams)
      assert.equals(r3.position, sub:position())
      assert.equals(r3.position, store:checkpoint(name))
      assert.equals(0, sub:poll())
      local r4 = assert(store:append(c, fx.event("Closed")))
      assert.equals(1, sub:poll())
      assert.equals(r4.position, store:checkpoint(name))
      assert.equals(5, #got.types)
    end)

    it("dispatches by type with a '*' fallback; events without a handler are skipped past", function()
      local cat = fx.category("acct")
      local s = cat .. "-1"
      local seen = {}
      assert(store:append(s, { fx.event("A"), fx.event("B"), fx.event("C") }))
      local sub = assert(store:subscribe(fx.name("sub"), { category = cat }, {
        A = function(ev) seen[#seen + 1] = "A:" .. ev.revision end,
        ["*"] = function(ev) seen[#seen + 1] = "*:" .. ev.type end,
      }))
      assert.equals(3, sub:poll())
      assert.same({ "A:1", "*:B", "*:C" }, seen)
      -- no "*": types without a handler are skipped, the checkpoint still moves past them
      seen = {}
      local name = fx.name("sub")
      local only = assert(store:subscribe(name, { category = cat, types = { "A", "C" } }, {
        A = function(ev) seen[#seen + 1] = ev.type end,
      }))
      assert.equals(2, only:poll())
      assert.same({ "A" }, seen)
      local last = store:last(s)
      assert.equals(last.position, only:position())
      assert.equals(last.position, store:checkpoint(name))
      -- a handler table without "*" reads only its types
      seen = {}
      local typed = assert(store:subscribe(fx.name("sub"), { category = cat }, {
        B = function(ev) seen[#seen + 1] = ev.type end,
      }))
      assert.equals(1, typed:poll())
      assert.same({ "B" }, seen)
    end)

    it("filters by a list of streams and by types", function()
      local cat = fx.category("acct")
      local s1, s2, s3 = cat .. "-1", cat .. "-2", fx.stream()
      local first = assert(store:append(s1, fx.event("A")))
      assert(store:append(s2, fx.event("B")))
      assert(store:append(s3, fx.event("A")))
      local last = assert(store:append(s1, fx.event("B")))
      local got = recorder()
      local sub = assert(store:subscribe(fx.name("sub"), { streams = { s1, s3 }, from = first.position - 1 },
        got.handle))
      assert.is_true(sub:poll() >= 4)
      assert.same({ s1, s3, s1 }, got.streams)
      assert.same({ "A", "A", "B" }, got.types)
      assert.is_true(sub:position() >= last.position)
      local typed = recorder()
      local sub2 = assert(store:subscribe(fx.name("sub"), { category = cat, types = "B" }, typed.handle))
      assert.equals(2, sub2:poll())
      assert.same({ s2, s1 }, typed.streams)
      local both = recorder()
      local sub3 = assert(store:subscribe(fx.name("sub"), { category = cat, streams = { s1 }, types = { "B" } },
        both.handle))
      sub3:poll()
      assert.same({ "B" }, both.types)
      assert.same({ s1 }, both.streams)
    end)

    it("from = 'end' starts after the newest event at the first subscribe, and is stored", function()
      local cat = fx.category("acct")
      assert(store:append(cat .. "-1", fx.events(3)))
      local name = fx.name("sub")
      local got = recorder()
      local sub = assert(store:subscribe(name, { category = cat, from = "end" }, got.handle))
      local head = store:stats().position
      assert.is_true(sub:position() >= store:last(cat .. "-1").position)
      assert.is_true(sub:position() <= head)
      assert.equals(sub:position(), store:checkpoint(name))
      assert.equals(0, sub:poll())
      local r = assert(store:append(cat .. "-2", fx.event("New")))
      -- a second subscribe under the name resumes from the stored checkpoint, not a new end
      local again = recorder()
      local sub2 = assert(store:subscribe(name, { category = cat, from = "end" }, again.handle))
      assert.equals(1, sub2:poll())
      assert.same({ r.position }, again.positions)
    end)

    it("from = a position starts after it; a stored checkpoint wins over from", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(4)))
      local got = recorder()
      local name = fx.name("sub")
      local sub = assert(store:subscribe(name, { category = cat, from = r.events[2].position }, got.handle))
      assert.equals(2, sub:poll())
      assert.same({ r.events[3].position, r.events[4].position }, got.positions)
      local again = recorder()
      local sub2 = assert(store:subscribe(name, { category = cat, from = "start" }, again.handle))
      assert.equals(r.position, sub2:position())
      assert.equals(0, sub2:poll())
      assert.same({}, again.positions)
    end)

    it("poll{ max } handles at most max events; the rest come with the next poll", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(7)))
      local got = recorder()
      local name = fx.name("sub")
      local sub = assert(store:subscribe(name, { category = cat, batch = 2 }, got.handle))
      assert.equals(3, sub:poll({ max = 3 }))
      assert.equals(r.events[3].position, store:checkpoint(name))
      assert.equals(0, sub:poll({ max = 0 }))
      assert.equals(4, sub:poll({ max = 100 }))
      assert.same(fx.positions(r.events), got.positions)
      assert.equals(r.position, store:checkpoint(name))
    end)

    it("a failing handler stops the poll before its event, which the next poll delivers again", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(5)))
      local name = fx.name("sub")
      local got, fail_at = {}, 3
      local sub = assert(store:subscribe(name, { category = cat, batch = 10 }, function(ev)
        if ev.data.i == fail_at then error("read model is down", 0) end
        got[#got + 1] = ev.data.i
      end))
      local err = fx.fails("handler", sub:poll())
      assert.equals("read model is down", err.message)
      assert.equals(r.events[3].position, err.position)
      assert.equals(r.events[3].id, err.event.id)
      assert.equals(name, err.subscription)
      assert.same({ 1, 2 }, got)
      assert.equals(r.events[2].position, sub:position())
      assert.equals(r.events[2].position, store:checkpoint(name))
      -- still failing: delivered again, nothing moves
      fx.fails("handler", sub:poll())
      assert.same({ 1, 2 }, got)
      assert.equals(r.events[2].position, store:checkpoint(name))
      -- fixed: the failed event and the rest arrive, once each
      fail_at = nil
      assert.equals(3, sub:poll())
      assert.same({ 1, 2, 3, 4, 5 }, got)
      assert.equals(r.position, store:checkpoint(name))
    end)

    it("a handler failing on the first event of a batch leaves the stored checkpoint alone", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(4)))
      local name = fx.name("sub")
      local sub = assert(store:subscribe(name, { category = cat, batch = 2 }, function(ev)
        if ev.data.i == 3 then error({ message = "table error" }) end
      end))
      local err = fx.fails("handler", sub:poll())
      assert.equals("table error", err.message)
      assert.same({ message = "table error" }, err.reason)
      assert.equals(r.events[2].position, store:checkpoint(name))
      -- a new process would resume there too
      local again = {}
      local sub2 = assert(store:subscribe(name, { category = cat }, function(ev) again[#again + 1] = ev.data.i end))
      assert.equals(2, sub2:poll())
      assert.same({ 3, 4 }, again)
    end)

    it("keeps subscriptions with different names independent", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(3)))
      local n1, n2 = fx.name("one"), fx.name("two")
      local s1 = assert(store:subscribe(n1, { category = cat }, function() end))
      local s2 = assert(store:subscribe(n2, { category = cat }, function() end))
      assert.equals(2, s1:poll({ max = 2 }))
      assert.equals(r.events[2].position, store:checkpoint(n1))
      assert.equals(0, store:checkpoint(n2))
      assert.equals(3, s2:poll())
      assert.equals(r.position, store:checkpoint(n2))
      assert.equals(r.events[2].position, store:checkpoint(n1))
    end)

    it("reset moves the checkpoint and stores it", function()
      local cat = fx.category("acct")
      local r = assert(store:append(cat .. "-1", fx.events(3)))
      local name = fx.name("sub")
      local got = recorder()
      local sub = assert(store:subscribe(name, { category = cat }, got.handle))
      assert.equals(3, sub:poll())
      assert.is_true(sub:reset(r.events[1].position))
      assert.equals(r.events[1].position, sub:position())
      assert.equals(r.events[1].position, store:checkpoint(name))
      assert.equals(2, sub:poll())
      assert.is_true(sub:reset("start"))
      assert.equals(0, store:checkpoint(name))
      assert.equals(3, sub:poll())
      assert.equals(8, #got.positions)
      assert.is_true(sub:reset("end"))
      assert.is_true(sub:position() >= r.position)
      assert.equals(0, sub:poll())
    end)

    it("lets handlers use the store: a read model kept in another stream", function()
      local cat, model = fx.category("acct"), fx.stream("model")
      assert(store:append(cat .. "-1", { fx.event("Deposited", { amount = 5 }), fx.event("Deposited",
        { amount = 7 }) }))
      local sub = assert(store:subscribe(fx.name("sub"), { category = cat }, {
        Deposited = function(ev, s)
          assert(s.store:append(model, fx.event("Total", { add = ev.data.amount })))
        end,
      }))
      assert.equals(2, sub:poll())
      local total = 0
      for _, ev in ipairs(store:read(model)) do total = total + ev.data.add end
      assert.equals(12, total)
    end)

    it("wait returns true at once when events past the checkpoint exist, false on timeout", function()
      local cat = fx.category("acct")
      local sub = assert(store:subscribe(fx.name("sub"), { category = cat }, function() end))
      local t0 = eventstore.now()
      assert.is_false(sub:wait(60))
      assert.is_true(eventstore.now() - t0 >= 50)
      assert(store:append(cat .. "-1", fx.event("A")))
      t0 = eventstore.now()
      assert.is_true(sub:wait(5000))
      assert.is_true(eventstore.now() - t0 < 2000)
      assert.equals(1, sub:poll())
      assert.is_false(sub:wait(20))
    end)

    it("wait is not ended by events of other categories, which the next poll passes", function()
      local cat = fx.category("acct")
      local name = fx.name("sub")
      local sub = assert(store:subscribe(name, { category = cat }, function() end))
      local other = assert(store:append(fx.stream(), fx.events(3)))
      assert.is_false(sub:wait(60))
      assert.equals(0, sub:poll())
      assert.is_true(sub:position() >= other.position)
      assert.equals(sub:position(), store:checkpoint(name))
      assert.is_false(sub:wait(10))
      local mine = assert(store:append(cat .. "-1", fx.event("A")))
      assert.is_true(sub:wait(1000))
      assert.equals(1, sub:poll())
      assert.equals(mine.position, sub:position())
    end)

    it("run polls and waits until stop says so, or returns once caught up with idle", function()
      local cat = fx.category("acct")
      assert(store:append(cat .. "-1", fx.events(5)))
      local got = recorder()
      local sub = assert(store:subscribe(fx.name("sub"), { category = cat }, got.handle))
      local polls = 0
      local n = assert(sub:run({ max = 2, wait = 10, stop = function(s, handled)
        assert.equals(sub, s)
        polls = polls + 1
        return #got.positions >= 5 or handled == 0
      end }))
      assert.equals(5, n)
      assert.equals(3, polls)
      assert(store:append(cat .. "-1", fx.events(2)))
      assert.equals(2, assert(sub:run({ idle = true })))
      assert.equals(0, assert(sub:run({ idle = true })))
      -- a failing handler ends run with the poll's error
      local bad = assert(store:subscribe(fx.name("sub"), { category = cat }, function() error("no", 0) end))
      fx.fails("handler", bad:run({ idle = true }))
    end)

    -- evtstore: a user domain with createUser/changeName commands and a
    -- populator that keeps a read model from a bookmark.
    describe("seed: evtstore's user domain", function()
      it("keeps a users read model from a bookmark across restarts", function()
        local cat = fx.category("user")
        local users = eventstore.aggregate {
          category = cat,
          initial = function() return { exists = false } end,
          fold = function(state, ev)
            if ev.type == "userCreated" then state.exists, state.name = true, ev.data.name
            elseif ev.type == "nameChanged" then state.name = ev.data.name end
          end,
          commands = {
            createUser = function(state, cmd)
              if state.exists then error("user already exists", 0) end
              return { type = "userCreated", data = { name = cmd.name } }
            end,
            changeName = function(state, cmd)
              if not state.exists then error("user does not exist", 0) end
              return { type = "nameChanged", data = { name = cmd.name } }
            end,
          },
        }:bind(store)
        local bookmark = fx.name("users_populator")
        local model = {}
        local function populator()
          return assert(store:subscribe(bookmark, { category = cat }, {
            userCreated = function(ev) model[ev.stream] = { name = ev.data.name, changes = 0 } end,
            nameChanged = function(ev)
              local row = model[ev.stream]
              row.name, row.changes = ev.data.name, row.changes + 1
            end,
          }))
        end
        assert(users:execute("ann", "createUser", { name = "Ann" }))
        assert(users:execute("bob", "createUser", { name = "Bob" }))
        fx.fails("rejected", users:execute("ann", "createUser", { name = "Again" }))
        fx.fails("rejected", users:execute("carl", "changeName", { name = "Carl" }))
        local pop = populator()
        assert.equals(2, pop:poll())
        assert(users:execute("ann", "changeName", { name = "Annie" }))
        assert.equals(1, pop:poll())
        assert.same({ name = "Annie", changes = 1 }, model[users:stream("ann")])
        assert.same({ name = "Bob", changes = 0 }, model[users:stream("bob")])
        -- a restarted populator resumes from its bookmark: only the new event
        assert(users:execute("bob", "changeName", { name = "Robert" }))
        local restarted = populator()
        assert.equals(1, restarted:poll())
        assert.same({ name = "Robert", changes = 1 }, model[users:stream("bob")])
        assert.same({ name = "Annie" }, { name = (users:load("ann")).name })
      end)
    end)

    if b.file or b.backend == "postgres" then
      -- One process appends; another's subscription picks the events up,
      -- and its checkpoint survives into a third process.
      describe("across processes", function()
        local SUBSCRIBER = [[
local eventstore = require("eventstore")
local url, cat, name, want, timeout = ...
want, timeout = tonumber(want), tonumber(timeout)
local store = assert(eventstore.open(url))
local got = {}
local sub = assert(store:subscribe(name, { category = cat, from = "start" }, function(ev)
  got[#got + 1] = ev.position
end))
local deadline = eventstore.now() + timeout
while #got < want and eventstore.now() < deadline do
  assert(sub:poll())
  if #got < want then sub:wait(100) end
end
print("got " .. #got .. " checkpoint " .. store:checkpoint(name) .. " positions " .. table.concat(got, ","))
store:close()
]]
        local APPENDER = [[
local eventstore = require("eventstore")
local url, cat, n = ...
local store = assert(eventstore.open(url))
for i = 1, tonumber(n) do
  assert(store:append(cat .. "-" .. (i % 2), { type = "Appended", data = { i = i } }))
end
print("appended " .. n)
store:close()
]]
        local function parse(out)
          local n, cp, list = out:match("got (%d+) checkpoint (%d+) positions ([%d,]*)")
          assert(n, "unexpected child output:\n" .. out)
          local positions = {}
          for p in list:gmatch("%d+") do positions[#positions + 1] = tonumber(p) end
          return tonumber(n), tonumber(cp), positions
        end

        it("wait wakes well before its timeout when another process appends", function()
          local url = path and ("sqlite:" .. path) or b.url
          local cat = fx.category("proc")
          local sub = assert(store:subscribe(fx.name("sub"), { category = cat }, function() end))
          local child = subprocess.spawn([[
local eventstore = require("eventstore")
local url, cat = ...
os.execute("sleep 0.3")
local store = assert(eventstore.open(url))
assert(store:append(cat .. "-1", { type = "Late" }))
store:close()
]], { url, cat })
          local t0 = eventstore.now()
          local ready = sub:wait(20000)
          local elapsed = eventstore.now() - t0
          local ok, out = child:wait()
          assert(ok, out)
          assert.is_true(ready)
          assert.is_true(elapsed < 5000, "woke after " .. elapsed .. " ms")
          assert.equals(1, sub:poll())
        end)

        it("a subscriber process picks up another process's appends and resumes after reopening", function()
          local url = path and ("sqlite:" .. path) or b.url
          local cat, name = fx.category("proc"), fx.name("sub")
          local subscriber = subprocess.spawn(SUBSCRIBER, { url, cat, name, 4, 15000 })
          local out = subprocess.check(APPENDER, { url, cat, 4 })
          assert.matches("appended 4", out)
          local ok, sout = subscriber:wait()
          assert(ok, sout)
          local n, checkpoint, positions = parse(sout)
          local appended = fx.positions(store:read_all({ category = cat }))
          assert.equals(4, n)
          assert.same(appended, positions)
          assert.equals(appended[4], checkpoint)
          -- the checkpoint is in the store: this process and a new store see it
          assert.equals(checkpoint, store:checkpoint(name))
          local reopened = assert(eventstore.open(url))
          assert.equals(checkpoint, reopened:checkpoint(name))
          reopened:close()
          -- a new subscriber process gets only what was appended since
          subprocess.check(APPENDER, { url, cat, 2 })
          local ok2, sout2 = subprocess.run(SUBSCRIBER, { url, cat, name, 2, 5000 })
          assert(ok2, sout2)
          local n2, checkpoint2, positions2 = parse(sout2)
          local all = fx.positions(store:read_all({ category = cat }))
          assert.equals(2, n2)
          assert.same({ all[5], all[6] }, positions2)
          assert.equals(all[6], checkpoint2)
        end)
      end)
    end
  end)
end
