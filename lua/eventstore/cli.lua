--- eventstore.cli: the `eventstore` command-line tool.
-- `bin/eventstore` is a launcher that calls `require("eventstore.cli").main(arg)`.
--
--     eventstore [--url URL] [--schema S] [--prefix P] COMMAND [options]
--
-- Commands: `init`, `append`, `read`, `all`, `tail`, `streams`, `stats`,
-- `state`, `snapshot`, `export`, `import`, `copy`; `eventstore help COMMAND`
-- or `eventstore COMMAND --help` describes each. Events go out (and come in)
-- as JSON Lines, one event per line, written exactly: integers stay
-- integers, floats keep every bit, strings are byte-exact.
--
-- Exit codes (`M.EXIT`): 0 ok, 1 not found (`snapshot` of a stream without
-- one), 2 usage error, 3 conflict (a wrong expected revision, an id stored
-- elsewhere), 4 backend failure (cannot open, connection lost, busy,
-- read-only), 5 invalid input (a bad JSON line, an event or a rules file the
-- store rejects), 130 interrupted (Ctrl-C; `tail` ends that way with 0).
-- @module eventstore.cli
local eventstore = require("eventstore")
local argparse = require("argparse")

local M = {}

--- Exit codes of the tool.
M.EXIT = { ok = 0, not_found = 1, usage = 2, conflict = 3, backend = 4, invalid = 5, interrupted = 130 }
local EXIT = M.EXIT

local dec = eventstore.json_decode
local json_encode, SORTED = eventstore.json_encode, { sort_keys = true }
-- Object keys sorted: the same value gives the same text in every process
-- (a Lua table has no key order), so exports and reads diff well.
local function enc(v) return json_encode(v, SORTED) end
local fmt = string.format

-- A failure that ends the command with an exit code. Raised as a table so
-- that the error of any call below main() reaches it unchanged.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f) return f.message end

local function fail(code, message)
  error(setmetatable({ exit = code, message = message }, Failure), 0)
end

-- The exit code for a store error table (err.code).
local function exit_for(err)
  local code = type(err) == "table" and err.code
  if code == "conflict" then return EXIT.conflict end
  if code == "invalid" then return EXIT.invalid end
  if code == "not_found" then return EXIT.not_found end
  return EXIT.backend
end

-- Fails with the store error err (its message names the operation),
-- prefixed by where (a line number, a URL) when given.
local function fail_store(where, err)
  fail(exit_for(err), (where and where .. ": " or "") .. tostring(err))
end

-- A URL fit for messages: the password of a PostgreSQL URL masked, in the
-- user part or as a `password=` parameter.
local function shown(url)
  url = url:gsub("^(%a[%w+.-]*://[^:/@]*):[^@/]*@", "%1:***@")
  return (url:gsub("([?&]password=)[^&]*", "%1***"))
end

-- Ctrl-C reaches Lua as the error "interrupted!" wherever it was running:
-- a pcall that catches it passes it on, so it is never taken for bad input.
local function pass_interrupt(e)
  if type(e) == "string" and e:find("interrupted!", 1, true) then error(e, 0) end
end

-- Runs fn(...) under pcall; a raised string (the library's programmer
-- errors: a bad stream name, an event it refuses) becomes an exit code.
local function guarded(code, what, fn, ...)
  local res = table.pack(pcall(fn, ...))
  if res[1] then return table.unpack(res, 2, res.n) end
  local e = res[2]
  if getmetatable(e) == Failure then error(e, 0) end
  pass_interrupt(e)
  fail(code, what .. ": " .. tostring(e))
end

-- ------------------------------------------------------------------------
-- JSON Lines

-- Event fields in a fixed order, so lines read well and diff well.
local function event_line(ev)
  return table.concat({
    '{"id":', enc(ev.id),
    ',"stream":', enc(ev.stream),
    ',"revision":', fmt("%d", ev.revision),
    ',"position":', fmt("%d", ev.position),
    ',"type":', enc(ev.type),
    ',"timestamp":', fmt("%d", ev.timestamp),
    ',"data":', enc(ev.data),
    ',"metadata":', enc(ev.metadata),
    "}",
  })
end

-- A decoded JSON object (not an array, not a scalar).
local function is_object(v)
  return type(v) == "table" and not eventstore.is_array(v) and rawget(v, 1) == nil
