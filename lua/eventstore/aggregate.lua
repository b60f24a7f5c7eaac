--- eventstore.aggregate: command handlers that decide events from an aggregate's state.
-- `eventstore.aggregate{ category, initial, reducer | fold, commands, retries = 3 }`
-- defines an aggregate; `:bind(store)` gives a repository with `:load(id)` and
-- `:execute(id, command, payload[, opts])`. The stream of aggregate `id` is
-- `category .. "-" .. id`.
-- @module eventstore.aggregate
local core = require("eventstore.core")

local M = {}

local Error = core.Error

local function failure(code, message, fields)
  local e = fields or {}
  e.code, e.message = code, message
  return setmetatable(e, Error)
end

local PAGE = 1000

-- An integral number >= min (an integral float counts, as in the C binding;
-- no math.type, which Lua 5.1 and LuaJIT lack).
local function whole(v, min)
  return type(v) == "number" and v >= min and v == math.floor(v) and v ~= math.huge
end

local function is_reducer(v)
  local mt = type(v) == "userdata" and getmetatable(v)
  return type(mt) == "table" and mt.__name == "eventstore.Reducer"
end

-- A deep copy of a plain table (an `initial` given as a table is copied for
-- every load, so no fold can change it).
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

local Aggregate = {}
Aggregate.__index = Aggregate
Aggregate.__name = "eventstore.Aggregate"

local Repository = {}
Repository.__index = Repository
Repository.__name = "eventstore.Repository"

local definition_keys = {
  category = true, initial = true, reducer = true, fold = true, commands = true, retries = true,
}

--- Defines an aggregate.
-- @tparam table def
--   `category` (string without "-"): streams are `category .. "-" .. id`;
--   `initial` (function returning a table, or a table that is copied; default `{}`);
--   `reducer` (an `eventstore.reducer`: loads fold in C, with snapshots) or
--   `fold = function(state, event)` (returns the new state, or nil to keep the
--   state it changed in place); `commands` (name -> `function(state, payload, ctx)`
--   returning an event, a list of events or nil; raising rejects the command);
--   `retries` (how many times execute reloads and retries after a conflict, default 3).
-- @return the aggregate; raises on a malformed definition
function M.new(def)
  if type(def) ~= "table" then
    error("bad argument #1 to 'aggregate' (table expected, got " .. type(def) .. ")", 2)
  end
  for k in pairs(def) do
    if not definition_keys[k] then error("aggregate: unknown field '" .. tostring(k) .. "'", 2) end
  end
  local category = def.category
  if type(category) ~= "string" or category == "" or category:find("-", 1, true) then
    error("aggregate: 'category' must be a non-empty string without '-'", 2)
  end
  local initial = def.initial
  if initial ~= nil and type(initial) ~= "function" and type(initial) ~= "table" then
    error("aggregate: 'initial' must be a function or a table, got " .. type(initial), 2)
  end
  if def.reducer ~= nil and def.fold ~= nil then
    error("aggregate: give either 'reducer' or 'fold', not both", 2)
  end
  if def.reducer ~= nil and not is_reducer(def.reducer) then
    error("aggregate: 'reducer' must be made by eventstore.reducer", 2)
  end
  if def.fold ~= nil and type(def.fold) ~= "function" then
    error("aggregate: 'fold' must be a function(state, event), got " .. type(def.fold), 2)
  end
  if def.reducer == nil and def.fold == nil then
    error("aggregate: 'reducer' or 'fold' is required", 2)
  end
  if type(def.commands) ~= "table" or next(def.commands) == nil then
    error("aggregate: 'commands' must be a table of command functions", 2)
  end
  for name, fn in pairs(def.commands) do
    if type(name) ~= "string" or type(fn) ~= "function" then
      error("aggregate: command '" .. tostring(name) .. "' must be a function keyed by its name", 2)
    end
  end
  local retries = def.retries
  if retries == nil then retries = 3 end
  if not whole(retries, 0) then
    error("aggregate: 'retries' must be an integer >= 0", 2)
  end
  local make_initial
  if type(initial) == "function" then
    make_initial = initial
  elseif initial ~= nil then
    make_initial = function() return copy(initial) end
  else
    make_initial = function() return {} end
  end
  return setmetatable({
    category = category,
    initial = make_initial,
    reducer = def.reducer,
    fold = def.fold,
    commands = def.commands,
    retries = retries,
  }, Aggregate)
