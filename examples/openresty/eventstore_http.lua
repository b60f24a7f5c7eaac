-- eventstore_http: a small HTTP API over an embedded SQLite event store, for OpenResty
-- SPDX-License-Identifier: MIT
--
--   POST /streams/{id}   append the JSON body (one event or a list of them);
--                        If-Match: <revision> is the expected revision
--                        (201; 409 on conflict, with expected and actual)
--   GET  /streams/{id}   the stream's events as a JSON list (?from=&limit=)
--   GET  /state/{id}     the state folded by the reducer below, and its revision
--   POST /pg/streams/{id} the same append on PostgreSQL (env EVENTSTORE_PG_URL),
--                        run in nginx's thread pool "eventstore_pg" (eventstore_pg.lua)
--
-- Every nginx worker opens its own store in init_worker_by_lua (never in
-- init_by_lua: a SQLite handle must not cross the master's fork). The
-- workers share one SQLite file; SQLite's locking serializes their appends.
-- The store's calls are synchronous C calls: each one blocks its worker
-- while it runs (an append on SQLite: a short local transaction; see the
-- README's OpenResty section for PostgreSQL).
local eventstore = require("eventstore")

local M = {}

local store          -- this worker's handle
local rules = eventstore.reducer({
  ["*"] = "last",
  amount = "sum",
})

-- The SQLite file: env EVENTSTORE_DB (declared with `env EVENTSTORE_DB;` in
-- nginx.conf, which otherwise strips the environment), else data/events.db
-- under the nginx prefix. The workers' user must be able to write its folder.
function M.init_worker()
  local path = os.getenv("EVENTSTORE_DB") or (ngx.config.prefix() .. "data/events.db")
  local err
  -- EVENTSTORE_SYNCHRONOUS=normal: no fsync per commit (WAL stays consistent;
  -- a power loss may drop the last commits): appends block for tens of us
  -- instead of milliseconds.
  store, err = eventstore.open("sqlite:" .. path,
    { busy_timeout = 10000, synchronous = os.getenv("EVENTSTORE_SYNCHRONOUS") or "full" })
  if not store then
    ngx.log(ngx.ERR, "eventstore: cannot open ", path, ": ", tostring(err))
  end
end

-- Microseconds from a monotonic clock, to report how long a store call
-- held the worker (X-Store-Us response header).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } es_timespec;
  int clock_gettime(int clk, es_timespec *ts);
]]
local ts = ffi.new("es_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

local function reply(status, value, headers)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  for k, v in pairs(headers or {}) do ngx.header[k] = v end
  local body = eventstore.json_encode(value) .. "\n"
  ngx.header["Content-Length"] = #body   -- not chunked: simple clients read it whole
  ngx.print(body)
  return ngx.exit(status)
end

local function fail(status, code, message, fields)
  local body = { error = code, message = message }
  for k, v in pairs(fields or {}) do body[k] = v end
  return reply(status, body)
end

-- Expected failures of the store, by err.code.
local status_of = { conflict = 409, busy = 503, readonly = 403, not_found = 404 }

local function stream_name()
  return ngx.unescape_uri(ngx.var.stream)
end

local function read_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then
    local file = ngx.req.get_body_file()   -- bodies over client_body_buffer_size
    if file then
      local f = io.open(file, "rb")
      if f then body = f:read("*a"); f:close() end
    end
  end
  return body
end

-- If-Match: 3 or "3" (an ETag of this API) is the expected revision; absent: any.
local function expected_revision()
  local h = ngx.var.http_if_match
  if not h then return eventstore.ANY end
  local n = h:match('^%s*"?(%d+)"?%s*$')
  if not n then return nil end
  return tonumber(n)
end

function M.append()
  if not store then return fail(503, "unavailable", "the store could not be opened") end
  local expected = expected_revision()
  if not expected then return fail(400, "invalid", "If-Match must be a revision number") end
  local body = read_body()
  if not body then return fail(400, "invalid", "the body must be a JSON event or a list of events") end
  local events, jerr = eventstore.json_decode(body)
  if type(events) ~= "table" then
    return fail(400, "invalid", "the body is not a JSON object or list: " .. tostring(jerr))
  end
  local t0 = now_us()
  -- Bad input (no type, a stream name that is not valid, ...) raises: a 400.
  local ok, res, err = pcall(store.append, store, stream_name(), events, { expected = expected })
  local took = string.format("%.0f", now_us() - t0)
  if not ok then return fail(400, "invalid", tostring(res)) end
  if not res then
    return fail(status_of[err.code] or 500, err.code, err.message,
      { expected = err.expected, actual = err.actual })
  end
  return reply(201, { revision = res.revision, position = res.position, count = res.count },
    { ETag = '"' .. res.revision .. '"', ["X-Store-Us"] = took })
end

function M.read()
  if not store then return fail(503, "unavailable", "the store could not be opened") end
  local args = ngx.req.get_uri_args()
  local ok, events, err = pcall(store.read, store, stream_name(),
    { from = tonumber(args.from), limit = tonumber(args.limit) })
  if not ok then return fail(400, "invalid", tostring(events)) end
  if not events then return fail(status_of[err.code] or 500, err.code, err.message) end
  local last = events[#events]
  return reply(200, eventstore.array(events), last and { ETag = '"' .. last.revision .. '"' } or nil)
end

-- POST /pg/streams/{id}: libpq blocks, so the append runs in a pool thread
-- while this worker goes on serving other requests.
function M.pg_append()
  local url = os.getenv("EVENTSTORE_PG_URL")
  if not url or url == "" then return fail(503, "unavailable", "EVENTSTORE_PG_URL is not set") end
  if ngx.req.get_method() ~= "POST" then
    ngx.header["Allow"] = "POST"
    return fail(405, "invalid", "method not allowed")
  end
  local expected = expected_revision()
  if not expected then return fail(400, "invalid", "If-Match must be a revision number") end
  local body = read_body()
  if not body then return fail(400, "invalid", "the body must be a JSON event or a list of events") end
  local t0 = now_us()
  local ok, res = ngx.run_worker_thread("eventstore_pg", "eventstore_pg", "append",
    url, stream_name(), body, expected)
  local took = string.format("%.0f", now_us() - t0)
  if not ok then return fail(500, "backend", "worker thread: " .. tostring(res)) end
  if res.code then
    local status = res.code == "invalid" and 400 or status_of[res.code] or 503
    return fail(status, res.code, res.message, { expected = res.expected, actual = res.actual })
  end
  return reply(201, res, { ETag = '"' .. res.revision .. '"', ["X-Store-Us"] = took })
end

-- /streams/{id}: POST appends, GET reads.
function M.streams()
  local method = ngx.req.get_method()
  if method == "POST" then return M.append() end
  if method == "GET" or method == "HEAD" then return M.read() end
  ngx.header["Allow"] = "GET, HEAD, POST"
  return fail(405, "invalid", "method not allowed")
end

function M.state()
  if not store then return fail(503, "unavailable", "the store could not be opened") end
  local ok, state, revision = pcall(store.state, store, stream_name(), rules)
  if not ok then return fail(400, "invalid", tostring(state)) end
  if not state then return fail(status_of[revision.code] or 500, revision.code, revision.message) end
  return reply(200, { state = state, revision = revision }, { ETag = '"' .. revision .. '"' })
end

return M
