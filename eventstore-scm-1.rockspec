rockspec_format = "3.0"
package = "eventstore"
version = "scm-1"
source = {
  url = "file://.",  -- built in place with `luarocks make`
}
description = {
  summary = "An event store for Lua with a C core: SQLite (embedded), memory and PostgreSQL",
  detailed = [[
Append-only event streams with optimistic concurrency, global ordering,
snapshots and a field-aggregating reducer run in C. Embedded on SQLite by
default, in memory for tests, and on PostgreSQL through libpq.
]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  SQLITE = { header = "sqlite3.h" },
  UUID = { header = "uuid/uuid.h" },
  JANSSON = { header = "jansson.h" },
  PQ = { header = "postgresql/libpq-fe.h" },
}
build = {
  type = "builtin",
  install = {
    bin = { eventstore = "bin/eventstore" },  -- the CLI (needs lua-argparse)
  },
  modules = {
    ["eventstore"] = "lua/eventstore/init.lua",
    ["eventstore.cli"] = "lua/eventstore/cli.lua",
    ["eventstore.core"] = {
      sources = {
        "csrc/error.c", "csrc/uuid.c", "csrc/json.c", "csrc/json_text.c", "csrc/store.c",
        "csrc/reduce.c", "csrc/reduce_num.c", "csrc/state.c",
        "backends/registry.c", "backends/memory.c", "backends/sqlite.c", "backends/sqlite_read.c",
        "backends/sqlite_sql.c", "backends/sqlite_wal.c",
        "backends/postgres.c", "backends/postgres_read.c", "backends/postgres_sql.c",
        "csrc/lua_append.c", "csrc/lua_error.c", "csrc/lua_encode.c", "csrc/lua_json.c", "csrc/lua_module.c", "csrc/lua_reducer.c", "csrc/lua_store.c", "csrc/lua_value.c",
      },
      defines = { "_DEFAULT_SOURCE", "ES_WITH_POSTGRES=1" },
      incdirs = { "csrc", "$(PQ_INCDIR)", "$(PQ_INCDIR)/postgresql", "$(JANSSON_INCDIR)", "$(SQLITE_INCDIR)", "$(UUID_INCDIR)" },
      libdirs = { "$(PQ_LIBDIR)", "$(JANSSON_LIBDIR)", "$(SQLITE_LIBDIR)", "$(UUID_LIBDIR)" },
      libraries = { "sqlite3", "uuid", "jansson", "pq" },
    },
  },
}
test = {
  type = "command",
  command = "make test",
}
