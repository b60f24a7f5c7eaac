-- eventstore_pg: appends to PostgreSQL from nginx's thread pool (ngx.run_worker_thread), off the event loop
-- SPDX-License-Identifier: MIT
--
-- libpq calls are blocking: made from a request handler they stall the
-- worker and every request it serves. eventstore_http.lua hands them to a
-- thread pool instead:
--
--   ngx.run_worker_thread("eventstore_pg", "eventstore_pg", "append", url, stream, body, expected)
--
-- Each pool thread has its own Lua VM, which loads this module once and keeps
-- its own connection (so a pool of 4 threads holds at most 4 connections).
-- Only strings, numbers, booleans, nil and plain tables of them cross
-- between the worker and the thread: the body travels as JSON text.
local eventstore = require("eventstore")

local M = {}

local stores = {}   -- url -> store, in this thread's VM

local function store_for(url)
  local store = stores[url]
  if store then return store end
  local err
  store, err = eventstore.open(url)
  if not store then return nil, err end
  stores[url] = store
  return store
end

-- append(url, stream, body, expected) -> result table:
--   { revision, position, count } or { code, message, expected, actual }
function M.append(url, stream, body, expected)
  local store, oerr = store_for(url)
  if not store then
    return { code = "unavailable", message = tostring(oerr) }
  end
  local events, jerr = eventstore.json_decode(body)
  if type(events) ~= "table" then
    return { code = "invalid", message = "the body is not a JSON object or list: " .. tostring(jerr) }
  end
  local ok, res, err = pcall(store.append, store, stream, events, { expected = expected })
  if not ok then return { code = "invalid", message = tostring(res) } end
  if not res then
    if err.code == "backend" then
      -- a lost connection: open a new one on the next call
      stores[url] = nil
      store:close()
    end
    return { code = err.code, message = err.message, expected = err.expected, actual = err.actual }
  end
  return { revision = res.revision, position = res.position, count = res.count }
end

return M