end

local function check_id(id, fname)
  if whole(id, -math.huge) then return string.format("%d", id) end
  if type(id) ~= "string" or id == "" then
    error("bad argument #1 to '" .. fname .. "' (id must be a non-empty string or an integer, got "
      .. (id == "" and "an empty string" or type(id) == "number" and "a fractional number" or type(id)) .. ")", 3)
  end
  return id
end

--- The stream name of aggregate `id`: `category .. "-" .. id`.
function Aggregate:stream(id)
  return self.category .. "-" .. check_id(id, "stream")
end

--- Binds the aggregate to a store.
-- @return a repository with `load` and `execute`
function Aggregate:bind(store)
  local mt = type(store) == "userdata" and getmetatable(store)
  if type(mt) ~= "table" or mt.__name ~= "eventstore.Store" then
    error("bad argument #1 to 'bind' (store expected, got " .. type(store) .. ")", 2)
  end
  return setmetatable({ aggregate = self, store = store }, Repository)
end

-- state, revision of a stream, or nil, err.
local function load(repo, stream)
  local agg, store = repo.aggregate, repo.store
  local initial = agg.initial()
  if type(initial) ~= "table" then
    error("aggregate '" .. agg.category .. "': initial() must return a table, got " .. type(initial), 3)
  end
  if agg.reducer then
    return store:state(stream, agg.reducer, { initial = initial })
  end
  local fold, state, revision = agg.fold, initial, 0
  while true do
    local page, err = store:read(stream, { from = revision + 1, limit = PAGE })
    if not page then return nil, err end
    for i = 1, #page do
      local ev = page[i]
      local nxt = fold(state, ev)
      if nxt ~= nil then state = nxt end
      revision = ev.revision
    end
    if #page < PAGE then break end
  end
  return state, revision
end

--- Loads aggregate `id`: its state (the initial state when it has no events) and revision.
-- With a reducer this is `store:state` (newest matching snapshot plus later
-- events, folded in C); with `fold` the events are read and folded in Lua.
-- @return state, revision; or nil, err when the store fails
function Repository:load(id)
  return load(self, self.aggregate.category .. "-" .. check_id(id, "load"))
end

--- The stream name of aggregate `id`.
function Repository:stream(id)
  return self.aggregate.category .. "-" .. check_id(id, "stream")
end

local execute_options = { correlation_id = true, causation_id = true, metadata = true, retries = true }

-- The events to append: the handler's result as a list, each with the
-- correlation and causation ids filled in (copies, so the handler's tables
-- stay as they were).
local function outgoing(out, meta, command)
  if type(out) ~= "table" then
    error("execute: command '" .. command .. "' must return an event, a list of events or nil, got "
      .. type(out), 3)
  end
  local list = out.type ~= nil and { out } or out
  if not meta then return list end
  local events = {}
  for i, ev in ipairs(list) do
    if type(ev) ~= "table" then
      error("execute: command '" .. command .. "': event " .. i .. " must be a table, got " .. type(ev), 3)
    end
    local m = {}
    for k, v in pairs(meta) do m[k] = v end
    if ev.metadata ~= nil then
      for k, v in pairs(ev.metadata) do m[k] = v end
    end
    local e = {}
    for k, v in pairs(ev) do e[k] = v end
    e.metadata = m
    events[i] = e
  end
  return events
end