end

local function is_uuid(s)
  return type(s) == "string" and #s == 36
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function check_name(what, s)
  if type(s) ~= "string" then return what .. " must be a non-empty string" end
  if s == "" then return what .. " is empty" end
  if #s > 255 then return what .. " is longer than 255 bytes" end
  if s:find("\0", 1, true) then return what .. " contains a NUL byte" end
  if not utf8.len(s) then return what .. " is not valid UTF-8" end
  return nil
end

local event_fields = {
  id = true, stream = true, revision = true, position = true, type = true,
  timestamp = true, data = true, metadata = true,
}

-- Checks one decoded event and returns a clean copy { id, type, data,
-- metadata } plus its stream and revision, or nil and the reason. Every
-- check the store would make is made here, so a batch is known good before
-- any of it is written.
local function check_event(v, opts)
  if not is_object(v) then return nil, "an event must be a JSON object" end
  for k in pairs(v) do
    if not event_fields[k] then return nil, fmt("unknown event field %q", tostring(k)) end
  end
  local bad = check_name("type", v.type)
  if bad then return nil, bad end
  local ev = { type = v.type }
  if v.id ~= nil and not opts.new_ids then
    if not is_uuid(v.id) then return nil, "id must be a UUID string" end
    ev.id = v.id
  end
  for _, f in ipairs({ "data", "metadata" }) do
    local x = v[f]
    if x ~= nil then
      if not is_object(x) then return nil, f .. " must be a JSON object" end
      local ok, err = pcall(json_encode, x)
      if not ok then pass_interrupt(err) end
      if not ok then return nil, f .. ": " .. tostring(err):gsub("^json_encode: value[.:]?%s*", "") end
      ev[f] = x
    end
  end
  local stream, revision = v.stream, v.revision
  if opts.need_stream then
    bad = check_name("stream", stream)
    if bad then return nil, bad end
  end
  if revision ~= nil and (math.type(revision) ~= "integer" or revision < 1) then
    return nil, "revision must be an integer >= 1"
  end
  return ev, stream, revision
end

-- Lines of a file (path, or "-"/nil for stdin): iterator of (number, text)
-- without the line end.
local function open_input(path)
  if path == nil or path == "-" then return io.stdin, false end
  local f, err = io.open(path, "rb")
  if not f then fail(EXIT.usage, "cannot open " .. path .. ": " .. tostring(err)) end
  return f, true
end

-- ------------------------------------------------------------------------
-- Progress bar: on stderr, only when it is a terminal.

-- Whether a standard stream (io.stdout, 1 / io.stderr, 2) is a terminal:
-- lua-term's isatty when it is installed, else the shell's `test -t`
-- (the child inherits our descriptors).
local function is_terminal(file, fd)
  local ok, term = pcall(require, "term")
  if ok and type(term) == "table" and term.isatty then return term.isatty(file) end
  local r = os.execute("test -t " .. fd)
  return r == true or r == 0
end

local Progress = {}
Progress.__index = Progress

local function clock() return eventstore.now() / 1000 end

