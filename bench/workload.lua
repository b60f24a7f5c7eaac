-- workload.lua: WORKLOAD.md's event builder and the output helpers shared by the Lua drivers
-- SPDX-License-Identifier: MIT

local bench = require("esbench")

local M = {}

M.REVS, M.PAGE, M.PAYLOAD_LEN = 100, 1000, 200

local FILLER = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
  .. "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
  .. "exercitation"
local NOTE = FILLER:sub(1, 121)

-- BENCH_SCALE (0 < x <= 1) scales stream counts; every stream keeps 100 events.
function M.scaled(n)
  local f = tonumber(os.getenv("BENCH_SCALE") or "") or 1
  if not (f > 0) or f > 1 then f = 1 end -- luacheck: ignore (NaN is not > 0)
  return math.max(1, math.floor(n * f + 0.5))
end

-- A driver bound to one backend label: fail, emit and open report under it.
function M.driver(eventstore, name, sync)
  local d = {}

  function d.fail(fmt, ...)
    io.stderr:write("bench: ", name, ": ", string.format(fmt, ...), "\n")
    os.exit(1)
  end

  -- Event (s, r) as the Lua table a user would append, after checking that
  -- its compact JSON form is the 200-byte payload WORKLOAD.md defines.
  function d.event(s, r)
    local sku, qty = string.format("SKU-%06d", s * 1000 + r), r % 5 + 1
    local text = string.format(
      '{"type":"ItemAdded","data":{"sku":"%s","qty":%d,"price":12.5,"note":"%s"}}', sku, qty, NOTE)
    if #text ~= M.PAYLOAD_LEN then d.fail("payload (%d, %d) is %d bytes", s, r, #text) end
    return {
      type = "ItemAdded",
      data = { sku = sku, qty = qty, price = 12.5, note = NOTE },
      metadata = { correlationId = eventstore.uuid(), causationId = eventstore.uuid() },
    }
  end

  -- One JSON line; extra is "" or ',"key":value...'.
  function d.emit(workload, events, secs, extra)
    io.stdout:write(string.format(
      '{"backend":"%s","workload":"%s","events":%d,"seconds":%.6f,"events_per_s":%.1f,"peak_rss_mb":%.2f',
      name, workload, events, secs, secs > 0 and events / secs or 0, M.mb(bench.status_kb("VmHWM"))),
      extra or "", "}\n")
    io.stdout:flush()
  end

  function d.emit_raw(workload, fields)
    io.stdout:write(string.format('{"backend":"%s","workload":"%s"%s}\n', name, workload, fields))
    io.stdout:flush()
  end

  function d.emit_status(workload, status, why)
    d.emit_raw(workload, string.format(',"status":"%s","reason":"%s"', status, (why:gsub('[\\"]', "'"))))
  end

  -- A fresh store: BENCH_RESET, when set, is run first (it empties a server).
  function d.open(url)
    local reset = os.getenv("BENCH_RESET")
    if reset and reset ~= "" and not os.execute(reset) then d.fail("reset failed: %s", reset) end
    local opts = {}
    if sync and sync ~= "-" then opts.synchronous = sync end
    local store, err = eventstore.open(url, opts)
    if not store then d.fail("open %s: %s", url, tostring(err)) end
    return store
  end

  return d
end

function M.mb(kb) return kb and kb / 1024 or 0 end

return M