local function rejection(command, stream, raised)
  local message
  if type(raised) == "table" and raised.message ~= nil then
    message = tostring(raised.message)
  else
    message = tostring(raised)
  end
  return failure("rejected", message, { command = command, stream = stream, reason = raised })
end

--- Executes a command on aggregate `id`.
-- Loads the state, calls `commands[command](state, payload, ctx)` with no
-- transaction open (the handler may use the store; `ctx` is `{ id, stream,
-- revision, store, command, attempt, correlation_id, causation_id }`), and
-- appends what it returns with `expected = ` the loaded revision. On a
-- conflict it reloads and decides again, up to `retries` times.
-- @param id the aggregate id (string or integer)
-- @param command a name in `commands`; an unknown name raises
-- @param payload passed to the handler as is
-- @param opts `{ correlation_id, causation_id, metadata, retries }`: the ids
--   (and any `metadata` fields) go into every event's metadata, under what
--   the handler's events set themselves; `retries` overrides the aggregate's
-- @return `{ revision, position, count, events, state }` (`events` the
--   committed events, `state` the state after them, `count` 0 and `position`
--   nil when the handler returned nothing); or nil, err with `err.code`
--   "rejected" (the handler raised: `err.message` is its message, `err.reason`
--   the raised value; nothing written), "conflict" (still conflicting after the
--   retries: `err.attempts`), or the store's code
function Repository:execute(id, command, payload, opts)
  local agg, store = self.aggregate, self.store
  id = check_id(id, "execute")
  if type(command) ~= "string" then
    error("bad argument #2 to 'execute' (command name expected, got " .. type(command) .. ")", 2)
  end
  local handler = agg.commands[command]
  if not handler then
    error("execute: unknown command '" .. command .. "' for aggregate '" .. agg.category .. "'", 2)
  end
  local retries = agg.retries
  local meta
  if opts ~= nil then
    if type(opts) ~= "table" then
      error("bad argument #4 to 'execute' (options must be a table, got " .. type(opts) .. ")", 2)
    end
    for k in pairs(opts) do
      if not execute_options[k] then error("execute: unknown option '" .. tostring(k) .. "'", 2) end
    end
    if opts.retries ~= nil then
      if not whole(opts.retries, 0) then
        error("execute: option 'retries' must be an integer >= 0", 2)
      end
      retries = opts.retries
    end
    if opts.metadata ~= nil and type(opts.metadata) ~= "table" then
      error("execute: option 'metadata' must be a table", 2)
    end
    if opts.metadata or opts.correlation_id ~= nil or opts.causation_id ~= nil then
      meta = {}
      for k, v in pairs(opts.metadata or {}) do meta[k] = v end
      meta.correlation_id = opts.correlation_id
      meta.causation_id = opts.causation_id
    end
  end
  local stream = agg.category .. "-" .. id
  local attempt = 0
  while true do
    attempt = attempt + 1
    local state, revision = load(self, stream)
    if state == nil then return nil, revision end
    local ctx = {
      id = id, stream = stream, revision = revision, store = store, command = command,
      attempt = attempt, correlation_id = opts and opts.correlation_id,
      causation_id = opts and opts.causation_id,
    }
    local ok, out = pcall(handler, state, payload, ctx)
    if not ok then return nil, rejection(command, stream, out) end
    if out == nil or (type(out) == "table" and next(out) == nil) then
      return { revision = revision, count = 0, events = {}, state = state }
    end
    local events = outgoing(out, meta, command)
    local res, err = store:append(stream, events, { expected = revision })
    if res then
      if agg.reducer then
        res.state = agg.reducer:fold(res.events, state)
      else
        for _, ev in ipairs(res.events) do
          local nxt = agg.fold(state, ev)
          if nxt ~= nil then state = nxt end
        end
        res.state = state
      end
      return res
    end
    if err.code ~= "conflict" then return nil, err end
    if attempt > retries then
      err.attempts = attempt
      return nil, err
    end
  end
end

M.Aggregate = Aggregate
M.Repository = Repository

return M
