-- procs: shell helpers for the reliability specs (crash, contention, disk full, hostile)
-- SPDX-License-Identifier: MIT
--
-- Child Lua processes are always `lua5.4` on the 5.4 build of the module
-- (build/5.4, or ES_CHILD_CPATH), whatever interpreter runs busted: they are
-- programs using the store, not the binding under test. Every command is
-- bounded by timeout(1) so that no child can hang the suite. Written in Lua
-- 5.1 syntax (the specs also run under LuaJIT).
local M = {}

M.lua = os.getenv("EVENTSTORE_LUA") or "lua5.4"
M.cpath = os.getenv("ES_CHILD_CPATH") or "build/5.4/?.so"

function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- sh(cmd) -> exit code, output (stdout and stderr). Works on every Lua
-- (os.execute's results differ between 5.1 and 5.2+). The commands run
-- without the sanitizer runtime a parent may preload (make asan): under it
-- LeakSanitizer fails tools such as mktemp at exit.
function M.sh(cmd)
  local p = assert(io.popen("unset LD_PRELOAD; { " .. cmd .. "\n} 2>&1; echo \"@rc=$?\"", "r"))
  local out = p:read("*a")
  p:close()
  local body, rc = out:match("^(.-)@rc=(%d+)\n?$")
  if not body then return -1, out end
  return tonumber(rc), body
end

-- sqlite3(path, sql): the sqlite3 CLI on a database file; true and its
-- output, or false and the error. sqlite3_ok raises on failure.
function M.sqlite3(path, sql)
  local rc, out = M.sh("sqlite3 " .. M.quote(path) .. " " .. M.quote(sql))
  return rc == 0, out
end

function M.sqlite3_ok(path, sql)
  local ok, out = M.sqlite3(path, sql)
  assert(ok, "sqlite3 CLI failed (apt-get install sqlite3): " .. out)
  return out
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- A fresh temp folder (removed with M.rmdir).
function M.tmpdir()
  local rc, out = M.sh("mktemp -d /tmp/eventstore-rel.XXXXXX")
  assert(rc == 0, out)
  return (out:gsub("%s+$", ""))
end

function M.rmdir(dir)
  if dir and dir:match("^/tmp/eventstore%-rel%.") then M.sh("rm -rf " .. M.quote(dir)) end
end

-- The environment prefix that runs a child on the 5.4 module without the
-- sanitizer runtime a parent may have preloaded.
M.env = "env -u LD_PRELOAD LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH=" .. "'" .. M.cpath .. ";;'"

-- The command line that runs a Lua script file with arguments.
function M.lua_cmd(script, args)
  local parts = { M.env, M.lua, M.quote(script) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = M.quote(a) end
  return table.concat(parts, " ")
end

-- Runs a Lua script (text) in a child to its end, bounded by `limit`
-- seconds: exit code, output.
function M.run_lua(code, args, limit)
  local path = os.tmpname()
  M.write_file(path, code)
  local rc, out = M.sh("timeout -k 5 " .. (limit or 120) .. " " .. M.lua_cmd(path, args))
  os.remove(path)
  return rc, out
end

-- Starts several scripts at once (each a { code, args } pair), then runs
-- the shell command `after` (if any) while they run, and waits for all of
-- them: a list of { rc, out }.
function M.run_all(list, limit, after)
  local dir = M.tmpdir()
  local parts = {}
  for i, job in ipairs(list) do
    local script = dir .. "/job" .. i .. ".lua"
    M.write_file(script, job[1])
    parts[#parts + 1] = string.format("( timeout -k 5 %d %s >%s/out%d 2>&1; echo $? >%s/rc%d ) &",
      limit or 120, M.lua_cmd(script, job[2]), dir, i, dir, i)
  end
  if after then parts[#parts + 1] = after end
  parts[#parts + 1] = "wait"
  M.sh(table.concat(parts, "\n"))
  local res = {}
  for i = 1, #list do
    res[i] = { rc = tonumber(M.read_file(dir .. "/rc" .. i) or "") or -1, out = M.read_file(dir .. "/out" .. i) or "" }
  end
  M.rmdir(dir)
  return res
end

return M
