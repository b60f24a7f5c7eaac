-- cli_spec: bin/eventstore run as a subprocess, on SQLite and on PostgreSQL
-- SPDX-License-Identifier: MIT
--
-- Each test gets an empty store of its own: a new SQLite file, or on the
-- shared PostgreSQL database a new table prefix (--prefix), so counts and
-- export/import round trips can be compared whole.
local eventstore = require("eventstore")
local backends = require("spec.support.backends")
local fx = require("spec.support.fixtures")

local EXIT = { ok = 0, not_found = 1, usage = 2, conflict = 3, backend = 4, invalid = 5 }

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The shell command line for the CLI with args (a list). Sanitizer runs
-- preload their runtime: the subprocess needs none of it. No run may hang
-- the suite: each is bounded by timeout(1).
local function cmdline(args)
  local parts = { "unset LD_PRELOAD EVENTSTORE_URL;", "timeout -k 5 120", "bin/eventstore" }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  return table.concat(parts, " ")
end

-- run(args, input) -> exit code, stdout, stderr
local function run(args, input)
  local inp, outp, errp = os.tmpname(), os.tmpname(), os.tmpname()
  write_file(inp, input or "")
  local _, _, code = os.execute(cmdline(args) .. " <" .. q(inp) .. " >" .. q(outp) .. " 2>" .. q(errp))
  local out, err = fx.read_file(outp), fx.read_file(errp)
  os.remove(inp)
  os.remove(outp)
  os.remove(errp)
  return code, out, err
end

-- The non-empty lines of a text.
local function lines(text)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = line end
  return list
end

local function decode_lines(text)
  local list = {}
  for i, line in ipairs(lines(text)) do list[i] = assert(eventstore.json_decode(line)) end
  return list
end

-- Values that only an exact JSON path keeps (cjson would change several).
local function tricky(i)
  return {
    i = i,
    big = math.maxinteger - i,
    float = 2 ^ 53,
    tenth = 0.1,
    third = 1 / 3,
    integral_float = 3.0,
    negzero = -0.0,
    tiny = 5e-324,
    text = "caf\xc3\xa9 \xe2\x82\xac \0 \"quoted\"\n\ttab",
    list = { 1, "two", { three = 3 }, eventstore.array() },
    empty = {},
    null = eventstore.null,
    yes = true,
    no = false,
  }
end

local pg_url = backends.get("postgres #postgres").url
local prefix_counter = 0
local function new_prefix()
  prefix_counter = prefix_counter + 1
  return string.format("cli%s%d_", fx.token, prefix_counter)
end

-- Each entry makes a fresh empty store: { args (global CLI options), url,
-- opts (for eventstore.open in the spec), cleanup }.
local kinds = {
  {
    name = "sqlite file",
    fresh = function()
      local path = backends.tmpfile()
      local url = "sqlite:" .. path
      return { args = { "--url", url }, url = url, opts = {}, cleanup = function() backends.remove(path) end }
    end,
  },
  {
    name = "postgres #postgres",
    pending = not pg_url and "set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part" or nil,
    fresh = function()
      local prefix = new_prefix()
      return { args = { "--url", pg_url, "--prefix", prefix }, url = pg_url, opts = { prefix = prefix },
        cleanup = function() end }
    end,
  },
}