local function hms(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then return fmt("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return fmt("%d:%02d", s // 60, s % 60)
end

local function new_progress(enabled, label, total)
  return setmetatable({ enabled = enabled, label = label, total = total, count = 0,
    start = clock(), drawn = 0 }, Progress)
end

--- The progress line for `count` of `total` events (nil: unknown) after
-- `elapsed` seconds: a bar, the count, the rate and the time left.
function M.progress_line(label, count, total, elapsed)
  local rate = elapsed > 0 and count / elapsed or 0
  local parts = { label }
  if total and total > 0 then
    local frac = math.min(count / total, 1)
    local width = 24
    local full = math.floor(frac * width)
    parts[#parts + 1] = "[" .. ("#"):rep(full) .. ("."):rep(width - full) .. "]"
    parts[#parts + 1] = fmt("%d/%d", count, total)
    parts[#parts + 1] = fmt("%5.1f%%", frac * 100)
  else
    parts[#parts + 1] = fmt("%d events", count)
  end
  parts[#parts + 1] = fmt("%.0f ev/s", rate)
  if total and total > 0 and rate > 0 then
    parts[#parts + 1] = "left " .. hms(math.max(total - count, 0) / rate)
  else
    parts[#parts + 1] = "elapsed " .. hms(elapsed)
  end
  return table.concat(parts, "  ")
end

function Progress:add(n)
  self.count = self.count + n
  if not self.enabled then return end
  local now = clock()
  if now - self.drawn >= 0.1 then
    self.drawn = now
    io.stderr:write("\r", M.progress_line(self.label, self.count, self.total, now - self.start), "\27[K")
    io.stderr:flush()
  end
end

function Progress:done()
  if not self.enabled then return end
  io.stderr:write("\r", M.progress_line(self.label, self.count, self.count, clock() - self.start), "\27[K\n")
  io.stderr:flush()
end

-- ------------------------------------------------------------------------
-- Writing events in batches (import and copy)

-- A writer appends checked events to dst in batches, grouping consecutive
-- events of one stream into one append whose expected revision is the
-- first event's revision - 1, so revisions come out identical. Appending
-- again events already stored at the same place is a no-op (idempotent
-- ids), so an interrupted import can be run again.
local function new_writer(store, progress)
  local w = { store = store, batch = {}, written = 0, present = 0, progress = progress }

  function w.add(item) -- { ev =, stream =, revision =, line = }
    w.batch[#w.batch + 1] = item
  end

  -- How many events at the head of list (to be revisions from, from + 1,
  -- ...) the stream already holds with the same ids, or nil when it holds
  -- anything else there (a real conflict).
  function w.stored_prefix(stream, from, list, actual)
    -- an id conflict carries no revision: ask the stream
    if type(actual) ~= "number" then actual = store:revision(stream) end
    if type(actual) ~= "number" or actual < from then return nil end
    local upto = math.min(actual, from + #list - 1)
    local stored = store:read(stream, { from = from, to = upto })
    if not stored or #stored ~= upto - from + 1 then return nil end
    for k, ev in ipairs(stored) do
      if not list[k].id or ev.id ~= list[k].id then return nil end
    end
    return #stored
  end

  function w.flush()
    local batch, i = w.batch, 1
    w.batch = {}
    while i <= #batch do
      local first = batch[i]
      local list, j = { first.ev }, i + 1
      local rev = first.revision
      while j <= #batch and batch[j].stream == first.stream
        and (rev == nil or batch[j].revision == nil or batch[j].revision == rev + 1) do
        list[#list + 1] = batch[j].ev
        if rev then rev = batch[j].revision or rev + 1 end
        j = j + 1
      end
      local opts = first.revision and { expected = first.revision - 1 } or nil
      local where = first.line and fmt("line %d", first.line) or nil
      local what = (where and where .. ": " or "") .. "append to '" .. first.stream .. "'"
      local res, err = guarded(EXIT.invalid, what, store.append, store, first.stream, list, opts)
      local skip = 0
      if not res and err.code == "conflict" and first.revision then
        -- a run cut short inside this group (or batches of another size):
        -- the stored head of the group is skipped when its ids match
        skip = w.stored_prefix(first.stream, first.revision, list, err.actual)
        if skip and skip < #list then
          res, err = guarded(EXIT.invalid, what, store.append, store, first.stream,
            { table.unpack(list, skip + 1) }, { expected = first.revision - 1 + skip })
        elseif skip then
          res = { idempotent = true }
        end
      end
      if not res then fail_store(where, err) end
      w.present = w.present + (res.idempotent and #list or skip or 0)
      w.written = w.written + #list
      if w.progress then w.progress:add(#list) end
      i = j
    end
  end

  return w
end

-- ------------------------------------------------------------------------
-- Commands

local commands = {}

local function out(s)
  io.stdout:write(s, "\n")
end

-- Resolves -- the URL and open options from the global options.
local function open_store(args, url, which)
  url = url or args.url
  local opts = {}
  local schema = which and args[which .. "_schema"] or args.schema
  local prefix = which and args[which .. "_prefix"] or args.prefix
  if schema == nil then schema = args.schema end
  if prefix == nil then prefix = args.prefix end
  opts.schema, opts.prefix = schema, prefix
  local store, err = guarded(EXIT.usage, "open " .. shown(url), eventstore.open, url, opts)
  if not store then fail_store("cannot open " .. shown(url), err) end
  return store
end

function commands.init(args)
  local store = open_store(args)
  local st = assert(store:stats())
  out(fmt('{"url":%s,"backend":%s,"events":%d,"streams":%d}', enc(shown(args.url)), enc(st.backend),
    st.events, st.streams))
  store:close()
end

-- --expected: any, no_stream, stream_exists or a revision.
local function parse_expected(s)
  if s == nil then return nil end
  local l = s:lower():gsub("-", "_")
  if l == "any" then return eventstore.ANY end
  if l == "no_stream" then return eventstore.NO_STREAM end
  if l == "stream_exists" or l == "exists" then return eventstore.STREAM_EXISTS end
  local n = math.tointeger(tonumber(s))
  if not n or n < 0 then
    fail(EXIT.usage, "--expected must be a revision >= 0, any, no_stream or stream_exists, got " .. s)
  end
  return n
end

-- The events to append, from --type/--data/--metadata or from the input:
-- one JSON event (even over several lines), a JSON array of events, or
-- JSON Lines.
local function read_append_input(args)
  local opts = { new_ids = args.new_ids }
  if args.type and args.file then fail(EXIT.usage, "append: give --type or an input FILE, not both") end
  if not args.type and (args.data or args.metadata or args.id) then
    fail(EXIT.usage, "append: --data, --metadata and --id go with --type")
  end
  if args.type then
    local v = { type = args.type }
    for _, f in ipairs({ "data", "metadata" }) do
      if args[f] then
        local x, err = dec(args[f])
        if x == nil then fail(EXIT.invalid, "--" .. f .. ": " .. tostring(err)) end
        v[f] = x
      end
    end
    if args.id then v.id = args.id end
    local ev, why = check_event(v, opts)
    if not ev then fail(EXIT.invalid, why) end
    return { ev }
  end
  local f, close = open_input(args.file)
  local text = f:read("a") or ""
  if close then f:close() end
  local whole = dec(text)
  local values, lines = {}, {}
  if is_object(whole) then
    values[1], lines[1] = whole, 1
  elseif type(whole) == "table" then
    for i, v in ipairs(whole) do values[i], lines[i] = v, i end
  else
    local n = 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      line = line:gsub("\r$", "")
      if line:find("%S") then
        local v, err = dec(line)
        if v == nil then fail(EXIT.invalid, fmt("line %d: %s", n, tostring(err))) end
        values[#values + 1], lines[#lines + 1] = v, n
      end
    end
  end
  if #values == 0 then fail(EXIT.usage, "append: no events in the input") end
  local list = {}
  for i, v in ipairs(values) do
    local ev, why = check_event(v, opts)
    if not ev then
      fail(EXIT.invalid, (type(whole) == "table" and not is_object(whole) and "event %d: " or "line %d: ")
        :format(lines[i]) .. why)
    end
    list[i] = ev
  end
  return list
end

function commands.append(args)
  local list = read_append_input(args)
  local expected = parse_expected(args.expected)
  local store = open_store(args)
  local res, err = guarded(EXIT.usage, "append to '" .. args.stream .. "'", store.append, store,
    args.stream, list, { expected = expected })
  if not res then fail_store(nil, err) end
  out(fmt('{"stream":%s,"revision":%d,"position":%d,"count":%d}', enc(args.stream), res.revision,
    res.position, res.count))
  store:close()
end

-- Writes every event of an iterator as JSON Lines.
local function write_events(iter, state, ctl)
  local n = 0
  for ev in iter, state, ctl do
    out(event_line(ev))
    n = n + 1
  end
  return n
end

local function checked_each(store, stream, opts, what)
  local iter, s, c = guarded(EXIT.usage, what, store.each, store, stream, opts)
  -- each() raises the store's error text when a page fails mid-way
  return function()
    local ok, ev = pcall(iter, s, c)
    if not ok then pass_interrupt(ev) end
    if not ok then fail(EXIT.backend, what .. ": " .. tostring(ev)) end
    return ev
  end
end

function commands.read(args)
  local store = open_store(args)
  local opts = { from = args.from, to = args.to, backward = args.backward or nil, limit = args.limit }
  write_events(checked_each(store, args.stream, opts, "read '" .. args.stream .. "'"))
  store:close()
end

local function types_option(args)
  if args.type and #args.type > 0 then return args.type end
  return nil
end


commands["all"] = function(args)
  local store = open_store(args)
  local opts = { after = args.after, category = args.category, types = types_option(args), limit = args.limit }
  write_events(checked_each(store, nil, opts, "all"))
  store:close()
end

-- tail: the events after --after (default: the newest position now), then
-- each new event as it is committed, until interrupted (or --count events,
-- or --timeout ms without one). It reads every event and filters here, so
-- `after` moves past events of other categories too and wait() sleeps
-- until something new is committed.
function commands.tail(args)
  local store = open_store(args)
  io.stdout:setvbuf("line")
  local after = args.after
  if after == nil then
    local st, err = store:stats()
    if not st then fail_store(nil, err) end
    after = st.position
  end
  local types
  for _, t in ipairs(args.type or {}) do
    types = types or {}
    types[t] = true
  end
  local category = args.category
  local function wanted(ev)
    if types and not types[ev.type] then return false end
    return not category or (ev.stream:match("^([^-]*)") == category)
  end
  local seen, max = 0, args.count
  local ok, e = pcall(function()
    while not max or seen < max do
      local list, err = store:read_all({ after = after, limit = 1000 })
      if not list then fail_store(nil, err) end
      for _, ev in ipairs(list) do
        after = ev.position
        if wanted(ev) then
          out(event_line(ev))
          seen = seen + 1
          if max and seen >= max then break end
        end
      end
      if #list == 0 then
        local ready, werr = store:wait(after, args.timeout or 1000)
        if ready == nil then fail_store(nil, werr) end
        if not ready and args.timeout then break end
      end
    end
  end)
  store:close()
  -- Ctrl-C reaches Lua as the error "interrupted!": that is how tail ends
  if not ok and not (type(e) == "string" and e:find("interrupted!", 1, true)) then error(e, 0) end
end

function commands.streams(args)
  local store = open_store(args)
  local list, err = guarded(EXIT.usage, "streams", store.streams, store, { category = args.category })
  if not list then fail_store(nil, err) end
  for _, name in ipairs(list) do out(name) end
  store:close()
end

function commands.stats(args)
  local store = open_store(args)
  local st, err = store:stats()
  if not st then fail_store(nil, err) end
  -- the known counts first, in a fixed order; whatever else a backend adds after
  local parts, known = {}, { "backend", "events", "streams", "snapshots", "position" }
  local seen = {}
  for _, k in ipairs(known) do
    if st[k] ~= nil then parts[#parts + 1] = enc(k) .. ":" .. enc(st[k]) end
    seen[k] = true
  end
  local rest = {}
  for k in pairs(st) do if not seen[k] then rest[#rest + 1] = k end end
  table.sort(rest)
  for _, k in ipairs(rest) do parts[#parts + 1] = enc(k) .. ":" .. enc(st[k]) end
  out("{" .. table.concat(parts, ",") .. "}")
  store:close()
end

-- Loads a rules file: a Lua chunk returning a rules table (as given to
-- eventstore.reducer) or a compiled reducer. It runs with `eventstore` and
-- the standard globals in scope.
local function load_rules(path)
  local env = setmetatable({ eventstore = eventstore }, { __index = _G })
  local chunk, err = loadfile(path, "t", env)
  if not chunk then fail(EXIT.invalid, "rules: " .. tostring(err)) end
  local ok, rules = pcall(chunk)
  if not ok then fail(EXIT.invalid, "rules " .. path .. ": " .. tostring(rules)) end
  local mt = getmetatable(rules)
  if type(rules) == "userdata" and mt and mt.__name == "eventstore.Reducer" then return rules end
  if type(rules) ~= "table" then
    fail(EXIT.invalid, "rules " .. path .. ": must return a rules table or eventstore.reducer{...}, got "
      .. type(rules))
  end
  return guarded(EXIT.invalid, "rules " .. path, eventstore.reducer, rules)
end

-- --where key=value: the value is JSON when it parses (42, true, "x"), else a string.
local function parse_where(list)
  if not list or #list == 0 then return nil end
  local where = {}
  for _, kv in ipairs(list) do
    local k, v = kv:match("^([^=]+)=(.*)$")
    if not k then fail(EXIT.usage, "--where must be key=value, got " .. kv) end
    local x = dec(v)
    if x == nil or type(x) == "table" then x = v end
    where[k] = x
  end
  return where
end

function commands.state(args)
  if not args.stream and not args.category and not (args.where and #args.where > 0) then
    fail(EXIT.usage, "state: give a STREAM, or --category and/or --where")
  end
  if args.stream and (args.category or (args.where and #args.where > 0)) then
    fail(EXIT.usage, "state: give a STREAM or --category/--where, not both")
  end
  local rules = load_rules(args.rules)
  local opts
  if args.initial then
    local init, err = dec(args.initial)
    if not is_object(init) then fail(EXIT.invalid, "--initial must be a JSON object: " .. tostring(err or "")) end
    opts = { initial = init }
  end
  local store = open_store(args)
  local target = args.stream or { category = args.category, where = parse_where(args.where) }
  local state, at = guarded(EXIT.invalid, "state", store.state, store, target, rules, opts)
  if state == nil then fail_store(nil, at) end
  if args.stream then
    out(fmt('{"stream":%s,"revision":%d,"state":%s}', enc(args.stream), at, enc(state)))
  else
    out(fmt('{"position":%d,"state":%s}', at, enc(state)))
  end
  store:close()
end

function commands.snapshot(args)
  local store = open_store(args)
  local snap, err = guarded(EXIT.usage, "snapshot", store.snapshot, store, args.stream,
    { max_revision = args.max_revision })
  if err then fail_store(nil, err) end
  store:close()
  if not snap then fail(EXIT.not_found, "no snapshot of '" .. args.stream .. "'") end
  out(fmt('{"stream":%s,"revision":%d,"version":%d,"timestamp":%d,"data":%s}', enc(snap.stream),
    snap.revision, snap.version, snap.timestamp, enc(snap.data)))
end

-- The bar goes to stderr when it is a terminal, but not over events that
-- are being written to that same terminal.
local function progress_enabled(args, to_stdout)
  if args.quiet or not is_terminal(io.stderr, 2) then return false end
  return not (to_stdout and is_terminal(io.stdout, 1))
end

function commands.export(args)
  local store = open_store(args)
  local total
  if not args.category and not args.after then
    local st = store:stats()
    total = st and st.events
  end
  local dst, close = io.stdout, false
  if args.output and args.output ~= "-" then
    local err
    dst, err = io.open(args.output, "wb")
    if not dst then fail(EXIT.usage, "cannot write " .. args.output .. ": " .. tostring(err)) end
    close = true
  end
  dst:setvbuf("full")
  local progress = new_progress(progress_enabled(args, not close), "export", total)
  for ev in checked_each(store, nil, { after = args.after, category = args.category }, "export") do
    dst:write(event_line(ev), "\n")
    progress:add(1)
  end
  progress:done()
  if close then assert(dst:close()) else dst:flush() end
  store:close()
end

function commands.import(args)
  local f, close = open_input(args.file)
  local total
  if close and args.file then
    -- a file: count its lines first so the bar can show the time left
    local n = 0
    for _ in f:lines() do n = n + 1 end
    f:seek("set", 0)
    total = n
  end
  local store = open_store(args)
  local progress = new_progress(progress_enabled(args), "import", total)
  local w = new_writer(store, progress)
  local size, n, ids = args.batch, 0, {}
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    if line:find("%S") then
      local v, err = dec(line)
      if v == nil then
        fail(EXIT.invalid, fmt("line %d: %s (nothing of this batch was written; %d events before it were)",
          n, tostring(err), w.written))
      end
      local ev, stream, revision = check_event(v, { need_stream = true, new_ids = args.new_ids })
      if not ev then
        fail(EXIT.invalid, fmt("line %d: %s (nothing of this batch was written; %d events before it were)",
          n, stream, w.written))
      end
      if ev.id then
        if ids[ev.id] then
          fail(EXIT.invalid, fmt("line %d: id %s also on line %d (nothing of this batch was written; " ..
            "%d events before it were)", n, ev.id, ids[ev.id], w.written))
        end
        ids[ev.id] = n
      end
      w.add({ ev = ev, stream = stream, revision = revision, line = n })
      if #w.batch >= size then
        w.flush()
        ids = {}
      end
    end
  end
  w.flush()
  if close then f:close() end
  progress:done()
  store:close()
  io.stderr:write(fmt("imported %d events (%d of them were already there)\n", w.written, w.present))
end

function commands.copy(args)
  local src = open_store(args, args.src_url, "src")
  local dst = open_store(args, args.dst_url, "dst")
  local st = src:stats()
  local progress = new_progress(progress_enabled(args), "copy", not args.category and st and st.events or nil)
  local w = new_writer(dst, progress)
  for ev in checked_each(src, nil, { category = args.category }, "copy: read " .. args.src_url) do
    w.add({ ev = { id = ev.id, type = ev.type, data = ev.data, metadata = ev.metadata },
      stream = ev.stream, revision = ev.revision })
    if #w.batch >= args.batch then w.flush() end
  end
  w.flush()
  progress:done()
  src:close()
  dst:close()
  io.stderr:write(fmt("copied %d events (%d of them were already there)\n", w.written, w.present))
end

-- ------------------------------------------------------------------------
-- Arguments

local function integer(min)
  return function(s)
    local n = math.tointeger(tonumber(s))
    if not n or n < min then return nil, fmt("must be an integer >= %d, got '%s'", min, s) end
    return n
  end
end

local EPILOG = [[
Exit codes: 0 ok, 1 not found, 2 usage error, 3 conflict, 4 backend failure
(cannot open, connection lost, busy, read-only), 5 invalid input, 130 interrupted.
Events are JSON Lines: {"id","stream","revision","position","type","timestamp","data","metadata"}.]]

--- The argparse parser of the tool (exposed for the reference and specs).
function M.parser()
  local p = argparse("eventstore", "Inspect, follow and move the events of an eventstore store.")
    :epilog(EPILOG)
    :command_target("command")
    :help_max_width(100)
  p:option("-u --url", "Store URL: sqlite:PATH, sqlite::memory:, memory:, postgres://user:pw@host:port/db.\n"
    .. "Default: $EVENTSTORE_URL, else sqlite:events.db.")
  p:option("--schema", "PostgreSQL schema holding the tables.")
  p:option("--prefix", "Prefix of the table names (e.g. t1_), to keep several stores in one database.")
  p:flag("-q --quiet", "No progress bar, even on a terminal.")
  p:add_help_command()

  p:command("init", "Create the store (tables, indexes) if needed and print its size.")

  local c = p:command("append", "Append events to STREAM atomically: one JSON event, a JSON array, or JSON Lines\n"
    .. "from FILE or stdin; or one event from --type/--data/--metadata.")
  c:argument("stream", "Stream name, e.g. account-42.")
  c:argument("file", "Input file (default: stdin)."):args("?")
  c:option("-e --expected", "Expected revision: a number, any, no_stream or stream_exists.")
  c:option("-t --type", "Event type (the event comes from the options, not the input).")
  c:option("-d --data", "Event data as a JSON object (with --type).")
  c:option("-m --metadata", "Event metadata as a JSON object (with --type).")
  c:option("--id", "Event id, a UUID (with --type).")
  c:flag("--new-ids", "Drop the ids of the input events; the store generates new ones.")

  c = p:command("read", "Print the events of STREAM as JSON Lines.")
  c:argument("stream", "Stream name.")
  c:option("-f --from", "First revision (inclusive)."):convert(integer(0))
  c:option("-t --to", "Last revision (inclusive)."):convert(integer(0))
  c:flag("-b --backward", "Newest first.")
  c:option("-n --limit", "At most this many events."):convert(integer(0))

  c = p:command("all", "Print the events of every stream, in global order, as JSON Lines.")
  c:option("-a --after", "Only events after this position."):convert(integer(0))
  c:option("-c --category", "Only streams of this category (the part before the first '-').")
  c:option("-t --type", "Only events of this type (repeatable)."):count("*")
  c:option("-n --limit", "At most this many events."):convert(integer(0))

  c = p:command("tail", "Follow new events as they are committed, like tail -f, until interrupted.")
  c:option("-a --after", "Start after this position (default: the newest event now; 0: from the start).")
    :convert(integer(0))
  c:option("-c --category", "Only streams of this category.")
  c:option("-t --type", "Only events of this type (repeatable)."):count("*")
  c:option("-n --count", "Stop after this many events."):convert(integer(1))
  c:option("--timeout", "Stop after this many milliseconds without a new event."):convert(integer(0))

  c = p:command("streams", "Print the stream names, one a line, sorted.")
  c:option("-c --category", "Only streams of this category.")

  p:command("stats", "Print the store's counts as JSON.")

  c = p:command("state", "Fold a stream (or a category filtered by --where) with the rules of a Lua file\n"
    .. "and print {revision|position, state} as JSON.")
  c:argument("stream", "Stream name."):args("?")
  c:option("-r --rules", "Lua file returning a rules table (as for eventstore.reducer) or a reducer."):count(1)
  c:option("-c --category", "Fold this category's events (in global order) instead of one stream.")
  c:option("-w --where", "Only events whose data has key=value (value as JSON when it parses; repeatable)."):count("*")
  c:option("-i --initial", "Initial state as a JSON object.")

  c = p:command("snapshot", "Print the newest snapshot of STREAM as JSON (exit 1 when there is none).")
  c:argument("stream", "Stream name.")
  c:option("--max-revision", "Newest snapshot at or below this revision."):convert(integer(0))

  c = p:command("export", "Write the whole store (or a category) as JSON Lines, in global order.")
  c:option("-o --output", "Output file (default: stdout).")
  c:option("-a --after", "Only events after this position."):convert(integer(0))
  c:option("-c --category", "Only streams of this category.")

  c = p:command("import", "Append JSON Lines (as export writes them) keeping ids, revisions and order.\n"
    .. "Each batch is checked whole before it is written: a bad line is named and nothing of its batch is written.")
  c:argument("file", "Input file (default: stdin)."):args("?")
  c:option("--batch", "Events per batch.", "1000"):convert(integer(1))
  c:flag("--new-ids", "Drop the ids; the store generates new ones.")

  c = p:command("copy", "Copy every event from SRC_URL to DST_URL (e.g. SQLite to PostgreSQL and back),\n"
    .. "keeping ids, revisions and order. Snapshots (caches) and checkpoints (positions) are not copied.")
  c:argument("src_url", "Source store URL.")
  c:argument("dst_url", "Destination store URL.")
  c:option("-c --category", "Only streams of this category.")
  c:option("--batch", "Events per batch.", "1000"):convert(integer(1))
  c:option("--src-schema", "PostgreSQL schema of the source (default: --schema).")
  c:option("--src-prefix", "Table prefix of the source (default: --prefix).")
  c:option("--dst-schema", "PostgreSQL schema of the destination (default: --schema).")
  c:option("--dst-prefix", "Table prefix of the destination (default: --prefix).")
  return p
end

local function usage_error(parser, msg)
  error(setmetatable({ exit = EXIT.usage, message = msg, usage = parser:get_usage() }, Failure), 0)
end

--- Runs the tool with the argument list `args` (as `arg`); returns the exit code.
function M.main(args)
  local parser = M.parser()
  local function install(p)
    p.error = usage_error
    for _, sub in ipairs(p._commands or {}) do install(sub) end
  end
  install(parser)
  local ok, res = pcall(function()
    local a = parser:parse(args)
    a.url = a.url or os.getenv("EVENTSTORE_URL")
    if a.url == nil or a.url == "" then a.url = "sqlite:events.db" end
    if type(a.rules) == "table" then a.rules = a.rules[1] end
    local cmd = commands[a.command]
    if not cmd then fail(EXIT.usage, "a command is required (eventstore --help lists them)") end
    if a.stream then
      local bad = check_name("stream name", a.stream)
      if bad then fail(EXIT.usage, bad) end
    end
    cmd(a)
  end)
  io.stdout:flush()
  if ok then return EXIT.ok end
  if getmetatable(res) == Failure then
    if res.usage then io.stderr:write(res.usage, "\n\n") end
    io.stderr:write("eventstore: ", res.message, "\n")
    return res.exit
  end
  if type(res) == "string" and res:find("interrupted!", 1, true) then
    io.stderr:write("\neventstore: interrupted\n")
    return M.EXIT.interrupted
  end
  io.stderr:write("eventstore: ", tostring(res), "\n")
  return EXIT.invalid
end

return M
