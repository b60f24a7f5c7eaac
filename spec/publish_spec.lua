-- publish: on_append listeners after commit, and draining the outbox, on every backend
-- SPDX-License-Identifier: MIT
--
-- The PostgreSQL database is shared: outbox reads are always limited to a
-- category unique to the test.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local subprocess = require("spec.support.subprocess")

describe("publish arguments", function()
  it("raise when malformed", function()
    local store = assert(eventstore.open("memory:"))
    fx.raises(function() store:on_append(nil) end, "function expected")
    fx.raises(function() store:on_append({}) end, "function expected")
    fx.raises(function() store:dispatch(nil) end, "function expected")
    fx.raises(function() store:dispatch(function() end, 3) end, "options must be a table")
    fx.raises(function() store:dispatch(function() end, { categroy = "x" }) end, "unknown option 'categroy'")
    fx.raises(function() store:dispatch(function() end, { limit = -1 }) end, "limit")
    fx.raises(function() store:dispatch(function() end, { batch = 0 }) end, "batch")
    store:close()
    fx.raises(function() store:on_append(function() end) end, "closed store")
    fx.raises(function() store:dispatch(function() end) end, "closed store")
  end)

  it("leaves append's own errors as they were, with the caller's position", function()
    local store = assert(eventstore.open("memory:"))
    local other = assert(eventstore.open("memory:"))
    store:on_append(function() end)
    for _, s in ipairs({ store, other }) do
      local ok, msg = pcall(function() s:append("a-1", 5) end)
      assert.is_false(ok)
      assert.matches("^[^:]*publish_spec%.lua:%d+: bad argument #2 to 'append' %(table expected, got number%)$", msg)
      ok, msg = pcall(function() s.append(s, "a-1") end)
      assert.is_false(ok)
      assert.matches("^[^:]*publish_spec%.lua:%d+: bad argument #3 to 'append' %(table expected, got no value%)$", msg)
      ok, msg = pcall(function() s:append("a-1", { type = 5 }) end)
      assert.is_false(ok)
      assert.matches("^[^:]*publish_spec%.lua:%d+: append: event 1 has no type", msg)
    end
    store:close()
    other:close()
    fx.raises(function() store:append("a-1", { type = "A" }) end, "closed store")
    fx.raises(function() store:dispatch(function() end) end, "closed store")
  end)
end)

