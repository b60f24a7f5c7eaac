-- conformance_long_spec: reads longer than a page (lists past 1,000 rows,
-- each() across pages), the same specs against every backend
-- SPDX-License-Identifier: MIT
--
-- Split from conformance_spec.lua, whose conventions hold: a fresh store per
-- test, unique names, and positions compared after the test's start on the
-- shared PostgreSQL database.
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

for _, b in ipairs(backends.list) do
  describe("conformance of long reads on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    -- 2,500 events in five appends of 500, data.i numbering them from 1.
    local function seed_2500(s, type)
      for batch = 0, 4 do
        assert(store:append(s, fx.events(500, type, function(i) return { i = batch * 500 + i } end)))
      end
    end

    describe("long reads", function()
      -- a read's list is filled in runs of 1,000 events: 2,500 take three
      it("read returns 2,500 events of a stream whole and in order, both ways", function()
        local s = fx.stream()
        seed_2500(s, "Long")
        local evs = store:read(s)
        assert.equals(2500, #evs)
        for n = 1, 2500 do
          assert.equals(n, evs[n].revision)
          assert.equals(n, evs[n].data.i)
          assert.equals(s, evs[n].stream)
        end
        assert.is_nil(evs[2501])
        local back = store:read(s, { backward = true })
        assert.equals(2500, #back)
        for n = 1, 2500 do assert.equals(2501 - n, back[n].revision) end
        local mid = store:read(s, { from = 998, limit = 1003 })
        assert.equals(1003, #mid)
        assert.equals(998, mid[1].revision)
        assert.equals(2000, mid[1003].revision)
        local exact = store:read(s, { limit = 1000 })
        assert.equals(1000, #exact)
        assert.equals(1000, exact[1000].revision)
      end)

      -- a read interns the names events repeat once, through a small cache:
      -- many names alike in length and first, middle and last bytes
      it("keys, types and streams repeated across events come back exactly", function()
        local cat = fx.category()
        local keys = {}
        for k = 1, 60 do keys[k] = string.format("k%02dx%02dk", k % 7, k) end
        keys[#keys + 1] = "correlationId"
        keys[#keys + 1] = "price"
        local written = {}
        for e = 1, 40 do
          local data = {}
          for j = 1, 12 do
            local key = keys[(e * 5 + j * 7) % #keys + 1]
            data[key] = e * 100 + j
          end
          local stream = string.format("%s-%d", cat, e % 3)
          local typ = string.format("T%dx", e % 5)
          assert(store:append(stream, { type = typ, data = data, metadata = { [keys[e % #keys + 1]] = e } }))
          written[e] = { stream = stream, type = typ, data = data, metadata = { [keys[e % #keys + 1]] = e } }
        end
        local all = store:read_all({ after = 0, category = cat })
        assert.equals(40, #all)
        for e = 1, 40 do
          assert.equals(written[e].stream, all[e].stream)
          assert.equals(written[e].type, all[e].type)
          assert.same(written[e].data, all[e].data)
          assert.same(written[e].metadata, all[e].metadata)
        end
      end)

      it("read_all and streams return lists longer than 1,000", function()
        local cat = fx.category()
        local start = store:stats().position
        assert(store:append(cat .. "-a", fx.events(1200)))
        assert(store:append(cat .. "-b", fx.events(1)))
        local all = store:read_all({ after = start, category = cat, limit = 1201 })
        assert.equals(1201, #all)
        for n = 2, 1201 do assert.is_true(all[n].position > all[n - 1].position) end
        assert.equals(cat .. "-b", all[1201].stream)
        local want = { [cat .. "-a"] = true, [cat .. "-b"] = true }
        for k = 1, 1001 do
          local name = string.format("%s-s%04d", cat, k)
          want[name] = true
          assert(store:append(name, fx.events(1)))
        end
        local listed = store:streams({ category = cat })
        assert.equals(1003, #listed)
        local found = {}
        for _, name in ipairs(listed) do found[name] = true end
        assert.same(want, found)
      end)
    end)

    describe("each", function()
      it("iterates 2,500 events of a stream in order across pages, both ways", function()
        local s = fx.stream()
        seed_2500(s, "Many")
        local n = 0
        for ev in store:each(s) do
          n = n + 1
          assert.equals(n, ev.revision)
          assert.equals(n, ev.data.i)
        end
        assert.equals(2500, n)
        local expect = 2500
        for ev in store:each(s, { backward = true }) do
          assert.equals(expect, ev.revision)
          expect = expect - 1
        end
        assert.equals(0, expect)
        local some = {}
        for ev in store:each(s, { from = 999, to = 1002 }) do some[#some + 1] = ev.revision end
        assert.same({ 999, 1000, 1001, 1002 }, some)
      end)

      it("each(nil, { category }) iterates a category in position order across pages", function()
        local cat = fx.category()
        local start = store:stats().position
        assert(store:append(cat .. "-a", fx.events(1300)))
        assert(store:append(fx.stream(), fx.events(3)))
        assert(store:append(cat .. "-b", fx.events(1200)))
        local n, last_pos, per = 0, start, {}
        for ev in store:each(nil, { category = cat }) do
          n = n + 1
          assert.is_true(ev.position > last_pos)
          last_pos = ev.position
          per[ev.stream] = (per[ev.stream] or 0) + 1
        end
        assert.equals(2500, n)
        assert.same({ [cat .. "-a"] = 1300, [cat .. "-b"] = 1200 }, per)
      end)

      it("each(nil, { after }) iterates the store from a position", function()
        local s = fx.stream()
        local start = store:stats().position
        local res = assert(store:append(s, fx.events(30)))
        local seen = {}
        for ev in store:each(nil, { after = res.events[10].position }) do
          if ev.stream == s then seen[#seen + 1] = ev.revision end
        end
        assert.same(fx.range(11, 30), seen)
        local count = 0
        for ev in store:each(nil, { after = start }) do
          if ev.stream == s then count = count + 1 end
        end
        assert.equals(30, count)
      end)

      it("each honours limit and types across pages", function()
        local cat = fx.category()
        local t1, t2 = fx.name("T"), fx.name("T")
        local s = cat .. "-1"
        local list = {}
        for i = 1, 2400 do list[i] = fx.event(i % 3 == 0 and t2 or t1, { i = i }) end
        assert(store:append(s, list))
        local n = 0
        for ev in store:each(s, { limit = 1234 }) do
          n = n + 1
          assert.equals(n, ev.revision)
        end
        assert.equals(1234, n)
        local typed, last_i = 0, 0
        for ev in store:each(nil, { category = cat, types = { t2 } }) do
          typed = typed + 1
          assert.equals(t2, ev.type)
          assert.is_true(ev.data.i > last_i)
          last_i = ev.data.i
        end
        assert.equals(800, typed)
        local limited = 0
        for _ in store:each(nil, { category = cat, types = { t1 }, limit = 1001 }) do limited = limited + 1 end
        assert.equals(1001, limited)
      end)

      it("a missing stream iterates nothing", function()
        local n = 0
        for _ in store:each(fx.stream()) do n = n + 1 end
        assert.equals(0, n)
        for _ in store:each(nil, { category = fx.category() }) do n = n + 1 end
        assert.equals(0, n)
      end)
    end)
  end)
end
