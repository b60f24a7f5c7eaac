-- reducer_fixes_spec: regressions the reducer and snapshot specs found
-- (field names on the text path, strict rule tables, PostgreSQL pruning)
-- SPDX-License-Identifier: MIT
local eventstore = require("eventstore")
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")
local h = require("spec.support.reducer_helpers")

describe("fixed: state() with a \"*\" rule (csrc/reduce.c, state.c fold_text)", function()
  it("gives a \"*\" Lua function the field's name, as fold does", function()
    local store = backends.open(backends.list[1])
    local s = fx.stream()
    assert(store:append(s, { { type = "B", data = { a = 1, c = 2 } } }))
    local names = {}
    local rules = eventstore.reducer({ ["*"] = function(_, v, _, field) names[field] = v; return v end })
    store:state(s, rules)
    store:close()
    assert.same({ a = 1, c = 2 }, names)
  end)

  it("names only the field in a \"*\" rule's error", function()
    local store = backends.open(backends.list[1])
    local s = fx.stream()
    assert(store:append(s, { { type = "B", data = { x = 1, y = 2 } }, { type = "B", data = { x = "str", y = 3 } } }))
    local ok, msg = pcall(store.state, store, s, eventstore.reducer({ ["*"] = "sum" }))
    store:close()
    assert.is_false(ok)
    assert.truthy(msg:find("'x'", 1, true), msg)
  end)
end)

describe("fixed: bad rules (csrc/lua_reducer.c)", function()
  it("an unknown option in a rule table raises naming the field (a typo of from)", function()
    fx.raises(function() eventstore.reducer({ balance = { "sum", form = "amount" } }) end, "'balance'")
  end)

  it("a second kind in one rule table raises instead of being ignored", function()
    fx.raises(function() eventstore.reducer({ balance = { "sum", "max" } }) end, "'balance'")
  end)

  it("messages carry the prefix once", function()
    local msg = fx.raises(function() eventstore.reducer({ a = { "last", scale = 2 } }) end, "'a'")
    assert.falsy(msg:find("reducer: reducer:", 1, true), msg)
  end)
end)

describe("fixed: unknown options of state() (csrc/lua_reducer.c)", function()
  it("a typo in the options or the context table raises instead of being ignored", function()
    local store = backends.open(backends.list[1])
    local rules = eventstore.reducer({ salary = "sum" })
    local ok1 = pcall(store.state, store, fx.stream(), rules, { inital = { salary = 0 } })
    -- a typo of where would fold every company's salaries
    local ok2 = pcall(store.state, store, { category = "employee", wher = { company = "acme" } }, rules)
    store:close()
    assert.is_false(ok1)
    assert.is_false(ok2)
  end)
end)

describe("fixed: max_snapshots on postgres #postgres (backends/postgres_sql.c)", function()
  local b = backends.get("postgres #postgres")
  if b.pending then
    pending(b.pending)
    return
  end
  it("keeps the newest K by revision even when an older revision is saved last", function()
    local store = backends.open(b, { max_snapshots = 2 })
    local s = fx.stream()
    assert(store:save_snapshot(s, 10, { at = 10 }))
    assert(store:save_snapshot(s, 20, { at = 20 }))
    assert(store:save_snapshot(s, 5, { at = 5 }))
    local older = store:snapshot(s, { max_revision = 9 })
    store:close()
    assert.is_nil(older)
  end)
end)