for _, b in ipairs(backends.list) do
  describe("publishing on " .. b.name, function()
    local store, path
    if not backends.fresh(b, { outbox = true }, function(s, p) store, path = s, p end) then return end

    describe("on_append", function()
      it("gets the committed events of each append once, after the commit", function()
        local calls = {}
        store:on_append(function(events, st)
          assert.equals(store, st)
          -- after commit: the events are readable from the store already
          local stored = st:read(events[1].stream)
          assert.equals(events[#events].id, stored[#stored].id)
          calls[#calls + 1] = events
        end)
        local s = fx.stream()
        local r1 = assert(store:append(s, fx.event("Opened", { owner = "ann" })))
        local r2 = assert(store:append(s, { fx.event("Deposited", { amount = 1 }), fx.event("Deposited",
          { amount = 2 }) }))
        assert.equals(2, #calls)
        assert.equals(r1.events, calls[1])
        assert.same({ "Deposited", "Deposited" }, fx.types(calls[2]))
        assert.same(fx.ids(r2.events), fx.ids(calls[2]))
        assert.same({ 2, 3 }, fx.revisions(calls[2]))
        assert.same({ amount = 2 }, calls[2][2].data)
        assert.is_nil(r1.publish_errors)
      end)

      it("is not called for a failed append nor for an idempotent one", function()
        local calls = 0
        store:on_append(function() calls = calls + 1 end)
        local s = fx.stream()
        local id = eventstore.uuid()
        local r = assert(store:append(s, fx.event("A", {}, { id = id }), { expected = eventstore.NO_STREAM }))
        assert.equals(1, calls)
        fx.fails("conflict", store:append(s, fx.event("B"), { expected = eventstore.NO_STREAM }))
        fx.raises(function() store:append(s, { type = 5 }) end, "type")
        assert.equals(1, calls)
        local again = assert(store:append(s, fx.event("A", {}, { id = id }), { expected = eventstore.NO_STREAM }))
        assert.is_true(again.idempotent)
        assert.equals(r.revision, again.revision)
        assert.equals(1, calls)
      end)

      it("a listener that raises never undoes the commit; the error is in res.publish_errors", function()
        local order = {}
        store:on_append(function() order[#order + 1] = 1; error("broker down", 0) end)
        store:on_append(function() order[#order + 1] = 2 end)
        store:on_append(function() order[#order + 1] = 3; error({ message = "table" }) end)
        local s = fx.stream()
        local res = assert(store:append(s, fx.event("A")))
        assert.same({ 1, 2, 3 }, order)
        assert.equals(1, res.revision)
        assert.equals(1, store:revision(s))
        assert.equals(2, #res.publish_errors)
        local e1, e2 = res.publish_errors[1], res.publish_errors[2]
        assert.equals("publish", e1.code)
        assert.equals("broker down", e1.message)
        assert.is_true(eventstore.is_error(e1))
        assert.equals("table", e2.message)
        assert.same({ message = "table" }, e2.reason)
      end)

      it("the returned function removes the listener", function()
        local a, c = 0, 0
        local off = store:on_append(function() a = a + 1 end)
        store:on_append(function() c = c + 1 end)
        assert(store:append(fx.stream(), fx.event("A")))
        off()
        off()
        assert(store:append(fx.stream(), fx.event("A")))
        assert.equals(1, a)
        assert.equals(2, c)
      end)

      it("listeners belong to their store", function()
        local other, other_path = backends.open(b)
        local mine, theirs = 0, 0
        store:on_append(function() mine = mine + 1 end)
        other:on_append(function() theirs = theirs + 1 end)
        assert(other:append(fx.stream(), fx.event("A")))
        assert(other:append(fx.stream(), fx.event("A")))
        assert(store:append(fx.stream(), fx.event("A")))
        assert.equals(1, mine)
        assert.equals(2, theirs)
        other:close()
        backends.remove(other_path)
      end)

      it("a listener may append (its own append is published too) and add listeners", function()
        local audit = fx.stream("audit")
        local seen = {}
        store:on_append(function(events, st)
          seen[#seen + 1] = events[1].stream
          if events[1].stream ~= audit then
            assert(st:append(audit, fx.event("Audited", { of = events[1].id })))
            st:on_append(function() end)
          end
        end)
        local s = fx.stream()
        local r = assert(store:append(s, fx.event("A")))
        assert.same({ s, audit }, seen)
        assert.equals(r.events[1].id, store:last(audit).data.of)
      end)

      -- aws-event-stream: an orders stream whose history folds into one
      -- object with the list of its event types; a publisher notified on
      -- every append.
      it("seed: aws-event-stream's orders publisher", function()
        local published = {}
        store:on_append(function(events)
          for _, ev in ipairs(events) do published[#published + 1] = ev.type end
        end)
        local orders = eventstore.aggregate {
          category = fx.category("orders"),
          initial = function() return {} end,
          reducer = eventstore.reducer { ["*"] = "last", items = "append", [eventstore.TYPES] = "history" },
          commands = {
            place = function(_, cmd) return { type = "OrderPlaced", data = { customer = cmd.customer } } end,
            add = function(_, cmd) return { type = "ItemAdded", data = { items = cmd.item } } end,
            ship = function(state)
              if not state.customer then error("no order", 0) end
              return { type = "OrderShipped", data = { shipped = true } }
            end,
          },
        }:bind(store)
        assert(orders:execute("1", "place", { customer = "ann" }))
        assert(orders:execute("1", "add", { item = "book" }))
        assert(orders:execute("1", "add", { item = "pen" }))
        fx.fails("rejected", orders:execute("2", "ship"))
        local res = assert(orders:execute("1", "ship"))
        assert.same({ "OrderPlaced", "ItemAdded", "ItemAdded", "OrderShipped" }, published)
        local state = orders:load("1")
        assert.same({ customer = "ann", items = { "book", "pen" }, shipped = true,
          history = { "OrderPlaced", "ItemAdded", "ItemAdded", "OrderShipped" } }, state)
        assert.same(state, res.state)
      end)
    end)

    describe("outbox", function()
      local function fill(cat, n)
        local list = {}
        for i = 1, n do
          list[i] = assert(store:append(cat .. "-" .. (i % 2), fx.event("Happened", { i = i }))).events[1]
        end
        return list
      end

      it("dispatch drains the outbox in position order and marks each event", function()
        local cat = fx.category("out")
        local events = fill(cat, 5)
        assert.equals(5, #store:undispatched({ category = cat }))
        local got = {}
        assert.equals(5, store:dispatch(function(ev, st)
          assert.equals(store, st)
          got[#got + 1] = ev.position
        end, { category = cat, batch = 2 }))
        assert.same(fx.positions(events), got)
        assert.same({}, store:undispatched({ category = cat }))
        assert.equals(0, store:dispatch(function() error("nothing to deliver") end, { category = cat }))
      end)

      it("a failing publisher stops the drain; that event and the rest are delivered next time", function()
        local cat = fx.category("out")
        local events = fill(cat, 5)
        local got, fail_at = {}, 3
        local function publisher(ev)
          if ev.data.i == fail_at then error("broker down", 0) end
          got[#got + 1] = ev.data.i
        end
        local err = fx.fails("dispatch", store:dispatch(publisher, { category = cat }))
        assert.equals("broker down", err.message)
        assert.equals(2, err.dispatched)
        assert.equals(events[3].id, err.event.id)
        assert.same({ 1, 2 }, got)
        assert.same({ events[3].id, events[4].id, events[5].id }, fx.ids(store:undispatched({ category = cat })))
        fail_at = nil
        assert.equals(3, store:dispatch(publisher, { category = cat }))
        assert.same({ 1, 2, 3, 4, 5 }, got)
        assert.same({}, store:undispatched({ category = cat }))
      end)

      it("limit caps one drain", function()
        local cat = fx.category("out")
        fill(cat, 5)
        local got = {}
        local function publisher(ev) got[#got + 1] = ev.data.i end
        assert.equals(2, store:dispatch(publisher, { category = cat, limit = 2 }))
        assert.equals(0, store:dispatch(publisher, { category = cat, limit = 0 }))
        assert.equals(3, store:dispatch(publisher, { category = cat, limit = 10, batch = 1 }))
        assert.same({ 1, 2, 3, 4, 5 }, got)
      end)

      -- node-eventstore: open a stream, add events, commit; the publisher
      -- receives them; undispatched events are kept until published.
      it("seed: node-eventstore's dispatcher", function()
        local cat = fx.category("order")
        local s = cat .. "-1"
        local live = {}
        store:on_append(function(events)
          for _, ev in ipairs(events) do live[#live + 1] = ev.type end
        end)
        assert(store:append(s, { fx.event("OrderCreated", { total = 10 }), fx.event("ItemAdded", { sku = "a" }) },
          { expected = eventstore.NO_STREAM }))
        assert(store:append(s, fx.event("OrderPaid", { total = 10 }), { expected = 2 }))
        assert.same({ "OrderCreated", "ItemAdded", "OrderPaid" }, live)
        assert.same({ "OrderCreated", "ItemAdded", "OrderPaid" }, fx.types(store:undispatched({ category = cat })))
        local first = store:undispatched({ category = cat, limit = 1 })[1]
        assert.is_true(store:mark_dispatched(first))
        local sent = {}
        assert.equals(2, store:dispatch(function(ev) sent[#sent + 1] = ev.type end, { category = cat }))
        assert.same({ "ItemAdded", "OrderPaid" }, sent)
      end)

      if b.file or b.backend == "postgres" then
        it("a process that dies between publishing and marking gets the event delivered again", function()
          local url = path and ("sqlite:" .. path) or b.url
          local cat = fx.category("out")
          local events = fill(cat, 3)
          local ok, out = subprocess.run([[
local eventstore = require("eventstore")
local url, cat = ...
local store = assert(eventstore.open(url, { outbox = true }))
local n = 0
store:dispatch(function(ev)
  n = n + 1
  print("published " .. ev.id)
  io.stdout:flush()
  if n == 2 then os.exit(3) end -- dies after publishing, before marking
end, { category = cat })
]], { url, cat })
          assert.is_false(ok)
          assert.matches("published " .. events[2].id, out, 1, true)
          local again = {}
          assert.equals(2, store:dispatch(function(ev) again[#again + 1] = ev.id end, { category = cat }))
          assert.same({ events[2].id, events[3].id }, again)
        end)
      end
    end)
  end)
end
