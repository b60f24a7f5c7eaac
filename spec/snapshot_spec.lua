-- snapshot: save/load, max_revision, max_snapshots, snapshot_every in state(),
-- fingerprints that keep stale snapshots out, on every backend
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local procs = require("spec.support.procs")

local array = eventstore.array

local function ev(type, data) return { type = type, data = data or {} } end

-- n events { n = i } of type "Added", numbered from first.
local function adds(n, first)
  local list = {}
  for i = 1, n do list[i] = ev("Added", { n = (first or 1) + i - 1 }) end
  return list
end

-- A reducer whose Lua function counts its calls and records the revisions
-- of the events it sees, so a spec can tell which events state() folded.
local function counting_reducer(opts)
  local seen = { calls = 0, revisions = {} }
  local rules = eventstore.reducer({
    total = { function(acc, v, e)
      seen.calls = seen.calls + 1
      seen.revisions[#seen.revisions + 1] = e.revision
      return (acc or 0) + v
    end, from = "n" },
  }, opts)
  return rules, seen
end

local function sum_to(n) return math.floor(n * (n + 1) / 2) end

for _, b in ipairs(backends.list) do
  describe("snapshots on " .. b.name, function()
    if b.pending then
      pending(b.pending)
      return
    end

    local opened = {}

    -- A fresh store with options; closed and removed after the test.
    local function open(opts)
      local store, path = backends.open(b, opts)
      opened[#opened + 1] = { store = store, path = path }
      return store, path
    end

    -- The same store again (a file or a server): a new handle.
    local function reopen(path, opts)
      local url = b.file and ("sqlite:" .. path) or b.url
      local store = assert(eventstore.open(url, opts or {}))
      opened[#opened + 1] = { store = store }
      return store
    end

    after_each(function()
      for _, o in ipairs(opened) do
        o.store:close()
        backends.remove(o.path)
      end
      opened = {}
    end)

    describe("save_snapshot and snapshot", function()
      it("round-trip data exactly with stream, revision, version and timestamp", function()
        local store = open()
        local s = fx.stream()
        -- 2^53 + 1 needs 64-bit integers (Lua 5.3+); LuaJIT has doubles only
        local big = fx.has_integers and math.tointeger(2 ^ 53) + 1 or 2 ^ 53
        local data = { balance = 10, rate = 0.1, big = big, f = 2.0, name = "ann",
          tags = array({ "a", "b" }), none = array(), nested = { deep = { x = true } } }
        local before = eventstore.now()
        assert.is_true(store:save_snapshot(s, 2, data, 7))
        local snap = assert(store:snapshot(s))
        assert.equals(s, snap.stream)
        assert.equals(2, snap.revision)
        assert.is_true(fx.is_integer(snap.revision))
        assert.equals(7, snap.version)
        assert.is_true(fx.is_integer(snap.timestamp))
        assert.is_true(snap.timestamp >= before - 1000 and snap.timestamp <= eventstore.now() + 1000)
        fx.assert_exactly(data, snap.data)
        assert.is_true(eventstore.is_array(snap.data.none))
      end)

      it("version defaults to 0; a stream without snapshots gives nil", function()
        local store = open()
        local s = fx.stream()
        assert.is_nil(store:snapshot(s))
        assert.is_true(store:save_snapshot(s, 1, { x = 1 }))
        assert.equals(0, store:snapshot(s).version)
        assert.is_nil(store:snapshot(fx.stream()))
      end)

      it("the newest snapshot wins, whatever the save order; max_revision picks an older one", function()
        local store = open()
        local s = fx.stream()
        for _, rev in ipairs({ 5, 2, 8 }) do
          assert.is_true(store:save_snapshot(s, rev, { at = rev }, 1))
        end
        assert.equals(8, store:snapshot(s).revision)
        assert.same({ at = 8 }, store:snapshot(s).data)
        assert.equals(8, store:snapshot(s, { max_revision = 100 }).revision)
        assert.equals(8, store:snapshot(s, { max_revision = 8 }).revision)
        assert.equals(5, store:snapshot(s, { max_revision = 7 }).revision)
        assert.same({ at = 5 }, store:snapshot(s, { max_revision = 5 }).data)
        assert.equals(2, store:snapshot(s, { max_revision = 4 }).revision)
        assert.is_nil(store:snapshot(s, { max_revision = 1 }))
        assert.is_nil(store:snapshot(s, { max_revision = 0 }))
      end)

      it("saving again at the same revision replaces the snapshot", function()
        local store = open()
        local s = fx.stream()
        assert(store:save_snapshot(s, 3, { v = "old" }, 1))
        assert(store:save_snapshot(s, 3, { v = "new" }, 2))
        local snap = store:snapshot(s)
        assert.same({ v = "new" }, snap.data)
        assert.equals(2, snap.version)
        assert.is_nil(store:snapshot(s, { max_revision = 2 }))
        if not b.shared then assert.equals(1, store:stats().snapshots) end
      end)

      it("snapshots of one stream are not another's", function()
        local store = open()
        local cat = fx.category()
        local s1, s2 = cat .. "-1", cat .. "-2"
        assert(store:save_snapshot(s1, 1, { who = 1 }))
        assert(store:save_snapshot(s2, 4, { who = 2 }))
        assert.same({ who = 1 }, store:snapshot(s1).data)
        assert.same({ who = 2 }, store:snapshot(s2).data)
        assert.is_nil(store:snapshot(s2, { max_revision = 3 }))
      end)

      it("bad arguments raise naming them", function()
        local store = open()
        local s = fx.stream()
        fx.raises(function() store:save_snapshot(s, -1, {}) end, "revision")
        fx.raises(function() store:save_snapshot(s, 1.5, {}) end, "revision")
        fx.raises(function() store:save_snapshot(s, 1, "data") end, "#4", "table")
        fx.raises(function() store:save_snapshot(s, 1, {}, 1.5) end, "version")
        fx.raises(function() store:save_snapshot(s, 1, { f = print }) end, "function")
        fx.raises(function() store:save_snapshot("", 1, {}) end, "stream")
        fx.raises(function() store:snapshot(s, { max_rev = 1 }) end, "max_rev")
        assert.is_nil(store:snapshot(s))
      end)

      local it_durable = (b.file or b.shared) and it or function() end

      it_durable("survive closing and opening the store again", function()
        local store, path = open()
        local s = fx.stream()
        assert(store:save_snapshot(s, 4, { kept = true }, 3))
        store:close()
        local again = reopen(path)
        local snap = assert(again:snapshot(s))
        assert.equals(4, snap.revision)
        assert.equals(3, snap.version)
        assert.same({ kept = true }, snap.data)
      end)
    end)

    describe("max_snapshots", function()
      it("keeps the newest K snapshots of each stream", function()
        local store = open({ max_snapshots = 2 })
        local cat = fx.category()
        local s, other = cat .. "-1", cat .. "-2"
        assert(store:save_snapshot(other, 1, { o = 1 }))
        for rev = 1, 5 do assert(store:save_snapshot(s, rev, { at = rev })) end
        assert.equals(5, store:snapshot(s).revision)
        assert.equals(4, store:snapshot(s, { max_revision = 4 }).revision)
        assert.is_nil(store:snapshot(s, { max_revision = 3 }))
        assert.same({ o = 1 }, store:snapshot(other).data)
        if not b.shared then assert.equals(3, store:stats().snapshots) end
      end)

      it("keeps the newest by revision even when an older revision is saved last", function()
        local store = open({ max_snapshots = 2 })
        local s = fx.stream()
        assert(store:save_snapshot(s, 10, { at = 10 }))
        assert(store:save_snapshot(s, 20, { at = 20 }))
        assert(store:save_snapshot(s, 5, { at = 5 }))
        assert.equals(20, store:snapshot(s).revision)
        assert.equals(10, store:snapshot(s, { max_revision = 19 }).revision)
        -- that revision 5 is pruned (K = 2) is held back: PostgreSQL keeps it
      end)

      it("applies to the snapshots state() writes", function()
        local store = open({ snapshot_every = 1, max_snapshots = 2 })
        local s = fx.stream()
        local rules = eventstore.reducer({ n = "sum" })
        for i = 1, 5 do
          assert(store:append(s, adds(1, i)))
          local st, rev = store:state(s, rules)
          assert.equals(sum_to(i), st.n)
          assert.equals(i, rev)
        end
        assert.equals(5, store:snapshot(s).revision)
        assert.equals(4, store:snapshot(s, { max_revision = 4 }).revision)
        assert.is_nil(store:snapshot(s, { max_revision = 3 }))
      end)

      it("0 keeps every snapshot", function()
        local store = open({ max_snapshots = 0 })
        local s = fx.stream()
        for rev = 1, 6 do assert(store:save_snapshot(s, rev, { at = rev })) end
        for rev = 1, 6 do assert.equals(rev, store:snapshot(s, { max_revision = rev }).revision) end
      end)
    end)

    describe("snapshot_every in state()", function()
      it("writes a snapshot once N events have been folded since the last one", function()
        local store = open({ snapshot_every = 3 })
        local s = fx.stream()
        local rules = eventstore.reducer({ n = "sum" }, { version = 4 })
        assert(store:append(s, adds(2)))
        assert.same({ n = 3 }, (store:state(s, rules)))
        assert.is_nil(store:snapshot(s))
        assert(store:append(s, adds(1, 3)))
        local st, rev = store:state(s, rules)
        assert.same({ n = 6 }, st)
        assert.equals(3, rev)
        local snap = assert(store:snapshot(s))
        assert.equals(3, snap.revision)
        assert.equals(4, snap.version)
        assert.same({ n = 6 }, snap.data)
        -- two more: below N since the snapshot, none written
        assert(store:append(s, adds(2, 4)))
        assert.same({ n = 15 }, (store:state(s, rules)))
        assert.equals(3, store:snapshot(s).revision)
        -- the third since the snapshot writes the next one
        assert(store:append(s, adds(1, 6)))
        st, rev = store:state(s, rules)
        assert.same({ n = 21 }, st)
        assert.equals(6, rev)
        assert.equals(6, store:snapshot(s).revision)
        assert.same({ n = 21 }, store:snapshot(s).data)
      end)

      it("writes one snapshot at the last revision when many events are folded at once", function()
        local store = open({ snapshot_every = 3 })
        local s = fx.stream()
        assert(store:append(s, adds(10)))
        local st, rev = store:state(s, eventstore.reducer({ n = "sum" }))
        assert.equals(sum_to(10), st.n)
        assert.equals(10, rev)
        assert.equals(10, store:snapshot(s).revision)
        assert.is_nil(store:snapshot(s, { max_revision = 9 }))
      end)

      it("writes nothing for a missing stream, with 0, or below N", function()
        local store = open({ snapshot_every = 5 })
        local s = fx.stream()
        local st, rev = store:state(s, eventstore.reducer({}))
        assert.same({}, st)
        assert.equals(0, rev)
        assert.is_nil(store:snapshot(s))
        assert(store:append(s, adds(4)))
        store:state(s, eventstore.reducer({}))
        assert.is_nil(store:snapshot(s))
        local off = open({ snapshot_every = 0 })
        local s2 = fx.stream()
        assert(off:append(s2, adds(20)))
        assert.equals(sum_to(20), off:state(s2, eventstore.reducer({ n = "sum" })).n)
        assert.is_nil(off:snapshot(s2))
      end)

      it("state() after a snapshot folds only the later events", function()
        local store = open({ snapshot_every = 5 })
        local s = fx.stream()
        local rules, seen = counting_reducer()
        assert(store:append(s, adds(5)))
        local st, rev = store:state(s, rules)
        assert.same({ total = 15, n = 5 }, st)
        assert.equals(5, rev)
        assert.equals(5, seen.calls)
        assert.equals(5, store:snapshot(s).revision)
        assert(store:append(s, adds(2, 6)))
        seen.calls, seen.revisions = 0, {}
        st, rev = store:state(s, rules)
        assert.same({ total = 28, n = 7 }, st)
        assert.equals(7, rev)
        assert.equals(2, seen.calls)
        assert.same({ 6, 7 }, seen.revisions)
        -- three more: five since the snapshot at 5, so a new one at 10
        assert(store:append(s, adds(3, 8)))
        seen.calls, seen.revisions = 0, {}
        st = store:state(s, rules)
        assert.equals(sum_to(10), st.total)
        assert.same({ 6, 7, 8, 9, 10 }, seen.revisions)
        assert.equals(10, store:snapshot(s).revision)
        seen.calls, seen.revisions = 0, {}
        st, rev = store:state(s, rules)
        assert.equals(sum_to(10), st.total)
        assert.equals(10, rev)
        assert.equals(0, seen.calls)
      end)

      -- Built-in rules only: state() may read the snapshot and the events
      -- after it in one statement (PostgreSQL does), then page on. A
      -- snapshot row folded as an event, or a page lost, breaks the sums.
      it("state() with built-in rules starts at its snapshot and pages through the rest", function()
        local store = open({ snapshot_every = 1500 })
        local s = fx.stream()
        local rules = eventstore.reducer({ ["*"] = "last", qty = "sum", one = "sum" })
        local function batch(first, n)
          local list = {}
          for i = 1, n do
            local k = first + i - 1
            list[i] = ev("Added", { qty = k, one = 1, tag = "t" .. k })
          end
          return list
        end
        for first = 1, 2600, 200 do assert(store:append(s, batch(first, math.min(200, 2601 - first)))) end
        local st, rev = store:state(s, rules)
        assert.same({ qty = sum_to(2600), one = 2600, tag = "t2600" }, st)
        assert.equals(2600, rev)
        assert.equals(2600, store:snapshot(s).revision)
        -- 1,200 more: more than a page of events after the snapshot
        for first = 2601, 3800, 300 do assert(store:append(s, batch(first, 300))) end
        st, rev = store:state(s, rules)
        assert.same({ qty = sum_to(3800), one = 3800, tag = "t3800" }, st)
        assert.equals(3800, rev)
        assert.same(rules:fold(store:read(s), {}), st)
        -- and a stream without events or snapshot
        st, rev = store:state(fx.stream(), rules)
        assert.same({}, st)
        assert.equals(0, rev)
      end)

      if b.backend == "postgres" then
        it("a snapshot whose text is not an object is skipped: state() folds from the first event", function()
          local store = open({ snapshot_every = 3 })
          local s = fx.stream()
          local rules = eventstore.reducer({ qty = "sum" })
          assert(store:append(s, { ev("Added", { qty = 1 }), ev("Added", { qty = 2 }), ev("Added", { qty = 3 }) }))
          assert.same({ qty = 6 }, (store:state(s, rules)))
          assert.equals(3, store:snapshot(s).revision)
          local rc, out = procs.sh("psql " .. procs.quote(b.url) .. " -qAt -c " ..
            procs.quote("UPDATE es_snapshots SET data = '[1, 2]' WHERE stream = '" .. s .. "'"))
          assert(rc == 0, "psql failed: " .. out)
          assert(store:append(s, { ev("Added", { qty = 4 }) }))
          local st, rev = store:state(s, rules)
          assert.same({ qty = 10 }, st)
          assert.equals(4, rev)
        end)
      end

      local it_durable = (b.file or b.shared) and it or function() end

      it_durable("a snapshot written by state() is used after the store is opened again", function()
        local store, path = open({ snapshot_every = 4 })
        local s = fx.stream()
        local rules, seen = counting_reducer({ version = 2 })
        assert(store:append(s, adds(6)))
        assert.equals(sum_to(6), store:state(s, rules).total)
        store:close()
        local again = reopen(path)
        assert(again:append(s, adds(1, 7)))
        seen.calls, seen.revisions = 0, {}
        local st, rev = again:state(s, rules)
        assert.equals(sum_to(7), st.total)
        assert.equals(7, rev)
        assert.same({ 7 }, seen.revisions)
      end)
    end)

    describe("fingerprints", function()
      it("changed rules rebuild the state from the events instead of using a stale snapshot", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        assert(store:append(s, { ev("Added", { n = 5 }), ev("Added", { n = 1 }), ev("Added", { n = 3 }) }))
        local summed = eventstore.reducer({ n = "sum" })
        assert.equals(9, store:state(s, summed).n)
        assert.equals(3, store:snapshot(s).revision)
        local st, rev = store:state(s, eventstore.reducer({ n = "max" }))
        assert.equals(5, st.n)
        assert.equals(3, rev)
        st = store:state(s, eventstore.reducer({ n = "min" }))
        assert.equals(1, st.n)
        st = store:state(s, eventstore.reducer({ total = { "sum", from = "n" } }))
        assert.same({ total = 9, n = 3 }, st)
        -- the first rules still find their own snapshot
        assert.equals(9, store:state(s, summed).n)
      end)

      it("a new version of Lua function rules does not use the old version's snapshot", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        assert(store:append(s, adds(4)))
        local v1 = eventstore.reducer({ n = function(acc, v) return (acc or 0) + v end }, { version = 1 })
        assert.equals(10, store:state(s, v1).n)
        local snap = assert(store:snapshot(s))
        assert.equals(1, snap.version)
        -- same shape, new behaviour: only the version tells them apart
        local calls = 0
        local v2 = eventstore.reducer({ n = function(acc, v) calls = calls + 1; return (acc or 1) * v end },
          { version = 2 })
        local st, rev = store:state(s, v2)
        assert.equals(24, st.n)
        assert.equals(4, rev)
        assert.equals(4, calls)
        assert.equals(2, store:snapshot(s).version)
        -- and the same version again uses its snapshot (no call)
        calls = 0
        assert.equals(24, store:state(s, v2).n)
        assert.equals(0, calls)
      end)

      it("a different initial state does not use another initial state's snapshot", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        local rules = eventstore.reducer({ n = "sum" })
        assert(store:append(s, adds(3)))
        assert.equals(106, store:state(s, rules, { initial = { n = 100 } }).n)
        assert.equals(6, store:state(s, rules).n)
        assert.equals(1006, store:state(s, rules, { initial = { n = 1000 } }).n)
        assert.equals(106, store:state(s, rules, { initial = { n = 100 } }).n)
      end)

      it("an empty initial state is no initial state: both use the same snapshots", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        local rules, seen = counting_reducer()
        assert(store:append(s, adds(4)))
        assert.equals(10, store:state(s, rules).total)
        seen.calls = 0
        assert.equals(10, store:state(s, rules, { initial = {} }).total)
        assert.equals(0, seen.calls)
      end)

      it("the same initial state built in another key order uses the same snapshots", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        local rules, seen = counting_reducer()
        assert(store:append(s, adds(4)))
        local a = {}
        a.total, a.label, a.tags = 100, "x", array({ "p", "q" })
        assert.equals(110, store:state(s, rules, { initial = a }).total)
        seen.calls = 0
        local b2 = {}
        b2.tags, b2.label, b2.total = array({ "p", "q" }), "x", 100
        assert.equals(110, store:state(s, rules, { initial = b2 }).total)
        assert.equals(0, seen.calls)
        seen.calls = 0
        local st = store:state(s, rules, { initial = { total = 100, label = "x", tags = array({ "q", "p" }) } })
        assert.equals(110, st.total)
        assert.equals(4, seen.calls)
      end)

      it("reducers that evict each other's snapshots (max_snapshots = 1) still get their own state", function()
        local store = open({ snapshot_every = 2, max_snapshots = 1 })
        local s = fx.stream()
        local sum = eventstore.reducer({ n = "sum" })
        local max = eventstore.reducer({ n = "max" })
        local count = eventstore.reducer({ n = "count" })
        local total = 0
        for i = 1, 12 do
          assert(store:append(s, adds(1, i)))
          total = total + i
          assert.equals(total, store:state(s, sum).n)
          assert.equals(i, store:state(s, max).n)
          assert.equals(i, store:state(s, count).n)
        end
        if not b.shared then assert.equals(1, store:stats().snapshots) end
      end)

      it("a state() that fails writes no snapshot", function()
        local store = open({ snapshot_every = 2 })
        local s = fx.stream()
        assert(store:append(s, adds(4)))
        local failing = eventstore.reducer({ n = function(acc, v)
          if v == 4 then error("refused", 0) end
          return (acc or 0) + v
        end })
        local ok, msg = pcall(store.state, store, s, failing)
        assert.is_false(ok)
        assert.equals("refused", msg)
        assert.is_nil(store:snapshot(s))
        local bad_data = eventstore.reducer({ n = "sum" })
        assert(store:append(s, ev("Added", { n = "five" })))
        fx.raises(function() store:state(s, bad_data) end, "'n'")
        assert.is_nil(store:snapshot(s))
      end)

      it("user snapshots are returned by snapshot() but never used by state()", function()
        local store = open({ snapshot_every = 3 })
        local s = fx.stream()
        local rules, seen = counting_reducer()
        assert(store:append(s, adds(3)))
        assert.equals(6, store:state(s, rules).total)
        local auto = store:snapshot(s)
        assert.equals(3, auto.revision)
        assert.same({ total = 6, n = 3 }, auto.data)
        assert(store:append(s, adds(2, 4)))
        assert(store:save_snapshot(s, 5, { total = -1, n = -1, doctored = true }, 0))
        assert.same({ total = -1, n = -1, doctored = true }, store:snapshot(s).data)
        seen.calls, seen.revisions = 0, {}
        local st, rev = store:state(s, rules)
        assert.same({ total = 15, n = 5 }, st)
        assert.equals(5, rev)
        assert.same({ 4, 5 }, seen.revisions)
        -- a user snapshot far ahead changes nothing either
        assert(store:save_snapshot(s, 100, { total = 0 }))
        seen.calls, seen.revisions = 0, {}
        st, rev = store:state(s, rules)
        assert.equals(15, st.total)
        assert.equals(5, rev)
        assert.same({ 4, 5 }, seen.revisions)
      end)
    end)
  end)
end
