--- The store handle that `eventstore.open` returns.
-- Its methods are implemented in C (`csrc/lua_store.c`, `csrc/lua_append.c`,
-- `csrc/lua_reducer.c`);
-- the Lua layer adds `each` (`lua/eventstore/init.lua`), `subscribe`
-- (`eventstore.subscription`), `on_append` and `dispatch` (`eventstore.publish`).
-- Extend it through `eventstore.Store`.
--
-- Programmer errors (wrong argument types, an unknown option, a value JSON
-- cannot hold, a closed store) raise a string naming the argument. Expected
-- failures return `nil, err` with `err = { code, message[, expected, actual] }`
-- (`code`: `"conflict"`, `"backend"`, `"busy"`, `"readonly"`, ...) and a
-- `__tostring`. A failed call leaves the store as it was.
--
-- This file holds documentation only; it is read by LDoc (`make docs`), never loaded.
-- @classmod Store

--- Appends one event or a list of events to a stream, atomically.
-- Each event is `{ type = "Name", data = {}, metadata = {}, id = uuid }`
-- (`data`, `metadata` and `id` optional; events read from a store may be
-- appended as they are). Appending again events whose ids are stored at the
-- same place is an idempotent no-op (`res.idempotent`); the same id
-- elsewhere is a conflict.
-- @function Store:append
-- @string stream the stream name (non-empty UTF-8, at most 255 bytes)
-- @tparam table events an event table or a non-empty list of them
-- @tparam[opt] table opts `{ expected = eventstore.ANY | eventstore.NO_STREAM | eventstore.STREAM_EXISTS | revision }`
-- @treturn table `{ revision, position, count, events[, idempotent][, publish_errors] }`; `events`
--   are the committed events (ids, revisions, positions, with your data tables), built when first read
--   (a single-event append's result read after 64 later single appends on the handle reads its event
--   back from the store, with data and metadata read back; an error once the store is closed);
--   `publish_errors` lists the `on_append` listeners that raised
-- @return nil, err on a wrong expected revision (`err.code == "conflict"`, `err.expected`, `err.actual`) or a failure
-- @usage local res = assert(store:append("account-42", { type = "Deposited", data = { amount = 10 } },
--   { expected = 1 }))

--- Reads a stream, in revision order (or backward).
-- A missing stream reads as `{}`; omitted `data`/`metadata` read back as `{}`.
-- @function Store:read
-- @string stream the stream name
-- @tparam[opt] table opts `{ from = 1, to = nil, backward = false, limit = nil }` (`from` and `to` inclusive)
-- @treturn {table,...} events `{ id, stream, revision, position, type, data, metadata, timestamp }`
-- @return nil, err on a backend failure

--- Reads every stream in global (position) order.
-- @function Store:read_all
-- @tparam[opt] table opts `{ after = 0, limit = nil, category = nil, types = nil, since = nil }`;
-- `types` is a type name or a list of them, `since` a timestamp in ms
-- @treturn {table,...} events
-- @return nil, err

--- Events stamped at or after a time, in global order.
-- @function Store:since
-- @int timestamp milliseconds since the epoch (see `eventstore.now`)
-- @tparam[opt] table opts `{ limit, category, types, after }`
-- @treturn {table,...} events
-- @return nil, err

--- The names of the streams, sorted.
-- @function Store:streams
-- @tparam[opt] table opts `{ category = "account" }`
-- @treturn {string,...} names
-- @return nil, err

--- The newest event of a stream.
-- @function Store:last
-- @string stream the stream name
-- @treturn ?table the event, or nil when the stream does not exist

--- The event with an id.
-- @function Store:event
-- @string id a UUID
-- @treturn ?table the event, or nil

--- The revision of a stream: 0 when it does not exist.
-- @function Store:revision
-- @string stream the stream name
-- @treturn int revision
-- @return nil, err

--- Counts: `{ events, streams, snapshots, position, backend }`.
-- @function Store:stats
-- @treturn table stats
-- @return nil, err

--- Stores a snapshot of a stream's state at a revision. Returns true.
-- `max_snapshots` (an open option) keeps only the newest K per stream.
-- @function Store:save_snapshot
-- @string stream the stream name
-- @int revision the revision the state includes
-- @tparam table data the state
-- @int[opt=0] version the version of the state's shape, for the caller to judge
-- @treturn boolean true
-- @return nil, err

--- The newest snapshot of a stream, at or below `max_revision`.
-- @function Store:snapshot
-- @string stream the stream name
-- @tparam[opt] table opts `{ max_revision = nil }`
-- @treturn ?table `{ stream, revision, version, timestamp, data }` or nil
-- @return nil, err

--- The state of a stream (or of a context across streams) folded with a reducer.
-- Starts from the newest snapshot the same reducer made and folds the later
-- events in C; with the open option `snapshot_every = N` it writes a new
-- snapshot once N events were folded since the last one. The context form
-- folds, in global order, the category's events whose `data` matches every
-- `where` field.
-- @function Store:state
-- @tparam string|table target a stream name, or `{ category = "employee", where = { company = "acme" } }`
-- @tparam Reducer rules made by `eventstore.reducer`
-- @tparam[opt] table opts `{ initial = {} }` the state before the first event
-- @treturn table state
-- @treturn int the stream's revision (or, for a context, the position of the last folded event)
-- @return nil, err

--- Reads or stores a named position (the checkpoint of a subscription).
-- @function Store:checkpoint
-- @string name the checkpoint name
-- @int[opt] position store this position; without it, read the stored one
-- @treturn int|boolean the position when reading (0 when none is stored), true when storing
-- @treturn boolean when reading: whether a checkpoint is stored (tells a stored 0 from none)
-- @return nil, err

--- Events not yet marked as dispatched, in position order (open option `outbox = true`).
-- @function Store:undispatched
-- @tparam[opt] table opts `{ limit, category, after }`
-- @treturn {table,...} events
-- @return nil, err

--- Marks an event as dispatched (it leaves the outbox). Returns true.
-- @function Store:mark_dispatched
-- @tparam table|string event an event or its id
-- @treturn boolean true
-- @return nil, err

--- Waits until an event after a position may exist, or a timeout passes.
-- PostgreSQL sleeps on LISTEN/NOTIFY; the other backends poll with a
-- growing interval (1 to 50 ms).
-- @function Store:wait
-- @int after a position
-- @int timeout_ms milliseconds
-- @treturn boolean true when newer events exist, false on timeout
-- @return nil, err

--- The newest position in the store (0 when it is empty); cheaper than `stats()`.
-- @function Store:position
-- @treturn int the position
-- @return nil, err

--- True until the store is closed.
-- @function Store:is_open
-- @treturn boolean

--- Closes the store; returns true every time. Also `__close`
-- (`local store <close> = ...`) and `__gc`. Any other method on a closed
-- store raises "attempt to use a closed store".
-- @function Store:close
-- @treturn boolean true

--- Iterates over events in order, any number of them, a page of 1,000 at a time
-- (constant memory). With a stream: its events by revision (`from`, `to`,
-- `backward`, `limit`); with nil: every stream by position (`after`,
-- `category`, `types`, `limit`). Implemented in `lua/eventstore/init.lua`;
-- returns the 4 values of a generic for, the 4th closing it under Lua 5.4,
-- and it closes itself when exhausted (LuaJIT ignores the 4th value).
-- @function Store:each
-- @tparam ?string stream a stream name, or nil for all streams
-- @tparam[opt] table opts `{ from, to, backward, after, category, types, limit, page_size }`
-- @return the iterator triple and a closing value
-- @usage for ev in store:each(nil, { category = "account" }) do print(ev.position, ev.type) end
