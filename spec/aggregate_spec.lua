-- aggregate: command handlers deciding events from state, on every backend
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

-- The bank account of DESIGN.md: a balance from two event types, folded in C.
local function account_rules()
  return eventstore.reducer {
    ["*"] = "last",
    balance = { { "sum", from = "amount", when = "Deposited" },
                { "sum", from = "amount", when = "Withdrawn", scale = -1 } },
  }
end

local function account_commands(log)
  return {
    open = function(state, cmd)
      if state.owner then error("account already open", 0) end
      return { type = "Opened", data = { owner = cmd.owner } }
    end,
    deposit = function(_, cmd, ctx)
      if log then log[#log + 1] = { revision = ctx.revision, attempt = ctx.attempt } end
      return { type = "Deposited", data = { amount = cmd.amount } }
    end,
    withdraw = function(state, cmd)
      if state.balance < cmd.amount then error("insufficient funds", 0) end
      return { type = "Withdrawn", data = { amount = cmd.amount } }
    end,
    transfer_in_two = function(_, cmd)
      return { { type = "Deposited", data = { amount = cmd.amount } },
               { type = "Withdrawn", data = { amount = cmd.fee } } }
    end,
    nothing = function() return nil end,
    empty = function() return {} end,
  }
end

-- The same account with the balance folded in Lua.
local function lua_fold(state, ev)
  if ev.type == "Opened" then state.owner = ev.data.owner
  elseif ev.type == "Deposited" then state.balance = state.balance + ev.data.amount
  elseif ev.type == "Withdrawn" then state.balance = state.balance - ev.data.amount end
end

local kinds = {
  { name = "reducer", make = function(def) def.reducer = account_rules(); return def end },
  { name = "fold", make = function(def) def.fold = lua_fold; return def end },
}

describe("aggregate definition", function()
  local function def(extra)
    local d = { category = "acct", initial = { balance = 0 }, fold = lua_fold, commands = { x = function() end } }
    for k, v in pairs(extra) do
      if v == false then d[k] = nil else d[k] = v end
    end
    return d
  end

  it("raises on a malformed definition", function()
    fx.raises(function() eventstore.aggregate(nil) end, "table expected")
    fx.raises(function() eventstore.aggregate(def { category = false }) end, "category")
    fx.raises(function() eventstore.aggregate(def { category = "a-b" }) end, "category")
    fx.raises(function() eventstore.aggregate(def { category = "" }) end, "category")
    fx.raises(function() eventstore.aggregate(def { fold = false }) end, "'reducer' or 'fold' is required")
    fx.raises(function() eventstore.aggregate(def { reducer = account_rules() }) end, "not both")
    fx.raises(function() eventstore.aggregate(def { fold = false, reducer = {} }) end, "eventstore.reducer")
    fx.raises(function() eventstore.aggregate(def { commands = {} }) end, "commands")
    fx.raises(function() eventstore.aggregate(def { commands = { x = 1 } }) end, "command 'x'")
    fx.raises(function() eventstore.aggregate(def { retries = -1 }) end, "retries")
    fx.raises(function() eventstore.aggregate(def { retries = 1.5 }) end, "retries")
    fx.raises(function() eventstore.aggregate(def { initial = 3 }) end, "initial")
    fx.raises(function() eventstore.aggregate(def { snapshot = true }) end, "unknown field 'snapshot'")
  end)

  it("names streams category-id and binds only to stores", function()
    local agg = eventstore.aggregate(def {})
    assert.equals("acct-42", agg:stream(42))
    assert.equals("acct-x-1", agg:stream("x-1"))
    fx.raises(function() agg:stream("") end, "id")
    fx.raises(function() agg:bind({}) end, "store expected")
    fx.raises(function() agg:bind(nil) end, "store expected")
  end)
end)

for _, b in ipairs(backends.list) do
  describe("aggregate on " .. b.name, function()
    local store
    if not backends.fresh(b, nil, function(s) store = s end) then return end

    for _, kind in ipairs(kinds) do
      describe("with " .. kind.name, function()
        local function repo(extra, log)
          local d = kind.make({
            category = fx.category("acct"),
            initial = function() return { balance = 0 } end,
            commands = account_commands(log),
          })
          for k, v in pairs(extra or {}) do d[k] = v end
          return eventstore.aggregate(d):bind(store)
        end

        it("executes commands: appends with revisions, returns the committed events and the state", function()
          local accounts = repo()
          local res = assert(accounts:execute("1", "open", { owner = "ann" }))
          assert.equals(1, res.revision)
          assert.equals(1, res.count)
          if math.type then assert.equals("integer", math.type(res.position)) end
          assert.equals("Opened", res.events[1].type)
          assert.equals(accounts:stream("1"), res.events[1].stream)
          assert.equals("ann", res.state.owner)
          res = assert(accounts:execute("1", "deposit", { amount = 10 }))
          assert.equals(2, res.revision)
          assert.equals(10, res.state.balance)
          res = assert(accounts:execute("1", "withdraw", { amount = 3 }))
          assert.equals(3, res.revision)
          assert.equals(7, res.state.balance)
          local state, revision = accounts:load("1")
          assert.equals(3, revision)
          assert.equals(7, state.balance)
          assert.equals("ann", state.owner)
          assert.same({ "Opened", "Deposited", "Withdrawn" }, fx.types(store:read(accounts:stream("1"))))
        end)

        it("loads the initial state at revision 0 for a new aggregate", function()
          local accounts = repo()
          local state, revision = accounts:load("nobody")
          assert.equals(0, revision)
          assert.same({ balance = 0 }, state)
        end)

        it("appends every event of a returned list in one append", function()
          local accounts = repo()
          local res = assert(accounts:execute(7, "transfer_in_two", { amount = 10, fee = 1 }))
          assert.equals(2, res.count)
          assert.equals(2, res.revision)
          assert.same({ 1, 2 }, fx.revisions(res.events))
          assert.equals(9, res.state.balance)
          assert.equals(2, store:revision(accounts:stream(7)))
        end)

        it("a command returning nil or an empty list succeeds and writes nothing", function()
          local accounts = repo()
          assert(accounts:execute("1", "open", { owner = "ann" }))
          local before = store:read(accounts:stream("1"))
          for _, cmd in ipairs({ "nothing", "empty" }) do
            local res = assert(accounts:execute("1", cmd, {}))
            assert.equals(0, res.count)
            assert.equals(1, res.revision)
            assert.same({}, res.events)
            assert.is_nil(res.position)
            assert.equals("ann", res.state.owner)
          end
          assert.same(before, store:read(accounts:stream("1")))
        end)

        it("a command that raises is rejected with its message, and nothing is written", function()
          local accounts = repo()
          assert(accounts:execute("1", "open", { owner = "ann" }))
          local before = store:read(accounts:stream("1"))
          local err = fx.fails("rejected", accounts:execute("1", "withdraw", { amount = 100 }))
          assert.equals("insufficient funds", err.message)
          assert.equals("withdraw", err.command)
          assert.equals(accounts:stream("1"), err.stream)
          assert.is_true(eventstore.is_error(err))
          assert.matches("rejected: insufficient funds", tostring(err), 1, true)
          err = fx.fails("rejected", accounts:execute("1", "open", { owner = "bob" }))
          assert.equals("account already open", err.message)
          assert.same(before, store:read(accounts:stream("1")))
        end)

        it("a raised error table keeps its message and travels as err.reason", function()
          local raised = { message = "over the limit", limit = 5 }
          local accounts = repo({ commands = { go = function() error(raised) end } })
          local err = fx.fails("rejected", accounts:execute("1", "go"))
          assert.equals("over the limit", err.message)
          assert.equals(raised, err.reason)
          assert.equals(0, store:revision(accounts:stream("1")))
        end)

        it("an unknown command or a bad argument raises", function()
          local accounts = repo()
          fx.raises(function() accounts:execute("1", "close", {}) end, "unknown command 'close'")
          fx.raises(function() accounts:execute("1", 5, {}) end, "command name expected")
          fx.raises(function() accounts:execute(nil, "open", {}) end, "id")
          fx.raises(function() accounts:execute("1", "open", {}, "x") end, "options must be a table")
          fx.raises(function() accounts:execute("1", "open", {}, { correlation = "x" }) end,
            "unknown option 'correlation'")
          fx.raises(function() accounts:load({}) end, "id")
        end)

        it("a command returning something that is not an event raises", function()
          local accounts = repo({ commands = { bad = function() return "Opened" end } })
          fx.raises(function() accounts:execute("1", "bad") end, "must return an event")
          local typeless = repo({ commands = { bad = function() return { data = { a = 1 } } end } })
          fx.raises(function() typeless:execute("1", "bad") end, "no type")
          assert.equals(0, store:revision(typeless:stream("1")))
        end)

        it("puts correlation_id and causation_id into every event's metadata", function()
          local accounts = repo()
          local cid, cause = eventstore.uuid(), eventstore.uuid()
          local res = assert(accounts:execute("1", "transfer_in_two", { amount = 5, fee = 1 },
            { correlation_id = cid, causation_id = cause, metadata = { user = "ann" } }))
          for i, ev in ipairs(store:read(accounts:stream("1"))) do
            assert.same({ correlation_id = cid, causation_id = cause, user = "ann" }, ev.metadata)
            assert.same(ev.metadata, res.events[i].metadata)
          end
          -- an event's own metadata is kept and wins
          local own = repo({ commands = { go = function(_, _, ctx)
            assert.equals(cid, ctx.correlation_id)
            return { type = "Went", metadata = { causation_id = "own", trace = 1 } }
          end } })
          assert(own:execute("2", "go", nil, { correlation_id = cid, causation_id = cause }))
          assert.same({ correlation_id = cid, causation_id = "own", trace = 1 },
            store:last(own:stream("2")).metadata)
          -- without ids, metadata stays as the command wrote it
          assert(accounts:execute("3", "deposit", { amount = 1 }))
          assert.same({}, store:last(accounts:stream("3")).metadata)
        end)

        it("passes the loaded state and a context, and holds no transaction while the command runs", function()
          local other = fx.stream()
          local seen
          local accounts = repo({ commands = { note = function(state, payload, ctx)
            seen = { balance = state.balance, payload = payload, id = ctx.id, stream = ctx.stream,
                     revision = ctx.revision, command = ctx.command }
            -- the command may use the store: read, and append elsewhere
            assert.same({}, ctx.store:read(ctx.stream, { from = ctx.revision + 1 }))
            assert(ctx.store:append(other, fx.event("Noted", { by = ctx.stream })))
            return { type = "Deposited", data = { amount = payload.amount } }
          end, deposit = account_commands().deposit } })
          assert(accounts:execute("9", "deposit", { amount = 4 }))
          local res = assert(accounts:execute("9", "note", { amount = 1 }))
          assert.same({ balance = 4, payload = { amount = 1 }, id = "9", stream = accounts:stream("9"),
                        revision = 1, command = "note" }, seen)
          assert.equals(2, res.revision)
          assert.equals(1, store:revision(other))
        end)

        it("retries after a conflict with the state reloaded", function()
          local log = {}
          local accounts = repo(nil, log)
          assert(accounts:execute("1", "open", { owner = "ann" }))
          local s = accounts:stream("1")
          -- a competing writer commits between the load and the append, once
          local competing = true
          local racy = repo({ category = accounts.aggregate.category, commands = { deposit = function(state, cmd, ctx)
            log[#log + 1] = { revision = ctx.revision, attempt = ctx.attempt, balance = state.balance }
            if competing then
              competing = false
              assert(store:append(s, fx.event("Deposited", { amount = 100 })))
            end
            return { type = "Deposited", data = { amount = cmd.amount } }
          end } })
          local res = assert(racy:execute("1", "deposit", { amount = 5 }))
          assert.same({ { revision = 1, attempt = 1, balance = 0 }, { revision = 2, attempt = 2, balance = 100 } },
            log)
          assert.equals(3, res.revision)
          assert.equals(105, res.state.balance)
          assert.equals(105, (accounts:load("1")).balance)
        end)

        it("gives up with a conflict after the configured retries, writing nothing of its own", function()
          local calls = 0
          local stream
          local def = kind.make({
            category = fx.category("acct"),
            initial = { balance = 0 },
            retries = 2,
            commands = { deposit = function(_, cmd, ctx)
              calls = calls + 1
              stream = ctx.stream
              assert(ctx.store:append(ctx.stream, fx.event("Deposited", { amount = 1000 })))
              return { type = "Deposited", data = { amount = cmd.amount } }
            end },
          })
          local accounts = eventstore.aggregate(def):bind(store)
          local err = fx.fails("conflict", accounts:execute("1", "deposit", { amount = 5 }))
          assert.equals(3, calls)
          assert.equals(3, err.attempts)
          assert.equals(3, err.expected + 1)
          assert.equals(3, err.actual)
          -- only the competing writer's events are stored
          for _, ev in ipairs(store:read(stream)) do assert.equals(1000, ev.data.amount) end
          calls = 0
          fx.fails("conflict", accounts:execute("2", "deposit", { amount = 5 }, { retries = 0 }))
          assert.equals(1, calls)
        end)

        it("a command repeating a stored event id conflicts and writes nothing", function()
          local id = eventstore.uuid()
          local accounts = repo({ commands = { pay = function(_, cmd)
            return { id = id, type = "Deposited", data = { amount = cmd.amount } }
          end } })
          local first = assert(accounts:execute("1", "pay", { amount = 5 }))
          assert.equals(5, first.state.balance)
          -- a repeated request: the same event id cannot be stored at revision 2
          fx.fails("conflict", accounts:execute("1", "pay", { amount = 5 }, { retries = 1 }))
          assert.equals(1, store:revision(accounts:stream("1")))
          assert.equals(5, (accounts:load("1")).balance)
        end)

        it("copies a table initial state for every load", function()
          local accounts = eventstore.aggregate(kind.make({
            category = fx.category("acct"), initial = { balance = 0, tags = {} },
            commands = account_commands(),
          })):bind(store)
          assert(accounts:execute("1", "deposit", { amount = 5 }))
          assert.equals(5, (accounts:load("1")).balance)
          assert.equals(0, (accounts:load("2")).balance)
          assert.same({ balance = 0, tags = {} }, accounts.aggregate.initial())
        end)

        it("two repositories of one aggregate see each other's commits", function()
          local agg = eventstore.aggregate(kind.make({
            category = fx.category("acct"), initial = { balance = 0 }, commands = account_commands(),
          }))
          local a, c = agg:bind(store), agg:bind(store)
          assert(a:execute("1", "deposit", { amount = 2 }))
          assert(c:execute("1", "deposit", { amount = 3 }))
          assert.equals(5, (a:load("1")).balance)
          assert.equals(2, select(2, c:load("1")))
        end)
      end)
    end

    it("folds through snapshots with snapshot_every (reducer aggregates)", function()
      local s2, p2 = backends.open(b, { snapshot_every = 2 })
      local accounts = eventstore.aggregate {
        category = fx.category("acct"), initial = function() return { balance = 0 } end,
        reducer = account_rules(), commands = account_commands(),
      }:bind(s2)
      for i = 1, 5 do assert(accounts:execute("1", "deposit", { amount = i })) end
      local snap = s2:snapshot(accounts:stream("1"))
      assert.is_not_nil(snap)
      assert.is_true(snap.revision >= 2)
      local state, revision = accounts:load("1")
      assert.equals(15, state.balance)
      assert.equals(5, revision)
      s2:close()
      backends.remove(p2)
    end)

    -- jthissen/event-store: an aggregate { id, name } with a revision,
    -- correlation and causation ids, auto snapshots every N revisions.
    describe("seed: jthissen's aggregate", function()
      it("renames a person with correlation/causation ids, snapshots, and reads its history", function()
        local s2, p2 = backends.open(b, { snapshot_every = 3 })
        local people = eventstore.aggregate {
          category = fx.category("person"),
          initial = function() return { id = "", name = "" } end,
          reducer = eventstore.reducer { ["*"] = "last" },
          commands = {
            create = function(state, cmd)
              if state.id ~= "" then error("person exists", 0) end
              return { type = "PersonCreated", data = { id = cmd.id, name = cmd.name } }
            end,
            rename = function(state, cmd)
              if state.id == "" then error("no such person", 0) end
              if cmd.name == state.name then return nil end
              return { type = "PersonRenamed", data = { name = cmd.name } }
            end,
          },
        }:bind(s2)
        local id = eventstore.uuid()
        local correlation = eventstore.uuid()
        local created = assert(people:execute(id, "create", { id = id, name = "Ann" },
          { correlation_id = correlation, causation_id = correlation }))
        local cause = created.events[1].id
        for i, name in ipairs({ "Anna", "Annie", "Anne", "Ann-Marie", "Anya" }) do
          local res = assert(people:execute(id, "rename", { name = name },
            { correlation_id = correlation, causation_id = cause }))
          assert.equals(i + 1, res.revision)
          cause = res.events[1].id
        end
        assert.equals("rejected", select(2, people:execute(eventstore.uuid(), "rename", { name = "x" })).code)
        local state, revision = people:load(id)
        assert.same({ id = id, name = "Anya" }, state)
        assert.equals(6, revision)
        local stream = people:stream(id)
        -- the snapshot made by the loads, every 3 revisions
        local snap = assert(s2:snapshot(stream))
        assert.is_true(snap.revision >= 3)
        assert.equals(id, snap.data.id)
        -- events by id, the last event, all events between two revisions
        local last = s2:last(stream)
        assert.equals("Anya", last.data.name)
        assert.equals(cause, last.id)
        assert.equals(last.id, s2:event(cause).id)
        local between = s2:read(stream, { from = 2, to = 4 })
        assert.same({ 2, 3, 4 }, fx.revisions(between))
        assert.same({ "Anna", "Annie", "Anne" }, { between[1].data.name, between[2].data.name,
          between[3].data.name })
        -- every event carries the correlation id; each causation is the event before it
        local history = s2:read(stream)
        for i, ev in ipairs(history) do
          assert.equals(correlation, ev.metadata.correlation_id)
          if i > 1 then assert.equals(history[i - 1].id, ev.metadata.causation_id) end
        end
        s2:close()
        backends.remove(p2)
      end)
    end)
  end)
end

-- DESIGN.md's aggregate, subscription and outbox examples, as written there.
describe("DESIGN.md examples", function()
  it("run as written", function()
    local store = assert(eventstore.open("memory:", { outbox = true }))
    local rules = eventstore.reducer {
      ["*"]   = "last",
      amount  = "sum",
      balance = { { "sum", from = "amount", when = "Deposited" },
                  { "sum", from = "amount", when = "Withdrawn", scale = -1 } },
    }
    local account = eventstore.aggregate {
      category = "account",
      initial  = function() return { balance = 0 } end,
      reducer  = rules,
      commands = {
        deposit = function(state, cmd) -- luacheck: ignore state
          return { type = "Deposited", data = { amount = cmd.amount } }
        end,
      },
    }
    local published = {}
    store:on_append(function(events) published[#published + 1] = #events end)
    local accounts = account:bind(store)
    assert(accounts:execute("42", "deposit", { amount = 5 }))
    local state, revision = accounts:load("42")
    assert.equals(5, state.balance)
    assert.equals(1, revision)
    local handled = {}
    local sub = store:subscribe("balances", { category = "account", from = "start" },
      { Deposited = function(ev) handled[#handled + 1] = ev.type end, ["*"] = function() end })
    assert.equals(1, sub:poll({ max = 1000 }))
    assert.same({ "Deposited" }, handled)
    assert.is_false(sub:wait(10))
    assert.same({ 1 }, published)
    local pending_events = store:undispatched({ category = "account" })
    assert.equals(1, #pending_events)
    assert.is_true(store:mark_dispatched(pending_events[1]))
    assert.same({}, store:undispatched({ category = "account" }))
    store:close()
  end)
end)
