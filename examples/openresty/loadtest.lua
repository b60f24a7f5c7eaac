-- loadtest: drives eventstore_http.lua over loopback HTTP and checks the store afterwards
-- SPDX-License-Identifier: MIT
--
--   luajit loadtest.lua client PORT ID APPENDS STREAMS OUTFILE
--     one client: APPENDS appends over one keep-alive connection to streams
--     load-1..load-STREAMS, half of them with If-Match (its last known
--     revision of the stream), a GET /state every 20 appends; one line per
--     request into OUTFILE
--   luajit loadtest.lua check PORT STORE_URL STREAMS OUTFILE...
--     reads the clients' lines and the store: every acknowledged append is
--     stored where it was acknowledged, revisions have no gaps, nothing
--     unacknowledged was written, no 5xx, the HTTP reads agree with the store
--
-- LOADTEST_ROUTE (default /streams/; /pg/streams/ for PostgreSQL, which has
-- no read routes, so the HTTP reads are not compared) and LOADTEST_PREFIX
-- (stream names PREFIX1..PREFIXn, default load-) apply to both.
--
-- Needs LuaSocket and the eventstore module for LuaJIT on package.(c)path.
local socket = require("socket")
local eventstore = require("eventstore")

local ROUTE = os.getenv("LOADTEST_ROUTE") or "/streams/"
local PREFIX = os.getenv("LOADTEST_PREFIX") or "load-"
local HTTP_READS = ROUTE == "/streams/"

local function die(...)
  io.stderr:write("loadtest: ", string.format(...), "\n")
  os.exit(1)
end

-- ---- a minimal HTTP/1.1 client (Content-Length bodies, keep-alive) ----

local Conn = {}
Conn.__index = Conn

local function connect(port)
  local c = assert(socket.tcp())
  c:settimeout(30)
  local ok, err = c:connect("127.0.0.1", port)
  if not ok then return nil, err end
  return setmetatable({ sock = c, port = port }, Conn)
end

