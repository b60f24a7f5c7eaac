-- seeds: the seed projects' state and snapshot use cases (osiris,
-- aws-event-stream, jthissen/event-store, node-eventstore), on every backend
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

local TYPES, array = eventstore.TYPES, eventstore.array

local function ev(type, data, metadata)
  return { type = type, data = data or {}, metadata = metadata }
end

for _, b in ipairs(backends.list) do
  describe("seed use cases on " .. b.name, function()
    local store
    if not backends.fresh(b, { snapshot_every = 0 }, function(s) store = s end) then return end

    describe("osiris", function()
      -- employee-<name> streams; "*" = "last" merges the fields, overtime sums
      local employee_rules = eventstore.reducer({ ["*"] = "last", overtime = "sum" })

      local function hire(cat, name, company, salary)
        return assert(store:append(cat .. "-" .. name, ev("EmployeeHired",
          { name = name, company = company, salary = salary })))
      end

      it("getState('bob') merges bob's fields from all his events", function()
        local cat = fx.category("employee")
        local bob = cat .. "-bob"
        hire(cat, "bob", "acme", 3000)
        assert(store:append(bob, ev("AddressChanged", { street = "Main St 1", city = "Springfield" })))
        assert(store:append(bob, ev("AddressChanged", { street = "Elm St 2" })))
        assert(store:append(bob, ev("PhoneAdded", { phone = "555-0100" })))
        local st, rev = store:state(bob, employee_rules)
        assert.equals(4, rev)
        assert.same({ name = "bob", company = "acme", salary = 3000, street = "Elm St 2",
          city = "Springfield", phone = "555-0100" }, st)
      end)

      it("overtime 1 + 3 = 4 is summed, as an integer", function()
        local cat = fx.category("employee")
        local bob = cat .. "-bob"
        hire(cat, "bob", "acme", 3000)
        assert(store:append(bob, ev("OvertimeWorked", { overtime = 1 })))
        assert(store:append(bob, ev("OvertimeWorked", { overtime = 3 })))
        local st, rev = store:state(bob, employee_rules)
        assert.equals(3, rev)
        assert.equals(4, st.overtime)
        assert.is_true(fx.is_integer(st.overtime))
        assert.equals("bob", st.name)
      end)

      it("acme's salaries sum to 7000 across employees although bob later moves", function()
        local cat = fx.category("employee")
        local other = fx.category("employee")
        hire(cat, "bob", "acme", 3000)
        hire(cat, "alice", "acme", 2500)
        hire(cat, "carol", "globex", 9000)
        local last_acme = hire(cat, "dave", "acme", 1500)
        -- an acme employee of another category does not count
        hire(other, "erin", "acme", 100000)
        assert(store:append(cat .. "-alice", ev("OvertimeWorked", { overtime = 2 })))
        assert(store:append(cat .. "-bob", ev("EmployeeMoved", { company = "globex", salary = 4000 })))
        local rules = eventstore.reducer({ ["*"] = "drop", salary = "sum", [TYPES] = "events",
          names = { "append", from = "name" } })
        local st, pos = store:state({ category = cat, where = { company = "acme" } }, rules)
        assert.same({ salary = 7000, events = { "EmployeeHired", "EmployeeHired", "EmployeeHired" },
          names = { "bob", "alice", "dave" } }, st)
        assert.equals(last_acme.position, pos)
        -- globex: carol, and bob since his move
        st = store:state({ category = cat, where = { company = "globex" } }, rules)
        assert.equals(13000, st.salary)
        -- bob himself: the move is his newest state
        local bob = store:state(cat .. "-bob", employee_rules)
        assert.equals("globex", bob.company)
        assert.equals(4000, bob.salary)
      end)

      it("where matches every field it names, nested values included, in global order", function()
        local cat = fx.category("employee")
        assert(store:append(cat .. "-bob", ev("Hired", { company = "acme", site = { city = "x" }, salary = 1 })))
        assert(store:append(cat .. "-ann", ev("Hired", { company = "acme", site = { city = "y" }, salary = 10 })))
        assert(store:append(cat .. "-bob", ev("Raise", { company = "acme", site = { city = "x" }, salary = 100 })))
        assert(store:append(cat .. "-cid", ev("Hired", { company = "acme", salary = 1000 })))
        local rules = eventstore.reducer({ salary = "sum", who = { "append", from = "salary" }, ["*"] = "drop" })
        local st = store:state({ category = cat, where = { company = "acme", site = { city = "x" } } }, rules)
        assert.same({ salary = 101, who = { 1, 100 } }, st)
        st = store:state({ category = cat, where = { company = "acme" } }, rules)
        assert.same({ salary = 1111, who = { 1, 10, 100, 1000 } }, st)
        st = store:state({ category = cat }, rules)
        assert.equals(1111, st.salary)
      end)

      it("a where that matches nothing gives the initial state and position 0", function()
        local cat = fx.category("employee")
        hire(cat, "bob", "acme", 3000)
        local st, pos = store:state({ category = cat, where = { company = "initech" } },
          eventstore.reducer({ salary = "sum" }), { initial = { salary = 0 } })
        assert.same({ salary = 0 }, st)
        assert.equals(0, pos)
      end)
    end)

    describe("aws-event-stream", function()
      it("folds an order's history into one object with the list of its event types", function()
        local cat = fx.category("orders")
        local s = cat .. "-1001"
        assert(store:append(s, {
          ev("OrderCreated", { id = "1001", customer = "ann", status = "new" }),
          ev("ItemAdded", { item = { sku = "A-1", qty = 2 } }),
          ev("ItemAdded", { item = { sku = "B-7", qty = 1 } }),
        }, { expected = eventstore.NO_STREAM }))
        assert(store:append(s, ev("OrderPaid", { status = "paid", amount = 42.5 })))
        assert(store:append(s, ev("OrderShipped", { status = "shipped", carrier = "ups" })))
        local rules = eventstore.reducer({
          ["*"] = "last",
          [TYPES] = "history",
          items = { "append", from = "item" },
          item = "drop",
        })
        local st, rev = store:state(s, rules)
        assert.equals(5, rev)
        assert.same({
          id = "1001", customer = "ann", status = "shipped", amount = 42.5, carrier = "ups",
          items = { { sku = "A-1", qty = 2 }, { sku = "B-7", qty = 1 } },
          history = { "OrderCreated", "ItemAdded", "ItemAdded", "OrderPaid", "OrderShipped" },
        }, st)
        -- the same object from the events read back (loadFromHistory)
        assert.same(st, rules:fold(store:read(s)))
      end)

      it("an order without events is the initial object with an empty history", function()
        local s = fx.category("orders") .. "-1"
        local st, rev = store:state(s, eventstore.reducer({ [TYPES] = "history" }),
          { initial = { history = array() } })
        assert.equals(0, rev)
        assert.same({ history = {} }, st)
        assert.is_true(eventstore.is_array(st.history))
      end)
    end)

    describe("jthissen/event-store", function()
      it("snapshots the aggregate { id, name } automatically every N revisions", function()
        local n = 3
        local es = backends.open(b, { snapshot_every = n })
        local ok, err = pcall(function()
          local id = eventstore.uuid()
          local s = fx.category("person") .. "-" .. id
          local rules = eventstore.reducer({ ["*"] = "drop", id = "first", name = "last" })
          local correlation = eventstore.uuid()
          local causation = correlation
          local names = { "ann", "anna", "anne", "annie", "ana", "hanna", "anja", "nan", "nina", "anya" }
          for i, name in ipairs(names) do
            local data = i == 1 and { id = id, name = name } or { name = name }
            local res = assert(es:append(s, ev(i == 1 and "Created" or "Renamed", data,
              { correlation_id = correlation, causation_id = causation }), { expected = i - 1 }))
            causation = res.events[1].id
            -- the aggregate is loaded after every command, as jthissen's repository does
            local st, rev = es:state(s, rules)
            assert.same({ id = id, name = name }, st)
            assert.equals(i, rev)
            local snap = es:snapshot(s)
            if i < n then
              assert.is_nil(snap)
            else
              assert.equals(i - i % n, snap.revision)
            end
          end
          -- snapshots at 3, 6 and 9, each the state at its revision
          for _, at in ipairs({ 3, 6, 9 }) do
            local snap = es:snapshot(s, { max_revision = at })
            assert.equals(at, snap.revision)
            assert.same({ id = id, name = names[at] }, snap.data)
          end
          assert.is_nil(es:snapshot(s, { max_revision = 2 }))
          assert.equals(3, es:snapshot(s, { max_revision = 5 }).revision)
          -- events by revision range, the last event, and the ids chained in metadata
          local mid = es:read(s, { from = 4, to = 6 })
          assert.same({ 4, 5, 6 }, fx.revisions(mid))
          local all = es:read(s)
          for i, e in ipairs(all) do
            assert.equals(correlation, e.metadata.correlation_id)
            assert.equals(i == 1 and correlation or all[i - 1].id, e.metadata.causation_id)
          end
          local last = es:last(s)
          assert.equals(10, last.revision)
          assert.equals(names[10], last.data.name)
        end)
        es:close()
        assert(ok, err)
      end)
    end)

    describe("node-eventstore", function()
      -- getFromSnapshot({ aggregateId, maxRev }): the newest snapshot at or
      -- below maxRev and the events after it up to maxRev.
      local function get_from_snapshot(s, max_rev)
        local snap = store:snapshot(s, max_rev and { max_revision = max_rev } or nil)
        local events = store:read(s, { from = snap and snap.revision + 1 or 1, to = max_rev })
        return snap, events
      end

      it("getFromSnapshot gives the snapshot plus the events after it, up to a max revision", function()
        local s = fx.category("account") .. "-" .. eventstore.uuid()
        local list = {}
        for i = 1, 10 do list[i] = ev("Deposited", { amount = i }) end
        assert(store:append(s, list))
        local rules = eventstore.reducer({ balance = { "sum", from = "amount" }, ["*"] = "drop" })
        -- the application creates snapshots (createSnapshot) at 4 and 8
        assert(store:save_snapshot(s, 4, rules:fold(store:read(s, { to = 4 })), 1))
        assert(store:save_snapshot(s, 8, rules:fold(store:read(s, { to = 8 })), 1))

        local snap, events = get_from_snapshot(s, 6)
        assert.equals(4, snap.revision)
        assert.same({ balance = 10 }, snap.data)
        assert.equals(1, snap.version)
        assert.same({ 5, 6 }, fx.revisions(events))
        assert.same({ balance = 21 }, rules:fold(events, snap.data))

        snap, events = get_from_snapshot(s, 10)
        assert.equals(8, snap.revision)
        assert.same({ 9, 10 }, fx.revisions(events))
        assert.same({ balance = 55 }, rules:fold(events, snap.data))

        snap, events = get_from_snapshot(s)
        assert.equals(8, snap.revision)
        assert.same({ 9, 10 }, fx.revisions(events))

        snap, events = get_from_snapshot(s, 8)
        assert.equals(8, snap.revision)
        assert.same({}, events)

        snap, events = get_from_snapshot(s, 3)
        assert.is_nil(snap)
        assert.same({ 1, 2, 3 }, fx.revisions(events))
        assert.same({ balance = 6 }, rules:fold(events))
      end)

      it("a snapshot of an older version is returned with its version for the caller to judge", function()
        local s = fx.category("account") .. "-" .. eventstore.uuid()
        assert(store:append(s, { ev("Deposited", { amount = 5 }), ev("Deposited", { amount = 7 }) }))
        assert(store:save_snapshot(s, 1, { balance = 5 }, 1))
        assert(store:save_snapshot(s, 2, { cents = 1200 }, 2))
        local snap = store:snapshot(s)
        assert.equals(2, snap.version)
        assert.same({ cents = 1200 }, snap.data)
        snap = store:snapshot(s, { max_revision = 1 })
        assert.equals(1, snap.version)
      end)
    end)
  end)
end
