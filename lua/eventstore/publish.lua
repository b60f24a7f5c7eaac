--- eventstore.publish: in-process publishing after commit, and draining the outbox.
-- `store:on_append(fn)` registers a listener that gets the committed events
-- of each append; `store:dispatch(fn)` drains the outbox (stores opened with
-- `outbox = true`) through fn, marking each event it delivered.
-- @module eventstore.publish
local core = require("eventstore.core")

local M = {}

local Store = core.Store
local Error = core.Error

-- An integral number >= min (an integral float counts, as in the C binding;
-- no math.type, which Lua 5.1 and LuaJIT lack).
local function whole(v, min)
  return type(v) == "number" and v >= min and v == math.floor(v) and v ~= math.huge
end

local function failure(code, message, fields)
  local e = fields or {}
  e.code, e.message = code, message
  return setmetatable(e, Error)
end

local function message_of(raised)
  if type(raised) == "table" and raised.message ~= nil then return tostring(raised.message) end
  return tostring(raised)
end

--- Registers an in-process listener of this store's appends.
-- `fn(events, store)` is called after each successful append with the list of
-- its committed events (`res.events`), once, in registration order; never for
-- a failed append nor for an idempotent one that wrote nothing. A listener
-- that raises does not undo the commit nor stop the other listeners: append
-- returns its result as usual, with `res.publish_errors`, a list of errors
-- `{ code = "publish", message, listener, reason }` (absent when none failed).
-- The C append calls the listeners (each under pcall); this only keeps
-- the list, which is replaced rather than changed so that a listener may add
-- or remove listeners while they are being called.
-- @return a function that removes this listener
function Store:on_append(fn)
  if not self:is_open() then error("attempt to use a closed store", 2) end
  if type(fn) ~= "function" then
    error("bad argument #1 to 'on_append' (function expected, got " .. type(fn) .. ")", 2)
  end
  local old = self:_listeners() or {}
  local list = {}
  for i = 1, #old do list[i] = old[i] end
  list[#list + 1] = fn
  self:_listeners(list)
  local store = self
  return function()
    if not store:is_open() then return end
    local cur, out = store:_listeners() or {}, {}
    local removed = false
    for i = 1, #cur do
      if cur[i] == fn and not removed then removed = true else out[#out + 1] = cur[i] end
    end
    store:_listeners(out)
  end
end

local dispatch_options = { category = true, limit = true, batch = true }

--- Drains the outbox through fn, in position order: `fn(event, store)` for
-- each undispatched event, which is then marked dispatched. When fn raises,
-- the drain stops and that event and the rest stay undispatched, to be
-- delivered again by the next dispatch (at-least-once: an event whose fn
-- returned but whose mark failed is delivered again too).
-- @tparam function fn the publisher, `fn(event, store)`
-- @tparam[opt] table opts `{ category, limit = max events, batch = events read at a time (100) }`
-- @return the number of events dispatched; or nil, err with `err.code` "dispatch"
--   (fn raised: `err.message`, `err.event`, `err.reason`, `err.dispatched`) or the store's code
function Store:dispatch(fn, opts)
  if not self:is_open() then error("attempt to use a closed store", 2) end
  if type(fn) ~= "function" then
    error("bad argument #1 to 'dispatch' (function expected, got " .. type(fn) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'dispatch' (options must be a table, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not dispatch_options[k] then error("dispatch: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local limit, batch = opts.limit, opts.batch or 100
  if limit ~= nil and not whole(limit, 0) then
    error("dispatch: option 'limit' must be an integer >= 0", 2)
  end
  if not whole(batch, 1) then
    error("dispatch: option 'batch' must be an integer >= 1", 2)
  end
  local query = { category = opts.category, after = 0 }
  local done = 0
  while true do
    local want = batch
    if limit and limit - done < want then want = limit - done end
    if want <= 0 then break end
    query.limit = want
    local page, err = self:undispatched(query)
    if not page then return nil, err end
    for i = 1, #page do
      local ev = page[i]
      local ok, raised = pcall(fn, ev, self)
      if not ok then
        return nil, failure("dispatch", message_of(raised), { event = ev, reason = raised, dispatched = done })
      end
      local marked, merr = self:mark_dispatched(ev.id)
      if not marked then
        merr.dispatched = done
        return nil, merr
      end
      done = done + 1
      query.after = ev.position
    end
    if #page < want then break end
  end
  return done
end

return M
