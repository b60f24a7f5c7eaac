-- subprocess: runs Lua 5.4 child processes for the multi-process specs
-- SPDX-License-Identifier: MIT
--
-- A child runs `lua5.4` from the repository root with package.path
-- "lua/?.lua;lua/?/init.lua" and cpath "build/5.4/?.so" put first, on a
-- script written to a temp file; its arguments arrive in `...` and `arg`.
-- Everything it prints is captured.
local M = {}

M.lua = os.getenv("EVENTSTORE_LUA") or "lua5.4"

local PREAMBLE = 'package.path = "lua/?.lua;lua/?/init.lua;" .. package.path\n'
  .. 'package.cpath = "build/5.4/?.so;" .. package.cpath\n'

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The shell command that runs code with args (stderr joined to stdout).
local function command(code, args)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(PREAMBLE, code)
  f:close()
  local parts = { M.lua, quote(path) }
  for _, a in ipairs(args or {}) do parts[#parts + 1] = quote(a) end
  -- the exit status as the last line: Lua 5.1's pipe:close() does not give it
  return table.concat(parts, " ") .. " 2>&1; echo \"exit $?\"", path
end

local Child = {}
Child.__index = Child

--- Starts code in a child process; returns a handle whose :wait() gives
-- ok (exit status 0), the output, and the exit code.
function M.spawn(code, args)
  local cmd, path = command(code, args)
  local pipe = assert(io.popen(cmd, "r"))
  return setmetatable({ pipe = pipe, path = path }, Child)
end

function Child:wait()
  local out = self.pipe:read("*a")
  self.pipe:close()
  os.remove(self.path)
  local body, status = out:match("^(.-)exit (%d+)\n?$")
  if not body then return false, out, nil end
  status = tonumber(status)
  return status == 0, body, status
end

--- Runs code in a child process to its end: ok, output, exit code.
function M.run(code, args)
  return M.spawn(code, args):wait()
end

--- Runs code and fails (with its output) unless it exits 0; returns the output.
function M.check(code, args)
  local ok, out, status = M.run(code, args)
  assert(ok, "child process exited with " .. tostring(status) .. ":\n" .. out)
  return out
end

return M
