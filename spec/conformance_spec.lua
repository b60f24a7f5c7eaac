-- conformance: the same contract specs, run against every backend
-- SPDX-License-Identifier: MIT
--
-- A fresh store per test (a new temp file for the SQLite file backend). The
-- PostgreSQL database is shared with other runs: there every name is unique,
-- counts are compared as deltas and read_all starts after the position the
-- test began at.
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local ANY, NO_STREAM, STREAM_EXISTS = eventstore.ANY, eventstore.NO_STREAM, eventstore.STREAM_EXISTS

for _, b in ipairs(backends.list) do
  describe("conformance on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    -- n events "Counted" with data { i = i } appended to stream s.
    local function seed(s, n, type)
      local res = assert(store:append(s, fx.events(n, type)))
      assert.equals(n, res.count)
      return res
    end

    -- Events appended since a position, restricted to the given streams.
    local function ours_after(start, streams)
      return fx.only(store:read_all({ after = start }), streams)
    end

    -- Checks that nothing was written: the stream reads the same, and on a
    -- private store the whole stats too.
    local function assert_unchanged(before_stats, s, before_events)
      assert.same(before_events, store:read(s))
      if not b.shared then
        assert.same(before_stats, store:stats())
      end
    end

    describe("append", function()
      it("appends one event and returns revision, position, count and the events", function()
        local s = fx.stream()
        local res = assert(store:append(s, fx.event("Opened", { owner = "ann" })))
        assert.equals(1, res.revision)
        assert.equals(1, res.count)
        assert.is_true(fx.is_integer(res.position))
        assert.is_true(res.position >= 1)
        assert.equals(1, #res.events)
        local committed = res.events[1]
        assert.is_true(fx.is_uuid(committed.id))
        assert.equals(1, committed.revision)
        assert.equals(res.position, committed.position)
        local back = store:read(s)
        assert.equals(1, #back)
        assert.equals(committed.id, back[1].id)
        assert.equals("Opened", back[1].type)
        assert.same({ owner = "ann" }, back[1].data)
      end)

      it("appends a list with revisions 1..n; position is the last event's", function()
        local s = fx.stream()
        local res = assert(store:append(s, {
          fx.event("A", { n = 1 }), fx.event("B", { n = 2 }), fx.event("C", { n = 3 }),
        }, { expected = NO_STREAM }))
        assert.equals(3, res.revision)
        assert.equals(3, res.count)
        assert.equals(3, #res.events)
        assert.same({ 1, 2, 3 }, fx.revisions(res.events))
        assert.is_true(fx.strictly_increasing(fx.positions(res.events)))
        assert.equals(res.position, res.events[3].position)
        assert.same({ "A", "B", "C" }, fx.types(store:read(s)))
      end)

      it("keeps a caller-given id", function()
        local s, id = fx.stream(), eventstore.uuid()
        local res = assert(store:append(s, fx.event("Given", {}, { id = id })))
        assert.equals(id, res.events[1].id)
        assert.equals(id, store:read(s)[1].id)
        assert.equals(id, store:event(id).id)
      end)

      -- Generated ids carry their position on memory and SQLite (where
      -- SQLite finds them by it, without an index entry); caller-given ids
      -- can name a position too, their own or another event's. Every kind
      -- is found by id, refused elsewhere and idempotent at its place.
      describe("ids that name a position", function()
        local naming = fx.id_naming

        local function found(id, s, position)
          local ev = store:event(id)
          assert.is_table(ev, "event(" .. id .. ")")
          assert.equals(id, ev.id)
          assert.equals(s, ev.stream)
          assert.equals(position, ev.position)
        end

        it("a generated id is found, idempotent at its place and refused elsewhere", function()
          local s, other = fx.stream(), fx.stream()
          local res = assert(store:append(s, fx.events(3), { expected = NO_STREAM }))
          for _, ev in ipairs(res.events) do
            assert.is_true(fx.is_uuid(ev.id))
            found(ev.id, s, ev.position)
            if b.backend == "postgres" then
              assert.equals("7", ev.id:sub(15, 15), ev.id) -- time-ordered
            else
              assert.equals(string.format("%012x", ev.position), ev.id:sub(1, 8) .. ev.id:sub(10, 13))
              assert.equals("8", ev.id:sub(15, 15), ev.id)
            end
          end
          local again = {}
          for i, ev in ipairs(res.events) do again[i] = fx.event("Counted", { i = i }, { id = ev.id }) end
          local idem = assert(store:append(s, again, { expected = NO_STREAM }))
          assert.same(fx.positions(res.events), fx.positions(idem.events))
          local before = store:read(s)
          fx.fails("conflict", store:append(other, fx.event("Copy", {}, { id = res.events[2].id })))
          fx.fails("conflict", store:append(s, fx.event("Copy", {}, { id = res.events[1].id }), { expected = 3 }))
          assert.same({}, store:read(other))
          assert.same(before, store:read(s))
        end)

        it("a given id naming its own position or another event's is stored and found like any", function()
          local a, c, d, e = fx.stream(), fx.stream(), fx.stream(), fx.stream()
          local gen = assert(store:append(a, fx.event("Generated"))).events[1]
          -- names the position it gets (on a store no one else writes)
          local own = naming(store:stats().position + 1, 1)
          local r_own = assert(store:append(c, fx.event("Own", {}, { id = own }))).events[1]
          if not b.shared then assert.equals(store:stats().position, r_own.position) end
          -- name the rows of the two events above, but are other ids
          local beside_gen = naming(gen.position, 2)
          local beside_own = naming(r_own.position, 3)
          local r_bg = assert(store:append(d, fx.event("BesideGenerated", {}, { id = beside_gen }))).events[1]
          local r_bo = assert(store:append(e, fx.event("BesideOwn", {}, { id = beside_own }))).events[1]
          found(gen.id, a, gen.position)
          found(own, c, r_own.position)
          found(beside_gen, d, r_bg.position)
          found(beside_own, e, r_bo.position)
          assert.is_nil(store:event(naming(r_own.position, 4)))
          assert.is_nil(store:event(naming(gen.position, 5)))
          for _, id in ipairs({ gen.id, own, beside_gen, beside_own }) do
            fx.fails("conflict", store:append(fx.stream(), fx.event("Copy", {}, { id = id })))
          end
          local idem = assert(store:append(c, fx.event("Own", {}, { id = own }), { expected = NO_STREAM }))
          assert.equals(r_own.position, idem.events[1].position)
          local upper = assert(store:append(d, fx.event("BesideGenerated", {}, { id = beside_gen:upper() }),
            { expected = NO_STREAM }))
          assert.equals(r_bg.position, upper.events[1].position)
          assert.equals(1, #store:read(d))
        end)
      end)

      it("ANY (the default) appends to a new and to an existing stream", function()
        local s = fx.stream()
        assert.equals(1, assert(store:append(s, fx.event("A"))).revision)
        assert.equals(2, assert(store:append(s, fx.event("B"), { expected = ANY })).revision)
        assert.equals(3, assert(store:append(s, fx.event("C"), {})).revision)
        assert.equals(3, store:revision(s))
      end)

      it("NO_STREAM (= 0) succeeds on a new stream and conflicts on an existing one", function()
        assert.equals(0, NO_STREAM)
        local s = fx.stream()
        assert.equals(1, assert(store:append(s, fx.event("A"), { expected = NO_STREAM })).revision)
        local before_stats, before_events = store:stats(), store:read(s)
        local err = fx.fails("conflict", store:append(s, fx.event("B"), { expected = NO_STREAM }))
        assert.equals(0, err.expected)
        assert.equals(1, err.actual)
        assert_unchanged(before_stats, s, before_events)
        local s2 = fx.stream()
        assert.equals(1, assert(store:append(s2, fx.event("A"), { expected = 0 })).revision)
        fx.fails("conflict", store:append(s2, fx.event("B"), { expected = 0 }))
      end)

      it("STREAM_EXISTS conflicts on a new stream and succeeds on an existing one", function()
        local cat = fx.category()
        local s = cat .. "-1"
        local before_stats = store:stats()
        local err = fx.fails("conflict", store:append(s, fx.event("A"), { expected = STREAM_EXISTS }))
        assert.equals(0, err.actual)
        assert.equals(0, store:revision(s))
        assert.same({}, store:read(s))
        assert.same({}, store:streams({ category = cat }))
        assert_unchanged(before_stats, s, {})
        assert(store:append(s, fx.event("A")))
        assert.equals(2, assert(store:append(s, fx.event("B"), { expected = STREAM_EXISTS })).revision)
      end)

      it("an exact revision succeeds when the stream is at it", function()
        local s = fx.stream()
        seed(s, 2)
        assert.equals(3, assert(store:append(s, fx.event("C"), { expected = 2 })).revision)
        assert.equals(5, assert(store:append(s, fx.events(2), { expected = 3 })).revision)
      end)

      it("an exact revision behind or ahead conflicts with expected, actual and nothing written", function()
        local s = fx.stream()
        seed(s, 3)
        local before_stats, before_events = store:stats(), store:read(s)
        local err = fx.fails("conflict", store:append(s, fx.events(2), { expected = 1 }))
        assert.equals(1, err.expected)
        assert.equals(3, err.actual)
        assert_unchanged(before_stats, s, before_events)
        err = fx.fails("conflict", store:append(s, fx.event("X"), { expected = 5 }))
        assert.equals(5, err.expected)
        assert.equals(3, err.actual)
        assert_unchanged(before_stats, s, before_events)
        local missing = fx.stream()
        err = fx.fails("conflict", store:append(missing, fx.event("X"), { expected = 4 }))
        assert.equals(4, err.expected)
        assert.equals(0, err.actual)
        assert.equals(0, store:revision(missing))
      end)

      it("a conflict is an eventstore.Error with a code, a message and a readable tostring", function()
        local s = fx.stream()
        seed(s, 1)
        local res, err = store:append(s, fx.event("X"), { expected = NO_STREAM })
        assert.is_nil(res)
        assert.equals("eventstore.Error", getmetatable(err).__name)
        assert.equals("conflict", err.code)
        assert.is_string(err.message)
        assert.equals("conflict: " .. err.message, tostring(err))
        assert.is_true(fx.is_integer(err.expected))
        assert.is_true(fx.is_integer(err.actual))
      end)
    end)

    describe("atomic batches", function()
      it("a batch with an event without type in the middle raises and writes nothing", function()
        local s = fx.stream()
        seed(s, 1)
        local before_stats, before_events = store:stats(), store:read(s)
        fx.raises(function()
          store:append(s, { fx.event("Good"), { data = { x = 1 } }, fx.event("Good") })
        end, "type")
        assert.equals(1, store:revision(s))
        assert_unchanged(before_stats, s, before_events)
        assert.equals(2, assert(store:append(s, fx.event("After"))).revision)
      end)

      it("a batch whose last event holds a function raises and writes nothing", function()
        local s = fx.stream()
        local before_stats = store:stats()
        fx.raises(function()
          store:append(s, { fx.event("Good"), fx.event("Good"), fx.event("Bad", { f = print }) })
        end, "function")
        assert.equals(0, store:revision(s))
        assert_unchanged(before_stats, s, {})
        assert.equals(1, assert(store:append(s, fx.event("After"))).revision)
      end)

      it("a batch reusing, in the middle, an id stored in another stream fails whole", function()
        local other, s, id = fx.stream(), fx.stream(), eventstore.uuid()
        assert(store:append(other, fx.event("Taken", {}, { id = id })))
        local before_stats = store:stats()
        local err = fx.fails("conflict", store:append(s, {
          fx.event("One"), fx.event("Two", {}, { id = id }), fx.event("Three"),
        }))
        assert.is_string(err.message)
        assert.equals(0, store:revision(s))
        assert_unchanged(before_stats, s, {})
        assert.equals(other, store:event(id).stream)
        assert.equals(3, assert(store:append(s, fx.events(3))).revision)
      end)
    end)

    describe("idempotency", function()
      local function with_ids(ids)
        local list = {}
        for i, id in ipairs(ids) do list[i] = fx.event("Idem", { i = i }, { id = id }) end
        return list
      end

      it("re-appending the same events with ANY succeeds with the same revision and writes nothing", function()
        local s = fx.stream()
        local ids = { eventstore.uuid(), eventstore.uuid() }
        local first = assert(store:append(s, with_ids(ids), { expected = NO_STREAM }))
        assert.equals(2, first.revision)
        local before_stats, before_events = store:stats(), store:read(s)
        local again = assert(store:append(s, with_ids(ids), { expected = ANY }))
        assert.equals(2, again.revision)
        assert_unchanged(before_stats, s, before_events)
        assert.same(ids, fx.ids(store:read(s)))
      end)

      it("re-appending with the expectation used the first time is a no-op too", function()
        local s = fx.stream()
        local ids = { eventstore.uuid(), eventstore.uuid() }
        assert(store:append(s, with_ids(ids), { expected = NO_STREAM }))
        local before_stats, before_events = store:stats(), store:read(s)
        local again = assert(store:append(s, with_ids(ids), { expected = NO_STREAM }))
        assert.equals(2, again.revision)
        assert_unchanged(before_stats, s, before_events)
      end)

      it("re-appending one event by id is a no-op", function()
        local s, id = fx.stream(), eventstore.uuid()
        assert.equals(1, assert(store:append(s, fx.event("Once", {}, { id = id }))).revision)
        local before_stats, before_events = store:stats(), store:read(s)
        assert.equals(1, assert(store:append(s, fx.event("Once", {}, { id = id }))).revision)
        assert_unchanged(before_stats, s, before_events)
      end)

      it("an id already stored in another stream is a conflict and writes nothing", function()
        local a, s, id = fx.stream(), fx.stream(), eventstore.uuid()
        assert(store:append(a, fx.event("Here", {}, { id = id })))
        local before_stats = store:stats()
        fx.fails("conflict", store:append(s, fx.event("There", {}, { id = id })))
        assert.equals(0, store:revision(s))
        assert_unchanged(before_stats, s, {})
        assert.equals(a, store:event(id).stream)
      end)

      it("an id stored at another revision of the same stream is a conflict", function()
        local s, id = fx.stream(), eventstore.uuid()
        assert(store:append(s, { fx.event("First", {}, { id = id }), fx.event("Second") }))
        local before_stats, before_events = store:stats(), store:read(s)
        fx.fails("conflict", store:append(s, fx.event("First", {}, { id = id }), { expected = 2 }))
        assert_unchanged(before_stats, s, before_events)
      end)
    end)

    describe("read", function()
      it("reads a stream forward with every field of the event model", function()
        local s = fx.stream()
        local res = seed(s, 10)
        local evs = store:read(s)
        assert.equals(10, #evs)
        for i, ev in ipairs(evs) do
          assert.is_true(fx.is_uuid(ev.id))
          assert.equals(s, ev.stream)
          assert.equals(i, ev.revision)
          assert.is_true(fx.is_integer(ev.revision))
          assert.is_true(fx.is_integer(ev.position))
          assert.equals("Counted", ev.type)
          assert.same({ i = i }, ev.data)
          assert.is_true(fx.is_integer(ev.data.i))
          assert.same({}, ev.metadata)
          assert.is_true(fx.is_integer(ev.timestamp))
          assert.is_true(math.abs(ev.timestamp - os.time() * 1000) < 86400000)
        end
        assert.same(fx.ids(res.events), fx.ids(evs))
        assert.same(fx.positions(res.events), fx.positions(evs))
        assert.is_true(fx.strictly_increasing(fx.positions(evs)))
      end)

      it("from and to are inclusive at both ends", function()
        local s = fx.stream()
        seed(s, 10)
        assert.same({ 3, 4, 5 }, fx.revisions(store:read(s, { from = 3, to = 5 })))
        assert.same({ 4 }, fx.revisions(store:read(s, { from = 4, to = 4 })))
        assert.same(fx.range(3, 10), fx.revisions(store:read(s, { from = 3 })))
        assert.same({ 1, 2 }, fx.revisions(store:read(s, { to = 2 })))
        assert.same(fx.range(1, 10), fx.revisions(store:read(s, { from = 1, to = 10 })))
        assert.same({ 8, 9, 10 }, fx.revisions(store:read(s, { from = 8, to = 100 })))
      end)

      it("limit caps the number of events", function()
        local s = fx.stream()
        seed(s, 10)
        assert.same({ 1, 2, 3 }, fx.revisions(store:read(s, { limit = 3 })))
        assert.same({ 5, 6 }, fx.revisions(store:read(s, { from = 5, limit = 2 })))
        assert.same(fx.range(1, 10), fx.revisions(store:read(s, { limit = 100 })))
      end)

      it("backward reads newest first, within from..to and limit", function()
        local s = fx.stream()
        seed(s, 10)
        assert.same(fx.range(10, 1, -1), fx.revisions(store:read(s, { backward = true })))
        assert.same({ 10, 9, 8 }, fx.revisions(store:read(s, { backward = true, limit = 3 })))
        assert.same({ 5, 4, 3 }, fx.revisions(store:read(s, { backward = true, from = 3, to = 5 })))
        assert.same({ 5, 4 }, fx.revisions(store:read(s, { backward = true, from = 3, to = 5, limit = 2 })))
        assert.same({ 10, 9 }, fx.revisions(store:read(s, { backward = true, from = 9 })))
        assert.same(fx.range(1, 10), fx.revisions(store:read(s, { backward = false })))
      end)

      it("an empty range reads as {}", function()
        local s = fx.stream()
        seed(s, 10)
        assert.same({}, store:read(s, { from = 11 }))
        assert.same({}, store:read(s, { from = 5, to = 4 }))
      end)

      it("a missing stream reads as {}", function()
        local s = fx.stream()
        assert.same({}, store:read(s))
        assert.same({}, store:read(s, { backward = true }))
        assert.same({}, store:read(s, { from = 1, to = 3 }))
      end)

      it("omitted data and metadata read back as {}; metadata round-trips", function()
        local s, cid = fx.stream(), eventstore.uuid()
        assert(store:append(s, {
          { type = "Bare" },
          { type = "Meta", data = { x = 1 }, metadata = { correlation_id = cid, causation_id = cid } },
        }))
        local evs = store:read(s)
        assert.same({}, evs[1].data)
        assert.same({}, evs[1].metadata)
        assert.same({ x = 1 }, evs[2].data)
        assert.same({ correlation_id = cid, causation_id = cid }, evs[2].metadata)
      end)

      it("returns fresh tables: changing a read event does not change the store", function()
        local s = fx.stream()
        seed(s, 1)
        local ev = store:read(s)[1]
        ev.data.i = 999
        ev.type = "Changed"
        assert.equals(1, store:read(s)[1].data.i)
        assert.equals("Counted", store:last(s).type)
      end)

      it("event(id) returns the stored event, nil for an unknown id", function()
        local s = fx.stream()
        seed(s, 3)
        local second = store:read(s)[2]
        assert.same(second, store:event(second.id))
        assert.is_nil(store:event(eventstore.uuid()))
      end)
    end)

    describe("read_all", function()
      it("returns new events in position order across streams", function()
        local start = store:stats().position
        local s1, s2 = fx.stream(), fx.stream()
        assert(store:append(s1, fx.event("A")))
        assert(store:append(s2, fx.event("B")))
        assert(store:append(s1, fx.events(2, "C")))
        local all = ours_after(start, { s1, s2 })
        assert.same({ s1, s2, s1, s1 }, fx.streams_of(all))
        assert.same({ "A", "B", "C", "C" }, fx.types(all))
        assert.is_true(fx.strictly_increasing(fx.positions(all)))
        assert.is_true(all[1].position > start)
        if not b.shared then
          assert.same(all, store:read_all())
          assert.same(all, store:read_all({ after = 0 }))
        end
      end)

      it("after skips events at or below the position", function()
        local start = store:stats().position
        local s = fx.stream()
        local res = seed(s, 5)
        local third = res.events[3].position
        assert.same({ 4, 5 }, fx.revisions(fx.only(store:read_all({ after = third }), { s })))
        assert.same({}, fx.only(store:read_all({ after = res.position }), { s }))
        assert.same(fx.range(1, 5), fx.revisions(ours_after(start, { s })))
      end)

      it("limit caps the count", function()
        local start = store:stats().position
        local s = fx.stream()
        seed(s, 5)
        local page = store:read_all({ after = start, limit = 2 })
        assert.equals(2, #page)
        assert.is_true(page[1].position > start)
        assert.is_true(fx.strictly_increasing(fx.positions(page)))
        if not b.shared then
          assert.same({ 1, 2 }, fx.revisions(page))
          assert.same({ 3, 4 }, fx.revisions(store:read_all({ after = page[2].position, limit = 2 })))
        end
      end)

      it("category keeps only the streams of that category", function()
        local start = store:stats().position
        local cat, other = fx.category(), fx.category()
        assert(store:append(cat .. "-1", fx.event("In")))
        assert(store:append(other .. "-1", fx.event("Out")))
        assert(store:append(cat .. "-2", fx.event("In")))
        assert(store:append(cat, fx.event("In")))
        assert(store:append(cat .. "x-1", fx.event("Out")))
        local got = store:read_all({ after = start, category = cat })
        assert.same({ cat .. "-1", cat .. "-2", cat }, fx.streams_of(got))
        assert.same({ "In", "In", "In" }, fx.types(got))
      end)

      it("types keeps only the events of those types", function()
        local start = store:stats().position
        local s = fx.stream()
        local t1, t2, t3 = fx.name("T"), fx.name("T"), fx.name("T")
        assert(store:append(s, { fx.event(t1), fx.event(t2), fx.event(t3), fx.event(t1) }))
        local got = store:read_all({ after = start, types = { t1, t3 } })
        assert.same({ t1, t3, t1 }, fx.types(got))
        assert.same({ 1, 3, 4 }, fx.revisions(got))
        assert.same({ t2 }, fx.types(store:read_all({ after = start, types = { t2 } })))
      end)

      it("combines after, limit, category and types", function()
        local cat = fx.category()
        local t1, t2 = fx.name("T"), fx.name("T")
        local start = store:stats().position
        for i = 1, 6 do
          assert(store:append(cat .. "-" .. i, { fx.event(t1, { i = i }), fx.event(t2, { i = i }) }))
        end
        assert(store:append(fx.stream(), fx.event(t1)))
        local first = store:read_all({ after = start, category = cat, types = { t1 }, limit = 4 })
        local seen = {}
        for i, ev in ipairs(first) do seen[i] = ev.data.i end
        assert.same({ 1, 2, 3, 4 }, seen)
        assert.same({ t1, t1, t1, t1 }, fx.types(first))
        local rest = store:read_all({ after = first[4].position, category = cat, types = { t1 } })
        assert.same({ cat .. "-5", cat .. "-6" }, fx.streams_of(rest))
      end)
    end)

    describe("last, revision, since, streams, stats", function()
      it("last returns the newest event, nil for a missing stream", function()
        local s = fx.stream()
        seed(s, 4)
        local last = store:last(s)
        assert.equals(4, last.revision)
        assert.same(store:read(s)[4], last)
        assert.is_nil(store:last(fx.stream()))
      end)

      it("revision is the stream's revision, 0 when missing", function()
        local s = fx.stream()
        seed(s, 7)
        assert.equals(7, store:revision(s))
        assert.is_true(fx.is_integer(store:revision(s)))
        assert.equals(0, store:revision(fx.stream()))
      end)

      it("since returns events at or after a timestamp, with limit", function()
        local s = fx.stream()
        seed(s, 3)
        local evs = store:read(s)
        local t0, t_last = evs[1].timestamp, evs[3].timestamp
        assert.same(fx.ids(evs), fx.ids(fx.only(store:since(t0), { s })))
        assert.same({}, fx.only(store:since(t_last + 1), { s }))
        local page = store:since(t0, { limit = 2 })
        assert.equals(2, #page)
        for _, ev in ipairs(page) do assert.is_true(ev.timestamp >= t0) end
        assert.is_true(fx.strictly_increasing(fx.positions(page)))
        local all = store:since(b.shared and t0 or 0)
        assert.is_true(fx.strictly_increasing(fx.positions(all)))
        assert.equals(3, #fx.only(all, { s }))
      end)

      it("streams({ category }) lists that category's stream names, sorted", function()
        local cat = fx.category()
        for _, name in ipairs({ cat .. "-b", cat .. "x-1", cat .. "-a", cat, fx.stream() }) do
          assert(store:append(name, fx.event("S")))
        end
        assert(store:append(cat .. "-a", fx.event("S")))
        assert.same({ cat, cat .. "-a", cat .. "-b" }, store:streams({ category = cat }))
        assert.same({}, store:streams({ category = fx.category() }))
      end)

      it("streams() lists every stream once, sorted", function()
        local s1, s2 = fx.stream(), fx.stream()
        seed(s1, 2)
        seed(s2, 1)
        local all = store:streams()
        assert.same(fx.sorted(all), all)
        local count = {}
        for _, name in ipairs(all) do count[name] = (count[name] or 0) + 1 end
        assert.equals(1, count[s1])
        assert.equals(1, count[s2])
        if not b.shared then assert.same(fx.sorted({ s1, s2 }), all) end
      end)

      it("stats counts events and streams and reports the position and backend", function()
        local before = store:stats()
        if not b.shared then
          for _, k in ipairs({ "events", "streams", "snapshots", "position" }) do
            assert.equals(0, before[k])
          end
          assert.equals(b.backend, before.backend)
        end
        local s1, s2 = fx.stream(), fx.stream()
        seed(s1, 2)
        local res = seed(s2, 1)
        local after = store:stats()
        assert.equals(b.backend, after.backend)
        assert.is_true(fx.is_integer(after.events))
        assert.is_true(fx.is_integer(after.snapshots))
        if b.shared then
          assert.is_true(after.events >= before.events + 3)
          assert.is_true(after.streams >= before.streams + 2)
          assert.is_true(after.position >= res.position)
        else
          assert.equals(3, after.events)
          assert.equals(2, after.streams)
          assert.equals(res.position, after.position)
        end
      end)
    end)

    describe("positions and categories", function()
      it("positions strictly increase across streams in commit order", function()
        local start = store:stats().position
        local names = { fx.stream(), fx.stream(), fx.stream() }
        local committed = {}
        for i = 1, 21 do
          local res = assert(store:append(names[i % 3 + 1], fx.events(i % 2 + 1)))
          for _, ev in ipairs(res.events) do committed[#committed + 1] = ev.position end
        end
        assert.is_true(committed[1] > start)
        assert.is_true(fx.strictly_increasing(committed))
        assert.same(committed, fx.positions(ours_after(start, names)))
      end)

      it("the category is the part before the first '-'", function()
        local cat = fx.category()
        assert(store:append(cat .. "-1-2", fx.event("Deep")))
        assert(store:append(cat .. "-1", fx.event("Flat")))
        assert.same({ cat .. "-1", cat .. "-1-2" }, store:streams({ category = cat }))
        assert.same({}, store:streams({ category = cat .. "-1" }))
        assert.same({}, store:read_all({ category = cat .. "-1" }))
      end)

      it("a stream without '-' is its own category", function()
        local cat = fx.category()
        assert(store:append(cat, fx.event("Own")))
        assert.same({ cat }, store:streams({ category = cat }))
        assert.same({ cat }, fx.streams_of(store:read_all({ category = cat })))
        assert.same({}, store:streams({ category = cat:sub(1, -2) }))
      end)

      it("category matching is exact: no wildcards, case-sensitive", function()
        local under = fx.name("p")                       -- "p_<token><n>"
        local decoy_under = "pQ" .. under:sub(3)          -- matches p_... as a LIKE pattern
        local pct = "pc%t" .. fx.token .. fx.name("")
        local decoy_pct = "pcXYZt" .. pct:sub(5)
        local upper = under:upper()
        for _, c in ipairs({ under, decoy_under, pct, decoy_pct, upper }) do
          assert(store:append(c .. "-1", fx.event("C")))
        end
        assert.same({ under .. "-1" }, store:streams({ category = under }))
        assert.same({ under .. "-1" }, fx.streams_of(store:read_all({ category = under })))
        assert.same({ pct .. "-1" }, store:streams({ category = pct }))
        assert.same({ pct .. "-1" }, fx.streams_of(store:read_all({ category = pct })))
        assert.same({ upper .. "-1" }, store:streams({ category = upper }))
      end)
    end)

    describe("names and payloads", function()
      it("SQL-looking stream names, types and data round-trip as data", function()
        local s = "x'); DROP TABLE events;--" .. fx.name("q")
        local t = "'; DELETE FROM events WHERE '1'='1"
        local data = { ["k'\"); --"] = "'); DROP TABLE events;--", ["\\"] = "%_" }
        assert(store:append(s, fx.event(t, data, { metadata = { ["' OR 1=1 --"] = "\"" } })))
        local ev = store:read(s)[1]
        assert.equals(s, ev.stream)
        assert.equals(t, ev.type)
        assert.same(data, ev.data)
        assert.same({ ["' OR 1=1 --"] = "\"" }, ev.metadata)
        assert.equals(1, store:revision(s))
        assert.same(ev, store:last(s))
        local listed = store:streams({ category = "x'); DROP TABLE events;" })
        assert.is_true(#fx.only(store:read_all({ category = "x'); DROP TABLE events;" }), { s }) == 1)
        local found = false
        for _, name in ipairs(listed) do found = found or name == s end
        assert.is_true(found)
        local other = fx.stream()
        seed(other, 2)
        assert.equals(2, #store:read(other))
        assert.equals(b.backend, store:stats().backend)
      end)

      it("quotes, backslashes, percent signs, whitespace and multi-byte UTF-8 in stream names round-trip", function()
        for _, base in ipairs({ "q\"uo'te", "back\\slash", "per%cent_under", "κατηγορία", "日本語", "emoji😀",
          "tab\there", "new\nline", " spaced out " }) do
          local s = base .. "-" .. fx.name("n")
          assert(store:append(s, fx.event("N", { s = s })))
          local ev = store:last(s)
          assert.equals(s, ev.stream)
          assert.equals(s, ev.data.s)
          assert.equals(1, store:revision(s))
        end
      end)

      it("stream names are case-sensitive", function()
        local s = fx.stream("case")
        local upper = s:upper()
        seed(s, 2)
        seed(upper, 1)
        assert.equals(2, store:revision(s))
        assert.equals(1, store:revision(upper))
        assert.same({ s, s }, fx.streams_of(store:read(s)))
        assert.same({ upper }, fx.streams_of(store:read(upper)))
      end)

      it("a stream name of exactly 255 bytes works", function()
        local s = fx.stream()
        s = s .. string.rep("x", 255 - #s)
        assert.equals(255, #s)
        assert(store:append(s, fx.event("Long")))
        assert.equals(s, store:read(s)[1].stream)
      end)

      it("a NUL byte in a stream name or type raises or round-trips, never truncates", function()
        local head = fx.stream()
        local s = head .. "\0tail"
        local ok, res = pcall(store.append, store, s, fx.event("Nul"))
        if ok then
          assert(res)
          assert.equals(s, store:read(s)[1].stream)
          assert.same({}, store:read(head))
        else
          assert.matches("stream", res:lower())
          assert.equals(0, store:revision(head))
        end
        local s2 = fx.stream()
        ok, res = pcall(store.append, store, s2, fx.event("Ty\0pe"))
        if ok then
          assert(res)
          assert.equals("Ty\0pe", store:read(s2)[1].type)
        else
          assert.matches("type", res:lower())
          assert.equals(0, store:revision(s2))
        end
      end)

      it("a 5 MB payload round-trips", function()
        local s = fx.stream()
        local chunk = fx.text(1024)
        local blob = string.rep(chunk, 5 * 1024)
        assert.equals(5 * 1024 * 1024, #blob)
        assert(store:append(s, fx.event("Big", { blob = blob, n = 1 })))
        local ev = store:read(s)[1]
        assert.equals(#blob, #ev.data.blob)
        assert.is_true(ev.data.blob == blob)
        assert.equals(1, ev.data.n)
        assert.is_true(store:event(ev.id).data.blob == blob)
      end)

      it("values round-trip exactly", function()
        local s = fx.stream()
        local data = {
          int = 42, neg = -7, zero = 0, safe = 2 ^ 53 - 1, two53 = 2 ^ 53, three = 3.0,
          tenth = 0.1, third = 1 / 3, huge = 1e300, tiny = 5e-324,
          yes = true, no = false, null = eventstore.null,
          str = "héllo\0wörld", empty = "",
          list = { 1, "two", 3.5, { 4 }, { five = 5 } },
          nested = { a = { b = { c = { d = "deep" } } } },
          empty_object = {}, empty_array = eventstore.array({}),
        }
        if fx.has_integers then
          data.big, data.small = math.maxinteger, math.mininteger
          data.two53p1 = math.tointeger(2 ^ 53) + 1
        end
        local meta = { correlation_id = eventstore.uuid(), n = 2 ^ 53, list = { true, false } }
        assert(store:append(s, fx.event("Values", data, { metadata = meta })))
        local ev = store:read(s)[1]
        fx.assert_exactly(data, ev.data)
        fx.assert_exactly(meta, ev.metadata)
        fx.assert_exactly(data, store:event(ev.id).data)
      end)
    end)
  end)
end
