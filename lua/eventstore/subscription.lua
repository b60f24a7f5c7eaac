--- eventstore.subscription: catch-up subscriptions with a checkpoint stored in the store.
-- `store:subscribe(name, filter, handlers)` gives a subscription that hands
-- new events, in global order, to handlers and stores how far it got under
-- `name` (`store:checkpoint(name)`), so it resumes there in any process.
-- Delivery is at-least-once: a handler that raises stops the poll before
-- its event, which the next poll delivers again. One process polls a given
-- name at a time (no competing consumers).
-- @module eventstore.subscription
local core = require("eventstore.core")

local M = {}

local Store = core.Store
local Error = core.Error

local function failure(code, message, fields)
  local e = fields or {}
  e.code, e.message = code, message
  return setmetatable(e, Error)
end

local Subscription = {}
Subscription.__index = Subscription
Subscription.__name = "eventstore.Subscription"

local filter_keys = { category = true, streams = true, types = true, type = true, from = true, batch = true }

local DEFAULT_BATCH = 100

-- An integral number >= min (an integral float counts, as in the C binding;
-- no math.type, which Lua 5.1 and LuaJIT lack).
local function whole(v, min)
  return type(v) == "number" and v >= min and v == math.floor(v) and v ~= math.huge
end

local function check_types(types, fname)
  if types == nil then return nil end
  if type(types) == "string" then return { types } end
  if type(types) ~= "table" or #types == 0 then
    error(fname .. ": 'types' must be a type or a non-empty list of types", 3)
  end
  local out = {}
  for i, t in ipairs(types) do
    if type(t) ~= "string" then error(fname .. ": 'types' item " .. i .. " is not a string", 3) end
    out[i] = t
  end
  return out
end

-- A position given as "start", "end" or an integer >= 0; "end" is the
-- store's newest position now.
local function resolve(store, from, fname)
  if from == nil or from == "start" then return 0 end
  if from == "end" then return store:position() end
  if not whole(from, 0) then
    error(fname .. ": position must be \"start\", \"end\" or an integer >= 0, got " .. tostring(from), 3)
  end
  return from
end

