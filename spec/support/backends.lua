-- backends: every storage backend the conformance suite runs against
-- SPDX-License-Identifier: MIT
--
-- Each entry: { name, url, opts, backend, shared, file, pending, tag }.
--   name     describe() title (carries the busted tag for postgres)
--   url      the open URL; nil for the temp-file SQLite, which gets a new
--            file per test from M.open
--   backend  the expected stats().backend
--   shared   true when other runs and other writers use the same store: specs
--            then use unique names and compare deltas, never absolute counts
--   file     true when the store lives in a file that M.open creates
--   pending  set when the backend cannot run here, with the reason
local M = {}

local pg_url = os.getenv("EVENTSTORE_PG_URL")
if pg_url == "" then pg_url = nil end

M.list = {
  { name = "memory:", url = "memory:", opts = {}, backend = "memory" },
  { name = "sqlite::memory:", url = "sqlite::memory:", opts = {}, backend = "sqlite" },
  { name = "sqlite temp file", url = nil, opts = {}, backend = "sqlite", file = true },
  {
    name = "postgres #postgres", url = pg_url, opts = {}, backend = "postgres", shared = true,
    pending = not pg_url and "set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part" or nil,
  },
}

function M.get(name)
  for _, b in ipairs(M.list) do
    if b.name == name then return b end
  end
  error("no backend named " .. tostring(name), 2)
end

-- A fresh path for a SQLite file (os.tmpname creates it empty, which SQLite
-- accepts as a new database).
function M.tmpfile()
  return os.tmpname()
end

-- Removes a SQLite file and its companions.
function M.remove(path)
  if not path then return end
  for _, suffix in ipairs({ "", "-wal", "-shm", "-journal" }) do
    os.remove(path .. suffix)
  end
end

-- The URL to open for a backend; for the file backend a new temp file,
-- returned as the second value.
function M.url(b)
  if b.file then
    local path = M.tmpfile()
    return "sqlite:" .. path, path
  end
  return b.url, nil
end

-- open(b, opts): a fresh store of backend b (asserted), plus the file path
-- of a file backend. The caller closes the store and calls M.remove(path).
function M.open(b, opts)
  local eventstore = require("eventstore")
  local url, path = M.url(b)
  local o = {}
  for k, v in pairs(b.opts or {}) do o[k] = v end
  for k, v in pairs(opts or {}) do o[k] = v end
  local store, err = eventstore.open(url, o)
  if not store then
    M.remove(path)
    error("cannot open " .. tostring(url) .. ": " .. tostring(err), 2)
  end
  return store, path
end

-- Inside a describe: marks it pending (and returns false) when b cannot run
-- here; otherwise opens a fresh store of b (with opts) before every test,
-- hands it to set(store, path), and closes and removes it after the test.
function M.fresh(b, opts, set)
  -- busted gives spec files these as globals, but not the modules they require
  local busted = require("busted")
  if b.pending then
    busted.pending(b.pending)
    return false
  end
  local store, path
  busted.before_each(function()
    store, path = M.open(b, opts)
    set(store, path)
  end)
  busted.after_each(function()
    if store then store:close() end
    M.remove(path)
    store, path = nil, nil
    set(nil, nil)
  end)
  return true
end

-- The PostgreSQL URL of the run (nil when there is none), psql on it (raises
-- when it fails, returns its output), and the drop of a store's tables and
-- append function by prefix, for specs that work in a prefix of their own.
M.pg_url = pg_url

function M.psql(text)
  local procs = require("spec.support.procs")
  local rc, out = procs.sh("psql " .. procs.quote(pg_url) .. " -qAt -v ON_ERROR_STOP=1 -c " .. procs.quote(text))
  assert(rc == 0, "psql failed: " .. out)
  return out
end

function M.pg_drop(prefix)
  local t = {}
  for _, name in ipairs({ "events", "streams", "snapshots", "checkpoints", "outbox" }) do t[#t + 1] = prefix .. name end
  M.psql("DROP TABLE IF EXISTS " .. table.concat(t, ", ") .. " CASCADE; DROP FUNCTION IF EXISTS " ..
    prefix .. "append_v1, " .. prefix .. "append1_v1")
end

-- For a describe block on PostgreSQL: every test gets tables of its own
-- prefix (tag, a counter and a number from the clock and the generator,
-- which LuaJIT and Lua 5.1 do not seed), dropped after it. Returns a
-- table whose `prefix` is the current test's, and whose open() opens a
-- store there.
function M.pg_per_test(tag)
  local busted = require("busted")
  local t, n = {}, 0
  busted.before_each(function()
    n = n + 1
    t.prefix = string.format("%s%d_%d_", tag, n, (os.time() + math.random(1, 1e6)) % 1000000)
  end)
  busted.after_each(function() M.pg_drop(t.prefix) end)
  function t.open() return assert(require("eventstore").open(pg_url, { prefix = t.prefix })) end
  return t
end

-- describe(title, ...) for PostgreSQL specs whose tests each work in a
-- prefix of their own: pending without a server, else body(pg) with
-- pg_per_test(tag)'s table.
function M.pg_describe(title, tag, body)
  local busted = require("busted")
  busted.describe(title, function()
    if not pg_url then
      busted.pending("set EVENTSTORE_PG_URL (make test does) to run the PostgreSQL part")
      return
    end
    body(M.pg_per_test(tag))
  end)
end

return M