-- cli(store, ...) runs the CLI on that store: cli(s, "read", "a-1").
local function cli(s, ...)
  local args = {}
  for _, a in ipairs(s.args) do args[#args + 1] = a end
  local rest = { ... }
  local input
  if type(rest[#rest]) == "table" then input = table.remove(rest).input end
  for _, a in ipairs(rest) do args[#args + 1] = a end
  return run(args, input)
end

local function open(s)
  return assert(eventstore.open(s.url, s.opts))
end

for _, kind in ipairs(kinds) do
  describe("eventstore CLI on " .. kind.name, function()
    if kind.pending then
      pending(kind.pending)
      return
    end

    local s
    before_each(function() s = kind.fresh() end)
    after_each(function() s.cleanup() end)

    it("init creates the store and prints its size", function()
      local code, out, err = cli(s, "init")
      assert.are.equal(EXIT.ok, code, err)
      local info = assert(eventstore.json_decode(out))
      assert.are.equal(0, info.events)
      assert.are.equal(kind.name:match("^postgres") and "postgres" or "sqlite", info.backend)
      assert.is_nil(out:find(":es@", 1, true), "the password is masked")
    end)

    it("append takes one event from options, JSON Lines, one JSON event or an array", function()
      local code, out, err = cli(s, "append", "acct-1", "--type", "Opened", "--data", '{"owner":"ann","n":3}',
        "--metadata", '{"correlation_id":"c1"}', "--expected", "no_stream")
      assert.are.equal(EXIT.ok, code, err)
      local res = eventstore.json_decode(out)
      assert.are.same({ 1, 1 }, { res.revision, res.count })
      code, out, err = cli(s, "append", "acct-1", "-e", "1",
        { input = '{"type":"Deposited","data":{"amount":10}}\n\n{"type":"Deposited","data":{"amount":2.5}}\n' })
      assert.are.equal(EXIT.ok, code, err)
      assert.are.equal(3, eventstore.json_decode(out).revision)
      code, _, err = cli(s, "append", "acct-1", { input = '{\n  "type": "Withdrawn",\n  "data": { "amount": 1 }\n}\n' })
      assert.are.equal(EXIT.ok, code, err)
      code, _, err = cli(s, "append", "acct-1", "-e", "stream_exists",
        { input = '[{"type":"Noted"},{"type":"Noted","data":{"k":[]}}]' })
      assert.are.equal(EXIT.ok, code, err)

      local store = open(s)
      local evs = store:read("acct-1")
      store:close()
      assert.are.same({ "Opened", "Deposited", "Deposited", "Withdrawn", "Noted", "Noted" }, fx.types(evs))
      assert.are.equal(3, evs[1].data.n)
      assert.are.equal("integer", math.type(evs[1].data.n))
      assert.are.equal("float", math.type(evs[3].data.amount))
      assert.are.equal("c1", evs[1].metadata.correlation_id)
      assert.is_true(eventstore.is_array(evs[6].data.k))
    end)

    it("append: a wrong --expected is a conflict (exit 3) and writes nothing", function()
      assert.are.equal(EXIT.ok, (cli(s, "append", "acct-1", "-t", "Opened")))
      local code, out, err = cli(s, "append", "acct-1", "-t", "Opened", "-e", "no_stream")
      assert.are.equal(EXIT.conflict, code)
      assert.are.equal("", out)
      assert.matches("conflict", err)
      code = cli(s, "append", "acct-1", "-t", "Opened", "-e", "7")
      assert.are.equal(EXIT.conflict, code)
      local store = open(s)
      assert.are.equal(1, store:revision("acct-1"))
      store:close()
    end)

    it("append: a bad line is named (exit 5) and nothing is written", function()
      local code, _, err = cli(s, "append", "acct-1",
        { input = '{"type":"A"}\n{"type":"B"}\n{"type": nope}\n{"type":"D"}\n' })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 3", err)
      code, _, err = cli(s, "append", "acct-1", { input = '{"type":"A"}\n{"data":{}}\n' })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 2: type", err)
      code, _, err = cli(s, "append", "acct-1", { input = '{"type":"A","data":[1,2]}\n{"type":"B"}\n' })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 1: data must be a JSON object", err)
      code, _, err = cli(s, "append", "acct-1", "-t", "A", "--data", "{not json")
      assert.are.equal(EXIT.invalid, code)
      assert.matches("%-%-data", err)
      local store = open(s)
      assert.are.equal(0, store:revision("acct-1"))
      store:close()
    end)

    describe("with events", function()
      local ids
      before_each(function()
        local store = open(s)
        ids = {}
        for i = 1, 5 do
          local res = assert(store:append("acct-1", { type = i % 2 == 1 and "Deposited" or "Withdrawn",
            data = { amount = i } }))
          ids[#ids + 1] = res.events[1].id
          assert(store:append("user-" .. i, { type = "Registered", data = { name = "u" .. i, company =
            i <= 3 and "acme" or "globex", salary = 1000 * i } }))
        end
        store:close()
      end)

      it("read prints a stream as JSON Lines, with --from --to --backward --limit", function()
        local code, out, err = cli(s, "read", "acct-1")
        assert.are.equal(EXIT.ok, code, err)
        local evs = decode_lines(out)
        assert.are.same({ 1, 2, 3, 4, 5 }, fx.revisions(evs))
        assert.are.same(ids, fx.ids(evs))
        assert.are.equal("acct-1", evs[1].stream)
        assert.are.equal("integer", math.type(evs[1].timestamp))
        assert.is_true(fx.strictly_increasing(fx.positions(evs)))
        _, out = cli(s, "read", "acct-1", "--from", "2", "--to", "4")
        assert.are.same({ 2, 3, 4 }, fx.revisions(decode_lines(out)))
        _, out = cli(s, "read", "acct-1", "--backward", "--limit", "2")
        assert.are.same({ 5, 4 }, fx.revisions(decode_lines(out)))
        code, out = cli(s, "read", "nobody-1")
        assert.are.same({ EXIT.ok, "" }, { code, out })
      end)

      it("all prints every stream in global order, with --after --category --type --limit", function()
        local code, out, err = cli(s, "all")
        assert.are.equal(EXIT.ok, code, err)
        local evs = decode_lines(out)
        assert.are.equal(10, #evs)
        assert.is_true(fx.strictly_increasing(fx.positions(evs)))
        _, out = cli(s, "all", "--after", tostring(evs[6].position))
        assert.are.same({ evs[7].id, evs[8].id, evs[9].id, evs[10].id }, fx.ids(decode_lines(out)))
        _, out = cli(s, "all", "--category", "user")
        assert.are.same({ "user-1", "user-2", "user-3", "user-4", "user-5" }, fx.streams_of(decode_lines(out)))
        _, out = cli(s, "all", "-t", "Withdrawn", "-t", "Registered", "-n", "3")
        assert.are.same({ "Registered", "Withdrawn", "Registered" }, fx.types(decode_lines(out)))
      end)

      it("streams and stats", function()
        local code, out, err = cli(s, "streams")
        assert.are.equal(EXIT.ok, code, err)
        assert.are.same({ "acct-1", "user-1", "user-2", "user-3", "user-4", "user-5" }, lines(out))
        _, out = cli(s, "streams", "--category", "acct")
        assert.are.same({ "acct-1" }, lines(out))
        code, out, err = cli(s, "stats")
        assert.are.equal(EXIT.ok, code, err)
        local st = eventstore.json_decode(out)
        assert.are.same({ 10, 6 }, { st.events, st.streams })
      end)

      it("state folds a stream or a category --where with a rules file", function()
        local rules = os.tmpname()
        write_file(rules, [[
          return {
            ["*"] = "last",
            amount = "sum",
            salary = "sum",
            [eventstore.TYPES] = "types",
          }
        ]])
        local code, out, err = cli(s, "state", "acct-1", "--rules", rules)
        assert.are.equal(EXIT.ok, code, err)
        local res = eventstore.json_decode(out)
        assert.are.equal(5, res.revision)
        assert.are.equal(15, res.state.amount)
        assert.are.same({ "Deposited", "Withdrawn", "Deposited", "Withdrawn", "Deposited" }, res.state.types)
        code, out, err = cli(s, "state", "--category", "user", "--where", "company=acme", "-r", rules)
        assert.are.equal(EXIT.ok, code, err)
        assert.are.equal(6000, eventstore.json_decode(out).state.salary)
        code, out, err = cli(s, "state", "acct-1", "-r", rules, "--initial", '{"amount":100}')
        assert.are.equal(EXIT.ok, code, err)
        assert.are.equal(115, eventstore.json_decode(out).state.amount)
        write_file(rules, "return { amount = 'nonsense' }")
        code, _, err = cli(s, "state", "acct-1", "-r", rules)
        assert.are.equal(EXIT.invalid, code)
        assert.matches("unknown rule", err)
        os.remove(rules)
        code = cli(s, "state", "acct-1")
        assert.are.equal(EXIT.usage, code)
      end)

      it("snapshot prints the newest snapshot, or exits 1 when there is none", function()
        local code, out = cli(s, "snapshot", "acct-1")
        assert.are.same({ EXIT.not_found, "" }, { code, out })
        local store = open(s)
        assert(store:save_snapshot("acct-1", 2, { balance = -1 }, 1))
        assert(store:save_snapshot("acct-1", 4, { balance = 2, big = 2 ^ 53 }, 1))
        store:close()
        local err
        code, out, err = cli(s, "snapshot", "acct-1")
        assert.are.equal(EXIT.ok, code, err)
        local snap = eventstore.json_decode(out)
        assert.are.equal(4, snap.revision)
        fx.assert_exactly({ balance = 2, big = 2 ^ 53 }, snap.data)
        _, out = cli(s, "snapshot", "acct-1", "--max-revision", "3")
        assert.are.equal(2, eventstore.json_decode(out).revision)
      end)

      it("tail prints the events committed after it started, then --count ends it", function()
        local store = open(s)
        local after = store:stats().position
        local args = { table.unpack(s.args) }
        for _, a in ipairs({ "tail", "--after", tostring(after), "--count", "3", "--timeout", "20000" }) do
          args[#args + 1] = a
        end
        local p = assert(io.popen(cmdline(args)))
        assert(store:append("acct-1", { type = "Deposited", data = { amount = 6 } }))
        assert(store:append("user-9", { type = "Registered" }))
        assert(store:append("acct-1", { type = "Withdrawn", data = { amount = 7 } }))
        local out = p:read("a")
        local ok = p:close()
        store:close()
        assert.is_true(ok)
        local evs = decode_lines(out)
        assert.are.same({ "acct-1", "user-9", "acct-1" }, fx.streams_of(evs))
        assert.are.same({ 6, 7 }, { evs[1].data.amount, evs[3].data.amount })
      end)

      it("tail --category follows one category and --timeout ends it when nothing comes", function()
        local code, out, err = cli(s, "tail", "--after", "0", "--category", "acct", "--timeout", "300")
        assert.are.equal(EXIT.ok, code, err)
        assert.are.same(ids, fx.ids(decode_lines(out)))
      end)
    end)

    it("export | import into an empty store gives identical events", function()
      local store = open(s)
      local streams = { "order-1", "order-2", "x" }
      for i = 1, 40 do
        local meta = { correlation_id = eventstore.uuid(), n = i }
        assert(store:append(streams[i % 3 + 1], { type = "T" .. i % 4, data = tricky(i), metadata = meta }))
      end
      assert(store:append("order-1", { { type = "Batch" }, { type = "Batch", data = { last = true } } }))
      local before = store:read_all()
      store:close()

      local dst = kind.fresh()
      local code, out, err = cli(s, "export")
      assert.are.equal(EXIT.ok, code, err)
      assert.are.equal("", err, "no progress bar when stderr is not a terminal")
      assert.are.equal(#before, #lines(out))
      code, _, err = cli(dst, "import", "--batch", "7", { input = out })
      assert.are.equal(EXIT.ok, code, err)
      assert.matches("imported 42 events", err)

      local copy = open(dst)
      local after = copy:read_all()
      copy:close()
      dst.cleanup()
      assert.are.equal(#before, #after)
      for i, ev in ipairs(before) do
        local got = after[i]
        assert.are.same({ ev.id, ev.stream, ev.revision, ev.type }, { got.id, got.stream, got.revision, got.type })
        fx.assert_exactly(ev.data, got.data)
        fx.assert_exactly(ev.metadata, got.metadata)
      end
    end)

    it("export writes the same bytes every time (object keys sorted)", function()
      local store = open(s)
      for i = 1, 5 do assert(store:append("k-1", { type = "T", data = tricky(i), metadata = { z = 1, a = 2 } })) end
      store:close()
      local code, first, err = cli(s, "export")
      assert.are.equal(EXIT.ok, code, err)
      for _ = 1, 3 do
        local _, again = cli(s, "export")
        assert.are.equal(first, again)
      end
      assert.matches('"metadata":{"a":2,"z":1}', first, 1, true)
    end)

    it("export -o FILE and import FILE; a second import of the same file writes nothing", function()
      local store = open(s)
      for i = 1, 12 do assert(store:append("acct-" .. i % 2, { type = "T", data = { i = i } })) end
      store:close()
      local file = os.tmpname()
      local code, _, err = cli(s, "export", "-o", file)
      assert.are.equal(EXIT.ok, code, err)
      local dst = kind.fresh()
      code, _, err = cli(dst, "import", file)
      assert.are.equal(EXIT.ok, code, err)
      code, _, err = cli(dst, "import", file)
      assert.are.equal(EXIT.ok, code, err)
      assert.matches("12 of them were already there", err)
      local copy = open(dst)
      assert.are.equal(12, copy:stats().events)
      copy:close()
      dst.cleanup()
      os.remove(file)
    end)

    it("import: a bad line is named, its batch is not written, earlier batches are", function()
      local input = {}
      for i = 1, 9 do
        input[i] = string.format('{"id":"%s","stream":"imp-1","revision":%d,"type":"T","data":{"i":%d}}',
          eventstore.uuid(), i, i)
      end
      input[8] = '{"stream":"imp-1","revision":8,"type":"T","data":{"i":8}' -- unclosed
      local code, _, err = cli(s, "import", "--batch", "3", { input = table.concat(input, "\n") .. "\n" })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 8", err)
      local store = open(s)
      assert.are.equal(6, store:revision("imp-1"), "batches 1-2 written, batch 3 (lines 7-9) not")
      store:close()

      input[8] = '{"stream":"imp-1","revision":8,"type":"T","data":{"i":8},"colour":"red"}'
      code, _, err = cli(s, "import", "--batch", "3", { input = table.concat(input, "\n") })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 8: unknown event field", err)
      input[8] = '{"stream":"imp-1","revision":8,"type":"T","id":"not-a-uuid"}'
      code, _, err = cli(s, "import", { input = table.concat(input, "\n") })
      assert.are.equal(EXIT.invalid, code)
      assert.matches("line 8: id must be a UUID", err)
      store = open(s)
      assert.are.equal(6, store:revision("imp-1"))
      store:close()
    end)

    it("import resumes after a run cut short, whatever the batch sizes", function()
      local input = {}
      for i = 1, 9 do
        input[i] = string.format('{"id":"%s","stream":"res-1","revision":%d,"type":"T","data":{"i":%d}}',
          eventstore.uuid(), i, i)
      end
      local code, _, err = cli(s, "import", "--batch", "2", { input = table.concat(input, "\n", 1, 5) })
      assert.are.equal(EXIT.ok, code, err)
      code, _, err = cli(s, "import", "--batch", "4", { input = table.concat(input, "\n") })
      assert.are.equal(EXIT.ok, code, err)
      assert.matches("imported 9 events %(5 of them were already there%)", err)
      local store = open(s)
      local evs = store:read("res-1")
      store:close()
      assert.are.same(fx.range(1, 9), fx.revisions(evs))
      for i, ev in ipairs(evs) do assert.are.equal(i, ev.data.i) end
    end)

    it("import into a stream that already has other events is a conflict (exit 3)", function()
      local store = open(s)
      assert(store:append("imp-1", { type = "Other" }))
      store:close()
      local line = string.format('{"id":"%s","stream":"imp-1","revision":1,"type":"T"}', eventstore.uuid())
      local code, _, err = cli(s, "import", { input = line .. "\n" })
      assert.are.equal(EXIT.conflict, code)
      assert.matches("line 1", err)
    end)

    it("copy moves every event to another store, keeping ids, revisions and order", function()
      local store = open(s)
      for i = 1, 25 do assert(store:append("c-" .. i % 4, { type = "T", data = tricky(i) })) end
      local before = store:read_all()
      store:close()
      local dst_path = backends.tmpfile()
      local dst_url = "sqlite:" .. dst_path
      local args = { "copy", s.url, dst_url, "--batch", "10" }
      if s.opts.prefix then
        args[#args + 1] = "--src-prefix"
        args[#args + 1] = s.opts.prefix
      end
      local code, _, err = run(args)
      assert.are.equal(EXIT.ok, code, err)
      local copy = assert(eventstore.open(dst_url))
      local after = copy:read_all()
      copy:close()
      backends.remove(dst_path)
      assert.are.same(fx.ids(before), fx.ids(after))
      assert.are.same(fx.revisions(before), fx.revisions(after))
      for i, ev in ipairs(before) do fx.assert_exactly(ev.data, after[i].data) end
    end)

    it("usage errors exit 2 with the usage on stderr; --help exits 0", function()
      local code, out, err = cli(s, "frobnicate")
      assert.are.same({ EXIT.usage, "" }, { code, out })
      assert.matches("Usage:", err)
      code = cli(s, "read")
      assert.are.equal(EXIT.usage, code)
      code = cli(s, "read", "acct-1", "--from", "two")
      assert.are.equal(EXIT.usage, code)
      code, _, err = cli(s, "append", "acct-1", "-t", "T", "-e", "soon")
      assert.are.equal(EXIT.usage, code)
      assert.matches("%-%-expected", err)
      code = cli(s, "append", "acct-1", "--data", "{}")
      assert.are.equal(EXIT.usage, code)
      code = cli(s, "append", "acct-1", "somefile.jsonl", "--type", "T")
      assert.are.equal(EXIT.usage, code)
      code, _, err = cli(s, "read", "")
      assert.are.equal(EXIT.usage, code)
      assert.matches("stream name is empty", err)
      for _, c in ipairs({ "init", "append", "read", "all", "tail", "streams", "stats", "state", "snapshot",
        "export", "import", "copy" }) do
        code, out = run({ c, "--help" })
        assert.are.equal(EXIT.ok, code, c)
        assert.matches("Usage: eventstore " .. c, out)
      end
      code, out = run({ "--help" })
      assert.are.equal(EXIT.ok, code)
      assert.matches("Exit codes", out)
    end)
  end)
end

describe("eventstore CLI", function()
  it("copy from SQLite to PostgreSQL and back #postgres", function()
    if not pg_url then
      pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
      return
    end
    local path = backends.tmpfile()
    local src = "sqlite:" .. path
    local store = assert(eventstore.open(src))
    for i = 1, 30 do
      assert(store:append("mig-" .. i % 3, { type = "Migrated", data = tricky(i), metadata = { i = i } }))
    end
    local before = store:read_all()
    store:close()
    local prefix = new_prefix()
    local code, _, err = run({ "copy", src, pg_url, "--dst-prefix", prefix, "--batch", "8" })
    assert.are.equal(EXIT.ok, code, err)
    assert.matches("copied 30 events", err)
    local pg = assert(eventstore.open(pg_url, { prefix = prefix }))
    local mid = pg:read_all()
    pg:close()
    local back_path = backends.tmpfile()
    code, _, err = run({ "copy", pg_url, "sqlite:" .. back_path, "--src-prefix", prefix })
    assert.are.equal(EXIT.ok, code, err)
    local back = assert(eventstore.open("sqlite:" .. back_path))
    local after = back:read_all()
    back:close()
    backends.remove(path)
    backends.remove(back_path)
    for _, list in ipairs({ mid, after }) do
      assert.are.equal(#before, #list)
      for i, ev in ipairs(before) do
        local got = list[i]
        assert.are.same({ ev.id, ev.stream, ev.revision, ev.type }, { got.id, got.stream, got.revision, got.type })
        fx.assert_exactly(ev.data, got.data)
        fx.assert_exactly(ev.metadata, got.metadata)
      end
    end
  end)

  it("a store that cannot be opened is a backend failure (exit 4)", function()
    local code, _, err = run({ "--url", "sqlite:/nonexistent-dir/sub/x.db", "stats" })
    assert.are.equal(4, code)
    assert.matches("cannot open", err)
    code, _, err = run({ "--url", "postgresql://es:secret@127.0.0.1:1/none", "stats" })
    assert.are.equal(4, code)
    assert.is_nil(err:find("secret", 1, true), "the password is masked")
    code, _, err = run({ "--url", "postgresql://es@127.0.0.1:1/none?password=secret&connect_timeout=2", "stats" })
    assert.are.equal(4, code)
    assert.is_nil(err:find("secret", 1, true), "the password parameter is masked")
  end)

  it("EVENTSTORE_URL sets the default store", function()
    local path = backends.tmpfile()
    local _, _, code = os.execute("unset LD_PRELOAD; EVENTSTORE_URL=" .. q("sqlite:" .. path) ..
      " timeout 60 bin/eventstore append env-1 -t T >/dev/null")
    assert.are.equal(0, code)
    local store = assert(eventstore.open("sqlite:" .. path))
    assert.are.equal(1, store:revision("env-1"))
    store:close()
    backends.remove(path)
  end)

  it("shows a progress bar with events/s on a terminal only", function()
    local _, _, has_script = os.execute("command -v script >/dev/null")
    if has_script ~= 0 then
      pending("util-linux script(1) is needed to give the CLI a terminal")
      return
    end
    local path, out = backends.tmpfile(), os.tmpname()
    local store = assert(eventstore.open("sqlite:" .. path))
    for i = 1, 50 do assert(store:append("p-" .. i % 5, { type = "T", data = { i = i } })) end
    store:close()
    -- script(1) runs the command on a pseudo-terminal and copies what it shows
    local p = assert(io.popen("unset LD_PRELOAD; script -qec " ..
      q(cmdline({ "--url", "sqlite:" .. path, "export", "-o", out })) .. " /dev/null"))
    local shown = p:read("a")
    p:close()
    assert.matches("export", shown)
    assert.matches("50/50", shown)
    assert.matches("ev/s", shown)
    assert.are.equal(50, #lines(fx.read_file(out)))
    -- --quiet: nothing, even on a terminal
    p = assert(io.popen("unset LD_PRELOAD; script -qec " ..
      q(cmdline({ "--url", "sqlite:" .. path, "-q", "export", "-o", out })) .. " /dev/null"))
    shown = p:read("a")
    p:close()
    assert.is_nil(shown:find("ev/s", 1, true))
    -- events written to the terminal itself: no bar drawn over them
    p = assert(io.popen("unset LD_PRELOAD; script -qec " ..
      q(cmdline({ "--url", "sqlite:" .. path, "export" })) .. " /dev/null"))
    shown = p:read("a")
    p:close()
    assert.matches('"stream":"p%-', shown)
    assert.is_nil(shown:find("ev/s", 1, true))
    backends.remove(path)
    os.remove(out)
  end)

  it("the progress line shows the bar, the rate and the time left", function()
    local mod = require("eventstore.cli")
    local line = mod.progress_line("import", 250, 1000, 5)
    assert.matches("%[######%.+%]", line)
    assert.matches("250/1000", line)
    assert.matches("25.0%%", line)
    assert.matches("50 ev/s", line)
    assert.matches("left 0:15", line)
    assert.matches("1200 events", mod.progress_line("export", 1200, nil, 2))
  end)
end)

describe("eventstore.json_encode / json_decode (the CLI's JSON Lines)", function()
  it("round-trips values exactly: integers, every bit of floats, bytes, arrays, objects, null", function()
    local values = {
      3, 3.0, -0.0, 2 ^ 53, 2 ^ 53 + 1.0, math.maxinteger, math.mininteger, 0.1, 1 / 3, 5e-324, 1e308,
      "", "a\0b", "caf\xc3\xa9", true, false, eventstore.null, eventstore.array(), {},
      tricky(7), { nested = { { {} }, eventstore.array() } },
    }
    for _, v in ipairs(values) do
      local text = eventstore.json_encode(v)
      local back = eventstore.json_decode(text)
      fx.assert_exactly(v, back)
      -- a table's keys come out in Lua's order, so only scalars compare as text
      if type(v) ~= "table" then assert.are.equal(text, eventstore.json_encode(back)) end
    end
    assert.are.equal("3", eventstore.json_encode(3))
    assert.are.equal("3.0", eventstore.json_encode(3.0))
    assert.are.equal("[]", eventstore.json_encode(eventstore.array()))
    assert.are.equal("{}", eventstore.json_encode({}))
    assert.are.equal("9007199254740993", eventstore.json_encode(9007199254740993))
    -- sort_keys: one text for one value, nested objects too
    local v = { zeta = { y = 1, b = { 2.5, {} } }, alpha = eventstore.null, mid = "\0" }
    assert.are.equal('{"alpha":null,"mid":"\\u0000","zeta":{"b":[2.5,{}],"y":1}}',
      eventstore.json_encode(v, { sort_keys = true }))
    fx.assert_exactly(tricky(3), eventstore.json_decode(eventstore.json_encode(tricky(3), { sort_keys = true })))
  end)

  it("refuses what JSON cannot hold by raising, and bad text with nil, err", function()
    fx.raises(function() eventstore.json_encode({ a = { b = 0 / 0 } }) end, "a%.b: nan")
    fx.raises(function() eventstore.json_encode(print) end, "cannot store a function")
    fx.raises(function() eventstore.json_encode("\xff") end, "utf%-8")
    local cyclic = {}
    cyclic.self = cyclic
    fx.raises(function() eventstore.json_encode(cyclic) end, "cyclic")
    local v, err = eventstore.json_decode('{"a": 1,}')
    assert.is_nil(v)
    assert.are.equal("invalid", err.code)
    assert.matches("position", tostring(err))
    v, err = eventstore.json_decode("")
    assert.is_nil(v)
    assert.are.equal("invalid", err.code)
    fx.raises(function() eventstore.json_decode({}) end, "string expected")
  end)
end)
