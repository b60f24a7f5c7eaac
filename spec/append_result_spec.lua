-- append results: res.events of single-event appends, which the store keeps
-- in a ring of its latest appends and reads back once the ring has moved on
-- SPDX-License-Identifier: MIT
--
-- Written in Lua 5.1 syntax (STYLE.md, binding rule 9).
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

-- More single appends than the ring holds (64), so a result's slot is taken.
local PAST_RING = 70

for _, b in ipairs(backends.list) do
  describe("append results on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    local function push_out(n)
      local s = fx.stream()
      for i = 1, n or PAST_RING do assert(store:append(s, fx.event("Filler", { i = i }))) end
    end

    -- The committed event e against the stored one: every field a read returns.
    local function assert_committed(e, s, revision)
      local back = store:read(s, { from = revision, to = revision })[1]
      assert.is_table(back)
      assert.same(back, e)
      assert.equals(s, e.stream)
      assert.equals(revision, e.revision)
    end

    it("gives a recent single append its events with the caller's own data tables", function()
      local s = fx.stream()
      local data, meta = { n = 1, list = eventstore.array() }, { correlationId = eventstore.uuid() }
      local ev = fx.event("Opened", data, { metadata = meta })
      local res = assert(store:append(s, ev))
      assert.equals(1, #res.events)
      assert.equals(data, res.events[1].data)
      assert.equals(meta, res.events[1].metadata)
      assert.equals(res.position, res.events[1].position)
      assert_committed(res.events[1], s, 1)
      -- built once, then a plain field
      assert.equals(res.events, res.events)
      assert.equals(res.events, rawget(res, "events"))
    end)

    it("does the same for a list of one event, with {} for missing data and metadata", function()
      local s = fx.stream()
      local res = assert(store:append(s, { fx.event("Bare") }))
      local e = res.events[1]
      assert.same({}, e.data)
      assert.same({}, e.metadata)
      assert_committed(e, s, 1)
    end)

    it("reads a single append's event back once later appends took its place", function()
      local s = fx.stream()
      assert(store:append(s, fx.event("Before", { k = 0 })))
      local kept = fx.event("Kept", { k = "v", n = 2 }, { metadata = { m = true } })
      local res = assert(store:append(s, kept, { expected = 1 }))
      push_out()
      local e = res.events[1]
      assert.equals(2, e.revision)
      assert.equals(res.position, e.position)
      assert.equals("Kept", e.type)
      assert.same({ k = "v", n = 2 }, e.data)
      assert.same({ m = true }, e.metadata)
      assert_committed(e, s, 2)
    end)

    it("holds no caller's event alive: a dropped one is read back", function()
      local s = fx.stream()
      local res = assert(store:append(s, fx.event("Dropped", { big = string.rep("x", 1000) })))
      collectgarbage()
      collectgarbage()
      local e = res.events[1]
      assert.equals(string.rep("x", 1000), e.data.big)
      assert_committed(e, s, 1)
      -- the ring's weak hold: an event table only the ring knew is gone
      local weak = setmetatable({}, { __mode = "v" })
      weak[1] = { type = "Gone", data = { n = 1 } }
      assert(store:append(fx.stream(), weak[1]))
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
    end)

    it("keeps the latest results' events when the store is closed", function()
      local s = fx.stream()
      local data = { x = 1 }
      local res = assert(store:append(s, fx.event("Late", data)))
      store:close()
      assert.equals(data, res.events[1].data)
      assert.equals("Late", res.events[1].type)
      assert.equals(s, res.events[1].stream)
    end)

    it("raises a clear error for an older result once the store is closed", function()
      local res = assert(store:append(fx.stream(), fx.event("Old")))
      push_out()
      store:close()
      local ok, err = pcall(function() return res.events end)
      assert.is_false(ok)
      assert.matches("append result: its events are no longer kept", tostring(err), 1, true)
      assert.matches("closed store", tostring(err), 1, true)
      -- nothing else about the result changed
      assert.equals(1, res.count)
      assert.is_nil(rawget(res, "events"))
    end)

    it("keeps long stream names and types, and batches, in the result itself", function()
      local s = fx.stream() .. string.rep("s", 100)
      local t = string.rep("T", 120)
      local one = assert(store:append(s, fx.event(t, { a = 1 })))
      local many = assert(store:append(s, fx.events(3), { expected = 1 }))
      push_out()
      assert.equals(t, one.events[1].type)
      assert.equals(s, one.events[1].stream)
      assert.same({ 2, 3, 4 }, fx.revisions(many.events))
      assert.not_equals(getmetatable(one), getmetatable(many))
    end)

    it("gives idempotent retries of a single append their events", function()
      local s, id = fx.stream(), eventstore.uuid()
      local first = assert(store:append(s, fx.event("Once", { a = 1 }, { id = id })))
      local again = assert(store:append(s, fx.event("Once", { a = 1 }, { id = id })))
      assert.is_true(again.idempotent)
      push_out()
      assert.equals(id, again.events[1].id)
      assert.equals(first.position, again.events[1].position)
      assert.equals(id, first.events[1].id)
    end)

    it("answers nothing but events, and nothing for a result changed by its caller", function()
      local res = assert(store:append(fx.stream(), fx.event("X")))
      assert.is_nil(res.other)
      assert.is_nil(res[1])
      local changed = assert(store:append(fx.stream(), fx.event("Y")))
      changed.count = 2
      assert.is_nil(changed.events)
    end)

    it("refuses a result whose revision no longer agrees with its position", function()
      local res = assert(store:append(fx.stream(), fx.event("Mine")))
      push_out()
      res.revision = 5
      local ok, err = pcall(function() return res.events end)
      assert.is_false(ok)
      assert.matches("is not in the store", tostring(err), 1, true)
    end)
  end)
end
