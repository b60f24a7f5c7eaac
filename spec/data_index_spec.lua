-- data index: state() folds from the index of members the Lua encoder keeps
-- beside each event's data (memory backend), and from the scanned text
-- elsewhere; both must give what rules:fold gives on the decoded events,
-- at every limit of the index (key and value lengths, member counts) and
-- for the sums and "*" values that wait until the end of a fold
-- SPDX-License-Identifier: MIT
--
-- Written in Lua 5.1 syntax (STYLE.md, binding rule 9).
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local h = require("spec.support.reducer_helpers")

local ev, assert_json, mtype, INT = h.ev, h.assert_json, h.mtype, h.INT
local array, null = eventstore.array, eventstore.null
-- on 5.1 every number is a double: the largest integer is 5.3's only
local MAXI = math.maxinteger or 2 ^ 53

local function members(n, prefix)
  local t = {}
  for i = 1, n do t[(prefix or "m") .. i] = i end
  return t
end

for _, b in ipairs(backends.list) do
  describe("state() from indexed and scanned data on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    local last_sum = eventstore.reducer({ ["*"] = "last", qty = "sum" })

    -- Appends events to a new stream, one by one or as one batch, and checks
    -- state() against rules:fold over the same events.
    local function same_as_fold(rules, events, batch)
      local s = fx.stream()
      if batch then
        assert(store:append(s, events))
      else
        for i, e in ipairs(events) do assert(store:append(s, e, { expected = i - 1 })) end
      end
      local st, rev = store:state(s, rules)
      assert.equals(#events, rev)
      assert_json(rules:fold(events), st)
      return st
    end

    it("folds keys at the index's limits: 255 and 256 bytes, escaped, UTF-8 and empty", function()
      local k255, k256 = string.rep("k", 255), string.rep("l", 256)
      local events = {
        ev("A", { [k255] = "a", [k256] = "b", qty = 1 }),
        ev("B", { ['q"uote'] = 1, ["a\\b"] = 2, ["\n"] = "nl", ["\195\169t\195\169"] = "ete", [""] = "empty",
          qty = 2 }),
        ev("C", { [k255] = "c", [k256] = "d", ['q"uote'] = 3, qty = 3 }),
      }
      for _, batch in ipairs({ false, true }) do
        local st = same_as_fold(last_sum, events, batch)
        assert.equals("c", st[k255])
        assert.equals("d", st[k256])
        assert.equals(3, st['q"uote'])
        assert.equals("empty", st[""])
        assert.equals(6, st.qty)
      end
    end)

    it("folds values of every shape, and strings longer than 64 KB", function()
      local long = string.rep("x", 70000)
      local events = {
        ev("A", { s = "plain", e = "tab\tquote\"\0nul", i = 7, r = 0.5, big = 1e300, t = true, f = false,
          z = null, nested = { a = { b = 1 } }, list = array({ 1, "two" }), empty = {}, qty = 1 }),
        ev("B", { s = long, e = "again\\", i = -MAXI, r = -0.25, t = false, qty = 2 }),
        ev("C", { s = "short", i = 1.0, r = 3, qty = 3 }),
        ev("D", { long = long, qty = 4 }),
      }
      for _, batch in ipairs({ false, true }) do
        local st = same_as_fold(last_sum, events, batch)
        assert.equals("short", st.s)
        assert.equals(long, st.long)
        if INT then assert.equals("float", mtype(st.i)) end
        assert.equals("integer", mtype(st.r))
        assert.equals(10, st.qty)
        assert.equals(null, st.z)
      end
    end)

    it("folds data of 0, 32, 33 and 300 members, and events without data", function()
      local events = {
        ev("A", {}),
        { type = "B" },
        ev("C", members(32)),
        ev("D", members(33, "n")),
        ev("E", members(300, "w")),
        ev("F", { m1 = "one", n33 = "thirty-three", w300 = "last" }),
      }
      for _, batch in ipairs({ false, true }) do
        local st = same_as_fold(last_sum, events, batch)
        assert.equals("one", st.m1)
        assert.equals(32, st.m32)
        assert.equals("thirty-three", st.n33)
        assert.equals(299, st.w299)
        assert.equals("last", st.w300)
      end
    end)

    it("reads back every key, shape and member count as appended, one by one and in batches", function()
      local long, k255, k256 = string.rep("x", 70000), string.rep("k", 255), string.rep("l", 256)
      local datas = {
        { s = "plain", e = "tab\tquote\"\0nul", i = 7, r = 0.5, big = 1e300, t = true, f = false, z = null,
          nested = { a = { b = 1, c = "d" } }, list = array({ 1, "two" }), empty = {}, none = array({}) },
        { [k255] = "a", [k256] = "b", ['q"uote'] = 1, ["a\\b"] = 2, ["\n"] = "nl", ["\195\169t\195\169"] = "ete",
          [""] = "empty", ["\195\169"] = "\195\169t\195\169" },
        { s = long, i = -MAXI, j = MAXI, r = -0.25, tiny = 5e-324, neg = -0.0, zero = 0 },
        { i = 1.0, r = 3, s = "", u = "\226\130\172 euro" },
        members(300, "w"),
        {},
      }
      for _, batch in ipairs({ false, true }) do
        local s = fx.stream()
        if batch then
          local evs = {}
          for i, d in ipairs(datas) do evs[i] = { type = "T", data = d } end
          assert(store:append(s, evs))
        else
          for _, d in ipairs(datas) do assert(store:append(s, { type = "T", data = d })) end
        end
        local read = store:read(s)
        for i, d in ipairs(datas) do assert_json(d, read[i].data, "event " .. i) end
        assert_json(datas[#datas - 1], store:read(s, { from = #datas - 1, limit = 1 })[1].data)
        assert_json(datas[1], store:event(read[1].id).data)
        assert_json(datas[#datas], store:last(s).data)
      end
    end)

    h.it_int("turns a sum into a real when it overflows in the middle of a stream, as fold does", function()
      local events = {
        ev("A", { qty = MAXI - 2, note = "a" }),
        ev("A", { qty = 1, note = "b" }),
        ev("A", { qty = 1, note = "c" }),
        ev("A", { qty = 1, note = "d" }),   -- past the largest integer: a real from here on
        ev("A", { qty = 2, note = "e" }),
      }
      local st = same_as_fold(last_sum, events)
      assert.equals("float", mtype(st.qty))
      assert.equals("e", st.note)
    end)

    it("keeps a sum exact when it meets a real, or another member's order", function()
      local events = {
        ev("A", { qty = 1 }), ev("A", { qty = 2 }), ev("A", { qty = 0.5 }), ev("A", { qty = 3 }),
        ev("A", { other = 1 }), ev("A", { qty = -7 }),
      }
      local st = same_as_fold(last_sum, events)
      assert.equals(-0.5, st.qty)

      -- two sums and "*" values in alternating orders of keys
      local two = eventstore.reducer({ ["*"] = "last", a = "sum", b = "sum" })
      events = {}
      for i = 1, 50 do
        events[i] = i % 2 == 0 and ev("T", { a = i, b = -i, s = "x" .. i }) or ev("T", { s = "y" .. i, b = i, a = 1 })
      end
      st = same_as_fold(two, events, true)
      assert.equals("x50", st.s)
      assert.equals(25 * 26 + 25, st.a)
    end)

    it("refuses to sum a string in the middle of a stream and leaves the store as it was", function()
      local s = fx.stream()
      assert(store:append(s, { ev("A", { qty = 1 }), ev("A", { qty = 2 }), ev("A", { qty = "three" }),
        ev("A", { qty = 4 }) }))
      local ok, err = pcall(store.state, store, s, last_sum)
      assert.is_false(ok)
      assert.matches("cannot sum a string", tostring(err))
      assert.equals(4, #store:read(s))
      -- the same rules go on working on another stream
      local t = fx.stream()
      assert(store:append(t, { ev("A", { qty = 1 }), ev("A", { qty = 2 }) }))
      assert.equals(3, store:state(t, last_sum).qty)
    end)

    it("gives the same state from a snapshot and the events after it", function()
      local snapping, path = backends.open(b, { snapshot_every = 5 })
      local s = fx.stream()
      local events = {}
      for i = 1, 20 do events[i] = ev("T", { qty = i, note = "n" .. i, p = i / 2 }) end
      local ok, err = pcall(function()
        assert(snapping:append(s, events))
        assert.equals(210, snapping:state(s, last_sum).qty)
        assert.is_table(snapping:snapshot(s))
        assert(snapping:append(s, ev("T", { qty = 1, note = "after" }), { expected = 20 }))
        local st = snapping:state(s, last_sum)
        assert.equals(211, st.qty)
        assert.equals("after", st.note)
        assert.equals(10, st.p)
        events[21] = ev("T", { qty = 1, note = "after" })
        assert_json(last_sum:fold(events), st)
      end)
      snapping:close()
      backends.remove(path)
      assert(ok, err)
    end)
  end)
end