function Conn:request(method, path, body, headers)
  if not self.sock then
    local c, err = connect(self.port)
    if not c then return nil, "connect: " .. tostring(err) end
    self.sock = c.sock
  end
  local lines = { method .. " " .. path .. " HTTP/1.1", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then
    lines[#lines + 1] = "Content-Type: application/json"
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  local req = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
  local ok, err = self.sock:send(req)
  if not ok then return nil, "send: " .. tostring(err) end
  local status_line, rerr = self.sock:receive("*l")
  if not status_line then return nil, "receive: " .. tostring(rerr) end
  local status = tonumber(status_line:match("^HTTP/1%.%d (%d%d%d)"))
  if not status then return nil, "bad status line: " .. status_line end
  local h = {}
  while true do
    local line = self.sock:receive("*l")
    if not line then return nil, "headers cut short" end
    if line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then h[k:lower()] = v end
  end
  local len = tonumber(h["content-length"])
  if not len then return nil, "response without Content-Length (" .. status_line .. ")" end
  local data = len > 0 and self.sock:receive(len) or ""
  if not data then return nil, "body cut short" end
  if (h["connection"] or ""):lower() == "close" then
    self.sock:close()
    self.sock = nil
  end
  return status, data, h
end

-- ---- client ----

local function client(port, id, appends, nstreams, outfile)
  math.randomseed(1000 + id)
  local out = assert(io.open(outfile, "w"))
  local conn, err = connect(port)
  if not conn then die("client %d: connect: %s", id, tostring(err)) end
  local known = {}     -- stream -> last revision this client saw
  for seq = 1, appends do
    local stream = PREFIX .. math.random(1, nstreams)
    local ev = { id = eventstore.uuid(), type = "Added", data = { amount = 1, client = id, seq = seq } }
    local headers = {}
    if math.random(2) == 1 then headers["If-Match"] = '"' .. (known[stream] or 0) .. '"' end
    local t0 = socket.gettime()
    local status, body, h = conn:request("POST", ROUTE .. stream, eventstore.json_encode(ev), headers)
    local ms = (socket.gettime() - t0) * 1000
    if not status then die("client %d: append %d: %s", id, seq, body) end
    local res = eventstore.json_decode(body) or {}
    if status == 201 then
      known[stream] = res.revision
      out:write(string.format("ack %s %s %d %d %s %.3f\n", ev.id, stream, res.revision, res.position,
        h["x-store-us"] or "-", ms))
    elseif status == 409 then
      known[stream] = res.actual
      out:write(string.format("conflict %s %s %s %s %.3f\n", ev.id, stream, tostring(res.expected),
        tostring(res.actual), ms))
    else
      out:write(string.format("status %d %s %s %s\n", status, ev.id, stream, (body:gsub("%s+", " "))))
    end
    if HTTP_READS and seq % 20 == 0 then
      -- another worker may answer: it must already see what was acknowledged
      local st, sbody = conn:request("GET", "/state/" .. stream)
      if not st then die("client %d: state: %s", id, sbody) end
      local s = eventstore.json_decode(sbody) or {}
      out:write(string.format("state %d %s %s %s\n", st, stream, tostring(s.revision), tostring(known[stream])))
    end
  end
  out:close()
end

-- ---- check ----

local function percentile(list, p)
  if #list == 0 then return 0 end
  table.sort(list)
  return list[math.max(1, math.ceil(#list * p))]
end

-- The HTTP reads of a stream (another worker may answer) against the store.
local function compare_http(conn, stream, events, problem)
  local st, body = conn:request("GET", "/streams/" .. stream)
  local list = st == 200 and eventstore.json_decode(body)
  if not list or #list ~= #events then
    problem("GET /streams/%s: %s, %s events", stream, tostring(st), list and #list or "no")
  else
    for i = 1, #list do
      if list[i].id ~= events[i].id then problem("GET /streams/%s: event %d differs", stream, i) end
    end
  end
  st, body = conn:request("GET", "/state/" .. stream)
  local s = st == 200 and eventstore.json_decode(body)
  local want_amount = #events > 0 and #events or nil
  if not s or s.revision ~= #events or s.state.amount ~= want_amount then
    problem("GET /state/%s: %s %s", stream, tostring(st), tostring(body))
  end
end

local function check(port, url, nstreams, files)
  local problems = {}
  local function problem(...) problems[#problems + 1] = string.format(...) end
  local acks, by_stream, conflicts, states = {}, {}, 0, 0
  local store_us, latency = {}, {}
  for _, f in ipairs(files) do
    for line in io.lines(f) do
      local kind = line:match("^(%S+)")
      if kind == "ack" then
        local id, stream, rev, pos, us, ms = line:match("^ack (%S+) (%S+) (%d+) (%d+) (%S+) (%S+)$")
        if acks[id] then problem("id %s acknowledged twice", id) end
        acks[id] = { stream = stream, revision = tonumber(rev), position = tonumber(pos) }
        by_stream[stream] = (by_stream[stream] or 0) + 1
        store_us[#store_us + 1] = tonumber(us)
        latency[#latency + 1] = tonumber(ms)
      elseif kind == "conflict" then
        local expected, actual = line:match("^conflict %S+ %S+ (%S+) (%S+)")
        if expected == actual or tonumber(actual) == nil then problem("bad conflict: %s", line) end
        conflicts = conflicts + 1
        latency[#latency + 1] = tonumber(line:match("(%S+)$"))
      elseif kind == "state" then
        local st, rev, seen = line:match("^state (%d+) %S+ (%S+) (%S+)$")
        if st ~= "200" then problem("GET /state answered %s", st)
        elseif seen ~= "nil" and tonumber(rev) < tonumber(seen) then
          problem("stale read: %s", line)
        end
        states = states + 1
      else
        problem("%s: %s", f, line)
      end
    end
  end
  local store = assert(eventstore.open(url))
  local total, positions = 0, {}
  for id, a in pairs(acks) do
    local ev = store:event(id)
    if not ev then problem("acknowledged %s is not stored", id)
    elseif ev.stream ~= a.stream or ev.revision ~= a.revision or ev.position ~= a.position then
      problem("acknowledged %s at %s/%d/%d, stored at %s/%d/%d", id, a.stream, a.revision, a.position,
        ev.stream, ev.revision, ev.position)
    end
  end
  local conn = assert(connect(port))
  for k = 1, nstreams do
    local stream = PREFIX .. k
    local events = store:read(stream)
    for i, ev in ipairs(events) do
      if ev.revision ~= i then problem("%s: revision %d at place %d (a gap)", stream, ev.revision, i) end
      if not acks[ev.id] then problem("%s: %s stored but never acknowledged", stream, ev.id) end
      if positions[ev.position] then problem("position %d used twice", ev.position) end
      positions[ev.position] = true
    end
    if #events ~= (by_stream[stream] or 0) then
      problem("%s: %d events stored, %d acknowledged", stream, #events, by_stream[stream] or 0)
    end
    total = total + #events
    if HTTP_READS then compare_http(conn, stream, events, problem) end
  end
  local st = conn:request("POST", ROUTE .. PREFIX .. "1", '{"type":"X"}', { ["If-Match"] = '"0"' })
  if st ~= 409 then problem("If-Match 0 on an existing stream answered %s, not 409", tostring(st)) end
  st = conn:request("POST", ROUTE .. PREFIX .. "1", '{"data":{}}')
  if st ~= 400 then problem("an event without a type answered %s, not 400", tostring(st)) end
  store:close()
  print(string.format(
    "loadtest: %s%s: %d appends acknowledged, %d conflicts (409), %d state reads, %d events in %d streams",
    ROUTE, PREFIX, total, conflicts, states, total, nstreams))
  print(string.format("loadtest: time in store:append (X-Store-Us): p50 %d us, p90 %d us, p99 %d us, max %d us",
    percentile(store_us, 0.5), percentile(store_us, 0.9), percentile(store_us, 0.99), percentile(store_us, 1)))
  print(string.format("loadtest: request latency seen by the clients: p50 %.2f ms, p99 %.2f ms",
    percentile(latency, 0.5), percentile(latency, 0.99)))
  for _, p in ipairs(problems) do print("loadtest: PROBLEM " .. p) end
  if total == 0 then print("loadtest: PROBLEM nothing was appended") os.exit(1) end
  os.exit(#problems == 0 and 0 or 1)
end

local cmd = arg[1]
if cmd == "client" then
  client(tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5]), arg[6])
elseif cmd == "check" then
  local files = {}
  for i = 5, #arg do files[#files + 1] = arg[i] end
  check(tonumber(arg[2]), arg[3], tonumber(arg[4]), files)
else
  die("usage: loadtest.lua client PORT ID APPENDS STREAMS OUTFILE | check PORT DBFILE STREAMS OUTFILE...")
end