--- Subscribes to the store's events under a name.
-- @string name the subscription's name; its checkpoint is `store:checkpoint(name)`
-- @tparam[opt] table filter `{ category, streams = { names }, types = type_or_list,
--   from = "start" | "end" | position, batch = 100 }`. `from` applies only when
--   no checkpoint is stored under `name` (a stored one wins); "end" is the
--   newest position at that first subscribe and is stored at once. `batch` is
--   how many events a poll reads at a time; the checkpoint is stored after each batch.
-- @param handlers a `function(event, sub)`, or a table of them keyed by event
--   type with "*" for any other type; events without a handler are skipped
--   (the checkpoint still moves past them)
-- @return the subscription, or nil, err when the store fails
function Store:subscribe(name, filter, handlers)
  if not self:is_open() then error("attempt to use a closed store", 2) end
  if type(name) ~= "string" or name == "" then
    error("bad argument #1 to 'subscribe' (name must be a non-empty string)", 2)
  end
  if filter ~= nil and type(filter) ~= "table" then
    error("bad argument #2 to 'subscribe' (filter must be a table, got " .. type(filter) .. ")", 2)
  end
  filter = filter or {}
  for k in pairs(filter) do
    if not filter_keys[k] then error("subscribe: unknown filter field '" .. tostring(k) .. "'", 2) end
  end
  if filter.category ~= nil and (type(filter.category) ~= "string" or filter.category == "") then
    error("subscribe: 'category' must be a non-empty string", 2)
  end
  local streams
  if filter.streams ~= nil then
    if type(filter.streams) ~= "table" or #filter.streams == 0 then
      error("subscribe: 'streams' must be a non-empty list of stream names", 2)
    end
    streams = {}
    for i, s in ipairs(filter.streams) do
      if type(s) ~= "string" then error("subscribe: 'streams' item " .. i .. " is not a string", 2) end
      streams[s] = true
    end
  end
  local types = check_types(filter.types or filter.type, "subscribe")
  local batch = filter.batch or DEFAULT_BATCH
  if not whole(batch, 1) then
    error("subscribe: 'batch' must be an integer >= 1", 2)
  end
  local pick
  if type(handlers) == "function" then
    pick = function() return handlers end
  elseif type(handlers) == "table" then
    for k, v in pairs(handlers) do
      if type(k) ~= "string" or type(v) ~= "function" then
        error("subscribe: handlers must be functions keyed by event type, got " .. type(v) .. " at '"
          .. tostring(k) .. "'", 2)
      end
    end
    if next(handlers) == nil then error("subscribe: the handlers table is empty", 2) end
    local any = handlers["*"]
    pick = function(t) return handlers[t] or any end
    -- Without "*", only the handled types are read at all (filtered in C).
    if not any and not types then
      types = {}
      for k in pairs(handlers) do types[#types + 1] = k end
      table.sort(types)
    end
  else
    error("bad argument #3 to 'subscribe' (handlers must be a function or a table, got "
      .. type(handlers) .. ")", 2)
  end
  local pos, stored = self:checkpoint(name)
  if not pos then return nil, stored end
  if not stored then
    local err
    pos, err = resolve(self, filter.from, "subscribe")
    if not pos then return nil, err end
    -- "end" is fixed now, even on an empty store: a restart must not move it
    if filter.from == "end" then
      local ok, cerr = self:checkpoint(name, pos)
      if not ok then return nil, cerr end
    end
  end
  return setmetatable({
    name = name, store = self, pos = pos, seen = pos, pick = pick,
    category = filter.category, types = types, streams = streams, batch = batch,
  }, Subscription)
end

-- Stores the in-memory position as the checkpoint.
local function save(sub)
  return sub.store:checkpoint(sub.name, sub.pos)
end

--- Handles the events that are new since the checkpoint, in global order.
-- Reads them in batches, calls their handlers, and stores the checkpoint after
-- each batch. A handler that raises stops the poll: the checkpoint is stored
-- just before its event, which the next poll delivers again.
-- @tparam[opt] table opts `{ max = n }`: handle at most n events (default: all that are new)
-- @return the number of events handled (skipped ones included; 0 when there
--   was nothing new); or nil, err with `err.code` "handler" (`err.message` the
--   handler's message, `err.event`, `err.reason` the raised value) or the store's code
function Subscription:poll(opts)
  local max
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #1 to 'poll' (options must be a table, got " .. type(opts) .. ")", 2)
    end
    max = opts.max
    if max ~= nil and not whole(max, 0) then
      error("poll: option 'max' must be an integer >= 0", 2)
    end
  end
  local store, pick, streams = self.store, self.pick, self.streams
  local query = { after = self.pos, category = self.category, types = self.types }
  local handled = 0
  while true do
    local want = self.batch
    if max and max - handled < want then want = max - handled end
    if want <= 0 then break end
    query.after, query.limit = self.pos, want
    local page, err = store:read_all(query)
    if not page then return nil, err end
    local start = self.pos
    for i = 1, #page do
      local ev = page[i]
      local fn = (not streams or streams[ev.stream]) and pick(ev.type)
      if fn then
        local ok, raised = pcall(fn, ev, self)
        if not ok then
          if self.pos ~= start then save(self) end
          local msg = type(raised) == "table" and raised.message ~= nil and tostring(raised.message)
            or tostring(raised)
          return nil, failure("handler", msg, {
            subscription = self.name, event = ev, position = ev.position, reason = raised,
          })
        end
      end
      self.pos = ev.position
      handled = handled + 1
    end
    if #page < want then
      -- caught up: what wait() found to hold no events of ours is passed too
      if self.seen > self.pos then self.pos = self.seen end
      if self.pos ~= start then
        local ok, serr = save(self)
        if not ok then return nil, serr end
      end
      break
    end
    local ok, serr = save(self)
    if not ok then return nil, serr end
  end
  return handled
end

--- The subscription's position: the last event it handled (or skipped).
function Subscription:position()
  return self.pos
end

--- Moves the subscription to a position ("start", "end" or an integer) and stores it.
-- @return true, or nil, err
function Subscription:reset(position)
  local pos, err = resolve(self.store, position, "reset")
  if not pos then return nil, err end
  local ok, serr = self.store:checkpoint(self.name, pos)
  if not ok then return nil, serr end
  self.pos, self.seen = pos, pos
  return true
end

--- Waits until events past the checkpoint may be there, or the timeout.
-- With a category or types filter, newer events of other categories or types
-- do not end the wait (the next poll moves the checkpoint past them).
-- @int timeout_ms milliseconds
-- @return true when there is something to poll, false on timeout; nil, err when the store fails
function Subscription:wait(timeout_ms)
  if not whole(timeout_ms, 0) then
    error("bad argument #1 to 'wait' (timeout must be an integer number of milliseconds >= 0)", 2)
  end
  local store = self.store
  local deadline = core.now() + timeout_ms
  while true do
    local after = self.seen > self.pos and self.seen or self.pos
    local ready, err = store:wait(after, math.max(0, deadline - core.now()))
    if not ready then return ready, err end
    if not self.category and not self.types then return true end
    -- something is new, perhaps not ours: the head first, then a look for ours
    local head, herr = store:position()
    if not head then return nil, herr end
    local peek, perr = store:read_all({ after = self.pos, limit = 1, category = self.category,
      types = self.types })
    if not peek then return nil, perr end
    if #peek > 0 then return true end
    self.seen = head
    if core.now() >= deadline then return false end
  end
end

--- Polls and waits until `stop` says so (or a handler fails).
-- @tparam[opt] table opts `{ stop = function(sub, handled) -> true to stop (after each poll),
--   wait = ms per wait (default 1000), max = events per poll, idle = true to return once caught up }`
-- @return the number of events handled, or nil, err as poll gives it
function Subscription:run(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'run' (options must be a table)", 2) end
  local stop, wait_ms, max = opts.stop, opts.wait or 1000, opts.max
  if stop ~= nil and type(stop) ~= "function" then error("run: 'stop' must be a function", 2) end
  local total = 0
  while true do
    local n, err = self:poll({ max = max })
    if not n then return nil, err end
    total = total + n
    if stop and stop(self, n) then return total end
    if max == nil or n < max then
      if opts.idle then return total end
      local _, werr = self:wait(wait_ms)
      if werr then return nil, werr end
    end
  end
end

M.Subscription = Subscription

return M
