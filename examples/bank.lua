-- bank.lua: a bank account aggregate (balance folded in C from rule tables)
-- and a balance read model kept by a subscription, on an embedded SQLite file.
-- Run from the repository root:
--   lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path
--              package.cpath="build/5.4/?.so;"..package.cpath' examples/bank.lua
local eventstore = require("eventstore")

local dir = os.getenv("EVENTSTORE_EXAMPLE_DIR") or os.getenv("TMPDIR") or "/tmp"
local path = dir .. "/bank.db"
for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path .. suffix) end
local store = assert(eventstore.open("sqlite:" .. path, { snapshot_every = 5 }))

-- The account's state: the owner, a balance from two event types, and how
-- many movements it had; all folded in C.
local rules = eventstore.reducer {
  owner = "first",
  balance = { { "sum", from = "amount", when = "Deposited" },
              { "sum", from = "amount", when = "Withdrawn", scale = -1 } },
  movements = { "count", from = "amount" },
}

local account = eventstore.aggregate {
  category = "account",
  initial = function() return { balance = 0, movements = 0 } end,
  reducer = rules,
  commands = {
    open = function(state, cmd)
      if state.owner then error("account is already open", 0) end
      return { type = "Opened", data = { owner = cmd.owner } }
    end,
    deposit = function(state, cmd)
      if not state.owner then error("no such account", 0) end
      if cmd.amount <= 0 then error("amount must be positive", 0) end
      return { type = "Deposited", data = { amount = cmd.amount } }
    end,
    withdraw = function(state, cmd)
      if not state.owner then error("no such account", 0) end
      if state.balance < cmd.amount then
        error(("insufficient funds: balance %d, asked for %d"):format(state.balance, cmd.amount), 0)
      end
      return { type = "Withdrawn", data = { amount = cmd.amount } }
    end,
  },
}
local accounts = account:bind(store)

-- The read model: every account's owner and balance, kept by a subscription
-- whose checkpoint lives in the store ("balances").
local balances = {}
local projector = assert(store:subscribe("balances", { category = "account", from = "start" }, {
  Opened = function(ev) balances[ev.stream] = { owner = ev.data.owner, balance = 0 } end,
  Deposited = function(ev) balances[ev.stream].balance = balances[ev.stream].balance + ev.data.amount end,
  Withdrawn = function(ev) balances[ev.stream].balance = balances[ev.stream].balance - ev.data.amount end,
}))

local function run(id, command, payload, opts)
  local res, err = accounts:execute(id, command, payload, opts)
  local arg = payload.amount and tostring(payload.amount) or payload.owner
  if res then
    print(("  %-8s account-%s %-10s -> revision %d, balance %d"):format(command, id, arg, res.revision,
      res.state.balance))
  else
    print(("  %-8s account-%s %-10s -> %s"):format(command, id, arg, tostring(err)))
  end
  return res, err
end

print("commands:")
run("1", "open", { owner = "ann" })
run("2", "open", { owner = "bob" })
run("1", "deposit", { amount = 100 })
run("2", "deposit", { amount = 20 })
run("1", "withdraw", { amount = 30 })
local _, err = run("2", "withdraw", { amount = 50 })
assert(err and err.code == "rejected")
_, err = run("1", "open", { owner = "eve" })
assert(err and err.code == "rejected")

-- A transfer: two commands tied together by a correlation id; the deposit's
-- causation is the withdrawal event.
local transfer = eventstore.uuid()
local out = assert(run("1", "withdraw", { amount = 25 }, { correlation_id = transfer }))
assert(run("2", "deposit", { amount = 25 }, { correlation_id = transfer, causation_id = out.events[1].id }))

-- A competing writer: the command decides on a stale state once, gets a
-- conflict, reloads and decides again.
local raced = false
local racy = eventstore.aggregate {
  category = "account", initial = function() return { balance = 0, movements = 0 } end, reducer = rules,
  commands = { fee = function(_, cmd, ctx)
    if not raced then
      raced = true
      assert(store:append(ctx.stream, { type = "Deposited", data = { amount = 1 } }))  -- someone else
    end
    return { type = "Withdrawn", data = { amount = cmd.amount } }
  end },
}:bind(store)
local fee = assert(racy:execute("1", "fee", { amount = 2 }))
print(("  fee      account-1 2          -> revision %d after a conflict and a retry"):format(fee.revision))

assert(projector:poll())
print("read model (subscription 'balances', checkpoint " .. store:checkpoint("balances") .. "):")
for _, id in ipairs({ "1", "2" }) do
  local row = balances["account-" .. id]
  local state, revision = accounts:load(id)
  print(("  account-%s  owner %-4s balance %4d   (aggregate: balance %d at revision %d, %d movements)"):format(
    id, row.owner, row.balance, state.balance, revision, state.movements))
  assert(row.balance == state.balance)
end

print("history of account-1:")
for _, ev in ipairs(store:read("account-1")) do
  print(("  %d  %-9s %-12s %s"):format(ev.revision, ev.type, ev.data.amount and ("amount=" .. ev.data.amount)
    or ("owner=" .. ev.data.owner), ev.metadata.correlation_id and ("correlation " .. ev.metadata.correlation_id)
    or ""))
end
local snap = store:snapshot("account-1")
print(("snapshot of account-1 at revision %d (snapshot_every = 5): balance %d"):format(snap.revision,
  snap.data.balance))

-- New events reach the read model with the next poll.
assert(run("2", "withdraw", { amount = 45 }))
assert(projector:poll() == 1)
print(("after one more poll: account-2 balance %d"):format(balances["account-2"].balance))
assert(balances["account-2"].balance == 0)
store:close()
