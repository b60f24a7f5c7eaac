-- luacheck configuration (Debian's lua-check): `make lint`
std = "lua54"
max_line_length = 120
-- vendored or generated trees are not ours to lint
exclude_files = { "build/**", "lua_modules/**", ".luarocks/**" }

-- busted specs; some also run under LuaJIT and look at its `jit` table
files["spec"] = { std = "+busted", read_globals = { "jit" } }
-- the OpenResty example runs inside nginx, where `ngx` is a global; luacheck's
-- ngx_lua predates ngx.run_worker_thread (lua-nginx-module 0.10.21)
stds.ngx_newer = { read_globals = { ngx = { fields = { "run_worker_thread" } } } }
files["examples/openresty"] = { std = "+ngx_lua+ngx_newer" }
