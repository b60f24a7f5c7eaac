--- eventstore: an event store with a C core.
-- `require("eventstore")` gives this module: open a store, constants, values.
-- @module eventstore
local core = require("eventstore.core")

local M = {}

--- Expected revision: append whatever the stream's revision.
M.ANY = "any"
--- Expected revision: the stream must not exist yet (= 0).
M.NO_STREAM = 0
--- Expected revision: the stream must exist.
M.STREAM_EXISTS = "stream_exists"
--- JSON null inside data (a Lua nil cannot sit in a table).
M.null = core.null
--- The module's version string.
M.version = core.version
--- Marks a table as a JSON array (also an empty one); returns it.
M.array = core.array
--- True when a table is marked as a JSON array (by `array()`, or read back as an empty array).
M.is_array = core.is_array
--- A new random (v4) UUID string.
M.uuid = core.uuid
--- Milliseconds since the epoch, as the store stamps events.
M.now = core.now
--- math.type on every Lua: on 5.1/LuaJIT "integer" for integral numbers with |x| <= 2^53 - 1.
M.math_type = core.math_type
--- Compiles field rules into a C reducer: `eventstore.reducer(rules[, { version = n }])`.
M.reducer = core.reducer
--- Key of the rule that lists the types of the folded events: `[eventstore.TYPES] = "field"`.
M.TYPES = core.TYPES
--- Exact JSON text of a value (integers stay integers, floats keep every bit):
-- `eventstore.json_encode(v[, { sort_keys = true }])`; raises for what JSON cannot hold.
M.json_encode = core.json_encode
--- Decodes a JSON text exactly; nil, err (code "invalid") for a text that is not JSON.
M.json_decode = core.json_decode
--- The method table of stores: extend it to add methods.
M.Store = core.Store

local Error = core.Error

--- Builds an error table like the ones the store returns: `{ code, message, ... }`.
function M.error(code, message, fields)
  local e = {}
  if fields then
    for k, v in pairs(fields) do e[k] = v end
  end
  e.code, e.message = code, message
  return setmetatable(e, Error)
end

--- True when v is an error table returned by the store.
function M.is_error(v)
  return getmetatable(v) == Error
end

--- Opens a store: "sqlite:PATH" (default kind), "sqlite::memory:", "memory:",
-- "postgres://user:pw@host:port/db". Returns the store, or nil and an error.
function M.open(url, opts)
  if url == nil then url = "sqlite:events.db" end
  if type(url) ~= "string" then
    error("bad argument #1 to 'open' (URL must be a string, got " .. type(url) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'open' (options must be a table, got " .. type(opts) .. ")", 2)
  end
  return core.open(url, opts)
end

local Store = core.Store
local PAGE = 1000

local each_options = {
  from = true, to = true, backward = true, after = true, category = true, types = true,
  type = true, limit = true, page_size = true,
}

--- Iterates events in order, any number of them, in pages of 1,000:
-- `for ev in store:each("account-1") do ... end` (one stream, by revision) or
-- `for ev in store:each(nil, { category = "account" }) do ... end` (all, by position).
-- Returns the 4 values of a generic for (the 4th closes it under Lua 5.4).
function Store:each(stream, opts)
  if not self:is_open() then error("attempt to use a closed store", 2) end
  if stream ~= nil and type(stream) ~= "string" then
    error("bad argument #1 to 'each' (stream must be a string or nil, got " .. type(stream) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'each' (options must be a table, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if not each_options[k] then error("each: unknown option '" .. tostring(k) .. "'", 2) end
  end
  local page_size = opts.page_size or PAGE
  local limit = opts.limit
  local page, i, seen, done = {}, 0, 0, false
  local backward = opts.backward and true or false
  local next_from, next_to = opts.from or 1, opts.to
  local after = opts.after or 0
  local function fetch()
    local want = page_size
    if limit then want = math.min(want, limit - seen) end
    if want <= 0 then return {} end
    local res, err
    if stream and backward then
      if next_to and next_to < (opts.from or 1) then return {} end
      res, err = self:read(stream, { from = opts.from, to = next_to, limit = want, backward = true })
    elseif stream then
      res, err = self:read(stream, { from = next_from, to = opts.to, limit = want })
    else
      res, err = self:read_all({ after = after, limit = want, category = opts.category,
        types = opts.types or opts.type })
    end
    if not res then error(tostring(err), 0) end
    return res
  end
  local closer = setmetatable({}, {
    __close = function() done = true; page = {} end,
  })
  local function iter()
    if done then return nil end
    i = i + 1
    if i > #page then
      if #page > 0 and #page < page_size then done = true; return nil end
      page, i = fetch(), 1
      if #page == 0 then done = true; page = {}; return nil end
      local last = page[#page]
      next_from, next_to, after = last.revision + 1, last.revision - 1, last.position
    end
    seen = seen + 1
    return page[i]
  end
  return iter, nil, nil, closer
end

--- Defines an aggregate: `eventstore.aggregate{ category, initial, reducer | fold, commands }`.
M.aggregate = require("eventstore.aggregate").new
require("eventstore.subscription") -- Store:subscribe
require("eventstore.publish")      -- Store:on_append, Store:dispatch

return M