-- state() keeps a "*" = last value that would replace the state's value of
-- the same kind in a reused buffer and sets it once at the end (state.c
-- last_set). Every way a member can leave that path is folded here and
-- compared with rules:fold over the same events.
for _, b in ipairs(backends.list) do
  describe("state(): \"*\" = last values set at the end agree with fold on " .. b.name, function()
    local store
    if not backends.fresh(b, {}, function(s) store = s end) then return end

    local long = string.rep("k", 40) -- past the 32 bytes a waiting member's name may have
    local function check(events, rules_tab)
      local s = fx.stream()
      assert(store:append(s, events))
      local rules = eventstore.reducer(rules_tab or { ["*"] = "last", qty = "sum" })
      local st, rev = store:state(s, rules)
      assert.equals(#events, rev)
      assert.same(rules:fold(store:read(s), {}), st)
      return st
    end

    it("changes of kind, escapes, long names and decoded events in between", function()
      local evs = {}
      local values = { "a", "b", 1, 2, 2.5, "c\"q", "d", true, "e", { x = 1 }, "f", -7, 3.25, "", "g" }
      for i, v in ipairs(values) do
        local data = { v = v, w = "w" .. i, qty = 1, [long] = i }
        -- an escaped key sends the whole event through the decoder
        if i % 4 == 0 then data["q\"k"] = i end
        evs[#evs + 1] = { type = "T", data = data }
      end
      local st = check(evs)
      assert.equals("g", st.v)
      assert.equals("w15", st.w)
      assert.equals(15, st.qty)
      assert.equals(15, st[long])
    end)

    it("more members than the waiting set holds", function()
      local evs = {}
      for i = 1, 12 do
        local data = {}
        for k = 1, 12 do data["m" .. k] = (i % 3 == 0) and ("s" .. i .. k) or (i * 100 + k) end
        evs[#evs + 1] = { type = "T", data = data }
      end
      local st = check(evs)
      assert.equals("s1212", st.m12) -- event 12 holds strings, event 11 numbers
      assert.equals("s121", st.m1)
    end)

    it("a member that stops being \"*\" for one event type", function()
      local evs = {}
      for i = 1, 10 do
        evs[#evs + 1] = { type = i % 2 == 0 and "A" or "B", data = { v = "x" .. i, n = i, n2 = i + 0.5 } }
      end
      check(evs, { ["*"] = "last", v = { "append", when = "A" } })
    end)

    it("a category state with where", function()
      local cat = "lastw" .. fx.stream():gsub("[^%w]", "")
      for i = 1, 3 do
        assert(store:append(cat .. "-" .. i, {
          { type = "T", data = { company = "acme", v = "a" .. i, n = i } },
          { type = "T", data = { company = "other", v = "b" .. i, n = 10 * i } },
          { type = "T", data = { company = "acme", v = "c" .. i, n = 100 * i } },
        }))
      end
      local st = store:state({ category = cat, where = { company = "acme" } }, eventstore.reducer({ ["*"] = "last" }))
      assert.equals("c3", st.v)
      assert.equals(300, st.n)
      assert.equals("acme", st.company)
    end)
  end)
end

-- state() adds an integer to a field whose only rule is a plain sum in
-- place (reduce.c es_fold_sum_int); every case that leaves that path must
-- give what fold gives.
for _, b in ipairs(backends.list) do
  describe("state(): integers summed in place agree with fold on " .. b.name, function()
    local store
    if not backends.fresh(b, {}, function(s) store = s end) then return end

    local function both(values, rules_tab, initial)
      local s = fx.stream()
      local evs = {}
      for i, v in ipairs(values) do evs[i] = { type = "T", data = { qty = v, n = i } } end
      assert(store:append(s, evs))
      local rules = eventstore.reducer(rules_tab or { qty = "sum" })
      local opts = initial and { initial = initial } or nil
      local ok_s, st = pcall(store.state, store, s, rules, opts)
      local ok_f, ft = pcall(rules.fold, rules, store:read(s), initial)
      assert.equals(ok_f, ok_s, tostring(st) .. " / " .. tostring(ft))
      if ok_s then assert.same(ft, st) end
      return ok_s, st
    end

    -- math.type, math.maxinteger: Lua 5.3+ (pending under 5.1 and LuaJIT)
    h.it_int("integers, negatives and a real in between", function()
      local ok, st = both({ 1, 2, -3, 40, 2.5, 4, -7 })
      assert.is_true(ok)
      assert.equals(39.5, st.qty)
      assert.equals("float", math.type(st.qty))
      ok, st = both({ 5, -2, 10 })
      assert.is_true(ok)
      assert.equals(13, st.qty)
      assert.equals("integer", math.type(st.qty))
    end)

    h.it_int("an overflow turns the sum into a float as fold does", function()
      local ok, st = both({ math.maxinteger, 1, 2 })
      assert.is_true(ok)
      assert.equals("float", math.type(st.qty))
      ok, st = both({ math.mininteger, -1 })
      assert.is_true(ok)
      assert.equals("float", math.type(st.qty))
    end)

    it("a string value or a string in the initial state fails as fold does", function()
      assert.is_false((both({ 1, "x", 2 })))
      assert.is_false((both({ 1, 2 }, nil, { qty = "x" })))
      local ok, st = both({ 1, 2 }, nil, { qty = 10 })
      assert.is_true(ok)
      assert.equals(13, st.qty)
    end)

    it("sums that are not alone on their field keep the usual path", function()
      both({ 1, 2, 3 }, { qty = { { "sum" }, { "max", from = "n" } } })
      both({ 1, 2, 3 }, { qty = { "sum", when = "T" } })
      both({ 1, 2, 3 }, { qty = { "sum", scale = 2 } })
      both({ 1, 2, 3 }, { total = { "sum", from = "qty" } })
      local ok, st = both({ 1, 2, 3 }, { qty = "sum", q2 = { "sum", from = "qty" } })
      assert.is_true(ok)
      assert.equals(6, st.qty)
      assert.equals(6, st.q2)
    end)
  end)
end
