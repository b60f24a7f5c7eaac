-- append_scratch_spec: append reuses one text buffer and one scratch array
-- per store (csrc/lua_store.c lstore_scratch)
-- SPDX-License-Identifier: MIT
local fx = require("spec.support.fixtures")
local backends = require("spec.support.backends")

-- append keeps one text buffer and one scratch array per store and reuses
-- them (csrc/lua_store.c lstore_scratch); a refused append, a listener
-- that appends from inside an append, and a large append between small
-- ones must each leave the next append whole.
for _, b in ipairs(backends.list) do
  describe("append: the store's reused buffers on " .. b.name, function()
    local store
    if not backends.fresh(b, {}, function(s) store = s end) then return end

    it("a refused append leaves the next one whole", function()
      local s = fx.stream()
      assert(store:append(s, { type = "A", data = { n = 1, text = string.rep("x", 300) } }))
      assert.has_error(function() store:append(s, { type = "A", data = { n = 2, bad = print } }) end)
      assert.has_error(function() store:append(s, { { type = "A", data = { n = 3 } }, { type = "" } }) end)
      local res = assert(store:append(s, { type = "B", data = { n = 4 }, metadata = { m = "y" } }))
      assert.equals(2, res.revision)
      local evs = store:read(s)
      assert.equals(2, #evs)
      assert.same({ n = 1, text = string.rep("x", 300) }, evs[1].data)
      assert.same({ n = 4 }, evs[2].data)
      assert.same({ m = "y" }, evs[2].metadata)
    end)

    it("a listener appends from inside an append", function()
      local s, log = fx.stream(), fx.stream()
      local off = store:on_append(function(events)
        for _, ev in ipairs(events) do
          if ev.stream == s then assert(store:append(log, { type = "Seen", data = { rev = ev.revision } })) end
        end
      end)
      for i = 1, 3 do
        local res = assert(store:append(s, { type = "A", data = { i = i } }))
        assert.is_nil(res.publish_errors)
      end
      if type(off) == "function" then off() end
      local seen = store:read(log)
      assert.equals(3, #seen)
      for i = 1, 3 do assert.equals(i, seen[i].data.rev) end
      for i, e in ipairs(store:read(s)) do assert.equals(i, e.data.i) end
    end)

    it("a large append between small ones", function()
      local s = fx.stream()
      assert(store:append(s, { type = "A", data = { k = "small" } }))
      local big = {}
      for i = 1, 300 do big[i] = { type = "B", data = { i = i, pad = string.rep("p", 4000) } } end
      assert(store:append(s, big))
      assert(store:append(s, { type = "C", data = { k = "after" } }))
      local evs = store:read(s)
      assert.equals(302, #evs)
      assert.equals("small", evs[1].data.k)
      assert.equals(300, evs[301].data.i)
      assert.equals(4000, #evs[301].data.pad)
      assert.equals("after", evs[302].data.k)
    end)
  end)
end
