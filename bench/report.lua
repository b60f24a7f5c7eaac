-- report.lua: medians of the bench runs, the table against the bar, and bench/out/results.json
-- SPDX-License-Identifier: MIT
--
-- usage: lua5.4 bench/report.lua LINES.jsonl RESULTS.json
-- LINES holds the JSON lines printed by raw_sqlite, raw_pg and run.lua over
-- all runs. Rows below the bar are marked; with BENCH_STRICT=1 the exit
-- status is 3 when there is any.

local lines_path, out_path = arg[1], arg[2]
if not (lines_path and out_path) then
  io.stderr:write("usage: lua5.4 bench/report.lua LINES.jsonl RESULTS.json\n")
  os.exit(2)
end

-- Our own flat lines only: string values hold no quotes, numbers are plain.
local function parse(line)
  local obj = {}
  for k, v in line:gmatch('"([^"]+)":"([^"]*)"') do obj[k] = v end
  for k, v in line:gmatch('"([^"]+)":(%-?[%d][%d%.eE+%-]*)') do obj[k] = tonumber(v) end
  return obj.backend and obj.workload and obj or nil
end

local function median(xs)
  if #xs == 0 then return nil end
  table.sort(xs)
  local m = (#xs + 1) // 2
  if #xs % 2 == 1 then return xs[m] end
  return (xs[m] + xs[m + 1]) / 2
end

-- Which baseline each of our backends is held against, and the bar.
local BASELINE = {
  ["sqlite-full"] = "raw-sqlite-full",
  ["sqlite-normal"] = "raw-sqlite-normal",
  pg = "raw-pg",
}
local BAR = {
  sqlite = { W1 = 0.8, W2 = 0.6, W3 = 0.35, W4 = 0.35, W5 = 0.5 },
  pg = { W1 = 0.8, W2 = 0.6, W3 = 0.5, W4 = 0.5, W5 = 0.7 },
}
-- memory: 10x the best in-process peer of WORKLOAD.md on every workload
local PEERS = { W1 = 44621, W2 = 271008, W3 = 87144, W4 = 240457, W5 = 125142 }
local FOLD_BAR = 10        -- store:state() in C over store:read() + a plain-Lua fold
local EACH_RSS_BAR = 50    -- MB that iterating the whole W2 store may add
local GROWTH_BAR = 1.3     -- append cost at 1,000,000 events over the cost when empty
local EXPECTED_RUNS = tonumber(os.getenv("BENCH_RUNS") or "") or 3

local BACKENDS = { "raw-sqlite-full", "raw-sqlite-normal", "memory", "sqlite-full",
  "sqlite-normal", "raw-pg", "pg" }
-- W5-lua: store:read() + the W5 rules as a plain-Lua fold. C/Lua: W5 over
-- W5-lua, the reducer bar. fold: rules:fold() against the Lua fold on the very
-- same decoded tables (no store; informational).
local WORKLOADS = { "W1", "W2", "W3", "W4", "W5", "W5-lua", "C/Lua", "fold" }

local samples, status, failures = {}, {}, {}
local function slot(t, b, w)
  t[b] = t[b] or {}
  t[b][w] = t[b][w] or {}
  return t[b][w]
end

for line in io.lines(lines_path) do
  local o = parse(line)
  if o and o.status == "failed" then
    failures[#failures + 1] = string.format("  %-18s %s: %s", o.backend, o.workload, o.reason or "")
  elseif o and o.status then
    slot(status, o.backend, o.workload).why = o.status .. ": " .. (o.reason or "")
  elseif o then
    local s = slot(samples, o.backend, o.workload)
    if o.run and o.events_per_s then
      s.by_run = s.by_run or {}
      s.by_run[o.run] = o.events_per_s
    end
    for k, v in pairs(o) do
      if type(v) == "number" then
        s[k] = s[k] or {}
        table.insert(s[k], v)
      end
    end
  end
end

local function med(b, w, k)
  local s = samples[b] and samples[b][w]
  return s and s[k] and median(s[k])
end

-- The ratio to a baseline is taken within each run (the same minutes of a
-- noisy machine), then the median over runs, as WORKLOAD.md asks; the
-- lowest and highest of the runs' ratios come second and third. A fixed
-- baseline (a peer's figure) divides every run alike.
local function run_ratio(b, w, base_b, base_w, fixed)
  local s = samples[b] and samples[b][w]
  local t = samples[base_b] and samples[base_b][base_w]
  local rs = {}
  if not (s and s.by_run and (fixed or (t and t.by_run))) then return nil end
  for run, eps in pairs(s.by_run) do
    local base = fixed or t.by_run[run]
    if base and base > 0 then rs[#rs + 1] = eps / base end
  end
  if #rs == 0 then return nil end
  return median(rs), math.min(table.unpack(rs)), math.max(table.unpack(rs))
end

local function runs(b, w)
  local s = samples[b] and samples[b][w]
  return s and s.events_per_s and #s.events_per_s or 0
end

local rows, below = {}, 0
for _, b in ipairs(BACKENDS) do
  for _, w in ipairs(WORKLOADS) do
    local eps = med(b, w == "C/Lua" and "W5" or w, "events_per_s")
    if w == "C/Lua" and not med(b, "W5-lua", "events_per_s") then eps = nil end
    if eps and w == "C/Lua" and b:match("^raw%-") then eps = nil end
    if eps then
      local row = { backend = b, workload = w, events_per_s = eps,
        peak_rss_mb = med(b, w, "peak_rss_mb"), runs = runs(b, w) }
      if w == "C/Lua" then
        row.baseline_events_per_s = med(b, "W5-lua", "events_per_s")
        row.baseline = "store:read() + plain-Lua fold"
        row.ratio, row.ratio_min, row.ratio_max = run_ratio(b, "W5", b, "W5-lua")
        row.bar = FOLD_BAR
        row.runs = runs(b, "W5")
      elseif w == "fold" then
        row.baseline_events_per_s = med(b, w, "lua_events_per_s")
        row.baseline = "plain-Lua fold over the same tables"
      elseif b:match("^raw%-") then
        row.baseline_events_per_s = eps
        row.baseline = b
        if w == "W2" and b == "raw-pg" then
          row.insert_events_per_s = med(b, w, "insert_events_per_s")
          row.copy_events_per_s = med(b, w, "copy_events_per_s")
        end
      elseif b == "memory" then
        local base = PEERS[w] or PEERS.W5
        row.baseline_events_per_s = base
        row.baseline = "best in-process peer"
        row.ratio, row.ratio_min, row.ratio_max = run_ratio(b, w, nil, nil, base)
        if PEERS[w] then row.bar = 10 end
      else
        local raw = BASELINE[b]
        row.baseline = raw
        local base_w = w == "W5-lua" and "W5" or w
        row.baseline_events_per_s = med(raw, base_w, "events_per_s")
        row.ratio, row.ratio_min, row.ratio_max = run_ratio(b, w, raw, base_w)
        if w ~= "W5-lua" then row.bar = BAR[b:match("^sqlite") and "sqlite" or "pg"][w] end
      end
      if w == "fold" then
        row.ratio = med(b, w, "c_over_lua")
      elseif not row.ratio and row.baseline_events_per_s and row.baseline_events_per_s > 0 then
        row.ratio = eps / row.baseline_events_per_s
      end
      row.order_violations = med(b, w, "order_violations")
      row.below = row.bar ~= nil and (row.ratio == nil or row.ratio < row.bar)
      if row.below then below = below + 1 end
      rows[#rows + 1] = row
    else
      local st = status[b] and status[b][w]
      if st then rows[#rows + 1] = { backend = b, workload = w, note = st.why } end
    end
  end
end

local function commas(x)
  local s = string.format("%.0f", x)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function num(x, fmt)
  if x == nil then return "-" end
  return fmt and string.format(fmt, x) or commas(x)
end

-- the runs' lowest and highest ratio, when there are several
local function range(r)
  if not (r.ratio_min and r.ratio_max and r.runs and r.runs > 1) then return "" end
  local f = r.ratio_max >= 10 and "%.1f" or "%.2f"
  return string.format(f .. "-" .. f, r.ratio_min, r.ratio_max)
end

local fmt = "%-18s %-7s %12s %14s %8s %11s %7s %8s  %s\n"
io.write(string.format(fmt, "backend", "load", "events/s", "baseline/s", "ratio", "min-max", "bar",
  "RSS MB", ""))
io.write(string.rep("-", 98), "\n")
for _, r in ipairs(rows) do
  if r.note then
    io.write(string.format(fmt, r.backend, r.workload, "-", "-", "-", "", "-", "-", r.note))
  else
    local mark = {}
    if r.below then mark[#mark + 1] = "BELOW BAR" end
    if r.order_violations and r.order_violations > 0 then
      mark[#mark + 1] = string.format("%d order violations", r.order_violations)
    end
    if r.insert_events_per_s then
      mark[#mark + 1] = string.format("insert %s, copy %s", commas(r.insert_events_per_s),
        commas(r.copy_events_per_s))
    end
    if r.workload == "C/Lua" then mark[#mark + 1] = "state() / read()+Lua fold" end
    if r.workload == "fold" then mark[#mark + 1] = "rules:fold() / Lua fold, same tables" end
    if r.runs < EXPECTED_RUNS then mark[#mark + 1] = string.format("only %d run(s)", r.runs) end
    local bar = r.bar and (r.bar >= 10 and string.format(">=%dx", r.bar) or string.format(">=%.2f", r.bar)) or ""
    local raw = r.backend:match("^raw%-") and r.workload ~= "fold"
    io.write(string.format(fmt, r.backend, r.workload, num(r.events_per_s),
      raw and "-" or num(r.baseline_events_per_s), raw and "-" or num(r.ratio, "%.2f"),
      raw and "" or range(r), bar,
      num(r.peak_rss_mb, "%.1f"),
      table.concat(mark, "; ")))
  end
end

-- Rows against their floor, timed in the store's process by bench/lbench.c
-- with the same inputs and checks. tables-W3 and tables-W4 are the Lua
-- tables a read returns, built in C with no storage and no JSON; json-W2 is
-- the JSON text of every appended event's data and metadata, checked as
-- UTF-8 and written from the caller's tables by the store's own code, and
-- an id for each event, with no other checks and no storage. A row must do
-- its floor and the storage work: at least what the raw loop does per
-- event where that work runs in the same call's path
-- (SQLite's reads run in the client process, and the store's own C cursor
-- reads W3 and W4 as fast as the raw loop; an append writes its JSON before
-- it stores, on either engine). When the floor alone takes longer than the
-- bar leaves after that, no store of that kind reaches the bar on that run.
-- PostgreSQL's server works while the client builds tables, so only the
-- tables count for its reads.
--
-- floor-W1 is PostgreSQL's single append reduced to what a store with this
-- one's guarantees must do, timed by the raw loop's program on the same
-- server after its W5 (bench/raw_pg.c: lock, expected revision, next
-- position, one insert under unique position, id and (stream, revision)
-- keys). It holds the storage work itself, so nothing is added to it. An
-- fsync's time drifts within seconds, so raw_pg times the floor side by
-- side with W1's own INSERT (raw_events_per_s on its line), and the bar is
-- taken from that pair.
local FLOOR = { W2 = "json-W2", W3 = "tables-W3", W4 = "tables-W4" }
local floors = {}
for _, r in ipairs(rows) do
  local floor_eps
  local base_eps = r.baseline_events_per_s
  if r.workload == "W1" and r.backend == "pg" then
    floor_eps = med(BASELINE[r.backend], "floor-W1", "events_per_s")
    base_eps = med(BASELINE[r.backend], "floor-W1", "raw_events_per_s") or base_eps
  else
    floor_eps = FLOOR[r.workload] and med(r.backend, FLOOR[r.workload], "events_per_s")
  end
  if floor_eps and r.bar and base_eps then
    local bar_eps = r.bar * base_eps
    local f = { backend = r.backend, workload = r.workload, bar_eps = bar_eps, budget = 1e6 / bar_eps,
      floor = 1e6 / floor_eps, ours = 1e6 / r.events_per_s, floor_eps = floor_eps,
      kind = r.workload == "W1" and "sql" or r.workload == "W2" and "json" or "tables" }
    if f.kind == "sql" then f.floor_ratio, f.side_eps = floor_eps / base_eps, base_eps end
    local serial = r.backend:match("^sqlite") or (f.kind == "json" and r.backend == "pg")
    f.storage = serial and 1e6 / r.baseline_events_per_s or 0
    f.out_of_reach = f.floor > f.budget - f.storage
    f.row = r
    floors[#floors + 1] = f
    r.floor = f
  end
end
-- The reducer bar asks state() for 10x store:read() + a Lua fold. On SQLite
-- and PostgreSQL state() must read the same rows as the raw W5 loop at
-- least: when 10x the Lua side is faster than that loop, no reducer
-- reaches the bar on that run.
local reducer = {}
for _, r in ipairs(rows) do
  if r.workload == "C/Lua" and r.baseline_events_per_s and BASELINE[r.backend] then
    local raw = med(BASELINE[r.backend], "W5", "events_per_s")
    if raw then
      r.reducer = { needed = FOLD_BAR * r.baseline_events_per_s, raw = raw }
      r.reducer.out_of_reach = r.reducer.needed > raw
      reducer[#reducer + 1] = r
    end
  end
end

local function print_floors(kind, title, what)
  local ffmt = "  %-14s %-3s %11s %8s %6s %7s %6s  %s\n"
  local header = false
  for _, f in ipairs(floors) do
    if f.kind == kind then
      if not header then
        io.write(title)
        io.write(string.format(ffmt, "backend", "", "bar ev/s", "allowed", "raw", kind, "ours", ""))
        header = true
      end
      local why = f.out_of_reach and ("out of reach: " .. what .. " alone take longer than the bar leaves")
        or (f.backend == "pg" and kind == "tables" and "not excluded (the server works while the client builds)"
          or "not excluded")
      io.write(string.format(ffmt, f.backend, f.workload, commas(f.bar_eps), string.format("%.2f", f.budget),
        f.storage > 0 and string.format("%.2f", f.storage) or "-", string.format("%.2f", f.floor),
        string.format("%.2f", f.ours), why))
    end
  end
end
-- The floor of a single append is timed in the raw loop's program, side by
-- side with the raw INSERT, so it is shown as that pair's ratio; ours is
-- the row's own ratio to its raw W1.
for _, f in ipairs(floors) do
  if f.kind == "sql" then
    io.write("\nsingle appends against a floor of one on the same server (ratios to the raw INSERT; the floor:"
      .. " a plpgsql\nfunction that takes the lock, checks the expected revision, takes the next position and"
      .. " inserts the\nevent under unique position, id and (stream, revision) keys, data and metadata as json;"
      .. " no category\nindex, streams table or NOTIFY; timed by bench/raw_pg side by side with W1's INSERT)\n")
    local ffmt = "  %-14s %-3s %6s %6s %6s  %s\n"
    io.write(string.format(ffmt, "backend", "", "bar", "floor", "ours", ""))
    local r = f.row
    io.write(string.format(ffmt, f.backend, f.workload, string.format("%.2f", r.bar),
      string.format("%.2f", f.floor_ratio), r.ratio and string.format("%.2f", r.ratio) or "-",
      f.out_of_reach and "out of reach: the floor alone is below the bar" or "not excluded"))
  end
end
print_floors("json", "\nappends against the cost of their JSON and ids alone (us/event; json: data and metadata checked"
  .. " as UTF-8\nand written from the caller's tables by the store's own code, an id an event, no other checks, no"
  .. " storage;\nraw: the raw loop's storage work)\n", "the texts and ids")
print_floors("tables", "\nreads against the cost of their Lua tables alone (us/event; tables: built in C, no storage,"
  .. " no JSON,\nin the store's process; raw: the raw loop's storage work, which SQLite's reads also do in the"
  .. " client)\n", "the tables")

if #reducer > 0 then
  io.write("\nthe reducer bar against the raw W5 loop (state() reads what that loop reads, at least)\n")
  for _, r in ipairs(reducer) do
    io.write(string.format(
      "  %-14s state() would need %s events/s (%dx store:read() + Lua fold); the raw W5 loop reads %s%s\n",
      r.backend, commas(r.reducer.needed), FOLD_BAR, commas(r.reducer.raw),
      r.reducer.out_of_reach and ": out of reach" or ""))
  end
end

-- each(): RSS added over the floor, against the 50 MB bar
local each_lines = {}
for _, b in ipairs(BACKENDS) do
  local added = med(b, "each", "rss_added_mb")
  if added then
    local over = added > EACH_RSS_BAR
    if over then below = below + 1 end
    each_lines[#each_lines + 1] = string.format("  %-14s each() over the whole W2 store adds %.1f MB%s",
      b, added, over and "  ABOVE BAR" or "")
  end
end
if #each_lines > 0 then
  io.write(string.format("\npeak RSS added by iteration (bar: <= %d MB)\n", EACH_RSS_BAR),
    table.concat(each_lines, "\n"), "\n")
end
-- growth: one append on a store of 1,000,000 events against one on an empty store
local growth = {}
for _, b in ipairs(BACKENDS) do
  local s = samples[b] and samples[b].growth
  if s and s.full_us_per_event then
    local g = { backend = b, empty = median(s.empty_us_per_event), full = median(s.full_us_per_event),
      fill = median(s.fill_events), peak = s.peak_rss_mb and median(s.peak_rss_mb) }
    -- each run's own ratio (its empty and full probes share its minutes),
    -- then the median over runs
    g.cost = s.ratio and median(s.ratio) or g.full / g.empty
    g.runs = #s.full_us_per_event
    g.over = g.cost > GROWTH_BAR
    if g.over then below = below + 1 end
    growth[#growth + 1] = g
  end
end
if #growth > 0 then
  io.write(string.format("\nappend cost, empty store vs %s events (bar: <= %.1fx)\n",
    commas(growth[1].fill), GROWTH_BAR))
  for _, g in ipairs(growth) do
    io.write(string.format("  %-14s %8.1f us/event empty, %8.1f us/event full: %.2fx%s%s\n",
      g.backend, g.empty, g.full, g.cost, g.runs > 1 and string.format(" (median of %d runs)", g.runs) or "",
      g.over and "  ABOVE BAR" or ""))
  end
end

if #failures > 0 then
  io.write("\nfailed runs (their rows are missing or have fewer runs)\n", table.concat(failures, "\n"), "\n")
end
io.write(string.format("\n%d row(s) below the bar\n", below))

-- results.json: one object per backend x workload
local function jnum(x)
  if x == nil then return "null" end
  if math.type(x) == "integer" then return tostring(x) end
  return string.format("%.4f", x)
end
local function jstr(s) return '"' .. tostring(s):gsub('[%c"\\]', " ") .. '"' end

local parts = {}
for _, r in ipairs(rows) do
  local fields = {
    '"backend":' .. jstr(r.backend),
    '"workload":' .. jstr(r.workload),
    '"events_per_s":' .. jnum(r.events_per_s),
    '"baseline_events_per_s":' .. jnum(r.baseline_events_per_s),
    '"ratio":' .. jnum(r.ratio),
    '"ratio_min":' .. jnum(r.ratio_min),
    '"ratio_max":' .. jnum(r.ratio_max),
    '"peak_rss_mb":' .. jnum(r.peak_rss_mb),
  }
  if r.baseline then fields[#fields + 1] = '"baseline":' .. jstr(r.baseline) end
  if r.bar then
    fields[#fields + 1] = '"bar":' .. jnum(r.bar)
    fields[#fields + 1] = '"below_bar":' .. tostring(r.below)
  end
  if r.runs then fields[#fields + 1] = '"runs":' .. jnum(r.runs) end
  if r.order_violations then fields[#fields + 1] = '"order_violations":' .. jnum(r.order_violations) end
  if r.insert_events_per_s then
    fields[#fields + 1] = '"insert_events_per_s":' .. jnum(r.insert_events_per_s)
    fields[#fields + 1] = '"copy_events_per_s":' .. jnum(r.copy_events_per_s)
  end
  if r.note then fields[#fields + 1] = '"note":' .. jstr(r.note) end
  if r.floor then
    local f = r.floor
    fields[#fields + 1] = '"' .. f.kind .. '_events_per_s":' .. jnum(f.floor_eps)
    fields[#fields + 1] = '"bar_events_per_s":' .. jnum(f.bar_eps)
    fields[#fields + 1] = '"bar_us_per_event":' .. jnum(f.budget)
    fields[#fields + 1] = '"raw_us_per_event":' .. jnum(f.storage > 0 and f.storage or nil)
    fields[#fields + 1] = '"' .. f.kind .. '_us_per_event":' .. jnum(f.floor)
    if f.floor_ratio then
      fields[#fields + 1] = '"side_raw_events_per_s":' .. jnum(f.side_eps)
      fields[#fields + 1] = '"' .. f.kind .. '_ratio":' .. jnum(f.floor_ratio)
    end
    fields[#fields + 1] = '"out_of_reach":' .. tostring(f.out_of_reach)
  end
  if r.reducer then
    fields[#fields + 1] = '"state_needed_events_per_s":' .. jnum(r.reducer.needed)
    fields[#fields + 1] = '"raw_w5_events_per_s":' .. jnum(r.reducer.raw)
    fields[#fields + 1] = '"out_of_reach":' .. tostring(r.reducer.out_of_reach)
  end
  parts[#parts + 1] = "  {" .. table.concat(fields, ", ") .. "}"
end
for _, b in ipairs(BACKENDS) do
  local added = med(b, "each", "rss_added_mb")
  if added then
    parts[#parts + 1] = string.format(
      '  {"backend":%s, "workload":"each", "events_per_s":%s, "baseline_events_per_s":null, '
      .. '"ratio":null, "peak_rss_mb":%s, "rss_added_mb":%s, "bar_rss_added_mb":%d}',
      jstr(b), jnum(med(b, "each", "events_per_s")), jnum(med(b, "each", "peak_rss_mb")),
      jnum(added), EACH_RSS_BAR)
  end
end
for _, g in ipairs(growth) do
  parts[#parts + 1] = string.format(
    '  {"backend":%s, "workload":"growth", "events_per_s":%s, "baseline_events_per_s":%s, '
    .. '"ratio":%s, "peak_rss_mb":%s, "fill_events":%s, "empty_us_per_event":%s, '
    .. '"full_us_per_event":%s, "cost_ratio":%s, "bar_cost_ratio":%.1f}',
    jstr(g.backend), jnum(1e6 / g.full), jnum(1e6 / g.empty), jnum(1 / g.cost), jnum(g.peak),
    jnum(g.fill), jnum(g.empty), jnum(g.full), jnum(g.cost), GROWTH_BAR)
end
local f = assert(io.open(out_path, "w"))
f:write("[\n", table.concat(parts, ",\n"), "\n]\n")
f:close()
os.exit((below == 0 or os.getenv("BENCH_STRICT") ~= "1") and 0 or 3)
